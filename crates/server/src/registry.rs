//! The registry core: repositories, blobs, uploads, manifests, tags, referrers. No HTTP here.
//!
//! # Records (in the backend's `MetaStore`)
//!
//! ```text
//! catalog/<repo>                                                  the repository exists
//! repositories/<repo>/_layers/<alg>/<hex>                         blob linked to the repository (`<size> <unix secs linked>`)
//! repositories/<repo>/_uploads/<upload id>                        an upload session of the repository
//! repositories/<repo>/_manifests/revisions/<alg>/<hex>            manifest in the repository (JSON: media type, size, subject, pushed)
//! repositories/<repo>/_manifests/tags/<tag>                       `<digest> <size> <media type>` of the manifest tagged, then a line `<unix secs pushed>`
//! repositories/<repo>/_manifests/pulled/<tag>                     `<unix secs>`: when the tag was last pulled (at most once a minute per process)
//! repositories/<repo>/_manifests/tagged/<alg>/<hex>/<tag>          (empty) the tag was set to the manifest: a hint, checked against the tag record
//! repositories/<repo>/_manifests/tag-index                        (empty) every tag of the repository has its `tagged/` hint
//! repositories/<repo>/_referrers/<subj alg>/<subj hex>/<alg>/<hex>   referrer descriptor (JSON)
//! repositories/<repo>/_wharf/artifacts/<alg>/<hex>               the Wasm classification of a manifest (JSON)
//! jobs/pending/<id>, jobs/leases/<id>                             background work (see `jobs`)
//! blob-repositories/<alg>/<hex>/<repo>                            reverse link, for mounts without `from` and garbage collection
//! manifest-repositories/<alg>/<hex>/<repo>                        reverse revision, for garbage collection
//! gc/…                                                            the collector's lease, epoch and doomed marks (see `gc`)
//! uploads/<upload id>                                             `<unix seconds> <repo>`: when a session began, for expiry
//! ```
//!
//! Writes are ordered so that a crash leaves no record naming what is not durable: a
//! manifest's bytes, then its revision and artifact records, then its tags; a delete removes
//! the tags first. A tag record therefore answers GET and HEAD by tag on its own (a record of
//! only a digest, as older versions wrote, is completed from the revision).
//!
//! Manifest bytes and blobs live in the backend's `BlobStore`, content addressed. Every write
//! is a whole record (last writer wins), so several server processes can share one backend.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wharf_store::{BlobInfo, ByteStream, GetResult, Storage, UploadId, Write};
use wharf_types::{Descriptor, Digest, ImageIndex, Manifest, MediaType, Repository, Tag, TagOrDigest};

use crate::error::{Error, Result};

/// How long a blob URL handed to a client stays valid (a client starts its download well
/// within it; the download itself may last longer).
pub const BLOB_URL_EXPIRY: std::time::Duration = std::time::Duration::from_secs(300);

/// Records read at a time by a paged listing that filters what it reads (the catalog of what
/// a caller may see).
pub(crate) const LISTING_BATCH: usize = 1000;

/// What a manifest PUT stored.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PutManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// The subject it refers to, if any (answered as `OCI-Subject`).
    pub subject: Option<Digest>,
    /// The tags it now has from this request.
    pub tags: Vec<Tag>,
}

/// A manifest read back: exact bytes, digest and media type.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoredManifest {
    /// The digest.
    pub digest: Digest,
    /// The media type it was pushed with.
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Bytes,
}

/// The record of a manifest revision.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Revision {
    pub(crate) media_type: String,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<Digest>,
    /// When it was pushed (unix seconds; absent in records of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pushed: Option<u64>,
}

/// A page of names (tags or repositories) and whether more follow.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// The names, sorted.
    pub names: Vec<String>,
    /// Whether names after the last one exist.
    pub more: bool,
}

impl Page {
    /// A page of `names`, with `more` after it or not.
    pub fn new(names: Vec<String>, more: bool) -> Self {
        Self { names, more }
    }
}

/// The registry, over one storage backend.
#[derive(Clone, Debug)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    wasm_validate: bool,
    metrics: Arc<crate::metrics::Metrics>,
    manifests: Arc<crate::cache::ManifestCache>,
    /// Wakes this process's job worker when a push queues a job.
    jobs: Arc<tokio::sync::Notify>,
    policies: Arc<crate::policy::WasmPolicies>,
    search: Arc<crate::search::SearchIndex>,
    lifecycle: Arc<crate::gc::Lifecycle>,
    /// Writes confirm against collections (off only to show, in a test, what it prevents).
    gc_fence: bool,
    /// When this process last recorded a pull of each tag (unix seconds).
    pulls: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), u64>>>,
    /// What reading one artifact's layers may cost.
    budget: wharf_wasm::budget::Budget,
    /// The inspections this process runs at once (jobs, and PUTs that read modules).
    slots: Arc<crate::jobs::Slots>,
}

/// Inspections run at once by default: the cores, at least 2 and at most 8.
fn default_inspections() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get).clamp(2, 8)
}

/// A tag record: `<digest> <size> <media type>`, then a line with when it was pushed (older
/// records: `<digest>` alone, or without the time).
#[derive(Debug)]
pub(crate) struct TagRecord {
    pub(crate) digest: Digest,
    /// The manifest's size and media type, when the record holds them.
    head: Option<(u64, String)>,
    /// When the tag was pushed (unix seconds), when the record says.
    pub(crate) pushed: Option<u64>,
}

impl TagRecord {
    pub(crate) fn encode(digest: &Digest, size: u64, media_type: &str) -> Bytes {
        format!("{digest} {size} {media_type}\n{}", now_secs()).into()
    }

