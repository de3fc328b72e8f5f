//! Measure any OCI registry over HTTP, optionally side by side with a baseline: blob push
//! (monolithic and chunked), pull (with and without verification), manifest PUTs, manifest
//! GET/HEAD at several concurrencies with p50/p99, a 1,000-tag list, and the servers' CPU time
//! and memory when their process ids are given. Target and baseline runs are interleaved, so a
//! noisy machine hits both alike; every row prints the median, the spread and the ratio.
//!
//! ```text
//! cargo run --release --example bench_registry -- --target http://127.0.0.1:5000 \
//!     [--baseline http://127.0.0.1:5001] [--server-pid PID] [--baseline-pid PID] [--runs 3]
//! ```
//!
//! `benches/compare.sh` starts `wharf-server` and Debian's `docker-registry` on loopback and
//! runs this against both. Every run pushes fresh content (no deduplication helps either side).

// Rates and percentiles are floating point over byte and request counts far below 2^52.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use wharf::types::{Digest, Digester};

const MIB: usize = 1024 * 1024;

#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmark OCI registries over HTTP")]
struct Args {
    /// The registry measured, e.g. http://127.0.0.1:5000.
    #[arg(long, required_unless_present_any = ["loopback_only", "receive_webhooks"])]
    target: Option<String>,
    /// Only measure the machine's references: loopback TCP and SHA-256 throughput.
    #[arg(long)]
    loopback_only: bool,
    /// A registry to compare with, measured in the same interleaved runs.
    #[arg(long)]
    baseline: Option<String>,
    /// The machine's ceiling for the GET/HEAD rows: a web server (Debian's nginx in
    /// `benches/compare.sh`) answering every path with a static file of the manifest's size,
    /// measured by the same client in the same interleaved runs; each such row gets its ratio.
    #[arg(long)]
    ceiling: Option<String>,
    /// The target's name in the table.
    #[arg(long, default_value = "target")]
    target_name: String,
    /// The baseline's name in the table.
    #[arg(long, default_value = "baseline")]
    baseline_name: String,
    /// The target server's process id: CPU time per operation and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The baseline server's process id.
    #[arg(long)]
    baseline_pid: Option<u32>,
    /// Runs per row (medians over them).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Untimed runs per row and registry before the measured ones (fresh directories, caches
    /// and connection pools warm up).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Seconds per run of each GET/HEAD concurrency level.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Divide every size and count by this (a quick smoke run: `--scale 16`).
    #[arg(long, default_value_t = 1)]
    scale: usize,
    /// Only the blob rows (`blobs`), the manifest rows (`manifests`), the access-control
    /// rows (`auth`: manifest GET at concurrency 64 anonymously, with Basic credentials and
    /// with a Bearer token from the target's `/token`; needs `--credentials`), or the scale
    /// rows (`scale`: tags and catalog pages of a big repository and a big registry), or the
    /// trust-policy row (`trust`: manifest GET at concurrency 64 on the target, which enforces
    /// a trust policy over `bench/**` trusting `--signing-key`, against the baseline, the same
    /// server without one).
    /// Or the webhook row (`webhooks`: image pushes one after the other on the target, which
    /// has three webhooks, against the baseline, the same server without any).
    #[arg(long, value_parser = ["blobs", "manifests", "auth", "scale", "trust", "webhooks"])]
    only: Option<String>,
    /// Instead of measuring: receive webhook deliveries on this loopback port, answering each
    /// POST 204 and counting it (the webhook row's receiver: it stands in for a system
    /// elsewhere, so it takes as little of this machine as it can: HTTP/1.1, keep-alive, no
    /// parsing beyond the head).
    #[arg(long)]
    receive_webhooks: Option<u16>,
    /// `--only trust`: the PEM private key (P-256) that signs every manifest pushed to the
    /// target, in cosign's layout (by `openssl dgst -sign`).
    #[arg(long)]
    signing_key: Option<std::path::PathBuf>,
    /// `--only scale`: the tags of the big repository.
    #[arg(long, default_value_t = 100_000)]
    tags: usize,
    /// `--only scale`: the repositories of the big registry.
    #[arg(long, default_value_t = 10_000)]
    repositories: usize,
    /// `user:password` for `--only auth` (both registries), who may push to `bench/**`.
    #[arg(long)]
    credentials: Option<String>,
    /// Only the GET/HEAD rows whose name contains this (e.g. `blob HEAD`, `by digest,
    /// concurrency 16`): one row measured alone, for a profile.
    #[arg(long)]
    rows: Option<String>,
    /// Write the table as Markdown here too.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
}

/// One registry under test.
struct Registry {
    label: String,
    base: String,
    pid: Option<u32>,
    http: reqwest::Client,
    /// What every request carries as `Authorization`, if anything.
    authorization: Option<reqwest::header::HeaderValue>,
}

/// One measured run: wall time, work done, the server's CPU seconds (filled in by
/// `measure`), request latencies (for the GET/HEAD rows).
struct Sample {
    wall: f64,
    work: f64,
    cpu: Option<f64>,
    latencies: Vec<f64>,
}

impl Sample {
    fn of(wall: f64, work: f64) -> Self {
        Self { wall, work, cpu: None, latencies: Vec::new() }
    }
}

/// What a row reports for one registry.
struct Summary {
    rate: f64,
    min: f64,
    max: f64,
    cpu_per_op: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
}

struct Row {
    name: String,
    unit: &'static str,
    /// Higher is better for rates; a latency row (tags list) reports ms, lower is better.
    per: Per,
    /// One per registry; `None` where the registry cannot do the row (no token service).
    results: Vec<Option<Summary>>,
    /// Each registry's value in each run, in run order (empty when not measured by runs).
    runs: Vec<Vec<f64>>,
    /// The same requests answered by the ceiling (`--ceiling`), where measured.
    ceiling: Option<Summary>,
}

