//! Distribution-spec error codes and the error body registries answer with.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error code of the distribution spec, with the HTTP status it goes with.
///
/// The codes `code-1` … `code-14` of the spec, plus the ones distribution and Docker clients
/// also know (`MANIFEST_UNVERIFIED`, `TAG_INVALID`, `RANGE_INVALID`, `UNAVAILABLE`, `PAGINATION_NUMBER_INVALID`,
/// `UNKNOWN`). A code this crate does not know, read from another registry, is kept as
/// [`ErrorCode::Other`].
///
/// # Example
/// ```
/// use wharf_types::ErrorCode;
///
/// assert_eq!(ErrorCode::ManifestUnknown.as_str(), "MANIFEST_UNKNOWN");
/// assert_eq!(ErrorCode::ManifestUnknown.status(), 404);
/// assert_eq!("DIGEST_INVALID".parse::<ErrorCode>(), Ok(ErrorCode::DigestInvalid));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: blob unknown to registry (404).
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: blob upload invalid (400).
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: blob upload unknown to registry (404).
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: provided digest did not match uploaded content (400).
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: manifest references a manifest or blob unknown to registry
    /// (400, as distribution answers).
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: manifest invalid (400).
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: manifest unknown to registry (404).
    ManifestUnknown,
    /// `NAME_INVALID`: invalid repository name (400).
    NameInvalid,
    /// `NAME_UNKNOWN`: repository name not known to registry (404).
    NameUnknown,
    /// `SIZE_INVALID`: provided length did not match content length (400).
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required (401).
    Unauthorized,
    /// `DENIED`: requested access to the resource is denied (403).
    Denied,
    /// `UNSUPPORTED`: the operation is unsupported (405).
    Unsupported,
    /// `TOOMANYREQUESTS`: too many requests (429).
    TooManyRequests,
    /// `MANIFEST_UNVERIFIED`: manifest failed signature verification (400; distribution).
    ManifestUnverified,
    /// `TAG_INVALID`: manifest tag did not match URI (400; distribution).
    TagInvalid,
    /// `RANGE_INVALID`: invalid content range (416; distribution).
    RangeInvalid,
    /// `UNAVAILABLE`: service unavailable (503; distribution).
    Unavailable,
    /// `UNKNOWN`: unknown error (500; distribution).
    Unknown,
    /// `PAGINATION_NUMBER_INVALID`: invalid number of results requested (400; distribution).
    PaginationNumberInvalid,
    /// A code this crate does not know.
    Other(String),
}

impl ErrorCode {
    const TABLE: &'static [(Self, &'static str, u16, &'static str)] = &[
        (Self::BlobUnknown, "BLOB_UNKNOWN", 404, "blob unknown to registry"),
        (Self::BlobUploadInvalid, "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"),
        (Self::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"),
        (Self::DigestInvalid, "DIGEST_INVALID", 400, "provided digest did not match uploaded content"),
        (
            Self::ManifestBlobUnknown,
            "MANIFEST_BLOB_UNKNOWN",
            400,
            "manifest references a manifest or blob unknown to registry",
        ),
        (Self::ManifestInvalid, "MANIFEST_INVALID", 400, "manifest invalid"),
        (Self::ManifestUnknown, "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"),
        (Self::NameInvalid, "NAME_INVALID", 400, "invalid repository name"),
        (Self::NameUnknown, "NAME_UNKNOWN", 404, "repository name not known to registry"),
        (Self::SizeInvalid, "SIZE_INVALID", 400, "provided length did not match content length"),
        (Self::Unauthorized, "UNAUTHORIZED", 401, "authentication required"),
        (Self::Denied, "DENIED", 403, "requested access to the resource is denied"),
        (Self::Unsupported, "UNSUPPORTED", 405, "the operation is unsupported"),
        (Self::TooManyRequests, "TOOMANYREQUESTS", 429, "too many requests"),
        (Self::ManifestUnverified, "MANIFEST_UNVERIFIED", 400, "manifest failed signature verification"),
        (Self::TagInvalid, "TAG_INVALID", 400, "manifest tag did not match URI"),
        (Self::RangeInvalid, "RANGE_INVALID", 416, "invalid content range"),
        (Self::Unavailable, "UNAVAILABLE", 503, "service unavailable"),
        (Self::Unknown, "UNKNOWN", 500, "unknown error"),
        (
            Self::PaginationNumberInvalid,
            "PAGINATION_NUMBER_INVALID",
            400,
            "invalid number of results requested",
        ),
    ];

