//! Workload identity over HTTP: the `[[auth.oidc]]` issuers and their keys. An issuer's keys
//! are fetched on first use (its discovery document names its JWKS), kept for an hour, and
//! fetched again when a token names a key not in hand (the issuer rotated its keys).
//!
//! Tokens naming made-up keys cannot make the registry hammer an issuer: fetches are one at a
//! time per issuer and at least [`REFETCH_EVERY`] apart — a request naming an unknown key
//! sooner waits for the next fetch, so a real rotation is picked up within that time whatever
//! else is sent — and a key found absent is refused at once until the issuer's keys change
//! (at most [`MAX_ABSENT`] remembered; the keys a rotation took out are among them). When an
//! issuer cannot be reached, the keys in hand stay in use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wharf_auth::VerifyingKey;
use wharf_auth::oidc::{Discovery, Issuer, Rejected, Workload};
use wharf_client::reqwest;

use super::settings::{ClaimValues, OidcConfig};
use crate::error::{Error, Result};

/// How long fetched keys are used before they are fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(3600);
/// The least time between two fetches of an issuer's keys for tokens naming unknown keys.
pub const REFETCH_EVERY: Duration = Duration::from_secs(5);
/// Key ids found absent remembered per issuer.
pub const MAX_ABSENT: usize = 256;
/// The largest discovery document and JWKS read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The trusted issuers.
#[derive(Debug, Default)]
pub(crate) struct Issuers {
    list: Vec<Trusted>,
    /// When each workload token was last audited here (at most [`MAX_SEEN`]).
    seen: Mutex<std::collections::HashMap<String, Instant>>,
}

