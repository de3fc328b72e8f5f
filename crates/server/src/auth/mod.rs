//! Access control over HTTP: who a request comes from (Basic credentials, a bearer token, a
//! client certificate, or no one), whether it may do what it asks, the 401 challenge or 403
//! that says so, the token endpoint, and the audit log. The rules themselves are
//! [`wharf_auth`]'s.

mod audit;
pub mod credentials;
mod oidc;
mod settings;
pub(crate) mod token;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, header};
use wharf_auth::{Action, Authenticator, Denied, Htpasswd, Identity, Policy, Principal, Rule};

pub(crate) use audit::Audit;
pub use credentials::Credentials;

use crate::error::{Error, Result};
use crate::files::Watched;
use crate::listener::Transport;
use crate::units::parse_duration;
pub use oidc::{KEYS_TTL, MAX_ABSENT, REFETCH_EVERY};
pub use settings::{AccessRule, AuthConfig, ClaimValues, ExternalConfig, OidcConfig, OidcRule};

/// Who may do what, and the token service: the registry's access control.
#[derive(Debug)]
pub struct AccessControl {
    auth: Authenticator,
    htpasswd: Option<Watched>,
    /// The file whose `[auth] groups` and `[[access]]` rules are read again when it changes,
    /// and how the edge that knows its format reads them.
    rules: Mutex<Option<Arc<WatchedRules>>>,
    realm: Option<String>,
    public_metrics: bool,
    pub(crate) audit: Audit,
    /// Password checks (bcrypt) in flight at once, on the blocking pool: the async workers
    /// never hash, and a flood of logins waits here instead of taking every core.
    hashing: tokio::sync::Semaphore,
    /// The robot accounts and personal access tokens, once the registry's storage is known
    /// ([`attach`](Self::attach)).
    credentials: OnceLock<Credentials>,
    /// The OIDC issuers whose tokens sign workloads in.
    oidc: oidc::Issuers,
}

/// Password checks at once: half the cores, 1 to 4.
fn hashing_permits() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get() / 2).clamp(1, 4)
}

/// A file of rules, and how it is read (the edge knows its format).
struct WatchedRules {
    file: Watched,
    read: Box<ReadRules>,
}

/// How a file of rules is read.
type ReadRules = dyn Fn(&Path) -> Result<Rules> + Send + Sync;

/// `[auth]` (its groups count) and the `[[access]]` rules, as a file of rules holds them.
pub type Rules = (AuthConfig, Vec<AccessRule>);

impl std::fmt::Debug for WatchedRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedRules").field("file", &self.file).finish_non_exhaustive()
    }
}

/// Who is calling, once decided: the one type the API's guard and the web page hand to
/// their handlers.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) principal: Principal,
    /// The client's address.
    pub(crate) client: Option<IpAddr>,
}

impl Caller {
    /// The name the logs record.
    pub(crate) fn name(&self) -> &str {
        self.principal.identity.name()
    }

    /// A caller whose request carries no credentials: the user its web session names, else
    /// the user its verified client certificate stands for, else anonymous.
    pub(crate) fn without_credentials(
        session_user: Option<&str>,
        transport: &Transport,
        client: Option<IpAddr>,
    ) -> Self {
        let principal = match session_user {
            Some(user) => Principal::user(user.to_owned()),
            None => certificate_principal(transport).unwrap_or_else(Principal::anonymous),
        };
        Self { principal, client }
    }
}

/// The user a verified client certificate stands for ([`crate::tls`]'s `client_users`).
fn certificate_principal(transport: &Transport) -> Option<Principal> {
    transport.client_cert_user.as_ref().map(|user| Principal::user(user.to_string()))
}

