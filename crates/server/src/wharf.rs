//! The façade: [`Wharf`], the registry as its users and the HTTP edge see it. It owns the
//! orchestration around the core — quotas, classification, Wasm policies, jobs, search, the
//! manifest cache, metrics, pull records — so that no service calls another through the core,
//! and each operation reads top to bottom here. A manifest PUT:
//!
//! ```text
//! Wharf::put_manifest
//!   Manifest::from_bytes[_verified]          parse (and verify the digest asked for)
//!   Core::epoch                              read the collector's fence
//!   Quotas::check                            refuse over quota (nothing written)
//!   Core::check_references                   every blob or child present, with its size
//!   Versioning::check_tags                   semver-only and immutable tags
//!   Classifier::classify_push                Wasm classification, policies, maybe modules read
//!   Versioning::check_package                a WIT package's name and version, WIT compatibility
//!   Core::write_manifest                     bytes → records (+ artifact, job, stamp) → tags, fenced
//!   Queue wake, SearchIndex::upsert, Quotas::added, Metrics::artifact_pushed
//! ```

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::StreamExt as _;
use wharf_store::{BlobInfo, ByteStream, GetResult, Storage, UploadId};
use wharf_types::{Digest, ImageIndex, Manifest, MediaType, Repository, Tag, TagOrDigest};

use crate::api::{ArtifactRecord, ArtifactSummary, PackageVersions, RepositorySummary, SearchHit};
use crate::classify::Classifier;
use crate::error::{Error, Result};
use crate::jobs::{Queue, Slots, Worker};
use crate::lifecycle::quota::QuotaUsage;
use crate::lifecycle::scrub::{ScrubReport, Scrubber};
use crate::lifecycle::{GcOptions, GcReport, Lifecycle};
use crate::metrics::Metrics;
use crate::mirror::{Mirror, Route};
use crate::packages::versioning::Versioning;
use crate::packages::{PackageName, Packages};
use crate::registry::fence::Epoch;
use crate::registry::{Core, Page, PutManifest, StoredManifest};
use crate::search::{Query, SearchIndex};
use crate::trust::{Trust, Verdict};
use crate::wasm_policy::WasmPolicies;
use crate::webhooks::{Event, EventKind, Origin, Webhooks};

/// Webhook deliveries a process runs at once (each to one receiver, waiting on the network).
const DELIVERIES: usize = 16;

/// Inspections run at once by default: the cores, at least 2 and at most 8.
fn default_inspections() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get).clamp(2, 8)
}

/// The registry: the OCI core over one storage backend, with Wasm classification, policies,
/// background jobs, search, lifecycle (collection, retention, quotas, scrub) and metrics
/// around it. No HTTP here ([`router`](crate::router) serves it).
#[derive(Clone, Debug)]
pub struct Wharf {
    core: Core,
    classifier: Classifier,
    queue: Queue,
    search: Arc<SearchIndex>,
    lifecycle: Arc<Lifecycle>,
    metrics: Arc<Metrics>,
    versioning: Arc<Versioning>,
    mirror: Arc<Mirror>,
    trust: Arc<Trust>,
    webhooks: Arc<Webhooks>,
}

impl Wharf {
    /// A registry in memory: for tests, examples and programs that embed one (nothing
    /// survives the process). The same as `Wharf::new(Arc::new(MemoryStore::new()))`.
    ///
    /// ```
    /// let registry = wharf_server::Wharf::in_memory();
    /// # let _ = registry;
    /// ```
    pub fn in_memory() -> Self {
        Self::new(Arc::new(wharf_store::MemoryStore::new()))
    }

