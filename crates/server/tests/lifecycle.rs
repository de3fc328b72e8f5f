//! Storage lifecycle: garbage collection (exact, and safe beside pushes in one and in two
//! processes), retention, quotas, scrub.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use wharf_server::Registry;
use wharf_server::gc::GcOptions;
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
    registry: &Registry,
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
pub(crate) async fn pull_verified(registry: &Registry, image: &Image) {
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
    let registry = Registry::new(Arc::clone(&storage));
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
    let (deleted, kept): (Vec<Image>, Vec<Image>) =
        images.into_iter().partition(|im| im.tag.trim_start_matches('v').parse::<u64>().unwrap() % 2 == 1);
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
    registry: &Registry,
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
    writers: Vec<Registry>,
    collectors: Vec<Registry>,
    reader: Registry,
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
                            tokio::time::sleep(Duration::from_millis(10)).await
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

async fn fs_registries(dir: &std::path::Path, n: usize, fence: bool) -> Vec<Registry> {
    let mut out = Vec::new();
    for _ in 0..n {
        let store = wharf_store::FsStore::open(dir).await.expect("fs");
        out.push(Registry::new(Arc::new(store)).with_gc_fence(fence));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_survive_collections_on_fs() {
    let dir = tempfile::tempdir().expect("dir");
    let mut registries = fs_registries(dir.path(), 5, fence()).await;
    let reader = registries.pop().expect("reader");
    let collectors = vec![registries.pop().expect("collector"), registries.pop().expect("collector")];
    let (broken, operations, runs) = race(registries, collectors, reader, 200).await;
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
    let writer = Registry::new(Arc::clone(&paused) as Arc<dyn Storage>).with_gc_fence(fence);
    let collector = Registry::new(Arc::clone(&inner));
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
