//! Image references: `[host[:port]/]repository[:tag][@digest]`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::name::{Repository, Tag};

/// The registry a reference names when it names none.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves the API of [`DOCKER_HUB`].
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The tag a reference gets when it has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest `registry/repository` accepted, in bytes (the limit of distribution's
/// reference package and of most clients).
pub const MAX_NAME_LEN: usize = 255;

/// A fully qualified image reference, normalized the way docker and its kin do it.
///
/// - The first path component is a registry host when it contains `.` or `:`, is `localhost`,
///   holds an uppercase letter, or is an IPv6 literal in brackets (`[::1]:5000`); otherwise the
///   registry is `docker.io`.
/// - On `docker.io`, a one-component repository gets the `library/` prefix, and
///   `index.docker.io` is spelled `docker.io`.
/// - With neither tag nor digest, the tag is `latest`. A tag and a digest may both be present;
///   both are kept, and [`Reference::target`] prefers the digest.
///
/// [`Display`](fmt::Display) prints the full normalized form, which parses back to an equal
/// value; [`Reference::familiar`] prints the short form people type.
///
/// # Example
/// ```
/// use wharf_types::Reference;
///
/// let r: Reference = "ubuntu".parse()?;
/// assert_eq!(r.to_string(), "docker.io/library/ubuntu:latest");
/// assert_eq!(r.api_host(), "registry-1.docker.io");
/// assert_eq!(r.familiar(), "ubuntu:latest");
///
/// let r: Reference = "localhost:5000/wasm/hello:v1".parse()?;
/// assert_eq!((r.registry(), r.repository().as_str()), ("localhost:5000", "wasm/hello"));
/// assert_eq!(r.tag().map(|t| t.as_str()), Some("v1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: Box<str>,
    repository: Repository,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl Reference {
    /// A reference to `repository` on `registry` (`host[:port]`), tagged `latest`.
    pub fn new(registry: &str, repository: Repository) -> Result<Self> {
        let registry = normalize_registry(registry)?;
        check_name_len(&registry, &repository)?;
        Ok(Self { registry, repository, tag: Some(default_tag()), digest: None })
    }

    /// The same reference with `tag` (and no digest).
    #[must_use]
    pub fn with_tag(self, tag: Tag) -> Self {
        Self { tag: Some(tag), digest: None, ..self }
    }

    /// The same reference pinned to `digest` (the tag, if any, is kept for display).
    #[must_use]
    pub fn with_digest(self, digest: Digest) -> Self {
        Self { digest: Some(digest), ..self }
    }

    /// The registry, `host[:port]`, as written (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) to send API requests to: the registry, except that Docker Hub's API
    /// lives at `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        if &*self.registry == DOCKER_HUB { DOCKER_HUB_API_HOST } else { &self.registry }
    }

    /// The repository.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when there is one, otherwise the tag.
    pub fn target(&self) -> TagOrDigest {
        match (&self.digest, &self.tag) {
            (Some(d), _) => TagOrDigest::Digest(d.clone()),
            (None, Some(t)) => TagOrDigest::Tag(t.clone()),
            (None, None) => TagOrDigest::Tag(default_tag()),
        }
    }

    /// The short form people type: `ubuntu:latest` for `docker.io/library/ubuntu:latest`,
    /// `user/app:v1` for `docker.io/user/app:v1`; other registries are kept.
    pub fn familiar(&self) -> String {
        let mut out = String::new();
        let repo = self.repository.as_str();
        let first = repo.split('/').next().unwrap_or_default();
        // `docker.io/my.org/app` stays whole: `my.org/app` would name the registry `my.org`.
        if &*self.registry == DOCKER_HUB && !looks_like_registry(first) {
            match repo.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => out.push_str(rest),
                _ => out.push_str(repo),
            }
        } else {
            out.push_str(&self.registry);
            out.push('/');
            out.push_str(repo);
        }
        self.push_tag_and_digest(&mut out);
        out
    }

    fn push_tag_and_digest(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag.as_str());
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest.as_str());
        }
    }
}

fn default_tag() -> Tag {
    DEFAULT_TAG.parse().expect("`latest` is a valid tag")
}

fn check_name_len(registry: &str, repository: &Repository) -> Result<()> {
    let len = registry.len() + 1 + repository.as_str().len();
    if len > MAX_NAME_LEN {
        return Err(Error::invalid_reference(
            &format!("{registry}/{repository}"),
            format!("registry/repository is {len} bytes, more than {MAX_NAME_LEN}"),
        ));
    }
    Ok(())
}

