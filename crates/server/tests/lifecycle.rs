//! Storage lifecycle: garbage collection (exact, and safe beside pushes in one and in two
//! processes), retention, quotas, scrub.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use wharf_server::Wharf;
use wharf_server::lifecycle::GcOptions;
use wharf_store::{BlobStore as _, Storage};
use wharf_types::{Digest, Repository, TagOrDigest};

use crate::common::image_manifest;

fn now_options() -> GcOptions {
    GcOptions::default().with_grace(Duration::ZERO)
}

/// A blob of `size` bytes, different for every `seed`.
fn blob(seed: u64, size: usize) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// An image pushed through the registry: its manifest digest, size and blobs.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    pub(crate) repo: Repository,
    pub(crate) tag: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) blobs: Vec<(Digest, u64)>,
}

pub(crate) async fn push_image(
    registry: &Wharf,
    repo: &str,
    tag: &str,
    config_seed: u64,
    layers: &[(u64, usize)],
) -> Image {
    let repo: Repository = repo.parse().expect("repo");
    let config = Bytes::from(format!(r#"{{"architecture":"amd64","os":"linux","seed":{config_seed}}}"#));
    let config_digest = Digest::sha256(&config);
    registry.put_blob(&repo, &config_digest, wharf_store::single(config.clone())).await.expect("config");
    let mut blobs = vec![(config_digest.clone(), config.len() as u64)];
    let mut descriptors = Vec::new();
    for &(seed, size) in layers {
        let data = blob(seed, size);
        let d = Digest::sha256(&data);
        registry.put_blob(&repo, &d, wharf_store::single(data)).await.expect("layer");
        blobs.push((d.clone(), size as u64));
        descriptors.push((d, size));
    }
    let manifest = image_manifest(&config_digest, config.len(), &descriptors, "");
    let reference: TagOrDigest = tag.parse().expect("tag");
    let put = registry
        .put_manifest(&repo, &reference, None, Bytes::from(manifest.clone()), &[])
        .await
        .expect("manifest");
    Image { repo, tag: tag.to_owned(), digest: put.digest, size: manifest.len() as u64, blobs }
}

/// Pulls the image by tag and verifies every digest.
pub(crate) async fn pull_verified(registry: &Wharf, image: &Image) {
    let got =
        registry.get_manifest(&image.repo, &image.tag.parse().expect("tag")).await.expect("manifest by tag");
    assert_eq!(got.digest, image.digest);
    assert_eq!(Digest::sha256(&got.bytes), image.digest);
    for (d, size) in &image.blobs {
        let bytes = registry.get_blob(&image.repo, d, None).await.expect("blob").bytes().await.expect("read");
        assert_eq!(
            (Digest::sha256(&bytes), bytes.len() as u64),
            (d.clone(), *size),
            "{} in {}",
            d,
            image.repo
        );
    }
}

async fn stored(storage: &Arc<dyn Storage>) -> BTreeSet<Digest> {
    storage.list().try_collect().await.expect("list")
}

/// 20 images sharing layers in different patterns over three repositories; half deleted;
/// the collection frees exactly the blobs only the deleted ones referenced; then everything.
async fn exactness(storage: Arc<dyn Storage>) {
    let registry = Wharf::new(Arc::clone(&storage));
    let repos = ["team/app", "team/app/cache", "other"];
    let mut images = Vec::new();
    for i in 0..20u64 {
        // Layers: one shared by all, one per parity, one per repository, one of its own,
        // and a neighbour's own layer (shared with the image before it).
        let repo = repos[(i % 3) as usize];
        let mut layers =
            vec![(1000, 3000), (2000 + i % 2, 1500), (3000 + i % 3, 700), (4000 + i, 900 + i as usize)];
        if i > 0 {
            layers.push((4000 + i - 1, 900 + i as usize - 1));
        }
        images.push(push_image(&registry, repo, &format!("v{i}"), i, &layers).await);
    }
    registry.run_pending_jobs().await.expect("jobs");
    let before = stored(&storage).await;
    let (deleted, kept): (Vec<Image>, Vec<Image>) = images
        .into_iter()
        .partition(|im| im.tag.trim_start_matches('v').parse::<u64>().expect("a number") % 2 == 1);
    for image in &deleted {
        registry
            .delete_manifest(&image.repo, &TagOrDigest::Digest(image.digest.clone()))
            .await
            .expect("delete");
    }
    // Expected: every blob or manifest no kept image names.
    let live: BTreeSet<Digest> = kept
        .iter()
        .flat_map(|im| im.blobs.iter().map(|(d, _)| d.clone()).chain([im.digest.clone()]))
        .collect();
    let mut sizes: BTreeMap<Digest, u64> = BTreeMap::new();
    for image in &deleted {
        sizes.extend(image.blobs.iter().cloned());
        sizes.insert(image.digest.clone(), image.size);
    }
    let expected: BTreeMap<Digest, u64> = sizes.into_iter().filter(|(d, _)| !live.contains(d)).collect();
    assert!(expected.len() > 10, "the patterns leave blobs only deleted images used");

    let dry = registry.collect_garbage(&now_options().with_dry_run(true)).await.expect("dry run");
    let report = registry.collect_garbage(&now_options()).await.expect("gc");
    let freed: BTreeMap<Digest, u64> =
        report.blobs.iter().map(|b| (b.digest.parse().expect("digest"), b.size)).collect();
    assert_eq!(freed, expected, "exactly the blobs and manifests only deleted images referenced");
    assert_eq!(report.bytes_freed, expected.values().sum::<u64>());
    eprintln!(
        "exactness: {} objects stored, {} images deleted, {} objects freed ({} bytes), {} kept",
        before.len(),
        deleted.len(),
        freed.len(),
        report.bytes_freed,
        report.blobs_kept
    );
    assert_eq!(
        (dry.blobs.clone(), dry.bytes_freed),
        (report.blobs.clone(), report.bytes_freed),
        "the dry run said the same"
    );
    let after = stored(&storage).await;
    assert_eq!(after, before.difference(&expected.keys().cloned().collect()).cloned().collect());
    for image in &kept {
        pull_verified(&registry, image).await;
    }
    // A second run finds nothing.
    let again = registry.collect_garbage(&now_options()).await.expect("gc again");
    assert!(again.blobs.is_empty() && again.links == 0, "{again:?}");

    for image in &kept {
        registry
            .delete_manifest(&image.repo, &TagOrDigest::Digest(image.digest.clone()))
            .await
            .expect("delete");
    }
    let report = registry.collect_garbage(&now_options()).await.expect("gc all");
    assert!(stored(&storage).await.is_empty(), "zero blobs remain; freed {}", report.bytes_freed);
}

#[tokio::test]
async fn exact_on_memory() {
    exactness(Arc::new(wharf_store::MemoryStore::new())).await;
}

#[tokio::test]
async fn exact_on_fs() {
    let dir = tempfile::tempdir().expect("dir");
    exactness(Arc::new(wharf_store::FsStore::open(dir.path()).await.expect("fs"))).await;
}

/// What the writers of the concurrency test had acknowledged and not deleted.
#[derive(Default)]
struct Model {
    images: Vec<Image>,
}

/// A tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Pushes an image the way clients do: a blob already in the repository is not uploaded
/// again (HEAD, then skip). `None` when the registry refused (not acknowledged).
async fn push_like_a_client(
    registry: &Wharf,
    repo: &Repository,
    tag: &str,
    config_seed: u64,
    layers: &[(u64, usize)],
) -> Option<Image> {
    let config = Bytes::from(format!(r#"{{"architecture":"amd64","os":"linux","seed":{config_seed}}}"#));
    let mut parts = vec![(config.clone(), Digest::sha256(&config))];
    for &(seed, size) in layers {
        let data = blob(seed, size);
        let d = Digest::sha256(&data);
        parts.push((data, d));
    }
    let mut blobs = Vec::new();
    for (data, d) in &parts {
        if registry.stat_blob(repo, d).await.ok()?.is_none() {
            registry.put_blob(repo, d, wharf_store::single(data.clone())).await.ok()?;
        }
        blobs.push((d.clone(), data.len() as u64));
    }
    let descriptors: Vec<(Digest, usize)> =
        blobs[1..].iter().map(|(d, s)| (d.clone(), *s as usize)).collect();
    let manifest = image_manifest(&blobs[0].0, config.len(), &descriptors, "");
    let reference: TagOrDigest = tag.parse().expect("tag");
    let put = registry.put_manifest(repo, &reference, None, Bytes::from(manifest.clone()), &[]).await.ok()?;
    Some(Image {
        repo: repo.clone(),
        tag: tag.to_owned(),
        digest: put.digest,
        size: manifest.len() as u64,
        blobs,
    })
}

/// Writers push (sharing a small pool of layers, skipping what the repository has), mount,
/// re-push and delete, through `writers` (registries over their own store instances, as
/// processes are), while a collector over yet another instance runs in a loop with a zero
/// grace window. Returns the images acknowledged and not deleted that no longer pull whole,
/// the number of writer operations and of collections.
async fn race(
    writers: Vec<Wharf>,
    collectors: Vec<Wharf>,
    reader: Wharf,
    ops: usize,
) -> (Vec<String>, usize, usize) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two collectors in a loop, as two processes with periodic collection would: one holds
    // the lease at a time, the other is told it is busy.
    let gcs: Vec<_> = collectors
        .into_iter()
        .map(|collector| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut runs = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match collector.collect_garbage(&now_options()).await {
                        Ok(_) => runs += 1,
                        Err(wharf_server::Error::Busy(_)) => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(e) => panic!("collection failed: {e}"),
                    }
                }
                runs
            })
        })
        .collect();
    let model = Arc::new(tokio::sync::Mutex::new(Model::default()));
    let repos: Vec<Repository> = ["a", "b/c"].iter().map(|r| r.parse().expect("repo")).collect();
    let mut tasks = Vec::new();
    for (w, registry) in writers.into_iter().enumerate() {
        let (model, repos) = (Arc::clone(&model), repos.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x5EED + w as u64);
            let mut done = 0;
            for n in 0..ops {
                let repo = &repos[rng.below(2) as usize];
                match rng.below(10) {
                    // A new image over shared layers (and sometimes one of its own).
                    0..=3 => {
                        let mut layers = vec![(rng.below(6), 2048), (rng.below(6) + 10, 512)];
                        if rng.below(2) == 0 {
                            layers.push((1_000_000 + (w * ops + n) as u64, 256));
                        }
                        let seed = (w * ops + n) as u64;
                        if let Some(image) =
                            push_like_a_client(&registry, repo, &format!("w{w}-{n}"), seed, &layers).await
                        {
                            model.lock().await.images.push(image);
                        }
                    }
                    // Delete one of the acknowledged images (by digest).
                    4..=6 => {
                        let mut model = model.lock().await;
                        if model.images.is_empty() {
                            continue;
                        }
                        let victim = model.images[rng.below(model.images.len() as u64) as usize].clone();
                        if registry
                            .delete_manifest(&victim.repo, &TagOrDigest::Digest(victim.digest.clone()))
                            .await
                            .is_ok()
                        {
                            model.images.retain(|im| !(im.repo == victim.repo && im.digest == victim.digest));
                        }
                    }
                    // Re-push an acknowledged image under a new tag (the model locked, so that
                    // a delete of the same manifest is not concurrent with it: that race is
                    // last-writer-wins by design and not the collector's).
                    7 | 8 => {
                        let mut model = model.lock().await;
                        if model.images.is_empty() {
                            continue;
                        }
                        let image = model.images[rng.below(model.images.len() as u64) as usize].clone();
                        let Ok(got) = registry
                            .get_manifest(&image.repo, &TagOrDigest::Digest(image.digest.clone()))
                            .await
                        else {
                            continue;
                        };
                        let tag = format!("again{w}-{n}");
                        if registry
                            .put_manifest(&image.repo, &tag.parse().expect("tag"), None, got.bytes, &[])
                            .await
                            .is_ok()
                        {
                            model.images.push(Image { tag, ..image });
                        }
                    }
                    // Mount an acknowledged image's blobs into the other repository and push it there.
                    _ => {
                        let mut model = model.lock().await;
                        if model.images.is_empty() {
                            continue;
                        }
                        let image = model.images[rng.below(model.images.len() as u64) as usize].clone();
                        let other =
                            repos.iter().find(|r| **r != image.repo).expect("two repositories").clone();
                        let mut mounted = true;
                        for (d, _) in &image.blobs {
                            mounted &= registry.mount(&other, d, Some(&image.repo)).await.unwrap_or(false);
                        }
                        let Ok(got) = registry
                            .get_manifest(&image.repo, &TagOrDigest::Digest(image.digest.clone()))
                            .await
                        else {
                            continue;
                        };
                        let tag = format!("mounted{w}-{n}");
                        if mounted
                            && registry
                                .put_manifest(&other, &tag.parse().expect("tag"), None, got.bytes, &[])
                                .await
                                .is_ok()
                        {
                            model.images.push(Image { repo: other, tag, ..image });
                        }
                    }
                }
                done += 1;
            }
            done
        }));
    }
    let mut operations = 0;
    for task in tasks {
        operations += task.await.expect("writer");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut runs = 0;
    for gc in gcs {
        runs += gc.await.expect("collector");
    }
    let mut broken = Vec::new();
    for image in &model.lock().await.images {
        let whole = async {
            let got =
                reader.get_manifest(&image.repo, &TagOrDigest::Digest(image.digest.clone())).await.ok()?;
            (Digest::sha256(&got.bytes) == image.digest).then_some(())?;
            for (d, size) in &image.blobs {
                let bytes = reader.get_blob(&image.repo, d, None).await.ok()?.bytes().await.ok()?;
                (Digest::sha256(&bytes) == *d && bytes.len() as u64 == *size).then_some(())?;
            }
            Some(())
        };
        if whole.await.is_none() {
            broken.push(format!("{}:{} ({})", image.repo, image.tag, image.digest));
        }
    }
    (broken, operations, runs)
}

