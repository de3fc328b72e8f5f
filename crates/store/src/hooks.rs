//! [`Hooked`]: a store wrapped by [`Hooks`] that see every operation go by, and may delay or
//! fail it: how a server watches its storage's health, and how tests make a disk fill up or
//! an engine stall (`Faults`) under any backend.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use wharf_types::Digest;

use crate::Storage;
use crate::error::{Error, Result};
use crate::meta::{MetaStore, Write};
use crate::store::{BlobInfo, BlobStore, ByteStream, GetResult};
use crate::upload_id::UploadId;

/// An operation of a [`BlobStore`] or [`MetaStore`], as [`Hooks`] see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`BlobStore::stat`].
    Stat,
    /// [`BlobStore::get`] (and `read_all`).
    Get,
    /// [`BlobStore::put`] (and `put_bytes`).
    Put,
    /// [`BlobStore::delete`].
    Delete,
    /// [`BlobStore::modified`].
    Modified,
    /// [`BlobStore::quarantine`].
    Quarantine,
    /// [`BlobStore::begin`].
    Begin,
    /// [`BlobStore::append`].
    Append,
    /// [`BlobStore::status`].
    Status,
    /// [`BlobStore::commit`].
    Commit,
    /// [`BlobStore::abort`].
    Abort,
    /// [`BlobStore::direct_url`].
    DirectUrl,
    /// [`MetaStore::get_meta`].
    GetMeta,
    /// [`MetaStore::set_meta`].
    SetMeta,
    /// [`MetaStore::remove_meta`].
    RemoveMeta,
    /// [`MetaStore::list_meta`] and [`list_meta_page`](MetaStore::list_meta_page).
    ListMeta,
    /// [`MetaStore::write_steps`] (and `publish`).
    WriteSteps,
}

impl Op {
    /// Whether the operation changes what is stored (a full disk fails it; reads go on).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Self::Put
                | Self::Delete
                | Self::Quarantine
                | Self::Begin
                | Self::Append
                | Self::Commit
                | Self::Abort
                | Self::SetMeta
                | Self::RemoveMeta
                | Self::WriteSteps
        )
    }
}

/// What a [`Hooked`] store runs around each operation of the store it wraps. Every method
/// has a default that does nothing.
#[async_trait]
pub trait Hooks: Send + Sync + fmt::Debug + 'static {
    /// Runs before `op`, which writes `bytes` known up front (a record's value, a batch's
    /// records and blobs; 0 for reads, and for streams, which go through
    /// [`input`](Self::input)); an error is the operation's result, and the store is not asked.
    async fn before(&self, op: Op, bytes: u64) -> Result<()> {
        let _ = (op, bytes);
        Ok(())
    }

    /// The bytes a `put` or `append` stores pass through this (to count them, or to end
    /// them with an error: an `io::Error` of kind `StorageFull` or `TimedOut` from here
    /// comes out of the operation as that storage [`Fault`](crate::Fault), not as bad input).
    fn input(&self, op: Op, data: ByteStream) -> ByteStream {
        let _ = op;
        data
    }

    /// Runs after `op` with its outcome; an error turns a success into a failure (as when a
    /// write happened but its answer was lost).
    fn after(&self, op: Op, outcome: std::result::Result<(), &Error>) -> Result<()> {
        let _ = (op, outcome);
        Ok(())
    }
}

/// A store whose every operation goes through [`Hooks`] (listing every blob, a stream,
/// goes by unhooked).
///
/// # Example: a disk that is full for writes
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use wharf_store::{BlobStore, Error, Fault, Hooked, Hooks, MemoryStore, Op};
///
/// #[derive(Debug)]
/// struct Full;
/// #[async_trait]
/// impl Hooks for Full {
///     async fn before(&self, op: Op, _bytes: u64) -> wharf_store::Result<()> {
///         if op.writes() { Err(Error::injected(Fault::Full, "write")) } else { Ok(()) }
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let store = Hooked::new(Arc::new(MemoryStore::new()), Full);
/// let digest = wharf_types::Digest::sha256(b"hi");
/// let error = store.put_bytes(&digest, "hi".into()).await.unwrap_err();
/// assert_eq!(error.fault(), Some(Fault::Full));
/// assert!(store.stat(&digest).await?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })
/// # }
/// ```
pub struct Hooked<H> {
    inner: Arc<dyn Storage>,
    hooks: H,
}

impl<H: Hooks> Hooked<H> {
    /// `inner`, with `hooks` around each operation.
    pub fn new(inner: Arc<dyn Storage>, hooks: H) -> Self {
        Self { inner, hooks }
    }

