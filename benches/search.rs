//! `GET /v2/_wharf/search` over 10,000 Wasm artifacts (100 repositories, components with
//! varied imports and exports, and core modules), served in-process on fs storage over
//! loopback. Target (issue 15): median under 20 ms per query.
//!
//! And over 1,000 Wasm packages (issue 32): WIT packages and components in `pkgs/acme/*`, three
//! in four using `acme:greeter` — which packages depend on `acme:greeter`, which components
//! export `acme:greeter/hello` — each answer counted against what was pushed before it is
//! timed. Same target.
//!
//! Run with `cargo bench --bench search` (`cargo bench --bench search -- packages` for the
//! packages alone).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use wharf::server::{Server, Wharf};
use wharf::types::{MediaType, Repository, TagOrDigest};
use wharf::wasm::{Artifact, ArtifactBuilder};

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

/// A registry on fs storage in `dir` that reads modules before a PUT is acknowledged
/// (validation on), so no job queue is waited for.
async fn registry(dir: &std::path::Path) -> Wharf {
    let storage = Arc::new(wharf::store::FsStore::open(dir).await.expect("store"));
    Wharf::new(storage).with_wasm_validate(true)
}

/// Pushes `artifact` under `tag` as a client would: its blobs, then the manifest.
async fn push(registry: &Wharf, repo: &Repository, tag: &str, artifact: &Artifact) {
    for blob in artifact.blobs() {
        let data = blob.data.clone();
        let stream = Box::pin(futures_util::stream::once(async move { Ok(data) }));
        registry.put_blob(repo, &blob.descriptor.digest, stream).await.expect("blob");
    }
    let tag: TagOrDigest = tag.parse().expect("tag");
    registry
        .put_manifest(repo, &tag, Some(&MediaType::OCI_MANIFEST), artifact.manifest.bytes().clone(), &[])
        .await
        .expect("manifest");
}

/// Serves `registry` on loopback for the rest of the run; its base URL.
async fn serve(registry: Wharf) -> String {
    let server = Server::bind("127.0.0.1:0".parse().expect("addr"), registry).await.expect("bind");
    let base = format!("http://{}", server.local_addr());
    std::mem::forget(server.spawn());
    base
}

fn search(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (base, http) = rt.block_on(async {
        let registry = registry(dir.path()).await;
        let started = Instant::now();
        let modules = modules();
        for r in 0..REPOSITORIES {
            let repo: Repository = format!("team-{}/service-{r}", r % 7).parse().expect("name");
            for k in 0..ARTIFACTS / REPOSITORIES {
                let module = modules[(r + k) % modules.len()].clone();
                let artifact = ArtifactBuilder::new(module)
                    .with_annotation("org.opencontainers.image.version", format!("1.{k}.0"))
                    .cncf()
                    .expect("artifact");
                push(&registry, &repo, &format!("v{k}"), &artifact).await;
            }
        }
        println!("search: {ARTIFACTS} artifacts pushed in {:.1} s", started.elapsed().as_secs_f64());
        let base = serve(registry).await;
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

const PACKAGES: usize = 1_000;
const GREETER: &str = "package acme:greeter@0.1.0;\ninterface hello { greet: func(name: string) -> string; }";

/// Package `i` of the 1,000: a component exporting `acme:greeter/hello` (i % 4 == 0), a
/// component importing it (1), a WIT package whose world imports it (2), or a component that
/// uses only WASI (3); each in its own package `acme:pkg-<i>@1.0.0`, so every binary differs.
fn package(i: usize) -> Vec<u8> {
    let own = format!("acme:pkg-{i}@1.0.0");
    let clocks = "package wasi:clocks@0.2.0;\ninterface wall-clock { now: func() -> u64; }";
    let world = match i % 4 {
        0 => "import wasi:clocks/wall-clock@0.2.0; export acme:greeter/hello@0.1.0;",
        1 => "import acme:greeter/hello@0.1.0; import wasi:clocks/wall-clock@0.2.0;",
        2 => "import acme:greeter/hello@0.1.0;",
        _ => "import wasi:clocks/wall-clock@0.2.0;",
    };
    let text = format!("package {own};\nworld app {{ {world} }}");
    if i % 4 == 2 {
        wharf::wasm::wit::encode_package(&[GREETER, clocks, &text]).expect("WIT package")
    } else {
        wharf::wasm::wit::dummy_component(&[GREETER, clocks, &text], "app").expect("component")
    }
}

/// How many results a search has (one page of up to 5,000).
async fn count(http: &reqwest::Client, base: &str, query: &str) -> usize {
    let url = format!("{base}/v2/_wharf/search?{query}&n=5000");
    let json: serde_json::Value = http.get(&url).send().await.expect("send").json().await.expect("json");
    json["results"].as_array().map_or(0, Vec::len)
}

fn packages(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (base, http) = rt.block_on(async {
        let registry = registry(dir.path()).await;
        let started = Instant::now();
        let greeter = wharf::wasm::wit::encode_package(&[GREETER]).expect("WIT package");
        let binaries = std::iter::once(("acme/greeter".to_owned(), greeter))
            .chain((0..PACKAGES).map(|i| (format!("acme/pkg-{i}"), package(i))));
        for (path, binary) in binaries {
            let repo: Repository = format!("pkgs/{path}").parse().expect("name");
            let artifact = ArtifactBuilder::new(binary).cncf().expect("artifact");
            let tag = if path == "acme/greeter" { "0.1.0" } else { "1.0.0" };
            push(&registry, &repo, tag, &artifact).await;
        }
        println!("search: {} packages pushed in {:.1} s", PACKAGES + 1, started.elapsed().as_secs_f64());
        (serve(registry).await, reqwest::Client::new())
    });

    let mut group = c.benchmark_group("search-packages-1k");
    group.sample_size(50).measurement_time(Duration::from_secs(10));
    for (name, query, expected) in [
        ("depends-acme-greeter", "depends=acme:greeter", PACKAGES * 3 / 4),
        ("depends-acme-greeter-0.1.0", "depends=acme:greeter@0.1.0", PACKAGES * 3 / 4),
        ("export-hello-component", "export=acme:greeter/hello&kind=component", PACKAGES / 4),
        ("kind-wit-package", "kind=wit-package", PACKAGES / 4 + 1),
    ] {
        let found = rt.block_on(count(&http, &base, query));
        println!("search: {query}: {found} results");
        assert_eq!(found, expected, "{query}");
        let url = format!("{base}/v2/_wharf/search?{query}");
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async { http.get(&url).send().await.expect("send").bytes().await.expect("body") })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, search, packages);
criterion_main!(benches);
