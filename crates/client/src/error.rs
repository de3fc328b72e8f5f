//! The one error type of `wharf-client`.

use wharf_types::{Digest, ErrorResponse};

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder's settings cannot work.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The connection or HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The registry answered with an error status.
    #[error("registry answered {status}: {}", errors.as_ref().map_or_else(|| body.clone(), ToString::to_string))]
    Registry {
        /// The HTTP status.
        status: u16,
        /// The OCI error body, when there was one.
        errors: Option<ErrorResponse>,
        /// The start of the body, for anything else.
        body: String,
    },
    /// Authentication failed or was impossible.
    #[error("authentication to {host} failed: {detail}")]
    Unauthorized {
        /// The registry host.
        host: String,
        /// Why.
        detail: String,
    },
    /// Content did not match its digest.
    #[error("digest mismatch: expected {expected}, received content hashes to {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// The registry answered something the spec does not allow.
    #[error("invalid registry response: {0}")]
    InvalidResponse(String),
    /// A manifest or reference that does not parse.
    #[error(transparent)]
    Types(#[from] wharf_types::Error),
    /// A Wasm artifact could not be built or found.
    #[error("wasm: {0}")]
    Wasm(String),
    /// A file of an OCI layout could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing pulled bytes failed.
    #[error("writing: {0}")]
    Io(#[source] std::io::Error),
}
