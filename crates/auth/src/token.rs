//! Tokens of the Docker registry token specification: what they claim, how they are issued
//! (the intersection of the scopes asked for and the permissions held) and checked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::jwt::{SigningKey, VerifyingKey};
use crate::scope::Scope;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// What an access token claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// The subject: the user, or empty for anonymous.
    #[serde(default)]
    pub sub: String,
    /// The audience: the registry's service name (a string or a list in the wild).
    pub aud: Audience,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before.
    #[serde(default)]
    pub nbf: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
    /// A unique id.
    #[serde(default)]
    pub jti: String,
    /// The granted scopes.
    #[serde(default)]
    pub access: Vec<Scope>,
    /// `refresh` on refresh tokens, which are never accepted as access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wharf_use: Option<String>,
    /// A refresh token's fingerprint of the user's htpasswd entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wharf_fp: Option<String>,
    /// The id of the robot account or personal access token it was issued to: the registry
    /// checks on each request that the credential still stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wharf_cred: Option<String>,
    /// The id of the OIDC token of the workload it was issued to (whose subject is then an
    /// [`Identity::External`](crate::Identity), not a user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wharf_wl: Option<String>,
    /// A workload's grants (its issuer's claim rules that matched): what it may do besides
    /// what the token grants, for listings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wharf_grants: Vec<crate::Grant>,
}

/// A JWT `aud`: one string or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `service` is one of them.
    pub fn contains(&self, service: &str) -> bool {
        match self {
            Self::One(a) => a == service,
            Self::Many(all) => all.iter().any(|a| a == service),
        }
    }
}

impl Claims {
    /// Whether the token grants `action` on repository `name`.
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access.iter().any(|s| s.kind == kind && s.name == name && s.allows(action))
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Who issues tokens and whose tokens are trusted.
#[derive(Debug)]
pub struct TokenService {
    key: SigningKey,
    /// `iss` of the tokens issued here.
    pub issuer: String,
    /// The registry's service name (`aud`).
    pub service: String,
    /// Lifetime of access tokens.
    pub ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    own: Vec<VerifyingKey>,
    external: Option<External>,
}

/// An external issuer whose tokens the registry trusts.
#[derive(Clone, Debug)]
pub struct External {
    /// Its `iss`.
    pub issuer: String,
    /// The `aud` its tokens must carry for this registry.
    pub audience: String,
    /// Its keys.
    pub keys: Vec<VerifyingKey>,
    /// Whether its tokens' subjects are the local users of the same names (their rights,
    /// groups and administration); otherwise they are [`Identity::External`](crate::Identity)
    /// and only their tokens' grants count.
    pub map_users: bool,
}

impl TokenService {
    /// A service signing with `key` as `issuer`, for `service`; tokens live 5 minutes,
    /// refresh tokens 30 days.
    pub fn new(key: SigningKey, issuer: impl Into<String>, service: impl Into<String>) -> Self {
        let own = vec![key.verifying_key()];
        Self {
            key,
            issuer: issuer.into(),
            service: service.into(),
            ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            own,
            external: None,
        }
    }

    /// Also trusts the tokens of `external`.
    #[must_use]
    pub fn with_external(mut self, external: External) -> Self {
        self.external = Some(external);
        self
    }

    /// Whether the external issuer's subjects are local users (see [`External::map_users`]).
    pub fn maps_external_users(&self) -> bool {
        self.external.as_ref().is_some_and(|e| e.map_users)
    }

    /// The public keys of this service's tokens (a JWKS document's `keys`).
    pub fn public_keys(&self) -> &[VerifyingKey] {
        &self.own
    }

    /// Issues an access token for `subject` (`None`: anonymous) granting `access`.
    pub fn issue(&self, subject: Option<&str>, access: Vec<Scope>) -> Result<Issued> {
        self.issue_to(subject, access, None)
    }

    /// Issues an access token for `subject` granting `access`, to the holder of
    /// `credential` when one signed in: naming it (a robot's or a personal token's id, which
    /// the registry checks on each request; a workload's token id), and expiring no later
    /// than it does.
    pub fn issue_to(
        &self,
        subject: Option<&str>,
        access: Vec<Scope>,
        credential: Option<&crate::Credential>,
    ) -> Result<Issued> {
        use crate::credential::Kind;
        let now = now();
        let exp = (now + self.ttl.as_secs()).min(credential.and_then(|c| c.expires).unwrap_or(u64::MAX));
        let id = |kind: bool| credential.filter(|_| kind).map(|c| c.id.clone());
        let workload = credential.is_some_and(|c| c.kind == Kind::Workload);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.unwrap_or_default().to_owned(),
            aud: Audience::One(self.service.clone()),
            exp,
            nbf: now.saturating_sub(1),
            iat: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            access,
            wharf_use: None,
            wharf_fp: None,
            wharf_cred: id(!workload),
            wharf_wl: id(workload),
            wharf_grants: credential.filter(|_| workload).map(|c| c.grants.clone()).unwrap_or_default(),
        };
        Ok(Issued { token: self.key.sign(&claims)?, claims, expires_in: exp.saturating_sub(now) })
    }