    pub(crate) fn decode(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let (text, pushed) = match text.split_once('\n') {
            Some((head, time)) => (head, time.trim().parse().ok()),
            None => (text, None),
        };
        let mut parts = text.trim().splitn(3, ' ');
        let digest = parts.next()?.parse().ok()?;
        let head = match (parts.next().map(str::parse), parts.next()) {
            (Some(Ok(size)), Some(media_type)) if !media_type.is_empty() => {
                Some((size, media_type.to_owned()))
            }
            _ => None,
        };
        Some(Self { digest, head, pushed })
    }
}

/// A link record: `<size> <unix secs linked>`. Records of older versions hold the size alone
/// (or nothing): their time reads as 0, long ago.
pub(crate) struct LinkRecord {
    /// The blob's size, when the record holds it.
    pub(crate) size: Option<u64>,
    /// When the link was written.
    pub(crate) linked: u64,
}

impl LinkRecord {
    fn encode(size: u64) -> Bytes {
        format!("{size} {}", now_secs()).into()
    }

    pub(crate) fn decode(record: &[u8]) -> Self {
        let mut fields = std::str::from_utf8(record).unwrap_or_default().split(' ');
        let size = fields.next().and_then(|s| s.parse().ok());
        let linked = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        Self { size, linked }
    }
}

pub(crate) use crate::clock::now_secs;

pub(crate) fn digest_key(d: &Digest) -> String {
    format!("{}/{}", d.algorithm(), d.encoded())
}

/// The hint that `tag` was set to `digest` (see the records above): written with the tag,
/// never removed when the tag moves, so a reader checks it against the tag record.
pub(crate) fn tagged_write(repo: &Repository, digest: &Digest, tag: &str) -> Write {
    Write::Set {
        key: repo_key(repo, &format!("_manifests/tagged/{}/{tag}", digest_key(digest))),
        value: Bytes::new(),
    }
}

pub(crate) fn repo_key(repo: &Repository, rest: &str) -> String {
    format!("repositories/{repo}/{rest}")
}

/// The record linking blob `d` to the repository.
pub(crate) fn layer_key(repo: &Repository, d: &Digest) -> String {
    repo_key(repo, &format!("_layers/{}", digest_key(d)))
}

/// The catalog entry of a repository (present once it has held anything).
fn catalog_key(repo: &Repository) -> String {
    format!("catalog/{repo}")
}

impl Registry {
    /// A registry in memory: for tests, examples and programs that embed one (nothing
    /// survives the process). The same as `Registry::new(Arc::new(MemoryStore::new()))`.
    ///
    /// ```
    /// let registry = wharf_server::Registry::in_memory();
    /// # let _ = registry;
    /// ```
    pub fn in_memory() -> Self {
        Self::new(Arc::new(wharf_store::MemoryStore::new()))
    }

