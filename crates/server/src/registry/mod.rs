//! The registry core: repositories, blobs, uploads, manifests, tags, referrers over one
//! storage backend, and nothing else.
//!
//! Its records and their keys are in [`keys`]; the writers' side of collection in [`fence`];
//! the manifests it read last in [`cache`]. It imports nothing of the crate but the ground
//! modules: no metrics, jobs, search, policy or lifecycle in it (the façade,
//! [`Wharf`](crate::Wharf), runs those around its calls).
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
use wharf_store::{BlobInfo, ByteStream, GetResult, Storage, UploadId, Write};
use wharf_types::{Descriptor, Digest, ImageIndex, Manifest, Repository, Tag, TagOrDigest};

pub(crate) mod cache;
pub(crate) mod fence;
pub(crate) mod health;
pub(crate) mod keys;

use cache::{ManifestCache, Recent};
use fence::{Check, Epoch};
use keys::{LinkRecord, Revision, TagRecord};

use crate::clock::now_secs;
use crate::error::{Error, Result};

/// How long a blob URL handed to a client stays valid (a client starts its download well
/// within it; the download itself may last longer).
pub const BLOB_URL_EXPIRY: std::time::Duration = std::time::Duration::from_secs(300);

/// How long, by default, a manifest read by tag or digest is served from memory while the
/// storage is unavailable.
pub const STALE_FOR: std::time::Duration = std::time::Duration::from_secs(300);

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

/// The registry core, over one storage backend.
#[derive(Clone, Debug)]
pub(crate) struct Core {
    /// The backend, through [`health::Watch`].
    storage: Arc<dyn Storage>,
    health: Arc<health::Health>,
    manifests: Arc<ManifestCache>,
    /// Where references pointed when last read, served while the storage is unavailable.
    recent: Arc<Recent>,
    /// How long [`recent`](Self::recent) may answer for a storage that is unavailable.
    stale_for: std::time::Duration,
    /// Writes confirm against collections (off only to show, in a test, what it prevents).
    gc_fence: bool,
    /// When this process last recorded a pull of each tag or manifest, by its key (unix seconds).
    pulls: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
}

impl Core {
    /// The core over `storage` (every operation of which it watches: [`health`]).
    pub(crate) fn new(storage: Arc<dyn Storage>) -> Self {
        let health = Arc::new(health::Health::default());
        let storage = Arc::new(wharf_store::Hooked::new(storage, health::Watch(Arc::clone(&health))));
        Self {
            storage,
            health,
            manifests: Arc::default(),
            recent: Arc::default(),
            stale_for: STALE_FOR,
            gc_fence: true,
            pulls: Arc::default(),
        }
    }

    /// While the storage is unavailable, manifests are served by tags and digests read within
    /// `stale_for` (zero: never).
    #[must_use]
    pub(crate) fn with_stale_for(mut self, stale_for: std::time::Duration) -> Self {
        self.stale_for = stale_for;
        self
    }

    /// The storage's health: the fault under way, if any, and counts.
    pub(crate) fn health(&self) -> &health::Health {
        &self.health
    }

    /// With `false`, writes no longer confirm against collections (see
    /// [`Wharf::with_gc_fence`](crate::Wharf::with_gc_fence)).
    #[must_use]
    pub(crate) fn with_gc_fence(mut self, on: bool) -> Self {
        self.gc_fence = on;
        self
    }

    /// The storage backend.
    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The collection epoch, read before a write that makes something live.
    pub(crate) async fn epoch(&self) -> Result<Epoch> {
        Epoch::read(&*self.storage).await
    }

