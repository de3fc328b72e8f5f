//! The server's one error type, and the one table that maps it to an OCI error code and an
//! HTTP status.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use wharf_types::{Digest, ErrorCode, ErrorInfo, ErrorResponse};

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The blob is not in this repository.
    #[error("blob {0} unknown to this repository")]
    BlobUnknown(Digest),
    /// No such upload session in this repository.
    #[error("upload {0} unknown")]
    UploadUnknown(String),
    /// A chunk out of order, a malformed Content-Range, …
    #[error("{0}")]
    UploadInvalid(String),
    /// A chunk that does not start where the session ends (416).
    #[error("chunk starts at {offset}, the upload holds {size} bytes")]
    RangeNotSatisfiable {
        /// Where the chunk claimed to start.
        offset: u64,
        /// What the session holds.
        size: u64,
    },
    /// A blob range outside the blob (416).
    #[error("range not satisfiable for a blob of {size} bytes")]
    BlobRange {
        /// The blob's size.
        size: u64,
    },
    /// Content that does not hash to the digest given, or a malformed digest.
    #[error("{0}")]
    DigestInvalid(String),
    /// A manifest references a blob or manifest this repository does not have.
    #[error("manifest references {0}, unknown to this repository")]
    ManifestBlobUnknown(Digest),
    /// A manifest that does not parse or breaks the spec.
    #[error("{0}")]
    ManifestInvalid(String),
    /// No manifest with this tag or digest.
    #[error("manifest {0} unknown")]
    ManifestUnknown(String),
    /// A repository name that breaks the grammar.
    #[error("{0}")]
    NameInvalid(String),
    /// A tag that breaks the grammar.
    #[error("{0}")]
    TagInvalid(String),
    /// A repository that does not exist.
    #[error("repository {0} unknown")]
    NameUnknown(String),
    /// A length that does not match the content.
    #[error("{0}")]
    SizeInvalid(String),
    /// A body larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// A request the registry does not support.
    #[error("{0}")]
    Unsupported(String),
    /// A method the route does not answer (405, with `Allow`).
    #[error("{method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The method sent (escaped).
        method: String,
        /// The methods the route answers.
        allow: &'static str,
    },
    /// A path that names no endpoint (404).
    #[error("no such endpoint: {0}")]
    RouteUnknown(String),
    /// A pagination parameter (`n`) that is not a number.
    #[error("{0}")]
    PaginationInvalid(String),
    /// Another query parameter that does not parse.
    #[error("{0}")]
    ParameterInvalid(String),
    /// A `Content-Range` header that does not parse (416).
    #[error("{0}")]
    ContentRangeInvalid(String),
    /// A malformed setting or request.
    #[error("{0}")]
    BadRequest(String),
    /// Who the caller is is unknown (no or wrong credentials): 401 with a challenge.
    #[error("{message}")]
    Unauthorized {
        /// Why.
        message: String,
        /// The `WWW-Authenticate` value.
        challenge: Option<String>,
    },
    /// The caller is known and may not do this (403; with a challenge when a token lacked
    /// the scope).
    #[error("{message}")]
    Denied {
        /// Why.
        message: String,
        /// The `WWW-Authenticate` value (`error="insufficient_scope"`).
        challenge: Option<String>,
    },
    /// Too many failed logins (429, with `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        /// Why.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A blob or tag a concurrent garbage collection removed while it was being pushed (503:
    /// the client pushes again).
    #[error("{0}")]
    Collected(String),
    /// The request names a host this server does not answer to (421).
    #[error("{0}")]
    Misdirected(String),
    /// Another garbage collection or scrub is running (409).
    #[error("{0}")]
    Busy(String),
    /// A mirror's upstream failed (unreachable, stalled, refused, sent what does not verify)
    /// and nothing cached can answer instead (502).
    #[error("{0}")]
    Upstream(String),
    /// What the request makes exists already (a robot of that name) or would exceed a
    /// holder's limit (409).
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] wharf_store::Error),
}

