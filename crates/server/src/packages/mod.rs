//! Wasm packages (`namespace:name`, as `wkg` names them) and the repositories they live in.
//!
//! `wkg` maps a package `ns:name@version` to the OCI reference
//! `<registry>/<prefix><ns>/<name>:<version>`, where the registry and the prefix come from
//! `/.well-known/wasm-pkg/registry.json` on the registry's host (wasm-pkg-tools'
//! `registry-metadata.md`). [`Packages`] is that mapping, from `[packages]`: the prefix, a prefix
//! per namespace, the host clients reach; both ways (package → repository for the API and the
//! page, repository → package for the checks at push). [`PackageName`] and [`PackageVersion`]
//! (a tag read as a semantic version, `_` standing for the `+` of build metadata) are
//! `wharf-types`', shared with the client and the CLI.
//!
//! Below: [`versioning`], the `[[versioning]]` rules checked at push (immutable tags, semver
//! only, compatible within a `^` range), and `view`, a package's versions, dependencies and
//! dependents.

pub mod versioning;
pub(crate) mod view;

use std::collections::BTreeMap;
use std::str::FromStr;

use serde_json::{Value, json};
use wharf_types::Repository;
pub use wharf_types::{PackageName, PackageVersion};

use crate::error::{Error, Result};

/// `[packages]` of the config file.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PackagesConfig {
    /// The prefix joined to a package's namespace (`wasm/` puts `acme:greeter` at
    /// `wasm/acme/greeter`) [default: none].
    pub namespace_prefix: Option<String>,
    /// The registry host `registry.json` names (`registry.example.com`, `host:port`)
    /// [default: the host of `public_url`, else the host the client asked].
    pub registry: Option<String>,
    /// A prefix per namespace, instead of `namespace_prefix` (`acme = "teams/"` puts
    /// `acme:greeter` at `teams/acme/greeter`).
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
}

/// The mapping between packages and repositories (`[packages]`).
#[derive(Clone, Debug, Default)]
pub struct Packages {
    prefix: String,
    namespaces: BTreeMap<String, String>,
    registry: Option<String>,
}

impl Packages {
    /// Checks `[packages]`: prefixes are empty or repository paths ending in `/`.
    pub fn from_config(config: &PackagesConfig) -> Result<Self> {
        let prefix = |p: &str, what: &str| -> Result<String> {
            if p.is_empty() {
                return Ok(String::new());
            }
            let trimmed = p.strip_suffix('/').unwrap_or(p);
            trimmed.parse::<Repository>().map_err(|e| {
                Error::BadRequest(format!(
                    "[packages] {what} `{}`: not a repository path: {e}",
                    crate::text::printable(p, 80)
                ))
            })?;
            Ok(format!("{trimmed}/"))
        };
        let mut namespaces = BTreeMap::new();
        for (ns, p) in &config.namespaces {
            if !PackageName::is_identifier(ns) {
                return Err(Error::BadRequest(format!(
                    "[packages.namespaces] `{}`: not a namespace (lower-case kebab case)",
                    crate::text::printable(ns, 80)
                )));
            }
            namespaces.insert(ns.clone(), prefix(p, &format!("namespaces.{ns}"))?);
        }
        let registry = match &config.registry {
            Some(r) if !crate::listener::valid_host(r) => {
                return Err(Error::BadRequest(format!(
                    "[packages] registry `{}`: expected host[:port]",
                    crate::text::printable(r, 80)
                )));
            }
            other => other.clone(),
        };
        Ok(Self {
            prefix: prefix(config.namespace_prefix.as_deref().unwrap_or_default(), "namespace_prefix")?,
            namespaces,
            registry,
        })
    }

    /// The prefix of a namespace's repositories.
    fn prefix_of(&self, namespace: &str) -> &str {
        self.namespaces.get(namespace).map_or(&self.prefix, String::as_str)
    }

