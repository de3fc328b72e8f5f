//! The [`Authenticator`]: users (a reloadable htpasswd file), the policy, the token service,
//! failed-login limits and a short cache of verified passwords, together.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq as _;

use crate::htpasswd::Htpasswd;
use crate::limiter::FailureLimiter;
use crate::policy::{Action, Identity, Policy};
use crate::scope::Scope;
use crate::token::{Claims, TokenService};

/// How long a verified password is remembered (so bcrypt is paid once per minute, not per
/// request).
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(60);
const MAX_CACHED: usize = 10_000;
/// Verified tokens remembered (by the SHA-256 of the token) until they expire, so a signature
/// is checked once per token, not once per request.
const MAX_TOKENS: usize = 10_000;

/// Who a request is, as established from its credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The identity.
    pub identity: Identity,
    /// The token it presented, if any: then the token's grants decide.
    pub token: Option<Arc<Claims>>,
}

impl Principal {
    /// A caller without credentials.
    pub fn anonymous() -> Self {
        Self { identity: Identity::Anonymous, token: None }
    }

    /// A user established otherwise (a password, a client certificate).
    pub fn user(name: impl Into<String>) -> Self {
        Self { identity: Identity::User(name.into()), token: None }
    }
}

/// Why credentials were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// A wrong user or password.
    BadCredentials,
    /// A token that does not verify (the reason).
    BadToken(String),
    /// Too many failures: try again after this long.
    TooMany(Duration),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadCredentials => f.write_str("invalid username or password"),
            Self::BadToken(why) => write!(f, "invalid token: {why}"),
            Self::TooMany(d) => write!(f, "too many failed logins: retry in {} s", d.as_secs().max(1)),
        }
    }
}

struct Cached {
    digest: [u8; 32],
    until: Instant,
    generation: u64,
}

