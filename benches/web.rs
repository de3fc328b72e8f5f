//! The web page's repository page for a repository of 1,000 artifacts: sorting them newest
//! first and rendering the first page of 100 rows (askama, every value escaped), as the
//! server does for each visit. Target (issue 17): median under 20 ms; the page under 100 KB.
//!
//! Run with `cargo bench --bench web`.

use criterion::{Criterion, criterion_group, criterion_main};
use wharf::server::api::ArtifactSummary;

const ARTIFACTS: usize = 1_000;

/// Summaries as the registry lists them: Wasm and not, tagged and not, with platforms.
fn artifacts() -> Vec<ArtifactSummary> {
    (0..ARTIFACTS)
        .map(|n| {
            let wasm = n % 3 != 0;
            serde_json::from_value(serde_json::json!({
                "digest": format!("sha256:{:064x}", n * 7919 + 1),
                "tags": if n % 4 == 0 { vec![] } else { vec![format!("v1.{n}"), format!("build-{n}")] },
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": if wasm { Some("application/vnd.wasm.config.v1+json") } else { None },
                "wasm": wasm,
                "kind": if wasm { "wasm-to-oci" } else { "not-wasm" },
                "harborType": if wasm { "WASM" } else { "IMAGE" },
                "size": 1000 + n * 37,
                "pushedAt": format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + n % 27, n % 24, n % 60),
                "platform": if wasm { serde_json::json!({"os": "wasip1", "architecture": "wasm"}) } else { serde_json::Value::Null },
            }))
            .expect("a summary")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let all = artifacts();
    let page = wharf::server::web::render_repository("team/app", &mut all.clone());
    println!("repository page of {ARTIFACTS} artifacts: {} bytes (first 100 rows)", page.len());
    assert!(page.len() < 100 * 1024, "the page is {} bytes", page.len());
    c.bench_function("web/repository page, 1,000 artifacts", |b| {
        b.iter_batched(
            || all.clone(),
            |mut artifacts| wharf::server::web::render_repository("team/app", &mut artifacts),
            criterion::BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
