//! The one error type of `wharf-store`.

use wharf_types::Digest;

use crate::upload_id::UploadId;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong storing or reading blobs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No blob with this digest.
    #[error("blob {digest} not found")]
    BlobNotFound {
        /// The digest asked for.
        digest: Digest,
    },
    /// No upload session with this id (never begun, committed, aborted, or expired).
    #[error("upload {id} not found")]
    UploadNotFound {
        /// The session.
        id: UploadId,
    },
    /// The content did not hash to the expected digest; nothing was stored.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// The digest the caller expected.
        expected: Digest,
        /// The digest of what was sent.
        actual: Digest,
    },
    /// An append did not start where the session ends (a server answers 416).
    #[error("upload {id}: append at offset {offset}, but the session holds {size} bytes")]
    WrongOffset {
        /// The session.
        id: UploadId,
        /// Where the append claimed to start.
        offset: u64,
        /// How many bytes the session holds.
        size: u64,
    },
    /// A range outside the blob (a server answers 416).
    #[error("range {start}..{end} is not within blob {digest} of {size} bytes")]
    InvalidRange {
        /// The blob.
        digest: Digest,
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The blob's size.
        size: u64,
    },
    /// The data stream given to `put` or `append` failed.
    #[error("reading the data to store: {0}")]
    Input(#[source] std::io::Error),
    /// The filesystem failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The object store failed.
    #[cfg(feature = "s3")]
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// The backend's own data is inconsistent (a blob that does not verify, a session whose
    /// parts do not add up).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A configuration that cannot work (an S3 URL without a bucket, for example).
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    #[cold]
    pub(crate) fn io(op: &'static str, path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Self::Io { op, path: path.into(), source }
    }

    /// Whether this error means "no such blob or session" (a 404 for a server).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::BlobNotFound { .. } | Self::UploadNotFound { .. })
    }
}
