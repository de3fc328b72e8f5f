//! `FsStore`: content-addressed files in a local directory, crash-safe.
//!
//! # On-disk layout
//!
//! ```text
//! <root>/blobs/<algorithm>/<first two hex>/<hex>   committed, verified blobs (read-only)
//! <root>/uploads/<upload id>                       the bytes of an open upload session
//! <root>/tmp/<random>                              a put in progress
//! <root>/records/<key>=                            a `MetaStore` record (see below)
//! <root>/journal/<instance>-<seq>.log              the write-ahead journal of a store
//! <root>/quarantine/                               journal records that could not be replayed
//! <root>/quarantine/blobs/<algorithm>/<hex>          blobs a scrub found damaged (`quarantine`)
//! ```
//!
//! Record keys are a flat namespace (`catalog/org` and `catalog/org/app` are both records),
//! so a record's file can never be the directory of another: the last component of a key
//! gets a `=` appended, a character keys never hold (`catalog/org` is the file
//! `records/catalog/org=`, `catalog/org/app` the file `records/catalog/org/app=`). A last
//! component of 255 bytes has no room for the mark, so its record is the file `=` inside a
//! directory of that name. Data directories of older versions (records as plain files under
//! `<root>/meta/`) are migrated on open.
//!
//! A blob reaches `blobs/` only by `rename` from `tmp/` or `uploads/`, after its digest was
//! verified and the file was `fsync`ed; the directory is `fsync`ed after the rename, before
//! the call returns. A crash therefore leaves either no file at the blob's path or the
//! complete verified blob. Files left in `tmp/` by a crash are never read; `open` removes
//! those older than an hour. Appends to a session are `fsync`ed before they are
//! acknowledged, so sessions survive a restart.
//!
//! Records (`records/`) and the small blobs of a [`write_steps`](crate::MetaStore::write_steps)
//! batch go through a write-ahead journal (`<root>/journal/`): one `fdatasync` per batch,
//! atomic, replayed on open after a crash (see the `journal` module).

use std::io::{Read, Seek, SeekFrom, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};

use wharf_types::{Algorithm, Digest, Digester};

use crate::error::{Error, Result};
use crate::journal::Journal;
use crate::layout::{RootDir, blob_path, record_path, sync_dir};
use crate::listing::{Listings, join};
use crate::meta::{MetaStore, Write, check_key};
use crate::store::{
    BlobInfo, BlobStore, ByteStream, GetResult, Hashed, Running, Sessions, check_range, session_digester,
    verify,
};
use crate::upload_id::UploadId;

/// How long a file may sit in `tmp/` before `open` deems it left by a crash.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// Chunks queued between the hashing task and the writer thread.
const WRITE_QUEUE: usize = 8;
/// After this many bytes, a put starts flushing what it wrote so far in the background, so
/// the disk works while the rest is hashed and the final `fsync` has little left to do.
const EARLY_SYNC: u64 = 4 * 1024 * 1024;
/// The read buffer of a blob stream.
/// Blobs up to this size are put in one blocking call (no writer thread).
const SMALL_BLOB: usize = 1024 * 1024;
const READ_CHUNK: usize = 1024 * 1024;
/// Chunks read ahead of the network by a blob download.
const READ_AHEAD: usize = 2;
/// Blobs of a `write_steps` batch up to this size go through the journal (manifests do).
const JOURNAL_BLOB: usize = 4 * 1024 * 1024;

/// A blob store in a local directory.
///
/// # Example
/// ```
/// use wharf_store::{BlobStore, FsStore};
/// use wharf_types::Digest;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let store = FsStore::open(dir.path()).await?;
/// let digest = Digest::sha256(b"hello");
/// store.put_bytes(&digest, "hello".into()).await?;
/// assert!(dir.path().join("blobs/sha256").join(&digest.encoded()[..2]).join(digest.encoded()).exists());
/// // A store opened again on the same directory sees the blob.
/// let again = FsStore::open(dir.path()).await?;
/// assert_eq!(again.read_all(&digest).await?, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })
/// # }
/// ```
#[derive(Debug)]
pub struct FsStore {
    root: PathBuf,
    root_dir: RootDir,
    sessions: Sessions,
    journal: Arc<Journal>,
    listings: Arc<Listings>,
}