/// Workload tokens remembered for [`Issuers::first_use`].
const MAX_SEEN: usize = 10_000;
/// How often the use of one workload token is worth an audit record.
const AUDIT_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Trusted {
    issuer: Issuer,
    /// The configured JWKS URL, else the discovery document's once read.
    jwks_url: Mutex<Option<String>>,
    configured_jwks: bool,
    client: reqwest::Client,
    keys: Mutex<KeySet>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

#[derive(Debug)]
struct KeySet {
    keys: Arc<Vec<VerifyingKey>>,
    fetched: Option<Instant>,
    /// When the last fetch was tried.
    tried: Option<Instant>,
    /// Bumped by every fetch that succeeded.
    generation: u64,
    /// Key ids a fetch found absent, since the keys last changed.
    absent: std::collections::HashSet<String>,
}

impl Issuers {
    /// From `[[auth.oidc]]`, CA files relative to `base`.
    pub(crate) fn from_config(configs: &[OidcConfig], base: &std::path::Path) -> Result<Self> {
        let mut list = Vec::new();
        for config in configs {
            let trusted = Trusted::from_config(config, base)?;
            if list
                .iter()
                .any(|t: &Trusted| t.issuer.url == trusted.issuer.url || t.issuer.name == trusted.issuer.name)
            {
                return Err(Error::BadRequest(format!(
                    "[[auth.oidc]] `{}`: an issuer of the same URL or name is already configured",
                    config.issuer
                )));
            }
            list.push(trusted);
        }
        Ok(Self { list, seen: Mutex::default() })
    }

    /// Whether this is the first use of the workload token `id` in a minute (a use worth an
    /// audit record: a job sending its token on every request is audited once a minute).
    pub(crate) fn first_use(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("lock");
        if seen.get(id).is_some_and(|at| now.duration_since(*at) < AUDIT_EVERY) {
            return false;
        }
        if seen.len() >= MAX_SEEN {
            seen.retain(|_, at| now.duration_since(*at) < AUDIT_EVERY);
        }
        if seen.len() < MAX_SEEN {
            seen.insert(id.to_owned(), now);
        }
        true
    }

    /// Whether `token` claims to come from one of the issuers (unverified: whether to treat
    /// it as a workload's token at all).
    pub(crate) fn claims(&self, token: &str) -> bool {
        !self.list.is_empty()
            && wharf_auth::oidc::claimed_issuer(token)
                .is_some_and(|iss| self.list.iter().any(|t| t.issuer.url == iss))
    }

    /// The workload `token` signs in, by the issuer it claims to come from.
    pub(crate) async fn verify(&self, token: &str) -> std::result::Result<Workload, Rejected> {
        let iss = wharf_auth::oidc::claimed_issuer(token);
        let Some(trusted) = self.list.iter().find(|t| Some(&t.issuer.url) == iss.as_ref()) else {
            return Err(Rejected::Invalid("not from a trusted issuer".into()));
        };
        trusted.verify(token).await
    }

    /// How many times the keys of the issuer `url` were fetched (each fetch: the JWKS, and
    /// the discovery document when its JWKS URL was not known yet).
    pub(crate) fn fetches(&self, url: &str) -> Option<u64> {
        self.list.iter().find(|t| t.issuer.url == url).map(|t| t.fetches.load(Ordering::Relaxed))
    }
}

impl Trusted {
    fn from_config(config: &OidcConfig, base: &std::path::Path) -> Result<Self> {
        let bad = |m: String| Error::BadRequest(format!("[[auth.oidc]] `{}`: {m}", config.issuer));
        let mut rules = Vec::new();
        for rule in &config.rules {
            let repositories = wharf_auth::Pattern::parse_list(&rule.repositories).map_err(bad)?;
            let claims = rule
                .claims
                .iter()
                .map(|(name, values)| {
                    let values = match values {
                        ClaimValues::One(v) => vec![v.clone()],
                        ClaimValues::Any(v) => v.clone(),
                    };
                    (name.clone(), values)
                })
                .collect();
            let actions = wharf_auth::Actions::of(&rule.actions);
            rules.push(wharf_auth::oidc::ClaimRule {
                claims,
                grant: wharf_auth::Grant { repositories, actions },
            });
        }
        let name = config.name.clone().unwrap_or_else(|| default_name(&config.issuer));
        let issuer = Issuer::new(&name, &config.issuer, &config.audience, rules)
            .map_err(|e| Error::BadRequest(format!("[[auth.oidc]]: {e}")))?;
        if config.jwks_url.as_deref().is_some_and(|url| !wharf_auth::oidc::secure_url(url)) {
            return Err(bad("jwks_url: an https:// URL (http:// only on loopback)".into()));
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(format!("wharf-server/{} (oidc)", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            let path = base.join(path);
            let pem = std::fs::read(&path).map_err(|e| bad(format!("ca_file {}: {e}", path.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("ca_file {}: {e}", path.display())))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(Self {
            issuer,
            jwks_url: Mutex::new(config.jwks_url.clone()),
            configured_jwks: config.jwks_url.is_some(),
            client,
            keys: Mutex::new(KeySet {
                keys: Arc::new(Vec::new()),
                fetched: None,
                tried: None,
                generation: 0,
                absent: std::collections::HashSet::new(),
            }),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        })
    }

    async fn verify(&self, token: &str) -> std::result::Result<Workload, Rejected> {
        let (mut keys, generation, fresh) = {
            let k = self.keys.lock().expect("lock");
            (Arc::clone(&k.keys), k.generation, k.fetched.is_some_and(|t| t.elapsed() < KEYS_TTL))
        };
        if !fresh {
            keys = self.refresh(generation, None).await?;
        }
        let now = crate::clock::now_secs();
        match self.issuer.verify(token, &keys, now) {
            Err(Rejected::UnknownKey) => {
                let kid = wharf_auth::jwt::parse(token).ok().and_then(|t| t.header.kid).unwrap_or_default();
                let generation = {
                    let k = self.keys.lock().expect("lock");
                    if k.absent.contains(&kid) {
                        return Err(Rejected::UnknownKey);
                    }
                    k.generation
                };
                let keys = self.refresh(generation, Some(&kid)).await?;
                self.issuer.verify(token, &keys, now)
            }
            other => other,
        }
    }

    /// The keys after fetching them again, unless a fetch since `seen` already did: the keys
    /// in hand then. For a token naming the unknown key `kid`, the fetch waits until
    /// [`REFETCH_EVERY`] has passed since the last one, and `kid` is remembered when it is
    /// still absent.
    async fn refresh(
        &self,
        seen: u64,
        kid: Option<&str>,
    ) -> std::result::Result<Arc<Vec<VerifyingKey>>, Rejected> {
        let _one = self.fetching.lock().await;
        let wait = {
            let k = self.keys.lock().expect("lock");
            if k.generation != seen {
                return Ok(Arc::clone(&k.keys));
            }
            let wait = k.tried.map(|t| REFETCH_EVERY.saturating_sub(t.elapsed())).filter(|w| !w.is_zero());
            // Keys that are only old are not fetched again sooner either (an issuer that is
            // down is tried once per REFETCH_EVERY, not by every request in turn).
            if wait.is_some() && kid.is_none() {
                return if k.keys.is_empty() {
                    Err(Rejected::Invalid("the issuer's keys cannot be fetched (tried moments ago)".into()))
                } else {
                    Ok(Arc::clone(&k.keys))
                };
            }
            wait
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = self.fetch().await;
        let mut k = self.keys.lock().expect("lock");
        k.tried = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                tracing::info!(
                    issuer = %self.issuer.url,
                    keys = keys.len(),
                    reason = if kid.is_some() { "a token names a key not in hand" } else { "first use or an hour old" },
                    "fetched the OIDC issuer's keys"
                );
                let kids = |keys: &[VerifyingKey]| {
                    keys.iter().filter_map(|k| k.kid().map(str::to_owned)).collect::<Vec<_>>()
                };
                if kids(&keys) != kids(&k.keys) {
                    // The keys a rotation took out are refused at once from now on.
                    let new = kids(&keys);
                    k.absent =
                        kids(&k.keys).into_iter().filter(|old| !new.contains(old)).take(MAX_ABSENT).collect();
                }
                k.keys = Arc::new(keys);
                k.fetched = Some(Instant::now());
                k.generation += 1;
            }
            Err(why) => {
                tracing::warn!(issuer = %self.issuer.url, error = %why, "cannot fetch the OIDC issuer's keys");
                if k.keys.is_empty() {
                    return Err(Rejected::Invalid(format!("the issuer's keys cannot be fetched: {why}")));
                }
            }
        }
        if let Some(kid) = kid
            && !k.keys.iter().any(|key| key.kid() == Some(kid))
            && k.absent.len() < MAX_ABSENT
        {
            k.absent.insert(kid.to_owned());
        }
        Ok(Arc::clone(&k.keys))
    }

    async fn fetch(&self) -> std::result::Result<Vec<VerifyingKey>, String> {
        let known = self.jwks_url.lock().expect("lock").clone();
        let jwks_url = if let Some(url) = known {
            url
        } else {
            let document = self.get(&self.issuer.discovery_url()).await?;
            let discovery = Discovery::parse(&document, &self.issuer.url).map_err(|e| e.to_string())?;
            *self.jwks_url.lock().expect("lock") = Some(discovery.jwks_uri.clone());
            discovery.jwks_uri
        };
        let fetched = self.get(&jwks_url).await.and_then(|jwks| {
            VerifyingKey::from_jwks(&String::from_utf8_lossy(&jwks)).map_err(|e| e.to_string())
        });
        if fetched.is_err() && !self.configured_jwks {
            // The discovery document is read again next time: the JWKS may have moved.
            *self.jwks_url.lock().expect("lock") = None;
        }
        fetched
    }

    async fn get(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
        let mut response = self.client.get(url).send().await.map_err(|e| format!("{url}: {}", cause(&e)))?;
        if !response.status().is_success() {
            return Err(format!("{url}: answered {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {}", cause(&e)))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The innermost cause of a fetch's failure.
fn cause(e: &reqwest::Error) -> String {
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    crate::text::cut(&cause, 200)
}

/// An issuer's name by default: its host, dots as `-` (`token-actions-githubusercontent-com`),
/// cut to 32 characters.
fn default_name(url: &str) -> String {
    let host = url.split("://").nth(1).unwrap_or(url).split(['/', ':']).next().unwrap_or_default();
    let name: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(32)
        .collect();
    if name.is_empty() { "oidc".to_owned() } else { name }
}
