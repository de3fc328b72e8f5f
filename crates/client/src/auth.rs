//! Credentials and the registry auth challenges (Basic, and the Docker token flow).

use std::fmt;

/// A secret string: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How the client authenticates to a registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// No credentials; bearer tokens are still fetched anonymously when a registry asks.
    #[default]
    Anonymous,
    /// A username and password, sent as Basic auth or to the token endpoint.
    Basic {
        /// The username.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token endpoint
    /// with `grant_type=refresh_token`.
    IdentityToken(Secret),
}

impl Credentials {
    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic { username: username.into(), password: Secret::new(password) }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"` (quoted or bare
/// values, any order, case-insensitive scheme and keys).
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let (mut realm, mut service, mut scope) = (None, None, None);
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key.as_str() {
            "realm" => realm = Some(value.to_owned()),
            "service" => service = Some(value.to_owned()),
            "scope" => scope = Some(value.to_owned()),
            _ => {}
        }
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer { realm: realm?, service, scope })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(parse_challenge(r#"Basic realm="Registry""#), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer  scope="repository:x:pull,push", REALM=http://127.0.0.1:1/t"#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: None,
                scope: Some("repository:x:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), None);
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Credentials::basic("user", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}

/// Credentials from a docker `config.json` (also podman's `auth.json`): `auths` entries
/// (`auth` = base64 `user:password`, or `username`/`password`), and credential helpers
/// (`credHelpers` per host, `credsStore` for all) run as `docker-credential-<name> get`.
#[derive(Clone, Default)]
pub struct DockerConfig {
    auths: std::collections::HashMap<String, AuthEntry>,
    creds_store: Option<String>,
    cred_helpers: std::collections::HashMap<String, String>,
    helper_path: Option<std::ffi::OsString>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("hosts", &self.auths.keys().collect::<Vec<_>>())
            .field("creds_store", &self.creds_store)
            .field("cred_helpers", &self.cred_helpers)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Default, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// What a credential helper's `get` prints.
#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: std::collections::HashMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: std::collections::HashMap<String, String>,
}

impl DockerConfig {
    /// Parses the JSON of a `config.json`.
    pub fn from_json(json: &str) -> crate::Result<Self> {
        let file: ConfigFile =
            serde_json::from_str(json).map_err(|e| crate::Error::Config(format!("docker config: {e}")))?;
        Ok(Self {
            auths: file.auths,
            creds_store: file.creds_store,
            cred_helpers: file.cred_helpers,
            helper_path: None,
        })
    }

    /// Reads a `config.json` file.
    pub fn from_path(path: &std::path::Path) -> crate::Result<Self> {
        let json = std::fs::read_to_string(path)
            .map_err(|e| crate::Error::Config(format!("docker config {}: {e}", path.display())))?;
        Self::from_json(&json)
    }

    /// The configuration podman and docker would use, the first that exists of
    /// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` (where `podman login`
    /// writes), `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/…`),
    /// `$DOCKER_CONFIG/config.json` and `~/.docker/config.json`; `None` when there is none.
    pub fn load() -> crate::Result<Option<Self>> {
        match Self::candidates().into_iter().find(|p| p.exists()) {
            Some(path) => Self::from_path(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Where [`load`](Self::load) looks, in order.
    fn candidates() -> Vec<std::path::PathBuf> {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")));
        [
            std::env::var_os("REGISTRY_AUTH_FILE").map(std::path::PathBuf::from),
            std::env::var_os("XDG_RUNTIME_DIR")
                .map(|d| std::path::PathBuf::from(d).join("containers/auth.json")),
            config_home.map(|d| d.join("containers/auth.json")),
            std::env::var_os("DOCKER_CONFIG").map(|d| std::path::PathBuf::from(d).join("config.json")),
            home.map(|h| h.join(".docker/config.json")),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The file a login writes to, as podman chooses it: `$REGISTRY_AUTH_FILE`, else the
    /// file [`load`](Self::load) reads, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
    /// `~/.config/containers/auth.json` (docker, skopeo and podman all read both).
    pub fn login_path() -> crate::Result<std::path::PathBuf> {
        if let Some(path) = std::env::var_os("REGISTRY_AUTH_FILE") {
            return Ok(path.into());
        }
        let candidates = Self::candidates();
        if let Some(path) = candidates.iter().find(|p| p.exists()) {
            return Ok(path.clone());
        }
        candidates.into_iter().find(|p| !p.ends_with("config.json")).ok_or_else(|| {
            crate::Error::Config("no place for credentials: set REGISTRY_AUTH_FILE or HOME".into())
        })
    }

    /// Stores `credentials` for `host` as `docker login` and `podman login` do: through the
    /// credential helper the file names for the host (`credHelpers`, `credsStore`), else as
    /// `auths[host].auth` (base64 `user:password`) in the file at `path`, created `0600`
    /// when missing. Everything else in the file is kept.
    pub fn store(path: &std::path::Path, host: &str, credentials: &Credentials) -> crate::Result<()> {
        use base64::Engine as _;
        let (username, secret) = match credentials {
            Credentials::Basic { username, password } => (username.as_str(), password.expose()),
            Credentials::IdentityToken(token) => ("<token>", token.expose()),
            Credentials::Anonymous => return Self::erase(path, host).map(drop),
        };
        let mut file = read_object(path)?;
        if let Some(helper) = helper_for(&file, host) {
            let input = serde_json::json!({ "ServerURL": host, "Username": username, "Secret": secret });
            return run_helper_command(&helper, "store", &input.to_string(), None)?
                .map(drop)
                .map_err(crate::Error::Config);
        }
        let entry = if username == "<token>" {
            serde_json::json!({ "identitytoken": secret })
        } else {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{secret}"));
            serde_json::json!({ "auth": auth })
        };
        let auths = file.entry("auths").or_insert_with(|| serde_json::json!({}));
        if !auths.is_object() {
            *auths = serde_json::json!({});
        }
        auths[host] = entry;
        write_object(path, &file)
    }

    /// Forgets the credentials of `host` (`docker logout`): its credential helper's entry,
    /// and its `auths` entries under every key it may be stored by. Whether there were any.
    pub fn erase(path: &std::path::Path, host: &str) -> crate::Result<bool> {
        if !path.exists() {
            return Ok(false);
        }
        let mut file = read_object(path)?;
        let mut found = false;
        if let Some(helper) = helper_for(&file, host) {
            found |= run_helper_command(&helper, "erase", host, None)?.is_ok();
        }
        if let Some(auths) = file.get_mut("auths").and_then(serde_json::Value::as_object_mut) {
            for key in Self::keys(host) {
                found |= auths.remove(&key).is_some();
            }
        }
        write_object(path, &file)?;
        Ok(found)
    }

    /// Looks credential helpers up in `path` (a `PATH`-style list) instead of `$PATH`.
    #[must_use]
    pub fn with_helper_path(mut self, path: impl Into<std::ffi::OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    /// The keys `host` may be stored under (`docker.io` also as Docker Hub's legacy URL).
    fn keys(host: &str) -> Vec<String> {
        let mut keys = vec![
            host.to_owned(),
            format!("https://{host}"),
            format!("http://{host}"),
            format!("https://{host}/v1/"),
        ];
        if host == "docker.io" || host == "registry-1.docker.io" || host == "index.docker.io" {
            keys.push("https://index.docker.io/v1/".to_owned());
            keys.push("docker.io".to_owned());
        }
        keys
    }

    /// The credentials for `host`: its credential helper, the credentials store, or `auths`.
    pub fn credentials_for(&self, host: &str) -> crate::Result<Option<Credentials>> {
        let keys = Self::keys(host);
        let helper = keys.iter().find_map(|k| self.cred_helpers.get(k)).or(self.creds_store.as_ref());
        if let Some(helper) = helper
            && let Some(credentials) = self.run_helper(helper, host)?
        {
            return Ok(Some(credentials));
        }
        let Some(entry) = keys.iter().find_map(|k| self.auths.get(k)) else { return Ok(None) };
        if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials::basic(user.clone(), password.clone())));
        }
        if let Some(auth) = &entry.auth {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    crate::Error::Config(format!(
                        "docker config: the auth of {host} is not base64 user:password"
                    ))
                })?;
            let (user, password) = decoded.split_once(':').ok_or_else(|| {
                crate::Error::Config(format!("docker config: the auth of {host} has no `:`"))
            })?;
            return Ok(Some(Credentials::basic(user, password)));
        }
        if let Some(token) = &entry.identitytoken {
            return Ok(Some(Credentials::IdentityToken(Secret::new(token.clone()))));
        }
        Ok(None)
    }

    fn run_helper(&self, helper: &str, host: &str) -> crate::Result<Option<Credentials>> {
        // Helpers exit non-zero with "credentials not found" for unknown hosts.
        let Ok(stdout) = run_helper_command(helper, "get", host, self.helper_path.as_deref())? else {
            return Ok(None);
        };
        let program = format!("docker-credential-{helper}");
        let answer: HelperAnswer = serde_json::from_slice(&stdout)
            .map_err(|e| crate::Error::Config(format!("credential helper {program} answered: {e}")))?;
        if answer.username == "<token>" {
            return Ok(Some(Credentials::IdentityToken(Secret::new(answer.secret))));
        }
        Ok(Some(Credentials::basic(answer.username, answer.secret)))
    }
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin: its stdout, or what it
/// said when it exited non-zero; an error when it cannot run.
fn run_helper_command(
    helper: &str,
    action: &str,
    input: &str,
    path: Option<&std::ffi::OsStr>,
) -> crate::Result<Result<Vec<u8>, String>> {
    use std::io::Write as _;
    let program = format!("docker-credential-{helper}");
    let mut command = std::process::Command::new(&program);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let mut child = command
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| crate::Error::Config(format!("credential helper {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| crate::Error::Config(format!("credential helper {program}: {e}")))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stdout);
        return Ok(Err(format!("credential helper {program} {action}: {}", said.trim())));
    }
    Ok(Ok(output.stdout))
}

/// The credential helper a config file names for `host`.
fn helper_for(file: &serde_json::Map<String, serde_json::Value>, host: &str) -> Option<String> {
    let helpers = file.get("credHelpers").and_then(serde_json::Value::as_object);
    DockerConfig::keys(host)
        .iter()
        .find_map(|k| helpers.and_then(|h| h.get(k)))
        .or_else(|| file.get("credsStore"))
        .and_then(serde_json::Value::as_str)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

fn read_object(path: &std::path::Path) -> crate::Result<serde_json::Map<String, serde_json::Value>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::Map::new()),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| crate::Error::Config(format!("{}: not a JSON object: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::Map::new()),
        Err(e) => Err(crate::Error::File { path: path.to_owned(), source: e }),
    }
}

/// Writes the file whole (a temporary file renamed over it), readable by its owner only.
fn write_object(
    path: &std::path::Path,
    file: &serde_json::Map<String, serde_json::Value>,
) -> crate::Result<()> {
    use std::io::Write as _;
    let io = |source| crate::Error::File { path: path.to_owned(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut json = serde_json::to_vec_pretty(file).expect("JSON serialises");
    json.push(b'\n');
    let partial = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(&partial).map_err(io)?;
    out.write_all(&json).and_then(|()| out.sync_all()).map_err(io)?;
    std::fs::rename(&partial, path).map_err(io)
}