/// Users, policy and tokens.
pub struct Authenticator {
    users: RwLock<(Arc<Htpasswd>, u64)>,
    policy: RwLock<Arc<Policy>>,
    tokens: TokenService,
    cache: Mutex<HashMap<String, Cached>>,
    tokens_seen: Mutex<HashMap<[u8; 32], Arc<Claims>>>,
    salt: [u8; 16],
    by_user: FailureLimiter,
    by_address: FailureLimiter,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.read().expect("lock").0.len())
            .field("policy", &self.policy())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Users from `users`, permissions from `policy`, tokens from `tokens`; at most 5 failed
    /// logins per user and 30 per client address a minute.
    pub fn new(users: Htpasswd, policy: Policy, tokens: TokenService) -> Self {
        Self {
            users: RwLock::new((Arc::new(users), 0)),
            policy: RwLock::new(Arc::new(policy)),
            tokens,
            cache: Mutex::new(HashMap::new()),
            tokens_seen: Mutex::new(HashMap::new()),
            salt: *uuid::Uuid::new_v4().as_bytes(),
            by_user: FailureLimiter::new(5, Duration::from_secs(60)),
            by_address: FailureLimiter::new(30, Duration::from_secs(60)),
        }
    }

    /// Other failed-login limits (per user, per address, and the window).
    #[must_use]
    pub fn with_limits(mut self, per_user: u32, per_address: u32, window: Duration) -> Self {
        self.by_user = FailureLimiter::new(per_user, window);
        self.by_address = FailureLimiter::new(per_address, window);
        self
    }

    /// Replaces the users (a reloaded htpasswd file); cached passwords are forgotten.
    pub fn set_users(&self, users: Htpasswd) {
        let mut guard = self.users.write().expect("lock");
        guard.1 += 1;
        guard.0 = Arc::new(users);
        self.cache.lock().expect("lock").clear();
    }

    /// The users now in force.
    pub fn users(&self) -> Arc<Htpasswd> {
        Arc::clone(&self.users.read().expect("lock").0)
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().expect("lock"))
    }

    /// Replaces the policy (a reloaded configuration); requests already authorised keep the
    /// decision they got.
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.write().expect("lock") = Arc::new(policy);
    }

    /// The token service.
    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Checks a user's password, within the failed-login limits.
    pub fn login(&self, user: &str, password: &str, client: Option<IpAddr>) -> Result<Identity, Denied> {
        self.login_checked(user, password, client).map(|(identity, _)| identity)
    }

    /// [`login`](Self::login), also saying whether the password was checked for real (not
    /// answered from the cache): a login worth an audit record.
    pub fn login_checked(
        &self,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<(Identity, bool), Denied> {
        let address = client.map(|a| a.to_string());
        self.by_user.check(user).map_err(Denied::TooMany)?;
        if let Some(a) = &address {
            self.by_address.check(a).map_err(Denied::TooMany)?;
        }
        let (users, generation) = {
            let guard = self.users.read().expect("lock");
            (Arc::clone(&guard.0), guard.1)
        };
        let digest = self.digest(user, password);
        let cached = self.cache.lock().expect("lock").get(user).is_some_and(|c| {
            c.generation == generation && c.until > Instant::now() && bool::from(c.digest.ct_eq(&digest))
        });
        if cached || users.verify(user, password) {
            if !cached {
                let mut cache = self.cache.lock().expect("lock");
                if cache.len() >= MAX_CACHED {
                    let now = Instant::now();
                    cache.retain(|_, c| c.until > now);
                }
                if cache.len() < MAX_CACHED {
                    cache.insert(
                        user.to_owned(),
                        Cached { digest, until: Instant::now() + CREDENTIAL_CACHE_TTL, generation },
                    );
                }
                self.by_user.clear(user);
            }
            return Ok((Identity::User(user.to_owned()), !cached));
        }
        self.by_user.fail(user);
        if let Some(a) = &address {
            self.by_address.fail(a);
        }
        Err(Denied::BadCredentials)
    }

    /// Checks a bearer token (its signature once; then until it expires, from memory).
    pub fn bearer(&self, token: &str) -> Result<Principal, Denied> {
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = crate::token::now();
        let fresh = |c: &Claims| c.exp + crate::token::LEEWAY.as_secs() > now;
        let seen = self.tokens_seen.lock().expect("lock").get(&key).filter(|c| fresh(c)).cloned();
        let claims = if let Some(claims) = seen {
            claims
        } else {
            let claims =
                Arc::new(self.tokens.verify_access(token).map_err(|e| Denied::BadToken(token_reason(&e)))?);
            let mut seen = self.tokens_seen.lock().expect("lock");
            if seen.len() >= MAX_TOKENS {
                seen.retain(|_, c| fresh(c));
            }
            if seen.len() < MAX_TOKENS {
                seen.insert(key, Arc::clone(&claims));
            }
            claims
        };
        let identity =
            if claims.sub.is_empty() { Identity::Anonymous } else { Identity::User(claims.sub.clone()) };
        Ok(Principal { identity, token: Some(claims) })
    }

    /// Whether `principal` may do `action` to `repository`: the token's grants when it
    /// presented one, the policy otherwise.
    pub fn can(&self, principal: &Principal, repository: &str, action: Action) -> bool {
        match &principal.token {
            Some(claims) => claims
                .access
                .iter()
                .any(|s| s.is_repository() && s.name == repository && s.allows(action.as_str())),
            None => self.policy().actions(&principal.identity, repository).contains(action),
        }
    }

    /// Whether `principal` sees `repository` in listings: it may pull it, by the policy or
    /// by its token.
    pub fn visible(&self, principal: &Principal, repository: &str) -> bool {
        self.policy().actions(&principal.identity, repository).contains(Action::Pull)
            || principal.token.as_ref().is_some_and(|c| c.allows("repository", repository, "pull"))
    }

    /// Whether `principal` administers the registry.
    pub fn is_admin(&self, principal: &Principal) -> bool {
        self.policy().is_admin(&principal.identity)
    }

    /// What a token for `identity` grants of `requested`: for each repository scope, the
    /// actions asked for that the policy gives; the catalog to everyone (listings are
    /// filtered); nothing else.
    pub fn grant(&self, identity: &Identity, requested: &[Scope]) -> Vec<Scope> {
        let mut granted: Vec<Scope> = Vec::new();
        for scope in requested {
            let actions: Vec<String> = if scope.is_repository() {
                if scope.name.parse::<wharf_types::Repository>().is_err() {
                    continue;
                }
                let held = self.policy().actions(identity, &scope.name);
                let wanted = |a: Action| scope.allows(a.as_str()) && held.contains(a);
                Action::ALL.into_iter().filter(|a| wanted(*a)).map(|a| a.as_str().to_owned()).collect()
            } else if scope.kind == "registry" && scope.name == "catalog" && scope.allows("*") {
                vec!["*".to_owned()]
            } else {
                Vec::new()
            };
            if actions.is_empty() {
                continue;
            }
            match granted.iter_mut().find(|g| g.kind == scope.kind && g.name == scope.name) {
                Some(g) => {
                    for a in actions {
                        if !g.actions.contains(&a) {
                            g.actions.push(a);
                        }
                    }
                }
                None => granted.push(Scope { kind: scope.kind.clone(), name: scope.name.clone(), actions }),
            }
        }
        granted
    }

    /// Checks a refresh token: it verifies, its user still exists with the same password.
    pub fn refresh(&self, token: &str) -> Result<Identity, Denied> {
        let claims = self.tokens.verify_refresh(token).map_err(|e| Denied::BadToken(token_reason(&e)))?;
        let users = self.users();
        if claims.wharf_fp.is_none() || users.fingerprint(&claims.sub) != claims.wharf_fp {
            return Err(Denied::BadToken("the user or their password changed".into()));
        }
        Ok(Identity::User(claims.sub))
    }

    /// A refresh token for `user` (bound to their current password).
    pub fn refresh_token_for(&self, user: &str) -> Option<String> {
        let fp = self.users().fingerprint(user)?;
        self.tokens.issue_refresh(user, &fp).ok()
    }
}

