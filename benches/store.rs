//! Blob store throughput: put and get of 64 MiB blobs on `FsStore` (in a temporary directory)
//! and, when `WHARF_S3_URL` names an S3 engine (as `.ci/garage.sh` prints), on `S3Store`.
//!
//! Run with `cargo bench --bench store`. Put includes hashing (each byte once), writing,
//! fsync and the rename; get streams the file back without hashing.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use wharf_store::{BlobStore, FsStore, S3Store, from_chunks, testing};
use wharf_types::Digest;

const SIZE: usize = 64 * 1024 * 1024;

fn bench_store(c: &mut Criterion, name: &str, store: &dyn BlobStore, rt: &tokio::runtime::Runtime) {
    let data = testing::content(1, SIZE);
    let chunks = testing::pieces(&data, 1024 * 1024);
    let digest = Digest::sha256(&data);
    let mut group = c.benchmark_group(format!("store/{name}"));
    group
        .throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    if name == "fs" {
        // The physical reference: hashing the same 64 MiB, nothing else.
        group.bench_function("sha256-only-64MiB", |b| {
            b.iter(|| {
                let mut d = wharf_types::Algorithm::Sha256.digester();
                for c in &chunks {
                    d.update(c);
                }
                d.finish()
            });
        });
    }
    // Deleting the previous copy (an unlink of 64 MiB costs ~13 ms here) is setup, not timed.
    group.bench_function("put-64MiB", |b| {
        b.iter_batched(
            || rt.block_on(store.delete(&digest)).expect("delete"),
            |_| rt.block_on(store.put(&digest, from_chunks(chunks.clone()))).expect("put"),
            criterion::BatchSize::PerIteration,
        );
    });
    group.bench_function("get-64MiB", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut got = store.get(&digest, None).await.expect("get").stream;
                let mut n = 0;
                while let Some(chunk) = got.next().await {
                    n += chunk.expect("chunk").len();
                }
                assert_eq!(n, SIZE);
            });
        });
    });
    group.finish();
}

fn store(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = rt.block_on(FsStore::open(dir.path())).expect("open");
    bench_store(c, "fs", &fs, &rt);
    match std::env::var("WHARF_S3_URL") {
        Ok(url) if !url.is_empty() => {
            let (location, query) = url.split_once('?').unwrap_or((&url, ""));
            let s3 = S3Store::from_url(&format!("{}/bench?{query}", location.trim_end_matches('/')))
                .expect("S3 store");
            bench_store(c, "s3", &s3, &rt);
        }
        _ => {
            eprintln!("store/s3 skipped: set WHARF_S3_URL (bash .ci/garage.sh start DIR prints it)");
        }
    }
}

criterion_group!(benches, store);
criterion_main!(benches);
