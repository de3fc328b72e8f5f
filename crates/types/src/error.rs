//! The one error type of `wharf-types`.

use std::fmt;

use crate::{Digest, MediaType};

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while parsing or checking OCI values.
///
/// Each variant carries the offending input (cut to [`Input::MAX_SHOWN`] characters, so a
/// hostile megabyte never ends up in a log line) and what was wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The string is not a digest per the image-spec grammar.
    #[error("invalid digest {input}: {reason}")]
    InvalidDigest {
        /// What was parsed.
        input: Input,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The digest is well formed but its algorithm is not one Wharf can verify.
    #[error("unsupported digest algorithm `{algorithm}` in {input} (supported: sha256, sha512)")]
    UnsupportedDigestAlgorithm {
        /// The algorithm part of the digest.
        algorithm: Input,
        /// What was parsed.
        input: Input,
    },
    /// Content did not hash to the digest it was expected to have.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// The digest the content should have had.
        expected: Digest,
        /// The digest the content has.
        actual: Digest,
    },
    /// A repository name that breaks the distribution-spec grammar or its limits.
    #[error("invalid repository name {input}: {reason}")]
    InvalidRepository {
        /// What was parsed.
        input: Input,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A tag that breaks `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error("invalid tag {input}: {reason}")]
    InvalidTag {
        /// What was parsed.
        input: Input,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An image reference (`[host[:port]/]name[:tag][@digest]`) that cannot be parsed.
    #[error("invalid reference {input}: {reason}")]
    InvalidReference {
        /// What was parsed.
        input: Input,
        /// Why it was refused.
        reason: String,
    },
    /// A Wasm package name (`namespace:name`) or version (a semantic version) that cannot be
    /// parsed.
    #[error("invalid package {input}: {reason}")]
    InvalidPackage {
        /// What was parsed.
        input: Input,
        /// Why it was refused.
        reason: String,
    },
    /// A platform that is not `os/architecture[/variant]`.
    #[error("invalid platform {input}: {reason}")]
    InvalidPlatform {
        /// What was parsed.
        input: Input,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A media type that is not `type/subtype[;parameters]` per RFC 6838.
    #[error("invalid media type {input}: {reason}")]
    InvalidMediaType {
        /// What was parsed.
        input: Input,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A manifest larger than [`crate::MAX_MANIFEST_SIZE`].
    #[error("manifest of {size} bytes exceeds the limit of {limit} bytes")]
    ManifestTooLarge {
        /// The size of the manifest.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A manifest or index whose JSON does not fit the image-spec.
    #[error("invalid manifest: {reason}")]
    InvalidManifest {
        /// What is wrong, with the JSON path where there is one.
        reason: String,
    },
    /// A manifest of a media type Wharf does not handle (Docker schema 1, for example).
    #[error("unsupported manifest media type `{0}`")]
    UnsupportedManifestType(MediaType),
    /// A manifest whose `mediaType` field disagrees with the content type it came with.
    #[error("manifest mediaType `{field}` does not match its content type `{content_type}`")]
    MediaTypeMismatch {
        /// The `mediaType` field of the JSON.
        field: MediaType,
        /// The content type given with the bytes.
        content_type: MediaType,
    },
}

impl Error {
    #[cold]
    pub(crate) fn invalid_digest(input: &str, reason: &'static str) -> Self {
        Self::InvalidDigest { input: Input::new(input), reason }
    }

    #[cold]
    pub(crate) fn invalid_repository(input: &str, reason: &'static str) -> Self {
        Self::InvalidRepository { input: Input::new(input), reason }
    }

    #[cold]
    pub(crate) fn invalid_tag(input: &str, reason: &'static str) -> Self {
        Self::InvalidTag { input: Input::new(input), reason }
    }

    #[cold]
    pub(crate) fn invalid_reference(input: &str, reason: impl Into<String>) -> Self {
        Self::InvalidReference { input: Input::new(input), reason: reason.into() }
    }

    #[cold]
    pub(crate) fn invalid_manifest(reason: impl Into<String>) -> Self {
        Self::InvalidManifest { reason: reason.into() }
    }
}

/// Untrusted input quoted in an error: shown in backticks, cut after [`Input::MAX_SHOWN`]
/// characters, with control characters escaped.
#[derive(Clone, PartialEq, Eq)]
pub struct Input(Box<str>);

impl Input {
    /// How many characters of the input an error keeps.
    pub const MAX_SHOWN: usize = 160;

    /// Quotes `input` (cut, and escaped when shown).
    pub fn new(input: &str) -> Self {
        let mut shown: String = input.chars().take(Self::MAX_SHOWN).collect();
        if shown.len() < input.len() {
            shown.push('…');
        }
        Self(shown.into_boxed_str())
    }

    /// The (possibly cut) input.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0.escape_debug())
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_and_escaped() {
        let long = "a".repeat(10_000);
        let shown = Input::new(&long).to_string();
        assert!(shown.len() < Input::MAX_SHOWN + 10, "{shown}");
        assert!(shown.ends_with("…`"));
        assert_eq!(Input::new("a\nb").to_string(), "`a\\nb`");
    }
}
