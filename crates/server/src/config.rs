//! The `--config` file: every setting of the binary, `[tls]`, `[auth]`, `[[access]]`,
//! `[[wasm_policy]]`, `[trust]` and `[[trust_policy]]`.
//! Unknown keys are refused with their name; relative paths are relative to the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wharf_auth::signature::TrustPolicies;

use crate::auth::AccessControl;
pub use crate::auth::{AccessRule, AuthConfig, ClaimValues, ExternalConfig, OidcConfig, OidcRule};
use crate::error::{Error, Result};
use crate::tls::{Tls, TlsFiles};
pub use crate::units::{ByteSize, parse_duration, parse_grace, parse_interval, parse_size};

/// The whole file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FileConfig {
    /// `listen`.
    pub listen: Option<SocketAddr>,
    /// `storage`.
    pub storage: Option<String>,
    /// `log_format`.
    pub log_format: Option<String>,
    /// `wasm_validate`.
    pub wasm_validate: Option<bool>,
    /// `header_timeout`.
    pub header_timeout: Option<String>,
    /// `body_idle_timeout`.
    pub body_idle_timeout: Option<String>,
    /// `keepalive_timeout`.
    pub keepalive_timeout: Option<String>,
    /// `max_connections`.
    pub max_connections: Option<usize>,
    /// `max_connections_per_address`.
    pub max_connections_per_address: Option<usize>,
    /// `min_transfer_rate` (bytes per second, or a size such as `"1KiB"`).
    pub min_transfer_rate: Option<ByteSize>,
    /// `drain_timeout`.
    pub drain_timeout: Option<String>,
    /// `serve_stale_for`: how long a manifest read by tag or digest is still served from memory
    /// while the storage is unavailable [default: 5m; `0s`: never].
    pub serve_stale_for: Option<String>,
    /// `public_url`: the URL clients reach the registry at (the token realm, `Secure`
    /// cookies, the name a loopback registry answers to).
    pub public_url: Option<String>,
    /// `[inspection]`: what reading an artifact's layers may cost.
    pub inspection: Option<InspectionConfig>,
    /// `[tls]`.
    pub tls: Option<TlsConfig>,
    /// `[auth]`.
    pub auth: Option<AuthConfig>,
    /// `[[access]]` rules.
    #[serde(default)]
    pub access: Vec<AccessRule>,
    /// `[[wasm_policy]]` tables.
    #[serde(default)]
    pub wasm_policy: Vec<crate::wasm_policy::WasmPolicyConfig>,
    /// `[trust]`: what keyless signatures are checked against.
    #[serde(default)]
    pub trust: Option<crate::trust::TrustConfig>,
    /// `[[trust_policy]]` tables: whose signatures artifacts need.
    #[serde(default)]
    pub trust_policy: Vec<crate::trust::TrustPolicyConfig>,
    /// `[gc]`: garbage collection.
    #[serde(default)]
    pub gc: Option<crate::lifecycle::GcConfig>,
    /// `[[retention]]` tables.
    #[serde(default)]
    pub retention: Vec<crate::lifecycle::retention::RetentionConfig>,
    /// `[[quota]]` tables.
    #[serde(default)]
    pub quota: Vec<crate::lifecycle::quota::QuotaConfig>,
    /// `[packages]`: where Wasm packages live (`/.well-known/wasm-pkg/registry.json`).
    #[serde(default)]
    pub packages: Option<crate::packages::PackagesConfig>,
    /// `[[versioning]]` tables: immutable tags, semver-only tags, WIT compatibility.
    #[serde(default)]
    pub versioning: Vec<crate::packages::versioning::VersioningConfig>,
    /// `[[upstream]]` tables: registries mirrored here (pull-through).
    #[serde(default)]
    pub upstream: Vec<UpstreamConfig>,
    /// `[[webhook]]` tables: who is told of what happens here.
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
}

