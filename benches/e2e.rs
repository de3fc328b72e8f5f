//! End to end over loopback: `wharf-server` in-process (fs storage) and `wharf-client`.
//! Push and pull of 64 MiB blobs (fresh content every push, so nothing is deduplicated),
//! and manifest PUT (by tag, durable) and GET (by tag).
//!
//! Run with `cargo bench --bench e2e`; `benches/compare.sh` measures the same operations
//! from outside the process, against Debian's docker-registry too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use wharf::types::{Descriptor, ImageManifest, Manifest, MediaType, Reference};

#[path = "support/registry.rs"]
mod registry;

const MIB: usize = 1024 * 1024;

fn e2e(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, client) = rt.block_on(async {
        let (host, client) = registry::start(dir.path()).await;
        (host, client)
    });
    let reference: Reference = format!("{host}/bench/e2e:v1").parse().expect("reference");
    let seed = AtomicU64::new(1);

    let mut group = c.benchmark_group("e2e");
    group.sample_size(10).measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Bytes(64 * MIB as u64));
    group.bench_function("push-64MiB-blob", |b| {
        b.iter_batched(
            || wharf::store::testing::content(seed.fetch_add(1, Ordering::Relaxed), 64 * MIB),
            |data| rt.block_on(client.push_blob(&reference, data)).expect("push"),
            BatchSize::PerIteration,
        );
    });
    let blob = wharf::store::testing::content(0, 64 * MIB);
    let digest = rt.block_on(client.push_blob(&reference, blob)).expect("push");
    group.bench_function("pull-64MiB-blob-verified", |b| {
        b.iter(|| rt.block_on(client.pull_blob(&reference, &digest, &mut tokio::io::sink())).expect("pull"));
    });

    // Manifests: a small image whose annotation makes every PUT a new manifest.
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let config_digest = rt.block_on(client.push_blob(&reference, config.clone())).expect("config");
    let manifest = |i: u64| {
        let mut m = ImageManifest::new(
            Descriptor::new(MediaType::OCI_CONFIG, config_digest.clone(), config.len() as u64),
            vec![],
        );
        m.annotations = Some([("org.example.i".to_owned(), i.to_string())].into_iter().collect());
        Manifest::from_bytes(serde_json::to_vec(&m).expect("json"), None).expect("manifest")
    };
    group.throughput(Throughput::Elements(1));
    let counter = AtomicU64::new(0);
    group.bench_function("manifest-put-by-tag", |b| {
        b.iter_batched(
            || manifest(counter.fetch_add(1, Ordering::Relaxed)),
            |m| rt.block_on(client.push_manifest(&reference, &m)).expect("put"),
            BatchSize::SmallInput,
        );
    });
    rt.block_on(client.push_manifest(&reference, &manifest(u64::MAX))).expect("put");
    group.bench_function("manifest-get-by-tag", |b| {
        b.iter(|| rt.block_on(client.pull_manifest(&reference)).expect("get"));
    });
    group.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
