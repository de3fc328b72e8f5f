//! The [`Authenticator`]: users (a reloadable htpasswd file), the policy, the token service,
//! failed-login limits and a short cache of verified passwords, together.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq as _;

use crate::credential::{Credential, ROBOT_PREFIX};
use crate::htpasswd::Htpasswd;
use crate::limiter::{FailureLimiter, address_key};
use crate::policy::{Action, Actions, Identity, Policy};
use crate::scope::Scope;
use crate::token::{Claims, TokenService};

/// How long a verified password is remembered (so bcrypt is paid once per minute, not per
/// request).
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(60);
const MAX_CACHED: usize = 10_000;
/// Verified tokens remembered (by the SHA-256 of the token) until they expire, so a signature
/// is checked once per token, not once per request.
const MAX_TOKENS: usize = 10_000;

/// How long each failure of a user beyond its limit delays the next check of its password
/// (from any address), doubling per failure up to [`MAX_SLOW_DOWN`].
pub const SLOW_DOWN_STEP: Duration = Duration::from_millis(250);
/// The longest a password check is delayed.
pub const MAX_SLOW_DOWN: Duration = Duration::from_secs(8);

/// Who a request is, as established from its credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The identity.
    pub identity: Identity,
    /// The token it presented, if any: then the token's grants decide.
    pub token: Option<Arc<Claims>>,
    /// The robot account or personal access token it signed in with (or its token was issued
    /// to), if any: its grants bound what the identity may do.
    pub credential: Option<Arc<Credential>>,
}

impl Principal {
    /// A caller without credentials.
    pub fn anonymous() -> Self {
        Self::from(Identity::Anonymous)
    }

    /// A user established otherwise (a password, a client certificate).
    pub fn user(name: impl Into<String>) -> Self {
        Self::from(Identity::User(name.into()))
    }

    /// The holder of `credential` (a robot, or a personal token's owner).
    pub fn of_credential(credential: Arc<Credential>) -> Self {
        Self { identity: credential.identity(), token: None, credential: Some(credential) }
    }
}

impl From<Identity> for Principal {
    /// An identity without a token or a credential (a password login, for one).
    fn from(identity: Identity) -> Self {
        Self { identity, token: None, credential: None }
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
    /// Failures of a user from one address: at the limit, that address is refused for the user.
    by_login: FailureLimiter,
    /// Failures from one address (an IPv6 /64) whatever the user: at the limit, refused.
    by_address: FailureLimiter,
    /// Failures of a user from anywhere: beyond `slow_after`, checks are delayed, never refused
    /// (so no one can lock a user out by failing in their name).
    by_user: FailureLimiter,
    slow_after: u32,
}

/// A login that got past the limits: the password is still to be checked, with bcrypt,
/// after [`delay`](Self::delay). [`verify`](Self::verify) blocks (tens of milliseconds):
/// run it where blocking is allowed, then hand the result to
/// [`Authenticator::end_login`]. An attempt dropped unfinished counts as a failure.
pub struct Check {
    user: String,
    password: String,
    users: Arc<Htpasswd>,
    generation: u64,
    digest: [u8; 32],
    address: Option<IpAddr>,
    delay: Duration,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").field("user", &self.user).field("delay", &self.delay).finish_non_exhaustive()
    }
}

