//! The `BlobStore` trait and the types it speaks.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use wharf_types::{Algorithm, Digest, Digester};

use crate::error::{Error, Result};
use crate::upload_id::UploadId;

/// A stream of bytes in or out of a store. Errors are `io::Error`s, so an HTTP body, a file
/// or an object-store download plugs in directly.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// A stored blob: its digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BlobInfo {
    /// The digest (verified when the blob was stored).
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
}

impl BlobInfo {
    /// A blob of `size` bytes with `digest`.
    pub fn new(digest: Digest, size: u64) -> Self {
        Self { digest, size }
    }
}

/// What [`BlobStore::get`] returns: the blob's size, the range being streamed, and the bytes.
#[non_exhaustive]
pub struct GetResult {
    /// The whole blob's size.
    pub size: u64,
    /// The bytes in `stream`: `start..end` of the blob.
    pub range: Range<u64>,
    /// The bytes, read with bounded memory.
    pub stream: ByteStream,
    /// The blob's file, when the store keeps blobs as files (`FsStore`): bytes `range` of it
    /// are the bytes of `stream`, so a server may hand them to the kernel (`sendfile`)
    /// instead of polling `stream`, which then reads nothing.
    pub file: Option<Arc<std::fs::File>>,
}

impl fmt::Debug for GetResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetResult")
            .field("size", &self.size)
            .field("range", &self.range)
            .field("file", &self.file.is_some())
            .finish_non_exhaustive()
    }
}

impl GetResult {
    /// Reads the whole stream into memory (for small blobs and tests).
    pub async fn bytes(self) -> Result<Bytes> {
        let mut out =
            BytesMut::with_capacity(usize::try_from(self.range.end - self.range.start).unwrap_or(0));
        let mut stream = self.stream;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(Error::Input)?);
        }
        Ok(out.freeze())
    }
}

/// A content-addressed, digest-verified blob store with upload sessions.
///
/// Every implementation guarantees:
/// - a blob becomes visible (to `stat`, `get`, `list`) only after its bytes were verified
///   against the expected digest, and only complete;
/// - an acknowledged `put` or `commit` survives a crash of the process (for the durable
///   backends);
/// - each byte is hashed once on the way in (a session that moved to another process is
///   re-hashed from the stored bytes; a sha512 commit re-hashes, as sessions hash sha256 while
///   streaming);
/// - a failed `put` or `commit` (digest mismatch, broken input) leaves nothing visible, and a
///   mismatching `commit` ends the session.
///
/// The trait is object safe: a server holds `Arc<dyn BlobStore>` chosen at run time.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// The blob's size, or `None` when it is not stored.
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>>;

    /// Streams the blob, or the `range` of it (`start < end <= size`; an empty blob has no
    /// valid range). [`Error::BlobNotFound`], [`Error::InvalidRange`].
    async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<GetResult>;

    /// Stores `data` as blob `expected`, hashing while it streams and committing only when
    /// the hash matches ([`Error::DigestMismatch`] otherwise, with nothing stored).
    async fn put(&self, expected: &Digest, data: ByteStream) -> Result<BlobInfo>;

    /// Deletes the blob; `false` when it was not there.
    async fn delete(&self, digest: &Digest) -> Result<bool>;

    /// When the blob's bytes were last written (a put of the same content again counts), or
    /// `None` when it is not stored. Garbage collection keeps blobs younger than its grace
    /// window by this time.
    async fn modified(&self, digest: &Digest) -> Result<Option<std::time::SystemTime>>;

    /// Moves a blob out of sight, keeping its bytes for a person to look at (a scrub found
    /// them damaged): afterwards the blob reads as absent, and a put stores it afresh.
    /// `false` when it was not stored.
    async fn quarantine(&self, digest: &Digest) -> Result<bool>;

    /// Every stored blob's digest, in no particular order (for garbage collection and fsck).
    fn list(&self) -> BoxStream<'_, Result<Digest>>;

    /// Starts an upload session.
    async fn begin(&self) -> Result<UploadId>;

    /// Appends `data` at `offset`, which must equal the bytes received so far
    /// ([`Error::WrongOffset`] otherwise, with nothing appended). Returns the new size.
    async fn append(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64>;

    /// How many bytes the session holds.
    async fn status(&self, id: &UploadId) -> Result<u64>;

    /// Verifies the session's bytes against `expected` and makes them blob `expected`; the
    /// session ends either way.
    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo>;

    /// Ends the session and discards its bytes.
    async fn abort(&self, id: &UploadId) -> Result<()>;

    /// [`put`](Self::put) of bytes already in memory.
    async fn put_bytes(&self, expected: &Digest, data: Bytes) -> Result<BlobInfo> {
        self.put(expected, single(data)).await
    }

    /// The whole blob, in memory.
    async fn read_all(&self, digest: &Digest) -> Result<Bytes> {
        self.get(digest, None).await?.bytes().await
    }

    /// A URL at which a client may `GET` (with `head`, `HEAD`) the blob straight from the
    /// storage engine during `expires_in`, when the backend hands such URLs out (an
    /// [`S3Store`](crate::S3Store) opened with `redirect=true`: a presigned URL); `None`
    /// otherwise, and the bytes go through [`get`](Self::get). The URL is made without asking
    /// the engine whether the blob is there.
    async fn direct_url(
        &self,
        digest: &Digest,
        head: bool,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        let _ = (digest, head, expires_in);
        Ok(None)
    }
}