    /// A registry over `storage` (a [`wharf_store::FsStore`], `MemoryStore` or `S3Store`).
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let core = Core::new(Arc::clone(&storage));
        let search = Arc::new(SearchIndex::new());
        let slots = Arc::new(Slots::new(default_inspections()));
        let metrics = Arc::new(Metrics::default());
        let queue = Queue {
            storage,
            slots: Arc::clone(&slots),
            deliveries: Arc::new(Slots::new(DELIVERIES)),
            wake: Arc::default(),
            adoptions: Arc::default(),
            metrics: Arc::clone(&metrics),
        };
        Self {
            classifier: Classifier::new(core.clone(), Arc::clone(&search), slots),
            core,
            queue,
            search,
            lifecycle: Arc::default(),
            metrics,
            versioning: Arc::default(),
            mirror: Arc::default(),
            trust: Arc::default(),
            webhooks: Arc::default(),
        }
    }

    /// What reading one artifact's layers may cost (bytes decompressed, extended header
    /// sizes, entries, module size, time; [`wharf_wasm::budget::Budget`]), and how many
    /// artifacts a process reads at once (the cores, 2 to 8, by default). An artifact over
    /// budget is recorded as not inspected, with the limit it reached.
    #[must_use]
    pub fn with_inspection(mut self, budget: wharf_wasm::budget::Budget, concurrency: Option<usize>) -> Self {
        let slots = Arc::new(Slots::new(concurrency.unwrap_or_else(default_inspections)));
        self.classifier.budget = budget;
        self.classifier.slots = Arc::clone(&slots);
        self.queue.slots = slots;
        self
    }

    /// With lifecycle rules (`[gc]`, `[[retention]]`, `[[quota]]`) for
    /// [`collect_garbage`](Self::collect_garbage) and every push.
    #[must_use]
    pub fn with_lifecycle(mut self, lifecycle: Lifecycle) -> Self {
        self.lifecycle = Arc::new(lifecycle);
        self
    }

    /// **Unsafe for real use**: with `false`, pushes no longer confirm their writes against a
    /// concurrent garbage collection. Exists so that a test can show the collection losing
    /// acknowledged data without it.
    #[doc(hidden)]
    #[must_use]
    pub fn with_gc_fence(mut self, on: bool) -> Self {
        self.core = self.core.with_gc_fence(on);
        self
    }

    /// While the storage is unavailable (an S3 engine down or too slow), manifests are served
    /// by the tags and digests this process read within `stale_for` (where they pointed then),
    /// instead of 503 [default: [`STALE_FOR`](crate::STALE_FOR), 5 minutes; zero: never]. While
    /// the storage answers, every request reads it (a tag moved by another process is served
    /// at once).
    #[must_use]
    pub fn with_stale_for(mut self, stale_for: std::time::Duration) -> Self {
        self.core = self.core.with_stale_for(stale_for);
        self
    }

    /// The lifecycle rules.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// With `on`, a manifest whose declared raw Wasm layer is not valid WebAssembly is refused
    /// (400 `MANIFEST_INVALID`).
    #[must_use]
    pub fn with_wasm_validate(mut self, on: bool) -> Self {
        self.classifier.validate = on;
        self
    }

    /// Whether the Wasm validation policy is on.
    pub fn wasm_validate(&self) -> bool {
        self.classifier.validate
    }

    /// With Wasm policies (`[[wasm_policy]]`): a push into a repository they match is checked
    /// against them before it is acknowledged.
    #[must_use]
    pub fn with_wasm_policies(mut self, policies: WasmPolicies) -> Self {
        self.classifier.policies = Arc::new(policies);
        self
    }

    /// With `[[versioning]]` rules and the `[packages]` mapping they read names by: immutable
    /// tags, semver-only tags, WIT compatibility within a `^` range, checked before a push or a
    /// delete is acknowledged.
    #[must_use]
    pub fn with_versioning(mut self, versioning: Versioning) -> Self {
        self.versioning = Arc::new(versioning);
        self
    }

    /// With pull-through mirrors of other registries (`[[upstream]]`): see
    /// [`pull_through`](Self::pull_through).
    #[must_use]
    pub fn with_mirror(mut self, mirror: Mirror) -> Self {
        self.mirror = Arc::new(mirror);
        self
    }

    /// With trust policies (`[trust]`, `[[trust_policy]]`): signatures pushed into the
    /// repositories they cover are verified by a job, and pulls there are judged by what
    /// verified (see [`trust`](crate::trust)).
    #[must_use]
    pub fn with_trust(mut self, trust: Trust) -> Self {
        if !trust.is_empty() {
            self.search.trust_in_force(trust.fingerprint());
        }
        self.trust = Arc::new(trust);
        self
    }

    /// The trust policies.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// With webhooks (`[[webhook]]`): every change, refusal or finished inspection they ask
    /// for is recorded with the change and delivered by the job queue (see
    /// [`webhooks`](crate::webhooks)).
    #[must_use]
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = Arc::new(webhooks);
        self
    }

    /// The webhooks.
    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// Each webhook with what waits, what was parked and its last deliveries.
    pub async fn webhook_status(&self) -> Result<Vec<crate::webhooks::WebhookStatus>> {
        self.webhooks.status(&self.core).await
    }

    /// Puts a webhook's parked events (or the one with id `event`) back in line; returns how
    /// many.
    pub async fn resend_events(&self, webhook: &str, event: Option<&str>) -> Result<usize> {
        let n = self.webhooks.resend(&self.core, webhook, event).await?;
        if n > 0 {
            self.queue.wake.notify_one();
        }
        Ok(n)
    }

    /// Queues the delivery of every stream of events that has none queued; a server does this
    /// at start and every few minutes. Returns how many.
    pub async fn queue_deliveries(&self) -> Result<usize> {
        let n = self.webhooks.requeue(&self.core).await?;
        if n > 0 {
            self.queue.wake.notify_one();
        }
        Ok(n)
    }

    /// Records `events` alone (a refusal, a pull: nothing else is written) for the webhooks that
    /// want them. A failure to record is logged: the answer to the client stands.
    async fn record_events(&self, events: Vec<Event>) {
        if self.webhooks.is_empty() {
            return;
        }
        if let Err(e) = self.webhooks.refresh_backlog(&self.core).await {
            tracing::warn!(error = %e, "counting the webhooks' backlog failed");
        }
        let mut recorded = match self
            .webhooks
            .writes_checked(&self.core, &self.queue.adoptions, events, &self.metrics)
            .await
        {
            Ok(recorded) if recorded.writes.is_empty() => return,
            Ok(recorded) => recorded,
            Err(e) => {
                tracing::warn!(error = %e, "recording an event failed");
                return;
            }
        };
        match self.core.storage().write_steps(vec![std::mem::take(&mut recorded.writes)]).await {
            Ok(()) => {
                if recorded.written(&self.core).await {
                    self.queue.wake.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "recording an event failed"),
        }
    }

    /// The event (`kind`: a quota's or a policy's) of a refusal `e` of `action` in `repo` (of
    /// `manifest`, when there is one). Only refusals are told: a check that failed on the
    /// storage refused nothing.
    async fn refused(
        &self,
        kind: EventKind,
        repo: &Repository,
        action: &str,
        manifest: Option<&Manifest>,
        e: &Error,
    ) {
        let refusal = matches!(e, Error::Denied { .. } | Error::ManifestInvalid(_) | Error::TagInvalid(_));
        if !refusal || !self.webhooks.wants(kind, repo) {
            return;
        }
        let mut event = Event::new(kind, &Origin::current()).about(repo, manifest.map(Manifest::digest));
        event.action = Some(action.to_owned());
        event.reason = Some(crate::text::cut(&e.to_string(), 1024));
        if let Some(m) = manifest {
            event.media_type = Some(m.media_type().essence().to_owned());
            event.artifact_type = m.artifact_type().map(ToString::to_string);
            event.size = Some(m.size());
            let classification = wharf_wasm::classify(m, None);
            if classification.is_wasm() {
                event.wasm = Some(serde_json::json!({ "layout": classification.kind.name() }));
            }
        }
        self.record_events(vec![event]).await;
    }

    /// Judges a pull of manifest `digest` in `repo` by the trust policies (`signer`: the caller
    /// may push there, and so may read what it signs): `Err(Denied)` naming the policy when an
    /// `enforce` policy refuses it; logged and counted either way.
    pub(crate) async fn judge_pull(&self, repo: &Repository, digest: &Digest, signer: bool) -> Result<()> {
        if self.trust.is_empty() {
            return Ok(());
        }
        match self.trust.decide(&self.core, repo, digest).await? {
            Verdict::Allowed(policies) => {
                for p in &policies {
                    self.metrics.trust_pull(p, "verified");
                }
                Ok(())
            }
            Verdict::Unverified { policy, why } => {
                tracing::warn!(%repo, %digest, policy, why, "unverified pull (audit)");
                self.metrics.trust_pull(&policy, "unverified");
                Ok(())
            }
            Verdict::Denied { policy, why } if signer => {
                tracing::info!(%repo, %digest, policy, why, "unverified manifest read by a caller with push rights");
                Ok(())
            }
            Verdict::Denied { policy, why } => {
                tracing::warn!(%repo, %digest, policy, why, "pull denied");
                self.metrics.trust_pull(&policy, "denied");
                let e = Error::Denied {
                    message: format!("trust policy {policy}: {digest} may not be pulled: {why}"),
                    challenge: None,
                };
                if self.webhooks.wants(EventKind::PolicyRefused, repo) {
                    let mut event =
                        Event::new(EventKind::PolicyRefused, &Origin::current()).about(repo, Some(digest));
                    event.action = Some("pull".into());
                    event.reason = Some(crate::text::cut(&e.to_string(), 1024));
                    self.record_events(vec![event]).await;
                }
                Err(e)
            }
        }
    }

    /// What the trust policies say of a pull of manifest `digest` in `repo` now, without
    /// counting a pull (the artifact API, the web page): `None` where no policy covers the
    /// repository.
    pub async fn trust_verdict(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<crate::api::TrustVerdict>> {
        if !self.trust.covers(repo) {
            return Ok(None);
        }
        Ok(Some(self.trust.decide(&self.core, repo, digest).await?.into()))
    }

    /// Refuses a blob `GET` by a caller without push rights (`signer` false) where an
    /// `enforce` trust policy covers the repository and the blob belongs to no manifest it lets
    /// be pulled (nor to a referrer).
    pub(crate) async fn judge_blob(&self, repo: &Repository, digest: &Digest, signer: bool) -> Result<()> {
        if self.trust.is_empty() || signer {
            return Ok(());
        }
        match self.trust.blob_refused(&self.core, repo, digest).await? {
            None => Ok(()),
            Some(policy) => {
                self.metrics.trust_pull(&policy, "denied");
                Err(Error::Denied {
                    message: format!(
                        "trust policy {policy}: blob {digest} belongs to no manifest that may be pulled here"
                    ),
                    challenge: None,
                })
            }
        }
    }

    /// Queues a verification of every manifest under a trust policy not verified under the
    /// trust material of now (new keys or roots, a policy over repositories that had none);
    /// returns how many. A server does this at start.
    pub async fn queue_trust_checks(&self) -> Result<usize> {
        let stale = self.trust.stale(&self.core).await?;
        let writes: Vec<wharf_store::Write> = stale
            .iter()
            .map(|(repository, digest)| {
                crate::jobs::Job::Trust {
                    repository: repository.clone(),
                    digest: digest.clone(),
                    attempts: 0,
                }
                .write()
            })
            .collect();
        let n = writes.len();
        for chunk in writes.chunks(256) {
            self.core.storage().write_steps(vec![chunk.to_vec()]).await?;
        }
        if n > 0 {
            self.queue.wake.notify_one();
        }
        Ok(n)
    }

    /// The trust summary of a manifest (its signatures, verified), if any was recorded.
    pub async fn trust_summary(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<crate::api::TrustSummary>> {
        self.core.trust_summary(repo, digest).await
    }

    /// The upstreams.
    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// The mapping between Wasm packages and repositories (`[packages]`).
    pub fn packages(&self) -> &Packages {
        self.versioning.packages()
    }

    /// The versions of the package in `repo` (its semver tags, in semver order), what each
    /// holds and uses, and the artifacts that depend on it that `visible` lets the caller see.
    pub async fn package_versions(
        &self,
        repo: &Repository,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<PackageVersions> {
        crate::packages::view::versions(&self.core, &self.search, self.packages(), repo, visible).await
    }

    /// Where a package lives.
    pub fn package_repository(&self, package: &PackageName) -> Repository {
        self.packages().repository(package)
    }

    /// Marks a version (its tag) yanked, or not: shown in the versions listing; the version
    /// stays pullable.
    pub async fn set_yanked(&self, repo: &Repository, tag: &Tag, yanked: bool) -> Result<()> {
        self.core.head_manifest(repo, &TagOrDigest::Tag(tag.clone())).await?;
        let key = crate::registry::keys::yanked(repo, tag.as_str());
        if yanked {
            self.core.storage().set_meta(&key, crate::clock::now_rfc3339().into()).await?;
        } else {
            self.core.storage().remove_meta(&key).await?;
        }
        Ok(())
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        self.core.storage()
    }

    /// The Prometheus text exposition of this registry's metrics.
    pub async fn render_metrics(&self) -> Result<String> {
        let storage = self.core.storage();
        let health = self.core.health();
        self.metrics.storage_health(
            health.incident().map(|i| i.fault),
            [wharf_store::Fault::Full, wharf_store::Fault::Unavailable].map(|f| (f, health.failed(f))),
        );
        // With the storage down, the gauges read from it keep their last values: the fault
        // gauges are what a scrape needs then.
        let read = async {
            let count =
                |prefix: &'static str| async move { Ok::<_, Error>(storage.list_meta(prefix).await?.len()) };
            let sessions = count(crate::registry::keys::UPLOADS).await?;
            let repositories = count(crate::registry::keys::CATALOG).await?;
            let jobs = count(crate::registry::keys::JOBS_PENDING).await?;
            let parked = count(crate::registry::keys::JOBS_PARKED).await?;
            self.lifecycle.quotas.set_metrics(&self.core, &self.metrics).await?;
            Ok::<_, Error>((sessions, repositories, (jobs, parked)))
        };
        let counts = match read.await {
            Ok(counts) => Some(counts),
            Err(e) if e.fault().is_some() => None,
            Err(e) => return Err(e),
        };
        if counts.is_some()
            && let Ok(backlogs) = self.webhooks.counts(&self.core).await
        {
            for (name, pending, parked) in backlogs {
                self.metrics.webhook_backlog(&name, pending, parked);
            }
        }
        Ok(self.metrics.render(counts, storage.quarantined()))
    }

    /// The storage fault under way, if any (see `registry::health`).
    pub(crate) fn storage_incident(&self) -> Option<crate::registry::health::Incident> {
        self.core.health().incident()
    }

    /// Runs the background jobs queued in the backend until none this process can take is
    /// left (a server runs them on its own; tools and tests embedding a [`Wharf`] call
    /// this).
    pub async fn run_pending_jobs(&self) -> Result<()> {
        Arc::new(Worker::new(Arc::clone(self.core.storage()))).drain(&self.queue, self).await
    }

    /// Works the job queue for as long as the returned future runs (what a server does).
    pub(crate) fn work_jobs(&self) -> impl Future<Output = ()> + Send + 'static {
        let worker = Arc::new(Worker::new(Arc::clone(self.core.storage())));
        worker.run(self.queue.clone(), self.clone())
    }

    // Blobs.

    /// Whether the repository exists (has ever held a blob, upload or manifest).
    pub async fn repository_exists(&self, repo: &Repository) -> Result<bool> {
        self.core.repository_exists(repo).await
    }

    /// Whether `digest` is linked to the repository.
    pub async fn blob_linked(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        self.core.blob_linked(repo, digest).await
    }

    /// The blob's size, if it is in the repository.
    pub async fn stat_blob(&self, repo: &Repository, digest: &Digest) -> Result<Option<BlobInfo>> {
        self.core.stat_blob(repo, digest).await
    }

    /// Where a client may fetch the blob from the storage engine itself (a presigned URL,
    /// valid for [`BLOB_URL_EXPIRY`](crate::BLOB_URL_EXPIRY)), when the storage hands such
    /// URLs out (S3 with `redirect=true`); `None` otherwise. [`Error::BlobUnknown`] when the
    /// repository does not hold the blob.
    pub async fn blob_url(&self, repo: &Repository, digest: &Digest, head: bool) -> Result<Option<String>> {
        self.core.blob_url(repo, digest, head).await
    }

    /// Streams the blob (or a range of it) from the repository.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<GetResult> {
        self.core.get_blob(repo, digest, range).await
    }

    /// Unlinks the blob from the repository (the bytes stay for other repositories).
    pub async fn delete_blob(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        self.core.delete_blob(repo, digest).await
    }

    /// Stores a whole blob (monolithic upload) and links it, within the repository's quotas.
    pub async fn put_blob(&self, repo: &Repository, digest: &Digest, data: ByteStream) -> Result<BlobInfo> {
        self.refuse_mirrored(repo)?;
        let epoch = self.core.epoch().await?;
        let (data, exceeded) = self.within_quota(repo, Some(digest), 0, data).await?;
        let info = match self.core.store_blob(&epoch, repo, digest, data).await {
            Err(_) if exceeded.is_some_and(|e| e.load(std::sync::atomic::Ordering::Relaxed)) => {
                return Err(self.over_quota(repo).await);
            }
            other => other?,
        };
        self.lifecycle.quotas.added(repo, digest, info.size);
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
        let quotas = &self.lifecycle.quotas;
        let Some(room) = quotas.room(&self.core, repo).await? else { return Ok((data, None)) };
        if let Some(d) = digest
            && quotas.check(&self.core, repo, Some(d), u64::MAX).await.is_ok()
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
        let e = match self.lifecycle.quotas.check(&self.core, repo, None, u64::MAX).await {
            Err(e) => e,
            Ok(()) => Error::Denied { message: "over quota".into(), challenge: None },
        };
        self.refused(EventKind::QuotaExceeded, repo, "push", None, &e).await;
        e
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
        self.refuse_mirrored(repo)?;
        let epoch = self.core.epoch().await?;
        let Some(info) = self.core.mount_source(digest, from, allowed).await? else {
            return Ok(false);
        };
        if !self.lifecycle.quotas.is_empty()
            && let Err(e) = self.lifecycle.quotas.check(&self.core, repo, Some(digest), info.size).await
        {
            self.refused(EventKind::QuotaExceeded, repo, "push", None, &e).await;
            return Err(e);
        }
        match self.core.link_fenced(&epoch, repo, digest, info.size).await {
            // Collected meanwhile: the client uploads it instead.
            Err(Error::Collected(_)) => Ok(false),
            Err(e) => Err(e),
            Ok(()) => {
                self.lifecycle.quotas.added(repo, digest, info.size);
                Ok(true)
            }
        }
    }

    // Uploads.

    /// Starts an upload session in the repository.
    pub async fn begin_upload(&self, repo: &Repository) -> Result<UploadId> {
        self.refuse_mirrored(repo)?;
        self.core.begin_upload(repo).await
    }

    /// Cancels every upload session older than `max_age` (clients that went away); returns
    /// how many were removed.
    pub async fn purge_stale_uploads(&self, max_age: std::time::Duration) -> Result<usize> {
        self.core.purge_stale_uploads(max_age).await
    }

    /// How many bytes the session holds.
    pub async fn upload_status(&self, repo: &Repository, id: &UploadId) -> Result<u64> {
        self.core.upload_status(repo, id).await
    }

    /// Appends a chunk at `offset` (the session's size when the client sent no range),
    /// within the repository's quotas (a session that goes over is cancelled).
    pub async fn append_upload(
        &self,
        repo: &Repository,
        id: &UploadId,
        offset: Option<u64>,
        data: ByteStream,
    ) -> Result<u64> {
        if self.lifecycle.quotas.is_empty() {
            return self.core.append_upload(repo, id, offset, data).await;
        }
        let offset = match offset {
            Some(o) => o,
            None => self.core.upload_status(repo, id).await?,
        };
        let (data, exceeded) = self.within_quota(repo, None, offset, data).await?;
        match self.core.append_upload(repo, id, Some(offset), data).await {
            Err(e @ Error::RangeNotSatisfiable { .. }) => Err(e),
            Err(_) if exceeded.is_some_and(|e| e.load(std::sync::atomic::Ordering::Relaxed)) => {
                // Refused: the session and its bytes go.
                self.core.cancel_upload(repo, id).await.ok();
                Err(self.over_quota(repo).await)
            }
            other => other,
        }
    }

    /// Completes the session as blob `digest`, within the repository's quotas.
    pub async fn finish_upload(&self, repo: &Repository, id: &UploadId, digest: &Digest) -> Result<BlobInfo> {
        let epoch = self.core.epoch().await?;
        if !self.lifecycle.quotas.is_empty() {
            let size = self.core.upload_status(repo, id).await?;
            if let Err(e) = self.lifecycle.quotas.check(&self.core, repo, Some(digest), size).await {
                self.core.cancel_upload(repo, id).await.ok();
                self.refused(EventKind::QuotaExceeded, repo, "push", None, &e).await;
                return Err(e);
            }
        }
        let info = self.core.finish_upload(&epoch, repo, id, digest).await?;
        self.lifecycle.quotas.added(repo, digest, info.size);
        Ok(info)
    }

    /// Cancels the session.
    pub async fn cancel_upload(&self, repo: &Repository, id: &UploadId) -> Result<()> {
        self.core.cancel_upload(repo, id).await
    }

    // Manifests.

    /// Stores a manifest pushed to `reference` (a tag, or the digest it must have), with
    /// more tags from `?tag=`. In order: parse (and verify the digest asked for); read the
    /// collector's fence; refuse over quota; check every blob or child is present, with its
    /// size; classify (Wasm policies, modules read when a policy needs them); write the bytes,
    /// then the revision with the artifact record, the job and the search stamp, then the
    /// tags, confirmed against a concurrent collection; then wake the job worker, update the
    /// search index, the quota usage and the metrics.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
        content_type: Option<&MediaType>,
        bytes: Bytes,
        extra_tags: &[Tag],
    ) -> Result<PutManifest> {
        self.refuse_mirrored(repo)?;
        let manifest = match reference {
            TagOrDigest::Digest(d) => Manifest::from_bytes_verified(bytes, content_type, d)?,
            TagOrDigest::Tag(_) => Manifest::from_bytes(bytes, content_type)?,
        };
        let epoch: Epoch = self.core.epoch().await?;
        if let Err(e) =
            self.lifecycle.quotas.check(&self.core, repo, Some(manifest.digest()), manifest.size()).await
        {
            self.refused(EventKind::QuotaExceeded, repo, "push", Some(&manifest), &e).await;
            return Err(e);
        }
        self.core.check_references(repo, &manifest).await?;
        let mut tags: Vec<Tag> = extra_tags.to_vec();
        if let TagOrDigest::Tag(t) = reference {
            tags.insert(0, t.clone());
        }
        let checked = async {
            self.versioning.check_tags(&self.core, repo, &tags, manifest.digest()).await?;
            let (artifact, job) =
                self.classifier.classify_push(repo, &manifest, self.versioning.needs_modules(repo)).await?;
            self.versioning.check_package(&self.classifier, repo, &manifest, &tags, &artifact).await?;
            Ok::<_, Error>((artifact, job))
        };
        let (artifact, job) = match checked.await {
            Ok(checked) => checked,
            Err(e) => {
                self.refused(EventKind::PolicyRefused, repo, "push", Some(&manifest), &e).await;
                return Err(e);
            }
        };
        let mut records = vec![Classifier::artifact_write(repo, manifest.digest(), &artifact)];
        records.extend(job.as_ref().map(crate::jobs::Job::write));
        let trust_job = self.trust.subject_of(repo, &manifest, &tags).map(|digest| crate::jobs::Job::Trust {
            repository: repo.clone(),
            digest,
            attempts: 0,
        });
        records.extend(trust_job.as_ref().map(crate::jobs::Job::write));
        let events = self.push_events(repo, &manifest, &tags, &artifact).await?;
        let mut recorded =
            self.webhooks.writes_checked(&self.core, &self.queue.adoptions, events, &self.metrics).await?;
        records.append(&mut recorded.writes);
        let put = self
            .core
            .write_manifest(&epoch, repo, &manifest, tags, records, self.search.stamp_write(), true)
            .await?;
        if recorded.written(&self.core).await || job.is_some() || trust_job.is_some() {
            self.queue.wake.notify_one();
        }
        let tag_names: Vec<String> = put.tags.iter().map(ToString::to_string).collect();
        self.search.upsert(repo.as_str(), &artifact, &tag_names);
        self.lifecycle.quotas.added(repo, &put.digest, manifest.size());
        self.metrics.artifact_pushed(
            artifact["kind"].as_str().unwrap_or_default(),
            artifact["harborType"].as_str().unwrap_or_default(),
        );
        Ok(put)
    }

    /// The events of a push the webhooks want: the push, and each tag created or moved (a tag
    /// set again to the manifest it names already is neither).
    async fn push_events(
        &self,
        repo: &Repository,
        manifest: &Manifest,
        tags: &[Tag],
        artifact: &serde_json::Value,
    ) -> Result<Vec<Event>> {
        let wants = |kind| self.webhooks.wants(kind, repo);
        let (pushed, tagged) =
            (wants(EventKind::ManifestPushed), wants(EventKind::TagCreated) || wants(EventKind::TagMoved));
        if !pushed && !tagged {
            return Ok(Vec::new());
        }
        let origin = Origin::current();
        let event = |kind| {
            let mut e = Event::new(kind, &origin).about(repo, Some(manifest.digest()));
            e.media_type = Some(manifest.media_type().essence().to_owned());
            e.artifact_type = manifest.artifact_type().map(ToString::to_string);
            e.size = Some(artifact["size"].as_u64().unwrap_or(manifest.size()));
            e.read_wasm = artifact["wasm"].as_bool() == Some(true);
            e
        };
        let mut events = Vec::new();
        if pushed {
            let mut e = event(EventKind::ManifestPushed);
            e.tag = tags.first().map(ToString::to_string);
            events.push(e);
        }
        if tagged {
            for tag in tags {
                let previous = match self.core.head_manifest(repo, &TagOrDigest::Tag(tag.clone())).await {
                    Ok((d, ..)) => Some(d),
                    Err(Error::ManifestUnknown(_)) => None,
                    Err(e) => return Err(e),
                };
                let mut e = match previous {
                    Some(d) if &d == manifest.digest() => continue,
                    Some(d) => {
                        let mut e = event(EventKind::TagMoved);
                        e.previous = Some(d);
                        e
                    }
                    None => event(EventKind::TagCreated),
                };
                e.tag = Some(tag.to_string());
                events.push(e);
            }
        }
        events.retain(|e| self.webhooks.wants(e.kind, repo));
        Ok(events)
    }

    /// The manifest at a tag or digest (a pull of a tag is recorded where retention counts
    /// pulls).
    pub async fn get_manifest(&self, repo: &Repository, reference: &TagOrDigest) -> Result<StoredManifest> {
        let got = self.core.get_manifest(repo, reference).await?;
        self.pulled(repo, reference);
        Ok(got)
    }

    /// The manifest's digest, media type and size, without its bytes. Clients resolve a tag
    /// with HEAD, then fetch by digest: that is a pull of the tag.
    pub async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<(Digest, String, u64)> {
        let located = self.core.head_manifest(repo, reference).await?;
        self.pulled(repo, reference);
        Ok(located)
    }

    /// Records a pull of a tag in repositories a retention rule with `keep_pulled_within` or
    /// a cache budget covers; of a manifest by digest too under a cache budget (what was
    /// fetched by digest is evicted by its last pull).
    fn pulled(&self, repo: &Repository, reference: &TagOrDigest) {
        let counted = match reference {
            TagOrDigest::Tag(_) => self.lifecycle.counts_pulls(repo),
            TagOrDigest::Digest(_) => self.lifecycle.budgeted(repo),
        };
        if counted {
            self.core.record_pull(repo, reference);
        }
    }

    /// Deletes a tag, or a manifest with every tag pointing at it and its referrer record.
    pub async fn delete_manifest(&self, repo: &Repository, reference: &TagOrDigest) -> Result<()> {
        if let Err(e) = self.versioning.check_delete(&self.core, repo, reference).await {
            self.refused(EventKind::PolicyRefused, repo, "delete", None, &e).await;
            return Err(e);
        }
        let events = self.delete_events(repo, reference).await?;
        let mut recorded =
            self.webhooks.writes_checked(&self.core, &self.queue.adoptions, events, &self.metrics).await?;
        let mut writes = vec![self.search.stamp_write()];
        writes.append(&mut recorded.writes);
        self.core.delete_manifest(repo, reference, writes).await?;
        if recorded.written(&self.core).await {
            self.queue.wake.notify_one();
        }
        match reference {
            TagOrDigest::Tag(t) => self.search.untag(repo.as_str(), t.as_str()),
            TagOrDigest::Digest(d) => self.search.remove(repo.as_str(), d.as_str()),
        }
        Ok(())
    }

    /// The event of a delete the webhooks want, with what is deleted (read before it goes).
    async fn delete_events(&self, repo: &Repository, reference: &TagOrDigest) -> Result<Vec<Event>> {
        let kind = match reference {
            TagOrDigest::Tag(_) => EventKind::TagDeleted,
            TagOrDigest::Digest(_) => EventKind::ManifestDeleted,
        };
        if !self.webhooks.wants(kind, repo) {
            return Ok(Vec::new());
        }
        let (digest, media_type, size) = match self.core.head_manifest(repo, reference).await {
            Ok(found) => found,
            // Nothing to delete: the delete answers that.
            Err(Error::ManifestUnknown(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut event = Event::new(kind, &Origin::current()).about(repo, Some(&digest));
        event.media_type = Some(media_type);
        event.size = Some(size);
        if let TagOrDigest::Tag(t) = reference {
            event.tag = Some(t.to_string());
        } else if let Some(record) = self.core.artifact_record(repo, &digest).await? {
            event.artifact_type = record["artifactType"].as_str().map(str::to_owned);
            event.wasm = crate::webhooks::wasm_fields(&record);
        }
        Ok(vec![event])
    }

    /// Tells the webhooks that want it of a manifest pull (`GET`, once it was allowed).
    pub(crate) async fn pulled_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
        digest: &Digest,
        media_type: &str,
        size: u64,
    ) {
        if !self.webhooks.wants(EventKind::ManifestPulled, repo) {
            return;
        }
        let mut event = Event::new(EventKind::ManifestPulled, &Origin::current()).about(repo, Some(digest));
        event.read_wasm = true;
        event.media_type = Some(media_type.to_owned());
        event.size = Some(size);
        if let TagOrDigest::Tag(t) = reference {
            event.tag = Some(t.to_string());
        }
        self.record_events(vec![event]).await;
    }

    /// The repository's tags, sorted by bytes, after `last`, at most `n`. A page costs its
    /// own size, not the repository's ([`wharf_store::MetaStore::list_meta_page`]).
    pub async fn tags(&self, repo: &Repository, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        self.core.tags(repo, n, last).await
    }

    /// The registry's repositories, sorted, after `last`, at most `n`.
    pub async fn catalog(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        self.core.catalog(n, last).await
    }

    /// [`catalog`](Self::catalog) of the repositories `visible` accepts.
    pub async fn catalog_where(
        &self,
        n: Option<usize>,
        last: Option<&str>,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Page> {
        self.core.catalog_where(n, last, visible).await
    }

    /// The referrers of `subject` in the repository, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<ImageIndex> {
        self.core.referrers(repo, subject, artifact_type).await
    }

    // Artifacts and search.

    /// The repository's artifacts (all, or only Wasm ones): digest, tags, media type, artifact
    /// type, Wasm kind, Harbor type, total size, push time.
    pub async fn artifacts(&self, repo: &Repository, wasm_only: bool) -> Result<Vec<ArtifactSummary>> {
        self.classifier.artifacts(repo, wasm_only).await
    }

    /// A page of [`artifacts`](Self::artifacts), by digest: up to `n` after `last`, and
    /// whether more follow. It reads the artifact records of the page (more only while the
    /// Wasm filter skips some) and the tags of each, never the whole repository.
    pub async fn artifacts_page(
        &self,
        repo: &Repository,
        wasm_only: bool,
        n: usize,
        last: Option<&Digest>,
    ) -> Result<(Vec<ArtifactSummary>, bool)> {
        self.classifier.artifacts_page(repo, wasm_only, n, last).await
    }

    /// One artifact's full record (evidence, platform, annotations, config summary, history,
    /// module inspection), with its tags.
    pub async fn artifact(&self, repo: &Repository, reference: &TagOrDigest) -> Result<ArtifactRecord> {
        self.classifier.artifact(repo, reference).await
    }

    /// Every repository with its artifact counts by kind and by Harbor type.
    pub async fn repository_summaries(&self) -> Result<Vec<RepositorySummary>> {
        self.classifier.repository_summaries().await
    }

    /// A page of [`repository_summaries`](Self::repository_summaries): up to `n` repositories
    /// after `last` that `visible` accepts, and whether more follow.
    pub async fn repository_summaries_page(
        &self,
        n: usize,
        last: Option<&str>,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Vec<RepositorySummary>, bool)> {
        self.classifier.repository_summaries_page(n, last, visible).await
    }

    /// A page of repositories for a listing that shows only some (`keep`), each with its
    /// artifacts (without tags).
    pub(crate) async fn repositories_with_artifacts(
        &self,
        n: usize,
        last: Option<&str>,
        visible: &(dyn Fn(&str) -> bool + Sync),
        keep: impl Fn(&[ArtifactSummary]) -> bool,
    ) -> Result<(Vec<(String, Vec<ArtifactSummary>)>, bool)> {
        self.classifier.repositories_with_artifacts(n, last, visible, keep).await
    }

    /// Wasm artifacts matching `query` in the repositories `visible` accepts, sorted by
    /// repository then digest, after `last` (`<repository>@<digest>`), at most `n`; and
    /// whether more follow.
    pub async fn search(
        &self,
        query: &Query,
        n: Option<usize>,
        last: Option<&str>,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Vec<SearchHit>, bool)> {
        self.search.search(&self.core, query, n, last, visible).await
    }

    // Mirrors.

    /// The local name of repository `name` asked for as a mirror of host `ns` (containerd's
    /// `?ns=`), when an upstream answers to that host.
    pub fn transparent_name(&self, ns: &str, name: &str) -> Option<String> {
        self.mirror.transparent(ns, name)
    }

    /// A repository under an upstream's prefix is a cache of it: pushes there are refused
    /// (`403 DENIED`, nothing written), as Harbor refuses them in a proxy-cache project.
    fn refuse_mirrored(&self, repo: &Repository) -> Result<()> {
        match self.mirror.route(repo) {
            None => Ok(()),
            Some(route) => Err(Error::Denied {
                message: format!(
                    "{repo} is a mirror of `{}` at upstream `{}`: it is filled by pulls, not pushes",
                    route.remote,
                    route.upstream.name()
                ),
                challenge: None,
            }),
        }
    }

    /// Whether an upstream mirrors the repository.
    pub fn is_mirrored(&self, repo: &Repository) -> bool {
        self.mirror.route(repo).is_some()
    }

    /// Brings a mirrored repository's manifest at `reference` up to date with its upstream,
    /// before it is read ([`get_manifest`](Self::get_manifest) and
    /// [`head_manifest`](Self::head_manifest) read only what is stored). By digest: fetched
    /// once, when not stored. By tag: served as stored while its last check is younger than
    /// the upstream's `tag_ttl`; then checked with a `HEAD` (Docker Hub does not count it as a
    /// pull) and fetched when it moved. When the upstream does not answer, stalls, refuses or
    /// limits (429) and the tag is cached, the cache answers: the reason is returned (the
    /// edge says so in a `Warning` header) and logged. What the upstream sends that does not
    /// verify is refused and changes nothing. However many ask at once, one fetch.
    /// `Ok(None)` for a repository no upstream mirrors.
    pub async fn pull_through(&self, repo: &Repository, reference: &TagOrDigest) -> Result<Option<String>> {
        let Some(route) = self.mirror.route(repo) else { return Ok(None) };
        let upstream = route.upstream.name().to_owned();
        let cached = match self.core.head_manifest(repo, reference).await {
            Ok((digest, ..)) => Some(digest),
            Err(Error::ManifestUnknown(_)) => None,
            Err(e) => return Err(e),
        };
        let fresh = match (reference, &cached) {
            (TagOrDigest::Digest(_), Some(_)) => true,
            (TagOrDigest::Tag(tag), Some(_)) => {
                self.checked_within(repo, tag, route.upstream.settings.tag_ttl).await?
            }
            (_, None) => false,
        };
        if fresh {
            self.metrics.mirror(&upstream, "hit");
            return Ok(None);
        }
        let key = format!("manifest {repo}:{reference}");
        let (flight, _) = self.mirror.flights.join(&key, || {
            let (this, repo, reference) = (self.clone(), repo.clone(), reference.clone());
            async move { this.fetch_manifest(&route, &repo, &reference).await }.boxed()
        });
        match flight.await {
            Ok(fetched) => {
                // A cached tag found unchanged is a hit; one that moved, fetched again, a miss.
                self.metrics.mirror(&upstream, if fetched { "miss" } else { "hit" });
                Ok(None)
            }
            Err(e) if cached.is_some() && matches!(*e, Error::Upstream(_)) => {
                tracing::warn!(%repo, %reference, error = %e, "upstream failed: serving the cached manifest");
                self.metrics.mirror(&upstream, "stale");
                Ok(Some(format!("served from the cache: {e}")))
            }
            Err(e) => {
                self.metrics.mirror(&upstream, "error");
                Err(crate::mirror::again(&e))
            }
        }
    }

    /// Whether the mirrored tag was checked at its upstream within `ttl`.
    async fn checked_within(&self, repo: &Repository, tag: &Tag, ttl: std::time::Duration) -> Result<bool> {
        let at = self.read_secs(&crate::registry::keys::checked(repo, tag.as_str())).await?;
        Ok(at.is_some_and(|at| crate::clock::now_secs().saturating_sub(at) < ttl.as_secs()))
    }

    /// A `<unix secs>` record (a tag's last check, a sync rule's last run); `None` when absent
    /// or unreadable.
    async fn read_secs(&self, key: &str) -> Result<Option<u64>> {
        let value = self.core.storage().get_meta(key).await?;
        Ok(value.as_deref().and_then(crate::registry::keys::decode_secs))
    }

    /// The write recording that the mirrored tag was checked now.
    fn checked_write(repo: &Repository, tag: &Tag) -> wharf_store::Write {
        wharf_store::Write::Set {
            key: crate::registry::keys::checked(repo, tag.as_str()),
            value: crate::clock::now_secs().to_string().into(),
        }
    }

    /// Fetches what `reference` names at the upstream (a tag is resolved with a `HEAD`
    /// first: unchanged, only its check is recorded) and stores it; whether it stored
    /// anything new.
    async fn fetch_manifest(
        &self,
        route: &Route,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<bool> {
        let (digest, tags) = match reference {
            TagOrDigest::Digest(d) => (d.clone(), Vec::new()),
            TagOrDigest::Tag(tag) => {
                let digest = route.resolve(tag).await?;
                if matches!(self.core.head_manifest(repo, reference).await, Ok((d, ..)) if d == digest) {
                    self.core.storage().write_steps(vec![vec![Self::checked_write(repo, tag)]]).await?;
                    return Ok(false);
                }
                (digest, vec![tag.clone()])
            }
        };
        let manifest = if self.core.holds_manifest(repo, &digest).await? {
            let stored = self.core.get_manifest(repo, &TagOrDigest::Digest(digest.clone())).await?;
            Manifest::from_bytes_verified(stored.bytes, stored.media_type.parse().ok().as_ref(), &digest)?
        } else {
            let manifest = route.manifest(&digest).await?;
            self.metrics.mirror_fetched(route.upstream.name(), manifest.size());
            manifest
        };
        self.store_mirrored(route, repo, &manifest, tags).await.map(|()| true)
    }

    /// Stores a manifest fetched from an upstream, as a push would be but with its blobs
    /// and children left at the upstream until asked for: its config (and, for a Wasm
    /// artifact, its layers: classification and inspection read them) fetched first, then
    /// classified (Wasm policies apply), written with `tags` and their checks, indexed.
    async fn store_mirrored(
        &self,
        route: &Route,
        repo: &Repository,
        manifest: &Manifest,
        tags: Vec<Tag>,
    ) -> Result<()> {
        let epoch: Epoch = self.core.epoch().await?;
        if let Some(image) = manifest.as_image() {
            self.hold_blob(route, repo, &image.config.digest).await?;
        }
        let (artifact, job) = self.classifier.classify_push(repo, manifest, false).await?;
        if job.is_some()
            && let Some(image) = manifest.as_image()
        {
            for layer in image.layers.iter().filter(|d| !d.is_non_distributable()) {
                self.hold_blob(route, repo, &layer.digest).await?;
            }
        }
        let mut records = vec![Classifier::artifact_write(repo, manifest.digest(), &artifact)];
        records.extend(job.as_ref().map(crate::jobs::Job::write));
        let trust_job = self.trust.subject_of(repo, manifest, &tags).map(|digest| crate::jobs::Job::Trust {
            repository: repo.clone(),
            digest,
            attempts: 0,
        });
        records.extend(trust_job.as_ref().map(crate::jobs::Job::write));
        records.extend(tags.iter().map(|t| Self::checked_write(repo, t)));
        let put = self
            .core
            .write_manifest(&epoch, repo, manifest, tags, records, self.search.stamp_write(), false)
            .await?;
        if job.is_some() || trust_job.is_some() {
            self.queue.wake.notify_one();
        }
        let tag_names: Vec<String> = put.tags.iter().map(ToString::to_string).collect();
        self.search.upsert(repo.as_str(), &artifact, &tag_names);
        Ok(())
    }

    /// Fetches the blob into the repository unless it holds it (one fetch however many ask).
    async fn hold_blob(&self, route: &Route, repo: &Repository, digest: &Digest) -> Result<()> {
        if self.core.blob_linked(repo, digest).await? {
            return Ok(());
        }
        self.fetch_blob(route, repo, digest, false).await.map(drop)
    }

    /// For a repository an upstream mirrors, a blob it does not hold: fetched from the
    /// upstream (once, however many ask), written through the store's digest check, linked.
    /// With `stream`, the first requester is handed the bytes as they arrive (the last chunk
    /// only once the blob verified): `Some((size, bytes))`; everyone else (and without
    /// `stream`) waits until the blob is stored and reads it as any other: `None`.
    /// [`Error::BlobUnknown`] for a repository no upstream mirrors, or a blob the upstream
    /// does not have.
    pub async fn pull_through_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        stream: bool,
    ) -> Result<Option<(Option<u64>, ByteStream)>> {
        let Some(route) = self.mirror.route(repo) else { return Err(Error::BlobUnknown(digest.clone())) };
        self.fetch_blob(&route, repo, digest, stream).await
    }

    async fn fetch_blob(
        &self,
        route: &Route,
        repo: &Repository,
        digest: &Digest,
        stream: bool,
    ) -> Result<Option<(Option<u64>, ByteStream)>> {
        let upstream = route.upstream.name().to_owned();
        let mut handed = None;
        let (flight, _) = self.mirror.flights.join(&format!("blob {repo}@{digest}"), || {
            let (size_tx, size_rx) = tokio::sync::oneshot::channel();
            let (client, received) = if stream {
                let (tx, rx) = tokio::sync::mpsc::channel(crate::mirror::CHUNKS);
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            handed = received.map(|rx| (size_rx, rx));
            let (this, route, repo, digest) = (self.clone(), route.clone(), repo.clone(), digest.clone());
            async move {
                // Its turn among the upstream's fetches (`max_fetches`): what fetches hold in
                // memory is bounded however many clients ask for different blobs.
                let _turn = Arc::clone(&route.upstream.fetches)
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::Upstream(format!("upstream `{}`: {e}", route.upstream.name())))?;
                let epoch = this.core.epoch().await?;
                let (size, source) = route.blob(&digest).await?;
                let _ = size_tx.send(size);
                let stall = route.upstream.settings.stall;
                let written =
                    crate::mirror::tee(&this.core, &epoch, &repo, &digest, source, client, stall).await?;
                this.metrics.mirror_fetched(route.upstream.name(), written);
                this.lifecycle.quotas.added(&repo, &digest, written);
                Ok(true)
            }
            .boxed()
        });
        if let Some((size, received)) = handed
            && let Ok(size) = size.await
        {
            self.metrics.mirror(&upstream, "miss");
            return Ok(Some((size, crate::mirror::received(received))));
        }
        match flight.await {
            Ok(_) => {
                self.metrics.mirror(&upstream, "miss");
                Ok(None)
            }
            Err(e) => {
                self.metrics.mirror(&upstream, "error");
                Err(crate::mirror::again(&e))
            }
        }
    }

    /// Where a mirrored repository's content comes from (`None` for a repository no
    /// upstream mirrors), with when each of its tags was last checked there (at most the
    /// first 1,000 tags).
    pub async fn cached_from(&self, repo: &Repository) -> Result<Option<crate::api::CachedFrom>> {
        let Some(route) = self.mirror.route(repo) else { return Ok(None) };
        let storage = self.core.storage();
        let prefix = crate::registry::keys::checks(repo);
        let mut checked = std::collections::BTreeMap::new();
        for key in storage.list_meta_page(&prefix, None, 1000).await? {
            let Some(secs) = self.read_secs(&key).await? else { continue };
            checked.insert(key[prefix.len()..].to_owned(), crate::clock::rfc3339_of(secs));
        }
        Ok(Some(crate::api::CachedFrom {
            upstream: route.upstream.name().to_owned(),
            url: route.upstream.settings.url.clone(),
            repository: route.remote.to_string(),
            checked,
        }))
    }

    /// Every upstream's settings (credentials only as whether there are some), its sync rules
    /// with when each last queued, and the sync jobs waiting.
    pub async fn upstreams(&self) -> Result<Vec<crate::api::UpstreamState>> {
        let storage = self.core.storage();
        // The queued sync jobs' repositories, each job read once.
        let mut queued = Vec::new();
        for key in storage.list_meta(crate::registry::keys::JOBS_PENDING).await? {
            if key.contains("/sync-")
                && let Some(bytes) = storage.get_meta(&key).await?
                && let Ok(crate::jobs::Job::Sync { repository, .. }) = serde_json::from_slice(&bytes)
            {
                queued.push(repository);
            }
        }
        let mut out = Vec::new();
        for upstream in self.mirror.upstreams() {
            let settings = &upstream.settings;
            let mut sync = Vec::new();
            for (n, rule) in settings.sync.iter().enumerate() {
                sync.push(crate::api::SyncState {
                    repository: rule.repository.to_string(),
                    tags: rule.tags.clone(),
                    every_seconds: rule.every.as_secs(),
                    last_queued: self
                        .read_secs(&crate::registry::keys::sync_planned(&settings.name, n))
                        .await?,
                });
            }
            let sync_pending = queued
                .iter()
                .filter(|r| self.mirror.route(r).is_some_and(|r| r.upstream.name() == settings.name))
                .count();
            out.push(crate::api::UpstreamState {
                name: settings.name.clone(),
                url: settings.url.clone(),
                prefix: settings.prefix.to_string(),
                hosts: settings.hosts.clone(),
                authenticated: !matches!(settings.credentials, wharf_client::Credentials::Anonymous),
                tag_ttl_seconds: settings.tag_ttl.as_secs(),
                allow_private: settings.allow_private,
                sync,
                sync_pending,
            });
        }
        Ok(out)
    }

    /// Queues the tags of every sync rule that is due (`all`: every rule) as jobs — one per
    /// tag, so a sync stopped midway resumes where it was — and returns how many. A rule is
    /// due `every` after it last queued (in any process over the storage).
    pub async fn plan_sync(&self, all: bool) -> Result<usize> {
        let now = crate::clock::now_secs();
        let mut queued = 0;
        for upstream in self.mirror.upstreams() {
            let settings = &upstream.settings;
            for (n, rule) in settings.sync.iter().enumerate() {
                let planned = crate::registry::keys::sync_planned(&settings.name, n);
                let last = self.read_secs(&planned).await?;
                if !all && last.is_some_and(|at| now.saturating_sub(at) < rule.every.as_secs()) {
                    continue;
                }
                let local: Repository = format!("{}/{}", settings.prefix, rule.repository).parse()?;
                let Some(route) = self.mirror.route(&local) else { continue };
                let tags = match route.tags().await {
                    Ok(tags) => tags,
                    Err(e) => {
                        tracing::warn!(upstream = settings.name, repository = %rule.repository, error = %e, "sync: the tag list could not be read");
                        continue;
                    }
                };
                let mut writes: Vec<wharf_store::Write> = tags
                    .iter()
                    .filter(|t| rule.copies(t))
                    .filter_map(|t| t.parse::<Tag>().ok())
                    .map(|tag| crate::jobs::Job::Sync { repository: local.clone(), tag, attempts: 0 }.write())
                    .collect();
                queued += writes.len();
                writes.push(wharf_store::Write::Set { key: planned, value: now.to_string().into() });
                self.core.storage().write_steps(vec![writes]).await?;
            }
        }
        if queued > 0 {
            self.queue.wake.notify_one();
        }
        Ok(queued)
    }

    /// Copies a mirrored tag here whole: checked at the upstream now, whatever its
    /// time-to-live, then every child and blob it names fetched unless held. A second run
    /// over an unchanged tag asks the upstream one `HEAD`.
    async fn sync_tag(&self, repo: &Repository, tag: &Tag) -> Result<()> {
        let Some(route) = self.mirror.route(repo) else { return Ok(()) };
        let reference = TagOrDigest::Tag(tag.clone());
        let (flight, _) = self.mirror.flights.join(&format!("manifest {repo}:{reference}"), || {
            let (this, route, repo, reference) =
                (self.clone(), route.clone(), repo.clone(), reference.clone());
            async move { this.fetch_manifest(&route, &repo, &reference).await }.boxed()
        });
        flight.await.map_err(|e| crate::mirror::again(&e))?;
        let mut manifests = vec![reference];
        while let Some(reference) = manifests.pop() {
            let stored = self.core.get_manifest(repo, &reference).await?;
            let manifest = Manifest::from_bytes(stored.bytes, stored.media_type.parse().ok().as_ref())?;
            if let Some(index) = manifest.as_index() {
                for child in &index.manifests {
                    let held = self.core.holds_manifest(repo, &child.digest).await?;
                    let child = TagOrDigest::Digest(child.digest.clone());
                    if !held {
                        let (flight, _) =
                            self.mirror.flights.join(&format!("manifest {repo}:{child}"), || {
                                let (this, route, repo, child) =
                                    (self.clone(), route.clone(), repo.clone(), child.clone());
                                async move { this.fetch_manifest(&route, &repo, &child).await }.boxed()
                            });
                        flight.await.map_err(|e| crate::mirror::again(&e))?;
                    }
                    manifests.push(child);
                }
            } else {
                for blob in manifest.references().filter(|d| !d.is_non_distributable()) {
                    self.hold_blob(&route, repo, &blob.digest).await?;
                }
            }
        }
        Ok(())
    }

    // Lifecycle.

    /// Collects garbage once (see [`lifecycle`](crate::lifecycle)): beside live servers on
    /// the same storage, or alone. [`Error::Busy`] when another collection holds the lease.
    /// Retention never removes an immutable tag of `[[versioning]]`.
    pub async fn collect_garbage(&self, options: &GcOptions) -> Result<GcReport> {
        let immutable = |repo: &Repository, tag: &str| self.versioning.immutable(repo, tag);
        let report =
            self.lifecycle.collect(&self.core, &self.search, &self.metrics, options, &immutable).await?;
        let removed = !report.manifests.is_empty() || !report.tags.is_empty() || !report.blobs.is_empty();
        if !report.dry_run && removed && !self.webhooks.is_empty() {
            let mut event = Event::new(EventKind::GarbageCollected, &Origin::current());
            event.detail = Some(serde_json::json!({
                "run": report.run,
                "manifests": report.manifests.len(),
                "tags": report.tags.len(),
                "blobs": report.blobs.len(),
                "bytesFreed": report.bytes_freed,
                "durationMs": report.duration_ms,
            }));
            self.record_events(vec![event]).await;
        }
        Ok(report)
    }

    /// The report of the last collection that removed anything or could have (not dry runs).
    pub async fn last_gc_report(&self) -> Result<Option<serde_json::Value>> {
        Lifecycle::last_report(&self.core).await
    }

    /// Scrubs the registry (beside live servers, or alone): re-hashes every blob — a corrupt
    /// one is reported and, with `quarantine`, moved out of sight — and checks every tag,
    /// revision and reference. Findings are looked at twice, so a push or delete that was
    /// in flight is not reported.
    pub async fn scrub(&self, quarantine: bool) -> Result<ScrubReport> {
        Scrubber::new(&self.core, &self.metrics).scrub(quarantine).await
    }

    /// Every quota with its usage (read fresh), also set in the metrics.
    pub async fn quota_usages(&self) -> Result<Vec<QuotaUsage>> {
        self.lifecycle.quotas.usages(&self.core, &self.metrics).await
    }
}

impl crate::jobs::Handler for Wharf {
    async fn run(&self, job: &crate::jobs::Job) -> Result<crate::jobs::Outcome> {
        match job {
            crate::jobs::Job::Inspect { repository, digest, .. } => {
                // Told of Wasm artifacts only (an image's layers are read too, to find a module).
                let mut told = false;
                let events = |record: &serde_json::Value| {
                    if self.webhooks.is_empty() || record["wasm"].as_bool() != Some(true) {
                        return Vec::new();
                    }
                    let mut event = Event::new(EventKind::InspectionFinished, &Origin::system());
                    event.read_wasm = true;
                    let writes =
                        self.webhooks.writes(vec![event.about(repository, Some(digest))], &self.metrics);
                    told = !writes.is_empty();
                    writes
                };
                self.classifier.inspect_stored(repository, digest, None, events).await?;
                if told {
                    self.queue.wake.notify_one();
                }
            }
            crate::jobs::Job::Sync { repository, tag, .. } => self.sync_tag(repository, tag).await?,
            crate::jobs::Job::Trust { repository, digest, .. } => {
                // Search finds it by who signed it, here and (by the stamp) in other processes.
                if let Some(summary) = self.trust.verify(&self.core, repository, digest).await? {
                    self.search.set_trust(repository.as_str(), digest.as_str(), &summary);
                    self.core.storage().write_steps(vec![vec![self.search.stamp_write()]]).await?;
                }
            }
            crate::jobs::Job::Deliver { stream, webhook, .. } => {
                return self.webhooks.deliver(&self.core, &self.metrics, stream, webhook.as_deref()).await;
            }
        }
        Ok(crate::jobs::Outcome::Done)
    }

    async fn give_up(&self, job: &crate::jobs::Job, why: &str) -> Result<()> {
        match job {
            crate::jobs::Job::Inspect { repository, digest, .. } => {
                self.classifier.inspect_stored(repository, digest, Some(why), |_| Vec::new()).await
            }
            crate::jobs::Job::Sync { repository, tag, .. } => {
                tracing::error!(%repository, %tag, why, "sync of a tag given up");
                Ok(())
            }
            crate::jobs::Job::Trust { repository, digest, .. } => {
                tracing::error!(%repository, %digest, why, "verifying signatures given up");
                Ok(())
            }
            crate::jobs::Job::Deliver { stream, webhook, .. } => {
                // Its events stay: the next event of the stream, or the periodic requeue, runs it again.
                tracing::error!(stream, webhook = webhook.as_deref(), why, "a webhook delivery run given up");
                Ok(())
            }
        }
    }

    async fn more(&self, job: &crate::jobs::Job) -> Result<bool> {
        match job {
            crate::jobs::Job::Deliver { stream, webhook, .. } => {
                self.webhooks.waiting(&self.core, stream, webhook.as_deref()).await
            }
            crate::jobs::Job::Trust { repository, digest, .. } => {
                self.trust.changed_since_verified(&self.core, repository, digest).await
            }
            _ => Ok(false),
        }
    }
}
