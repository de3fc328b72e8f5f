//! The `--config` file: every setting of the binary, `[tls]`, `[auth]`, `[[access]]` and
//! `[[wasm_policy]]`.
//! Unknown keys are refused with their name; relative paths are relative to the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::AccessControl;
use crate::error::{Error, Result};
use crate::tls::{Tls, TlsFiles};

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
    pub wasm_policy: Vec<crate::policy::WasmPolicyConfig>,
    /// `[gc]`: garbage collection.
    #[serde(default)]
    pub gc: Option<crate::gc::GcConfig>,
    /// `[[retention]]` tables.
    #[serde(default)]
    pub retention: Vec<crate::gc::retention::RetentionConfig>,
    /// `[[quota]]` tables.
    #[serde(default)]
    pub quota: Vec<crate::gc::quota::QuotaConfig>,
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

/// `[auth]`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthConfig {
    /// The htpasswd file (bcrypt entries).
    pub htpasswd: Option<PathBuf>,
    /// Members by group name.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// The service name tokens are issued for (`aud`) [default: `wharf`].
    pub service: Option<String>,
    /// The issuer of the tokens (`iss`) [default: `wharf`].
    pub issuer: Option<String>,
    /// The token endpoint URL in challenges (default: `<scheme>://<Host>/token`).
    pub realm: Option<String>,
    /// The token signing key (PEM PKCS#8, P-256 or Ed25519); created when missing
    /// (default: `<data dir>/auth/token.key` with fs storage, a key per run otherwise).
    pub token_key: Option<PathBuf>,
    /// `ES256` or `EdDSA` for a key created here [default: ES256].
    pub token_algorithm: Option<String>,
    /// Lifetime of access tokens [default: 5m].
    pub token_ttl: Option<String>,
    /// Lifetime of refresh tokens [default: 30 days].
    pub refresh_ttl: Option<String>,
    /// Serve `/metrics` to anyone [default: false: `admin` only].
    #[serde(default)]
    pub public_metrics: bool,
    /// A file the audit log (JSON lines) is appended to, besides the `wharf::audit` log target.
    pub audit_log: Option<PathBuf>,
    /// Failed logins per user a minute before it is refused for the rest of the minute
    /// [default: 5].
    pub max_failed_logins: Option<u32>,
    /// Failed logins per client address a minute [default: 30].
    pub max_failed_logins_per_address: Option<u32>,
    /// Trust the tokens of another issuer.
    pub external: Option<ExternalConfig>,
}

/// `[auth.external]`: an issuer whose tokens are trusted.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ExternalConfig {
    /// Its `iss`.
    pub issuer: String,
    /// The `aud` its tokens carry for this registry [default: the service name].
    pub audience: Option<String>,
    /// Its public keys: a PEM file or a JWKS document.
    pub keys: PathBuf,
    /// Whether its tokens' subjects are the local users of the same names (their groups,
    /// rules and administration) [default: false: only the tokens' grants count].
    #[serde(default)]
    pub map_users: bool,
}

/// One `[[access]]` rule.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessRule {
    /// Repository patterns (`*` within a component, `**` any depth).
    pub repositories: Vec<String>,
    /// Actions for callers without credentials.
    #[serde(default)]
    pub anonymous: Vec<wharf_auth::Action>,
    /// Actions by user.
    #[serde(default)]
    pub users: BTreeMap<String, Vec<wharf_auth::Action>>,
    /// Actions by group.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<wharf_auth::Action>>,
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

    /// `public_url`, checked.
    pub fn public_url(&self) -> Result<Option<crate::PublicUrl>> {
        self.public_url.as_deref().map(str::parse).transpose().map_err(Error::BadRequest)
    }
}

/// `30s`, `500ms`, `2m`, `1h`, `7d`, or a number of seconds; zero is refused.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{s}` is not a duration (try 30s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        other => return Err(format!("`{other}` in `{s}` is not a unit of time (ms, s, m, h, d)")),
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if d.is_zero() => Err(format!("`{s}`: a time-out must be longer than zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

/// `"10MiB"`, `"512KiB"`, `"1GB"`, `"300 kB"`, `"1048576"`: a size in bytes.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a size"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        "tb" => 1000 * 1000 * 1000 * 1000,
        "tib" | "t" => 1024 * 1024 * 1024 * 1024,
        _ => return Err(format!("`{text}`: unknown unit (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("`{text}` is too large"))
}

/// A size in bytes as a config file writes it: a number of bytes (`1048576`) or a string with
/// a unit (`"10MiB"`, `"1GB"`; see [`parse_size`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of bytes or a size such as \"10MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<ByteSize, E> {
                u64::try_from(n).map(ByteSize).map_err(|_| E::custom(format!("negative size {n}")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<ByteSize, E> {
                parse_size(s).map(ByteSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A grace window: a duration, or `0` (nothing is too young to collect).
pub fn parse_grace(s: &str) -> std::result::Result<Duration, String> {
    match s.trim() {
        "0" | "0s" | "0ms" => Ok(Duration::ZERO),
        other => parse_duration(other),
    }
}

/// An interval that may be `off`.
pub fn parse_interval(s: &str) -> std::result::Result<Option<Duration>, String> {
    match s.trim() {
        "off" | "0" | "false" => Ok(None),
        other => parse_duration(other).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        for bad in ["", "s", "-1s", "0", "0ms", "10 years", "1.2.3s", "inf", "NaN"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
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