impl FsStore {
    /// Opens (creating when needed) a store rooted at `root`: replays the journals that
    /// stores no longer running left (a crash's unsynced record writes), removes leftovers of
    /// crashed puts, and starts this store's own journal.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in ["blobs", "uploads", "tmp", "records"] {
            let path = root.join(dir);
            tokio::fs::create_dir_all(&path).await.map_err(|e| Error::io("create directory", &path, e))?;
        }
        let root2 = root.clone();
        let journal = blocking(move || {
            sync_dir(&root2)?;
            remove_stale_temp(&root2.join("tmp"));
            migrate_meta(&root2)?;
            Journal::open(&root2)
        })
        .await?;
        let root_dir = RootDir::open(&root)?;
        Ok(Self {
            root,
            root_dir,
            sessions: Sessions::default(),
            journal: Arc::new(journal),
            listings: Arc::default(),
        })
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// A page of the record keys that start with `prefix` (see [`MetaStore::list_meta_page`](crate::MetaStore::list_meta_page)).
    pub(crate) async fn records_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        // The brief records first: one written out meanwhile is on disk before it is
        // forgotten, so the listing that follows finds it.
        let brief = self.journal.brief_keys(prefix, after, limit);
        let (root, listings) = (self.root.clone(), Arc::clone(&self.listings));
        let (prefix, after) = (prefix.to_owned(), after.map(str::to_owned));
        let mut keys = blocking(move || listings.page(&root, &prefix, after.as_deref(), limit)).await?;
        if !brief.is_empty() {
            keys.extend(brief);
            keys.sort_unstable();
            keys.dedup();
            keys.truncate(limit);
        }
        Ok(keys)
    }

    /// How many journal records (or damaged journal tails) `open` could not replay and moved
    /// to `<root>/quarantine/`.
    pub fn quarantined_count(&self) -> u64 {
        self.journal.quarantined()
    }

    /// Checks `writes`, journals them and applies them; blobs too big for the journal are put
    /// durably on their own first (after every write was checked).
    pub(crate) async fn commit_writes(&self, mut writes: Vec<Write>) -> Result<()> {
        let large = |w: &Write| matches!(w, Write::Blob { bytes, .. } if bytes.len() > JOURNAL_BLOB);
        let journal = Arc::clone(&self.journal);
        if writes.is_empty() {
            return Ok(());
        }
        if !writes.iter().any(large) {
            // The usual case: one blocking call for the check, the journal write and the apply.
            return blocking(move || {
                writes.iter().try_for_each(Write::check)?;
                journal.commit(&writes)
            })
            .await;
        }
        writes = blocking(move || writes.iter().try_for_each(Write::check).map(|()| writes)).await?;
        for write in writes.iter().filter(|w| large(w)) {
            if let Write::Blob { digest, bytes } = write {
                self.put_bytes(digest, bytes.clone()).await?;
            }
        }
        writes.retain(|w| !large(w));
        if writes.is_empty() {
            return Ok(());
        }
        blocking(move || journal.commit(&writes)).await
    }

    fn upload_path(&self, id: &UploadId) -> PathBuf {
        self.root.join("uploads").join(id.as_str())
    }

    /// Moves a verified, synced file to the blob's path and makes the rename durable.
    async fn publish(&self, from: PathBuf, digest: &Digest) -> Result<()> {
        let to = self.blob_path(digest);
        let blobs = self.root.join("blobs");
        blocking(move || publish(&from, &to, &blobs)).await
    }

    async fn len_of(&self, id: &UploadId) -> Result<u64> {
        match tokio::fs::metadata(self.upload_path(id)).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::UploadNotFound { id: id.clone() })
            }
            Err(e) => Err(Error::io("stat", self.upload_path(id), e)),
        }
    }
}

