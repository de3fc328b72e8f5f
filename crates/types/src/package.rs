//! Wasm packages as `wkg` names them: `namespace:name`, versioned by semantic versions stored
//! as OCI tags.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Input, Result};
use crate::name::Tag;

/// A package's name: `namespace:name`, each a WIT identifier (lower-case words of letters and
/// digits joined by `-`, each word starting with a letter, at most 64 bytes).
///
/// ```
/// use wharf_types::PackageName;
///
/// let p: PackageName = "acme:greeter".parse()?;
/// assert_eq!((p.namespace(), p.name()), ("acme", "greeter"));
/// assert!("Acme:greeter".parse::<PackageName>().is_err());
/// # Ok::<(), wharf_types::Error>(())
/// ```
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

    /// Whether `s` is a WIT identifier as a namespace or a name (`wasi`, `my-pkg2`).
    pub fn is_identifier(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 64
            && s.split('-').all(|w| {
                w.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                    && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    }
}

impl FromStr for PackageName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidPackage {
            input: Input::new(s),
            reason: "expected namespace:name in lower-case kebab case (acme:greeter)".into(),
        };
        let (namespace, name) = s.split_once(':').ok_or_else(bad)?;
        if !Self::is_identifier(namespace) || !Self::is_identifier(name) {
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

/// A package version: a semantic version, stored under a tag where `_` stands for the `+` of
/// build metadata (OCI tags cannot hold `+`; wasm.directory maps it the same way).
///
/// ```
/// use wharf_types::PackageVersion;
///
/// let v = PackageVersion::of_tag("1.0.0_build.5").expect("a version");
/// assert_eq!(v.to_string(), "1.0.0+build.5");
/// assert_eq!(v.tag().as_str(), "1.0.0_build.5");
/// assert!(PackageVersion::of_tag("latest").is_none());
/// assert!("0.1.2".parse::<PackageVersion>()?.same_series(&"0.1.0".parse()?));
/// # Ok::<(), wharf_types::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PackageVersion(semver::Version);

impl PackageVersion {
    /// The version a tag names, if it names one.
    pub fn of_tag(tag: &str) -> Option<Self> {
        // `_` never appears in a semantic version: it can only be the `+` OCI tags lack.
        tag.replacen('_', "+", 1).parse().ok()
    }

    /// The tag the version is stored under (`+` → `_`).
    pub fn tag(&self) -> Tag {
        self.0.to_string().replacen('+', "_", 1).parse().expect("a semantic version is a valid tag")
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

impl FromStr for PackageVersion {
    type Err = Error;

    /// A semantic version (`1.2.3`, `0.2.0-rc.1`, `1.0.0+build.5`), at most 128 bytes (a tag's
    /// limit).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidPackage { input: Input::new(s), reason };
        if s.len() > 128 {
            return Err(bad("a version is at most 128 bytes (an OCI tag holds it)".into()));
        }
        semver::Version::parse(s).map(Self).map_err(|e| bad(format!("not a semantic version: {e}")))
    }
}

impl fmt::Display for PackageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for bad in [
            "acme",
            "Acme:x",
            "acme:",
            ":x",
            "a:b:c",
            "acme:greeter@1",
            "acme:-x",
            "acme:1x",
            "acme:x--y",
            "",
            ":",
            "acme:gr\u{e9}eter",
        ] {
            assert!(bad.parse::<PackageName>().is_err(), "{bad}");
        }
        let long = format!("acme:{}", "a".repeat(65));
        assert!(long.parse::<PackageName>().is_err());
        let p: PackageName = "wasi:http-types2".parse().expect("valid");
        assert_eq!(p.to_string(), "wasi:http-types2");
    }

    #[test]
    fn versions_and_series() {
        let v = |t: &str| PackageVersion::of_tag(t).expect("valid");
        assert!(PackageVersion::of_tag("latest").is_none() && PackageVersion::of_tag("v1.0.0").is_none());
        assert!(PackageVersion::of_tag("1.0").is_none());
        assert_eq!(v("1.0.0_build.5").to_string(), "1.0.0+build.5");
        assert_eq!(v("1.0.0_build.5").tag().as_str(), "1.0.0_build.5");
        assert!(v("1.2.0").same_series(&v("1.0.0")) && !v("2.0.0").same_series(&v("1.9.0")));
        assert!(v("0.1.2").same_series(&v("0.1.0")) && !v("0.2.0").same_series(&v("0.1.0")));
        assert!(!v("0.0.2").same_series(&v("0.0.1")) && v("0.0.1").same_series(&v("0.0.1")));
        let mut list = [v("0.2.0"), v("0.1.10"), v("0.1.2"), v("0.1.2-rc.1")];
        list.sort_by(PackageVersion::cmp_version);
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["0.1.2-rc.1", "0.1.2", "0.1.10", "0.2.0"]);
        assert!("1.0.0".repeat(40).parse::<PackageVersion>().is_err());
        // The longest version that parses still makes a tag.
        let longest = format!("1.0.0-{}", "a".repeat(122));
        assert_eq!(longest.parse::<PackageVersion>().expect("valid").tag().as_str(), longest);
    }
}
