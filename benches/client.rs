//! Client pull throughput against `wharf-server` (fs storage) over loopback: one 512 MiB
//! blob pulled and verified (the target is ≥ 90 % of single-core SHA-256), and a 4-layer
//! 4 × 128 MiB image exported to an OCI layout (layers pulled in parallel). Compare the
//! latter with `skopeo copy docker://127.0.0.1:<port>/bench/image:v1 dir:/tmp/x` on the same
//! server (the bench prints the reference it serves while it runs, with `WHARF_BENCH_HOLD=1`).
//!
//! Run with `cargo bench --bench client`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use wharf::types::{Descriptor, ImageManifest, Manifest, MediaType, Reference};

#[path = "support/registry.rs"]
mod registry;

const MIB: usize = 1024 * 1024;
const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

fn client_bench(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, client, big, image) = rt.block_on(async {
        let (host, client) = registry::start(dir.path()).await;
        let big_ref: Reference = format!("{host}/bench/blob:v1").parse().expect("reference");
        let big = client
            .push_blob(&big_ref, wharf::store::testing::content(1, 512 * MIB))
            .await
            .expect("push 512 MiB");
        let image_ref: Reference = format!("{host}/bench/image:v1").parse().expect("reference");
        let mut layers = Vec::new();
        for i in 0..4 {
            let data = wharf::store::testing::content(10 + i, 128 * MIB);
            let d = client.push_blob(&image_ref, data.clone()).await.expect("layer");
            layers.push(Descriptor::new(MediaType::OCI_LAYER_TAR_GZIP, d, data.len() as u64));
        }
        let config = bytes::Bytes::from_static(CONFIG);
        let cd = client.push_blob(&image_ref, config.clone()).await.expect("config");
        let manifest =
            ImageManifest::new(Descriptor::new(MediaType::OCI_CONFIG, cd, config.len() as u64), layers);
        let manifest =
            Manifest::from_bytes(serde_json::to_vec(&manifest).expect("json"), None).expect("manifest");
        client.push_manifest(&image_ref, &manifest).await.expect("manifest");
        (host, client, (big_ref, big), image_ref)
    });
    if std::env::var_os("WHARF_BENCH_HOLD").is_some() {
        eprintln!("serving docker://{host}/bench/image:v1 for 60 s (plain HTTP)");
        std::thread::sleep(Duration::from_secs(60));
    }
    let mut group = c.benchmark_group("client");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(512 * MIB as u64));
    group.bench_function("pull-512MiB-verified", |b| {
        b.iter(|| rt.block_on(client.pull_blob(&big.0, &big.1, &mut tokio::io::sink())).expect("pull"));
    });
    group.throughput(Throughput::Bytes(4 * 128 * MIB as u64));
    group.bench_function("export-4x128MiB-layers-parallel", |b| {
        b.iter(|| {
            let out = tempfile::tempdir().expect("tempdir");
            rt.block_on(client.export_layout(&image, out.path())).expect("export");
        });
    });
    group.finish();
}

criterion_group!(benches, client_bench);
criterion_main!(benches);