    /// The hooks.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    async fn run<T: Send>(&self, op: Op, call: impl Future<Output = Result<T>> + Send) -> Result<T> {
        self.run_sized(op, 0, call).await
    }

    async fn run_sized<T: Send>(
        &self,
        op: Op,
        bytes: u64,
        call: impl Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        self.hooks.before(op, bytes).await?;
        let result = call.await.map_err(made_by_hooks);
        let verdict = self.hooks.after(op, result.as_ref().map(drop));
        match (result, verdict) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(e)) | (Err(e), _) => Err(e),
        }
    }
}

/// A stream error that [`Hooks::input`] made (a disk filling up midway) comes out as the
/// storage error it stands for, not as the client's broken input.
fn made_by_hooks(e: Error) -> Error {
    match e {
        Error::Input(source)
            if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::TimedOut) =>
        {
            Error::Io { op: "write", path: "(hooks)".into(), source }
        }
        other => other,
    }
}

impl<H: Hooks> fmt::Debug for Hooked<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooked").field("inner", &self.inner).field("hooks", &self.hooks).finish()
    }
}

#[async_trait]
impl<H: Hooks> BlobStore for Hooked<H> {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        self.run(Op::Stat, self.inner.stat(digest)).await
    }
    async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<GetResult> {
        self.run(Op::Get, self.inner.get(digest, range)).await
    }
    async fn put(&self, expected: &Digest, data: ByteStream) -> Result<BlobInfo> {
        self.run(Op::Put, async { self.inner.put(expected, self.hooks.input(Op::Put, data)).await }).await
    }
    async fn delete(&self, digest: &Digest) -> Result<bool> {
        self.run(Op::Delete, self.inner.delete(digest)).await
    }
    async fn modified(&self, digest: &Digest) -> Result<Option<std::time::SystemTime>> {
        self.run(Op::Modified, self.inner.modified(digest)).await
    }
    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        self.run(Op::Quarantine, self.inner.quarantine(digest)).await
    }
    fn list(&self) -> BoxStream<'_, Result<Digest>> {
        self.inner.list()
    }
    async fn begin(&self) -> Result<UploadId> {
        self.run(Op::Begin, self.inner.begin()).await
    }
    async fn append(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64> {
        self.run(Op::Append, async {
            self.inner.append(id, offset, self.hooks.input(Op::Append, data)).await
        })
        .await
    }
    async fn status(&self, id: &UploadId) -> Result<u64> {
        self.run(Op::Status, self.inner.status(id)).await
    }
    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo> {
        self.run(Op::Commit, self.inner.commit(id, expected)).await
    }
    async fn abort(&self, id: &UploadId) -> Result<()> {
        self.run(Op::Abort, self.inner.abort(id)).await
    }
    async fn put_bytes(&self, expected: &Digest, data: Bytes) -> Result<BlobInfo> {
        self.put(expected, crate::single(data)).await
    }
    async fn read_all(&self, digest: &Digest) -> Result<Bytes> {
        self.run(Op::Get, self.inner.read_all(digest)).await
    }
    async fn direct_url(
        &self,
        digest: &Digest,
        head: bool,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        self.run(Op::DirectUrl, self.inner.direct_url(digest, head, expires_in)).await
    }
}

#[async_trait]
impl<H: Hooks> MetaStore for Hooked<H> {
    async fn get_meta(&self, key: &str) -> Result<Option<Bytes>> {
        self.run(Op::GetMeta, self.inner.get_meta(key)).await
    }
    async fn meta_exists(&self, key: &str) -> Result<bool> {
        self.run(Op::GetMeta, self.inner.meta_exists(key)).await
    }
    async fn set_meta(&self, key: &str, value: Bytes) -> Result<()> {
        let bytes = value.len() as u64;
        self.run_sized(Op::SetMeta, bytes, self.inner.set_meta(key, value)).await
    }
    async fn remove_meta(&self, key: &str) -> Result<bool> {
        self.run(Op::RemoveMeta, self.inner.remove_meta(key)).await
    }
    async fn list_meta(&self, prefix: &str) -> Result<Vec<String>> {
        self.run(Op::ListMeta, self.inner.list_meta(prefix)).await
    }
    async fn list_meta_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        self.run(Op::ListMeta, self.inner.list_meta_page(prefix, after, limit)).await
    }
    async fn write_steps(&self, steps: Vec<Vec<Write>>) -> Result<()> {
        let bytes = steps
            .iter()
            .flatten()
            .map(|w| match w {
                Write::Blob { bytes, .. } => bytes.len() as u64,
                Write::Set { value, .. } | Write::Brief { value, .. } => value.len() as u64,
                Write::Remove { .. } => 0,
            })
            .sum();
        self.run_sized(Op::WriteSteps, bytes, self.inner.write_steps(steps)).await
    }
    async fn publish(&self, prefix: &str) -> Result<()> {
        self.run(Op::WriteSteps, self.inner.publish(prefix)).await
    }
    fn quarantined(&self) -> u64 {
        self.inner.quarantined()
    }
}