#[derive(Clone, Copy)]
enum Per {
    /// `work / wall`: MiB/s or requests/s.
    Rate,
    /// `wall / work` in milliseconds.
    Latency,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(port) = args.receive_webhooks {
        return receive_webhooks(port).await;
    }
    let Some(target) = &args.target else { return physical().await };
    let mut registries = vec![Registry::new(&args.target_name, target, args.server_pid)?];
    if let Some(base) = &args.baseline {
        registries.push(Registry::new(&args.baseline_name, base, args.baseline_pid)?);
    }
    let idle: Vec<Option<(u64, u64)>> = registries.iter().map(|r| r.pid.and_then(memory)).collect();
    if args.only.as_deref() == Some("auth") {
        return auth_rows(&args, &registries, &idle, u64::from(std::process::id()) ^ now_nanos()).await;
    }
    if args.only.as_deref() == Some("trust") {
        return trust_rows(&args, &registries, &idle, u64::from(std::process::id()) ^ now_nanos()).await;
    }
    if args.only.as_deref() == Some("webhooks") {
        return webhook_rows(&args, &registries, &idle, u64::from(std::process::id()) ^ now_nanos()).await;
    }
    if args.only.as_deref() == Some("scale") {
        return scale_rows(&args, &registries, &idle, u64::from(std::process::id()) ^ now_nanos()).await;
    }
    for r in &registries {
        let status = r.http.get(format!("{}/v2/", r.base)).send().await?.status();
        assert!(status.is_success(), "{}: GET /v2/ answered {status}", r.base);
    }
    let run_id = u64::from(std::process::id()) ^ now_nanos();
    let scale = args.scale.max(1);
    let mut rows = Vec::new();
    let blobs = args.only.as_ref().is_none_or(|o| o == "blobs");
    let manifests = args.only.as_ref().is_none_or(|o| o == "manifests");
    let mut seed = run_id;
    let mut fresh = |size: usize| {
        seed = seed.wrapping_add(1);
        let data = wharf::store::testing::content(seed, size);
        let digest = Digest::sha256(&data);
        (data, digest)
    };
    for size in [64 * MIB / scale, 512 * MIB / scale].into_iter().filter(|_| blobs) {
        let name = format!("push {}, monolithic (POST + PUT)", human(size));
        rows.push(
            measure(&registries, &args, &name, "MiB/s", Per::Rate, |r| {
                let (data, digest) = fresh(size);
                async move {
                    let (secs, ()) = timed(r.push_monolithic("bench/push", data, &digest)).await?;
                    Ok(Sample::of(secs, mib(size)))
                }
            })
            .await?,
        );
    }
    let size = 256 * MIB / scale;
    let chunk = 8 * MIB / scale;
    if blobs {
        let name = format!("push {}, chunked ({} PATCHes)", human(size), human(chunk));
        rows.push(
            measure(&registries, &args, &name, "MiB/s", Per::Rate, |r| {
                let (data, digest) = fresh(size);
                async move {
                    let (secs, ()) = timed(r.push_chunked("bench/chunked", data, &digest, chunk)).await?;
                    Ok(Sample::of(secs, mib(size)))
                }
            })
            .await?,
        );
    }
    // One 512 MiB blob to pull, in every registry.
    let size = 512 * MIB / scale;
    let (big, pulled) = fresh(size);
    for r in registries.iter().filter(|_| blobs) {
        r.push_monolithic("bench/pull", big.clone(), &pulled).await?;
    }
    drop(big);
    for verify in [false, true].into_iter().filter(|_| blobs) {
        let name = format!("pull {}{}", human(size), if verify { ", client verifies SHA-256" } else { "" });
        rows.push(
            measure(&registries, &args, &name, "MiB/s", Per::Rate, |r| {
                let digest = pulled.clone();
                async move {
                    let (secs, n) = timed(r.pull("bench/pull", &digest, verify)).await?;
                    assert_eq!(n, size as u64, "pulled size");
                    Ok(Sample::of(secs, mib(size)))
                }
            })
            .await?,
        );
    }

    if manifests {
        // 1,000 manifests PUT one after the other, each tagged: they also make the tags list.
        let count = 1000 / scale;
        let mut round = 0u64;
        let mut last_repo = vec![String::new(); registries.len()];
        // What each registry's last repository holds: its manifests' digests, its two blobs.
        let held: Vec<std::sync::Mutex<(Vec<Digest>, Vec<Digest>)>> =
            registries.iter().map(|_| std::sync::Mutex::default()).collect();
        let puts = measure(
            &registries,
            &args,
            &format!("{count} manifest PUTs, sequential, by tag"),
            "PUT/s",
            Per::Rate,
            |r| {
                round += 1;
                let repo = format!("bench/manifests-{run_id:x}-{round}");
                let i = index_of(&registries, r);
                last_repo[i].clone_from(&repo);
                let held = &held[i];
                async move {
                    let (config, layer) = r.small_blobs(&repo).await?;
                    let manifests: Vec<Bytes> =
                        (0..count).map(|i| manifest(&config, &layer, run_id, i)).collect();
                    let start = Instant::now();
                    let mut acknowledged = Vec::with_capacity(count);
                    for (i, body) in manifests.iter().enumerate() {
                        acknowledged.push(r.put_manifest(&repo, &format!("t{i:04}"), body.clone()).await?);
                    }
                    let secs = start.elapsed().as_secs_f64();
                    // Every acknowledged manifest is there, by digest, with the bytes that were PUT.
                    for (digest, body) in acknowledged.iter().zip(&manifests) {
                        assert_eq!(&r.get_manifest(&repo, digest.as_str()).await?, body, "manifest {digest}");
                    }
                    *held.lock().expect("lock") = (acknowledged, vec![config.0, layer.0]);
                    Ok(Sample::of(secs, count as f64))
                }
            },
        )
        .await?;
        rows.push(puts);
        // What the PUTs left to do in the background (Wharf reads each pushed layer for a
        // Wasm module) is done before the GET/HEAD rows are measured.
        for r in &registries {
            settle(r).await;
        }

        // The GET/HEAD rows, with the ceiling (a static file at every path) beside them.
        let ceiling = args.ceiling.as_deref().map(|base| Registry::new("ceiling", base, None)).transpose()?;
        let mut hot: Vec<Registry> = registries.iter().map(Registry::clone_handle).collect();
        hot.extend(ceiling);
        let paths = |i: usize, what: Paths| -> Arc<Vec<String>> {
            // The ceiling answers the target's paths.
            let i = if i < registries.len() { i } else { 0 };
            let repo = &last_repo[i];
            Arc::new(match what {
                Paths::Tags => (0..count).map(|t| format!("/v2/{repo}/manifests/t{t:04}")).collect(),
                Paths::Digests => held[i]
                    .lock()
                    .expect("lock")
                    .0
                    .iter()
                    .map(|d| format!("/v2/{repo}/manifests/{d}"))
                    .collect(),
                Paths::Blobs => {
                    held[i].lock().expect("lock").1.iter().map(|d| format!("/v2/{repo}/blobs/{d}")).collect()
                }
            })
        };
        let levels: &[(Paths, &str, &[usize])] =
            &[(Paths::Tags, "by tag", &[1, 16, 64]), (Paths::Digests, "by digest", &[16, 64])];
        for &(what, by, concurrencies) in levels {
            for (method, label) in
                [(reqwest::Method::GET, "manifest GET"), (reqwest::Method::HEAD, "manifest HEAD")]
            {
                for &concurrency in concurrencies {
                    let name = format!("{label} {by}, concurrency {concurrency}");
                    if !wanted(&args, &name) {
                        continue;
                    }
                    rows.push(
                        hot_row(&hot, registries.len(), &args, &name, &method, concurrency, |i| {
                            paths(i, what)
                        })
                        .await?,
                    );
                }
            }
        }
        for concurrency in [16, 64] {
            let name = format!("blob HEAD, concurrency {concurrency}");
            if !wanted(&args, &name) {
                continue;
            }
            rows.push(
                hot_row(&hot, registries.len(), &args, &name, &reqwest::Method::HEAD, concurrency, |i| {
                    paths(i, Paths::Blobs)
                })
                .await?,
            );
        }
        let name = format!("tags list of {count} tags");
        if wanted(&args, &name) {
            rows.push(
                measure(&registries, &args, &name, "ms", Per::Latency, |r| {
                    let repo = last_repo[index_of(&registries, r)].clone();
                    async move {
                        let start = Instant::now();
                        for _ in 0..200 {
                            assert_eq!(r.tags(&repo).await?, count, "tags listed");
                        }
                        Ok(Sample::of(start.elapsed().as_secs_f64(), 200.0))
                    }
                })
                .await?,
            );
        }
    }