/// What a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing (health, the token endpoint).
    Public,
    /// Any established identity or a token (`/v2/`).
    Authenticated,
    /// A listing: anyone, filtered to what they may pull; a token needs `registry:catalog:*`.
    Listing,
    /// `/metrics`: administrators, or anyone with `public_metrics`.
    Metrics,
    /// Registry administration (garbage collection, quotas).
    Admin,
    /// A user's own personal access tokens (`registry:tokens:*` with a token).
    Tokens,
    /// Actions on repositories: (repository, action, the actions a challenge asks for).
    Repository(Vec<(String, Action, &'static str)>),
}

impl AccessControl {
    /// Access control over `auth`.
    pub fn new(auth: Authenticator) -> Self {
        Self {
            auth,
            htpasswd: None,
            rules: Mutex::new(None),
            realm: None,
            public_metrics: false,
            audit: Audit::default(),
            hashing: tokio::sync::Semaphore::new(hashing_permits()),
            credentials: OnceLock::new(),
            oidc: oidc::Issuers::default(),
        }
    }

    /// Keeps robot accounts and personal access tokens in `storage` (the registry's: every
    /// process over it sees the same ones). The first storage attached stays.
    pub fn attach(&self, storage: Arc<dyn wharf_store::Storage>) {
        let _ = self.credentials.set(Credentials::new(storage));
    }

    /// The robot accounts and personal access tokens, once attached.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.get()
    }

    /// Checks a user name and a password: a workload's OIDC token from a trusted issuer (the
    /// user name does not matter), a robot's or a personal access token's secret (one record
    /// read, a SHA-256 compared in constant time), else the user's password (bcrypt, within
    /// the failed-login limits). Also says whether this was a check worth an audit record
    /// (not answered from the cache; a credential's first use in a minute).
    pub(crate) async fn check_basic(
        &self,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> std::result::Result<(Principal, bool), Denied> {
        if self.oidc.claims(password) {
            let principal = self.check_workload(password).await?;
            let fresh = principal.credential.as_ref().is_none_or(|c| self.oidc.first_use(&c.id));
            return Ok((principal, fresh));
        }
        if let (Some(id), Some(store)) = (wharf_auth::credential::secret_id(password), self.credentials())
            && let Some(credential) = store.get(id).await.map_err(|e| Denied::BadToken(e.to_string()))?
        {
            if credential.identity().name() != user || !credential.check_secret(password) {
                return Err(Denied::BadCredentials);
            }
            let (credential, fresh) = standing(store, credential)?;
            return Ok((Principal::of_credential(credential), fresh));
        }
        let (identity, fresh) = self.check_login(user, password, client).await?;
        Ok((Principal::from(identity), fresh))
    }

    /// The workload a trusted issuer's OIDC token signs in: its grants are the issuer's
    /// claim rules' that match it.
    pub(crate) async fn check_workload(&self, token: &str) -> std::result::Result<Principal, Denied> {
        let workload = self.oidc.verify(token).await.map_err(|r| Denied::BadToken(r.to_string()))?;
        let credential = wharf_auth::Credential::workload(workload, crate::clock::now_secs());
        Ok(Principal::of_credential(Arc::new(credential)))
    }

    /// How many times the keys of the OIDC issuer `url` were fetched (`None`: not trusted).
    pub fn oidc_key_fetches(&self, url: &str) -> Option<u64> {
        self.oidc.fetches(url)
    }

    /// A token's principal with the credential it was issued to, read now: refused when that
    /// credential is gone, disabled or expired.
    async fn check_credential(&self, mut principal: Principal) -> std::result::Result<Principal, Denied> {
        let Some(id) = principal.token.as_ref().and_then(|c| c.wharf_cred.clone()) else {
            return Ok(principal);
        };
        let store = self.credentials().ok_or_else(|| Denied::BadToken("no credentials here".into()))?;
        let credential = store
            .get(&id)
            .await
            .map_err(|e| Denied::BadToken(e.to_string()))?
            .ok_or_else(|| Denied::BadToken("the credential was deleted".into()))?;
        principal.credential = Some(standing(store, credential)?.0);
        Ok(principal)
    }

    /// Checks a password within the failed-login limits: the user's slow-down waited out
    /// asynchronously, bcrypt on the blocking pool with at most [`hashing_permits`] at once.
    /// Also says whether the password was checked for real (not from the cache).
    pub(crate) async fn check_login(
        &self,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> std::result::Result<(Identity, bool), Denied> {
        let check = match self.auth.begin_login(user, password, client)? {
            wharf_auth::Attempt::Known(identity) => return Ok((identity, false)),
            wharf_auth::Attempt::Check(check) => check,
        };
        if !check.delay().is_zero() {
            tokio::time::sleep(check.delay()).await;
        }
        let permit = self.hashing.acquire().await.map_err(|_| Denied::BadCredentials)?;
        let (check, ok) = tokio::task::spawn_blocking(move || {
            let ok = check.verify();
            (check, ok)
        })
        .await
        .map_err(|_| Denied::BadCredentials)?;
        drop(permit);
        self.auth.end_login(check, ok)
    }

    /// From `[auth]` and `[[access]]`: paths relative to `base`, a token key kept in
    /// `data_dir` unless one is configured.
    pub fn from_config(
        config: &AuthConfig,
        rules: &[AccessRule],
        base: &Path,
        data_dir: Option<&Path>,
    ) -> Result<Self> {
        let bad = |m: String| Error::BadRequest(m);
        let htpasswd = config.htpasswd.as_ref().map(|p| base.join(p));
        let users = match &htpasswd {
            Some(path) => read_htpasswd(path)?,
            None => Htpasswd::default(),
        };
        let policy = policy(config, rules)?;
        let algorithm = match config.token_algorithm.as_deref() {
            None | Some("ES256") => wharf_auth::Algorithm::ES256,
            Some("EdDSA") => wharf_auth::Algorithm::EdDSA,
            Some(other) => {
                return Err(bad(format!("[auth] token_algorithm `{other}`: expected ES256 or EdDSA")));
            }
        };
        let key_path = match (&config.token_key, data_dir) {
            (Some(p), _) => Some(base.join(p)),
            (None, Some(dir)) => Some(dir.join("auth/token.key")),
            (None, None) => None,
        };
        let key = if let Some(path) = &key_path {
            token_key(path, algorithm)?
        } else {
            tracing::warn!(
                "no token_key configured and no data directory: tokens are signed with a key of this run only"
            );
            wharf_auth::SigningKey::generate(algorithm).map_err(|e| bad(e.to_string()))?
        };
        let service = config.service.clone().unwrap_or_else(|| "wharf".to_owned());
        let mut tokens = wharf_auth::TokenService::new(
            key,
            config.issuer.clone().unwrap_or_else(|| "wharf".to_owned()),
            service.clone(),
        );
        let duration = |key: &str, v: &Option<String>, default: Duration| match v {
            Some(s) => parse_duration(s).map_err(|e| bad(format!("[auth] {key}: {e}"))),
            None => Ok(default),
        };
        tokens.ttl = duration("token_ttl", &config.token_ttl, tokens.ttl)?;
        tokens.refresh_ttl = duration("refresh_ttl", &config.refresh_ttl, tokens.refresh_ttl)?;
        if let Some(ext) = &config.external {
            let path = base.join(&ext.keys);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| bad(format!("[auth.external] keys {}: {e}", path.display())))?;
            let keys = if text.trim_start().starts_with('{') {
                wharf_auth::VerifyingKey::from_jwks(&text)
            } else {
                wharf_auth::VerifyingKey::from_pem(&text)
            }
            .map_err(|e| bad(format!("[auth.external] keys {}: {e}", path.display())))?;
            tokens = tokens.with_external(wharf_auth::External {
                issuer: ext.issuer.clone(),
                audience: ext.audience.clone().unwrap_or_else(|| service.clone()),
                keys,
                map_users: ext.map_users,
            });
        }
        let auth = Authenticator::new(users, policy, tokens).with_limits(
            config.max_failed_logins.unwrap_or(5),
            config.max_failed_logins_per_address.unwrap_or(30),
            Duration::from_secs(60),
        );
        let mut access = Self::new(auth);
        access.htpasswd = htpasswd.map(|path| Watched::new(vec![path]));
        access.realm.clone_from(&config.realm);
        access.public_metrics = config.public_metrics;
        access.oidc = oidc::Issuers::from_config(&config.oidc, base)?;
        if let Some(path) = &config.audit_log {
            access.audit = Audit::to_file(&base.join(path))?;
        }
        Ok(access)
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Reads `[auth] groups` and the `[[access]]` rules again from `path` with `read` when
    /// the file changes (and on a forced reload). Other settings need a restart.
    pub fn watch_rules(&self, path: &Path, read: impl Fn(&Path) -> Result<Rules> + Send + Sync + 'static) {
        let file = Watched::new(vec![path.to_path_buf()]);
        *self.rules.lock().expect("lock") = Some(Arc::new(WatchedRules { file, read: Box::new(read) }));
    }

    /// Reads the htpasswd file, and the watched rules, again if they changed (or always, with
    /// `force`); a file that does not read keeps what is in force and returns the error.
    pub fn reload(&self, force: bool) -> Result<bool> {
        let rules = self.reload_rules(force)?;
        let Some(htpasswd) = &self.htpasswd else { return Ok(rules) };
        match htpasswd.reread(force, false, |paths| read_htpasswd(&paths[0]))? {
            Some(users) => {
                self.auth.set_users(users);
                Ok(true)
            }
            None => Ok(rules),
        }
    }

    fn reload_rules(&self, force: bool) -> Result<bool> {
        let Some(watched) = self.rules.lock().expect("lock").clone() else { return Ok(false) };
        // Marked read first: a broken file is reported once, not every two seconds.
        let Some((auth, rules)) = watched.file.reread(force, true, |paths| (watched.read)(&paths[0]))? else {
            return Ok(false);
        };
        self.auth.set_policy(policy(&auth, &rules)?);
        tracing::info!(path = %watched.file.paths()[0].display(), rules = rules.len(), "access rules reloaded");
        Ok(true)
    }

    /// Sets the token endpoint's URL (`[auth] realm`, or `<public URL>/token`).
    #[must_use]
    pub fn with_realm(mut self, realm: String) -> Self {
        self.realm = Some(realm);
        self
    }

    /// The token endpoint URL for a request: the configured realm; else the request's
    /// `Host` only when it names loopback or the very address the connection reached, else
    /// that address (a client's `Host` never sends other clients' credentials elsewhere).
    fn realm(&self, headers: &HeaderMap, transport: &Transport) -> String {
        if let Some(realm) = &self.realm {
            return realm.clone();
        }
        // HTTP/2 carries the host in `:authority`, which the listener copies to `Host`.
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| {
            crate::listener::valid_host(h)
                && (crate::listener::is_loopback_host(h)
                    || transport.local.is_some_and(|local| crate::listener::is_address(h, local)))
        });
        let host = match (host, transport.local) {
            (Some(host), _) => host.to_owned(),
            (None, Some(local)) => crate::listener::authority_of(local),
            (None, None) => "localhost".to_owned(),
        };
        format!("{}://{host}/token", if transport.tls { "https" } else { "http" })
    }

    fn challenge(
        &self,
        headers: &HeaderMap,
        transport: &Transport,
        scope: Option<&str>,
        error: Option<&str>,
    ) -> String {
        let mut c = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm(headers, transport),
            self.auth.tokens().service
        );
        if let Some(scope) = scope {
            c.push_str(",scope=\"");
            c.push_str(scope);
            c.push('"');
        }
        if let Some(error) = error {
            c.push_str(",error=\"");
            c.push_str(error);
            c.push('"');
        }
        c
    }

    /// Who the request comes from: its `Authorization` (Basic or Bearer), else its client
    /// certificate, else anonymous.
    pub(crate) async fn identify(
        &self,
        headers: &HeaderMap,
        client: Option<IpAddr>,
        transport: &Transport,
    ) -> std::result::Result<(Principal, bool), Denied> {
        match presented(headers) {
            Some(Presented::Basic(user, password)) => {
                let login = self.check_basic(&user, &password, client).await;
                match login {
                    Ok((principal, fresh)) => {
                        if fresh {
                            // A workload by its name and its token's claims.
                            let claims =
                                principal.credential.as_ref().filter(|c| !c.claims.is_empty()).map_or(
                                    serde_json::Value::Null,
                                    |c| serde_json::json!({ "claims": c.claims }),
                                );
                            self.audit.login(principal.identity.name(), client, "basic", Ok(()), claims);
                        }
                        Ok((principal, true))
                    }
                    Err(denied) => {
                        // Attempts refused by the failed-login limit are not checked, and not
                        // recorded one by one (a flood would fill the audit log).
                        if !matches!(denied, Denied::TooMany(_)) {
                            let outcome = Err(denied.to_string());
                            self.audit.login(&user, client, "basic", outcome, serde_json::Value::Null);
                        }
                        Err(denied)
                    }
                }
            }
            Some(Presented::Bearer(token)) => {
                Ok((self.check_credential(self.auth.bearer(&token)?).await?, true))
            }
            Some(Presented::Malformed) => Err(Denied::BadCredentials),
            None => Ok(match certificate_principal(transport) {
                Some(principal) => (principal, true),
                None => (Principal::anonymous(), false),
            }),
        }
    }

    /// Decides a request: the caller when it may go on, the 401, 403 or 429 otherwise (with
    /// who was refused, when known).
    pub(crate) async fn authorize(
        &self,
        need: &Need,
        headers: &HeaderMap,
        client: Option<IpAddr>,
        transport: &Transport,
    ) -> std::result::Result<Principal, (Error, String)> {
        let unknown = |e: Error| (e, "-".to_owned());
        if *need == Need::Public {
            return Ok(Principal::anonymous());
        }
        let (principal, presented) = match self.identify(headers, client, transport).await {
            Ok(p) => p,
            Err(Denied::TooMany(after)) => {
                return Err(unknown(Error::TooManyRequests {
                    message: Denied::TooMany(after).to_string(),
                    retry_after: after.as_secs().max(1),
                }));
            }
            Err(denied) => {
                let error = matches!(denied, Denied::BadToken(_)).then_some("invalid_token");
                let scope = Self::need_scope(need);
                return Err(unknown(Error::Unauthorized {
                    message: denied.to_string(),
                    challenge: Some(self.challenge(headers, transport, scope.as_deref(), error)),
                }));
            }
        };
        let name = principal.identity.name().to_owned();
        self.decide(need, headers, transport, principal, presented).map_err(|e| (e, name))
    }

    fn need_scope(need: &Need) -> Option<String> {
        match need {
            Need::Repository(items) => Some(scope_of(items)),
            Need::Listing => Some("registry:catalog:*".to_owned()),
            Need::Admin | Need::Metrics => Some("registry:admin:*".to_owned()),
            Need::Tokens => Some("registry:tokens:*".to_owned()),
            _ => None,
        }
    }

    fn decide(
        &self,
        need: &Need,
        headers: &HeaderMap,
        transport: &Transport,
        principal: Principal,
        presented: bool,
    ) -> Result<Principal> {
        let scope = Self::need_scope(need);
        let unauthorized = |message: String| Error::Unauthorized {
            message,
            challenge: Some(self.challenge(headers, transport, scope.as_deref(), None)),
        };
        let anonymous = principal.identity == Identity::Anonymous;
        match need {
            Need::Public => Ok(principal),
            Need::Authenticated if presented => Ok(principal),
            Need::Authenticated => Err(unauthorized("authentication required".into())),
            Need::Listing => match &principal.token {
                Some(claims) if !claims.allows("registry", "catalog", "*") => {
                    Err(unauthorized("the token does not grant registry:catalog:*".into()))
                }
                _ => Ok(principal),
            },
            Need::Tokens if self.auth.mints_tokens(&principal) => Ok(principal),
            // No one, or a user's token without the scope: a 401 names the scope to ask for.
            Need::Tokens if anonymous || (principal.credential.is_none() && principal.token.is_some()) => {
                Err(unauthorized("a token for registry:tokens:* is required".into()))
            }
            Need::Tokens => Err(Error::Denied {
                message: "personal access tokens are made by users, not through another token".into(),
                challenge: None,
            }),
            Need::Metrics if self.public_metrics => Ok(principal),
            Need::Admin | Need::Metrics if self.auth.is_admin(&principal) => Ok(principal),
            Need::Admin | Need::Metrics if anonymous => Err(unauthorized("authentication required".into())),
            Need::Admin | Need::Metrics
                if principal.token.is_some()
                    && principal.credential.is_none()
                    && self.auth.policy().is_admin(&principal.identity) =>
            {
                let challenge =
                    self.challenge(headers, transport, scope.as_deref(), Some("insufficient_scope"));
                Err(Error::Denied {
                    message: "the token does not grant registry:admin:*: ask for a token with this scope"
                        .into(),
                    challenge: Some(challenge),
                })
            }
            Need::Admin | Need::Metrics => Err(Error::Denied {
                message: format!("`{}` is not an administrator", principal.identity.name()),
                challenge: None,
            }),
            Need::Repository(items) => {
                let Some((repo, action, _)) =
                    items.iter().find(|(r, a, _)| !self.auth.can(&principal, r, *a))
                else {
                    return Ok(principal);
                };
                let who = principal.identity.name();
                let Some(claims) = &principal.token else {
                    return Err(if anonymous {
                        unauthorized(format!("authentication required to {action} {repo}"))
                    } else {
                        Error::Denied { message: format!("`{who}` may not {action} {repo}"), challenge: None }
                    });
                };
                // A token: an external issuer's, or an anonymous one, that lacks the scope
                // asks for other credentials (401). Ours for a user answers 403 with the
                // challenge and `insufficient_scope` (RFC 6750), so a client that holds one
                // token at a time (oras-py) fetches a new one for this scope.
                if anonymous || claims.iss != self.auth.tokens().issuer {
                    return Err(unauthorized(format!("authentication required to {action} {repo}")));
                }
                let policy_allows =
                    items.iter().all(|(r, a, _)| self.auth.rights(&principal, r).contains(*a));
                let message = if policy_allows {
                    format!("the token does not grant {action} on {repo}: ask for a token with this scope")
                } else {
                    format!("`{who}` may not {action} {repo}")
                };
                let challenge =
                    self.challenge(headers, transport, scope.as_deref(), Some("insufficient_scope"));
                Err(Error::Denied { message, challenge: Some(challenge) })
            }
        }
    }

    /// Whether `principal` may do `action` on `repository`.
    pub(crate) fn can(&self, principal: &Principal, repository: &str, action: wharf_auth::Action) -> bool {
        self.auth.can(principal, repository, action)
    }

    /// Checks a user name and password (the web page's login form), with the failed-login
    /// limit and the audit log of a Basic login.
    pub(crate) async fn login(
        &self,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> std::result::Result<Principal, Denied> {
        let result = self.check_login(user, password, client).await;
        let outcome = match &result {
            Ok(_) => Ok(()),
            Err(Denied::TooMany(_)) => {
                return result.map(|(identity, _)| Principal::from(identity));
            }
            Err(denied) => Err(denied.to_string()),
        };
        self.audit.login(user, client, "web", outcome, serde_json::Value::Null);
        result.map(|(identity, _)| Principal::from(identity))
    }

    /// Whether `principal` sees `repository` in listings and may mount from it: it may
    /// pull it (by the policy, or by its token).
    pub(crate) fn visible(&self, principal: &Principal, repository: &str) -> bool {
        self.auth.visible(principal, repository)
    }

    /// Whether `principal` administers the registry.
    pub(crate) fn is_admin(&self, principal: &Principal) -> bool {
        self.auth.is_admin(principal)
    }
}

/// A credential that still lets its holder in (not disabled, not expired), its use noted;
/// whether the use was written now (a use worth an audit record).
fn standing(
    store: &Credentials,
    credential: wharf_auth::Credential,
) -> std::result::Result<(Arc<wharf_auth::Credential>, bool), Denied> {
    credential.usable(crate::clock::now_secs()).map_err(|why| Denied::BadToken(why.to_string()))?;
    let fresh = store.used(&credential.id);
    Ok((Arc::new(credential), fresh))
}

/// The policy of `[auth] groups` and the `[[access]]` rules: every authenticated user may do
/// everything when there is no rule.
fn policy(config: &AuthConfig, rules: &[AccessRule]) -> Result<Policy> {
    let bad = |m: String| Error::BadRequest(m);
    if rules.is_empty() {
        return Ok(Policy::authenticated_all());
    }
    let mut out = Vec::new();
    for (n, rule) in rules.iter().enumerate() {
        let repositories = wharf_auth::Pattern::parse_list(&rule.repositories)
            .map_err(|e| bad(format!("[[access]] rule {}: {e}", n + 1)))?;
        let set = |a: &[Action]| wharf_auth::Actions::of(a);
        out.push(Rule {
            repositories,
            anonymous: set(&rule.anonymous),
            users: rule.users.iter().map(|(u, a)| (u.clone(), set(a))).collect(),
            groups: rule.groups.iter().map(|(g, a)| (g.clone(), set(a))).collect(),
        });
    }
    Ok(Policy::new(out, &config.groups))
}

fn scope_of(items: &[(String, Action, &'static str)]) -> String {
    let mut scopes: Vec<String> = Vec::new();
    for (repo, _, actions) in items {
        let s = format!("repository:{repo}:{actions}");
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    scopes.join(" ")
}

/// What a request's `Authorization` presents.
enum Presented {
    Basic(String, String),
    Bearer(String),
    Malformed,
}

fn presented(headers: &HeaderMap) -> Option<Presented> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(text) = value.to_str() else { return Some(Presented::Malformed) };
    let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(basic(rest.trim()).map_or(Presented::Malformed, |(u, p)| Presented::Basic(u, p)));
    }
    if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
        return Some(Presented::Bearer(rest.trim().to_owned()));
    }
    Some(Presented::Malformed)
}

/// Decodes base64 `user:password`.
pub(crate) fn basic(encoded: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn read_htpasswd(path: &Path) -> Result<Htpasswd> {
    match std::fs::read_to_string(path) {
        Ok(text) => Htpasswd::parse(&text).map_err(|e| Error::BadRequest(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(
                path = %path.display(),
                "the htpasswd file does not exist yet: no user can log in until `wharf-server user add` creates it"
            );
            Ok(Htpasswd::default())
        }
        Err(e) => Err(Error::BadRequest(format!("{}: {e}", path.display()))),
    }
}

/// Loads the token signing key at `path`, or creates it (mode 0600) when missing.
fn token_key(path: &Path, algorithm: wharf_auth::Algorithm) -> Result<wharf_auth::SigningKey> {
    let bad = |m: String| Error::BadRequest(format!("token key {}: {m}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(pem) => wharf_auth::SigningKey::from_pem(&pem).map_err(|e| bad(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = wharf_auth::SigningKey::generate(algorithm).map_err(|e| bad(e.to_string()))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
            }
            write_private(path, key.to_pem().as_bytes()).map_err(|e| bad(e.to_string()))?;
            tracing::info!(path = %path.display(), kid = key.kid(), "created a token signing key");
            Ok(key)
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Writes a file readable by its owner only, atomically (a temporary file renamed): how
/// htpasswd files and keys are written.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
