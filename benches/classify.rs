//! Classification throughput over the shared real-world manifests (0.4–0.8 KiB each), with
//! their configs where the data has them: the work the registry does on every push.
//!
//! Run with `cargo bench --bench classify`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wharf_types::Manifest;

fn load() -> Vec<(Manifest, Option<Vec<u8>>)> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for dir in ["wasm-examples", "client-manifests"] {
        let mut paths: Vec<_> =
            std::fs::read_dir(data.join(dir)).expect("test data").map(|e| e.expect("entry").path()).collect();
        paths.sort();
        for path in paths {
            let Ok(manifest) = Manifest::from_bytes(std::fs::read(&path).expect("read"), None) else {
                continue;
            };
            // A manifest's config is the file next to it whose digest it names, if any.
            let config = manifest.as_image().and_then(|m| {
                std::fs::read_dir(data.join(dir)).ok()?.find_map(|e| {
                    let bytes = std::fs::read(e.ok()?.path()).ok()?;
                    (wharf_types::Digest::sha256(&bytes) == m.config.digest).then_some(bytes)
                })
            });
            out.push((manifest, config));
        }
    }
    out
}

fn classify(c: &mut Criterion) {
    let corpus = load();
    let with_config = corpus.iter().filter(|(_, c)| c.is_some()).count();
    eprintln!("{} manifests, {with_config} with their config", corpus.len());
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.bench_function("shared-manifests", |b| {
        b.iter(|| {
            for (manifest, config) in &corpus {
                black_box(wharf_wasm::classify(black_box(manifest), config.as_deref()));
            }
        });
    });
    group.bench_function("parse-and-classify-shared-manifests", |b| {
        b.iter(|| {
            for (manifest, config) in &corpus {
                let parsed = Manifest::from_bytes(manifest.bytes().clone(), None).expect("parses");
                black_box(wharf_wasm::classify(&parsed, config.as_deref()));
            }
        });
    });
    let module = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wasm/hello.wasm"))
        .expect("fixture");
    group.throughput(Throughput::Elements(1));
    group.bench_function("inspect-hello-module", |b| {
        b.iter(|| wharf_wasm::inspect(black_box(&module)));
    });
    group.finish();
}

criterion_group!(benches, classify);
criterion_main!(benches);