/// `[[webhook]]`: where events go (see [`crate::webhooks`]).
///
/// ```toml
/// [[webhook]]
/// name = "deployer"
/// url = "https://hooks.example.com/wharf"
/// events = ["manifest.pushed", "tag.created", "tag.moved"]
/// repositories = ["prod/**"]
/// secret_file = "deployer.whsec"     # or secret_env; `whsec_<base64>` (Standard Webhooks)
/// format = "cloudevents"              # or "distribution"
/// headers = { "X-Team" = "platform" }
/// timeout = "10s"
/// attempts = 10                       # then the event is parked
/// backoff = "1s"                      # doubling after each failure …
/// max_backoff = "10m"                 # … up to this
/// max_pending = 10000                 # pulls and refusals dropped beyond this backlog
/// allow_private = false               # true: loopback, private and link-local targets allowed
/// ```
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// Its name (keys, metrics, the API): lowercase letters, digits, `-`, `_`.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// The events it is told of [default: every event but `manifest.pulled`].
    pub events: Option<Vec<String>>,
    /// Repository patterns [default: every repository].
    #[serde(default)]
    pub repositories: Vec<String>,
    /// The environment variable holding the secret.
    pub secret_env: Option<String>,
    /// The file holding the secret, relative to the config file.
    pub secret_file: Option<PathBuf>,
    /// Headers sent with every delivery.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// `cloudevents` (default) or `distribution`.
    pub format: Option<String>,
    /// How long one delivery may take [default: 10s].
    pub timeout: Option<String>,
    /// Sends of an event before it is parked [default: 10].
    pub attempts: Option<u32>,
    /// The first wait after a failure [default: 1s].
    pub backoff: Option<String>,
    /// The longest wait between two sends [default: 10m].
    pub max_backoff: Option<String>,
    /// The backlog beyond which pull and refusal events are dropped [default: 10000].
    pub max_pending: Option<usize>,
    /// Allow a target in a loopback, private or link-local range [default: false].
    #[serde(default)]
    pub allow_private: bool,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Where the secret comes from is shown; never a secret, a header's value or the URL's
        // query.
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &crate::webhooks::WebhookSettings::new(&self.name, &self.url).shown_url())
            .field("events", &self.events)
            .field("secret_env", &self.secret_env)
            .field("secret_file", &self.secret_file)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// The typed settings, the secret read (from the environment or a file relative to
    /// `base`), checked ([`crate::webhooks::WebhookSettings::check`]).
    pub fn settings(&self, base: &Path) -> Result<crate::webhooks::WebhookSettings> {
        let name = &self.name;
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            Error::BadRequest(format!("[[webhook]] `{name}` {what}: {e}"))
        };
        let mut settings = crate::webhooks::WebhookSettings::new(name, &self.url);
        if let Some(events) = &self.events {
            settings.events = events
                .iter()
                .map(|e| e.parse())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad("events", &e))?;
        }
        if !self.repositories.is_empty() {
            settings.repositories =
                wharf_auth::Pattern::parse_list(&self.repositories).map_err(|e| bad("repositories", &e))?;
        }
        let secret = match (&self.secret_env, &self.secret_file) {
            (Some(_), Some(_)) => return Err(bad("secret", &"secret_env or secret_file, not both")),
            (Some(var), None) => {
                Some(std::env::var(var).map_err(|e| bad("secret_env", &format!("{var}: {e}")))?)
            }
            (None, Some(file)) => Some(
                std::fs::read_to_string(base.join(file))
                    .map_err(|e| bad("secret_file", &format!("{}: {e}", file.display())))?,
            ),
            (None, None) => None,
        };
        settings.secret = secret
            .map(|s| crate::webhooks::WebhookSettings::parse_secret(&s))
            .transpose()
            .map_err(|e| bad("secret", &e))?;
        settings.headers = self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        settings.format = match self.format.as_deref() {
            None | Some("cloudevents") => crate::webhooks::Format::CloudEvents,
            Some("distribution") => crate::webhooks::Format::Distribution,
            Some(other) => {
                return Err(bad("format", &format!("`{other}`: expected cloudevents or distribution")));
            }
        };
        if let Some(t) = &self.timeout {
            settings.timeout = parse_duration(t).map_err(|e| bad("timeout", &e))?;
        }
        if let Some(n) = self.attempts {
            settings.attempts = n;
        }
        if let Some(b) = &self.backoff {
            settings.backoff = parse_duration(b).map_err(|e| bad("backoff", &e))?;
        }
        if let Some(b) = &self.max_backoff {
            settings.max_backoff = parse_duration(b).map_err(|e| bad("max_backoff", &e))?;
        }
        if let Some(n) = self.max_pending {
            settings.max_pending = n;
        }
        settings.allow_private = self.allow_private;
        settings.check()?;
        Ok(settings)
    }
}