    fn entry(&self) -> Option<&'static (Self, &'static str, u16, &'static str)> {
        Self::TABLE.iter().find(|(code, ..)| code == self)
    }

    /// Every code this crate knows, in the spec's order.
    pub fn known() -> impl Iterator<Item = &'static Self> {
        Self::TABLE.iter().map(|(code, ..)| code)
    }

    /// The code as it appears in JSON (`BLOB_UNKNOWN`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(code) => code,
            known => known.entry().map_or("UNKNOWN", |e| e.1),
        }
    }

    /// The HTTP status a registry answers with for this code (500 for unknown codes).
    pub fn status(&self) -> u16 {
        self.entry().map_or(500, |e| e.2)
    }

    /// The spec's message for this code.
    pub fn message(&self) -> &'static str {
        self.entry().map_or("unknown error", |e| e.3)
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::TABLE
            .iter()
            .find(|(_, name, ..)| *name == s)
            .map_or_else(|| Self::Other(s.to_owned()), |(code, ..)| code.clone()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let Ok(code) = s.parse();
        Ok(code)
    }
}

/// One entry of an error body: `{"code", "message", "detail"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorInfo {
    /// The error code.
    pub code: ErrorCode,
    /// A message for people.
    #[serde(default)]
    pub message: String,
    /// Unstructured detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl ErrorInfo {
    /// An entry with the code's standard message.
    pub fn new(code: ErrorCode) -> Self {
        let message = code.message().to_owned();
        Self { code, message, detail: None }
    }

    /// The same entry with `message`.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The same entry with `detail`.
    #[must_use]
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// The body of an error response: `{"errors":[…]}`.
///
/// # Example
/// ```
/// use wharf_types::{ErrorCode, ErrorInfo, ErrorResponse};
///
/// let body = ErrorResponse::from(ErrorInfo::new(ErrorCode::NameUnknown).with_message("no repo x"));
/// assert_eq!(
///     serde_json::to_string(&body)?,
///     r#"{"errors":[{"code":"NAME_UNKNOWN","message":"no repo x"}]}"#
/// );
/// assert_eq!(body.status(), 404);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorResponse {
    /// The errors, most important first.
    #[serde(default)]
    pub errors: Vec<ErrorInfo>,
}

impl ErrorResponse {
    /// The status of the first error (500 when there is none).
    pub fn status(&self) -> u16 {
        self.errors.first().map_or(500, |e| e.code.status())
    }
}

impl From<ErrorInfo> for ErrorResponse {
    fn from(info: ErrorInfo) -> Self {
        Self { errors: vec![info] }
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.code, e.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_code() {
        for code in ErrorCode::known() {
            let parsed: ErrorCode = code.as_str().parse().expect("infallible");
            assert_eq!(&parsed, code);
            assert!((400..600).contains(&code.status()), "{code}");
        }
        assert_eq!(ErrorCode::known().count(), 20);
    }

    #[test]
    fn reads_foreign_bodies() {
        let body =
            r#"{"errors":[{"code":"QUOTA_EXCEEDED","message":"full","detail":{"n":1}},{"code":"DENIED"}]}"#;
        let r: ErrorResponse = serde_json::from_str(body).expect("parses");
        assert_eq!(r.errors[0].code, ErrorCode::Other("QUOTA_EXCEEDED".into()));
        assert_eq!(r.errors[0].code.status(), 500);
        assert_eq!(r.errors[1].code, ErrorCode::Denied);
        assert_eq!(r.to_string(), "QUOTA_EXCEEDED: full; DENIED: ");
    }
}