#[async_trait]
impl BlobStore for FsStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        // One `fstatat` of a cached inode: cheaper here than the hand-off to the blocking pool.
        let rel = blob_path(Path::new(""), digest);
        match self.root_dir.stat(&rel) {
            Ok(stat) => Ok(Some(BlobInfo::new(digest.clone(), stat.size))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", self.root.join(rel), e)),
        }
    }

    async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<GetResult> {
        let path = self.blob_path(digest);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound { digest: digest.clone() });
            }
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let size = file.metadata().await.map_err(|e| Error::io("stat", &path, e))?.len();
        let range = check_range(digest, range, size)?;
        let file = Arc::new(file.into_std().await);
        let stream = read_ahead(Arc::clone(&file), range.clone());
        Ok(GetResult { size, range, stream, file: Some(file) })
    }

    async fn put(&self, expected: &Digest, data: ByteStream) -> Result<BlobInfo> {
        let temp = TempFile::new(self.root.join("tmp").join(UploadId::random().as_str()));
        let file = std::fs::File::create(&temp.path).map_err(|e| Error::io("create", &temp.path, e))?;
        let mut digester = expected.digester();
        let mut input = Hashed::new(data, &mut digester);
        write_durably(file, &temp.path, &mut input).await?;
        let size = input.len;
        verify(digester, expected)?;
        self.publish(temp.path.clone(), expected).await?;
        temp.disarm();
        Ok(BlobInfo::new(expected.clone(), size))
    }

    /// Small blobs (manifests, configs) in one blocking call: verify, write, fsync, publish.
    async fn put_bytes(&self, expected: &Digest, data: bytes::Bytes) -> Result<BlobInfo> {
        if data.len() > SMALL_BLOB {
            return self.put(expected, crate::single(data)).await;
        }
        let temp = TempFile::new(self.root.join("tmp").join(UploadId::random().as_str()));
        let to = self.blob_path(expected);
        let blobs = self.root.join("blobs");
        let expected = expected.clone();
        blocking(move || {
            let mut digester = expected.digester();
            digester.update(&data);
            verify(digester, &expected)?;
            let mut file =
                std::fs::File::create(&temp.path).map_err(|e| Error::io("create", &temp.path, e))?;
            file.write_all(&data)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io("write", &temp.path, e))?;
            publish(&temp.path, &to, &blobs)?;
            temp.disarm();
            Ok(BlobInfo::new(expected, data.len() as u64))
        })
        .await
    }

    /// One blocking read of the whole file.
    async fn read_all(&self, digest: &Digest) -> Result<bytes::Bytes> {
        let path = self.blob_path(digest);
        match tokio::fs::read(&path).await {
            Ok(v) => Ok(v.into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound { digest: digest.clone() })
            }
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        blocking(move || match std::fs::remove_file(&path) {
            // Durable when it returns, as a put is.
            Ok(()) => sync_dir(path.parent().expect("blob paths have a parent")).map(|()| true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", path, e)),
        })
        .await
    }

    async fn modified(&self, digest: &Digest) -> Result<Option<std::time::SystemTime>> {
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.modified().map_err(|e| Error::io("stat", &path, e))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", path, e)),
        }
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        let from = self.blob_path(digest);
        let dir = self.root.join("quarantine").join("blobs").join(digest.algorithm().as_str());
        let to = dir.join(digest.encoded());
        blocking(move || {
            if !from.exists() {
                return Ok(false);
            }
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
            std::fs::rename(&from, &to).map_err(|e| Error::io("rename", &from, e))?;
            sync_dir(&dir)?;
            sync_dir(from.parent().expect("blob paths have a parent")).map(|()| true)
        })
        .await
    }

    fn list(&self) -> BoxStream<'_, Result<Digest>> {
        let blobs = self.root.join("blobs");
        stream::once(async move { blocking(move || list_blobs(&blobs)).await })
            .flat_map(|r| match r {
                Ok(digests) => stream::iter(digests.into_iter().map(Ok)).boxed(),
                Err(e) => stream::once(async { Err(e) }).boxed(),
            })
            .boxed()
    }

    async fn begin(&self) -> Result<UploadId> {
        let id = UploadId::random();
        let path = self.upload_path(&id);
        tokio::fs::File::create(&path).await.map_err(|e| Error::io("create", &path, e))?;
        let dir = self.root.join("uploads");
        blocking(move || sync_dir(&dir)).await?;
        *self.sessions.get(&id).lock().await = Some(Running { len: 0, digester: session_digester() });
        Ok(id)
    }

    async fn append(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64> {
        let session = self.sessions.get(id);
        let mut running = session.lock().await;
        let path = self.upload_path(id);
        let size = self.len_of(id).await.inspect_err(|_| self.sessions.forget(id))?;
        if offset != size {
            return Err(Error::WrongOffset { id: id.clone(), offset, size });
        }
        let mut digester = match running.take() {
            Some(r) if r.len == size => r.digester,
            // Another process appended, or this one restarted: hash what is stored.
            _ => hash_file(path.clone(), size, Algorithm::Sha256).await?,
        };
        let file =
            std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io("open", &path, e))?;
        let before = digester.clone();
        let mut input = Hashed::new(data, &mut digester);
        if let Err(e) = write_durably(file, &path, &mut input).await {
            // A failed append adds nothing: cut the file back to where it was.
            let _ = std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(size));
            *running = Some(Running { len: size, digester: before });
            return Err(e);
        }
        let len = size + input.len;
        *running = Some(Running { len, digester });
        Ok(len)
    }

    async fn status(&self, id: &UploadId) -> Result<u64> {
        self.len_of(id).await
    }

    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo> {
        let session = self.sessions.get(id);
        let mut running = session.lock().await;
        let path = self.upload_path(id);
        let size = self.len_of(id).await.inspect_err(|_| self.sessions.forget(id))?;
        let digester = match running.take() {
            Some(r) if r.len == size && r.digester.algorithm() == expected.algorithm() => r.digester,
            _ => hash_file(path.clone(), size, expected.algorithm()).await?,
        };
        let result = match verify(digester, expected) {
            Ok(_) => self.publish(path.clone(), expected).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        drop(running);
        self.sessions.forget(id);
        result.map(|()| BlobInfo::new(expected.clone(), size))
    }

    async fn abort(&self, id: &UploadId) -> Result<()> {
        let session = self.sessions.get(id);
        let _running = session.lock().await;
        let path = self.upload_path(id);
        let result = match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::UploadNotFound { id: id.clone() })
            }
            Err(e) => Err(Error::io("remove", path, e)),
        };
        self.sessions.forget(id);
        result
    }
}

