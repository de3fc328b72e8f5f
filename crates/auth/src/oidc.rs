//! Workload identity: the OIDC tokens GitHub Actions, GitLab CI and Kubernetes hand each job,
//! trusted by issuer, checked against the issuer's keys, and turned into grants by claim rules
//! (a GitHub Actions token whose `repository` is `acme/app` and whose `ref` is
//! `refs/heads/main` may push `acme/app/**`). No stored secret stands behind a workload: the
//! issuer vouches for it, for as long as its token lives.
//!
//! No I/O here: the caller fetches the issuer's discovery document ([`Discovery`]) and its
//! JWKS ([`VerifyingKey::from_jwks`]), and asks again when a token names a key it does not
//! have ([`Rejected::UnknownKey`]: the issuer rotated its keys).
//!
//! # Example
//! ```
//! use std::collections::BTreeMap;
//! use wharf_auth::oidc::{ClaimRule, Issuer, Rejected};
//! use wharf_auth::{Action, Actions, Grant};
//!
//! let rule = ClaimRule {
//!     claims: BTreeMap::from([
//!         ("repository".into(), vec!["acme/app".into()]),
//!         ("ref".into(), vec!["refs/heads/main".into(), "refs/tags/v*".into()]),
//!     ]),
//!     grant: Grant { repositories: vec!["acme/app/**".parse()?], actions: Actions::of(&[Action::Pull, Action::Push]) },
//! };
//! let github = Issuer::new("github", "https://token.actions.githubusercontent.com", "registry.example", vec![rule])?;
//! // Not a token of this issuer's keys: refused before any claim is believed.
//! assert!(matches!(github.verify("e30.e30.e30", &[], 0), Err(Rejected::Invalid(_))));
//! # Ok::<(), wharf_auth::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::credential::Grant;
use crate::error::{Error, Result};
use crate::jwt::VerifyingKey;
use crate::policy::{Action, glob};
use crate::token::{Audience, LEEWAY};

/// The most claim rules an issuer has.
pub const MAX_RULES: usize = 256;
/// The most claims a workload's record keeps (for the audit log), and the longest value kept.
pub const MAX_RECORDED_CLAIMS: usize = 48;
const MAX_RECORDED_VALUE: usize = 256;
/// The longest subject accepted (GitHub's are under 200 bytes).
pub const MAX_SUBJECT: usize = 512;

/// An OIDC issuer whose tokens sign workloads in.
#[derive(Clone, Debug)]
pub struct Issuer {
    /// A short name for logs and identities (`github`): a workload is `<name>:<sub>`.
    pub name: String,
    /// Its `iss`, exactly as its tokens carry it (`https://token.actions.githubusercontent.com`).
    pub url: String,
    /// The `aud` its tokens must carry for this registry.
    pub audience: String,
    /// Which tokens get which grants.
    pub rules: Vec<ClaimRule>,
}

/// A claim rule: a token whose claims all match gets the grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRule {
    /// Claim name → accepted values (`*` matches any run of characters); a claim matches when
    /// it equals one of them (a number or a boolean by its JSON text; a list when one of its
    /// strings does). At least one claim.
    pub claims: BTreeMap<String, Vec<String>>,
    /// What a matching token may do.
    pub grant: Grant,
}

impl ClaimRule {
    fn matches(&self, claims: &serde_json::Map<String, Value>) -> bool {
        self.claims.iter().all(|(name, accepted)| {
            let texts: Vec<String> = match claims.get(name) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(v @ (Value::Number(_) | Value::Bool(_))) => vec![v.to_string()],
                Some(Value::Array(items)) => {
                    items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect()
                }
                _ => Vec::new(),
            };
            texts.iter().any(|t| accepted.iter().any(|a| glob(a.as_bytes(), t.as_bytes())))
        })
    }
}

/// A workload a token signed in: who it is, what its issuer said about it, what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// `<issuer name>:<sub>` (`github:repo:acme/app:ref:refs/heads/main`).
    pub name: String,
    /// The issuer's `iss`.
    pub issuer: String,
    /// Its scalar claims (at most [`MAX_RECORDED_CLAIMS`], values cut to 256 characters), for
    /// the audit log.
    pub claims: BTreeMap<String, String>,
    /// The grants of every rule it matched.
    pub grants: Vec<Grant>,
    /// When its token expires (seconds since the epoch).
    pub expires: u64,
    /// A stable id of its token: its `jti`, else a hash of the token.
    pub token_id: String,
}

