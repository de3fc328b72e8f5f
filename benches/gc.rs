//! Garbage collection at the size of a real registry, on fs storage: 100,000 blobs and
//! 10,000 manifests in 100 repositories; a fifth of the manifests deleted and 5,000 blobs
//! never referenced, then one collection with no grace window. Prints the collection's time,
//! what it freed and the process's peak RSS during it (Linux `VmHWM`, reset before the run).
//!
//! First, what the writers' fence costs: manifest PUTs on fs with it and without it
//! (`with_gc_fence(false)`, test-only), alternating rounds, medians per PUT.
//!
//! Run with `cargo bench --bench gc` (`GC_SCALE=10` for a tenth of the size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wharf::server::Wharf;
use wharf::server::lifecycle::GcOptions;
use wharf::store::{FsStore, MetaStore as _, Write};
use wharf::types::{Digest, Repository, TagOrDigest};

const REPOSITORIES: usize = 100;
const MANIFESTS: usize = 10_000;
const LAYERS_PER_MANIFEST: usize = 9;
const ORPHANS: usize = 5_000;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Writes a blob file straight into the fs layout (setup only: the collection is measured).
fn write_blob(root: &std::path::Path, data: &[u8]) -> Digest {
    let d = Digest::sha256(data);
    let dir = root.join("gc/blobs/sha256").join(&d.encoded()[..2]);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join(d.encoded()), data).expect("blob");
    d
}

/// Median time of a manifest PUT (by tag, over an existing config) with and without the fence.
async fn fence_cost(dir: &std::path::Path) {
    let store = Arc::new(FsStore::open(dir.join("fence")).await.expect("fs"));
    let repo: Repository = "bench/fence".parse().expect("repo");
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let config_digest = Digest::sha256(&config);
    Wharf::new(store.clone())
        .put_blob(&repo, &config_digest, wharf::store::single(config.clone()))
        .await
        .expect("config");
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut n = 0u64;
    for round in 0..40 {
        let fence = round % 2 == 0;
        let registry = Wharf::new(store.clone()).with_gc_fence(fence);
        for _ in 0..50 {
            n += 1;
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[],"annotations":{{"n":"{n}"}}}}"#,
                config.len()
            );
            let tag: TagOrDigest = format!("t{n}").parse().expect("tag");
            let started = Instant::now();
            registry.put_manifest(&repo, &tag, None, manifest.into(), &[]).await.expect("put");
            times[usize::from(!fence)].push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (with, without) = (median(&mut times[0]), median(&mut times[1]));
    println!(
        "manifest PUT on fs, median of 1,000 each: {with:.3} ms with the fence, {without:.3} ms without ({:+.1} %)",
        (with / without - 1.0) * 100.0
    );
}

fn main() {
    let scale: usize = std::env::var("GC_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let (manifests, orphans) = (MANIFESTS / scale, ORPHANS / scale);
    let dir =
        tempfile::Builder::new().prefix("bench-gc").tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(fence_cost(dir.path()));
    runtime.block_on(async {
        let store = Arc::new(FsStore::open(dir.path().join("gc")).await.expect("fs"));
        let registry = Wharf::new(store.clone());
        let setup = Instant::now();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
        let mut pushed = Vec::new();
        for m in 0..manifests {
            let repo: Repository = format!("org{}/app", m % REPOSITORIES).parse().expect("repo");
            let config = format!(r#"{{"architecture":"amd64","os":"linux","m":{m}}}"#);
            let mut blobs = vec![(write_blob(dir.path(), config.as_bytes()), config.len())];
            for l in 0..LAYERS_PER_MANIFEST {
                let data = format!("layer {m} {l}").repeat(8);
                blobs.push((write_blob(dir.path(), data.as_bytes()), data.len()));
            }
            // The records an upload writes: the link (size, when) and its reverse.
            let mut links = vec![Write::Set { key: format!("catalog/{repo}"), value: Bytes::new() }];
            for (d, size) in &blobs {
                links.push(Write::Set {
                    key: format!("repositories/{repo}/_layers/sha256/{}", d.encoded()),
                    value: format!("{size} {now}").into(),
                });
                links.push(Write::Set { key: format!("blob-repositories/sha256/{}/{repo}", d.encoded()), value: Bytes::new() });
            }
            store.write_steps(vec![links]).await.expect("links");
            let layers: Vec<String> = blobs[1..]
                .iter()
                .map(|(d, s)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{s}}}"#))
                .collect();
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
                blobs[0].0,
                blobs[0].1,
                layers.join(",")
            );
            let tag: TagOrDigest = format!("v{m}").parse().expect("tag");
            let put = registry.put_manifest(&repo, &tag, None, manifest.into(), &[]).await.expect("manifest");
            pushed.push((repo, put.digest));
        }
        for o in 0..orphans {
            write_blob(dir.path(), format!("orphan {o}").as_bytes());
        }
        for (repo, digest) in pushed.iter().step_by(5) {
            registry.delete_manifest(repo, &TagOrDigest::Digest(digest.clone())).await.expect("delete");
        }
        let blobs = manifests * (1 + LAYERS_PER_MANIFEST) + manifests + orphans;
        println!(
            "setup: {blobs} objects ({} manifests, {orphans} never referenced, {} manifests deleted) in {:.1} s",
            manifests,
            manifests / 5,
            setup.elapsed().as_secs_f64()
        );
        // Reset the peak RSS, so that it is the collection's.
        std::fs::write("/proc/self/clear_refs", "5").ok();
        let before = vm_hwm_kib();
        let started = Instant::now();
        let report = registry.collect_garbage(&GcOptions::default().with_grace(Duration::ZERO)).await.expect("gc");
        let took = started.elapsed();
        println!(
            "gc: {:.2} s; {} repositories, removed {} links, {} blobs ({} bytes), kept {} objects; peak RSS {} MiB (before: {} MiB)",
            took.as_secs_f64(),
            report.repositories,
            report.links,
            report.blobs.len(),
            report.bytes_freed,
            report.blobs_kept,
            vm_hwm_kib() / 1024,
            before / 1024
        );
        assert_eq!(report.blobs.len(), manifests / 5 * (2 + LAYERS_PER_MANIFEST) + orphans, "every deleted image's objects and every orphan");
    });
}