/// Writes `input` to `file` and makes it durable. A blocking writer thread does the writes
/// while this task hashes the next chunks (each byte hashed once, in `Hashed`, and never
/// copied on the way), and every [`EARLY_SYNC`] bytes a background `fdatasync` starts the
/// disk on what is written, so the final `fsync` has little left to do. Memory stays bounded
/// by the channel.
async fn write_durably(file: std::fs::File, path: &Path, input: &mut Hashed<'_>) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(WRITE_QUEUE);
    let owned = path.to_owned();
    let writer = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut file = file;
        let mut unsynced = 0u64;
        let mut early: Option<std::thread::JoinHandle<()>> = None;
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk).map_err(|e| Error::io("write", &owned, e))?;
            unsynced += chunk.len() as u64;
            if unsynced >= EARLY_SYNC
                && early.as_ref().is_none_or(std::thread::JoinHandle::is_finished)
                && let Ok(dup) = file.try_clone()
            {
                unsynced = 0;
                early = Some(std::thread::spawn(move || {
                    let _ = dup.sync_data();
                }));
            }
        }
        if let Some(h) = early {
            let _ = h.join();
        }
        file.sync_all().map_err(|e| Error::io("fsync", &owned, e))
    });
    let sent = async {
        while let Some(chunk) = input.next().await? {
            if tx.send(chunk).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let written = writer.await.map_err(|e| Error::Corrupt(format!("writer thread failed: {e}")))?;
    sent.and(written)
}

/// Streams bytes `range` of `file`, reading ahead of the network: a task reads each chunk
/// in one blocking call straight into the buffer that goes out (no zeroing, no second copy)
/// and queues up to [`READ_AHEAD`] chunks, so the disk and the socket work at once. No thread
/// waits on a slow client; dropping the stream stops the task. Nothing is read before the
/// stream is first polled (a server that sends the file itself never polls it).
fn read_ahead(file: Arc<std::fs::File>, range: Range<u64>) -> ByteStream {
    let start = stream::once(async move {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(READ_AHEAD);
        tokio::spawn(async move {
            let (mut offset, end) = (range.start, range.end);
            while offset < end {
                let want = (end - offset).min(READ_CHUNK as u64);
                let file = Arc::clone(&file);
                let first = offset == range.start;
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(READ_CHUNK));
                    let mut file = &*file;
                    // Only this task moves the file's position (`sendfile` gives its own).
                    if first {
                        file.seek(SeekFrom::Start(offset))?;
                    }
                    file.take(want).read_to_end(&mut buf).map(|_| buf)
                })
                .await;
                let Ok(result) = read else { break };
                let chunk = match result {
                    Ok(buf) if buf.is_empty() => Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the blob file is shorter than its size",
                    )),
                    Ok(buf) => {
                        offset += buf.len() as u64;
                        Ok(bytes::Bytes::from(buf))
                    }
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) })
    });
    start.flatten().boxed()
}

