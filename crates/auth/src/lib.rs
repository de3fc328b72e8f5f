//! Access control for OCI registries: who a caller is and what it may do.
//!
//! - [`Htpasswd`]: users in an htpasswd file of bcrypt entries (what `htpasswd -B` writes and
//!   distribution and zot read); constant-time checks, the same cost for unknown users.
//! - [`Scope`]: the scopes of the Docker registry token specification
//!   (`repository:team/app:pull,push`, `registry:catalog:*`).
//! - [`Policy`]: rules by repository [`Pattern`] (`*` within a component, `**` any depth)
//!   granting [`Action`]s (`pull`, `push`, `delete`, `admin`) to users, groups and anonymous;
//!   a caller's actions are the union of every rule that matches.
//! - [`jwt`] and [`TokenService`]: tokens signed with ES256 or EdDSA (aws-lc-rs), granting the
//!   intersection of the scopes asked for and the permissions held; refresh tokens that die
//!   with the password; an external issuer's tokens trusted by key, issuer and audience.
//! - [`signature`]: Sigstore bundles and cosign signatures verified offline against trusted
//!   Fulcio roots, Rekor keys and public keys.
//! - [`credential`]: robot accounts and personal access tokens — secrets shown once, stored
//!   as hashes, bounded by grants and by their owner's rights, with an expiry.
//! - [`oidc`]: workload identity — OIDC tokens of trusted issuers (GitHub Actions, GitLab CI,
//!   Kubernetes) checked against the issuer's keys, and claim rules that turn one into grants.
//! - [`Authenticator`]: all of it together, with failed-login limits per user and per client
//!   address and a one-minute cache of verified passwords.
//!
//! It does no I/O and runs no server: `wharf-server` puts it behind HTTP, and any other Rust
//! tool (a token service of its own, a proxy) can too.
//!
//! # Example: a login, a token, a check
//! ```
//! use std::collections::BTreeMap;
//! use wharf_auth::{Action, Authenticator, Htpasswd, Identity, Policy, Rule, Scope, SigningKey, TokenService};
//!
//! let mut users = Htpasswd::default();
//! users.set("alice", "wonderland", 4)?;
//! let rule = Rule {
//!     repositories: vec!["team/**".parse()?],
//!     users: BTreeMap::from([("alice".into(), wharf_auth::Actions::of(&[Action::Pull, Action::Push]))]),
//!     ..Rule::default()
//! };
//! let tokens = TokenService::new(SigningKey::generate(wharf_auth::Algorithm::ES256)?, "wharf", "registry");
//! let auth = Authenticator::new(users, Policy::new(vec![rule], &BTreeMap::new()), tokens);
//!
//! let who = auth.login("alice", "wonderland", None).expect("the right password");
//! let granted = auth.grant(&who.into(), &Scope::parse_list("repository:team/app:pull,push,delete")?);
//! assert_eq!(granted, [Scope::repository("team/app", &["pull", "push"])]);
//! let token = auth.tokens().issue(Some("alice"), granted)?.token;
//! let principal = auth.bearer(&token).expect("a valid token");
//! assert!(auth.can(&principal, "team/app", Action::Push));
//! assert!(!auth.can(&principal, "team/app", Action::Delete));
//! assert!(auth.login("alice", "guess", None).is_err());
//! # Ok::<(), wharf_auth::Error>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access;
pub mod credential;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod htpasswd;
pub mod jwt;
mod limiter;
pub mod oidc;
mod policy;
mod scope;
pub mod signature;
mod token;

pub use access::{
    Attempt, Authenticator, CREDENTIAL_CACHE_TTL, Check, Denied, MAX_SLOW_DOWN, Principal, SLOW_DOWN_STEP,
};
pub use credential::{Credential, Grant, Secret};
pub use error::{Error, Result};
pub use htpasswd::{DEFAULT_COST, Htpasswd, valid_user};
pub use jwt::{Algorithm, SigningKey, VerifyingKey};
pub use limiter::{FailureLimiter, address_key};
pub use policy::{ALL_USERS, Action, Actions, Identity, Pattern, Policy, Rule, glob};
pub use scope::{MAX_SCOPE_LEN, Scope, join as join_scopes};
pub use token::{Audience, Claims, External, Issued, LEEWAY, TokenService, now};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
