//! What every command shares: the client for the registries it names (plain HTTP, TLS trust,
//! credentials, progress bars), references checked before anything is sent, and what is said
//! on stderr at each verbosity.

use std::io::IsTerminal as _;

use wharf_client::{Client, ClientBuilder, DockerConfig, Progress, Reference};

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