    publish(&args, &render(&registries, &rows, &idle))
}

/// What a GET/HEAD row requests, in turn.
#[derive(Clone, Copy)]
enum Paths {
    /// The repository's manifests by tag.
    Tags,
    /// The same manifests by digest.
    Digests,
    /// The repository's blobs.
    Blobs,
}

/// A GET/HEAD row at `concurrency` on the registries and, when `hot` holds one more than
/// `registries` registries, on the ceiling (its summary goes to `Row::ceiling`).
async fn hot_row(
    hot: &[Registry],
    registries: usize,
    args: &Args,
    name: &str,
    method: &reqwest::Method,
    concurrency: usize,
    paths: impl Fn(usize) -> Arc<Vec<String>>,
) -> Result<Row> {
    let mut row = measure(hot, args, name, "req/s", Per::Rate, |r| {
        let paths = paths(index_of(hot, r));
        let (method, seconds) = (method.clone(), args.seconds);
        async move { r.hammer_paths(method, paths, concurrency, seconds).await }
    })
    .await?;
    if hot.len() > registries {
        row.ceiling = row.results.pop().flatten();
        row.runs.pop();
    }
    Ok(row)
}

/// Sends `count` operations, `SETUP_CONCURRENCY` at a time.
async fn in_parallel<F, Fut>(count: usize, op: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut results = futures_util::stream::iter((0..count).map(op)).buffer_unordered(16);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(())
}

/// Whether `--rows` leaves the GET/HEAD row `name` in.
fn wanted(args: &Args, name: &str) -> bool {
    args.rows.as_deref().is_none_or(|part| name.contains(part))
}

/// The scale rows: a repository of `--tags` tags beside one of 1,000, a registry of
/// `--repositories` repositories (the catalog also measured at 1,000), and for each the first
/// page of 100, a page deep inside, the whole walk 100 at a time (per name listed), and
/// manifest GET by tag at concurrency 16 over the big repository.
async fn scale_rows(
    args: &Args,
    registries: &[Registry],
    idle: &[Option<(u64, u64)>],
    run: u64,
) -> Result<()> {
    let (big, repos) = (args.tags.max(1000), args.repositories.max(1000));
    let mut rows = Vec::new();
    let prefix = format!("scale-{run:x}");
    let small_repo = format!("{prefix}/tags-1000");
    let big_repo = format!("{prefix}/tags-{big}");
    // Setup, in every registry: the two tag repositories, then the repositories up to 1,000
    // (catalog rows), then up to `repos` (catalog rows again).
    for r in registries {
        let start = Instant::now();
        for (repo, count) in [(&small_repo, 1000), (&big_repo, big)] {
            let (config, layer) = r.small_blobs(repo).await?;
            in_parallel(count, |i| {
                let body = scale_manifest(&config, &layer, run, i);
                async move { r.put_manifest(repo, &format!("t{i:04}"), body).await.map(drop) }
            })
            .await?;
        }
        eprintln!("{}: {big} + 1000 tags pushed in {:.0} s", r.label, start.elapsed().as_secs_f64());
    }
    let page = |n: usize, last: Option<String>| match last {
        Some(last) => format!("?n={n}&last={last}"),
        None => format!("?n={n}"),
    };
    let tag_rows = [
        ("tags: first page of 100, of 1,000 tags".to_owned(), small_repo.clone(), page(100, None)),
        (format!("tags: first page of 100, of {big} tags"), big_repo.clone(), page(100, None)),
        (
            format!("tags: page of 100 after t{:04}, of {big} tags", big / 2),
            big_repo.clone(),
            page(100, Some(format!("t{:04}", big / 2))),
        ),
    ];
    for (name, repo, query) in &tag_rows {
        let path = format!("/v2/{repo}/tags/list{query}");
        rows.push(page_row(registries, args, name, &path, 100).await?);
    }
    // Wharf's own listings (the target only): a page of artifact records with their tags,
    // first and deep (after the middle of the digest space).
    let middle_digest = format!("sha256:8{}", "0".repeat(63));
    for (repo, count) in [(&small_repo, 1000), (&big_repo, big)] {
        for (at, query) in [
            ("first page", page(100, None)),
            ("page after sha256:8…", page(100, Some(middle_digest.clone()))),
        ] {
            let name = format!("_wharf/artifacts: {at} of 100, of {count} (wharf only)");
            let path = format!("/v2/{repo}/_wharf/artifacts{query}");
            rows.push(page_row(&registries[..1], args, &name, &path, 100).await?);
        }
    }
    for (repo, count) in [(&small_repo, 1000), (&big_repo, big)] {
        let name = format!("tags: whole walk of {count} tags, 100 a page (per tag)");
        rows.push(
            measure(registries, args, &name, "µs", Per::Latency, |r| async move {
                let start = Instant::now();
                let n = r.walk(&format!("/v2/{repo}/tags/list?n=100"), "tags").await?;
                assert_eq!(n, count, "tags walked");
                Ok(Sample::of(start.elapsed().as_secs_f64() * 1000.0, count as f64))
            })
            .await?,
        );
    }
    let mut made = 2;
    for target in [1000, repos] {
        for r in registries {
            let start = Instant::now();
            let (config, layer) = r.small_blobs(&small_repo).await?;
            in_parallel(target - made, |i| {
                let repo = format!("{prefix}/r{:06}", made + i);
                let body = scale_manifest(&config, &layer, run, made + i);
                let (config, layer) = (config.clone(), layer.clone());
                let from = small_repo.clone();
                async move {
                    r.mount(&repo, &config.0, &from).await?;
                    r.mount(&repo, &layer.0, &from).await?;
                    r.put_manifest(&repo, "v1", body).await.map(drop)
                }
            })
            .await?;
            eprintln!("{}: {target} repositories in {:.0} s", r.label, start.elapsed().as_secs_f64());
        }
        made = target;
        let name = format!("catalog: first page of 100, of {target} repositories");
        rows.push(page_row(registries, args, &name, &format!("/v2/_catalog{}", page(100, None)), 100).await?);
        let middle = format!("{prefix}/r{:06}", target / 2);
        let name = format!("catalog: page of 100 after r{:06}, of {target} repositories", target / 2);
        rows.push(
            page_row(registries, args, &name, &format!("/v2/_catalog{}", page(100, Some(middle))), 100)
                .await?,
        );
        let name =
            format!("_wharf/repositories: page of 100 after r{:06}, of {target} (wharf only)", target / 2);
        let middle = format!("{prefix}/r{:06}", target / 2);
        let path = format!("/v2/_wharf/repositories{}", page(100, Some(middle)));
        rows.push(page_row(&registries[..1], args, &name, &path, 100).await?);
        let name = format!("catalog: whole walk of {target} repositories, 100 a page (per name)");
        rows.push(
            measure(registries, args, &name, "µs", Per::Latency, |r| async move {
                let start = Instant::now();
                let n = r.walk("/v2/_catalog?n=100", "repositories").await?;
                assert!(n >= target, "repositories walked: {n}");
                Ok(Sample::of(start.elapsed().as_secs_f64() * 1000.0, n as f64))
            })
            .await?,
        );
    }
    let name = format!("manifest GET by tag, concurrency 16, of {big} tags");
    rows.push(
        measure(registries, args, &name, "req/s", Per::Rate, |r| {
            let repo = big_repo.clone();
            let seconds = args.seconds;
            async move { r.hammer(reqwest::Method::GET, &repo, 16, seconds, big).await }
        })
        .await?,
    );
    publish(args, &render(registries, &rows, idle))
}