impl Check {
    /// How long to wait before checking (the user's slow-down).
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Checks the password with bcrypt (blocking; an unknown user costs what a real entry
    /// of the file costs).
    pub fn verify(&self) -> bool {
        self.users.verify(&self.user, &self.password)
    }
}

/// The first step of a login.
#[derive(Debug)]
pub enum Attempt {
    /// The password was verified within [`CREDENTIAL_CACHE_TTL`]: no check needed.
    Known(Identity),
    /// The password must be checked.
    Check(Check),
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
            by_login: FailureLimiter::new(5, Duration::from_secs(60)),
            by_address: FailureLimiter::new(30, Duration::from_secs(60)),
            by_user: FailureLimiter::new(u32::MAX, Duration::from_secs(60)),
            slow_after: 5,
        }
    }

    /// Other failed-login limits: `per_user` failures of a user from one address (then that
    /// address is refused for the user, and the user's checks from anywhere slow down),
    /// `per_address` failures from one address (then it is refused), in `window`.
    #[must_use]
    pub fn with_limits(mut self, per_user: u32, per_address: u32, window: Duration) -> Self {
        self.by_login = FailureLimiter::new(per_user, window);
        self.by_address = FailureLimiter::new(per_address, window);
        self.by_user = FailureLimiter::new(u32::MAX, window);
        self.slow_after = per_user.max(1);
        self
    }

    /// What the failed-login limits cost in memory: fixed, whatever is sent.
    pub fn limiter_bytes(&self) -> usize {
        self.by_login.bytes() + self.by_address.bytes() + self.by_user.bytes()
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

    /// Checks a user's password, within the failed-login limits (blocking: bcrypt, and the
    /// user's slow-down, on this thread).
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
        match self.begin_login(user, password, client)? {
            Attempt::Known(identity) => Ok((identity, false)),
            Attempt::Check(check) => {
                std::thread::sleep(check.delay());
                let ok = check.verify();
                self.end_login(check, ok)
            }
        }
    }

    fn login_key(user: &str, address: Option<IpAddr>) -> Vec<u8> {
        let mut key = user.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(address.map(|a| a.to_string()).unwrap_or_default().as_bytes());
        key
    }

    /// The first step of a login: the limits (a user's failures from this address, the
    /// address's failures; counted before the check, so concurrent attempts cannot pass a
    /// limit together), then the cache of verified passwords.
    pub fn begin_login(&self, user: &str, password: &str, client: Option<IpAddr>) -> Result<Attempt, Denied> {
        let address = client.map(address_key);
        let login_key = Self::login_key(user, address);
        self.by_login.reserve(&login_key).map_err(Denied::TooMany)?;
        if let Some(a) = address
            && let Err(after) = self.by_address.reserve(a.to_string().as_bytes())
        {
            self.by_login.refund(&login_key);
            return Err(Denied::TooMany(after));
        }
        let (users, generation) = {
            let guard = self.users.read().expect("lock");
            (Arc::clone(&guard.0), guard.1)
        };
        let digest = self.digest(user, password);
        let cached = self.cache.lock().expect("lock").get(user).is_some_and(|c| {
            c.generation == generation && c.until > Instant::now() && bool::from(c.digest.ct_eq(&digest))
        });
        if cached {
            self.refund(&login_key, address);
            return Ok(Attempt::Known(Identity::User(user.to_owned())));
        }
        let excess = self.by_user.failures(user.as_bytes()).saturating_sub(self.slow_after);
        let delay = if excess == 0 {
            Duration::ZERO
        } else {
            SLOW_DOWN_STEP.saturating_mul(1 << (excess - 1).min(16)).min(MAX_SLOW_DOWN)
        };
        Ok(Attempt::Check(Check {
            user: user.to_owned(),
            password: password.to_owned(),
            users,
            generation,
            digest,
            address,
            delay,
        }))
    }

    fn refund(&self, login_key: &[u8], address: Option<IpAddr>) {
        self.by_login.refund(login_key);
        if let Some(a) = address {
            self.by_address.refund(a.to_string().as_bytes());
        }
    }

    /// The last step of a login: whether [`Check::verify`] said yes. A success takes back
    /// the attempt's counts and is remembered for [`CREDENTIAL_CACHE_TTL`]; a failure stays
    /// counted, and slows the user's next checks down.
    pub fn end_login(&self, check: Check, ok: bool) -> Result<(Identity, bool), Denied> {
        let login_key = Self::login_key(&check.user, check.address);
        if !ok {
            self.by_user.fail(check.user.as_bytes());
            return Err(Denied::BadCredentials);
        }
        self.refund(&login_key, check.address);
        self.by_login.clear(&login_key);
        let mut cache = self.cache.lock().expect("lock");
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, c| c.until > now);
        }
        if cache.len() < MAX_CACHED {
            cache.insert(
                check.user.clone(),
                Cached {
                    digest: check.digest,
                    until: Instant::now() + CREDENTIAL_CACHE_TTL,
                    generation: check.generation,
                },
            );
        }
        Ok((Identity::User(check.user), true))
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
        let own = claims.iss == self.tokens.issuer;
        if own && let Some(id) = &claims.wharf_wl {
            // A workload's: its grants travel in the token (no record stands behind it).
            let workload = crate::oidc::Workload {
                name: claims.sub.clone(),
                issuer: String::new(),
                claims: std::collections::BTreeMap::new(),
                grants: claims.wharf_grants.clone(),
                expires: claims.exp,
                token_id: id.clone(),
            };
            let credential = Arc::new(Credential::workload(workload, claims.iat));
            return Ok(Principal {
                identity: credential.identity(),
                token: Some(claims),
                credential: Some(credential),
            });
        }
        let identity = if claims.sub.is_empty() {
            Identity::Anonymous
        } else if own && claims.sub.starts_with(ROBOT_PREFIX) {
            Identity::Robot(claims.sub.clone())
        } else if own || self.tokens.maps_external_users() {
            Identity::User(claims.sub.clone())
        } else {
            Identity::External(claims.sub.clone())
        };
        Ok(Principal { identity, token: Some(claims), credential: None })
    }

    /// What `principal` may do to `repository` by who it is (its token aside): the policy's
    /// actions for its identity; with a credential, those of the credential's owner (all,
    /// for a robot the operator made) within the credential's grants — never more than the
    /// owner may do now — and what anonymous callers may.
    pub fn rights(&self, principal: &Principal, repository: &str) -> Actions {
        let Some(credential) = &principal.credential else {
            return self.policy().actions(&principal.identity, repository);
        };
        let policy = self.policy();
        let owner = match &credential.owner {
            Some(owner) => policy.actions(&Identity::User(owner.clone()), repository),
            None => Actions::ALL,
        };
        // What anyone may do without credentials, a credential never takes away.
        owner
            .intersection(credential.actions(repository))
            .union(policy.actions(&Identity::Anonymous, repository))
    }

    /// Whether `principal` (a user, never through a robot or a personal access token) may
    /// hand `grant` on: it may do every action of it to every repository of its patterns,
    /// now.
    pub fn may_grant(&self, principal: &Principal, grant: &crate::credential::Grant) -> bool {
        let policy = self.policy();
        in_person(principal)
            && matches!(principal.identity, Identity::User(_))
            && grant
                .actions
                .iter()
                .all(|a| grant.repositories.iter().all(|p| policy.covers(&principal.identity, p, a)))
    }

    /// Whether `principal` may do `action` to `repository`: the token's grants when it
    /// presented one, its [`rights`](Self::rights) otherwise.
    pub fn can(&self, principal: &Principal, repository: &str, action: Action) -> bool {
        match &principal.token {
            Some(claims) => claims
                .access
                .iter()
                .any(|s| s.is_repository() && s.name == repository && s.allows(action.as_str())),
            None => self.rights(principal, repository).contains(action),
        }
    }

    /// Whether `principal` sees `repository` in listings: it may pull it, by its rights or
    /// by its token.
    pub fn visible(&self, principal: &Principal, repository: &str) -> bool {
        self.rights(principal, repository).contains(Action::Pull)
            || principal.token.as_ref().is_some_and(|c| c.allows("repository", repository, "pull"))
    }

    /// Whether `principal` administers the registry: by the policy, and, when it presented a
    /// token, only if the token grants `registry:admin:*` (a token asked for pulling one
    /// repository never runs the garbage collector). A robot or a personal access token
    /// never administers.
    pub fn is_admin(&self, principal: &Principal) -> bool {
        in_person(principal)
            && self.policy().is_admin(&principal.identity)
            && principal.token.as_ref().is_none_or(|c| c.allows("registry", "admin", "*"))
    }

    /// Whether `principal` may make, list and revoke personal access tokens of its own: a
    /// user, not through a robot or a personal access token, and with a token only if it
    /// grants `registry:tokens:*`.
    pub fn mints_tokens(&self, principal: &Principal) -> bool {
        matches!(principal.identity, Identity::User(_))
            && in_person(principal)
            && principal.token.as_ref().is_none_or(|c| c.allows("registry", "tokens", "*"))
    }

    /// What a token for `principal` grants of `requested`: for each repository scope, the
    /// actions asked for that its [`rights`](Self::rights) give; the catalog to everyone
    /// (listings are filtered); `registry:admin:*` (garbage collection, quotas, metrics) to
    /// administrators who ask for it; `registry:tokens:*` (their personal access tokens) to
    /// users who ask for it; nothing else.
    pub fn grant(&self, principal: &Principal, requested: &[Scope]) -> Vec<Scope> {
        let mut granted: Vec<Scope> = Vec::new();
        for scope in requested {
            let actions: Vec<String> = if scope.is_repository() {
                if scope.name.parse::<wharf_types::Repository>().is_err() {
                    continue;
                }
                let held = self.rights(principal, &scope.name);
                let wanted = |a: Action| scope.allows(a.as_str()) && held.contains(a);
                Action::ALL.into_iter().filter(|a| wanted(*a)).map(|a| a.as_str().to_owned()).collect()
            } else if scope.kind == "registry"
                && scope.allows("*")
                && (scope.name == "catalog"
                    || (scope.name == "admin" && self.is_admin(principal))
                    || (scope.name == "tokens" && self.mints_tokens(principal)))
            {
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

/// Whether `principal` acts as itself: not through a robot, a personal access token or a
/// workload's OIDC token, nor through a token issued to one.
fn in_person(principal: &Principal) -> bool {
    principal.credential.is_none()
        && principal.token.as_ref().is_none_or(|c| c.wharf_cred.is_none() && c.wharf_wl.is_none())
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
            "the user is blocked from this address, even with the right password"
        );
        let other: IpAddr = "198.51.100.1".parse().expect("ip");
        let started = Instant::now();
        assert_eq!(
            auth.login("alice", "wonderland", Some(other)),
            Ok(Identity::User("alice".into())),
            "another address is not refused (the user is slowed down, not locked out)"
        );
        assert!(started.elapsed() < MAX_SLOW_DOWN + Duration::from_secs(1));
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        for n in 0..3u16 {
            let neighbour = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, n, 0, 0, 1));
            assert_eq!(auth.login("bob", "x", Some(neighbour)), Err(Denied::BadCredentials));
        }
        assert!(
            matches!(auth.login("bob", "x", Some(v6)), Err(Denied::TooMany(_))),
            "an IPv6 /64 is one address"
        );
        // A password change forgets the cache.
        let mut users = Htpasswd::default();
        users.set("alice", "new", 4).expect("hash");
        auth.set_users(users);
        assert!(auth.login("carol", "x", None).is_err());
    }

    #[test]
    fn concurrent_attempts_cannot_pass_the_limit_together() {
        let auth = Arc::new(authenticator());
        let ip: IpAddr = "192.0.2.9".parse().expect("ip");
        let threads: Vec<_> = (0..24)
            .map(|_| {
                let auth = Arc::clone(&auth);
                std::thread::spawn(move || match auth.begin_login("alice", "guess", Some(ip)) {
                    Ok(Attempt::Check(check)) => {
                        let ok = check.verify();
                        let _ = auth.end_login(check, ok);
                        1
                    }
                    Ok(Attempt::Known(_)) => panic!("a wrong password is never known"),
                    Err(_) => 0,
                })
            })
            .collect();
        let checked: u32 = threads.into_iter().map(|t| t.join().expect("joins")).sum();
        assert_eq!(checked, 3, "the limit is 3");
    }

    #[test]
    fn grants_are_the_intersection() {
        let auth = authenticator();
        let alice = Identity::User("alice".into());
        let asked = Scope::parse_list("repository:a:pull,push,frobnicate repository:a:delete registry:catalog:* repository:BAD:pull other:x:y").expect("parses");
        let granted = auth.grant(&alice.clone().into(), &asked);
        assert_eq!(granted, vec![Scope::repository("a", &["pull", "push", "delete"]), Scope::catalog()]);
        assert_eq!(auth.grant(&Principal::anonymous(), &asked), vec![Scope::catalog()]);
        let admin = Scope::parse_list("registry:admin:*").expect("parses");
        assert_eq!(auth.grant(&alice.clone().into(), &admin), admin, "without rules every user administers");
        assert!(auth.grant(&Principal::anonymous(), &admin).is_empty());
        assert!(auth.grant(&Identity::External("alice".into()).into(), &admin).is_empty());
        let issued = auth.tokens().issue(Some("alice"), granted).expect("issues");
        let principal = auth.bearer(&issued.token).expect("valid");
        assert!(auth.can(&principal, "a", Action::Push));
        assert!(!auth.can(&principal, "b", Action::Pull), "the token decides, not the policy");
        assert!(auth.visible(&principal, "b"), "listings follow the policy");
    }

    #[test]
    fn credentials_never_exceed_their_grants_nor_their_owner() {
        use crate::credential::{Credential, Grant, Kind};
        use crate::policy::{Actions, Rule};
        let pattern = |s: &str| s.parse::<crate::Pattern>().expect("a pattern");
        let rule = Rule {
            repositories: vec![pattern("ci/**")],
            users: std::collections::BTreeMap::from([(
                "alice".into(),
                Actions::of(&[Action::Pull, Action::Push]),
            )]),
            ..Rule::default()
        };
        let admin = Rule {
            repositories: vec![pattern("**")],
            users: std::collections::BTreeMap::from([("root".into(), Actions::ALL)]),
            ..Rule::default()
        };
        let auth = authenticator();
        auth.set_policy(Policy::new(vec![rule, admin], &std::collections::BTreeMap::new()));
        let grant = |p: &str, a: &[Action]| Grant { repositories: vec![pattern(p)], actions: Actions::of(a) };
        let everything = [Action::Pull, Action::Push, Action::Delete];
        // A personal token of alice's asking for more than she has gets what both allow.
        let (pat, _) = Credential::new(
            Kind::Personal,
            "wide",
            Some("alice".into()),
            vec![grant("**", &everything)],
            None,
            1,
        )
        .expect("a token");
        let holder = Principal::of_credential(Arc::new(pat));
        assert_eq!(holder.identity, Identity::User("alice".into()));
        assert_eq!(auth.rights(&holder, "ci/app"), Actions::of(&[Action::Pull, Action::Push]));
        assert!(auth.rights(&holder, "other").is_empty());
        // alice may hand on what she holds, no more.
        let alice = Principal::user("alice");
        assert!(auth.may_grant(&alice, &grant("ci/*", &[Action::Push])));
        assert!(!auth.may_grant(&alice, &grant("ci/*", &[Action::Delete])));
        assert!(!auth.may_grant(&alice, &grant("**", &[Action::Pull])));
        assert!(!auth.may_grant(&holder, &grant("ci/app", &[Action::Pull])), "not through a token");
        assert!(auth.mints_tokens(&alice) && !auth.mints_tokens(&holder));
        let tokens = Scope::parse_list("registry:tokens:*").expect("parses");
        assert_eq!(auth.grant(&alice, &tokens), tokens);
        assert!(auth.grant(&holder, &tokens).is_empty());
        // A robot the operator made: its grants only; never an administrator.
        let (robot, _) = Credential::new(
            Kind::Robot,
            "ci",
            None,
            vec![grant("ci/app", &[Action::Pull, Action::Push])],
            None,
            1,
        )
        .expect("a robot");
        let robot = Principal::of_credential(Arc::new(robot));
        assert!(auth.can(&robot, "ci/app", Action::Push) && !auth.can(&robot, "ci/app", Action::Delete));
        assert!(!auth.can(&robot, "ci/other", Action::Pull) && !auth.visible(&robot, "ci/other"));
        assert!(!auth.is_admin(&robot));
        let asked =
            Scope::parse_list("repository:ci/app:pull,push,delete repository:ci/other:push registry:admin:*")
                .expect("parses");
        assert_eq!(auth.grant(&robot, &asked), vec![Scope::repository("ci/app", &["pull", "push"])]);
        // root's robot, though root administers, does not; and root's rights shrink it.
        let (rooted, _) =
            Credential::new(Kind::Robot, "r", Some("root".into()), vec![grant("**", &everything)], None, 1)
                .expect("a robot");
        let rooted = Principal::of_credential(Arc::new(rooted));
        assert!(auth.can(&rooted, "any/thing", Action::Delete) && !auth.is_admin(&rooted));
        auth.set_policy(Policy::default());
        assert!(!auth.can(&rooted, "any/thing", Action::Pull), "its owner lost every right");
        // Its tokens name it, and say who it is.
        let ci = robot.credential.clone().expect("a credential");
        let issued =
            auth.tokens().issue_to(Some("robot$ci"), vec![Scope::catalog()], Some(&ci)).expect("issues");
        let principal = auth.bearer(&issued.token).expect("valid");
        assert_eq!(principal.identity, Identity::Robot("robot$ci".into()));
        assert_eq!(principal.token.as_ref().and_then(|c| c.wharf_cred.as_deref()), Some(ci.id.as_str()));
    }

    #[test]
    fn workloads_hold_their_rules_grants_until_their_token_expires() {
        let auth = authenticator();
        let public = crate::Rule {
            repositories: vec!["public/**".parse().expect("pattern")],
            anonymous: Actions::of(&[Action::Pull]),
            ..crate::Rule::default()
        };
        auth.set_policy(Policy::new(vec![public], &std::collections::BTreeMap::new()));
        let now = crate::token::now();
        let workload = crate::oidc::Workload {
            name: "github:repo:acme/app:ref:refs/heads/main".into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            claims: std::collections::BTreeMap::from([("ref".into(), "refs/heads/main".into())]),
            grants: vec![crate::Grant {
                repositories: vec!["acme/app/**".parse().expect("pattern")],
                actions: Actions::of(&[Action::Pull, Action::Push]),
            }],
            expires: now + 60,
            token_id: "run-42".into(),
        };
        let principal = Principal::of_credential(Arc::new(Credential::workload(workload, now)));
        assert_eq!(principal.identity, Identity::External("github:repo:acme/app:ref:refs/heads/main".into()));
        assert!(auth.can(&principal, "acme/app/web", Action::Push));
        assert!(
            !auth.can(&principal, "acme/app/web", Action::Delete)
                && !auth.can(&principal, "team/x", Action::Pull)
        );
        assert!(auth.can(&principal, "public/x", Action::Pull), "what anonymous callers may");
        assert!(!auth.is_admin(&principal) && !auth.mints_tokens(&principal));
        let asked =
            Scope::parse_list("repository:acme/app/web:pull,push,delete registry:tokens:*").expect("parses");
        let granted = auth.grant(&principal, &asked);
        assert_eq!(granted, vec![Scope::repository("acme/app/web", &["pull", "push"])]);
        // Its registry token: as long as its OIDC token lives at most, never a user's.
        let credential = principal.credential.as_deref();
        let issued =
            auth.tokens().issue_to(Some(principal.identity.name()), granted, credential).expect("issues");
        assert!(issued.expires_in <= 60 && issued.claims.wharf_cred.is_none());
        let back = auth.bearer(&issued.token).expect("valid");
        assert_eq!(back.identity, principal.identity);
        assert!(auth.visible(&back, "acme/app/other"), "its rules' grants travel in its tokens");
        assert!(
            auth.can(&back, "acme/app/web", Action::Push)
                && !auth.is_admin(&back)
                && !auth.mints_tokens(&back)
        );
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
