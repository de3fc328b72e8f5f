//! Machine and scoped credentials: robot accounts and personal access tokens, each a secret
//! that stands for a limited set of rights, with an expiry, that can be disabled at any time.
//!
//! A secret is `wharf_<id>_<43 characters of base64url>`: 256 random bits behind the
//! credential's id, so a check reads one record (by the id) and compares the secret's SHA-256
//! with the stored one in constant time. The secret itself is shown once and never stored:
//! high-entropy secrets need no slow hash (a guess costs 2^255 tries on average).

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::error::{Error, Result};
use crate::policy::{Action, Actions, Identity, Pattern};

/// What the user name of a robot starts with (`robot$ci-app`, as Harbor spells it).
pub const ROBOT_PREFIX: &str = "robot$";
/// What a secret starts with (so a leaked one is recognisable by secret scanners).
pub const SECRET_PREFIX: &str = "wharf_";
/// The most grants a credential holds.
pub const MAX_GRANTS: usize = 32;
/// The most patterns one grant names.
pub const MAX_PATTERNS: usize = 32;

/// Whether a credential acts for a machine or for the person who made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A robot account: its own identity (`robot$<name>`), created by an administrator.
    Robot,
    /// A personal access token: its owner's identity, with less than its owner's rights.
    Personal,
    /// A CI workload signed in with an OIDC token of a trusted issuer
    /// ([`oidc`](crate::oidc)): never stored, its grants from the issuer's claim rules, its
    /// expiry its token's.
    Workload,
}

/// Repositories and what may be done to them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The repositories (patterns, `*` within a component, `**` any depth).
    pub repositories: Vec<Pattern>,
    /// The actions on them: `pull`, `push`, `delete` (never `admin`).
    pub actions: Actions,
}

/// A robot account or a personal access token, as stored: no secret, only its SHA-256.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Its id: 16 lowercase hex digits, random; part of the secret.
    pub id: String,
    /// Robot or personal.
    pub kind: Kind,
    /// A robot's name (its user name is `robot$<name>`), or a personal token's label.
    pub name: String,
    /// Whose rights bound it: a personal token's user; the administrator who made a robot
    /// (none when the operator made it on the server's command line).
    pub owner: Option<String>,
    /// What it may do, at most (and never more than its owner may, at any time).
    pub grants: Vec<Grant>,
    /// When it was made (seconds since the epoch).
    pub created: u64,
    /// When it stops working, if ever.
    pub expires: Option<u64>,
    /// Disabled: refused until enabled again.
    #[serde(default)]
    pub disabled: bool,
    /// What vouched for a workload: its OIDC token's claims (for the audit log).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub claims: std::collections::BTreeMap<String, String>,
    /// The SHA-256 of the secret, hex (empty for a workload: it has none).
    secret_sha256: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("grants", &self.grants)
            .field("expires", &self.expires)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A credential's secret, as handed to its holder once. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's text (`wharf_<id>_<random>`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Why a credential does not let a caller in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Disabled by an administrator or its owner.
    Disabled,
    /// Past its expiry.
    Expired,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disabled => "the credential is disabled",
            Self::Expired => "the credential has expired",
        })
    }
}

