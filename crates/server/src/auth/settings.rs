//! The settings of access control as the config file writes them (`[auth]`, `[[access]]`):
//! plain values the edge parses and hands to [`AccessControl`](super::AccessControl).

use std::collections::BTreeMap;
use std::path::PathBuf;

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