/// A row of one page request, repeated: the median time of a page in ms.
async fn page_row(
    registries: &[Registry],
    args: &Args,
    name: &str,
    path: &str,
    expect: usize,
) -> Result<Row> {
    measure(registries, args, name, "ms", Per::Latency, |r| async move {
        let start = Instant::now();
        let mut latencies = Vec::new();
        for _ in 0..20 {
            let one = Instant::now();
            let response = r.http.get(r.url(path)).send().await?;
            if !response.status().is_success() {
                return Err(format!("GET {path}: {}", response.status()).into());
            }
            let body: serde_json::Value = response.json().await?;
            let listed = ["tags", "repositories", "artifacts"]
                .iter()
                .find_map(|key| body[*key].as_array())
                .map_or(0, Vec::len);
            // distribution 2.8.2 ignores `n` on tags lists: it answers every tag.
            assert!(listed >= expect, "a full page from {path}: {listed}");
            latencies.push(one.elapsed().as_secs_f64());
        }
        Ok(Sample { wall: start.elapsed().as_secs_f64(), work: 20.0, cpu: None, latencies })
    })
    .await
}

/// The access-control rows: manifest GET by tag at concurrency 64, anonymously (the target
/// only: a repository anonymous may pull), with Basic credentials (both registries: the
/// baseline pays bcrypt on each request), and with a Bearer token from the target's `/token`.
async fn auth_rows(
    args: &Args,
    registries: &[Registry],
    idle: &[Option<(u64, u64)>],
    run_id: u64,
) -> Result<()> {
    use base64::Engine as _;
    let credentials = args.credentials.as_deref().ok_or("--only auth needs --credentials user:password")?;
    let (user, password) = credentials.split_once(':').ok_or("--credentials is user:password")?;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
    let repo = format!("bench/auth-{run_id:x}");
    let count = 64;
    let mut with_basic = Vec::new();
    for r in registries {
        let authed = Registry::with_authorization(&r.label, &r.base, r.pid, Some(&basic))?;
        let (config, layer) = authed.small_blobs(&repo).await?;
        for i in 0..count {
            authed.put_manifest(&repo, &format!("t{i:04}"), manifest(&config, &layer, run_id, i)).await?;
        }
        with_basic.push(authed);
    }
    let target = &registries[0];
    let token: serde_json::Value = target
        .http
        .get(format!("{}/token?service=wharf&scope=repository:{repo}:pull", target.base))
        .basic_auth(user, Some(password))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["token"].as_str().ok_or("the token endpoint answered no token")?;
    let bearer = Registry::with_authorization(
        &target.label,
        &target.base,
        target.pid,
        Some(&format!("Bearer {token}")),
    )?;
    let anonymous = Registry::new(&target.label, &target.base, target.pid)?;
    let seconds = args.seconds;
    let hammer = |r: &Registry| {
        let r = r.clone_handle();
        let repo = repo.clone();
        async move { r.hammer(reqwest::Method::GET, &repo, 64, seconds, count).await }
    };
    // The three ways in, interleaved run by run on the target (the first rows of a run are
    // slower while the machine warms up; interleaving keeps that out of the ratios).
    let trio = [anonymous, with_basic[0].clone_handle(), bearer];
    let names = ["anonymous", "Basic credentials", "Bearer token"];
    let all = measure(
        &trio,
        args,
        "manifest GET by tag, concurrency 64, anonymous/Basic/Bearer",
        "req/s",
        Per::Rate,
        hammer,
    )
    .await?;
    let mut rows: Vec<Row> = all
        .results
        .into_iter()
        .zip(names)
        .map(|(summary, how)| {
            let mut results = vec![summary];
            results.resize_with(registries.len(), || None);
            Row {
                name: format!("manifest GET by tag, concurrency 64, {how}"),
                unit: all.unit,
                per: all.per,
                results,
                runs: Vec::new(),
                ceiling: None,
            }
        })
        .collect();
    if let Some(baseline) = with_basic.get(1) {
        let basic = measure(
            std::slice::from_ref(baseline),
            args,
            "baseline, Basic credentials",
            "req/s",
            Per::Rate,
            hammer,
        )
        .await?;
        rows[1].results[1] = basic.results.into_iter().next().flatten();
    }
    let mut table = render(registries, &rows, idle);
    let rate = |i: usize| rows[i].results[0].as_ref().map_or(f64::NAN, |s| s.rate);
    let _ = std::fmt::Write::write_fmt(
        &mut table,
        format_args!(
            "\n{}: Bearer token at {:.0} % and Basic credentials at {:.0} % of the anonymous rate (target: ≥ 80 %)\n",
            target.label,
            rate(2) / rate(0) * 100.0,
            rate(1) / rate(0) * 100.0
        ),
    );
    publish(args, &table)
}

