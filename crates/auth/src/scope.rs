//! Scopes of the Docker registry token specification: `repository:team/app:pull,push`,
//! `registry:catalog:*`, several separated by spaces.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest scope string accepted (a request may ask for many).
pub const MAX_SCOPE_LEN: usize = 4096;

/// One resource and the actions asked for (or granted) on it. Also the `access` entry of a
/// token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// `repository`, `registry`, … (a `(class)` suffix is kept).
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// The actions, in the order given, without duplicates.
    pub actions: Vec<String>,
}

impl Scope {
    /// A scope over a repository.
    pub fn repository(name: impl Into<String>, actions: &[&str]) -> Self {
        Self {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// `registry:catalog:*`, the scope of the catalog.
    pub fn catalog() -> Self {
        Self { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] }
    }

    /// Parses one scope. The name may hold `:` (a `host:port/` prefix): the type ends at the
    /// first `:`, the actions start after the last.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |message| Error::Scope { scope: wharf_types::error::Input::new(s), message };
        let (kind, rest) = s.split_once(':').ok_or_else(|| bad("expected type:name:actions"))?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(|| bad("expected type:name:actions"))?;
        let kind_ok =
            !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b"()._-/".contains(&b));
        if !kind_ok {
            return Err(bad("the type must be letters and digits"));
        }
        if name.is_empty() || name.len() > 512 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("the name is empty, too long, or holds a space or control character"));
        }
        let mut list: Vec<String> = Vec::new();
        for action in actions.split(',') {
            let ok = !action.is_empty()
                && action.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'_' || b == b'-');
            if !ok {
                return Err(bad("actions are comma-separated words"));
            }
            if !list.iter().any(|a| a == action) {
                list.push(action.to_owned());
            }
        }
        Ok(Self { kind: kind.to_owned(), name: name.to_owned(), actions: list })
    }

    /// Parses a space-separated list of scopes (the OAuth2 form), skipping empty items.
    pub fn parse_list(s: &str) -> Result<Vec<Self>> {
        if s.len() > MAX_SCOPE_LEN {
            return Err(Error::Scope { scope: wharf_types::error::Input::new(s), message: "too long" });
        }
        s.split(' ').filter(|p| !p.is_empty()).map(Self::parse).collect()
    }

    /// Whether the scope is over a repository.
    pub fn is_repository(&self) -> bool {
        self.kind == "repository" || self.kind.starts_with("repository(")
    }

    /// Whether it holds `action` (or `*`).
    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action || a == "*")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// The scopes joined by spaces, as a challenge's `scope` parameter carries them.
pub fn join(scopes: &[Scope]) -> String {
    scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_examples() {
        let s = Scope::parse("repository:samalba/my-app:pull,push").expect("parses");
        assert_eq!(s, Scope::repository("samalba/my-app", &["pull", "push"]));
        assert_eq!(s.to_string(), "repository:samalba/my-app:pull,push");
        let s = Scope::parse("repository:localhost:5000/app:pull").expect("parses");
        assert_eq!(s.name, "localhost:5000/app");
        assert_eq!(Scope::parse("registry:catalog:*").expect("parses"), Scope::catalog());
        let s = Scope::parse("repository(plugin):a:pull,pull").expect("parses");
        assert!(s.is_repository());
        assert_eq!(s.actions, ["pull"]);
        let list = Scope::parse_list("repository:a:pull  repository:b:push").expect("parses");
        assert_eq!(list.len(), 2);
        assert_eq!(join(&list), "repository:a:pull repository:b:push");
    }

    #[test]
    fn refuses_malformed_scopes() {
        for bad in [
            "",
            "repository",
            "repository:a",
            "repository::pull",
            ":a:pull",
            "repository:a:",
            "repository:a:pull,,push",
            "repo sitory:a:pull",
            "repository:a\nb:pull",
            "repository:a:pu ll",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Scope::parse_list(&"repository:a:pull ".repeat(1000)).is_err());
    }
}