/// `[[upstream]]`: a registry mirrored here. Its repositories appear as `<prefix>/<name>`
/// (Docker Hub's one-component names as `library/<name>` there), and by their own names to
/// containerd's mirror requests (`?ns=<host>`).
///
/// ```toml
/// [[upstream]]
/// name = "dockerhub"
/// url = "https://registry-1.docker.io"
/// prefix = "dockerhub"            # default: the name
/// username = "ci"                 # Basic credentials, or to its token service
/// password_env = "DOCKERHUB_TOKEN"  # or password_file
/// tag_ttl = "10m"                 # default 5m
/// ```
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// Its name (metrics, logs, errors).
    pub name: String,
    /// `https://host[:port]` (or `http://` for one without TLS).
    pub url: String,
    /// Where its repositories appear here [default: the name].
    pub prefix: Option<String>,
    /// More host names it answers to in containerd's `?ns=`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The user name of its credentials.
    pub username: Option<String>,
    /// The environment variable holding the password (or token).
    pub password_env: Option<String>,
    /// The file holding the password (or token), relative to the config file.
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) for its TLS certificate, relative to the config file.
    pub ca: Option<PathBuf>,
    /// How long a tag is served from the cache before it is checked again [default: 5m].
    pub tag_ttl: Option<String>,
    /// How long it may send nothing before a fetch fails [default: 30s].
    pub stall_timeout: Option<String>,
    /// The largest blob fetched from it [default: 16GiB].
    pub max_blob: Option<ByteSize>,
    /// How many blobs are fetched from it at once; more wait their turn [default: 16]. Each
    /// fetch holds at most 12 MiB in memory.
    pub max_fetches: Option<usize>,
    /// The bytes its repositories here may hold: a collection evicts the least recently
    /// pulled tags (and manifests fetched by digest) beyond it [default: no limit].
    pub max_bytes: Option<ByteSize>,
    /// Allow an upstream in a loopback, private or link-local range [default: false].
    #[serde(default)]
    pub allow_private: bool,
    /// `[[upstream.sync]]`: repositories (or some of their tags) kept copied here.
    #[serde(default)]
    pub sync: Vec<SyncConfig>,
}

/// `[[upstream.sync]]`: a repository of the upstream (its name there) kept copied here,
/// whole, on a schedule, through the job queue (one job per tag: resumable, retried).
///
/// ```toml
/// [[upstream.sync]]
/// repository = "webassembly/wasi/io"
/// tags = ["0.2.*"]     # default: every tag
/// every = "6h"
/// ```
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SyncConfig {
    /// The repository's name at the upstream.
    pub repository: String,
    /// The tags copied (`*` matches any run of characters) [default: every tag].
    pub tags: Option<Vec<String>>,
    /// How often [default: 1h].
    pub every: Option<String>,
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Where the password comes from is shown; never a password.
        f.debug_struct("UpstreamConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("username", &self.username)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .finish_non_exhaustive()
    }
}

impl UpstreamConfig {
    /// Where its repositories appear here.
    fn prefix(&self) -> Result<wharf_types::Repository> {
        let prefix = self.prefix.as_deref().unwrap_or(&self.name);
        prefix.parse().map_err(|e| Error::BadRequest(format!("[[upstream]] `{}` prefix: {e}", self.name)))
    }

