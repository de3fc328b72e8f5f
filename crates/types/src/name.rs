//! Repository names and tags, validated per the distribution spec.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// A repository name such as `library/ubuntu` or `wasm/hello-world`.
///
/// Valid names follow the distribution-spec grammar
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*` and are at most
/// [`Repository::MAX_LEN`] bytes long. Every component starts and ends with a lowercase letter
/// or digit, so a valid name can never be `..`, start with `/`, or hold an empty component:
/// it is safe to use as a relative path below a storage root.
///
/// # Example
/// ```
/// use wharf_types::Repository;
///
/// let repo: Repository = "wasm/hello-world".parse()?;
/// assert_eq!(repo.components().collect::<Vec<_>>(), ["wasm", "hello-world"]);
/// for bad in ["", "A", "a//b", "../etc", "/a", "a/", "a..b", "a___b", "-a"] {
///     assert!(bad.parse::<Repository>().is_err(), "{bad}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(Box<str>);

impl Repository {
    /// The longest name accepted, in bytes (the limit distribution and most clients apply).
    pub const MAX_LEN: usize = 255;

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated components, each non-empty and free of `/` and `..`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    fn validate(s: &str) -> Result<()> {
        if s.is_empty() {
            return Err(Error::invalid_repository(s, "the name is empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(Error::invalid_repository(s, "the name is longer than 255 bytes"));
        }
        for component in s.split('/') {
            validate_component(component).map_err(|reason| Error::invalid_repository(s, reason))?;
        }
        Ok(())
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn validate_component(component: &str) -> std::result::Result<(), &'static str> {
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return Err("empty path component (leading, trailing or double `/`)");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // One run of [a-z0-9]+.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return Err(if bytes[i].is_ascii_uppercase() {
                "uppercase letters are not allowed"
            } else {
                "a component must start and end with a lowercase letter or digit, and separators are `.`, `_`, `__` or dashes"
            });
        }
        if i == bytes.len() {
            return Ok(());
        }
        // One separator: `.`, `_`, `__` or `-+`.
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            b if b.is_ascii_uppercase() => return Err("uppercase letters are not allowed"),
            _ => return Err("only lowercase letters, digits, `.`, `_`, `-` and `/` are allowed"),
        }
        if i == bytes.len() {
            return Err("a component must end with a lowercase letter or digit");
        }
    }
}

impl FromStr for Repository {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::validate(s)?;
        Ok(Self(s.into()))
    }
}

impl TryFrom<&str> for Repository {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self> {
        s.parse()
    }
}

impl TryFrom<String> for Repository {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        Self::validate(&s)?;
        Ok(Self(s.into_boxed_str()))
    }
}

/// A tag such as `latest` or `v1.2.3`: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
///
/// # Example
/// ```
/// use wharf_types::Tag;
///
/// let tag: Tag = "v1.0_rc-1".parse()?;
/// assert_eq!(tag.as_str(), "v1.0_rc-1");
/// assert!(".hidden".parse::<Tag>().is_err());
/// assert!("a".repeat(129).parse::<Tag>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Box<str>);

impl Tag {
    /// The longest tag accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The fallback tag under which the referrers of `subject` are kept by registries without
    /// the referrers API: `<algorithm>-<encoded>`, cut to 128 characters.
    pub fn referrers_fallback(subject: &Digest) -> Self {
        let mut tag = format!("{}-{}", subject.algorithm(), subject.encoded());
        tag.truncate(Self::MAX_LEN);
        Self(tag.into_boxed_str())
    }

    fn validate(s: &str) -> Result<()> {
        let bytes = s.as_bytes();
        let Some(&first) = bytes.first() else {
            return Err(Error::invalid_tag(s, "the tag is empty"));
        };
        if bytes.len() > Self::MAX_LEN {
            return Err(Error::invalid_tag(s, "a tag has at most 128 characters"));
        }
        if !(first.is_ascii_alphanumeric() || first == b'_') {
            return Err(Error::invalid_tag(s, "a tag starts with a letter, digit or `_`"));
        }
        if !bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return Err(Error::invalid_tag(s, "a tag holds only letters, digits, `.`, `_` and `-`"));
        }
        Ok(())
    }
}

impl FromStr for Tag {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::validate(s)?;
        Ok(Self(s.into()))
    }
}

impl TryFrom<&str> for Tag {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self> {
        s.parse()
    }
}

macro_rules! string_newtype {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({:?})"), &*self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

string_newtype!(Repository, Tag);

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Repository {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        const SEPARATORS: &[&str] = &[".", "_", "__", "-", "--"];
        let mut name = String::new();
        for c in 0..u.int_in_range(1..=4)? {
            if c > 0 {
                name.push('/');
            }
            for p in 0..u.int_in_range(1..=3)? {
                if p > 0 {
                    name.push_str(u.choose(SEPARATORS)?);
                }
                for _ in 0..u.int_in_range(1..=8)? {
                    name.push(char::from(*u.choose(ALNUM)?));
                }
            }
        }
        name.parse().map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Tag {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        const FIRST: &[u8] = b"abcXYZ019_";
        const REST: &[u8] = b"abcXYZ019_.-";
        let mut tag = String::from(char::from(*u.choose(FIRST)?));
        for _ in 0..u.int_in_range(0..=127)? {
            tag.push(char::from(*u.choose(REST)?));
        }
        tag.parse().map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_grammar() {
        for ok in [
            "a",
            "library/ubuntu",
            "a/b/c/d",
            "a.b_c__d-e--f",
            "0",
            "my-org/my.repo/sub_dir",
            "conformance/repo1",
        ] {
            ok.parse::<Repository>().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "", "A", "a/B", "a//b", "/a", "a/", "..", "../etc", "a/../b", ".", "./a", "a.", "a_", "a-", "_a",
            "-a", "a..b", "a___b", "a._b", "a b", "a\\b", "a:b", "a@b", "é", "a/\u{0}",
        ] {
            assert!(bad.parse::<Repository>().is_err(), "{bad:?} accepted");
        }
        let longest = "a".repeat(Repository::MAX_LEN);
        longest.parse::<Repository>().expect("255 bytes is fine");
        assert!(format!("{longest}a").parse::<Repository>().is_err());
    }

    #[test]
    fn tag_grammar() {
        for ok in ["latest", "v1.0.0", "_", "A", "a-b_c.D", &"t".repeat(128)] {
            ok.parse::<Tag>().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", ".a", "-a", "a/b", "a:b", "a@b", "a b", &"t".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn referrers_fallback_tag() {
        let d = Digest::sha256(b"x");
        let tag = Tag::referrers_fallback(&d);
        assert_eq!(tag.as_str(), format!("sha256-{}", d.encoded()));
        tag.as_str().parse::<Tag>().expect("valid tag");
        let long = Tag::referrers_fallback(&Digest::compute(crate::Algorithm::Sha512, b"x"));
        assert_eq!(long.as_str().len(), 128);
    }
}
