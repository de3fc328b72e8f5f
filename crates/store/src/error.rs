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

/// A failure of the storage itself that a client can wait out, as opposed to a bad request
/// or damaged data: what [`Error::fault`] finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The storage has no room (a full disk, an exhausted quota): writes fail until space is
    /// freed; reads go on.
    Full,
    /// The storage does not answer, or not in time (an S3 engine that is down, unreachable,
    /// overloaded or slower than the configured time-outs).
    Unavailable,
}

impl Fault {
    /// The fault's name in logs, metrics and status answers: `full` or `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full => "storage full",
            Self::Unavailable => "storage unavailable",
        })
    }
}

impl Error {
    /// The storage fault this error is, if it is one: a full disk or quota
    /// ([`Fault::Full`]); an engine that refused the connection, timed out, or answered
    /// 5xx or 429 after the retries ([`Fault::Unavailable`]). `None` for everything else
    /// (missing blobs, bad input, damaged data, configuration).
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Self::Io { source, .. } => io_fault(source),
            #[cfg(feature = "s3")]
            Self::ObjectStore(e) => object_store_fault(e),
            _ => None,
        }
    }

    #[cold]
    pub(crate) fn io(op: &'static str, path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Self::Io { op, path: path.into(), source }
    }

    /// A storage fault without its cause (see [`Fault`]): what a failing disk or engine
    /// would return, as a test injects it or as a server answers those who waited on an
    /// operation that met the fault.
    #[cold]
    pub fn injected(fault: Fault, op: &'static str) -> Self {
        let source = match fault {
            Fault::Full => std::io::Error::from(std::io::ErrorKind::StorageFull),
            Fault::Unavailable => std::io::Error::from(std::io::ErrorKind::TimedOut),
        };
        Self::Io { op, path: "(injected)".into(), source }
    }

    /// Whether this error means "no such blob or session" (a 404 for a server).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::BlobNotFound { .. } | Self::UploadNotFound { .. })
    }
}

/// The fault an I/O error is: no space or quota, or an operation that timed out.
fn io_fault(e: &std::io::Error) -> Option<Fault> {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded => Some(Fault::Full),
        K::TimedOut => Some(Fault::Unavailable),
        _ => None,
    }
}

/// The fault an object-store error is: a connection refused or broken, a time-out, or an
/// engine answering 5xx or 429 once the retries ran out.
#[cfg(feature = "s3")]
fn object_store_fault(e: &object_store::Error) -> Option<Fault> {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        // The engine's status is only in the text: object_store keeps its retry error private.
        let text = c.to_string();
        if let Some(status) = text.split("non-2xx status code: ").nth(1).and_then(|r| r.get(..3))
            && (status.starts_with('5') || status == "429")
        {
            return Some(Fault::Unavailable);
        }
        if let Some(http) = c.downcast_ref::<HttpError>()
            && matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            )
        {
            return Some(Fault::Unavailable);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && let Some(fault) = io_fault(io)
        {
            return Some(fault);
        }
        cause = c.source();
    }
    None
}
