//! Wasm packages (`namespace:name`, as `wkg` names them) and the repositories they live in.
//!
//! `wkg` maps a package `ns:name@version` to the OCI reference
//! `<registry>/<prefix><ns>/<name>:<version>`, where the registry and the prefix come from
//! `/.well-known/wasm-pkg/registry.json` on the registry's host (wasm-pkg-tools'
//! `registry-metadata.md`). [`Packages`] is that mapping, from `[packages]`: the prefix, a prefix
//! per namespace, the host clients reach; both ways (package → repository for the API and the
//! page, repository → package for the checks at push). [`PackageVersion`] reads a tag as a
//! semantic version, `_` standing for the `+` of build metadata (OCI tags cannot hold `+`;
//! wasm.directory maps it the same way).
//!
//! Below: [`versioning`], the `[[versioning]]` rules checked at push (immutable tags, semver
//! only, compatible within a `^` range), and `view`, a package's versions, dependencies and
//! dependents.

pub mod versioning;
pub(crate) mod view;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};
use wharf_types::{Repository, Tag};

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

/// A package's name: `namespace:name`, each a WIT identifier (lower-case words of letters and
/// digits joined by `-`, each word starting with a letter).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageName {
    namespace: String,
    name: String,
}

impl PackageName {
    /// The namespace (`acme`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name within it (`greeter`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for PackageName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::NameInvalid(format!(
                "package `{}`: expected namespace:name in lower-case kebab case (acme:greeter)",
                crate::text::printable(s, 80)
            ))
        };
        let (namespace, name) = s.split_once(':').ok_or_else(bad)?;
        if !is_id(namespace) || !is_id(name) {
            return Err(bad());
        }
        Ok(Self { namespace: namespace.to_owned(), name: name.to_owned() })
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.name)
    }
}

/// A WIT identifier as package names use it: `word(-word)*`, each word lower-case letters and
/// digits starting with a letter, at most 64 bytes.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('-').all(|w| {
            w.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// A tag read as a semantic version: `1.2.3`, `0.2.0-rc.1`, `1.0.0_build.5` (`_` is `+`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageVersion(semver::Version);

impl PackageVersion {
    /// The version a tag names, if it names one.
    pub fn of_tag(tag: &str) -> Option<Self> {
        // `_` never appears in a semantic version: it can only be the `+` OCI tags lack.
        let text = tag.replacen('_', "+", 1);
        semver::Version::parse(&text).ok().map(Self)
    }

    /// The version.
    pub fn version(&self) -> &semver::Version {
        &self.0
    }

    /// Whether `self` and `other` are in one `^` range, as `wkg publish` groups them
    /// (`X.*` for X ≥ 1, `0.Y.*` for Y ≥ 1, `0.0.Z` alone); pre-releases join their series.
    pub fn same_series(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        if a.major > 0 || b.major > 0 {
            a.major == b.major
        } else if a.minor > 0 || b.minor > 0 {
            a.minor == b.minor
        } else {
            a.patch == b.patch
        }
    }

    /// Semver order (build metadata last, as `semver` orders it).
    pub fn cmp_version(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl fmt::Display for PackageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
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
            if !is_id(ns) {
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
        format!("{}{}/{}", self.prefix_of(&package.namespace), package.namespace, package.name)
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

/// The tag a version is stored under (`+` → `_`).
pub fn tag_of(version: &semver::Version) -> Option<Tag> {
    version.to_string().replacen('+', "_", 1).parse().ok()
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
        for bad in
            ["acme", "Acme:x", "acme:", ":x", "a:b:c", "acme:greeter@1", "acme:-x", "acme:1x", "acme:x--y"]
        {
            assert!(bad.parse::<PackageName>().is_err(), "{bad}");
        }
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

    #[test]
    fn versions_and_series() {
        let v = |t: &str| PackageVersion::of_tag(t).expect("valid");
        assert!(PackageVersion::of_tag("latest").is_none() && PackageVersion::of_tag("v1.0.0").is_none());
        assert!(PackageVersion::of_tag("1.0").is_none());
        assert_eq!(v("1.0.0_build.5").to_string(), "1.0.0+build.5");
        assert_eq!(tag_of(v("1.0.0_build.5").version()).expect("valid").as_str(), "1.0.0_build.5");
        assert!(v("1.2.0").same_series(&v("1.0.0")) && !v("2.0.0").same_series(&v("1.9.0")));
        assert!(v("0.1.2").same_series(&v("0.1.0")) && !v("0.2.0").same_series(&v("0.1.0")));
        assert!(!v("0.0.2").same_series(&v("0.0.1")) && v("0.0.1").same_series(&v("0.0.1")));
        let mut list = [v("0.2.0"), v("0.1.10"), v("0.1.2"), v("0.1.2-rc.1")];
        list.sort_by(PackageVersion::cmp_version);
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["0.1.2-rc.1", "0.1.2", "0.1.10", "0.2.0"]);
    }
}
