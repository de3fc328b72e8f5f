//! Robot accounts and personal access tokens, kept in the registry's storage: every process
//! over the storage reads the same records, and reads a credential's record on each request
//! that presents it (or a token issued to it), so a credential disabled, deleted or expired
//! through one process is refused by every process on its next request.
//!
//! What a credential costs: one record read per request presenting it; its last use written
//! at most once a minute per process (in a record of its own, so a use never undoes a
//! revocation written meanwhile).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wharf_auth::credential::Kind;
use wharf_auth::{Credential, Secret};
use wharf_store::{Storage, Write};

use crate::clock::now_secs;
use crate::error::{Error, Result};
use crate::registry::keys;

/// How often one process writes a credential's last use.
const USE_EVERY: Duration = Duration::from_secs(60);
/// The most credentials a listing reads (robots, or one user's tokens).
pub const MAX_LISTED: usize = 1000;
/// The most personal access tokens one user may hold.
pub const MAX_TOKENS_PER_USER: usize = 100;

/// How long a robot lives unless asked otherwise.
pub const ROBOT_LIFETIME: u64 = 90 * 24 * 3600;
/// How long a personal access token lives unless asked otherwise.
pub const TOKEN_LIFETIME: u64 = 30 * 24 * 3600;

/// What a caller asks for when making a credential (the API's `POST` body; the web page's
/// form, read into the same).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Create {
    /// A robot's name, or a token's label.
    pub name: String,
    /// Repositories and actions.
    pub grants: Vec<GrantRequest>,
    /// `30d`, `12h`, … or `never` [default: 90 days for a robot, 30 for a token].
    pub expires_in: Option<String>,
}

/// One grant asked for.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// Repository patterns.
    pub repositories: Vec<String>,
    /// Actions.
    pub actions: Vec<wharf_auth::Action>,
}

/// The robot accounts and personal access tokens of a storage.
#[derive(Clone)]
pub struct Credentials {
    storage: Arc<dyn Storage>,
    /// When this process last wrote each credential's use (bounded: forgotten past an hour).
    used: Arc<Mutex<HashMap<String, Instant>>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

/// A credential as listed: what it is, and when it was last used.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    /// The credential (its secret's hash is never shown).
    #[serde(flatten)]
    pub credential: View,
    /// When it was last used (seconds since the epoch; a minute's precision).
    pub last_used: Option<u64>,
}

/// What a credential shows of itself.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct View {
    /// Its id.
    pub id: String,
    /// `robot` or `personal`.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// The user name it signs in with (`robot$<name>`, or its owner's).
    pub username: String,
    /// Whose rights bound it.
    pub owner: Option<String>,
    /// Its grants.
    pub grants: Vec<wharf_auth::Grant>,
    /// When it was made.
    pub created: u64,
    /// When it expires.
    pub expires: Option<u64>,
    /// Whether it is disabled.
    pub disabled: bool,
    /// Whether it has expired.
    pub expired: bool,
}

impl From<&Credential> for View {
    fn from(c: &Credential) -> Self {
        Self {
            id: c.id.clone(),
            kind: c.kind,
            name: c.name.clone(),
            username: c.identity().name().to_owned(),
            owner: c.owner.clone(),
            grants: c.grants.clone(),
            created: c.created,
            expires: c.expires,
            disabled: c.disabled,
            expired: c.usable(now_secs()) == Err(wharf_auth::credential::Unusable::Expired),
        }
    }
}