impl Error {
    /// The OCI error code and HTTP status of this error: the one table.
    pub fn code_and_status(&self) -> (ErrorCode, StatusCode) {
        use StatusCode as S;
        match self {
            Self::BlobUnknown(_) => (ErrorCode::BlobUnknown, S::NOT_FOUND),
            Self::UploadUnknown(_) => (ErrorCode::BlobUploadUnknown, S::NOT_FOUND),
            Self::UploadInvalid(_) => (ErrorCode::BlobUploadInvalid, S::BAD_REQUEST),
            Self::PaginationInvalid(_) => (ErrorCode::PaginationNumberInvalid, S::BAD_REQUEST),
            Self::ParameterInvalid(_) | Self::BadRequest(_) => {
                (ErrorCode::Other("PARAMETER_INVALID".into()), S::BAD_REQUEST)
            }
            Self::Unauthorized { .. } => (ErrorCode::Unauthorized, S::UNAUTHORIZED),
            Self::Denied { .. } => (ErrorCode::Denied, S::FORBIDDEN),
            Self::TooManyRequests { .. } => (ErrorCode::TooManyRequests, S::TOO_MANY_REQUESTS),
            Self::RouteUnknown(_) => (ErrorCode::Other("NOT_FOUND".into()), S::NOT_FOUND),
            Self::RangeNotSatisfiable { .. } | Self::ContentRangeInvalid(_) => {
                (ErrorCode::BlobUploadInvalid, S::RANGE_NOT_SATISFIABLE)
            }
            Self::BlobRange { .. } => (ErrorCode::RangeInvalid, S::RANGE_NOT_SATISFIABLE),
            Self::DigestInvalid(_) => (ErrorCode::DigestInvalid, S::BAD_REQUEST),
            Self::ManifestBlobUnknown(_) => (ErrorCode::ManifestBlobUnknown, S::BAD_REQUEST),
            Self::ManifestInvalid(_) => (ErrorCode::ManifestInvalid, S::BAD_REQUEST),
            Self::ManifestUnknown(_) => (ErrorCode::ManifestUnknown, S::NOT_FOUND),
            Self::NameInvalid(_) => (ErrorCode::NameInvalid, S::BAD_REQUEST),
            Self::TagInvalid(_) => (ErrorCode::TagInvalid, S::BAD_REQUEST),
            Self::NameUnknown(_) => (ErrorCode::NameUnknown, S::NOT_FOUND),
            Self::SizeInvalid(_) => (ErrorCode::SizeInvalid, S::BAD_REQUEST),
            Self::TooLarge(_) => (ErrorCode::SizeInvalid, S::PAYLOAD_TOO_LARGE),
            Self::Unsupported(_) | Self::MethodNotAllowed { .. } => {
                (ErrorCode::Unsupported, S::METHOD_NOT_ALLOWED)
            }
            Self::Collected(_) => (ErrorCode::Other("UNAVAILABLE".into()), S::SERVICE_UNAVAILABLE),
            Self::Busy(_) => (ErrorCode::Other("BUSY".into()), S::CONFLICT),
            Self::Conflict(_) => (ErrorCode::Other("CONFLICT".into()), S::CONFLICT),
            Self::Upstream(_) => (ErrorCode::Other("UNAVAILABLE".into()), S::BAD_GATEWAY),
            Self::Misdirected(_) => (ErrorCode::Denied, S::MISDIRECTED_REQUEST),
            Self::Store(e) => match e {
                wharf_store::Error::BlobNotFound { .. } => (ErrorCode::BlobUnknown, S::NOT_FOUND),
                wharf_store::Error::UploadNotFound { .. } => (ErrorCode::BlobUploadUnknown, S::NOT_FOUND),
                wharf_store::Error::DigestMismatch { .. } => (ErrorCode::DigestInvalid, S::BAD_REQUEST),
                wharf_store::Error::WrongOffset { .. } => {
                    (ErrorCode::BlobUploadInvalid, S::RANGE_NOT_SATISFIABLE)
                }
                wharf_store::Error::InvalidRange { .. } => {
                    (ErrorCode::RangeInvalid, S::RANGE_NOT_SATISFIABLE)
                }
                wharf_store::Error::Input(_) => (ErrorCode::BlobUploadInvalid, S::BAD_REQUEST),
                other => match other.fault() {
                    Some(wharf_store::Fault::Full) => {
                        (ErrorCode::Other("UNAVAILABLE".into()), S::INSUFFICIENT_STORAGE)
                    }
                    Some(_) => (ErrorCode::Other("UNAVAILABLE".into()), S::SERVICE_UNAVAILABLE),
                    None => (ErrorCode::Unknown, S::INTERNAL_SERVER_ERROR),
                },
            },
        }
    }
}

impl From<wharf_types::Error> for Error {
    fn from(e: wharf_types::Error) -> Self {
        use wharf_types::Error as T;
        match e {
            T::InvalidRepository { .. } | T::InvalidPackage { .. } => Self::NameInvalid(e.to_string()),
            T::InvalidTag { .. } => Self::TagInvalid(e.to_string()),
            T::InvalidDigest { .. } | T::UnsupportedDigestAlgorithm { .. } | T::DigestMismatch { .. } => {
                Self::DigestInvalid(e.to_string())
            }
            T::ManifestTooLarge { .. } => Self::TooLarge(e.to_string()),
            _ => Self::ManifestInvalid(e.to_string()),
        }
    }
}

/// What a client is told when the storage is full, and how long it should wait (seconds).
const FULL: (&str, u64) =
    ("the registry is out of storage space: pushes fail until an operator frees space; pulls work", 60);
/// What a client is told when the storage does not answer, and how long it should wait.
const UNAVAILABLE: (&str, u64) = (
    "the registry's storage is not answering; try again shortly (pulls of recently read tags still work)",
    5,
);

impl Error {
    /// The storage fault behind this error, if it is one (507 or 503 with `Retry-After`).
    pub fn fault(&self) -> Option<wharf_store::Fault> {
        match self {
            Self::Store(e) => e.fault(),
            _ => None,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let fault = self.fault();
        // A storage fault is logged once per incident, where the core notices it.
        if status.is_server_error() && fault.is_none() {
            tracing::error!(error = %self, "request failed");
        }
        let message = match (&self, fault) {
            (_, Some(wharf_store::Fault::Full)) => FULL.0.to_owned(),
            (_, Some(_)) => UNAVAILABLE.0.to_owned(),
            // Storage details stay in the log.
            (Self::Store(_), None) if status.is_server_error() => code.message().to_owned(),
            (other, None) => other.to_string(),
        };
        let body = ErrorResponse::from(ErrorInfo::new(code).with_message(message));
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, json).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Self::MethodNotAllowed { allow, .. } = &self {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        match &self {
            Self::Unauthorized { challenge: Some(c), .. } | Self::Denied { challenge: Some(c), .. } => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, crate::text::header_value(c));
            }
            Self::TooManyRequests { retry_after, .. } => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        if let Some(fault) = fault {
            let wait = if fault == wharf_store::Fault::Full { FULL.1 } else { UNAVAILABLE.1 };
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        if let Self::BlobRange { size } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        response
    }
}