/// Renames the verified, synced file `from` to the blob path `to` (creating its directories)
/// and makes the rename durable.
fn publish(from: &Path, to: &Path, blobs: &Path) -> Result<()> {
    let parent = to.parent().expect("blob paths have a parent");
    if !parent.exists() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
        // Make the new directories durable: each one's entry lives in its parent.
        let mut dir = parent;
        while dir != blobs {
            let up = dir.parent().expect("below the root");
            sync_dir(up)?;
            dir = up;
        }
    }
    std::fs::rename(from, to).map_err(|e| Error::io("rename", to, e))?;
    sync_dir(parent)
}

/// A file in `tmp/` removed on drop unless disarmed (a put that failed or was cancelled).
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Moves the records of an older data directory (plain files under `<root>/meta/`, where a
/// record could not be a prefix of another) to `<root>/records/`. Crash-safe: each file is
/// renamed once, and a migration cut short is taken up again on the next open.
fn migrate_meta(root: &Path) -> Result<()> {
    let old = root.join("meta");
    if !old.is_dir() {
        return Ok(());
    }
    let dirs = walk(
        old.clone(),
        String::new(),
        |_| true,
        |rel, name, entry| {
            let key = join(rel, name);
            if crate::check_key(&key).is_ok() {
                let to = record_path(root, &key);
                let parent = to.parent().expect("below the root");
                std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
                std::fs::rename(entry.path(), &to).map_err(|e| Error::io("rename", &to, e))?;
            }
            Ok(())
        },
    )?;
    crate::layout::sync_fs(root)?;
    // Deepest first; a directory still holding a stray file stays (and so does `meta/`).
    for dir in dirs.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    if old.exists() {
        tracing::warn!(path = %old.display(), "files that are not records were left in the old records folder");
    }
    sync_dir(root)
}

/// Walks the tree below `dir` (whose key so far is `rel`), depth first: `file(rel, name, entry)`
/// for every file, `rel` being its directory's key; directories whose name `enter` refuses are
/// skipped, and a missing `dir` is empty. Returns the directories walked, parents first.
fn walk(
    dir: PathBuf,
    rel: String,
    enter: impl Fn(&str) -> bool,
    mut file: impl FnMut(&str, &str, &std::fs::DirEntry) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    let mut walked = Vec::new();
    let mut stack = vec![(dir, rel)];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.kind() == std::io::ErrorKind::NotADirectory =>
            {
                continue;
            }
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if enter(&name) {
                    stack.push((entry.path(), join(&rel, &name)));
                }
            } else {
                file(&rel, &name, &entry)?;
            }
        }
        walked.push(dir);
    }
    Ok(walked)
}

/// Records up to this size are read on the calling thread.
const INLINE_RECORD: u64 = 64 * 1024;

/// A record's bytes. Records are small, hot and never changed in place (a write renames a
/// new file over the old), so the usual one — a tag, a link, a revision, under a few hundred
/// bytes — is read right here: `open`, `fstat`, one `read`, `close` of a page-cached file
/// cost a few microseconds, less than handing the read to tokio's blocking pool and back
/// (two thread wake-ups; see docs/PERFORMANCE.md, "The hot path"). A larger record is read
/// on the blocking pool.
async fn read_record(root: &RootDir, rel: &Path) -> std::io::Result<Bytes> {
    let mut file = root.open_file(rel)?;
    let len = file.metadata()?.len();
    if len > INLINE_RECORD {
        return tokio::task::spawn_blocking(move || {
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut bytes).map(|_| Bytes::from(bytes))
        })
        .await
        .map_err(std::io::Error::other)?;
    }
    let mut bytes = vec![0; usize::try_from(len).unwrap_or(0)];
    file.read_exact(&mut bytes)?;
    Ok(bytes.into())
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Corrupt(format!("blocking task failed: {e}")))?
}