/// A [`ByteStream`] of one chunk.
pub fn single(data: Bytes) -> ByteStream {
    stream::once(async move { Ok(data) }).boxed()
}

/// A [`ByteStream`] over chunks already in memory.
pub fn from_chunks(chunks: Vec<Bytes>) -> ByteStream {
    stream::iter(chunks.into_iter().map(Ok)).boxed()
}

/// Checks `range` against a blob of `size` bytes; `None` means the whole blob.
pub(crate) fn check_range(digest: &Digest, range: Option<Range<u64>>, size: u64) -> Result<Range<u64>> {
    match range {
        None => Ok(0..size),
        Some(r) if r.start < r.end && r.end <= size => Ok(r),
        Some(r) => Err(Error::InvalidRange { digest: digest.clone(), start: r.start, end: r.end, size }),
    }
}

/// The running hashes of the sessions this process appended to, each behind its own async
/// lock so that appends to one session are serialised (shared by the durable backends).
#[derive(Debug, Default)]
pub(crate) struct Sessions(
    std::sync::Mutex<std::collections::HashMap<UploadId, Arc<tokio::sync::Mutex<Option<Running>>>>>,
);

/// The running hash of a session and how many bytes it covers.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) len: u64,
    pub(crate) digester: Digester,
}

impl Sessions {
    /// The lock of session `id`'s running hash.
    pub(crate) fn get(&self, id: &UploadId) -> Arc<tokio::sync::Mutex<Option<Running>>> {
        self.0.lock().expect("lock").entry(id.clone()).or_default().clone()
    }

    /// Forgets session `id` (committed or aborted).
    pub(crate) fn forget(&self, id: &UploadId) {
        self.0.lock().expect("lock").remove(id);
    }
}

/// The running hash of an upload: sha256 while streaming, which covers nearly every push;
/// another algorithm is computed at commit from the stored bytes.
pub(crate) fn session_digester() -> Digester {
    Algorithm::Sha256.digester()
}

/// An input stream that hashes every chunk as it is taken: each byte passes the digester
/// exactly once, on its way to wherever the caller writes it.
pub(crate) struct Hashed<'a> {
    data: ByteStream,
    digester: &'a mut Digester,
    /// Bytes taken so far.
    pub(crate) len: u64,
}

impl<'a> Hashed<'a> {
    pub(crate) fn new(data: ByteStream, digester: &'a mut Digester) -> Self {
        Self { data, digester, len: 0 }
    }

    /// The next non-empty chunk, hashed; `None` at the end.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>> {
        while let Some(chunk) = self.data.try_next().await.map_err(Error::Input)? {
            if !chunk.is_empty() {
                self.digester.update(&chunk);
                self.len += chunk.len() as u64;
                return Ok(Some(chunk));
            }
        }
        Ok(None)
    }

    /// Hashes the rest without keeping it; returns the total length.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    pub(crate) async fn drain(mut self) -> Result<u64> {
        while self.next().await?.is_some() {}
        Ok(self.len)
    }
}

/// The digest check at the end of a put or commit.
pub(crate) fn verify(digester: Digester, expected: &Digest) -> Result<Digest> {
    digester.verify(expected).map_err(|e| match e {
        wharf_types::Error::DigestMismatch { expected, actual } => Error::DigestMismatch { expected, actual },
        other => Error::Corrupt(other.to_string()),
    })
}

/// Forwards the trait through smart pointers, so `Arc<dyn BlobStore>` and `Box<…>` are stores.
macro_rules! forward {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        impl<T: BlobStore + ?Sized> BlobStore for $ptr<T> {
            async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> { (**self).stat(digest).await }
            async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<GetResult> { (**self).get(digest, range).await }
            async fn put(&self, expected: &Digest, data: ByteStream) -> Result<BlobInfo> { (**self).put(expected, data).await }
            async fn delete(&self, digest: &Digest) -> Result<bool> { (**self).delete(digest).await }
            fn list(&self) -> BoxStream<'_, Result<Digest>> { (**self).list() }
            async fn modified(&self, digest: &Digest) -> Result<Option<std::time::SystemTime>> { (**self).modified(digest).await }
            async fn quarantine(&self, digest: &Digest) -> Result<bool> { (**self).quarantine(digest).await }
            async fn begin(&self) -> Result<UploadId> { (**self).begin().await }
            async fn append(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64> { (**self).append(id, offset, data).await }
            async fn status(&self, id: &UploadId) -> Result<u64> { (**self).status(id).await }
            async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo> { (**self).commit(id, expected).await }
            async fn abort(&self, id: &UploadId) -> Result<()> { (**self).abort(id).await }
            async fn put_bytes(&self, expected: &Digest, data: Bytes) -> Result<BlobInfo> { (**self).put_bytes(expected, data).await }
            async fn read_all(&self, digest: &Digest) -> Result<Bytes> { (**self).read_all(digest).await }
            async fn direct_url(&self, digest: &Digest, head: bool, expires_in: std::time::Duration) -> Result<Option<String>> { (**self).direct_url(digest, head, expires_in).await }
        }
    )*};
}

forward!(Arc, Box);