/// Whether the first path component names a registry rather than a repository component.
fn looks_like_registry(component: &str) -> bool {
    component.contains(['.', ':'])
        || component == "localhost"
        || component.starts_with('[')
        || component.bytes().any(|b| b.is_ascii_uppercase())
}

/// A registry host, `host[:port]` (a DNS name, IPv4, or a bracketed IPv6 literal),
/// validated, with Docker Hub's aliases spelled `docker.io`: what registry-wide calls (the
/// catalog, a ping) take, so that `"127.0.0.1:5000"` can never be read as a repository of
/// Docker Hub.
///
/// ```
/// use wharf_types::{Reference, Registry};
///
/// let registry: Registry = "127.0.0.1:5000".parse()?;
/// assert_eq!(registry.as_str(), "127.0.0.1:5000");
/// assert_eq!("index.docker.io".parse::<Registry>()?.api_host(), "registry-1.docker.io");
/// let reference: Reference = "127.0.0.1:5000/org/app:v1".parse()?;
/// assert_eq!(Registry::from(&reference), registry);
/// assert!("127.0.0.1:5000/org".parse::<Registry>().is_err());
/// # Ok::<(), wharf_types::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registry(Box<str>);

impl Registry {
    /// The host as written (`docker.io` for Docker Hub).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host (and port) to send API requests to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if &*self.0 == DOCKER_HUB { DOCKER_HUB_API_HOST } else { &self.0 }
    }
}

impl FromStr for Registry {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.is_empty() || s.contains('/') {
            return Err(Error::invalid_reference(s, "a registry is `host[:port]`, without a path"));
        }
        normalize_registry(s).map(Self)
    }
}

impl From<&Reference> for Registry {
    fn from(reference: &Reference) -> Self {
        Self(reference.registry.clone())
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates `host[:port]` (a DNS-like name, IPv4, or a bracketed IPv6 literal) and spells
/// Docker Hub's aliases `docker.io`.
fn normalize_registry(registry: &str) -> Result<Box<str>> {
    let bad = |why: &str| Err(Error::invalid_reference(registry, format!("registry host: {why}")));
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return bad("unclosed `[` of an IPv6 address");
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("not an IPv6 address between `[` and `]`");
        }
        match after {
            "" => (ip, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return bad("only `:port` may follow an IPv6 address"),
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("the port must be 1 to 5 digits");
    }
    if !registry.starts_with('[') {
        let valid_label = |label: &str| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        };
        if !host.split('.').all(valid_label) {
            return bad("each dot-separated label is letters, digits and inner dashes");
        }
    }
    Ok(match registry {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.into(),
        other => other.into(),
    })
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::invalid_reference(s, "empty reference"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((name, digest)) => (
                name,
                Some(digest.parse::<Digest>().map_err(|e| Error::invalid_reference(s, e.to_string()))?),
            ),
            None => (s, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if looks_like_registry(first) => {
                (normalize_registry(first).map_err(|e| reword(s, &e))?, rest)
            }
            _ => (Box::from(DOCKER_HUB), name),
        };
        let (path, tag) = match path.rsplit_once(':') {
            Some((path, tag)) => {
                (path, Some(tag.parse::<Tag>().map_err(|e| Error::invalid_reference(s, e.to_string()))?))
            }
            None => (path, None),
        };
        let repository = if &*registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}").parse::<Repository>()
        } else {
            path.parse::<Repository>()
        }
        .map_err(|e| Error::invalid_reference(s, e.to_string()))?;
        check_name_len(&registry, &repository).map_err(|e| reword(s, &e))?;
        let tag = if tag.is_none() && digest.is_none() { Some(default_tag()) } else { tag };
        Ok(Self { registry, repository, tag, digest })
    }
}

fn reword(input: &str, inner: &Error) -> Error {
    match inner {
        Error::InvalidReference { reason, .. } => Error::invalid_reference(input, reason.clone()),
        other => Error::invalid_reference(input, other.to_string()),
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("{}/{}", self.registry, self.repository);
        self.push_tag_and_digest(&mut out);
        f.write_str(&out)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Reference {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        const REGISTRIES: &[&str] =
            &["docker.io", "localhost", "localhost:5000", "127.0.0.1:5000", "[::1]:5000", "r.example.com"];
        let registry = *u.choose(REGISTRIES)?;
        let repository = Repository::arbitrary(u)?;
        let mut r = Self::new(registry, repository).map_err(|_| arbitrary::Error::IncorrectFormat)?;
        r.tag = u.arbitrary()?;
        r.digest = u.arbitrary()?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(default_tag());
        }
        Ok(r)
    }
}