    /// Issues a refresh token for `user`, bound to `fingerprint` (of their htpasswd entry).
    pub fn issue_refresh(&self, user: &str, fingerprint: &str) -> Result<String> {
        let now = now();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user.to_owned(),
            aud: Audience::One(self.service.clone()),
            exp: now + self.refresh_ttl.as_secs(),
            nbf: now.saturating_sub(1),
            iat: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            access: Vec::new(),
            wharf_use: Some("refresh".into()),
            wharf_fp: Some(fingerprint.to_owned()),
            wharf_cred: None,
            wharf_wl: None,
            wharf_grants: Vec::new(),
        };
        self.key.sign(&claims)
    }

    /// Checks an access token: signature (this service's key or the external issuer's),
    /// issuer, audience, times, and that it is not a refresh token.
    pub fn verify_access(&self, token: &str) -> Result<Claims> {
        let claims = self.verify_any(token)?;
        if claims.wharf_use.is_some() {
            return Err(Error::Token("a refresh token is not an access token".into()));
        }
        Ok(claims)
    }

    /// Checks a refresh token issued here.
    pub fn verify_refresh(&self, token: &str) -> Result<Claims> {
        let claims: Claims = crate::jwt::verify(token, &self.own)?;
        self.check(&claims, &self.issuer, &self.service)?;
        if claims.wharf_use.as_deref() != Some("refresh") || claims.sub.is_empty() {
            return Err(Error::Token("not a refresh token".into()));
        }
        Ok(claims)
    }

    fn verify_any(&self, token: &str) -> Result<Claims> {
        let own = crate::jwt::verify::<Claims>(token, &self.own);
        match (own, &self.external) {
            (Ok(claims), _) => {
                self.check(&claims, &self.issuer, &self.service)?;
                Ok(claims)
            }
            (Err(_), Some(ext)) => {
                let claims: Claims = crate::jwt::verify(token, &ext.keys)?;
                self.check(&claims, &ext.issuer, &ext.audience)?;
                Ok(claims)
            }
            (Err(e), None) => Err(e),
        }
    }

    #[allow(clippy::unused_self)]
    fn check(&self, claims: &Claims, issuer: &str, audience: &str) -> Result<()> {
        let now = now();
        let leeway = LEEWAY.as_secs();
        if claims.iss != issuer {
            return Err(Error::Token("issued by someone else".into()));
        }
        if !claims.aud.contains(audience) {
            return Err(Error::Token("for another service".into()));
        }
        if claims.exp + leeway <= now {
            return Err(Error::Token("expired".into()));
        }
        if claims.nbf > now + leeway || claims.iat > now + leeway {
            return Err(Error::Token("not valid yet".into()));
        }
        Ok(())
    }
}

/// A token just issued.
#[derive(Debug)]
pub struct Issued {
    /// The compact JWT.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl Issued {
    /// `issued_at` as RFC 3339.
    pub fn issued_at(&self) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(self.claims.iat).unwrap_or(0))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::Algorithm;

    #[test]
    fn issue_and_verify() {
        let service =
            TokenService::new(SigningKey::generate(Algorithm::ES256).expect("key"), "wharf", "registry");
        let issued = service.issue(Some("alice"), vec![Scope::repository("a", &["pull"])]).expect("issues");
        let claims = service.verify_access(&issued.token).expect("valid");
        assert!(claims.allows("repository", "a", "pull"));
        assert!(!claims.allows("repository", "a", "push"));
        assert!(issued.issued_at().ends_with('Z'));
        let refresh = service.issue_refresh("alice", "fp").expect("issues");
        assert!(service.verify_access(&refresh).is_err(), "a refresh token used as an access token");
        assert_eq!(service.verify_refresh(&refresh).expect("valid").wharf_fp.as_deref(), Some("fp"));
        assert!(service.verify_refresh(&issued.token).is_err());

        // Another service name, another issuer's key, an expired token.
        let other =
            TokenService::new(SigningKey::generate(Algorithm::ES256).expect("key"), "wharf", "elsewhere");
        let foreign = other.issue(Some("alice"), vec![]).expect("issues");
        assert!(service.verify_access(&foreign.token).is_err());
        let mut expired =
            TokenService::new(SigningKey::generate(Algorithm::EdDSA).expect("key"), "wharf", "registry");
        expired.ttl = Duration::ZERO;
        let mut claims = expired.issue(None, vec![]).expect("issues").claims;
        claims.exp = now() - 3600;
        let stale = expired.key.sign(&claims).expect("signs");
        assert!(matches!(expired.verify_access(&stale), Err(Error::Token(m)) if m == "expired"));

        // Trusting an external issuer.
        let trusting =
            TokenService::new(SigningKey::generate(Algorithm::ES256).expect("key"), "wharf", "registry")
                .with_external(External {
                    issuer: "wharf".into(),
                    audience: "elsewhere".into(),
                    keys: other.public_keys().to_vec(),
                    map_users: false,
                });
        assert!(trusting.verify_access(&foreign.token).is_ok());
    }
}