impl Credentials {
    /// The credentials kept in `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage, used: Arc::default() }
    }

    /// The credential `id`, if it exists.
    pub async fn get(&self, id: &str) -> Result<Option<Credential>> {
        let Some(bytes) = self.storage.get_meta(&keys::credential(id)).await? else { return Ok(None) };
        match serde_json::from_slice(&bytes) {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                tracing::error!(id, error = %e, "a credential record does not parse: it lets no one in");
                Ok(None)
            }
        }
    }

    /// The robot named `name`, if it exists.
    pub async fn robot(&self, name: &str) -> Result<Option<Credential>> {
        if !wharf_auth::credential::valid_name(name) {
            return Ok(None);
        }
        let Some(id) = self.storage.get_meta(&keys::robot(name)).await? else { return Ok(None) };
        self.get(&String::from_utf8_lossy(&id)).await
    }

    /// Makes a credential: a robot named `name` (refused when one exists), or a personal
    /// token of `owner`'s (at most [`MAX_TOKENS_PER_USER`]). Returns it and its secret,
    /// which is not kept.
    pub async fn create(
        &self,
        kind: Kind,
        name: &str,
        owner: Option<String>,
        grants: Vec<wharf_auth::Grant>,
        expires: Option<u64>,
    ) -> Result<(Credential, Secret)> {
        let (credential, secret) = Credential::new(kind, name, owner, grants, expires, now_secs())
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let value = serde_json::to_vec(&credential).expect("a credential serialises").into();
        let record = Write::Set { key: keys::credential(&credential.id), value };
        match kind {
            Kind::Robot => {
                let index = keys::robot(name);
                if self.storage.meta_exists(&index).await? {
                    return Err(Error::Conflict(format!("a robot named `{name}` exists")));
                }
                let id = Write::Set { key: index.clone(), value: credential.id.clone().into_bytes().into() };
                // The record first, then the name naming it.
                self.storage.write_steps(vec![vec![record], vec![id]]).await?;
                // Two processes making the same name at once: the name's last writer wins,
                // the other undoes its own.
                if self.storage.get_meta(&index).await?.as_deref() != Some(credential.id.as_bytes()) {
                    self.storage.remove_meta(&keys::credential(&credential.id)).await?;
                    return Err(Error::Conflict(format!("a robot named `{name}` exists")));
                }
            }
            Kind::Personal => {
                let owner = credential.owner.as_deref().unwrap_or_default();
                if self.list(Kind::Personal, Some(owner)).await?.len() >= MAX_TOKENS_PER_USER {
                    return Err(Error::Conflict(format!(
                        "`{owner}` holds {MAX_TOKENS_PER_USER} tokens: revoke one first"
                    )));
                }
                self.storage.write_steps(vec![vec![record]]).await?;
            }
            // Refused by `Credential::new` already: a workload's credential lives in its token.
            Kind::Workload => return Err(Error::BadRequest("a workload's credential is not stored".into())),
        }
        tracing::info!(
            target: "wharf::audit",
            id = credential.id,
            kind = ?credential.kind,
            username = credential.identity().name(),
            owner = credential.owner.as_deref().unwrap_or("-"),
            "credential created"
        );
        Ok((credential, secret))
    }

    /// Makes what `principal` asks for: a robot (owned by the administrator making it) or a
    /// personal token of its own, every grant one it may hand on (else `DENIED`), living as
    /// long as asked (by default [`ROBOT_LIFETIME`] or [`TOKEN_LIFETIME`]).
    pub async fn make(
        &self,
        auth: &wharf_auth::Authenticator,
        principal: &wharf_auth::Principal,
        kind: Kind,
        asked: Create,
    ) -> Result<(Credential, Secret)> {
        let mut grants = Vec::new();
        for g in asked.grants {
            let repositories = wharf_auth::Pattern::parse_list(&g.repositories).map_err(Error::BadRequest)?;
            let grant = wharf_auth::Grant { repositories, actions: wharf_auth::Actions::of(&g.actions) };
            if !auth.may_grant(principal, &grant) {
                return Err(Error::Denied {
                    message: format!(
                        "`{}` may not hand on {:?} over {}",
                        principal.identity.name(),
                        grant.actions,
                        g.repositories.join(", ")
                    ),
                    challenge: None,
                });
            }
            grants.push(grant);
        }
        let lifetime = match asked.expires_in.as_deref() {
            Some("never") => None,
            Some(text) => Some(
                crate::units::parse_duration(text)
                    .map_err(|e| Error::BadRequest(format!("expiresIn: {e}")))?
                    .as_secs(),
            ),
            None => Some(if kind == Kind::Robot { ROBOT_LIFETIME } else { TOKEN_LIFETIME }),
        };
        let owner = Some(principal.identity.name().to_owned());
        self.create(kind, &asked.name, owner, grants, lifetime.map(|l| now_secs() + l.max(1))).await
    }

    /// The credentials of `kind` (of `owner` only, when given), oldest first, with their last
    /// use; at most [`MAX_LISTED`].
    pub async fn list(&self, kind: Kind, owner: Option<&str>) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for key in self.storage.list_meta(keys::CREDENTIALS).await? {
            let Some(id) = key.strip_prefix(keys::CREDENTIALS) else { continue };
            let Some(c) = self.get(id).await? else { continue };
            if c.kind != kind || owner.is_some_and(|o| c.owner.as_deref() != Some(o)) {
                continue;
            }
            let last_used = match self.storage.get_meta(&keys::credential_use(id)).await? {
                Some(bytes) => keys::decode_secs(&bytes),
                None => None,
            };
            out.push(Listed { credential: View::from(&c), last_used });
            if out.len() >= MAX_LISTED {
                break;
            }
        }
        out.sort_by(|a, b| {
            (a.credential.created, &a.credential.name).cmp(&(b.credential.created, &b.credential.name))
        });
        Ok(out)
    }

    /// Disables or enables a credential: in effect on the next request in every process.
    pub async fn set_disabled(&self, credential: &Credential, disabled: bool) -> Result<Credential> {
        let mut changed = credential.clone();
        changed.disabled = disabled;
        let value = serde_json::to_vec(&changed).expect("a credential serialises").into();
        self.storage.set_meta(&keys::credential(&changed.id), value).await?;
        tracing::info!(
            target: "wharf::audit",
            id = changed.id,
            username = changed.identity().name(),
            disabled,
            "credential {}",
            if disabled { "disabled" } else { "enabled" }
        );
        Ok(changed)
    }

    /// Deletes a credential: refused on the next request in every process.
    pub async fn remove(&self, credential: &Credential) -> Result<()> {
        let mut writes = vec![Write::Remove { key: keys::credential(&credential.id) }];
        writes.push(Write::Remove { key: keys::credential_use(&credential.id) });
        // The name last: a crash in between leaves a name naming nothing, which names nothing.
        let name =
            (credential.kind == Kind::Robot).then(|| Write::Remove { key: keys::robot(&credential.name) });
        self.storage.write_steps(vec![writes, name.into_iter().collect()]).await?;
        tracing::info!(
            target: "wharf::audit",
            id = credential.id,
            username = credential.identity().name(),
            "credential deleted"
        );
        Ok(())
    }

    /// Notes a use of credential `id` now: written at most once a minute by this process
    /// (in the background; a failed write is only logged). True when written (a use worth an
    /// audit record).
    pub(crate) fn used(&self, id: &str) -> bool {
        let now = Instant::now();
        {
            let mut used = self.used.lock().expect("lock");
            if used.get(id).is_some_and(|at| now.duration_since(*at) < USE_EVERY) {
                return false;
            }
            if used.len() >= 10_000 {
                used.retain(|_, at| now.duration_since(*at) < Duration::from_secs(3600));
            }
            used.insert(id.to_owned(), now);
        }
        let storage = Arc::clone(&self.storage);
        let key = keys::credential_use(id);
        tokio::spawn(async move {
            if let Err(e) = storage.set_meta(&key, now_secs().to_string().into()).await {
                tracing::warn!(error = %e, key, "recording a credential's use failed");
            }
        });
        true
    }
}
