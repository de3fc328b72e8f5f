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
    /// OIDC issuers whose tokens sign CI workloads in (`[[auth.oidc]]`).
    #[serde(default)]
    pub oidc: Vec<OidcConfig>,
}

/// `[[auth.oidc]]`: an OIDC issuer (GitHub Actions, GitLab CI, a Kubernetes cluster) whose
/// tokens sign workloads in, and the claim rules that say what each may do.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OidcConfig {
    /// A short name for logs and identities [default: the issuer's host, its dots as `-`].
    pub name: Option<String>,
    /// Its `iss` (`https://token.actions.githubusercontent.com`); its keys are found through
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The `aud` its tokens must carry for this registry (required).
    pub audience: String,
    /// Its JWKS URL, instead of the discovery document's (a Kubernetes API server that does
    /// not serve discovery to anonymous callers).
    pub jwks_url: Option<String>,
    /// CA certificates (PEM) to trust for its HTTPS besides the system's (a cluster's CA).
    pub ca_file: Option<PathBuf>,
    /// The claim rules (`[[auth.oidc.rules]]`).
    #[serde(default)]
    pub rules: Vec<OidcRule>,
}

/// `[[auth.oidc.rules]]`: tokens whose claims all match get the actions on the repositories.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OidcRule {
    /// Claim name → a value or a list of values (`*` matches any run of characters).
    pub claims: BTreeMap<String, ClaimValues>,
    /// Repository patterns.
    pub repositories: Vec<String>,
    /// Actions: `pull`, `push`, `delete`.
    pub actions: Vec<wharf_auth::Action>,
}

/// One accepted value of a claim, or several.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum ClaimValues {
    /// One value.
    One(String),
    /// Any of these.
    Any(Vec<String>),
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