    /// After a write that made `checks` live: confirmed against a concurrent collection
    /// ([`fence::confirm`]).
    async fn confirm(&self, epoch: &Epoch, checks: &[Check]) -> Result<()> {
        if !self.gc_fence {
            return Ok(());
        }
        fence::confirm(&*self.storage, epoch, checks).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.storage.meta_exists(key).await?)
    }

    async fn mark(&self, key: &str) -> Result<()> {
        Ok(self.storage.set_meta(key, Bytes::new()).await?)
    }

    /// Whether the repository exists (has ever held a blob, upload or manifest).
    pub(crate) async fn repository_exists(&self, repo: &Repository) -> Result<bool> {
        self.exists(&keys::catalog(repo)).await
    }

    async fn touch_repository(&self, repo: &Repository) -> Result<()> {
        let key = keys::catalog(repo);
        if !self.exists(&key).await? {
            self.mark(&key).await?;
        }
        Ok(())
    }

    /// Links a stored blob of `size` bytes to the repository (the link records the size, so
    /// that a manifest's descriptors are checked with one record read each).
    /// The link, its reverse record and (for a new repository) the catalog entry are one
    /// batch: a failure leaves all or none of them.
    async fn link_blob(&self, repo: &Repository, digest: &Digest, size: u64) -> Result<()> {
        let mut writes = vec![
            Write::Set { key: keys::layer(repo, digest), value: LinkRecord::encode(size) },
            Write::Set { key: keys::blob_repository(digest, repo), value: Bytes::new() },
        ];
        let catalog = keys::catalog(repo);
        if !self.exists(&catalog).await? {
            writes.push(Write::Set { key: catalog, value: Bytes::new() });
        }
        Ok(self.storage.write_steps(vec![writes]).await?)
    }

    /// [`link_blob`](Self::link_blob) as a write that makes a blob live: the collector's
    /// fence is read before (`epoch`) and confirmed after, and a blob a concurrent collection
    /// removed is unlinked again and reported instead of acknowledged.
    pub(crate) async fn link_fenced(
        &self,
        epoch: &Epoch,
        repo: &Repository,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.link_blob(repo, digest, size).await?;
        let check = Check::Link(repo.clone(), digest.clone());
        if let Err(e) = self.confirm(epoch, std::slice::from_ref(&check)).await {
            self.unlink(repo, digest).await?;
            return Err(e);
        }
        Ok(())
    }

    /// Removes the link of `digest` to the repository and its reverse record.
    pub(crate) async fn unlink(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        let linked = self.storage.meta_exists(&keys::layer(repo, digest)).await?;
        self.storage.write_steps(vec![Self::link_removals(repo, digest).into()]).await?;
        Ok(linked)
    }

    /// Whether `digest` is linked to the repository.
    pub(crate) async fn blob_linked(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        self.exists(&keys::layer(repo, digest)).await
    }

    /// The size of a blob linked to the repository, `None` when it is not linked (links
    /// written before they recorded sizes are completed from the blob).
    async fn linked_size(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>> {
        let Some(record) = self.storage.get_meta(&keys::layer(repo, digest)).await? else {
            return Ok(None);
        };
        if let Some(size) = LinkRecord::decode(&record).size {
            return Ok(Some(size));
        }
        Ok(self.storage.stat(digest).await?.map(|info| info.size))
    }

    /// The blob's size, if it is in the repository.
    /// The link and the blob are asked at once: on S3 a `HEAD` costs one round trip's wait,
    /// not two.
    pub(crate) async fn stat_blob(&self, repo: &Repository, digest: &Digest) -> Result<Option<BlobInfo>> {
        let (linked, info) = tokio::join!(self.blob_linked(repo, digest), self.storage.stat(digest));
        if !linked? {
            return Ok(None);
        }
        Ok(info?)
    }

    /// Where a client may fetch the blob from the storage engine itself (a presigned URL,
    /// valid for [`BLOB_URL_EXPIRY`]), when the storage hands such URLs out (S3 with
    /// `redirect=true`); `None` otherwise. [`Error::BlobUnknown`] when the repository does
    /// not hold the blob.
    pub(crate) async fn blob_url(
        &self,
        repo: &Repository,
        digest: &Digest,
        head: bool,
    ) -> Result<Option<String>> {
        let Some(url) = self.storage.direct_url(digest, head, BLOB_URL_EXPIRY).await? else {
            return Ok(None);
        };
        if !self.blob_linked(repo, digest).await? {
            return Err(Error::BlobUnknown(digest.clone()));
        }
        Ok(Some(url))
    }

    /// Streams the blob (or a range of it) from the repository.
    pub(crate) async fn get_blob(
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
    pub(crate) async fn delete_blob(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        if !self.unlink(repo, digest).await? {
            return Err(Error::BlobUnknown(digest.clone()));
        }
        Ok(())
    }

    /// Stores a whole blob (monolithic upload) and links it, confirmed against collections
    /// that started after `epoch` was read.
    pub(crate) async fn store_blob(
        &self,
        epoch: &Epoch,
        repo: &Repository,
        digest: &Digest,
        data: ByteStream,
    ) -> Result<BlobInfo> {
        let info = self.storage.put(digest, data).await?;
        self.link_fenced(epoch, repo, digest, info.size).await?;
        Ok(info)
    }

    /// The blob a mount of `digest` takes, from `from` (or, without `from`, from any
    /// repository holding it), only from a repository `allowed` accepts (the ones the caller
    /// may pull); `None` when there is nothing to mount. Permission first: nothing about a
    /// blob the caller may not pull is looked up (its size in a quota refusal would tell that
    /// it exists).
    pub(crate) async fn mount_source(
        &self,
        digest: &Digest,
        from: Option<&Repository>,
        allowed: &(dyn Fn(&Repository) -> bool + Sync),
    ) -> Result<Option<BlobInfo>> {
        let source_has_it = if let Some(from) = from {
            allowed(from) && self.blob_linked(from, digest).await?
        } else {
            let prefix = keys::blob_repositories(digest);
            self.storage
                .list_meta(&prefix)
                .await?
                .iter()
                .filter_map(|k| k[prefix.len()..].parse::<Repository>().ok())
                .any(|r| allowed(&r))
        };
        Ok(if source_has_it { self.storage.stat(digest).await? } else { None })
    }

    /// Starts an upload session in the repository.
    pub(crate) async fn begin_upload(&self, repo: &Repository) -> Result<UploadId> {
        let id = self.storage.begin().await?;
        self.touch_repository(repo).await?;
        self.mark(&keys::repo_upload(repo, &id.to_string())).await?;
        let started = now_secs();
        self.storage.set_meta(&keys::upload(&id.to_string()), format!("{started} {repo}").into()).await?;
        Ok(id)
    }

    /// Cancels every upload session older than `max_age` (clients that went away); returns
    /// how many were removed.
    pub(crate) async fn purge_stale_uploads(&self, max_age: std::time::Duration) -> Result<usize> {
        let stale = self.stale_uploads(max_age).await?;
        for (key, repo) in &stale {
            let Some(id) = UploadId::parse(&key[keys::UPLOADS.len()..]) else { continue };
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
        for key in self.storage.list_meta(keys::UPLOADS).await? {
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
        if !self.exists(&keys::repo_upload(repo, &id.to_string())).await? {
            return Err(Error::UploadUnknown(id.to_string()));
        }
        Ok(())
    }

    /// How many bytes the session holds.
    pub(crate) async fn upload_status(&self, repo: &Repository, id: &UploadId) -> Result<u64> {
        self.check_upload(repo, id).await?;
        self.storage.status(id).await.map_err(|e| match e {
            wharf_store::Error::UploadNotFound { id } => Error::UploadUnknown(id.to_string()),
            e => e.into(),
        })
    }

    /// Appends a chunk at `offset` (the session's size when the client sent no range).
    pub(crate) async fn append_upload(
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
        match self.storage.append(id, offset, data).await {
            Err(wharf_store::Error::WrongOffset { offset, size, .. }) => {
                Err(Error::RangeNotSatisfiable { offset, size })
            }
            other => Ok(other?),
        }
    }

    /// Completes the session as blob `digest`, confirmed against collections that started
    /// after `epoch` was read.
    pub(crate) async fn finish_upload(
        &self,
        epoch: &Epoch,
        repo: &Repository,
        id: &UploadId,
        digest: &Digest,
    ) -> Result<BlobInfo> {
        self.check_upload(repo, id).await?;
        let result = self.storage.commit(id, digest).await;
        // The session ends either way.
        self.storage.remove_meta(&keys::repo_upload(repo, &id.to_string())).await?;
        self.storage.remove_meta(&keys::upload(&id.to_string())).await?;
        let info = result?;
        self.link_fenced(epoch, repo, digest, info.size).await?;
        Ok(info)
    }

    /// Cancels the session.
    pub(crate) async fn cancel_upload(&self, repo: &Repository, id: &UploadId) -> Result<()> {
        self.check_upload(repo, id).await?;
        self.storage.remove_meta(&keys::repo_upload(repo, &id.to_string())).await?;
        self.storage.remove_meta(&keys::upload(&id.to_string())).await?;
        Ok(self.storage.abort(id).await?)
    }

    /// Writes a manifest (parsed, its references checked) to the repository with `tags`,
    /// `records` of the layers above beside its own (its artifact record, its job), and
    /// `changed` (the write that tells other processes sharing the backend that manifests
    /// changed); confirmed against collections that started after `epoch` was read. With
    /// `references_held` false (a mirrored manifest, whose blobs and children are fetched
    /// when a client asks for them), only the manifest and its tags are confirmed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_manifest(
        &self,
        epoch: &Epoch,
        repo: &Repository,
        manifest: &Manifest,
        tags: Vec<Tag>,
        mut records: Vec<Write>,
        changed: Write,
        references_held: bool,
    ) -> Result<PutManifest> {
        let digest = manifest.digest().clone();
        let subject = manifest.subject().map(|s| s.digest.clone());
        let revision = Revision {
            media_type: manifest.media_type().essence().to_owned(),
            size: manifest.size(),
            subject: subject.clone(),
            pushed: Some(now_secs()),
            mirrored: !references_held,
        };
        let set = |key: String, value: Vec<u8>| Write::Set { key, value: value.into() };
        // Four steps, in order: the bytes (and the repository), the records naming them, the
        // tags naming those, and the jobs reading them (a job's worker never finds its record
        // before what it reads: see `jobs::Handler::more`). A crash never leaves a record
        // naming a missing manifest, nor a tag naming a missing record (on fs the whole batch
        // is one atomic journal write).
        let mut bytes_step = vec![Write::Blob { digest: digest.clone(), bytes: manifest.bytes().clone() }];
        let catalog = keys::catalog(repo);
        if !self.exists(&catalog).await? {
            bytes_step.push(set(catalog, Vec::new()));
        }
        records.extend([
            set(keys::revision(repo, &digest), serde_json::to_vec(&revision).expect("a revision serialises")),
            set(keys::manifest_repository(&digest, repo), Vec::new()),
            changed.clone(),
        ]);
        if let Some(subject) = &subject {
            let descriptor = serde_json::to_vec(&manifest.descriptor()).expect("a descriptor serialises");
            records.push(set(keys::referrer(repo, subject, &digest), descriptor));
        }
        let target = TagRecord::encode(&digest, manifest.size(), &revision.media_type);
        let tag_step = tags
            .iter()
            .flat_map(|tag| {
                [
                    Write::Set { key: keys::tag(repo, tag.as_str()), value: target.clone() },
                    keys::tagged_write(repo, &digest, tag.as_str()),
                ]
            })
            .collect();
        let (jobs, records): (Vec<Write>, Vec<Write>) = records
            .into_iter()
            .partition(|w| matches!(w, Write::Set { key, .. } if key.starts_with(keys::JOBS_PENDING)));
        self.storage.write_steps(vec![bytes_step, records, tag_step, jobs]).await?;
        // Everything the manifest makes live, confirmed against a concurrent collection.
        let checks = Check::of_manifest(repo, manifest, &tags, references_held);
        if let Err(e) = self.confirm(epoch, &checks).await {
            // A blob, child or its own bytes gone: the manifest is broken (a collection had
            // found it dead, so nothing else names it) and goes. A tag gone is only answered.
            if matches!(e, Error::ManifestBlobUnknown(_)) {
                self.delete_manifest(repo, &TagOrDigest::Digest(digest.clone()), vec![changed]).await.ok();
            }
            return Err(e);
        }
        self.manifests.insert(&digest, manifest.bytes());
        Ok(PutManifest { digest, subject, tags })
    }

    /// Every blob and child manifest must be in the repository (image layers with `urls`
    /// excepted).
    pub(crate) async fn check_references(&self, repo: &Repository, manifest: &Manifest) -> Result<()> {
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
        match self.storage.get_meta(&keys::revision(repo, digest)).await? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            None => Ok(None),
        }
    }

    /// The digest, media type and size of the manifest at a tag or digest (see
    /// [`locate_stored`](Self::locate_stored)); while the storage is unavailable, where the
    /// reference pointed when this process last read it, within `stale_for`.
    async fn locate(&self, repo: &Repository, reference: &TagOrDigest) -> Result<(Digest, String, u64)> {
        let name = match reference {
            TagOrDigest::Tag(t) => t.as_str(),
            TagOrDigest::Digest(d) => d.as_str(),
        };
        match self.locate_stored(repo, reference).await {
            Ok(found) => {
                if !self.stale_for.is_zero() {
                    self.recent.remember(repo.as_str(), name, (&found.0, &found.1, found.2), self.stale_for);
                }
                Ok(found)
            }
            Err(e) if e.fault() == Some(wharf_store::Fault::Unavailable) => {
                match self.recent.recall(repo.as_str(), name, self.stale_for) {
                    Some(l) => Ok((l.digest, l.media_type, l.size)),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The digest, media type and size of the manifest at a tag or digest, as stored: from the
    /// tag record alone when it holds them, from the revision record otherwise.
    async fn locate_stored(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<(Digest, String, u64)> {
        let unknown = || Error::ManifestUnknown(reference.to_string());
        let digest = match reference {
            TagOrDigest::Digest(d) => d.clone(),
            TagOrDigest::Tag(t) => {
                let value = self.storage.get_meta(&keys::tag(repo, t.as_str())).await?.ok_or_else(unknown)?;
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
    pub(crate) async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<StoredManifest> {
        let (digest, media_type, _) = self.locate(repo, reference).await?;
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

    /// Records that a tag (or a manifest, by digest) was pulled, for retention's
    /// `keep_pulled_within` and cache budgets: at most once a minute per reference and
    /// process, in the background (a pull never waits for a write).
    pub(crate) fn record_pull(&self, repo: &Repository, reference: &TagOrDigest) {
        let now = now_secs();
        let key = match reference {
            TagOrDigest::Tag(tag) => keys::pulled(repo, tag.as_str()),
            TagOrDigest::Digest(d) => keys::pulled_manifest(repo, d),
        };
        {
            let mut pulls = self.pulls.lock().expect("lock");
            let last = pulls.entry(key.clone()).or_insert(0);
            if now.saturating_sub(*last) < 60 {
                return;
            }
            *last = now;
            if pulls.len() > 100_000 {
                pulls.retain(|_, at| now.saturating_sub(*at) < 60);
            }
        }
        let storage = Arc::clone(&self.storage);
        tokio::spawn(async move {
            match storage.set_meta(&key, now.to_string().into()).await {
                // A full or unavailable storage is logged once, by `health`.
                Err(e) if e.fault().is_none() => tracing::warn!(error = %e, "recording a pull failed"),
                _ => {}
            }
        });
    }

    /// The manifest's digest, media type and size, without its bytes.
    pub(crate) async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<(Digest, String, u64)> {
        self.locate(repo, reference).await
    }

    /// Deletes a tag, or a manifest with every tag pointing at it and its referrer record;
    /// `changed` is written with the last step (see [`write_manifest`](Self::write_manifest)).
    pub(crate) async fn delete_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
        with: Vec<Write>,
    ) -> Result<()> {
        match reference {
            TagOrDigest::Tag(t) => {
                let key = keys::tag(repo, t.as_str());
                if !self.exists(&key).await? {
                    return Err(Error::ManifestUnknown(t.to_string()));
                }
                let mut writes = vec![Write::Remove { key }];
                writes.extend(with);
                self.storage.write_steps(vec![writes]).await?;
            }
            TagOrDigest::Digest(d) => {
                let revision =
                    self.revision(repo, d).await?.ok_or_else(|| Error::ManifestUnknown(d.to_string()))?;
                // Tags first: a tag record must never outlive its revision.
                for key in self.storage.list_meta(&keys::tags(repo)).await? {
                    let value = self.storage.get_meta(&key).await?;
                    if value.as_deref().and_then(TagRecord::decode).is_some_and(|r| &r.digest == d) {
                        self.storage.remove_meta(&key).await?;
                    }
                }
                // Then, in one batch, the revision with what hangs on it, the manifest's tag
                // hints (hints of tags that moved away elsewhere stay until their manifest
                // goes: a reader checks each against its tag record) and `with`.
                let mut writes = Self::revision_removals(repo, d, &revision);
                writes.extend(
                    self.storage
                        .list_meta(&keys::tagged(repo, d))
                        .await?
                        .into_iter()
                        .map(|key| Write::Remove { key }),
                );
                writes.extend(with);
                self.storage.write_steps(vec![writes]).await?;
            }
        }
        Ok(())
    }

    /// The removals of a manifest revision and the records that hang on it (reverse record,
    /// artifact, referrer, pull and trust records), for a batch; its tags are the caller's
    /// (they go first).
    pub(crate) fn revision_removals(repo: &Repository, d: &Digest, revision: &Revision) -> Vec<Write> {
        let mut keys = vec![
            keys::revision(repo, d),
            keys::manifest_repository(d, repo),
            keys::artifact(repo, d),
            keys::pulled_manifest(repo, d),
            keys::trust(repo, d),
        ];
        if let Some(subject) = &revision.subject {
            keys.push(keys::referrer(repo, subject, d));
        }
        keys.into_iter().map(|key| Write::Remove { key }).collect()
    }

    /// The removals of a tag (and of when it was last pulled, or checked at a mirror's
    /// upstream), for a batch.
    pub(crate) fn tag_removals(repo: &Repository, tag: &str) -> Vec<Write> {
        [keys::tag(repo, tag), keys::pulled(repo, tag), keys::checked(repo, tag)]
            .into_iter()
            .map(|key| Write::Remove { key })
            .collect()
    }

    /// The removals of a blob link, its reverse record and its trust mark, for a batch.
    pub(crate) fn link_removals(repo: &Repository, d: &Digest) -> [Write; 3] {
        [
            Write::Remove { key: keys::layer(repo, d) },
            Write::Remove { key: keys::blob_repository(d, repo) },
            Write::Remove { key: keys::servable(repo, d) },
        ]
    }

    /// The repository's tags, sorted by bytes, after `last`, at most `n`. A page costs its
    /// own size, not the repository's ([`wharf_store::MetaStore::list_meta_page`]).
    pub(crate) async fn tags(&self, repo: &Repository, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        if !self.repository_exists(repo).await? {
            return Err(Error::NameUnknown(repo.to_string()));
        }
        self.names_page(&keys::tags(repo), n, last, &|_| true).await
    }

    /// The registry's repositories, sorted, after `last`, at most `n`.
    pub(crate) async fn catalog(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        self.catalog_where(n, last, &|_| true).await
    }

    /// [`catalog`](Self::catalog) of the repositories `visible` accepts.
    pub(crate) async fn catalog_where(
        &self,
        n: Option<usize>,
        last: Option<&str>,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Page> {
        self.names_page(keys::CATALOG, n, last, visible).await
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
    pub(crate) async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<ImageIndex> {
        let prefix = keys::referrers(repo, subject);
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

    /// The JSON record at `key` (`None` when absent or not JSON).
    pub(crate) async fn read_json(&self, key: &str) -> Result<Option<serde_json::Value>> {
        Ok(self.storage.get_meta(key).await?.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// The artifact record of manifest `digest` (the classification's JSON, kept beside it).
    pub(crate) async fn artifact_record(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<serde_json::Value>> {
        self.read_json(&keys::artifact(repo, digest)).await
    }

    /// The trust summary of manifest `digest` (its signatures, verified by the `trust` job),
    /// if one was recorded.
    pub(crate) async fn trust_summary(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<wharf_auth::signature::TrustSummary>> {
        Ok(self
            .storage
            .get_meta(&keys::trust(repo, digest))
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Every artifact record of a repository.
    pub(crate) async fn artifact_records(&self, repo: &Repository) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for key in self.storage.list_meta(&keys::artifacts(repo)).await? {
            if let Some(record) = self.read_json(&key).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// The repository's tags as (digest, tag) pairs, for the listings.
    pub(crate) async fn tags_by_digest(&self, repo: &Repository) -> Result<Vec<(String, String)>> {
        let prefix = keys::tags(repo);
        let mut out = Vec::new();
        for key in self.storage.list_meta(&prefix).await? {
            if let Some(record) = self.storage.get_meta(&key).await?.as_deref().and_then(TagRecord::decode) {
                out.push((record.digest.to_string(), key[prefix.len()..].to_owned()));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_store::MetaStore as _;

    /// A core on memory storage with the two-byte config `{}` pushed to `repo`.
    async fn with_config(repo: &str) -> (Arc<wharf_store::MemoryStore>, Core, Repository, Digest) {
        let storage = Arc::new(wharf_store::MemoryStore::new());
        let core = Core::new(storage.clone());
        let repo: Repository = repo.parse().expect("repo");
        let config = Bytes::from_static(b"{}");
        let digest = Digest::sha256(&config);
        let epoch = core.epoch().await.expect("epoch");
        core.store_blob(&epoch, &repo, &digest, wharf_store::single(config)).await.expect("config");
        (storage, core, repo, digest)
    }

    /// A layer link written by an older version (empty) is sized from the blob.
    #[tokio::test]
    async fn older_layer_links_are_sized_from_the_blob() {
        let (storage, core, repo, digest) = with_config("a").await;
        let link = keys::layer(&repo, &digest);
        let record = storage.get_meta(&link).await.expect("get").expect("link");
        assert!(record.starts_with(b"2 "), "size, then when: {record:?}");
        // A link as older versions wrote it: empty.
        storage.set_meta(&link, Bytes::new()).await.expect("old-style link");
        assert_eq!(core.linked_size(&repo, &digest).await.expect("size"), Some(2));
        let other: Repository = "b".parse().expect("repo");
        assert_eq!(core.linked_size(&other, &digest).await.expect("size"), None);
    }

    /// A tag written by an older version (the digest alone) still resolves, through the
    /// revision record, and a manifest delete removes it.
    #[tokio::test]
    async fn older_tag_records_still_resolve() {
        let (storage, core, repo, config_digest) = with_config("a/b").await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest.as_str(), "size": 2},
            "layers": []
        }))
        .expect("json");
        let tag: TagOrDigest = "v1".parse().expect("tag");
        let parsed = Manifest::from_bytes(Bytes::from(manifest.clone()), None).expect("manifest");
        let epoch = core.epoch().await.expect("epoch");
        let changed = Write::Remove { key: "nothing".into() };
        let tags = vec!["v1".parse().expect("tag")];
        let put = core
            .write_manifest(&epoch, &repo, &parsed, tags, Vec::new(), changed.clone(), true)
            .await
            .expect("put");
        storage
            .set_meta(&keys::tag(&repo, "v1"), put.digest.to_string().into())
            .await
            .expect("old-style record");
        let got = core.get_manifest(&repo, &tag).await.expect("get by old tag");
        assert_eq!((got.digest.clone(), got.bytes.as_ref()), (put.digest.clone(), &manifest[..]));
        let head = core.head_manifest(&repo, &tag).await.expect("head by old tag");
        assert_eq!(
            head,
            (
                put.digest.clone(),
                "application/vnd.oci.image.manifest.v1+json".to_owned(),
                manifest.len() as u64
            )
        );
        core.delete_manifest(&repo, &TagOrDigest::Digest(put.digest), vec![changed]).await.expect("delete");
        assert!(matches!(core.get_manifest(&repo, &tag).await, Err(Error::ManifestUnknown(_))));
    }
}