    /// The typed settings, secrets read (from the environment or a file relative to `base`).
    pub fn settings(&self, base: &Path) -> Result<crate::mirror::UpstreamSettings> {
        let name = &self.name;
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            Error::BadRequest(format!("[[upstream]] `{name}` {what}: {e}"))
        };
        let prefix = self.prefix()?;
        let mut settings = crate::mirror::UpstreamSettings::new(name, &self.url, prefix)?;
        settings.hosts.clone_from(&self.hosts);
        let password = match (&self.password_env, &self.password_file) {
            (Some(_), Some(_)) => return Err(bad("password", &"password_env or password_file, not both")),
            (Some(var), None) => {
                Some(std::env::var(var).map_err(|e| bad("password_env", &format!("{var}: {e}")))?)
            }
            (None, Some(file)) => Some(
                std::fs::read_to_string(base.join(file))
                    .map_err(|e| bad("password_file", &format!("{}: {e}", file.display())))?
                    .trim_end()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        settings.credentials = match (&self.username, password) {
            (Some(user), Some(password)) => wharf_client::Credentials::basic(user, password),
            (None, None) => wharf_client::Credentials::Anonymous,
            _ => return Err(bad("credentials", &"username and a password_env or password_file go together")),
        };
        if let Some(ca) = &self.ca {
            settings.ca =
                Some(std::fs::read(base.join(ca)).map_err(|e| bad("ca", &format!("{}: {e}", ca.display())))?);
        }
        if let Some(ttl) = &self.tag_ttl {
            settings.tag_ttl = parse_grace(ttl).map_err(|e| bad("tag_ttl", &e))?;
        }
        if let Some(stall) = &self.stall_timeout {
            settings.stall = parse_duration(stall).map_err(|e| bad("stall_timeout", &e))?;
        }
        if let Some(max) = &self.max_blob {
            settings.max_blob = max.0;
        }
        if let Some(n) = self.max_fetches {
            if n == 0 {
                return Err(bad("max_fetches", &"at least 1"));
            }
            settings.max_fetches = n;
        }
        settings.allow_private = self.allow_private;
        for rule in &self.sync {
            let repository = rule.repository.parse().map_err(|e| bad("sync repository", &e))?;
            let every = match &rule.every {
                Some(every) => parse_duration(every).map_err(|e| bad("sync every", &e))?,
                None => std::time::Duration::from_secs(3600),
            };
            let mut sync = crate::mirror::SyncRule::new(repository, every);
            if let Some(tags) = &rule.tags {
                if tags.is_empty() {
                    return Err(bad("sync tags", &"at least one pattern"));
                }
                sync.tags.clone_from(tags);
            }
            settings.sync.push(sync);
        }
        Ok(settings)
    }
}

/// `[inspection]`: the budget of every read of an artifact's layers (inspection,
/// classification, policies, search) and how many run at once. Unset keys keep
/// [`wharf_wasm::budget::Budget`]'s defaults.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct InspectionConfig {
    /// Artifacts read at once [default: the cores, 2 to 8].
    pub concurrency: Option<usize>,
    /// Bytes read from one layer, after decompression [default: 4GiB].
    pub layer_bytes: Option<ByteSize>,
    /// Bytes read from all of an artifact's layers [default: 8GiB].
    pub artifact_bytes: Option<ByteSize>,
    /// The largest extended header (long name, long link, PAX) [default: 64KiB].
    pub header_bytes: Option<ByteSize>,
    /// Archive entries of an artifact [default: 1000000].
    pub entries: Option<u64>,
    /// The largest module read [default: 256MiB].
    pub module_bytes: Option<ByteSize>,
    /// Time to read one artifact (`2m`) [default: 120s].
    pub time: Option<String>,
}

impl InspectionConfig {
    /// The budget these keys describe.
    pub fn budget(&self) -> Result<wharf_wasm::budget::Budget> {
        let mut budget = wharf_wasm::budget::Budget::default();
        let size = |v: &Option<ByteSize>, default: u64| v.as_ref().map_or(default, |s| s.0);
        budget.layer_bytes = size(&self.layer_bytes, budget.layer_bytes);
        budget.artifact_bytes = size(&self.artifact_bytes, budget.artifact_bytes);
        budget.header_bytes = size(&self.header_bytes, budget.header_bytes);
        budget.module_bytes = size(&self.module_bytes, budget.module_bytes);
        budget.entries = self.entries.unwrap_or(budget.entries);
        if let Some(time) = &self.time {
            budget.time =
                parse_duration(time).map_err(|e| Error::BadRequest(format!("[inspection] time: {e}")))?;
        }
        if self.concurrency == Some(0) {
            return Err(Error::BadRequest("[inspection] concurrency: at least 1".into()));
        }
        Ok(budget)
    }
}