fn remove_stale_temp(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TEMP);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Hashes the first `len` bytes of a file with `algorithm`.
async fn hash_file(path: PathBuf, len: u64, algorithm: Algorithm) -> Result<Digester> {
    blocking(move || {
        let mut file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| Error::io("seek", &path, e))?;
        let mut digester = algorithm.digester();
        let mut reader = file.take(len);
        std::io::copy(&mut reader, &mut digester).map_err(|e| Error::io("read", &path, e))?;
        if digester.len() != len {
            return Err(Error::Corrupt(format!("{} is shorter than {len} bytes", path.display())));
        }
        Ok(digester)
    })
    .await
}

/// Every `blobs/<algorithm>/<xx>/<hex>` whose name is a valid digest in the right place.
fn list_blobs(blobs: &Path) -> Result<Vec<Digest>> {
    let read = |dir: &Path| -> Result<Vec<(String, PathBuf)>> {
        match std::fs::read_dir(dir) {
            Ok(entries) => Ok(entries
                .flatten()
                .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("list", dir, e)),
        }
    };
    let mut out = Vec::new();
    for (algorithm, alg_dir) in read(blobs)? {
        for (prefix, prefix_dir) in read(&alg_dir)? {
            for (hex, _) in read(&prefix_dir)? {
                if let Ok(digest) = format!("{algorithm}:{hex}").parse::<Digest>()
                    && hex.starts_with(&prefix)
                    && prefix.len() == 2
                {
                    out.push(digest);
                }
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl MetaStore for FsStore {
    async fn get_meta(&self, key: &str) -> Result<Option<Bytes>> {
        check_key(key)?;
        if let Some(value) = self.journal.brief(key) {
            return Ok(Some(value));
        }
        let rel = record_path(Path::new(""), key);
        match read_record(&self.root_dir, &rel).await {
            Ok(v) => Ok(Some(v)),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.kind() == std::io::ErrorKind::NotADirectory =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::io("read", self.root.join(rel), e)),
        }
    }

    async fn meta_exists(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        if self.journal.brief(key).is_some() {
            return Ok(true);
        }
        // One `fstatat` of a cached inode, on the calling thread (as a blob's `stat`).
        let rel = record_path(Path::new(""), key);
        match self.root_dir.stat(&rel) {
            Ok(stat) => Ok(stat.regular),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.kind() == std::io::ErrorKind::NotADirectory =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::io("stat", self.root.join(rel), e)),
        }
    }

    async fn set_meta(&self, key: &str, value: Bytes) -> Result<()> {
        self.commit_writes(vec![Write::Set { key: key.to_owned(), value }]).await
    }

    async fn remove_meta(&self, key: &str) -> Result<bool> {
        let exists = self.meta_exists(key).await?;
        if exists {
            self.commit_writes(vec![Write::Remove { key: key.to_owned() }]).await?;
        }
        Ok(exists)
    }

    async fn write_steps(&self, steps: Vec<Vec<Write>>) -> Result<()> {
        // One journal record: the batch is atomic, so the order of the steps holds too.
        self.commit_writes(steps.into_iter().flatten().collect()).await
    }

    async fn list_meta(&self, prefix: &str) -> Result<Vec<String>> {
        self.records_page(prefix, None, usize::MAX).await
    }

    async fn publish(&self, prefix: &str) -> Result<()> {
        let (journal, prefix) = (Arc::clone(&self.journal), prefix.to_owned());
        blocking(move || journal.publish(&prefix)).await
    }

    async fn list_meta_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        self.records_page(prefix, after, limit).await
    }

    fn quarantined(&self) -> u64 {
        self.quarantined_count()
    }
}