/// Whether `name` is a robot's or a token's name: 1 to 64 of lowercase letters, digits,
/// `.`, `_` and `-`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The credential id a presented secret names, if it has the shape of one.
pub fn secret_id(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(SECRET_PREFIX)?;
    let (id, random) = rest.split_once('_')?;
    let shaped = id.len() == 16
        && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && random.len() == 43
        && random.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then_some(id)
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

impl Credential {
    /// A new credential and its secret (shown once: only its hash is kept). `grants` must be
    /// non-empty, of `pull`, `push` and `delete` only; a robot's `name` is checked with
    /// [`valid_name`].
    pub fn new(
        kind: Kind,
        name: &str,
        owner: Option<String>,
        grants: Vec<Grant>,
        expires: Option<u64>,
        now: u64,
    ) -> Result<(Self, Secret)> {
        let bad = |m: String| Error::Credential(m);
        if !valid_name(name) {
            return Err(bad(format!(
                "name `{}`: 1 to 64 lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit",
                name.chars().take(64).collect::<String>()
            )));
        }
        if kind == Kind::Workload {
            return Err(bad(
                "a workload's credential comes from its OIDC token (`Credential::workload`)".into()
            ));
        }
        if kind == Kind::Personal && owner.is_none() {
            return Err(bad("a personal access token belongs to a user".into()));
        }
        if grants.is_empty() || grants.len() > MAX_GRANTS {
            return Err(bad(format!("1 to {MAX_GRANTS} grants")));
        }
        for g in &grants {
            if g.repositories.is_empty() || g.repositories.len() > MAX_PATTERNS {
                return Err(bad(format!("each grant names 1 to {MAX_PATTERNS} repository patterns")));
            }
            if g.actions.is_empty() || g.actions.contains(Action::Admin) {
                return Err(bad("each grant gives some of pull, push and delete (never admin)".into()));
            }
        }
        if expires.is_some_and(|e| e <= now) {
            return Err(bad("the expiry is in the past".into()));
        }
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let random = |n: usize| {
            let mut bytes = vec![0u8; n];
            aws_lc_rs::rand::SecureRandom::fill(&rng, &mut bytes)
                .map(|()| bytes)
                .map_err(|_| bad("no random bytes from the system".into()))
        };
        let id = hex::encode(random(8)?);
        let secret = {
            use base64::Engine as _;
            let random = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random(32)?);
            format!("{SECRET_PREFIX}{id}_{random}")
        };
        let credential = Self {
            id,
            kind,
            name: name.to_owned(),
            owner,
            grants,
            created: now,
            expires,
            disabled: false,
            claims: std::collections::BTreeMap::new(),
            secret_sha256: sha256_hex(&secret),
        };
        Ok((credential, Secret(secret)))
    }

    /// The credential of a workload an OIDC token signed in (`id`: its token's id): its
    /// grants, no owner, no secret, expiring with the token.
    pub fn workload(workload: crate::oidc::Workload, now: u64) -> Self {
        Self {
            id: workload.token_id,
            kind: Kind::Workload,
            name: workload.name,
            owner: None,
            grants: workload.grants,
            created: now,
            expires: Some(workload.expires),
            disabled: false,
            claims: workload.claims,
            secret_sha256: String::new(),
        }
    }

    /// Who it is: a robot (`robot$<name>`), a personal token's owner, or a workload (an
    /// [`Identity::External`] named `<issuer>:<sub>`). Its [`name`](Identity::name) is the
    /// user name it signs in with.
    pub fn identity(&self) -> Identity {
        match (self.kind, &self.owner) {
            (Kind::Workload, _) => Identity::External(self.name.clone()),
            (Kind::Personal, Some(owner)) => Identity::User(owner.clone()),
            _ => Identity::Robot(format!("{ROBOT_PREFIX}{}", self.name)),
        }
    }

    /// Whether `secret` is its secret (constant time).
    pub fn check_secret(&self, secret: &str) -> bool {
        bool::from(sha256_hex(secret).as_bytes().ct_eq(self.secret_sha256.as_bytes()))
    }

    /// Whether it lets its holder in at `now`.
    pub fn usable(&self, now: u64) -> Result<(), Unusable> {
        if self.disabled {
            Err(Unusable::Disabled)
        } else if self.expires.is_some_and(|e| e <= now) {
            Err(Unusable::Expired)
        } else {
            Ok(())
        }
    }

    /// What its grants allow on `repository` (before its owner's rights are applied).
    pub fn actions(&self, repository: &str) -> Actions {
        self.grants
            .iter()
            .filter(|g| g.repositories.iter().any(|p| p.matches(repository)))
            .fold(Actions::NONE, |acc, g| acc.union(g.actions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(patterns: &[&str], actions: &[Action]) -> Grant {
        Grant {
            repositories: patterns.iter().map(|p| p.parse().expect("a pattern")).collect(),
            actions: Actions::of(actions),
        }
    }

    #[test]
    fn secrets_are_shown_once_and_checked_by_hash() {
        let (robot, secret) =
            Credential::new(Kind::Robot, "ci-app", None, vec![grant(&["ci/app"], &[Action::Push])], None, 10)
                .expect("a robot");
        assert_eq!(secret_id(secret.expose()), Some(robot.id.as_str()));
        assert!(robot.check_secret(secret.expose()));
        assert!(!robot.check_secret(&secret.expose().replace('_', "-")));
        let stored = serde_json::to_string(&robot).expect("serialises");
        assert!(!stored.contains(secret.expose()), "the secret is never stored");
        assert!(!format!("{robot:?} {secret:?}").contains(&secret.expose()[20..]), "nor shown by Debug");
        let back: Credential = serde_json::from_str(&stored).expect("parses");
        assert_eq!(back, robot);
        assert_eq!(robot.identity(), Identity::Robot("robot$ci-app".into()));
        assert_eq!(robot.identity().name(), "robot$ci-app");
        assert!(!crate::valid_user("robot$ci-app"), "no person takes a robot's name");
        assert!(robot.actions("ci/app").contains(Action::Push));
        assert!(robot.actions("ci/other").is_empty());
        let (other, _) =
            Credential::new(Kind::Robot, "ci-app", None, vec![grant(&["ci/app"], &[Action::Push])], None, 10)
                .expect("a robot");
        assert_ne!(other.id, robot.id, "random ids");
    }

    #[test]
    fn what_a_credential_cannot_be() {
        let g = || vec![grant(&["a"], &[Action::Pull])];
        assert!(Credential::new(Kind::Robot, "Bad Name", None, g(), None, 10).is_err());
        assert!(Credential::new(Kind::Robot, "", None, g(), None, 10).is_err());
        assert!(Credential::new(Kind::Personal, "t", None, g(), None, 10).is_err(), "a token has an owner");
        assert!(Credential::new(Kind::Robot, "r", None, vec![], None, 10).is_err());
        assert!(
            Credential::new(Kind::Robot, "r", None, vec![grant(&["a"], &[Action::Admin])], None, 10).is_err()
        );
        assert!(Credential::new(Kind::Robot, "r", None, vec![grant(&["a"], &[])], None, 10).is_err());
        assert!(Credential::new(Kind::Robot, "r", None, g(), Some(10), 10).is_err(), "expired already");
        let (mut c, _) =
            Credential::new(Kind::Personal, "t", Some("alice".into()), g(), Some(20), 10).expect("ok");
        assert_eq!(c.identity().name(), "alice");
        assert_eq!(c.usable(19), Ok(()));
        assert_eq!(c.usable(20), Err(Unusable::Expired));
        c.disabled = true;
        assert_eq!(c.usable(11), Err(Unusable::Disabled));
    }

    #[test]
    fn secret_shapes() {
        let id = "0123456789abcdef";
        let random = "A".repeat(43);
        assert_eq!(secret_id(&format!("wharf_{id}_{random}")), Some(id));
        for bad in [
            String::new(),
            format!("wharf_{id}_{}", "A".repeat(42)),
            format!("wharf_{}_{random}", "0".repeat(15)),
            format!("wharf_{}_{random}", "G".repeat(16)),
            format!("other_{id}_{random}"),
            format!("wharf_{id}_{}!", "A".repeat(42)),
        ] {
            assert_eq!(secret_id(&bad), None, "{bad}");
        }
    }
}