fn token_reason(e: &crate::Error) -> String {
    match e {
        crate::Error::Token(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{Algorithm, SigningKey};

    fn authenticator() -> Authenticator {
        let mut users = Htpasswd::default();
        users.set("alice", "wonderland", 4).expect("hash");
        let tokens =
            TokenService::new(SigningKey::generate(Algorithm::ES256).expect("key"), "wharf", "registry");
        Authenticator::new(users, Policy::authenticated_all(), tokens).with_limits(
            3,
            10,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn logins_cache_and_limits() {
        let auth = authenticator();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(auth.login("alice", "wonderland", Some(ip)), Ok(Identity::User("alice".into())));
        assert_eq!(auth.login("alice", "wonderland", Some(ip)), Ok(Identity::User("alice".into())), "cached");
        for _ in 0..3 {
            assert_eq!(auth.login("alice", "guess", Some(ip)), Err(Denied::BadCredentials));
        }
        assert!(
            matches!(auth.login("alice", "wonderland", Some(ip)), Err(Denied::TooMany(_))),
            "the user is blocked, even with the right password"
        );
        // A password change forgets the cache.
        let mut users = Htpasswd::default();
        users.set("alice", "new", 4).expect("hash");
        auth.set_users(users);
        assert!(auth.login("carol", "x", None).is_err());
    }

    #[test]
    fn grants_are_the_intersection() {
        let auth = authenticator();
        let alice = Identity::User("alice".into());
        let asked = Scope::parse_list("repository:a:pull,push,frobnicate repository:a:delete registry:catalog:* repository:BAD:pull other:x:y").expect("parses");
        let granted = auth.grant(&alice, &asked);
        assert_eq!(granted, vec![Scope::repository("a", &["pull", "push", "delete"]), Scope::catalog()]);
        assert_eq!(auth.grant(&Identity::Anonymous, &asked), vec![Scope::catalog()]);
        let issued = auth.tokens().issue(Some("alice"), granted).expect("issues");
        let principal = auth.bearer(&issued.token).expect("valid");
        assert!(auth.can(&principal, "a", Action::Push));
        assert!(!auth.can(&principal, "b", Action::Pull), "the token decides, not the policy");
        assert!(auth.visible(&principal, "b"), "listings follow the policy");
    }

    #[test]
    fn refresh_tokens_die_with_the_password() {
        let auth = authenticator();
        let token = auth.refresh_token_for("alice").expect("a user");
        assert_eq!(auth.refresh(&token), Ok(Identity::User("alice".into())));
        let mut users = Htpasswd::default();
        users.set("alice", "changed", 4).expect("hash");
        auth.set_users(users);
        assert!(auth.refresh(&token).is_err());
    }
}
