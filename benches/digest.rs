//! Digest throughput over 1 MiB buffers, the figure to compare with
//! `openssl speed -evp sha256 -bytes 1048576` on the same machine.
//!
//! Run with `cargo bench --bench digest`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wharf_types::{Algorithm, Digest};

const MIB: usize = 1024 * 1024;

fn digest(c: &mut Criterion) {
    let buffer: Vec<u8> = (0..MIB).map(|i| u8::try_from(i * 31 % 251).expect("below 251")).collect();
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Bytes(MIB as u64));
    for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
        group.bench_function(format!("{algorithm}/1MiB"), |b| {
            b.iter(|| Digest::compute(algorithm, black_box(&buffer)));
        });
        group.bench_function(format!("{algorithm}/1MiB-streamed-64KiB"), |b| {
            b.iter(|| {
                let mut digester = algorithm.digester();
                for chunk in black_box(&buffer).chunks(64 * 1024) {
                    digester.update(chunk);
                }
                digester.finish()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, digest);
criterion_main!(benches);