/// The trust-policy row: manifest GET by tag at concurrency 64 on the target, where an
/// `enforce` policy judges every pull (its manifests signed in cosign's layout, the signatures
/// verified by the server's job before the row starts), and on the baseline (the same server
/// without a policy), interleaved run by run.
async fn trust_rows(
    args: &Args,
    registries: &[Registry],
    idle: &[Option<(u64, u64)>],
    run_id: u64,
) -> Result<()> {
    use base64::Engine as _;
    let key = args.signing_key.as_ref().ok_or("--only trust needs --signing-key")?;
    if registries.len() != 2 {
        return Err("--only trust needs --baseline (the same server without a trust policy)".into());
    }
    let repo = format!("bench/trust-{run_id:x}");
    let count = 64;
    let scratch = std::env::temp_dir().join(format!("wharf-bench-trust-{run_id:x}"));
    std::fs::create_dir_all(&scratch)?;
    for (n, r) in registries.iter().enumerate() {
        let (config, layer) = r.small_blobs(&repo).await?;
        let empty = Digest::sha256(b"{}");
        r.push_monolithic(&repo, Bytes::from_static(b"{}"), &empty).await?;
        for i in 0..count {
            let digest =
                r.put_manifest(&repo, &format!("t{i:04}"), manifest(&config, &layer, run_id, i)).await?;
            if n > 0 {
                continue;
            }
            // cosign's simple-signing payload over the digest, signed by openssl.
            let payload = format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
            );
            let file = scratch.join("payload.json");
            std::fs::write(&file, &payload)?;
            let out = std::process::Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(key)
                .arg(&file)
                .output()?;
            if !out.status.success() {
                return Err(format!("openssl: {}", String::from_utf8_lossy(&out.stderr)).into());
            }
            let signature = base64::engine::general_purpose::STANDARD.encode(&out.stdout);
            let payload_digest = Digest::sha256(payload.as_bytes());
            let payload_len = payload.len();
            r.push_monolithic(&repo, Bytes::from(payload), &payload_digest).await?;
            let sig = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{payload_digest}","size":{payload_len},"annotations":{{"dev.cosignproject.cosign/signature":"{signature}"}}}}]}}"#
            );
            let tag = format!("{}-{}.sig", digest.algorithm(), digest.encoded());
            r.put_manifest(&repo, &tag, Bytes::from(sig)).await?;
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    // Every tag pulls from the target once its signature is verified (the job runs after the
    // push).
    let target = &registries[0];
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    for i in 0..count {
        while target.get_manifest(&repo, &format!("t{i:04}")).await.is_err() {
            if Instant::now() > deadline {
                return Err(format!("{}: t{i:04} of {repo} never became pullable", target.label).into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let seconds = args.seconds;
    let row = measure(
        registries,
        args,
        "manifest GET by tag, concurrency 64, signed (enforce) / no trust policy",
        "req/s",
        Per::Rate,
        |r: &Registry| {
            let r = r.clone_handle();
            let repo = repo.clone();
            async move { r.hammer(reqwest::Method::GET, &repo, 64, seconds, count).await }
        },
    )
    .await?;
    let rate = |i: usize| row.results[i].as_ref().map_or(f64::NAN, |s| s.rate);
    let ratio = rate(0) / rate(1) * 100.0;
    let mut table = render(registries, std::slice::from_ref(&row), idle);
    let _ = std::fmt::Write::write_fmt(
        &mut table,
        format_args!(
            "\n{} under an enforce trust policy at {ratio:.0} % of {} (target: ≥ 90 %)\n",
            registries[0].label, registries[1].label
        ),
    );
    publish(args, &table)
}

/// The webhook row: image pushes (two fresh blobs, a manifest PUT by tag), one after the
/// other, on the target (three webhooks: every push records two events for each, delivered by
/// its job queue meanwhile) and on the baseline (the same server without webhooks), in short
/// stretches that alternate between them (ABBA), many of them: a pair of stretches runs in the
/// same second of the machine, so the drift of the disk and the VM weighs on both alike. Each
/// stretch ends when its server is quiet — on the target, once every event of its pushes is
/// delivered — so that no server's background work (deliveries, inspections) falls in the
/// other's stretch. Then every event is checked delivered.
async fn webhook_rows(
    args: &Args,
    registries: &[Registry],
    idle: &[Option<(u64, u64)>],
    run_id: u64,
) -> Result<()> {
    /// Pushes per stretch, and stretches per server per `--runs`.
    const STRETCH: usize = 50;
    const STRETCHES_PER_RUN: usize = 20;
    /// Events per push for each webhook (`manifest.pushed`, `tag.created`), and webhooks.
    const EVENTS_PER_PUSH: f64 = 2.0 * 3.0;
    if registries.len() != 2 {
        return Err("--only webhooks needs --baseline (the same server without webhooks)".into());
    }
    let count = (STRETCH / args.scale.max(1)).max(1);
    let stretch_args = Args { runs: args.runs.max(1) * STRETCHES_PER_RUN, ..args.clone() };
    let mut round = 0u64;
    let mut expected = delivered(&registries[0]).await?;
    let row = measure(
        registries,
        &stretch_args,
        &format!(
            "image pushes (2 blobs + manifest PUT), sequential, in stretches of {count}, 3 webhooks / none"
        ),
        "pushes/s",
        Per::Rate,
        |r| {
            round += 1;
            let repo = format!("bench/hooks-{run_id:x}-{round}");
            let target = std::ptr::eq(r, std::ptr::from_ref(&registries[0]));
            if target {
                expected += EVENTS_PER_PUSH * count as f64;
            }
            let expected = expected;
            async move {
                let start = Instant::now();
                for i in 0..count {
                    let config = Bytes::from(format!(r#"{{"architecture":"amd64","os":"linux","n":{i}}}"#));
                    let layer = Bytes::from(format!("layer {i} of {repo}"));
                    let mut described = Vec::new();
                    for blob in [config, layer] {
                        let digest = Digest::sha256(&blob);
                        described.push((digest.clone(), blob.len()));
                        r.push_monolithic(&repo, blob, &digest).await?;
                    }
                    r.put_manifest(
                        &repo,
                        &format!("t{i:04}"),
                        manifest(&described[0], &described[1], run_id, i),
                    )
                    .await?;
                }
                let pushed = start.elapsed().as_secs_f64();
                if target {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while delivered(r).await? < expected {
                        if Instant::now() > deadline {
                            return Err(format!("{}: events not delivered within a minute", r.label).into());
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                quiet(r).await;
                Ok(Sample::of(pushed, count as f64))
            }
        },
    )
    .await?;
    // What the target's webhooks delivered: everything.
    let target = &registries[0];
    webhooks_drained(target).await?;
    let delivered = delivered(target).await?;
    let rate = |i: usize| row.results[i].as_ref().map_or(f64::NAN, |s| s.rate);
    let (with, without) = (1000.0 / rate(0), 1000.0 / rate(1));
    // Each pair of stretches (the same second of this machine) compared.
    let mut paired: Vec<f64> =
        row.runs[1].iter().zip(&row.runs[0]).map(|(bare, hooks)| bare / hooks - 1.0).collect();
    paired.sort_by(f64::total_cmp);
    // And all of each side's time: the mean latency over every push.
    let total = |i: usize| row.runs[i].iter().map(|rate| 1.0 / rate).sum::<f64>();
    let mut table = render(registries, std::slice::from_ref(&row), idle);
    let _ = std::fmt::Write::write_fmt(
        &mut table,
        format_args!(
            "\n{} stretches of {count} pushes on each: push latency, median of stretches {with:.2} ms with three \
             webhooks, {without:.2} ms without: {:+.1} %; mean over every push {:+.1} %; pair by pair, the \
             median of the differences {:+.1} % (quartiles {:+.1} … {:+.1} %) (target: within 5 %); \
             {delivered:.0} events delivered, none parked\n",
            paired.len(),
            (with / without - 1.0) * 100.0,
            (total(0) / total(1) - 1.0) * 100.0,
            median(&paired) * 100.0,
            paired[paired.len() / 4] * 100.0,
            paired[paired.len() * 3 / 4] * 100.0,
        ),
    );
    publish(args, &table)
}

/// The webhook deliveries `r` made, by its `/metrics`.
async fn delivered(r: &Registry) -> Result<f64> {
    let metrics = r.http.get(format!("{}/metrics", r.base)).send().await?.text().await?;
    Ok(metrics
        .lines()
        .filter(|l| l.starts_with("wharf_webhook_deliveries_total{") && l.contains("outcome=\"delivered\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Waits until `r` uses no CPU for 30 ms (one clock tick or less; at most 10 s).
async fn quiet(r: &Registry) {
    idle_for(r, Duration::from_millis(30), 0.011, 300).await;
}

/// Waits until the webhooks of `target` have nothing pending (at most 5 minutes); an error if
/// any event was parked.
async fn webhooks_drained(target: &Registry) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status: serde_json::Value =
            target.http.get(format!("{}/v2/_wharf/webhooks", target.base)).send().await?.json().await?;
        let hooks = status["webhooks"].as_array().cloned().unwrap_or_default();
        if hooks.len() != 3 {
            return Err(format!("{}: expected three webhooks, found {}", target.label, hooks.len()).into());
        }
        let pending: u64 = hooks.iter().map(|h| h["pending"].as_u64().unwrap_or(0)).sum();
        let parked: u64 = hooks.iter().map(|h| h["parkedCount"].as_u64().unwrap_or(0)).sum();
        if parked > 0 {
            return Err(format!("{}: {parked} events parked", target.label).into());
        }
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{}: {pending} events still pending", target.label).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints a table, and writes it to `--markdown` when given.
fn publish(args: &Args, table: &str) -> Result<()> {
    println!("{table}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, table)?;
    }
    Ok(())
}

/// Answers every request on `127.0.0.1:port` with 204, reading each body whole (by its
/// `content-length`); never returns.
async fn receive_webhooks(port: u16) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (mut socket, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                // One request: its head, then `content-length` bytes of body.
                let (head_end, length) = loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                while buf.len() < head_end + length {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                buf.drain(..head_end + length);
                if socket.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The machine's limits: one TCP stream over loopback, and SHA-256 on one core.
async fn physical() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let total = 2048 * MIB;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0usize;
        loop {
            match socket.read(&mut buf).await? {
                0 => return Ok::<usize, std::io::Error>(n),
                k => n += k,
            }
        }
    });
    let chunk = vec![7u8; 256 * 1024];
    let start = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    for _ in 0..total / chunk.len() {
        socket.write_all(&chunk).await?;
    }
    socket.shutdown().await?;
    let n = reader.await??;
    let secs = start.elapsed().as_secs_f64();
    println!("  loopback TCP, one stream, 2 GiB: {:.0} MiB/s", mib(n) / secs);
    let data = wharf::store::testing::content(1, 512 * MIB);
    let start = Instant::now();
    let _ = Digest::sha256(&data);
    println!(
        "  SHA-256 (sha2 crate), 512 MiB on one core: {:.0} MiB/s",
        512.0 / start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn index_of(registries: &[Registry], r: &Registry) -> usize {
    registries.iter().position(|x| std::ptr::eq(x, r)).expect("a registry of the list")
}

/// Runs `op` `args.runs` times on every registry, interleaved, and summarises each.
async fn measure<'a, F, Fut>(
    registries: &'a [Registry],
    args: &Args,
    name: &str,
    unit: &'static str,
    per: Per,
    mut op: F,
) -> Result<Row>
where
    F: FnMut(&'a Registry) -> Fut,
    Fut: std::future::Future<Output = Result<Sample>> + 'a,
{
    eprint!("{name}:");
    for r in registries {
        for _ in 0..args.warmup {
            let warm = op(r).await?;
            eprint!(" ({})", fmt_value(per, warm.wall, warm.work));
        }
    }
    let mut samples: Vec<Vec<Sample>> = registries.iter().map(|_| Vec::new()).collect();
    for run in 0..args.runs.max(1) {
        // Who goes first alternates, so that neither always runs after the other's work.
        let mut order: Vec<(usize, &'a Registry)> = registries.iter().enumerate().collect();
        if run % 2 == 1 {
            order.reverse();
        }
        for (i, r) in order {
            let cpu_before = r.pid.and_then(cpu_seconds);
            let mut sample = op(r).await?;
            sample.cpu = cpu_before.zip(r.pid.and_then(cpu_seconds)).map(|(a, b)| b - a);
            eprint!(" {}", fmt_value(per, sample.wall, sample.work));
            samples[i].push(sample);
        }
    }
    eprintln!();
    let results = samples.iter().map(|s| Some(summarise(s, per))).collect();
    let runs = samples.iter().map(|s| s.iter().map(|x| value(per, x.wall, x.work)).collect()).collect();
    Ok(Row { name: name.to_owned(), unit, per, results, runs, ceiling: None })
}

fn summarise(samples: &[Sample], per: Per) -> Summary {
    let mut values: Vec<f64> = samples.iter().map(|s| value(per, s.wall, s.work)).collect();
    values.sort_by(f64::total_cmp);
    let cpu: Option<Vec<f64>> = samples.iter().map(|s| s.cpu.map(|c| c / s.work)).collect();
    let mut latencies: Vec<f64> = samples.iter().flat_map(|s| s.latencies.iter().copied()).collect();
    latencies.sort_by(f64::total_cmp);
    Summary {
        rate: median(&values),
        min: values[0],
        max: values[values.len() - 1],
        cpu_per_op: cpu.map(|mut c| {
            c.sort_by(f64::total_cmp);
            median(&c)
        }),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

fn value(per: Per, wall: f64, work: f64) -> f64 {
    match per {
        Per::Rate => work / wall,
        Per::Latency => wall / work * 1000.0,
    }
}

fn fmt_value(per: Per, wall: f64, work: f64) -> String {
    format!("{:.1}", value(per, wall, work))
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]) }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// `64 MiB`, `512 KiB`, …
fn human(bytes: usize) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / MIB as f64
}

async fn timed<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<(f64, T)> {
    let start = Instant::now();
    let out = f.await?;
    Ok((start.elapsed().as_secs_f64(), out))
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// A small image manifest made unique by an annotation.
fn manifest(config: &(Digest, usize), layer: &(Digest, usize), run: u64, i: usize) -> Bytes {
    manifest_with(config, layer, "application/vnd.oci.image.layer.v1.tar+gzip", run, i)
}

/// The scale rows' manifests: an uncompressed Docker layer, which wharf does not probe for a
/// Wasm file (an OCI tar+gzip last layer queues a background job that reads it, F7), so no
/// backlog of 100,000 such jobs competes with the timed listings.
fn scale_manifest(config: &(Digest, usize), layer: &(Digest, usize), run: u64, i: usize) -> Bytes {
    manifest_with(config, layer, "application/vnd.docker.image.rootfs.diff.tar", run, i)
}

fn manifest_with(
    config: &(Digest, usize),
    layer: &(Digest, usize),
    layer_type: &str,
    run: u64,
    i: usize,
) -> Bytes {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0.as_str(), "size": config.1},
        "layers": [{"mediaType": layer_type, "digest": layer.0.as_str(), "size": layer.1}],
        "annotations": {"org.example.bench.run": format!("{run:x}"), "org.example.bench.index": i.to_string()},
    }))
    .expect("JSON")
    .into()
}

impl Registry {
    fn new(label: &str, base: &str, pid: Option<u32>) -> Result<Self> {
        Self::with_authorization(label, base, pid, None)
    }

    /// A registry whose every request carries `authorization`.
    fn with_authorization(
        label: &str,
        base: &str,
        pid: Option<u32>,
        authorization: Option<&str>,
    ) -> Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        let authorization = authorization
            .map(|value| {
                let mut value = reqwest::header::HeaderValue::from_str(value)?;
                value.set_sensitive(true);
                Ok::<_, reqwest::header::InvalidHeaderValue>(value)
            })
            .transpose()?;
        if let Some(value) = &authorization {
            headers.insert(reqwest::header::AUTHORIZATION, value.clone());
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .default_headers(headers)
            .build()?;
        Ok(Self {
            label: label.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            pid,
            http,
            authorization,
        })
    }

    /// Another handle on the same registry and connection pool.
    fn clone_handle(&self) -> Self {
        Self {
            label: self.label.clone(),
            base: self.base.clone(),
            pid: self.pid,
            http: self.http.clone(),
            authorization: self.authorization.clone(),
        }
    }

    fn url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    async fn start_upload(&self, repo: &str) -> Result<String> {
        let response = self.http.post(format!("{}/v2/{repo}/blobs/uploads/", self.base)).send().await?;
        let status = response.status();
        if status != reqwest::StatusCode::ACCEPTED {
            return Err(format!("POST upload: {status}").into());
        }
        location_of(&response).map(|l| self.url(&l))
    }

    async fn finish_upload(&self, location: &str, digest: &Digest, body: Bytes) -> Result<()> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let response = self
            .http
            .put(format!("{location}{sep}digest={digest}"))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await?;
        let status = response.status();
        if status != reqwest::StatusCode::CREATED {
            return Err(format!("PUT upload: {status}: {}", response.text().await.unwrap_or_default()).into());
        }
        Ok(())
    }

    /// POST, then one PUT with the whole blob (what oras-py, npm and most CLIs do).
    async fn push_monolithic(&self, repo: &str, data: Bytes, digest: &Digest) -> Result<()> {
        let location = self.start_upload(repo).await?;
        self.finish_upload(&location, digest, data).await
    }

    /// POST, one PATCH per chunk with its `Content-Range`, then an empty PUT.
    async fn push_chunked(&self, repo: &str, data: Bytes, digest: &Digest, chunk: usize) -> Result<()> {
        let mut location = self.start_upload(repo).await?;
        for start in (0..data.len()).step_by(chunk) {
            let piece = data.slice(start..(start + chunk).min(data.len()));
            let end = start + piece.len() - 1;
            let response = self
                .http
                .patch(&location)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_RANGE, format!("{start}-{end}"))
                .header(CONTENT_LENGTH, piece.len())
                .body(piece)
                .send()
                .await?;
            if response.status() != reqwest::StatusCode::ACCEPTED {
                return Err(format!("PATCH: {}", response.status()).into());
            }
            location = self.url(&location_of(&response)?);
        }
        self.finish_upload(&location, digest, Bytes::new()).await
    }

    /// Streams a blob; with `verify`, a second thread hashes it while the next chunks arrive
    /// (as a client that writes to disk would). Returns the bytes read.
    async fn pull(&self, repo: &str, digest: &Digest, verify: bool) -> Result<u64> {
        let response = self.http.get(format!("{}/v2/{repo}/blobs/{digest}", self.base)).send().await?;
        if !response.status().is_success() {
            return Err(format!("GET blob: {}", response.status()).into());
        }
        let mut stream = response.bytes_stream();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let mut digester = Digester::new(digest.algorithm());
        let hasher = verify.then(|| {
            tokio::task::spawn_blocking(move || {
                while let Some(chunk) = rx.blocking_recv() {
                    digester.update(&chunk);
                }
                digester
            })
        });
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            if hasher.is_some() {
                tx.send(chunk).await?;
            }
        }
        drop(tx);
        if let Some(hasher) = hasher {
            hasher.await?.verify(digest)?;
        }
        Ok(n)
    }

    async fn small_blobs(&self, repo: &str) -> Result<((Digest, usize), (Digest, usize))> {
        let config = Bytes::from_static(
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        );
        let layer = Bytes::from(format!("layer of {repo}"));
        let mut out = Vec::new();
        for blob in [config, layer] {
            let digest = Digest::sha256(&blob);
            let len = blob.len();
            self.push_monolithic(repo, blob, &digest).await?;
            out.push((digest, len));
        }
        let layer = out.pop().expect("two blobs");
        Ok((out.pop().expect("two blobs"), layer))
    }

    async fn put_manifest(&self, repo: &str, tag: &str, body: Bytes) -> Result<Digest> {
        let digest = Digest::sha256(&body);
        let response = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header(CONTENT_TYPE, "application/vnd.oci.image.manifest.v1+json")
            .body(body)
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::CREATED {
            return Err(format!("PUT manifest: {}: {}", response.status(), response.text().await?).into());
        }
        Ok(digest)
    }

    async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Bytes> {
        let response = self
            .http
            .get(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header(reqwest::header::ACCEPT, "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("GET manifest {reference}: {}", response.status()).into());
        }
        Ok(response.bytes().await?)
    }

    /// `concurrency` workers send `method` requests for tags of `repo` for `seconds`;
    /// returns the requests done, with their latencies.
    async fn hammer(
        &self,
        method: reqwest::Method,
        repo: &str,
        concurrency: usize,
        seconds: f64,
        tags: usize,
    ) -> Result<Sample> {
        let paths = (0..tags.max(1)).map(|t| format!("/v2/{repo}/manifests/t{t:04}")).collect();
        self.hammer_paths(method, Arc::new(paths), concurrency, seconds).await
    }

    /// `method` on `paths` in turn from `concurrency` clients for `seconds`; every answer must
    /// be a success. Each client is one HTTP/1.1 connection driven by hyper directly (no pool,
    /// no URL parsing per request): the lighter the client, the more of the two cores the
    /// servers and the ceiling get, and the less its own queueing weighs on their p99.
    async fn hammer_paths(
        &self,
        method: reqwest::Method,
        paths: Arc<Vec<String>>,
        concurrency: usize,
        seconds: f64,
    ) -> Result<Sample> {
        let host = self.base.strip_prefix("http://").ok_or("the GET/HEAD rows speak plain HTTP")?.to_owned();
        let addr: std::net::SocketAddr = host.parse()?;
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let start = Instant::now();
        let workers = (0..concurrency).map(|w| {
            let (method, paths, host) = (method.clone(), Arc::clone(&paths), host.clone());
            let authorization = self.authorization.clone();
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
                tokio::spawn(connection);
                let mut latencies = Vec::new();
                let mut i = w;
                while Instant::now() < deadline {
                    let path = &paths[i % paths.len()];
                    i += concurrency;
                    let mut request = hyper::Request::builder()
                        .method(method.clone())
                        .uri(path.as_str())
                        .header(hyper::header::HOST, host.as_str())
                        .header(hyper::header::ACCEPT, "application/vnd.oci.image.manifest.v1+json");
                    if let Some(value) = &authorization {
                        request = request.header(hyper::header::AUTHORIZATION, value.clone());
                    }
                    let request = request.body(http_body_util::Empty::<Bytes>::new())?;
                    let one = Instant::now();
                    sender.ready().await?;
                    let response = sender.send_request(request).await?;
                    let status = response.status();
                    http_body_util::BodyExt::collect(response.into_body()).await?;
                    if !status.is_success() {
                        return Err::<Vec<f64>, Box<dyn std::error::Error + Send + Sync>>(
                            format!("{method} {path}: {status}").into(),
                        );
                    }
                    latencies.push(one.elapsed().as_secs_f64());
                }
                Ok(latencies)
            })
        });
        let mut all = Vec::new();
        for worker in futures_util::future::join_all(workers).await {
            all.extend(worker??);
        }
        let wall = start.elapsed().as_secs_f64();
        Ok(Sample { wall, work: all.len() as f64, cpu: None, latencies: all })
    }

    /// Lists every tag, following `Link` pagination; returns how many.
    async fn tags(&self, repo: &str) -> Result<usize> {
        self.walk(&format!("/v2/{repo}/tags/list"), "tags").await
    }

    /// Mounts `digest` from `from` into `repo`.
    async fn mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<()> {
        let url = format!("{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}", self.base);
        let response = self.http.post(url).send().await?;
        if response.status() != reqwest::StatusCode::CREATED {
            return Err(format!("mount into {repo}: {}", response.status()).into());
        }
        Ok(())
    }

    /// Follows `Link` pagination from `path`, counting the names in `field`.
    async fn walk(&self, path: &str, field: &str) -> Result<usize> {
        let mut url = self.url(path);
        let mut n = 0;
        loop {
            let response = self.http.get(&url).send().await?;
            let next = response
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(['<', '>']).nth(1))
                .map(|l| self.url(l));
            let list: serde_json::Value = response.json().await?;
            n += list[field].as_array().map_or(0, Vec::len);
            match next {
                Some(next) => url = next,
                None => return Ok(n),
            }
        }
    }
}

fn location_of(response: &reqwest::Response) -> Result<String> {
    Ok(response.headers().get(LOCATION).ok_or("no Location")?.to_str()?.to_owned())
}

/// Waits (at most two minutes) until the server of `r` is idle: under 5 % of a core over half
/// a second.
async fn settle(r: &Registry) {
    idle_for(r, Duration::from_millis(500), 0.025, 240).await;
}

/// Waits until the server of `r` uses less than `cpu` seconds over `span`, at most `tries`
/// spans.
async fn idle_for(r: &Registry, span: Duration, cpu: f64, tries: usize) {
    let Some(pid) = r.pid else { return };
    for _ in 0..tries {
        let before = cpu_seconds(pid);
        tokio::time::sleep(span).await;
        match before.zip(cpu_seconds(pid)) {
            Some((a, b)) if b - a < cpu => return,
            None => return,
            _ => {}
        }
    }
}

/// CPU seconds (user + system) the process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// (VmRSS, VmHWM) in KiB from `/proc/<pid>/status`.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn render(registries: &[Registry], rows: &[Row], idle: &[Option<(u64, u64)>]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let labels: Vec<&str> = registries.iter().map(|r| r.label.as_str()).collect();
    let _ = write!(out, "| row | {} (median, min–max) | server CPU per op |", labels[0]);
    if registries.len() > 1 {
        let _ = write!(out, " {} (median, min–max) | server CPU per op | ratio |", labels[1]);
    }
    let ceiling = rows.iter().any(|r| r.ceiling.is_some());
    if ceiling {
        let _ = write!(out, " ceiling: nginx, a static file (median, min–max) | {} / ceiling |", labels[0]);
    }
    out.push('\n');
    let columns = if registries.len() > 1 { 6 } else { 3 } + if ceiling { 2 } else { 0 };
    let _ = writeln!(out, "|{}", "---|".repeat(columns));
    for row in rows {
        let _ = write!(out, "| {} |", row.name);
        for s in &row.results {
            let Some(s) = s else {
                out.push_str(" n/a | |");
                continue;
            };
            let latency = match (s.p50, s.p99) {
                (Some(p50), Some(p99)) if matches!(row.per, Per::Rate) && row.unit == "req/s" => {
                    format!("; p50 {:.2} ms, p99 {:.2} ms", p50 * 1000.0, p99 * 1000.0)
                }
                _ => String::new(),
            };
            let cpu = s.cpu_per_op.map_or("–".to_owned(), |c| cpu_per(row.unit, c));
            let _ = write!(out, " {:.1} {} ({:.1}–{:.1}){latency} | {cpu} |", s.rate, row.unit, s.min, s.max);
        }
        if registries.len() > 1 && row.results.len() < 2 {
            out.push_str(" n/a | |");
        }
        if let [Some(t), Some(b)] = &row.results[..] {
            let ratio = match row.per {
                Per::Rate => t.rate / b.rate,
                Per::Latency => b.rate / t.rate,
            };
            let _ = write!(out, " {ratio:.2}× |");
        } else if registries.len() > 1 {
            out.push_str(" – |");
        }
        match (&row.ceiling, row.results.first()) {
            (Some(c), Some(Some(t))) => {
                let latency = c.p99.map_or(String::new(), |p99| format!("; p99 {:.2} ms", p99 * 1000.0));
                let _ = write!(
                    out,
                    " {:.1} {} ({:.1}–{:.1}){latency} | {:.0} % |",
                    c.rate,
                    row.unit,
                    c.min,
                    c.max,
                    t.rate / c.rate * 100.0
                );
            }
            _ if ceiling => out.push_str(" – | – |"),
            _ => {}
        }
        out.push('\n');
    }
    let _ = write!(out, "| server memory: idle RSS, peak RSS (VmHWM) over the run |");
    for (r, idle) in registries.iter().zip(idle) {
        let now = r.pid.and_then(memory);
        match (idle, now) {
            (Some((rss, _)), Some((_, hwm))) => {
                let _ = write!(
                    out,
                    " idle {:.1} MiB, peak {:.1} MiB | |",
                    *rss as f64 / 1024.0,
                    hwm as f64 / 1024.0
                );
            }
            _ => out.push_str(" – | |"),
        }
    }
    if registries.len() > 1 {
        out.push_str(" |");
    }
    out.push('\n');
    out
}

/// Server CPU per unit of work, in a readable unit.
fn cpu_per(unit: &str, seconds: f64) -> String {
    match unit {
        "MiB/s" => format!("{:.2} CPU-s/GiB", seconds * 1024.0),
        _ => format!("{:.0} µs", seconds * 1e6),
    }
}
