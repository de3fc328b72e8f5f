//! `GET /v2/_wharf/search` over 10,000 Wasm artifacts (100 repositories, components with
//! varied imports and exports, and core modules), served in-process on fs storage over
//! loopback. Target (issue 15): median under 20 ms per query.
//!
//! Run with `cargo bench --bench search`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use wharf::server::{Server, Wharf};
use wharf::types::{MediaType, Repository, TagOrDigest};
use wharf::wasm::ArtifactBuilder;

const ARTIFACTS: usize = 10_000;
const REPOSITORIES: usize = 100;
const INTERFACES: [&str; 6] = [
    "wasi:http/outgoing-handler@0.2.0",
    "wasi:sockets/tcp@0.2.0",
    "wasi:filesystem/types@0.2.0",
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:cli/environment@0.2.3",
    "wasi:clocks/wall-clock@0.2.0",
];

/// Twenty modules: components importing a mix of interfaces and exporting `wasi:cli/run` or
/// an HTTP handler, and core modules built from Rust or C.
fn modules() -> Vec<Vec<u8>> {
    (0..20)
        .map(|v: usize| {
            if v % 4 == 3 {
                let language = if v % 8 == 3 { "Rust" } else { "C11" };
                let text = format!(
                    r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                        (func (export "_start")) (@custom "v" "{v}") (@producers (language "{language}" "")))"#
                );
                return wat::parse_str(text).expect("module");
            }
            let imports: Vec<String> = INTERFACES
                .iter()
                .enumerate()
                .filter(|(i, _)| (v >> (i % 3)) & 1 == 1 || *i == v % INTERFACES.len())
                .map(|(_, name)| format!("(import \"{name}\" (instance))"))
                .collect();
            let imports = imports.join(" ");
            let export = if v.is_multiple_of(2) { "wasi:cli/run@0.2.0" } else { "wasi:http/incoming-handler@0.2.0" };
            let text = format!(
                r#"(component {imports}
                    (core module $m (func (export "f")))
                    (core instance $i (instantiate $m))
                    (func $f (canon lift (core func $i "f")))
                    (instance $x (export "run" (func $f)))
                    (export "{export}" (instance $x)))"#
            );
            wat::parse_str(text).expect("component")
        })
        .collect()
}

fn search(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (base, http) = rt.block_on(async {
        let storage = Arc::new(wharf::store::FsStore::open(dir.path()).await.expect("store"));
        // Modules read before the PUT is acknowledged (validation on), so no job queue to wait for.
        let registry = Wharf::new(storage).with_wasm_validate(true);
        let started = Instant::now();
        let media_type: MediaType = "application/vnd.oci.image.manifest.v1+json".parse().expect("media type");
        let modules = modules();
        for r in 0..REPOSITORIES {
            let repo: Repository = format!("team-{}/service-{r}", r % 7).parse().expect("name");
            for k in 0..ARTIFACTS / REPOSITORIES {
                let module = modules[(r + k) % modules.len()].clone();
                let artifact = ArtifactBuilder::new(module)
                    .with_annotation("org.opencontainers.image.version", format!("1.{k}.0"))
                    .cncf()
                    .expect("artifact");
                for blob in artifact.blobs() {
                    let data = blob.data.clone();
                    let stream = Box::pin(futures_util::stream::once(async move { Ok(data) }));
                    registry.put_blob(&repo, &blob.descriptor.digest, stream).await.expect("blob");
                }
                let tag: TagOrDigest = format!("v{k}").parse().expect("tag");
                registry
                    .put_manifest(&repo, &tag, Some(&media_type), artifact.manifest.bytes().clone(), &[])
                    .await
                    .expect("manifest");
            }
        }
        println!("search: {ARTIFACTS} artifacts pushed in {:.1} s", started.elapsed().as_secs_f64());
        let server = Server::bind("127.0.0.1:0".parse().expect("addr"), registry).await.expect("bind");
        let base = format!("http://{}", server.local_addr());
        std::mem::forget(server.spawn());
        let http = reqwest::Client::new();
        let started = Instant::now();
        let first = http.get(format!("{base}/v2/_wharf/search?kind=module")).send().await.expect("search");
        assert!(first.status().is_success());
        println!(
            "search: first query (index loaded from the records) in {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        (base, http)
    });

    let mut group = c.benchmark_group("search-10k");
    group.sample_size(50).measurement_time(Duration::from_secs(10));
    for (name, query) in [
        ("export-wasi-cli-run", "export=wasi:cli/run"),
        ("import-wasi-http-star", "import=wasi:http/*"),
        ("wasi-0.2-component", "wasi=0.2&kind=component"),
        ("language-rust", "language=rust"),
        ("text", "q=team-3%20service-10"),
        ("no-match", "import=wasi:nothing/here"),
    ] {
        let url = format!("{base}/v2/_wharf/search?{query}");
        let hits = rt.block_on(async {
            let json: serde_json::Value =
                http.get(&url).send().await.expect("send").json().await.expect("json");
            json["results"].as_array().map_or(0, Vec::len)
        });
        println!("search: {query}: {hits} results on the first page");
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async { http.get(&url).send().await.expect("send").bytes().await.expect("body") })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