/// `WHARF_GC_NO_FENCE=1` runs the race without the writers' confirmation: it then fails
/// (acknowledged images lost), which shows what the fence is for.
fn fence() -> bool {
    std::env::var("WHARF_GC_NO_FENCE").map_or(true, |v| v != "1")
}

async fn fs_registries(dir: &std::path::Path, n: usize, fence: bool) -> Vec<Wharf> {
    let mut out = Vec::new();
    for _ in 0..n {
        let store = wharf_store::FsStore::open(dir).await.expect("fs");
        out.push(Wharf::new(Arc::new(store)).with_gc_fence(fence));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_survive_collections_on_fs() {
    let dir = tempfile::tempdir().expect("dir");
    let mut registries = fs_registries(dir.path(), 5, fence()).await;
    let reader = registries.pop().expect("reader");
    let collectors = vec![registries.pop().expect("collector"), registries.pop().expect("collector")];
    let (broken, operations, runs) = race(registries, collectors, reader, 400).await;
    eprintln!("fs: {operations} writer operations, {runs} collections, {} broken", broken.len());
    assert!(broken.is_empty(), "acknowledged images lost: {broken:?}");
    assert!(runs >= 3, "the collector ran during the writes ({runs})");
}

/// A storage that runs a hook (once, when armed) just before a batch that writes a manifest
/// revision: the moment between a manifest PUT's checks and its commit.
#[derive(Debug)]
struct Paused {
    inner: Arc<dyn Storage>,
    hook: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<()>>>>,
}

#[async_trait::async_trait]
impl wharf_store::BlobStore for Paused {
    async fn stat(&self, d: &Digest) -> wharf_store::Result<Option<wharf_store::BlobInfo>> {
        self.inner.stat(d).await
    }
    async fn get(
        &self,
        d: &Digest,
        r: Option<std::ops::Range<u64>>,
    ) -> wharf_store::Result<wharf_store::GetResult> {
        self.inner.get(d, r).await
    }
    async fn put(
        &self,
        d: &Digest,
        data: wharf_store::ByteStream,
    ) -> wharf_store::Result<wharf_store::BlobInfo> {
        self.inner.put(d, data).await
    }
    async fn delete(&self, d: &Digest) -> wharf_store::Result<bool> {
        self.inner.delete(d).await
    }
    async fn modified(&self, d: &Digest) -> wharf_store::Result<Option<std::time::SystemTime>> {
        self.inner.modified(d).await
    }
    async fn quarantine(&self, d: &Digest) -> wharf_store::Result<bool> {
        self.inner.quarantine(d).await
    }
    fn list(&self) -> futures_util::stream::BoxStream<'_, wharf_store::Result<Digest>> {
        self.inner.list()
    }
    async fn begin(&self) -> wharf_store::Result<wharf_store::UploadId> {
        self.inner.begin().await
    }
    async fn append(
        &self,
        id: &wharf_store::UploadId,
        o: u64,
        data: wharf_store::ByteStream,
    ) -> wharf_store::Result<u64> {
        self.inner.append(id, o, data).await
    }
    async fn status(&self, id: &wharf_store::UploadId) -> wharf_store::Result<u64> {
        self.inner.status(id).await
    }
    async fn commit(
        &self,
        id: &wharf_store::UploadId,
        d: &Digest,
    ) -> wharf_store::Result<wharf_store::BlobInfo> {
        self.inner.commit(id, d).await
    }
    async fn abort(&self, id: &wharf_store::UploadId) -> wharf_store::Result<()> {
        self.inner.abort(id).await
    }
}

#[async_trait::async_trait]
impl wharf_store::MetaStore for Paused {
    async fn get_meta(&self, k: &str) -> wharf_store::Result<Option<Bytes>> {
        self.inner.get_meta(k).await
    }
    async fn set_meta(&self, k: &str, v: Bytes) -> wharf_store::Result<()> {
        self.inner.set_meta(k, v).await
    }
    async fn remove_meta(&self, k: &str) -> wharf_store::Result<bool> {
        self.inner.remove_meta(k).await
    }
    async fn list_meta(&self, p: &str) -> wharf_store::Result<Vec<String>> {
        self.inner.list_meta(p).await
    }
    async fn write_steps(&self, steps: Vec<Vec<wharf_store::Write>>) -> wharf_store::Result<()> {
        let commits_a_manifest = steps.iter().flatten().any(
            |w| matches!(w, wharf_store::Write::Set { key, .. } if key.contains("/_manifests/revisions/")),
        );
        let hook = if commits_a_manifest { self.hook.lock().expect("lock").take() } else { None };
        if let Some(hook) = hook {
            let (done, wait) = tokio::sync::oneshot::channel();
            hook.send(done).expect("the test listens");
            wait.await.expect("the test answers");
        }
        self.inner.write_steps(steps).await
    }
}

/// The interleaving the fence exists for, made to happen: a manifest PUT has checked that its
/// layer is linked, then a whole collection removes that layer (an earlier image, deleted,
/// was its only user), then the PUT commits. With the fence, the PUT is refused
/// (`MANIFEST_BLOB_UNKNOWN`) and leaves no tag; without it, it is acknowledged and the image
/// does not pull.
async fn push_during_a_collection(fence: bool) -> (Result<(), wharf_server::Error>, bool) {
    let inner: Arc<dyn Storage> = Arc::new(wharf_store::MemoryStore::new());
    let (arm, armed) = tokio::sync::oneshot::channel();
    let paused = Arc::new(Paused { inner: Arc::clone(&inner), hook: std::sync::Mutex::new(None) });
    let writer = Wharf::new(Arc::clone(&paused) as Arc<dyn Storage>).with_gc_fence(fence);
    let collector = Wharf::new(Arc::clone(&inner));
    let first = push_image(&writer, "app", "old", 1, &[(7, 4096)]).await;
    writer.delete_manifest(&first.repo, &TagOrDigest::Digest(first.digest.clone())).await.expect("delete");
    *paused.hook.lock().expect("lock") = Some(arm);
    let collection = tokio::spawn(async move {
        let done: tokio::sync::oneshot::Sender<()> = armed.await.expect("armed");
        let report = collector.collect_garbage(&now_options()).await.expect("gc");
        assert!(report.blobs.iter().any(|b| b.size == 4096), "the collection removed the layer: {report:?}");
        done.send(()).expect("answer");
    });
    // The same layer, already in the repository: a client skips its upload.
    let repo: Repository = "app".parse().expect("repo");
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux","seed":2}"#);
    let config_digest = Digest::sha256(&config);
    let layer = Digest::sha256(&blob(7, 4096));
    assert!(writer.stat_blob(&repo, &layer).await.expect("head").is_some());
    // The config is pushed before the collection (inside the grace window it would be kept
    // anyway; here it is referenced by the time the collection looks again).
    writer.put_blob(&repo, &config_digest, wharf_store::single(config.clone())).await.expect("config");
    let manifest = image_manifest(&config_digest, config.len(), &[(layer, 4096)], "");
    let put =
        writer.put_manifest(&repo, &"new".parse().expect("tag"), None, Bytes::from(manifest), &[]).await;
    collection.await.expect("collection");
    let pulls = match writer.get_manifest(&repo, &"new".parse().expect("tag")).await {
        Ok(m) => {
            writer.get_blob(&repo, &Digest::sha256(&blob(7, 4096)), None).await.is_ok()
                && Digest::sha256(&m.bytes) == m.digest
        }
        Err(_) => false,
    };
    (put.map(drop), pulls)
}

#[tokio::test]
async fn the_fence_refuses_a_push_whose_layer_a_collection_removed() {
    let (put, pulls) = push_during_a_collection(true).await;
    assert!(matches!(put, Err(wharf_server::Error::ManifestBlobUnknown(_))), "{put:?}");
    assert!(!pulls, "nothing acknowledged, nothing tagged");
    let (put, pulls) = push_during_a_collection(false).await;
    assert!(
        put.is_ok() && !pulls,
        "without the fence the push is acknowledged and broken: {put:?}, pulls {pulls}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_survive_collections_on_garage() {
    let Some(url) = crate::common::s3_storage("concurrent_pushes_survive_collections_on_garage", "gc-race")
    else {
        return;
    };
    let url = url.trim_start_matches("s3:").to_owned();
    let url = if url.starts_with("s3://") { url } else { format!("s3:{url}") };
    let mut registries: Vec<Wharf> = (0..5)
        .map(|_| {
            Wharf::new(Arc::new(wharf_store::S3Store::from_url(&url).expect("S3 store")))
                .with_gc_fence(fence())
        })
        .collect();
    let reader = registries.pop().expect("reader");
    let collectors = vec![registries.pop().expect("collector"), registries.pop().expect("collector")];
    let started = std::time::Instant::now();
    let (broken, operations, runs) = race(registries, collectors, reader, 400).await;
    eprintln!(
        "garage: {operations} writer operations, {runs} collections, {} broken, {:.1} s",
        broken.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(broken.is_empty(), "acknowledged images lost: {broken:?}");
    assert!(runs >= 2, "the collectors ran during the writes ({runs})");
}

/// Sets when a tag was pushed (the record's second line), to age tags in a test.
async fn age_tag(storage: &Arc<dyn Storage>, repo: &str, tag: &str, pushed: u64) {
    let key = format!("repositories/{repo}/_manifests/tags/{tag}");
    let record = storage.get_meta(&key).await.expect("get").expect("tag record");
    let head = String::from_utf8(record.to_vec()).expect("text");
    let head = head.split('\n').next().expect("line").to_owned();
    storage.set_meta(&key, format!("{head}\n{pushed}").into()).await.expect("set");
}

#[tokio::test]
async fn retention_dry_run_and_real_run_agree() {
    use wharf_server::lifecycle::retention::RetentionConfig;
    let storage: Arc<dyn Storage> = Arc::new(wharf_store::MemoryStore::new());
    let config: RetentionConfig = toml::from_str(
        r#"
        repositories = ["ci/**"]
        keep_last = 2
        keep_tags = ["v*"]
        keep_pulled_within = "1h"
        "#,
    )
    .expect("rule");
    let lifecycle = wharf_server::lifecycle::Lifecycle::from_config(
        &wharf_server::lifecycle::GcConfig::default(),
        &[config],
        &[],
    )
    .expect("lifecycle");
    let registry = Wharf::new(Arc::clone(&storage)).with_lifecycle(lifecycle);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let mut images = BTreeMap::new();
    // Six builds, one a day: b1 oldest … b6 newest; v1 a release; b2 pulled lately.
    for (i, tag) in ["b1", "b2", "b3", "b4", "b5", "b6", "v1"].iter().enumerate() {
        let image =
            push_image(&registry, "ci/app", tag, 100 + i as u64, &[(500 + i as u64, 1000), (999, 2000)])
                .await;
        age_tag(&storage, "ci/app", tag, now - 86_400 * (10 - i as u64)).await;
        images.insert(*tag, image);
    }
    registry
        .get_manifest(&"ci/app".parse().expect("repo"), &"b2".parse().expect("tag"))
        .await
        .expect("pull b2");
    // A signature of b3 (untagged, its subject goes) and of b6 (stays with it).
    let referrer = |subject: &Image, seed: u64| {
        let config = Bytes::from(format!("{{\"sig\":{seed}}}"));
        (
            config.clone(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sig","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}}}"#,
                Digest::sha256(&config),
                config.len(),
                subject.digest,
                subject.size
            ),
        )
    };
    let repo: Repository = "ci/app".parse().expect("repo");
    let mut signatures = Vec::new();
    for (subject, seed) in [("b3", 1), ("b6", 2)] {
        let (config, manifest) = referrer(&images[subject], seed);
        registry
            .put_blob(&repo, &Digest::sha256(&config), wharf_store::single(config))
            .await
            .expect("sig config");
        let digest = Digest::sha256(manifest.as_bytes());
        registry
            .put_manifest(&repo, &TagOrDigest::Digest(digest.clone()), None, manifest.into(), &[])
            .await
            .expect("signature");
        signatures.push(digest);
    }
    // An index of b3 and b4, kept by its name (`v*`), keeps them (and b3's signature) alive.
    let child = |tag: &str| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}}"#,
            images[tag].digest, images[tag].size
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
        child("b3"),
        child("b4")
    );
    registry
        .put_manifest(&repo, &"v-all".parse().expect("tag"), None, index.into(), &[])
        .await
        .expect("index");
    age_tag(&storage, "ci/app", "v-all", now - 86_400 * 20).await;
    // The same rule does not touch another repository.
    let prod = push_image(&registry, "prod/app", "b1", 200, &[(999, 2000)]).await;
    age_tag(&storage, "prod/app", "b1", now - 86_400 * 30).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the pull is recorded in the background

    let dry = registry.collect_garbage(&now_options().with_dry_run(true)).await.expect("dry run");
    let real = registry.collect_garbage(&now_options()).await.expect("run");
    let tags =
        |r: &wharf_server::lifecycle::GcReport| r.tags.iter().map(|t| t.tag.clone()).collect::<Vec<_>>();
    assert_eq!(
        tags(&real),
        ["b1", "b3", "b4", "b5"],
        "kept: the last two pushed (v1, b6), v1 by name, b2 (pulled)"
    );
    assert_eq!(tags(&dry), tags(&real));
    let manifests = |r: &wharf_server::lifecycle::GcReport| {
        r.manifests.iter().map(|m| m.digest.clone()).collect::<BTreeSet<_>>()
    };
    let expected: BTreeSet<String> = ["b1", "b5"].iter().map(|t| images[t].digest.to_string()).collect();
    assert_eq!(manifests(&real), expected, "the untagged images, but not the index's children");
    assert_eq!(manifests(&dry), manifests(&real));
    assert_eq!(dry.blobs, real.blobs, "the dry run listed exactly what went");
    assert!(!real.blobs.is_empty());
    for tag in ["b2", "b6", "v1"] {
        pull_verified(&registry, &images[tag]).await;
    }
    for child in ["b3", "b4"] {
        let by_digest = Image { tag: images[child].digest.to_string(), ..images[child].clone() };
        pull_verified(&registry, &by_digest).await;
    }
    let sigs = registry.referrers(&repo, &images["b3"].digest, None).await.expect("referrers");
    assert_eq!(sigs.manifests.len(), 1, "a signature of an index's child stays");
    // Without the index, b3 and b4 go, and with b3 its signature.
    let index_digest = registry.head_manifest(&repo, &"v-all".parse().expect("tag")).await.expect("index").0;
    registry.delete_manifest(&repo, &TagOrDigest::Digest(index_digest)).await.expect("delete index");
    let after = registry.collect_garbage(&now_options()).await.expect("run");
    let mut expected: BTreeSet<String> = ["b3", "b4"].iter().map(|t| images[t].digest.to_string()).collect();
    expected.insert(signatures[0].to_string());
    assert_eq!(manifests(&after), expected);
    pull_verified(&registry, &prod).await;
    let sigs = registry.referrers(&repo, &images["b6"].digest, None).await.expect("referrers");
    assert_eq!(sigs.manifests.len(), 1, "the signature of a kept image stays");
}