/// The `<reference>` of a manifest URL: a tag or a digest.
///
/// A string with a `:` is a digest, anything else a tag (tags cannot hold `:`).
///
/// # Example
/// ```
/// use wharf_types::TagOrDigest;
///
/// assert!(matches!("v1".parse()?, TagOrDigest::Tag(_)));
/// assert!(matches!(
///     "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".parse()?,
///     TagOrDigest::Digest(_)
/// ));
/// assert!("sha256:nope".parse::<TagOrDigest>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TagOrDigest {
    /// A tag.
    Tag(Tag),
    /// A digest.
    Digest(Digest),
}

impl FromStr for TagOrDigest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.contains(':') { s.parse().map(Self::Digest) } else { s.parse().map(Self::Tag) }
    }
}

impl fmt::Display for TagOrDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => t.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

impl From<Tag> for TagOrDigest {
    fn from(t: Tag) -> Self {
        Self::Tag(t)
    }
}

impl From<Digest> for TagOrDigest {
    fn from(d: Digest) -> Self {
        Self::Digest(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r: Reference = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        let again: Reference = r.to_string().parse().expect("display parses");
        assert_eq!(again, r, "round trip of {s}");
        (
            r.registry().to_owned(),
            r.repository().to_string(),
            r.tag().map(ToString::to_string),
            r.digest().map(ToString::to_string),
        )
    }

    #[allow(clippy::unnecessary_wraps)]
    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn acceptance_examples() {
        assert_eq!(parts("ubuntu"), ("docker.io".into(), "library/ubuntu".into(), some("latest"), None));
        assert_eq!(
            parts("library/ubuntu:22.04"),
            ("docker.io".into(), "library/ubuntu".into(), some("22.04"), None)
        );
        assert_eq!(parts("localhost:5000/a/b:v1"), ("localhost:5000".into(), "a/b".into(), some("v1"), None));
        let digest = format!("sha256:{HEX}");
        assert_eq!(
            parts(&format!("127.0.0.1:5000/x@{digest}")),
            ("127.0.0.1:5000".into(), "x".into(), None, some(&digest))
        );
        assert_eq!(parts("[::1]:5000/x:y"), ("[::1]:5000".into(), "x".into(), some("y"), None));
        assert_eq!(
            parts(&format!("registry.example.com/a/b:t@{digest}")),
            ("registry.example.com".into(), "a/b".into(), some("t"), some(&digest))
        );
        for bad in [
            "a/B".to_owned(),
            "x:".to_owned(),
            "x@sha256:abc".to_owned(),
            format!("x:{}", "t".repeat(129)),
            "../etc".to_owned(),
            "a//b".to_owned(),
            format!("x@sha256:{}", HEX.to_uppercase()),
        ] {
            let err = bad.parse::<Reference>().expect_err(&bad);
            assert!(matches!(err, Error::InvalidReference { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn normalization() {
        assert_eq!(parts("localhost/x").0, "localhost");
        assert_eq!(parts("index.docker.io/foo").1, "library/foo");
        assert_eq!(parts("docker.io/user/app:v1").1, "user/app");
        assert_eq!(parts("[2001:db8::1]/a").0, "[2001:db8::1]");
        // Not a host: the first component has no `.`, `:` and is not localhost.
        assert_eq!(parts("user/app").0, "docker.io");
        // docker's rule: `localhost:5000` alone is a Docker Hub repository with a tag.
        assert_eq!(parts("localhost:5000").2, some("5000"));
        let r: Reference = "ubuntu@sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
            .parse()
            .expect("valid");
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), format!("ubuntu@sha256:{HEX}"));
        assert!(matches!(r.target(), TagOrDigest::Digest(_)));
        let r: Reference = "ghcr.io/o/r:1".parse().expect("valid");
        assert_eq!(r.familiar(), "ghcr.io/o/r:1");
        assert_eq!(r.api_host(), "ghcr.io");
        let r: Reference = "docker.io/library/a/b".parse().expect("valid");
        assert_eq!(r.familiar(), "library/a/b:latest");
        let r: Reference = "docker.io/my.org/app".parse().expect("valid");
        assert_eq!(r.familiar(), "docker.io/my.org/app:latest");
        assert_eq!(r.familiar().parse::<Reference>().expect("valid"), r);
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "[::1/x",
            "[zz]:5000/x",
            "[::1]5000/x",
            "host:port/x",
            "host:123456/x",
            "-bad.host/x",
            "bad-.host/x",
            "a..b.com/x",
            "host.com/",
            "host.com//x",
            "x@",
            "@sha256:abc",
            "x:y:z",
            "x:y@sha256:abc",
            "UPPER",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
        let long_repo = format!("r.io/{}", "a".repeat(251));
        assert!(long_repo.parse::<Reference>().is_err());
    }
}