    /// Where a package lives: `<prefix><ns>/<name>`.
    pub fn repository(&self, package: &PackageName) -> Repository {
        format!("{}{}/{}", self.prefix_of(package.namespace()), package.namespace(), package.name())
            .parse()
            .expect("a prefix, a namespace and a name make a repository")
    }

    /// The package a repository holds, if the mapping puts one there.
    pub fn package(&self, repo: &Repository) -> Option<PackageName> {
        let (head, name) = repo.as_str().rsplit_once('/')?;
        let (prefix, namespace) = match head.rsplit_once('/') {
            Some((p, ns)) => (&repo.as_str()[..=p.len()], ns),
            None => ("", head),
        };
        let package = PackageName::from_str(&format!("{namespace}:{name}")).ok()?;
        (self.prefix_of(namespace) == prefix).then_some(package)
    }

    /// The registry host `registry.json` names, given the host the client reached.
    pub fn registry<'a>(&'a self, reached: &'a str) -> &'a str {
        self.registry.as_deref().unwrap_or(reached)
    }

    /// `/.well-known/wasm-pkg/registry.json` for a client that reached `reached`: the
    /// registry, the prefix, and (for Wharf's tools; `wkg` ignores it) the per-namespace
    /// prefixes.
    pub fn registry_json(&self, reached: &str) -> Value {
        let registry = self.registry(reached);
        let mut body = json!({
            "preferredProtocol": "oci",
            "oci": { "registry": registry, "namespacePrefix": self.prefix },
        });
        if !self.namespaces.is_empty() {
            body["wharf"] = json!({ "namespaces": self.namespaces.iter().map(|(ns, p)| {
                (ns.clone(), json!({ "registry": registry, "namespacePrefix": p }))
            }).collect::<serde_json::Map<_, _>>() });
        }
        body
    }

    /// The prefix packages live under (`""` by default).
    pub fn namespace_prefix(&self) -> &str {
        &self.prefix
    }

    /// The per-namespace prefixes.
    pub fn namespaces(&self) -> &BTreeMap<String, String> {
        &self.namespaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packages(prefix: &str, namespaces: &[(&str, &str)]) -> Packages {
        Packages::from_config(&PackagesConfig {
            namespace_prefix: Some(prefix.to_owned()),
            registry: None,
            namespaces: namespaces.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect(),
        })
        .expect("config")
    }

    #[test]
    fn names_and_the_mapping() {
        let greeter: PackageName = "acme:greeter".parse().expect("valid");
        let p = packages("wasm/", &[("wasi", "mirror/")]);
        assert_eq!(p.repository(&greeter).as_str(), "wasm/acme/greeter");
        assert_eq!(p.package(&"wasm/acme/greeter".parse().expect("valid")), Some(greeter.clone()));
        assert_eq!(p.package(&"acme/greeter".parse().expect("valid")), None);
        assert_eq!(p.package(&"wasm/x/acme/greeter".parse().expect("valid")), None);
        let http: PackageName = "wasi:http".parse().expect("valid");
        assert_eq!(p.repository(&http).as_str(), "mirror/wasi/http");
        assert_eq!(p.package(&"mirror/wasi/http".parse().expect("valid")), Some(http));
        assert_eq!(p.package(&"wasm/wasi/http".parse().expect("valid")), None, "wasi lives elsewhere");
        let bare = packages("", &[]);
        assert_eq!(bare.package(&"acme/greeter".parse().expect("valid")), Some(greeter));
        assert_eq!(
            bare.package(
                &"library/Ubuntu".parse::<Repository>().unwrap_or_else(|_| "x/y/z".parse().expect("valid"))
            ),
            None
        );
        assert!(
            Packages::from_config(&PackagesConfig {
                namespace_prefix: Some("../".into()),
                ..Default::default()
            })
            .is_err()
        );
        let json = p.registry_json("127.0.0.1:5000");
        assert_eq!(json["oci"]["registry"], "127.0.0.1:5000");
        assert_eq!(json["oci"]["namespacePrefix"], "wasm/");
        assert_eq!(json["wharf"]["namespaces"]["wasi"]["namespacePrefix"], "mirror/");
    }
}