#[tokio::test]
async fn retention_leaves_immutable_tags() {
    use wharf_server::lifecycle::retention::RetentionConfig;
    let storage: Arc<dyn Storage> = Arc::new(wharf_store::MemoryStore::new());
    let rule: RetentionConfig = toml::from_str("repositories = [\"rel/**\"]\nkeep_last = 1").expect("rule");
    let lifecycle = wharf_server::lifecycle::Lifecycle::from_config(
        &wharf_server::lifecycle::GcConfig::default(),
        &[rule],
        &[],
    )
    .expect("lifecycle");
    let file = wharf_server::config::FileConfig::parse(
        "[[versioning]]\nname = \"releases\"\nrepositories = [\"rel/**\"]\nimmutable_tags = [\"semver\", \"stable-*\"]\n",
    )
    .expect("config");
    let registry = Wharf::new(Arc::clone(&storage))
        .with_lifecycle(lifecycle)
        .with_versioning(file.versioning().expect("versioning"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let mut images = BTreeMap::new();
    for (i, tag) in ["1.0.0", "nightly-1", "stable-1", "1.1.0", "nightly-2", "nightly-3"].iter().enumerate() {
        images.insert(
            *tag,
            push_image(&registry, "rel/app", tag, 300 + i as u64, &[(700 + i as u64, 500)]).await,
        );
        age_tag(&storage, "rel/app", tag, now - 86_400 * (10 - i as u64)).await;
    }
    let report = registry.collect_garbage(&now_options()).await.expect("run");
    let removed: Vec<String> = report.tags.iter().map(|t| t.tag.clone()).collect();
    assert_eq!(removed, ["nightly-1", "nightly-2"], "keep_last keeps nightly-3; the immutable tags stay");
    for tag in ["1.0.0", "stable-1", "1.1.0", "nightly-3"] {
        pull_verified(&registry, &images[tag]).await;
    }
}

#[tokio::test]
async fn a_quota_refusal_stores_nothing() {
    use wharf_server::lifecycle::quota::QuotaConfig;
    let dir = tempfile::tempdir().expect("dir");
    let storage: Arc<dyn Storage> = Arc::new(wharf_store::FsStore::open(dir.path()).await.expect("fs"));
    let quota: QuotaConfig =
        toml::from_str("repositories = [\"team/**\"]\nmax_bytes = \"10KB\"").expect("quota");
    let lifecycle = wharf_server::lifecycle::Lifecycle::from_config(
        &wharf_server::lifecycle::GcConfig::default(),
        &[],
        &[quota],
    )
    .expect("lifecycle");
    let reg = crate::common::Reg::serve(Wharf::new(Arc::clone(&storage)).with_lifecycle(lifecycle)).await;
    let first = blob(1, 6000);
    reg.push_blob("team/app", &first).await;
    // The same blob again, and in another repository of the team: counted once.
    reg.push_blob("team/app", &first).await;
    let mount = reg
        .req(
            reqwest::Method::POST,
            &format!("/v2/team/other/blobs/uploads/?mount={}&from=team/app", Digest::sha256(&first)),
        )
        .send()
        .await
        .expect("mount");
    assert_eq!(mount.status(), reqwest::StatusCode::CREATED);
    let second = blob(2, 6000);
    let d2 = Digest::sha256(&second);
    let refused = |r: reqwest::Response| async move {
        assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["errors"][0]["code"], "DENIED");
        let message = body["errors"][0]["message"].as_str().expect("message").to_owned();
        assert!(message.contains("6000 bytes used of 10000"), "{message}");
    };
    // Monolithic.
    let r = reg
        .req(reqwest::Method::POST, &format!("/v2/team/app/blobs/uploads/?digest={d2}"))
        .body(second.to_vec())
        .send()
        .await
        .expect("send");
    refused(r).await;
    // Chunked: a chunk within the room, then one over it.
    let r = reg.req(reqwest::Method::POST, "/v2/team/app/blobs/uploads/").send().await.expect("start");
    let location = crate::common::header(&r, "location").expect("location").to_owned();
    let r = reg
        .req(reqwest::Method::PATCH, &location)
        .header("Content-Range", "0-2999")
        .body(second[..3000].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let location2 = crate::common::header(&r, "location").expect("location").to_owned();
    let r = reg
        .req(reqwest::Method::PATCH, &location2)
        .header("Content-Range", "3000-5999")
        .body(second[3000..].to_vec())
        .send()
        .await
        .expect("patch");
    refused(r).await;
    assert_eq!(
        reg.req(reqwest::Method::GET, &location2).send().await.expect("status").status(),
        reqwest::StatusCode::NOT_FOUND,
        "the session went"
    );
    // A session completed by PUT.
    let r = reg.req(reqwest::Method::POST, "/v2/team/app/blobs/uploads/").send().await.expect("start");
    let location = crate::common::header(&r, "location").expect("location").to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = reg
        .req(reqwest::Method::PUT, &format!("{location}{sep}digest={d2}"))
        .body(second.to_vec())
        .send()
        .await
        .expect("put");
    refused(r).await;
    // Mounting it from outside the team.
    reg.push_blob("elsewhere", &second).await;
    let r = reg
        .req(reqwest::Method::POST, &format!("/v2/team/app/blobs/uploads/?mount={d2}&from=elsewhere"))
        .send()
        .await
        .expect("mount");
    refused(r).await;
    // Nothing of the refused pushes is anywhere in the team, and no bytes lie about.
    assert_eq!(
        reg.req(reqwest::Method::HEAD, &format!("/v2/team/app/blobs/{d2}"))
            .send()
            .await
            .expect("head")
            .status(),
        reqwest::StatusCode::NOT_FOUND
    );
    for sub in ["tmp", "uploads"] {
        let left: Vec<_> = std::fs::read_dir(dir.path().join(sub)).map(Iterator::collect).unwrap_or_default();
        assert!(left.is_empty(), "{sub}/ holds {left:?}");
    }
    // Usage in the API and the metrics.
    let usage: serde_json::Value = reg
        .req(reqwest::Method::GET, "/v2/_wharf/quotas")
        .send()
        .await
        .expect("quotas")
        .json()
        .await
        .expect("json");
    assert_eq!(usage["quotas"][0]["usageBytes"], 6000);
    assert_eq!(usage["quotas"][0]["limitBytes"], 10000);
    let metrics =
        reg.req(reqwest::Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("wharf_quota_usage_bytes{quota=\"team/**\"} 6000"), "{metrics}");
    reg.stop().await;
}

#[tokio::test]
async fn scrub_finds_a_flipped_byte_and_a_removed_blob() {
    let dir = tempfile::tempdir().expect("dir");
    let storage: Arc<dyn Storage> = Arc::new(wharf_store::FsStore::open(dir.path()).await.expect("fs"));
    let registry = Wharf::new(Arc::clone(&storage));
    let a = push_image(&registry, "app", "a", 1, &[(11, 5000)]).await;
    let b = push_image(&registry, "app", "b", 2, &[(12, 5000)]).await;
    let clean = registry.scrub(true).await.expect("scrub");
    assert!(clean.damage.is_empty(), "{:?}", clean.damage);
    assert_eq!(clean.blobs, 6);
    let path = |d: &Digest| {
        dir.path().join("blobs").join(d.algorithm().as_str()).join(&d.encoded()[..2]).join(d.encoded())
    };
    // A flipped byte in a's layer; b's layer removed by hand.
    let flipped = &a.blobs[1].0;
    let mut bytes = std::fs::read(path(flipped)).expect("read");
    bytes[100] ^= 0x20;
    std::fs::write(path(flipped), bytes).expect("write");
    let removed = &b.blobs[1].0;
    std::fs::remove_file(path(removed)).expect("remove");
    let report = registry.scrub(true).await.expect("scrub");
    let kinds: BTreeSet<(String, String)> =
        report.damage.iter().map(|d| (d.kind.clone(), d.digest.clone())).collect();
    assert!(kinds.contains(&("corrupt-blob".into(), flipped.to_string())), "{kinds:?}");
    assert!(kinds.contains(&("missing-blob".into(), removed.to_string())), "{kinds:?}");
    assert_eq!(report.quarantined, [flipped.to_string()]);
    assert!(
        !path(flipped).exists()
            && dir.path().join("quarantine/blobs/sha256").join(flipped.encoded()).exists()
    );
    // Nothing was repaired: the damaged image still does not pull, the other does not either.
    assert!(registry.get_blob(&a.repo, flipped, None).await.is_err());

    // The binary exits non-zero and prints the report.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .args(["scrub", "--storage", &format!("fs:{}", dir.path().display())])
        .output()
        .expect("scrub");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert!(report["damage"].as_array().expect("damage").iter().any(|d| d["kind"] == "missing-blob"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scrub found"));
}

/// `wharf-server gc` beside a live `wharf-server` process on the same directory, and the
/// admin endpoint.
#[tokio::test]
async fn the_gc_command_and_endpoint_beside_a_live_server() {
    let dir = tempfile::tempdir().expect("dir");
    let spec = format!("fs:{}", dir.path().display());
    let process = crate::common::Process::start_with(&["--storage", &spec, "--gc-interval", "off"]);
    let http = reqwest::Client::new();
    process.ready(&http).await;
    let reg = crate::common::Reg { base: process.base.clone(), http: http.clone(), handle: None };
    let layer = blob(5, 3000);
    let layer_digest = reg.push_blob("app", &layer).await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = reg.push_blob("app", config).await;
    let manifest = image_manifest(&config_digest, config.len(), &[(layer_digest.clone(), layer.len())], "");
    let r = reg.push_manifest("app", "v1", crate::common::OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let digest = crate::common::header(&r, "docker-content-digest").expect("digest").to_owned();
    assert_eq!(
        reg.req(reqwest::Method::DELETE, &format!("/v2/app/manifests/{digest}"))
            .send()
            .await
            .expect("delete")
            .status(),
        reqwest::StatusCode::ACCEPTED
    );

    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wharf-server"))
            .args(["gc", "--storage", &spec])
            .args(extra)
            .output()
            .expect("gc");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json report")
    };
    // The default grace window (1h) keeps everything; a dry run with none lists the three.
    assert_eq!(run(&[])["blobs"].as_array().expect("blobs").len(), 0);
    let dry = run(&["--dry-run", "--grace", "0"]);
    assert_eq!(dry["blobs"].as_array().expect("blobs").len(), 3, "{dry}");
    assert!(
        dir.path()
            .join("blobs/sha256")
            .join(&layer_digest.encoded()[..2])
            .join(layer_digest.encoded())
            .exists()
    );
    // The endpoint collects; the report is kept.
    let report: serde_json::Value = reg
        .req(reqwest::Method::POST, "/v2/_wharf/gc?grace=0")
        .send()
        .await
        .expect("gc")
        .json()
        .await
        .expect("json");
    assert_eq!(report["blobs"], dry["blobs"], "the dry run listed what went");
    assert_eq!(report["bytesFreed"], dry["bytesFreed"]);
    let last: serde_json::Value = reg
        .req(reqwest::Method::GET, "/v2/_wharf/gc")
        .send()
        .await
        .expect("last")
        .json()
        .await
        .expect("json");
    assert_eq!(last["last"]["run"], report["run"]);
    let bad = reg.req(reqwest::Method::POST, "/v2/_wharf/gc?grace=soon").send().await.expect("bad");
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    // The live server pushes the same image again.
    reg.push_blob("app", &layer).await;
    reg.push_blob("app", config).await;
    assert_eq!(
        reg.push_manifest("app", "v1", crate::common::OCI_MANIFEST, &manifest).await.status(),
        reqwest::StatusCode::CREATED
    );
    let metrics =
        reg.req(reqwest::Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("wharf_gc_runs_total{outcome=\"ok\"} 1"), "{metrics}");
    assert!(metrics.contains("wharf_gc_freed_bytes_total"), "{metrics}");
}

/// A monolithic blob push as clients do it: a 503 (the blob was collected between its upload
/// and its link, possible with no grace window) is retried. `false` when it was.
async fn push_blob_retrying(reg: &crate::common::Reg, repo: &str, data: &[u8]) -> bool {
    let digest = Digest::sha256(data);
    for attempt in 0..5 {
        let r = reg
            .req(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .body(data.to_vec())
            .send()
            .await
            .expect("send");
        match r.status() {
            reqwest::StatusCode::CREATED => return attempt == 0,
            reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                let body = r.text().await.expect("body");
                assert!(body.contains("UNAVAILABLE") && body.contains("garbage collection"), "{body}");
            }
            other => panic!("push blob: {other}"),
        }
    }
    panic!("push blob: 503 five times");
}

/// Two `wharf-server` processes over one storage, each collecting every 200 ms with no grace
/// window (one at a time, by the lease), while a client pushes images over a shared pool of
/// layers to both (skipping layers the repository has), and deletes some: every acknowledged
/// image that was not deleted pulls whole from both.
async fn two_processes_collecting(storage: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("wharf.toml");
    std::fs::write(&config, "[gc]\ninterval = \"200ms\"\ngrace = \"0\"\n").expect("config");
    let config = config.display().to_string();
    let processes: Vec<crate::common::Process> = (0..2)
        .map(|_| crate::common::Process::start_with(&["--storage", storage, "--config", &config]))
        .collect();
    let http = reqwest::Client::new();
    for p in &processes {
        p.ready(&http).await;
    }
    let regs: Vec<crate::common::Reg> = processes
        .iter()
        .map(|p| crate::common::Reg { base: p.base.clone(), http: http.clone(), handle: None })
        .collect();
    let mut rng = Rng(0x00C0_FFEE);
    let mut alive: Vec<(String, String, Vec<Digest>)> = Vec::new();
    let (mut pushed, mut refused, mut deleted, mut collected) = (0, 0, 0, 0);
    // 300 operations, and on until both processes together have collected twice beside
    // them (a fast machine gets through 300 in less time than two collections take).
    let mut i = 0;
    while i < 300 || (i < 3000 && (i % 25 != 0 || gc_runs(&regs).await < 2)) {
        i += 1;
        let reg = &regs[i % 2];
        if i % 4 == 3 && !alive.is_empty() {
            let (repo, digest, _) = alive.remove(rng.below(alive.len() as u64) as usize);
            let r = regs[(i + 1) % 2]
                .req(reqwest::Method::DELETE, &format!("/v2/{repo}/manifests/{digest}"))
                .send()
                .await
                .expect("delete");
            assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
            deleted += 1;
            continue;
        }
        let repo = ["app", "team/app"][rng.below(2) as usize];
        let mut layers = Vec::new();
        for seed in [rng.below(5), 100 + i as u64] {
            let data = blob(seed, 1500);
            let d = Digest::sha256(&data);
            let head =
                reg.req(reqwest::Method::HEAD, &format!("/v2/{repo}/blobs/{d}")).send().await.expect("head");
            if head.status() != reqwest::StatusCode::OK {
                collected += u32::from(!push_blob_retrying(reg, repo, &data).await);
            }
            layers.push((d, data.len()));
        }
        let config = format!(r#"{{"architecture":"amd64","os":"linux","i":{i}}}"#);
        collected += u32::from(!push_blob_retrying(reg, repo, config.as_bytes()).await);
        let config_digest = Digest::sha256(config.as_bytes());
        let manifest = image_manifest(&config_digest, config.len(), &layers, "");
        let r = reg.push_manifest(repo, &format!("v{i}"), crate::common::OCI_MANIFEST, &manifest).await;
        if r.status() == reqwest::StatusCode::CREATED {
            let digest = crate::common::header(&r, "docker-content-digest").expect("digest").to_owned();
            let mut blobs: Vec<Digest> = layers.into_iter().map(|(d, _)| d).collect();
            blobs.push(config_digest);
            alive.push((repo.to_owned(), digest, blobs));
            pushed += 1;
        } else {
            // A layer collected between the HEAD and the manifest: refused, not acknowledged.
            assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST, "{:?}", r.text().await);
            refused += 1;
        }
    }
    for reg in &regs {
        for (repo, digest, blobs) in &alive {
            let r = reg
                .req(reqwest::Method::GET, &format!("/v2/{repo}/manifests/{digest}"))
                .header("Accept", crate::common::OCI_MANIFEST)
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), reqwest::StatusCode::OK, "{repo}@{digest}");
            assert_eq!(Digest::sha256(&r.bytes().await.expect("bytes")).to_string(), *digest);
            for d in blobs {
                let r = reg
                    .req(reqwest::Method::GET, &format!("/v2/{repo}/blobs/{d}"))
                    .send()
                    .await
                    .expect("blob");
                assert_eq!(r.status(), reqwest::StatusCode::OK, "{repo} {d}");
                assert_eq!(Digest::sha256(&r.bytes().await.expect("bytes")), *d);
            }
        }
    }
    let runs = gc_runs(&regs).await;
    eprintln!(
        "{storage}: {pushed} images acknowledged, {refused} refused, {deleted} deleted, {collected} blob pushes answered 503 and retried, {runs} collections by two processes"
    );
    assert!(runs >= 2, "the processes collected ({runs})");
}

/// The collections that ended well, in all the processes together (from their `/metrics`).
async fn gc_runs(regs: &[crate::common::Reg]) -> u64 {
    let mut runs = 0;
    for reg in regs {
        let metrics = reg
            .req(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        runs += metrics
            .lines()
            .find_map(|l| l.strip_prefix("wharf_gc_runs_total{outcome=\"ok\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    runs
}

#[tokio::test]
async fn two_processes_collect_beside_pushes_on_fs() {
    let dir = tempfile::tempdir().expect("dir");
    two_processes_collecting(&format!("fs:{}", dir.path().display())).await;
}

#[tokio::test]
async fn two_processes_collect_beside_pushes_on_garage() {
    let Some(url) = crate::common::s3_storage("two_processes_collect_beside_pushes_on_garage", "gc-procs")
    else {
        return;
    };
    two_processes_collecting(&url).await;
}

/// One collector at a time: a live lease of another holder makes a run busy (409 through the
/// endpoint), an expired one (its holder died) is taken over, and the marks a dead collector
/// left are cleared.
#[tokio::test]
async fn the_lease_admits_one_collector_and_expires_with_its_holder() {
    let storage: Arc<dyn Storage> = Arc::new(wharf_store::MemoryStore::new());
    let registry = Wharf::new(Arc::clone(&storage));
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_millis();
    storage.set_meta("gc/lease", format!("elsewhere {}", now_ms + 60_000).into()).await.expect("lease");
    let busy = registry.collect_garbage(&now_options()).await;
    assert!(matches!(busy, Err(wharf_server::Error::Busy(_))), "{busy:?}");
    let reg = crate::common::Reg::serve(registry.clone()).await;
    let r = reg.req(reqwest::Method::POST, "/v2/_wharf/gc").send().await.expect("gc");
    assert_eq!(r.status(), reqwest::StatusCode::CONFLICT);
    reg.stop().await;
    // The holder died: its lease expired, its marks and its `sweep` epoch stayed behind.
    storage.set_meta("gc/lease", format!("elsewhere {}", now_ms - 1).into()).await.expect("lease");
    storage.set_meta("gc/epoch", "sweep elsewhere".into()).await.expect("epoch");
    storage.set_meta(&format!("gc/doomed/sha256/{}", "0".repeat(64)), Bytes::new()).await.expect("mark");
    // A push meanwhile still works (it waits for no dead collector's mark).
    let image = push_image(&registry, "app", "v1", 1, &[(3, 100)]).await;
    let report = registry.collect_garbage(&now_options()).await.expect("taken over");
    assert!(report.blobs.is_empty());
    assert!(storage.list_meta("gc/doomed/").await.expect("list").is_empty(), "stale marks cleared");
    assert!(storage.get_meta("gc/lease").await.expect("get").is_none(), "released");
    assert!(storage.get_meta("gc/epoch").await.expect("get").is_some_and(|e| e.starts_with(b"idle ")));
    pull_verified(&registry, &image).await;
}

/// `wharf-server gc` killed with SIGKILL in the middle of its run: every live image still
/// pulls whole, a push right after works, and once the dead collector's lease expires the
/// next collection takes over and finishes the job.
#[tokio::test]
async fn a_collection_killed_midway_loses_nothing_and_is_finished_later() {
    let dir = tempfile::tempdir().expect("dir");
    let storage: Arc<dyn Storage> = Arc::new(wharf_store::FsStore::open(dir.path()).await.expect("fs"));
    let registry = Wharf::new(Arc::clone(&storage));
    let mut images = Vec::new();
    for i in 0..240u64 {
        let repo = ["app", "app/cache", "other"][(i % 3) as usize];
        images.push(
            push_image(&registry, repo, &format!("v{i}"), i, &[(1, 700), (100 + i, 300), (200 + i % 7, 500)])
                .await,
        );
    }
    let (gone, live): (Vec<Image>, Vec<Image>) =
        images.into_iter().partition(|im| im.tag.trim_start_matches('v').parse::<u64>().expect("n") % 2 == 0);
    for image in &gone {
        registry
            .delete_manifest(&image.repo, &TagOrDigest::Digest(image.digest.clone()))
            .await
            .expect("delete");
    }
    let before = stored(&storage).await.len();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .args(["gc", "--grace", "0", "--storage", &format!("fs:{}", dir.path().display())])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("gc");
    // Killed as soon as bytes start to go (links and manifests went before).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stored(&storage).await.len() == before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    let mid = stored(&storage).await.len();
    let lease = storage.get_meta("gc/lease").await.expect("lease");
    let epoch = storage.get_meta("gc/epoch").await.expect("epoch");
    eprintln!(
        "killed midway: {before} objects before, {mid} after the killed run; lease {lease:?}, epoch {epoch:?}"
    );

    let registry = Wharf::new(Arc::new(wharf_store::FsStore::open(dir.path()).await.expect("reopen")));
    for image in &live {
        pull_verified(&registry, image).await;
    }
    let pushed = push_image(&registry, "app", "after", 1000, &[(1, 700), (2000, 300)]).await;
    // The dead collector's lease expires within 30 s; then a collection finishes the job.
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    let report = loop {
        match registry.collect_garbage(&GcOptions::default()).await {
            Ok(report) => break report,
            Err(wharf_server::Error::Busy(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("collection after the crash: {e}"),
        }
    };
    let report = if report.blobs.is_empty() {
        // The default grace window kept the rest: collect with none.
        registry.collect_garbage(&now_options()).await.expect("collection")
    } else {
        report
    };
    let expected: BTreeSet<Digest> = live
        .iter()
        .chain([&pushed])
        .flat_map(|im| im.blobs.iter().map(|(d, _)| d.clone()).chain([im.digest.clone()]))
        .collect();
    assert_eq!(
        stored(&storage).await,
        expected,
        "only what live images name is left ({} freed after)",
        report.blobs.len()
    );
    for image in live.iter().chain([&pushed]) {
        pull_verified(&registry, image).await;
    }
}
