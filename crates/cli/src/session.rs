//! What every command shares: the client for the registries it names (plain HTTP, TLS trust,
//! credentials, progress bars), references checked before anything is sent, and what is said
//! on stderr at each verbosity.

use std::io::IsTerminal as _;

use wharf_client::{Client, ClientBuilder, DockerConfig, Progress, Reference, Registry};
use wharf_types::{PackageName, PackageVersion};

use crate::cli::Global;
use crate::failure::{Failure, Result};

/// One command's settings.
pub(crate) struct Session<'a> {
    global: &'a Global,
}

impl<'a> Session<'a> {
    /// The session of a command line.
    pub(crate) fn new(global: &'a Global) -> Self {
        Self { global }
    }

    /// Whether to print JSON.
    pub(crate) fn json(&self) -> bool {
        self.global.json
    }

    /// Says what was done (stderr), unless `--quiet` or `--json`.
    pub(crate) fn info(&self, message: impl AsRef<str>) {
        if !self.global.quiet && !self.global.json {
            eprintln!("{}", message.as_ref());
        }
    }

    /// Says a step (stderr), with `--verbose`.
    pub(crate) fn step(&self, message: impl AsRef<str>) {
        if self.global.verbose > 0 {
            eprintln!("{}", message.as_ref());
        }
    }

    /// Whether details are wanted (`--verbose`).
    pub(crate) fn verbose(&self) -> bool {
        self.global.verbose > 0
    }

    /// The auth file to use: `--authfile` (or `$REGISTRY_AUTH_FILE`), else podman's choice.
    pub(crate) fn auth_file(&self) -> Result<std::path::PathBuf> {
        match &self.global.authfile {
            Some(path) => Ok(path.clone()),
            None => DockerConfig::login_path().map_err(|e| Failure::Failed(e.to_string())),
        }
    }

    /// A client for the registries at `hosts`: plain HTTP for them with `--insecure` (always
    /// on loopback), `--cert-dir` trust and client certificate, the stored credentials, and
    /// progress bars when stderr is a terminal.
    pub(crate) fn client(&self, hosts: &[&str]) -> Result<Client> {
        self.builder(hosts)?.build().map_err(|e| Failure::Failed(e.to_string()))
    }

    /// The builder of [`client`](Self::client), for more settings.
    pub(crate) fn builder(&self, hosts: &[&str]) -> Result<ClientBuilder> {
        let mut builder = ClientBuilder::new().with_user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")));
        for host in hosts {
            if self.global.insecure {
                builder = builder.with_insecure_host(*host);
            }
            if let Some(dir) = &self.global.cert_dir {
                // A registry with certificates speaks HTTPS, loopback or not.
                builder = builder.with_cert_dir(*host, dir).with_loopback_plain_http(false);
            }
        }
        let config = match &self.global.authfile {
            Some(path) if path.exists() => Some(DockerConfig::from_path(path)),
            Some(_) => None,
            None => DockerConfig::load().transpose(),
        };
        if let Some(config) = config {
            builder = builder.with_docker_config(config.map_err(|e| Failure::Failed(e.to_string()))?);
        }
        if !self.global.quiet && !self.global.json && std::io::stderr().is_terminal() {
            builder = builder.with_progress(Progress::bars());
        }
        Ok(builder)
    }
}

/// What a command's TARGET names: a registry reference, or (with `--registry`) a Wasm package
/// `NS:NAME[@VERSION]` resolved as `wkg` resolves it.
pub(crate) struct Resolved {
    /// The reference (a package without a version: its repository, tagged `latest`).
    pub(crate) reference: Reference,
    /// The package and version, when TARGET named a package.
    pub(crate) package: Option<(PackageName, Option<PackageVersion>)>,
    /// The client for the registry the reference is on.
    pub(crate) client: Client,
}