/// Why a token did not sign a workload in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// It names a key the issuer's keys in hand do not have: fetch them again, then retry.
    UnknownKey,
    /// Malformed, badly signed, expired, for another audience or from another issuer.
    Invalid(String),
    /// Valid, but no claim rule admits it (the claims the rules look at, for the message).
    NoRule(String),
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey => f.write_str("signed by a key the issuer does not publish"),
            Self::Invalid(why) => f.write_str(why),
            Self::NoRule(claims) => write!(f, "no claim rule admits this token ({claims})"),
        }
    }
}

/// The `iss` a token claims, **unverified**: only to choose whose keys to check it with.
pub fn claimed_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    crate::jwt::parse(token).ok()?.peek::<Iss>().ok().map(|c| c.iss)
}

impl Issuer {
    /// An issuer, checked: a name of 1 to 32 lowercase letters, digits and `-`; an `https`
    /// URL (`http` only on loopback); an audience; 1 to [`MAX_RULES`] rules, each naming at
    /// least one claim (a rule without one would admit every token the issuer signs for
    /// anyone — on GitHub, every repository's workflows) and granting no `admin`.
    pub fn new(name: &str, url: &str, audience: &str, rules: Vec<ClaimRule>) -> Result<Self> {
        let bad = |m: String| Error::Credential(format!("OIDC issuer `{url}`: {m}"));
        if !(1..=32).contains(&name.len())
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(format!("name `{name}`: 1 to 32 lowercase letters, digits and `-`")));
        }
        if !secure_url(url) {
            return Err(bad("the issuer is an https:// URL (http:// only on loopback)".into()));
        }
        if audience.is_empty() {
            return Err(bad("an audience is required".into()));
        }
        if rules.is_empty() || rules.len() > MAX_RULES {
            return Err(bad(format!("1 to {MAX_RULES} claim rules")));
        }
        for rule in &rules {
            if rule.claims.is_empty() || rule.claims.values().any(Vec::is_empty) {
                return Err(bad("each rule names at least one claim, each with at least one value".into()));
            }
            let grant = &rule.grant;
            if grant.repositories.is_empty()
                || grant.actions.is_empty()
                || grant.actions.contains(Action::Admin)
            {
                return Err(bad(
                    "each rule grants repositories some of pull, push and delete (never admin)".into()
                ));
            }
        }
        Ok(Self { name: name.to_owned(), url: url.to_owned(), audience: audience.to_owned(), rules })
    }

    /// Where its discovery document is (`<issuer>/.well-known/openid-configuration`).
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.url.trim_end_matches('/'))
    }

    /// Checks `token` with the issuer's `keys` at `now` (seconds since the epoch): its
    /// signature, issuer, audience and times (30 s of skew; `exp` required), then its claims
    /// against the rules.
    pub fn verify(&self, token: &str, keys: &[VerifyingKey], now: u64) -> Result<Workload, Rejected> {
        let invalid = |m: &str| Rejected::Invalid(m.to_owned());
        let unverified = crate::jwt::parse(token).map_err(|e| Rejected::Invalid(reason(&e)))?;
        if !unverified.signer_known(keys) {
            return Err(Rejected::UnknownKey);
        }
        let claims: serde_json::Map<String, Value> =
            unverified.verify(keys).map_err(|e| Rejected::Invalid(reason(&e)))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.url.as_str()) {
            return Err(invalid("issued by someone else"));
        }
        let audience: Option<Audience> =
            claims.get("aud").and_then(|a| serde_json::from_value(a.clone()).ok());
        if !audience.is_some_and(|a| a.contains(&self.audience)) {
            return Err(invalid("for another audience"));
        }
        let time = |name: &str| claims.get(name).and_then(Value::as_u64);
        let leeway = LEEWAY.as_secs();
        let expires = time("exp").ok_or_else(|| invalid("no expiry"))?;
        if expires + leeway <= now {
            return Err(invalid("expired"));
        }
        if time("nbf").unwrap_or(0) > now + leeway || time("iat").unwrap_or(0) > now + leeway {
            return Err(invalid("not valid yet"));
        }
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
        if subject.is_empty() || subject.len() > MAX_SUBJECT || subject.chars().any(char::is_control) {
            return Err(invalid("no usable subject"));
        }
        let grants: Vec<Grant> =
            self.rules.iter().filter(|r| r.matches(&claims)).map(|r| r.grant.clone()).collect();
        if grants.is_empty() {
            return Err(Rejected::NoRule(self.looked_at(&claims)));
        }
        let token_id = match claims.get("jti").and_then(Value::as_str) {
            Some(jti) if !jti.is_empty() && jti.len() <= 128 => jti.to_owned(),
            _ => {
                use sha2::Digest as _;
                hex::encode(&sha2::Sha256::digest(token.as_bytes())[..16])
            }
        };
        Ok(Workload {
            name: format!("{}:{subject}", self.name),
            issuer: self.url.clone(),
            claims: recorded(&claims),
            grants,
            expires,
            token_id,
        })
    }

    /// The claims the rules look at, as the token has them (`ref=refs/heads/dev`).
    fn looked_at(&self, claims: &serde_json::Map<String, Value>) -> String {
        let mut names: Vec<&String> = self.rules.iter().flat_map(|r| r.claims.keys()).collect();
        names.sort();
        names.dedup();
        names
            .iter()
            .map(|n| {
                let value =
                    claims.get(*n).map_or_else(|| "(none)".to_owned(), |v| scalar(v).unwrap_or_default());
                format!("{n}={}", cut(&value, 100))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether `url` is `https://…`, or `http://` to a loopback host: what an issuer's URL and its
/// JWKS URL may be.
pub fn secure_url(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

fn cut(s: &str, max: usize) -> String {
    let cleaned: String = s.chars().filter(|c| !c.is_control()).collect();
    if cleaned.len() <= max {
        return cleaned;
    }
    let mut end = max;
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &cleaned[..end])
}

fn recorded(claims: &serde_json::Map<String, Value>) -> BTreeMap<String, String> {
    claims
        .iter()
        .filter(|(name, _)| name.len() <= 64)
        .filter_map(|(name, v)| Some((cut(name, 64), cut(&scalar(v)?, MAX_RECORDED_VALUE))))
        .take(MAX_RECORDED_CLAIMS)
        .collect()
}

fn reason(e: &Error) -> String {
    match e {
        Error::Token(m) | Error::Key(m) => m.clone(),
        other => other.to_string(),
    }
}

/// An issuer's discovery document (`/.well-known/openid-configuration`), the parts used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    /// Where its keys are.
    pub jwks_uri: String,
}

impl Discovery {
    /// Reads a discovery document of `issuer`: its `issuer` must be exactly `issuer` (OpenID
    /// Connect Discovery §4.3), its `jwks_uri` an `https` URL (`http` on loopback).
    pub fn parse(json: &[u8], issuer: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Document {
            issuer: String,
            jwks_uri: String,
        }
        let bad = |m: String| Error::Key(format!("discovery document of `{issuer}`: {m}"));
        let doc: Document = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        if doc.issuer != issuer {
            return Err(bad(format!("it names another issuer, `{}`", cut(&doc.issuer, 200))));
        }
        if !secure_url(&doc.jwks_uri) {
            return Err(bad("jwks_uri is not an https:// URL (http:// only on loopback)".into()));
        }
        Ok(Self { jwks_uri: doc.jwks_uri })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{Algorithm, SigningKey};
    use crate::policy::Actions;

    fn github() -> Issuer {
        let rule = |claims: &[(&str, &[&str])], repos: &str, actions: &[Action]| ClaimRule {
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
            grant: Grant {
                repositories: vec![repos.parse().expect("pattern")],
                actions: Actions::of(actions),
            },
        };
        Issuer::new(
            "github",
            "https://token.actions.githubusercontent.com",
            "registry",
            vec![
                rule(
                    &[("repository", &["acme/app"]), ("ref", &["refs/heads/main"])],
                    "acme/app/**",
                    &[Action::Pull, Action::Push],
                ),
                rule(&[("repository_owner", &["acme"])], "acme/**", &[Action::Pull]),
                rule(
                    &[("ref", &["refs/tags/v*"]), ("repository", &["acme/app"])],
                    "releases/app",
                    &[Action::Push],
                ),
            ],
        )
        .expect("valid")
    }

    fn claims(overrides: &[(&str, Value)]) -> Value {
        let mut c = serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com",
            "aud": "registry",
            "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app",
            "repository_owner": "acme",
            "ref": "refs/heads/main",
            "run_id": 42,
            "jti": "abc",
            "iat": crate::token::now(),
            "exp": crate::token::now() + 300,
        });
        for (k, v) in overrides {
            c[*k] = v.clone();
        }
        c
    }

    #[test]
    fn rules_turn_claims_into_grants() {
        let key = SigningKey::generate(Algorithm::ES256).expect("key");
        let keys = [key.verifying_key()];
        let issuer = github();
        let now = crate::token::now();
        let sign = |o: &[(&str, Value)]| key.sign(&claims(o)).expect("signs");

        let w = issuer.verify(&sign(&[]), &keys, now).expect("admitted");
        assert_eq!(w.name, "github:repo:acme/app:ref:refs/heads/main");
        assert_eq!(w.grants.len(), 2, "main pushes acme/app/** and pulls acme/**");
        assert_eq!(w.claims["run_id"], "42");
        assert_eq!(w.token_id, "abc");

        let tag = issuer.verify(&sign(&[("ref", "refs/tags/v1.2".into())]), &keys, now).expect("admitted");
        assert_eq!(
            tag.grants.iter().map(|g| g.repositories[0].to_string()).collect::<Vec<_>>(),
            ["acme/**", "releases/app"]
        );

        let stranger = sign(&[("repository", "evil/app".into()), ("repository_owner", "evil".into())]);
        let Err(Rejected::NoRule(why)) = issuer.verify(&stranger, &keys, now) else { panic!("admitted") };
        assert!(why.contains("repository=evil/app") && why.contains("ref=refs/heads/main"), "{why}");

        for (overrides, why) in [
            (vec![("aud", Value::from("elsewhere"))], "for another audience"),
            (vec![("aud", serde_json::json!(["a", "b"]))], "for another audience"),
            (vec![("iss", Value::from("https://gitlab.com"))], "issued by someone else"),
            (vec![("exp", Value::from(now - 31))], "expired"),
            (vec![("exp", Value::Null)], "no expiry"),
            (vec![("nbf", Value::from(now + 600))], "not valid yet"),
            (vec![("sub", Value::from(""))], "no usable subject"),
        ] {
            assert_eq!(issuer.verify(&sign(&overrides), &keys, now), Err(Rejected::Invalid(why.into())));
        }
        let listed = sign(&[("aud", serde_json::json!(["other", "registry"]))]);
        assert!(issuer.verify(&listed, &keys, now).is_ok(), "one of several audiences");

        // Another key: unknown (fetch the keys again); the right kid but a forged signature.
        let other = SigningKey::generate(Algorithm::ES256).expect("key");
        assert_eq!(
            issuer.verify(&other.sign(&claims(&[])).expect("signs"), &keys, now),
            Err(Rejected::UnknownKey)
        );
        let mut parts: Vec<String> = sign(&[]).split('.').map(str::to_owned).collect();
        parts[2] = other.sign(&claims(&[])).expect("signs").rsplit('.').next().expect("sig").to_owned();
        assert_eq!(
            issuer.verify(&parts.join("."), &keys, now),
            Err(Rejected::Invalid("bad signature".into()))
        );
        assert_eq!(
            claimed_issuer(&sign(&[])).as_deref(),
            Some("https://token.actions.githubusercontent.com")
        );
    }

    #[test]
    fn issuers_and_discovery_are_checked() {
        let rules = github().rules;
        assert!(Issuer::new("gh", "http://token.example", "r", rules.clone()).is_err(), "http off loopback");
        assert!(Issuer::new("gh", "http://127.0.0.1:8080", "r", rules.clone()).is_ok());
        assert!(Issuer::new("gh", "http://[::1]:8080/x", "r", rules.clone()).is_ok());
        assert!(Issuer::new("gh", "https://x", "", rules.clone()).is_err(), "no audience");
        assert!(Issuer::new("GH", "https://x", "r", rules.clone()).is_err(), "bad name");
        assert!(Issuer::new("gh", "https://x", "r", vec![]).is_err(), "no rules");
        let mut open = rules[0].clone();
        open.claims.clear();
        assert!(Issuer::new("gh", "https://x", "r", vec![open]).is_err(), "a rule admitting everyone");
        let mut admin = rules[0].clone();
        admin.grant.actions = Actions::ALL;
        assert!(Issuer::new("gh", "https://x", "r", vec![admin]).is_err(), "admin");

        let doc = br#"{"issuer":"https://x","jwks_uri":"https://x/.well-known/jwks"}"#;
        assert_eq!(Discovery::parse(doc, "https://x").expect("valid").jwks_uri, "https://x/.well-known/jwks");
        assert!(Discovery::parse(doc, "https://y").is_err(), "another issuer");
        assert!(Discovery::parse(br#"{"issuer":"https://x","jwks_uri":"http://x/k"}"#, "https://x").is_err());
        assert!(Discovery::parse(b"[]", "https://x").is_err());
    }
}