    /// A registry over `storage` (a [`wharf_store::FsStore`], `MemoryStore` or `S3Store`).
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            wasm_validate: false,
            metrics: Arc::default(),
            manifests: Arc::default(),
            jobs: Arc::default(),
            policies: Arc::default(),
            search: Arc::new(crate::search::SearchIndex::new()),
            lifecycle: Arc::default(),
            gc_fence: true,
            pulls: Arc::default(),
            budget: wharf_wasm::budget::Budget::default(),
            slots: Arc::new(crate::jobs::Slots::new(default_inspections())),
        }
    }

    /// What reading one artifact's layers may cost (bytes decompressed, extended header
    /// sizes, entries, module size, time; [`wharf_wasm::budget::Budget`]), and how many
    /// artifacts a process reads at once (the cores, 2 to 8, by default). An artifact over
    /// budget is recorded as not inspected, with the limit it reached.
    #[must_use]
    pub fn with_inspection(mut self, budget: wharf_wasm::budget::Budget, concurrency: Option<usize>) -> Self {
        self.budget = budget;
        self.slots = Arc::new(crate::jobs::Slots::new(concurrency.unwrap_or_else(default_inspections)));
        self
    }

    pub(crate) fn inspection_budget(&self) -> &wharf_wasm::budget::Budget {
        &self.budget
    }

    pub(crate) fn inspection_slots(&self) -> &Arc<crate::jobs::Slots> {
        &self.slots
    }

    /// With lifecycle rules (`[gc]`, `[[retention]]`) for [`collect_garbage`](Self::collect_garbage).
    #[must_use]
    pub fn with_lifecycle(mut self, lifecycle: crate::gc::Lifecycle) -> Self {
        self.lifecycle = Arc::new(lifecycle);
        self
    }

    /// **Unsafe for real use**: with `false`, pushes no longer confirm their writes against a
    /// concurrent garbage collection. Exists so that a test can show the collection losing
    /// acknowledged data without it.
    #[doc(hidden)]
    #[must_use]
    pub fn with_gc_fence(mut self, on: bool) -> Self {
        self.gc_fence = on;
        self
    }

    /// Whether writers confirm their writes against collections (always, outside tests that
    /// show what happens without).
    pub(crate) fn gc_fence(&self) -> bool {
        self.gc_fence
    }

    /// The lifecycle rules.
    pub fn lifecycle(&self) -> &crate::gc::Lifecycle {
        &self.lifecycle
    }

    /// With `on`, a manifest whose declared raw Wasm layer is not valid WebAssembly is refused
    /// (400 `MANIFEST_INVALID`).
    #[must_use]
    pub fn with_wasm_validate(mut self, on: bool) -> Self {
        self.wasm_validate = on;
        self
    }

    /// With Wasm policies (`[[wasm_policy]]`): a push into a repository they match is checked
    /// against them before it is acknowledged.
    #[must_use]
    pub fn with_wasm_policies(mut self, policies: crate::policy::WasmPolicies) -> Self {
        self.policies = Arc::new(policies);
        self
    }

    pub(crate) fn search_index(&self) -> &crate::search::SearchIndex {
        &self.search
    }

    pub(crate) fn wasm_policies(&self) -> &crate::policy::WasmPolicies {
        &self.policies
    }

    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The Prometheus text exposition of this registry's metrics.
    pub async fn render_metrics(&self) -> Result<String> {
        let sessions = self.storage.list_meta("uploads/").await?.len();
        let repositories = self.storage.list_meta("catalog/").await?.len();
        let jobs = self.storage.list_meta("jobs/pending/").await?.len();
        let parked = self.storage.list_meta("jobs/parked/").await?.len();
        self.quota_metrics().await?;
        Ok(self.metrics.render(sessions, repositories, self.storage.quarantined(), (jobs, parked)))
    }

    /// Whether the Wasm validation policy is on.
    pub fn wasm_validate(&self) -> bool {
        self.wasm_validate
    }

    /// What wakes the job worker.
    pub(crate) fn job_wake(&self) -> &tokio::sync::Notify {
        &self.jobs
    }

    /// Runs the background jobs queued in the backend until none this process can take is
    /// left (a server runs them on its own; tools and tests embedding a [`Registry`] call
    /// this).
    pub async fn run_pending_jobs(&self) -> Result<()> {
        Arc::new(crate::jobs::Worker::new()).drain(self).await
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.storage.get_meta(key).await?.is_some())
    }

    async fn mark(&self, key: &str) -> Result<()> {
        Ok(self.storage.set_meta(key, Bytes::new()).await?)
    }

    /// Whether the repository exists (has ever held a blob, upload or manifest).
    pub async fn repository_exists(&self, repo: &Repository) -> Result<bool> {
        self.exists(&catalog_key(repo)).await
    }

    async fn touch_repository(&self, repo: &Repository) -> Result<()> {
        let key = catalog_key(repo);
        if !self.exists(&key).await? {
            self.mark(&key).await?;
        }
        Ok(())
    }

    /// Links a stored blob of `size` bytes to the repository (the link records the size, so
    /// that a manifest's descriptors are checked with one record read each).
    async fn link_blob(&self, repo: &Repository, digest: &Digest, size: u64) -> Result<()> {
        self.touch_repository(repo).await?;
        self.storage.set_meta(&layer_key(repo, digest), LinkRecord::encode(size)).await?;
        self.mark(&format!("blob-repositories/{}/{repo}", digest_key(digest))).await
    }

    /// [`link_blob`](Self::link_blob) as a write that makes a blob live: the collector's
    /// fence is read before (`epoch`) and confirmed after, and a blob a concurrent collection
    /// removed is unlinked again and reported instead of acknowledged.
    async fn link_fenced(
        &self,
        epoch: &crate::gc::Epoch,
        repo: &Repository,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.link_blob(repo, digest, size).await?;
        let check = crate::gc::Check::Link(repo.clone(), digest.clone());
        if let Err(e) = crate::gc::confirm(self, epoch, std::slice::from_ref(&check)).await {
            self.unlink(repo, digest).await?;
            return Err(e);
        }
        Ok(())
    }

    /// Removes the link of `digest` to the repository and its reverse record.
    pub(crate) async fn unlink(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        let removed = self.storage.remove_meta(&layer_key(repo, digest)).await?;
        self.storage.remove_meta(&format!("blob-repositories/{}/{repo}", digest_key(digest))).await?;
        Ok(removed)
    }

    /// Whether `digest` is linked to the repository.
    pub async fn blob_linked(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        self.exists(&layer_key(repo, digest)).await
    }

    /// The size of a blob linked to the repository, `None` when it is not linked (links
    /// written before they recorded sizes are completed from the blob).
    async fn linked_size(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>> {
        let Some(record) = self.storage.get_meta(&layer_key(repo, digest)).await? else {
            return Ok(None);
        };
        if let Some(size) = LinkRecord::decode(&record).size {
            return Ok(Some(size));
        }
        Ok(self.storage.stat(digest).await?.map(|info| info.size))
    }

    /// The blob's size, if it is in the repository.
    pub async fn stat_blob(&self, repo: &Repository, digest: &Digest) -> Result<Option<BlobInfo>> {
        if !self.blob_linked(repo, digest).await? {
            return Ok(None);
        }
        Ok(self.storage.stat(digest).await?)
    }

    /// Where a client may fetch the blob from the storage engine itself (a presigned URL,
    /// valid for [`BLOB_URL_EXPIRY`]), when the storage hands such URLs out (S3 with
    /// `redirect=true`); `None` otherwise. [`Error::BlobUnknown`] when the repository does
    /// not hold the blob.
    pub async fn blob_url(&self, repo: &Repository, digest: &Digest, head: bool) -> Result<Option<String>> {
        let Some(url) = self.storage.direct_url(digest, head, BLOB_URL_EXPIRY).await? else {
            return Ok(None);
        };
        if !self.blob_linked(repo, digest).await? {
            return Err(Error::BlobUnknown(digest.clone()));
        }
        Ok(Some(url))
    }

    /// Streams the blob (or a range of it) from the repository.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<GetResult> {
        if !self.blob_linked(repo, digest).await? {
            return Err(Error::BlobUnknown(digest.clone()));
        }
        match self.storage.get(digest, range).await {
            Err(wharf_store::Error::BlobNotFound { .. }) => Err(Error::BlobUnknown(digest.clone())),
            Err(wharf_store::Error::InvalidRange { size, .. }) => Err(Error::BlobRange { size }),
            other => Ok(other?),
        }
    }

    /// Unlinks the blob from the repository (the bytes stay for other repositories).
    pub async fn delete_blob(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        if !self.unlink(repo, digest).await? {
            return Err(Error::BlobUnknown(digest.clone()));
        }
        Ok(())
    }

    /// Stores a whole blob (monolithic upload) and links it.
    pub async fn put_blob(&self, repo: &Repository, digest: &Digest, data: ByteStream) -> Result<BlobInfo> {
        let epoch = crate::gc::Epoch::read(self).await?;
        let (data, exceeded) = self.within_quota(repo, Some(digest), 0, data).await?;
        let info = match self.storage.put(digest, data).await {
            Err(_) if exceeded.is_some_and(|e| e.load(std::sync::atomic::Ordering::Relaxed)) => {
                return Err(self.over_quota(repo).await);
            }
            other => other?,
        };
        self.link_fenced(&epoch, repo, digest, info.size).await?;
        self.quota_added(repo, digest, info.size);
        Ok(info)
    }

    /// `data`, cut off with an error past the room the repository's quotas leave (after
    /// `already` bytes of the same blob); the flag says whether that happened. A blob the
    /// quotas already count passes as it is.
    async fn within_quota(
        &self,
        repo: &Repository,
        digest: Option<&Digest>,
        already: u64,
        data: ByteStream,
    ) -> Result<(ByteStream, Option<Arc<std::sync::atomic::AtomicBool>>)> {
        use futures_util::StreamExt as _;
        let Some(room) = self.quota_room(repo).await? else { return Ok((data, None)) };
        if let Some(d) = digest
            && self.check_quota(repo, Some(d), u64::MAX).await.is_ok()
        {
            // Counted under every quota: adds nothing.
            return Ok((data, None));
        }
        let exceeded = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&exceeded);
        let mut seen = already;
        let limited = data
            .map(move |chunk| {
                let chunk = chunk?;
                seen += chunk.len() as u64;
                if seen > room {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(std::io::Error::other("over quota"));
                }
                Ok(chunk)
            })
            .boxed();
        Ok((limited, Some(exceeded)))
    }

    /// The refusal of a push that went over a quota (with usage and limit).
    async fn over_quota(&self, repo: &Repository) -> Error {
        match self.check_quota(repo, None, u64::MAX).await {
            Err(e) => e,
            Ok(()) => Error::Denied { message: "over quota".into(), challenge: None },
        }
    }

    /// Mounts `digest` from `from` (or, without `from`, from any repository holding it).
    /// `false` when there is nothing to mount (the caller starts an upload instead).
    pub async fn mount(&self, repo: &Repository, digest: &Digest, from: Option<&Repository>) -> Result<bool> {
        self.mount_where(repo, digest, from, &|_| true).await
    }

    /// [`mount`](Self::mount), taking the blob only from a repository `allowed` accepts
    /// (the ones the caller may pull).
    pub async fn mount_where(
        &self,
        repo: &Repository,
        digest: &Digest,
        from: Option<&Repository>,
        allowed: &(dyn Fn(&Repository) -> bool + Sync),
    ) -> Result<bool> {
        let epoch = crate::gc::Epoch::read(self).await?;
        // Permission first: nothing about a blob the caller may not pull is looked up (its
        // size in a quota refusal would tell that it exists).
        let source_has_it = if let Some(from) = from {
            allowed(from) && self.blob_linked(from, digest).await?
        } else {
            let prefix = format!("blob-repositories/{}/", digest_key(digest));
            self.storage
                .list_meta(&prefix)
                .await?
                .iter()
                .filter_map(|k| k[prefix.len()..].parse::<Repository>().ok())
                .any(|r| allowed(&r))
        };
        let stored = if source_has_it { self.storage.stat(digest).await? } else { None };
        let Some(info) = stored else {
            return Ok(false);
        };
        if !self.lifecycle.quotas.is_empty() {
            self.check_quota(repo, Some(digest), info.size).await?;
        }
        match self.link_fenced(&epoch, repo, digest, info.size).await {
            // Collected meanwhile: the client uploads it instead.
            Err(Error::Collected(_)) => Ok(false),
            Err(e) => Err(e),
            Ok(()) => {
                self.quota_added(repo, digest, info.size);
                Ok(true)
            }
        }
    }

    /// Starts an upload session in the repository.
    pub async fn begin_upload(&self, repo: &Repository) -> Result<UploadId> {
        let id = self.storage.begin().await?;
        self.touch_repository(repo).await?;
        self.mark(&repo_key(repo, &format!("_uploads/{id}"))).await?;
        let started = now_secs();
        self.storage.set_meta(&format!("uploads/{id}"), format!("{started} {repo}").into()).await?;
        Ok(id)
    }

    /// Cancels every upload session older than `max_age` (clients that went away); returns
    /// how many were removed.
    pub async fn purge_stale_uploads(&self, max_age: std::time::Duration) -> Result<usize> {
        let stale = self.stale_uploads(max_age).await?;
        for (key, repo) in &stale {
            let Some(id) = UploadId::parse(&key["uploads/".len()..]) else { continue };
            match self.cancel_upload(repo, &id).await {
                Ok(())
                | Err(Error::UploadUnknown(_) | Error::Store(wharf_store::Error::UploadNotFound { .. })) => {}
                Err(e) => return Err(e),
            }
            self.storage.remove_meta(key).await?;
        }
        Ok(stale.len())
    }

    /// The upload sessions older than `max_age` (what a purge cancels): their `uploads/`
    /// record keys and repositories.
    pub(crate) async fn stale_uploads(
        &self,
        max_age: std::time::Duration,
    ) -> Result<Vec<(String, Repository)>> {
        let mut stale = Vec::new();
        for key in self.storage.list_meta("uploads/").await? {
            let Some(record) = self.storage.get_meta(&key).await? else { continue };
            let text = String::from_utf8_lossy(&record);
            let Some((started, repo)) = text.split_once(' ') else { continue };
            let (Ok(started), Ok(repo)) = (started.parse::<u64>(), repo.parse::<Repository>()) else {
                continue;
            };
            if now_secs().saturating_sub(started) >= max_age.as_secs() {
                stale.push((key, repo));
            }
        }
        Ok(stale)
    }

    /// An error unless `id` is a session of `repo`.
    async fn check_upload(&self, repo: &Repository, id: &UploadId) -> Result<()> {
        if !self.exists(&repo_key(repo, &format!("_uploads/{id}"))).await? {
            return Err(Error::UploadUnknown(id.to_string()));
        }
        Ok(())
    }

    /// How many bytes the session holds.
    pub async fn upload_status(&self, repo: &Repository, id: &UploadId) -> Result<u64> {
        self.check_upload(repo, id).await?;
        self.storage.status(id).await.map_err(|e| match e {
            wharf_store::Error::UploadNotFound { id } => Error::UploadUnknown(id.to_string()),
            e => e.into(),
        })
    }

    /// Appends a chunk at `offset` (the session's size when the client sent no range).
    pub async fn append_upload(
        &self,
        repo: &Repository,
        id: &UploadId,
        offset: Option<u64>,
        data: ByteStream,
    ) -> Result<u64> {
        self.check_upload(repo, id).await?;
        let offset = match offset {
            Some(o) => o,
            None => self.storage.status(id).await?,
        };
        let (data, exceeded) = self.within_quota(repo, None, offset, data).await?;
        match self.storage.append(id, offset, data).await {
            Err(wharf_store::Error::WrongOffset { offset, size, .. }) => {
                Err(Error::RangeNotSatisfiable { offset, size })
            }
            Err(_) if exceeded.is_some_and(|e| e.load(std::sync::atomic::Ordering::Relaxed)) => {
                // Refused: the session and its bytes go.
                self.cancel_upload(repo, id).await.ok();
                Err(self.over_quota(repo).await)
            }
            other => Ok(other?),
        }
    }

    /// Completes the session as blob `digest` (after an optional last chunk).
    pub async fn finish_upload(&self, repo: &Repository, id: &UploadId, digest: &Digest) -> Result<BlobInfo> {
        self.check_upload(repo, id).await?;
        let epoch = crate::gc::Epoch::read(self).await?;
        if !self.lifecycle.quotas.is_empty() {
            let size = self.storage.status(id).await?;
            if let Err(e) = self.check_quota(repo, Some(digest), size).await {
                self.cancel_upload(repo, id).await.ok();
                return Err(e);
            }
        }
        let result = self.storage.commit(id, digest).await;
        // The session ends either way.
        self.storage.remove_meta(&repo_key(repo, &format!("_uploads/{id}"))).await?;
        self.storage.remove_meta(&format!("uploads/{id}")).await?;
        let info = result?;
        self.link_fenced(&epoch, repo, digest, info.size).await?;
        self.quota_added(repo, digest, info.size);
        Ok(info)
    }

    /// Cancels the session.
    pub async fn cancel_upload(&self, repo: &Repository, id: &UploadId) -> Result<()> {
        self.check_upload(repo, id).await?;
        self.storage.remove_meta(&repo_key(repo, &format!("_uploads/{id}"))).await?;
        self.storage.remove_meta(&format!("uploads/{id}")).await?;
        Ok(self.storage.abort(id).await?)
    }

    /// Stores a manifest pushed to `reference` (a tag, or the digest it must have), with
    /// more tags from `?tag=`.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
        content_type: Option<&MediaType>,
        bytes: Bytes,
        extra_tags: &[Tag],
    ) -> Result<PutManifest> {
        let manifest = match reference {
            TagOrDigest::Digest(d) => Manifest::from_bytes_verified(bytes, content_type, d)?,
            TagOrDigest::Tag(_) => Manifest::from_bytes(bytes, content_type)?,
        };
        let epoch = crate::gc::Epoch::read(self).await?;
        self.check_quota(repo, Some(manifest.digest()), manifest.size()).await?;
        self.check_references(repo, &manifest).await?;
        let (artifact, job) = self.classify_push(repo, &manifest).await?;
        let digest = manifest.digest().clone();
        let subject = manifest.subject().map(|s| s.digest.clone());
        let revision = Revision {
            media_type: manifest.media_type().essence().to_owned(),
            size: manifest.size(),
            subject: subject.clone(),
            pushed: Some(now_secs()),
        };
        let set = |key: String, value: Vec<u8>| Write::Set { key, value: value.into() };
        // Three steps, in order: the bytes (and the repository), the records naming them, the
        // tags naming those. A crash never leaves a record naming a missing manifest, nor a
        // tag naming a missing record (on fs the whole batch is one atomic journal write).
        let mut bytes_step = vec![Write::Blob { digest: digest.clone(), bytes: manifest.bytes().clone() }];
        let catalog = catalog_key(repo);
        if !self.exists(&catalog).await? {
            bytes_step.push(set(catalog, Vec::new()));
        }
        let mut records = vec![
            set(
                repo_key(repo, &format!("_manifests/revisions/{}", digest_key(&digest))),
                serde_json::to_vec(&revision).expect("a revision serialises"),
            ),
            Self::artifact_write(repo, &digest, &artifact),
            set(format!("manifest-repositories/{}/{repo}", digest_key(&digest)), Vec::new()),
        ];
        records.extend(job.as_ref().map(crate::jobs::Job::write));
        records.push(self.search.stamp_write());
        if let Some(subject) = &subject {
            let key = format!("_referrers/{}/{}", digest_key(subject), digest_key(&digest));
            let descriptor = serde_json::to_vec(&manifest.descriptor()).expect("a descriptor serialises");
            records.push(set(repo_key(repo, &key), descriptor));
        }
        let mut tags: Vec<Tag> = extra_tags.to_vec();
        if let TagOrDigest::Tag(t) = reference {
            tags.insert(0, t.clone());
        }
        let target = TagRecord::encode(&digest, manifest.size(), &revision.media_type);
        let tag_step = tags
            .iter()
            .flat_map(|tag| {
                [
                    Write::Set {
                        key: repo_key(repo, &format!("_manifests/tags/{tag}")),
                        value: target.clone(),
                    },
                    tagged_write(repo, &digest, tag.as_str()),
                ]
            })
            .collect();
        self.storage.write_steps(vec![bytes_step, records, tag_step]).await?;
        // Everything the manifest makes live, confirmed against a concurrent collection.
        let checks = crate::gc::Check::of_manifest(repo, &manifest, &tags);
        if let Err(e) = crate::gc::confirm(self, &epoch, &checks).await {
            // A blob, child or its own bytes gone: the manifest is broken (a collection had
            // found it dead, so nothing else names it) and goes. A tag gone is only answered.
            if matches!(e, Error::ManifestBlobUnknown(_)) {
                self.delete_manifest(repo, &TagOrDigest::Digest(digest.clone())).await.ok();
            }
            return Err(e);
        }
        if job.is_some() {
            self.jobs.notify_one();
        }
        let tag_names: Vec<String> = tags.iter().map(ToString::to_string).collect();
        self.search.upsert(repo.as_str(), &artifact, &tag_names);
        self.manifests.insert(&digest, manifest.bytes());
        self.quota_added(repo, &digest, manifest.size());
        self.metrics.artifact_pushed(
            artifact["kind"].as_str().unwrap_or_default(),
            artifact["harborType"].as_str().unwrap_or_default(),
        );
        Ok(PutManifest { digest, subject, tags })
    }

    /// Every blob and child manifest must be in the repository (image layers with `urls`
    /// excepted).
    async fn check_references(&self, repo: &Repository, manifest: &Manifest) -> Result<()> {
        let is_index = manifest.as_index().is_some();
        // Checked a few at a time: each check is a storage round trip.
        // Only an image's layers may be foreign (`urls`): a config or an index's child with
        // `urls` is checked like any other (and a foreign layer is never read: see
        // `artifacts`).
        let references: Vec<&Descriptor> = match manifest.as_image() {
            Some(image) => std::iter::once(&image.config)
                .chain(image.layers.iter().filter(|d| !d.is_non_distributable()))
                .collect(),
            None => manifest.references().collect(),
        };
        for batch in references.chunks(16) {
            futures_util::future::try_join_all(batch.iter().map(|d| self.check_reference(repo, d, is_index)))
                .await?;
        }
        Ok(())
    }

    /// One reference: present in the repository, with the size its descriptor says (Wharf is
    /// digest- and size-verified).
    async fn check_reference(&self, repo: &Repository, d: &Descriptor, is_index: bool) -> Result<()> {
        let stored = if is_index {
            self.revision(repo, &d.digest).await?.map(|r| r.size)
        } else {
            self.linked_size(repo, &d.digest).await?
        };
        let stored = if let Some(size) = stored {
            size
        } else {
            // A blob embedded in the descriptor (`data`), verified, is stored as if pushed.
            let Some(bytes) = d.embedded_data()?.filter(|_| !is_index) else {
                return Err(Error::ManifestBlobUnknown(d.digest.clone()));
            };
            let size = bytes.len() as u64;
            if size == d.size {
                self.storage.put_bytes(&d.digest, bytes.into()).await?;
                return self.link_blob(repo, &d.digest, size).await;
            }
            size
        };
        if stored == d.size {
            Ok(())
        } else {
            Err(Error::SizeInvalid(format!(
                "the descriptor of {} says {} bytes, but it has {stored}",
                d.digest, d.size
            )))
        }
    }

    /// Whether the repository holds manifest `digest`.
    pub(crate) async fn holds_manifest(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        Ok(self.revision(repo, digest).await?.is_some())
    }

    pub(crate) async fn revision(&self, repo: &Repository, digest: &Digest) -> Result<Option<Revision>> {
        let key = repo_key(repo, &format!("_manifests/revisions/{}", digest_key(digest)));
        match self.storage.get_meta(&key).await? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            None => Ok(None),
        }
    }

    /// The digest, media type and size of the manifest at a tag or digest: from the tag
    /// record alone when it holds them, from the revision record otherwise.
    async fn locate(&self, repo: &Repository, reference: &TagOrDigest) -> Result<(Digest, String, u64)> {
        let unknown = || Error::ManifestUnknown(reference.to_string());
        let digest = match reference {
            TagOrDigest::Digest(d) => d.clone(),
            TagOrDigest::Tag(t) => {
                let value = self
                    .storage
                    .get_meta(&repo_key(repo, &format!("_manifests/tags/{t}")))
                    .await?
                    .ok_or_else(unknown)?;
                let record = TagRecord::decode(&value).ok_or_else(unknown)?;
                if let Some((size, media_type)) = record.head {
                    return Ok((record.digest, media_type, size));
                }
                record.digest
            }
        };
        let revision = self.revision(repo, &digest).await?.ok_or_else(unknown)?;
        Ok((digest, revision.media_type, revision.size))
    }

    /// The manifest at a tag or digest.
    pub async fn get_manifest(&self, repo: &Repository, reference: &TagOrDigest) -> Result<StoredManifest> {
        let (digest, media_type, _) = self.locate(repo, reference).await?;
        if let TagOrDigest::Tag(tag) = reference {
            self.record_pull(repo, tag);
        }
        let bytes = if let Some(bytes) = self.manifests.get(&digest) {
            bytes
        } else {
            let bytes = match self.storage.read_all(&digest).await {
                Err(wharf_store::Error::BlobNotFound { .. }) => {
                    return Err(Error::ManifestUnknown(reference.to_string()));
                }
                other => other?,
            };
            self.manifests.insert(&digest, &bytes);
            bytes
        };
        Ok(StoredManifest { digest, media_type, bytes })
    }

    /// Records that `tag` was pulled, for retention's `keep_pulled_within` (in repositories
    /// such a rule covers): at most once a minute per tag and process, in the background (a
    /// pull never waits for a write).
    fn record_pull(&self, repo: &Repository, tag: &Tag) {
        if !self.lifecycle.counts_pulls(repo) {
            return;
        }
        let now = now_secs();
        {
            let mut pulls = self.pulls.lock().expect("lock");
            let last = pulls.entry((repo.to_string(), tag.to_string())).or_insert(0);
            if now.saturating_sub(*last) < 60 {
                return;
            }
            *last = now;
            if pulls.len() > 100_000 {
                pulls.retain(|_, at| now.saturating_sub(*at) < 60);
            }
        }
        let storage = Arc::clone(&self.storage);
        let key = repo_key(repo, &format!("_manifests/pulled/{tag}"));
        tokio::spawn(async move {
            if let Err(e) = storage.set_meta(&key, now.to_string().into()).await {
                tracing::warn!(error = %e, "recording a pull failed");
            }
        });
    }

    /// The manifest's digest, media type and size, without its bytes.
    pub async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<(Digest, String, u64)> {
        let located = self.locate(repo, reference).await?;
        // Clients resolve a tag with HEAD, then fetch by digest: that is a pull of the tag.
        if let TagOrDigest::Tag(tag) = reference {
            self.record_pull(repo, tag);
        }
        Ok(located)
    }

    /// Deletes a tag, or a manifest with every tag pointing at it and its referrer record.
    pub async fn delete_manifest(&self, repo: &Repository, reference: &TagOrDigest) -> Result<()> {
        match reference {
            TagOrDigest::Tag(t) => {
                if !self.storage.remove_meta(&repo_key(repo, &format!("_manifests/tags/{t}"))).await? {
                    return Err(Error::ManifestUnknown(t.to_string()));
                }
                self.search.untag(repo.as_str(), t.as_str());
                let stamp = self.search.stamp_write();
                self.storage.write_steps(vec![vec![stamp]]).await?;
            }
            TagOrDigest::Digest(d) => {
                let revision =
                    self.revision(repo, d).await?.ok_or_else(|| Error::ManifestUnknown(d.to_string()))?;
                // Tags first: a tag record must never outlive its revision.
                let prefix = repo_key(repo, "_manifests/tags/");
                for key in self.storage.list_meta(&prefix).await? {
                    let value = self.storage.get_meta(&key).await?;
                    if value.as_deref().and_then(TagRecord::decode).is_some_and(|r| &r.digest == d) {
                        self.storage.remove_meta(&key).await?;
                    }
                }
                self.remove_revision(repo, d, &revision).await?;
                // The tag hints of the manifest (hints of tags that moved away elsewhere stay
                // until their manifest goes: a reader checks each against its tag record).
                let hints = repo_key(repo, &format!("_manifests/tagged/{}/", digest_key(d)));
                let mut writes: Vec<Write> = self
                    .storage
                    .list_meta(&hints)
                    .await?
                    .into_iter()
                    .map(|key| Write::Remove { key })
                    .collect();
                writes.push(self.search.stamp_write());
                self.storage.write_steps(vec![writes]).await?;
            }
        }
        Ok(())
    }

    /// Removes a manifest revision and the records that hang on it (reverse record, artifact,
    /// referrer); its tags are the caller's (they go first).
    pub(crate) async fn remove_revision(
        &self,
        repo: &Repository,
        d: &Digest,
        revision: &Revision,
    ) -> Result<()> {
        let removes = self.revision_removals(repo, d, revision);
        Ok(self.storage.write_steps(vec![removes]).await?)
    }

    /// The removals of [`remove_revision`](Self::remove_revision), for a batch (the search
    /// index forgets the manifest now).
    pub(crate) fn revision_removals(&self, repo: &Repository, d: &Digest, revision: &Revision) -> Vec<Write> {
        self.search.remove(repo.as_str(), d.as_str());
        let mut keys = vec![
            repo_key(repo, &format!("_manifests/revisions/{}", digest_key(d))),
            format!("manifest-repositories/{}/{repo}", digest_key(d)),
            crate::artifacts::record_key(repo, d),
        ];
        if let Some(subject) = &revision.subject {
            keys.push(repo_key(repo, &format!("_referrers/{}/{}", digest_key(subject), digest_key(d))));
        }
        keys.into_iter().map(|key| Write::Remove { key }).collect()
    }

    /// The removals of a tag (and of when it was last pulled), for a batch (the search index
    /// forgets the tag now).
    pub(crate) fn tag_removals(&self, repo: &Repository, tag: &str) -> Vec<Write> {
        self.search.untag(repo.as_str(), tag);
        [format!("_manifests/tags/{tag}"), format!("_manifests/pulled/{tag}")]
            .into_iter()
            .map(|rest| Write::Remove { key: repo_key(repo, &rest) })
            .collect()
    }

    /// The removals of a blob link and its reverse record, for a batch.
    pub(crate) fn link_removals(repo: &Repository, d: &Digest) -> [Write; 2] {
        [
            Write::Remove { key: layer_key(repo, d) },
            Write::Remove { key: format!("blob-repositories/{}/{repo}", digest_key(d)) },
        ]
    }

    /// The repository's tags, sorted by bytes, after `last`, at most `n`. A page costs its
    /// own size, not the repository's ([`wharf_store::MetaStore::list_meta_page`]).
    pub async fn tags(&self, repo: &Repository, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        if !self.repository_exists(repo).await? {
            return Err(Error::NameUnknown(repo.to_string()));
        }
        self.names_page(&repo_key(repo, "_manifests/tags/"), n, last, &|_| true).await
    }

    /// The registry's repositories, sorted, after `last`, at most `n`.
    pub async fn catalog(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        self.catalog_where(n, last, &|_| true).await
    }

    /// [`catalog`](Self::catalog) of the repositories `visible` accepts.
    pub async fn catalog_where(
        &self,
        n: Option<usize>,
        last: Option<&str>,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Page> {
        self.names_page("catalog/", n, last, visible).await
    }

    /// The names of the records under `prefix` that `keep` accepts, sorted, after `last`, at
    /// most `n`: read a page at a time (one more than asked, to know whether more follow).
    async fn names_page(
        &self,
        prefix: &str,
        n: Option<usize>,
        last: Option<&str>,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Page> {
        let want = n.map_or(usize::MAX, |n| n.saturating_add(1));
        let batch = n.map_or(usize::MAX, |_| want.clamp(LISTING_BATCH / 10, LISTING_BATCH));
        let mut after = last.map(|l| format!("{prefix}{l}"));
        let mut names = Vec::new();
        loop {
            let keys = self.storage.list_meta_page(prefix, after.as_deref(), batch).await?;
            let exhausted = keys.len() < batch;
            after = keys.last().cloned();
            for key in keys {
                let name = &key[prefix.len()..];
                if keep(name) {
                    names.push(name.to_owned());
                    if names.len() >= want {
                        break;
                    }
                }
            }
            if exhausted || names.len() >= want {
                break;
            }
        }
        let more = n.is_some_and(|n| names.len() > n);
        if let Some(n) = n {
            names.truncate(n);
        }
        Ok(Page { names, more })
    }

    /// The referrers of `subject` in the repository, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<ImageIndex> {
        let prefix = repo_key(repo, &format!("_referrers/{}/", digest_key(subject)));
        let mut manifests: Vec<Descriptor> = Vec::new();
        for key in self.storage.list_meta(&prefix).await? {
            let Some(bytes) = self.storage.get_meta(&key).await? else {
                continue;
            };
            let Ok(descriptor) = serde_json::from_slice::<Descriptor>(&bytes) else {
                continue;
            };
            let matches = artifact_type
                .is_none_or(|at| descriptor.artifact_type.as_ref().is_some_and(|t| t.as_str() == at));
            if matches {
                manifests.push(descriptor);
            }
        }
        Ok(ImageIndex::new(manifests))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_store::MetaStore as _;

    #[test]
    fn tag_records_old_and_new() {
        let digest = Digest::sha256(b"m");
        let new =
            TagRecord::decode(&TagRecord::encode(&digest, 42, "application/vnd.oci.image.manifest.v1+json"))
                .expect("new record");
        assert_eq!(new.digest, digest);
        assert_eq!(new.head, Some((42, "application/vnd.oci.image.manifest.v1+json".to_owned())));
        let old = TagRecord::decode(digest.as_str().as_bytes()).expect("old record");
        assert_eq!((old.digest, old.head), (digest, None));
        assert!(TagRecord::decode(b"not a digest").is_none());
        assert!(TagRecord::decode(b"").is_none());
    }

    /// A registry on memory storage with the two-byte config `{}` pushed to `repo`.
    async fn with_config(repo: &str) -> (Arc<wharf_store::MemoryStore>, Registry, Repository, Digest) {
        let storage = Arc::new(wharf_store::MemoryStore::new());
        let registry = Registry::new(storage.clone());
        let repo: Repository = repo.parse().expect("repo");
        let config = Bytes::from_static(b"{}");
        let digest = Digest::sha256(&config);
        registry.put_blob(&repo, &digest, wharf_store::single(config)).await.expect("config");
        (storage, registry, repo, digest)
    }

    /// A layer link written by an older version (empty) is sized from the blob.
    #[tokio::test]
    async fn older_layer_links_are_sized_from_the_blob() {
        let (storage, registry, repo, digest) = with_config("a").await;
        let link = layer_key(&repo, &digest);
        let record = storage.get_meta(&link).await.expect("get").expect("link");
        assert!(record.starts_with(b"2 "), "size, then when: {record:?}");
        // A link as older versions wrote it: empty.
        storage.set_meta(&link, Bytes::new()).await.expect("old-style link");
        assert_eq!(registry.linked_size(&repo, &digest).await.expect("size"), Some(2));
        let other: Repository = "b".parse().expect("repo");
        assert_eq!(registry.linked_size(&other, &digest).await.expect("size"), None);
    }

    /// A tag written by an older version (the digest alone) still resolves, through the
    /// revision record, and a manifest delete removes it.
    #[tokio::test]
    async fn older_tag_records_still_resolve() {
        let (storage, registry, repo, config_digest) = with_config("a/b").await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest.as_str(), "size": 2},
            "layers": []
        }))
        .expect("json");
        let tag: TagOrDigest = "v1".parse().expect("tag");
        let put = registry.put_manifest(&repo, &tag, None, manifest.clone().into(), &[]).await.expect("put");
        storage
            .set_meta(&repo_key(&repo, "_manifests/tags/v1"), put.digest.to_string().into())
            .await
            .expect("old-style record");
        let got = registry.get_manifest(&repo, &tag).await.expect("get by old tag");
        assert_eq!((got.digest.clone(), got.bytes.as_ref()), (put.digest.clone(), &manifest[..]));
        let head = registry.head_manifest(&repo, &tag).await.expect("head by old tag");
        assert_eq!(
            head,
            (
                put.digest.clone(),
                "application/vnd.oci.image.manifest.v1+json".to_owned(),
                manifest.len() as u64
            )
        );
        registry.delete_manifest(&repo, &TagOrDigest::Digest(put.digest)).await.expect("delete");
        assert!(matches!(registry.get_manifest(&repo, &tag).await, Err(Error::ManifestUnknown(_))));
    }
}