impl Session<'_> {
    /// Whether TARGET names a package (`--registry` given, no `/` in it).
    pub(crate) fn is_package(&self, text: &str) -> bool {
        self.global.registry.is_some() && !text.contains('/')
    }

    /// Resolves TARGET: with `--registry`, a TARGET without `/` is a package (the registry's
    /// `/.well-known/wasm-pkg/registry.json` says where it lives; without one, `<ns>/<name>`);
    /// anything else is a reference. `manifest`: TARGET must name a manifest (a tag or
    /// digest; a package without a version names its newest version, as `wkg get` picks).
    pub(crate) async fn resolve(&self, text: &str, manifest: bool) -> Result<Resolved> {
        if let Some(registry) = self.global.registry.as_deref().filter(|_| self.is_package(text)) {
            return self.resolve_package(registry, text, manifest).await;
        }
        let reference = if manifest { manifest_reference(text)? } else { repository_reference(text)? };
        let client = self.client(&[reference.api_host()])?;
        Ok(Resolved { reference, package: None, client })
    }

    async fn resolve_package(&self, registry: &str, text: &str, manifest: bool) -> Result<Resolved> {
        let registry: Registry = registry.parse().map_err(|e| {
            Failure::Usage(format!("--registry `{registry}`: {e} (a registry is HOST[:PORT])"))
        })?;
        let (name, version) = match text.split_once('@') {
            Some((name, version)) => (name, Some(version)),
            None => (text, None),
        };
        let usage = |e: wharf_types::Error| {
            Failure::Usage(format!("{e} (with --registry, TARGET is a package NS:NAME[@VERSION])"))
        };
        let package: PackageName = name.parse().map_err(usage)?;
        let version: Option<PackageVersion> = version.map(str::parse).transpose().map_err(usage)?;
        let client = self.client(&[registry.api_host()])?;
        let found = client
            .package_registry(&registry)
            .await
            .map_err(|e| Failure::registry(&e, registry.api_host()))?;
        let at = found.reference(&package, None).map_err(|e| Failure::Failed(e.to_string()))?;
        self.step(format!("{package} is at {}/{}", at.registry(), at.repository()));
        // The registry the discovery file names may be another host.
        let client = if at.api_host() == registry.api_host() {
            client
        } else {
            self.client(&[registry.api_host(), at.api_host()])?
        };
        let version = match version {
            Some(v) => Some(v),
            None if manifest => Some(newest(&client, &at, &package).await?),
            None => None,
        };
        let reference = match &version {
            Some(v) => at.with_tag(v.tag()),
            None => at,
        };
        Ok(Resolved { reference, package: Some((package, version)), client })
    }
}

/// The package the registry's discovery file puts at `reference`'s repository
/// (`<prefix><ns>/<name>`), if it serves one and does.
pub(crate) async fn package_at(client: &Client, reference: &Reference) -> Result<Option<PackageName>> {
    let registry = Registry::from(reference);
    let found =
        client.package_registry(&registry).await.map_err(|e| Failure::registry(&e, registry.api_host()))?;
    Ok(found.discovered().then(|| found.package(reference)).flatten())
}

/// The newest version of a package (not a pre-release, unless it has only those), as `wkg
/// get` picks one.
async fn newest(client: &Client, at: &Reference, package: &PackageName) -> Result<PackageVersion> {
    let tags = client.tags(at).await.map_err(|e| Failure::at(&e, at))?;
    let mut versions: Vec<PackageVersion> = tags.iter().filter_map(|t| PackageVersion::of_tag(t)).collect();
    versions.sort_by(PackageVersion::cmp_version);
    let release = versions.iter().rev().find(|v| v.version().pre.is_empty());
    release.or_else(|| versions.last()).cloned().ok_or_else(|| {
        Failure::Failed(format!("{package} has no versions at {}/{}", at.registry(), at.repository()))
    })
}

/// Parses a reference that must name a manifest: a tag or a digest written out (no
/// silent `latest`).
pub(crate) fn manifest_reference(text: &str) -> Result<Reference> {
    let reference = repository_reference(text)?;
    let last = text.rsplit('/').next().unwrap_or(text);
    if !text.contains('@') && !last.contains(':') {
        return Err(Failure::Usage(format!(
            "`{text}` names no tag or digest: add one, e.g. `{text}:v1`, `{text}:latest` or \
                 `{text}@sha256:…`"
        )));
    }
    Ok(reference)
}

/// Parses a reference of which only the repository counts (`tags`, `copy --all`).
pub(crate) fn repository_reference(text: &str) -> Result<Reference> {
    text.parse::<Reference>().map_err(|e| Failure::Usage(e.to_string()))
}