/// `[tls]`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
    /// CA certificates for client certificates (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// `optional` (default: clients without a certificate authenticate otherwise) or
    /// `required` (the handshake fails without a valid client certificate).
    pub client_auth: Option<String>,
    /// The user each client certificate stands for, by its subject's common name
    /// (`client_users = { "ci-runner-1" = "ci" }`); a certificate not named here stands for
    /// no one.
    #[serde(default)]
    pub client_users: std::collections::BTreeMap<String, String>,
}

/// `[auth]` and the `[[access]]` rules of the config file at `path`, for
/// [`AccessControl::watch_rules`]: what is read again when the file changes.
#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub fn read_access_rules(path: &Path) -> Result<(AuthConfig, Vec<AccessRule>)> {
    let file = FileConfig::read(path)?;
    Ok((file.auth.unwrap_or_default(), file.access))
}

impl FileConfig {
    /// Reads a config file (TOML).
    #[cfg(feature = "cli")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::BadRequest(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::BadRequest(format!("{}: {e}", path.display())))
    }

    /// Parses a config file's text (TOML).
    #[cfg(feature = "cli")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::BadRequest(e.to_string()))
    }

    /// The TLS of `[tls]`, paths relative to `base`.
    pub fn tls(&self, base: &Path) -> Result<Option<Arc<Tls>>> {
        let Some(tls) = &self.tls else { return Ok(None) };
        for user in tls.client_users.values() {
            if !wharf_auth::valid_user(user) {
                return Err(Error::BadRequest(format!(
                    "[tls] client_users: {} is not a user name",
                    wharf_types::error::Input::new(user)
                )));
            }
        }
        let mut files = TlsFiles::new(base.join(&tls.cert), base.join(&tls.key))
            .with_client_users(tls.client_users.clone());
        if let Some(ca) = &tls.client_ca {
            files = files.with_client_ca(base.join(ca));
        }
        match (tls.client_auth.as_deref(), &tls.client_ca) {
            (None | Some("optional"), _) => {}
            (Some("required"), Some(_)) => files = files.requiring_client_cert(),
            (Some("required"), None) => {
                return Err(Error::BadRequest("[tls] client_auth = \"required\" needs client_ca".into()));
            }
            (Some(other), _) => {
                return Err(Error::BadRequest(format!(
                    "[tls] client_auth `{other}`: expected optional or required"
                )));
            }
        }
        Tls::load(files).map(Some)
    }

    /// The access control of `[auth]` and `[[access]]` (`None` without either: an open
    /// registry). Paths are relative to `base`; `data_dir` is where a token key is kept when
    /// none is configured.
    pub fn access(&self, base: &Path, data_dir: Option<&Path>) -> Result<Option<Arc<AccessControl>>> {
        if self.auth.is_none() && self.access.is_empty() {
            return Ok(None);
        }
        let auth = self.auth.clone().unwrap_or_default();
        let mut access = AccessControl::from_config(&auth, &self.access, base, data_dir)?;
        if auth.realm.is_none()
            && let Some(url) = self.public_url()?
        {
            access = access.with_realm(url.realm());
        }
        Ok(Some(Arc::new(access)))
    }

    /// `[packages]` and `[[versioning]]`, checked.
    pub fn versioning(&self) -> Result<crate::packages::versioning::Versioning> {
        let packages = crate::packages::Packages::from_config(&self.packages.clone().unwrap_or_default())?;
        crate::packages::versioning::Versioning::from_config(&self.versioning, packages)
            .map_err(|e| Error::BadRequest(format!("[[versioning]] {e}")))
    }

    /// `[trust]` and `[[trust_policy]]`, their PEM files (relative to `base`) read.
    pub fn trust(&self, base: &Path) -> Result<crate::trust::Trust> {
        let policies = TrustPolicies::load(base, &self.trust.clone().unwrap_or_default(), &self.trust_policy)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        Ok(crate::trust::Trust::new(policies))
    }

    /// The mirror of `[[upstream]]`, paths relative to `base`, secrets read.
    pub fn mirror(&self, base: &Path) -> Result<crate::mirror::Mirror> {
        let settings = self.upstream.iter().map(|u| u.settings(base)).collect::<Result<_>>()?;
        crate::mirror::Mirror::new(settings)
    }

    /// The size budgets of the mirrors' repositories (`max_bytes` of each `[[upstream]]`),
    /// for the collector (which reads no secret).
    pub fn cache_budgets(&self) -> Result<Vec<crate::lifecycle::budget::CacheBudget>> {
        self.upstream
            .iter()
            .filter_map(|u| {
                let max = u.max_bytes.as_ref()?.0;
                Some(
                    u.prefix().map(|prefix| crate::lifecycle::budget::CacheBudget::new(&u.name, prefix, max)),
                )
            })
            .collect()
    }

    /// The webhooks of `[[webhook]]`, secrets read (paths relative to `base`), each target
    /// checked (a private or metadata address refused unless allowed).
    pub fn webhooks(&self, base: &Path) -> Result<crate::webhooks::Webhooks> {
        let settings = self.webhook.iter().map(|w| w.settings(base)).collect::<Result<Vec<_>>>()?;
        let public_url = self.public_url()?;
        crate::webhooks::Webhooks::new(settings, public_url.as_ref().map(ToString::to_string).as_deref())
    }

    /// `public_url`, checked.
    pub fn public_url(&self) -> Result<Option<crate::PublicUrl>> {
        self.public_url.as_deref().map(str::parse).transpose().map_err(Error::BadRequest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_read_with_their_secrets_kept_out_of_sight() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hub.password"), "hunter2-secret\n").expect("write");
        let file = FileConfig::parse(
            "[[upstream]]\nname = \"hub\"\nurl = \"https://registry-1.docker.io\"\nprefix = \"dockerhub\"\n\
             username = \"ci\"\npassword_file = \"hub.password\"\ntag_ttl = \"0s\"\nmax_bytes = \"2GiB\"\n\n\
             [[upstream.sync]]\nrepository = \"library/alpine\"\ntags = [\"3.*\"]\nevery = \"6h\"\n",
        )
        .expect("parses");
        let settings = file.upstream[0].settings(dir.path()).expect("settings");
        assert_eq!(settings.prefix.as_str(), "dockerhub");
        assert_eq!(settings.tag_ttl, std::time::Duration::ZERO);
        assert_eq!(settings.sync[0].every, std::time::Duration::from_secs(6 * 3600));
        assert!(settings.sync[0].copies("3.20") && !settings.sync[0].copies("edge"));
        for shown in [format!("{:?}", file.upstream[0]), format!("{settings:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(file.mirror(dir.path()).is_ok());
        let budgets = file.cache_budgets().expect("budgets");
        assert_eq!((budgets[0].prefix.as_str(), budgets[0].max_bytes), ("dockerhub", 2 << 30));
        let bad =
            |text: &str| FileConfig::parse(text).expect("parses").mirror(dir.path()).expect_err("refused");
        let e = bad("[[upstream]]\nname = \"a\"\nurl = \"https://x\"\nusername = \"u\"\n");
        assert!(e.to_string().contains("go together"), "{e}");
        let e = bad(
            "[[upstream]]\nname = \"a\"\nurl = \"https://x\"\npassword_env = \"WHARF_NO_SUCH_VARIABLE\"\nusername = \"u\"\n",
        );
        assert!(e.to_string().contains("WHARF_NO_SUCH_VARIABLE"), "{e}");
        let e = bad("[[upstream]]\nname = \"a\"\nurl = \"https://x\"\nmax_fetches = 0\n");
        assert!(e.to_string().contains("max_fetches"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e =
            FileConfig::parse("listen = \"127.0.0.1:1\"\n[auth]\nhtpaswd = \"x\"\n").expect_err("refused");
        assert!(e.to_string().contains("htpaswd"), "{e}");
        let e = FileConfig::parse("[[access]]\nrepositories = [\"a\"]\nanonymous = [\"pul\"]\n")
            .expect_err("refused");
        assert!(e.to_string().contains("pul"), "{e}");
    }
}
