//! The faults operators page about, on the real server binary: a disk that fills up (a small
//! tmpfs, mounted by the test: root only), a crash between journaling a batch and applying it
//! followed by restarts on a full disk and then with space. Reads go on, nothing acknowledged
//! is lost, nothing lands in quarantine, and every refused write says the disk is full.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use wharf_types::Digest;

use crate::common::{Process, image_manifest};

/// A tmpfs of `mib` MiB mounted on a fresh folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (the test is skipped, with a note) when this process may not mount; with
    /// `WHARF_REQUIRE_ALL=1` that fails instead.
    fn mount(test: &str, mib: u32) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Self { dir });
        }
        assert!(
            std::env::var("WHARF_REQUIRE_ALL").map_or(true, |v| v != "1"),
            "{test}: cannot mount a tmpfs (run as root) and WHARF_REQUIRE_ALL=1"
        );
        eprintln!("SKIPPED {test}: cannot mount a tmpfs (needs root)");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn storage(&self) -> String {
        format!("fs:{}", self.path().display())
    }

    /// Fills what is left with a file, to the last byte; its path.
    fn fill(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        let mut file = std::fs::File::create(&path).expect("filler");
        for size in [1 << 20, 1 << 12, 1] {
            let chunk = vec![0x5a; size];
            while file.write_all(&chunk).is_ok() {}
        }
        path
    }

    /// Nothing was set aside as unreadable.
    fn assert_nothing_quarantined(&self) {
        let quarantine = self.path().join("quarantine");
        let entries = std::fs::read_dir(&quarantine).map_or(0, Iterator::count);
        assert_eq!(entries, 0, "nothing lands in {}", quarantine.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// An image pushed (config, one layer, manifest at a tag).
#[derive(Debug)]
struct Image {
    repo: String,
    tag: String,
    manifest: String,
    blobs: Vec<Digest>,
}

/// A refused request: the step, its status (`None`: no answer, the connection broke),
/// `Retry-After`, its body.
#[derive(Debug)]
#[allow(dead_code, reason = "read through Debug")]
struct Refused {
    step: &'static str,
    status: Option<StatusCode>,
    retry_after: Option<String>,
    body: String,
}

impl Refused {
    /// The storage-full answer: 507, `Retry-After`, a distribution-style body saying so.
    fn assert_storage_full(&self) {
        assert_eq!(self.status, Some(StatusCode::INSUFFICIENT_STORAGE), "{self:?}");
        assert!(self.retry_after.is_some(), "{self:?}: Retry-After");
        let json: serde_json::Value = serde_json::from_str(&self.body).expect("a JSON error body");
        assert_eq!(json["errors"][0]["code"], "UNAVAILABLE", "{self:?}");
        assert!(
            json["errors"][0]["message"].as_str().is_some_and(|m| m.contains("out of storage space")),
            "{self:?}"
        );
    }
}

/// Bytes that differ for each `seed` (so each layer is a new blob).
fn layer(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

async fn send(
    request: reqwest::RequestBuilder,
    step: &'static str,
    expected: StatusCode,
) -> Result<(), Refused> {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Err(Refused { step, status: None, retry_after: None, body: e.to_string() }),
    };
    let status = response.status();
    if status == expected {
        return Ok(());
    }
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    Err(Refused { step, status: Some(status), retry_after, body })
}

async fn push(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    seed: u64,
    size: usize,
) -> Result<Image, Refused> {
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    let data = layer(seed, size);
    let mut blobs = Vec::new();
    for bytes in [config.clone(), data.clone()] {
        let digest = Digest::sha256(&bytes);
        let url = format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}");
        send(http.post(url).body(bytes), "blob", StatusCode::CREATED).await?;
        blobs.push(digest);
    }
    let manifest = image_manifest(&blobs[0], config.len(), &[(blobs[1].clone(), data.len())], "");
    let url = format!("{base}/v2/{repo}/manifests/{tag}");
    let put = http
        .put(url)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone());
    send(put, "manifest", StatusCode::CREATED).await?;
    Ok(Image { repo: repo.to_owned(), tag: tag.to_owned(), manifest, blobs })
}

/// The image reads back whole: by tag, by digest, every blob verifying.
async fn assert_pulls(http: &reqwest::Client, base: &str, image: &Image) {
    let digest = Digest::sha256(image.manifest.as_bytes());
    for reference in [image.tag.clone(), digest.to_string()] {
        let url = format!("{base}/v2/{}/manifests/{reference}", image.repo);
        let response = http
            .get(url)
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{}:{reference}", image.repo);
        assert_eq!(response.text().await.expect("body"), image.manifest, "{}:{reference}", image.repo);
    }
    for blob in &image.blobs {
        let response =
            http.get(format!("{base}/v2/{}/blobs/{blob}", image.repo)).send().await.expect("GET blob");
        assert_eq!(response.status(), StatusCode::OK, "{blob}");
        let bytes = response.bytes().await.expect("blob bytes");
        assert_eq!(Digest::sha256(&bytes), *blob, "blob {blob} reads back whole");
    }
}

async fn readyz(http: &reqwest::Client, base: &str) -> (StatusCode, serde_json::Value) {
    let response = http.get(format!("{base}/readyz")).send().await.expect("readyz");
    let status = response.status();
    (status, response.json().await.expect("readyz JSON"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Issue 31: pushes fill a 24 MiB disk; every refused push says the disk is full (507); pulls
/// go on; the server restarts on the full disk (a SIGKILL during the incident) and serves
/// every acknowledged image; once space is freed, pushes work again without a restart; nothing
/// is lost or quarantined.
#[test]
fn a_full_disk_is_a_read_only_registry_until_space_returns() {
    let Some(disk) = Tmpfs::mount("a_full_disk_is_a_read_only_registry", 24) else { return };
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let mut server = Process::start(&disk.storage());
        server.ready(&http).await;
        let mut acked = Vec::new();
        let mut refused = 0;
        for i in 0..40u64 {
            match push(&http, &server.base, "team/app", &format!("v{i}"), i, 1 << 20).await {
                Ok(image) => acked.push(image),
                Err(r) => {
                    r.assert_storage_full();
                    refused += 1;
                    if refused == 3 {
                        break;
                    }
                }
            }
        }
        assert_eq!(refused, 3, "the disk filled up");
        assert!(acked.len() >= 5, "{} images fit", acked.len());
        let (status, body) = readyz(&http, &server.base).await;
        assert_eq!(
            (status, body["status"].as_str(), body["storage"].as_str()),
            (StatusCode::OK, Some("degraded"), Some("full"))
        );
        let metrics = http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(metrics.contains("wharf_storage_degraded{fault=\"full\"} 1"), "{metrics}");
        for image in &acked {
            assert_pulls(&http, &server.base, image).await;
        }

        // To the last byte, then a crash in the middle of the incident.
        let filler = disk.fill("filler");
        push(&http, &server.base, "team/app", "late", 100, 4096)
            .await
            .expect_err("full")
            .assert_storage_full();
        assert!(server.signal("-KILL").code().is_none());
        std::fs::remove_file(&filler).expect("remove the filler");
        let filler = disk.fill("filler");
        let server = Process::start(&disk.storage());
        server.ready(&http).await;
        for image in &acked {
            assert_pulls(&http, &server.base, image).await;
        }
        let tags = http.get(format!("{}/v2/team/app/tags/list", server.base)).send().await.expect("tags");
        assert_eq!(tags.status(), StatusCode::OK);
        let refusal = push(&http, &server.base, "team/app", "late", 101, 4096).await.expect_err("still full");
        refusal.assert_storage_full();

        // Space returns: pushes work again, in the same process.
        std::fs::remove_file(&filler).expect("free space");
        let late = push(&http, &server.base, "team/app", "late", 102, 4096)
            .await
            .expect("a push once space returned");
        assert_pulls(&http, &server.base, &late).await;
        let (status, body) = readyz(&http, &server.base).await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ready")));
        for image in &acked {
            assert_pulls(&http, &server.base, image).await;
        }
        disk.assert_nothing_quarantined();
        let metrics = http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(metrics.contains("wharf_store_quarantined 0"), "{metrics}");
    });
}

/// Issue 31: a SIGKILL after a manifest PUT's batch was journaled and before it was applied;
/// a restart on a full disk starts and serves what was there (the batch waits, is not
/// quarantined); space returns and the batch is applied before the next write; a restart then
/// still has it.
#[test]
fn a_batch_journaled_before_a_crash_survives_a_restart_on_a_full_disk() {
    let Some(disk) = Tmpfs::mount("a_batch_journaled_before_a_crash", 32) else { return };
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let mut server = Process::start_env(
            &["--storage", &disk.storage()],
            &[("WHARF_TEST_KILL_AFTER_JOURNAL", "_manifests/tags/crash")],
        );
        server.ready(&http).await;
        let before = push(&http, &server.base, "team/app", "before", 1, 1 << 20).await.expect("push");
        // The tag `crash` is journaled, then the process dies before applying it.
        let crashed = push(&http, &server.base, "team/app", "crash", 2, 1 << 20).await;
        assert!(crashed.is_err_and(|r| r.status.is_none()), "the PUT of `crash` got no answer");
        let status = server.signal("-KILL");
        assert!(status.code().is_none(), "killed by a signal: {status}");

        let filler = disk.fill("filler");
        let server = Process::start(&disk.storage());
        server.ready(&http).await;
        assert_pulls(&http, &server.base, &before).await;
        push(&http, &server.base, "team/app", "more", 3, 4096).await.expect_err("full").assert_storage_full();
        disk.assert_nothing_quarantined();

        std::fs::remove_file(&filler).expect("free space");
        let more =
            push(&http, &server.base, "team/app", "more", 3, 4096).await.expect("a push once space returned");
        let crash = Image {
            repo: "team/app".into(),
            tag: "crash".into(),
            manifest: image_manifest(
                &Digest::sha256(b"{\"seed\":2}"),
                10,
                &[(Digest::sha256(&layer(2, 1 << 20)), 1 << 20)],
                "",
            ),
            blobs: vec![Digest::sha256(b"{\"seed\":2}"), Digest::sha256(&layer(2, 1 << 20))],
        };
        assert_pulls(&http, &server.base, &crash).await;
        drop(server);
        let server = Process::start(&disk.storage());
        server.ready(&http).await;
        for image in [&before, &crash, &more] {
            assert_pulls(&http, &server.base, image).await;
        }
        disk.assert_nothing_quarantined();
    });
}

/// A throw-away Garage of this test's own (`.ci/garage.sh`), to stop, freeze and restart.
struct Garage {
    home: PathBuf,
    /// `WHARF_S3_URL` and the `AWS_*` variables.
    env: Vec<(String, String)>,
    /// The process started again by [`restart`](Self::restart), waited for when dropped.
    restarted: std::sync::Mutex<Option<std::process::Child>>,
}

impl Garage {
    /// `None` (skipped, with a note) without the `garage` binary; with `WHARF_REQUIRE_ALL=1`
    /// that fails instead.
    fn start(test: &str) -> Option<Self> {
        let home = std::env::temp_dir().join(format!("wharf-outage-{}", wharf_store::UploadId::random()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/garage.sh");
        let output = std::process::Command::new("bash")
            .arg(script)
            .arg("start")
            .arg(&home)
            .env("GARAGE_BASE_PORT", "3960")
            .output();
        match output {
            Ok(o) if o.status.success() => {
                let env = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
                    .collect();
                Some(Self { home, env, restarted: std::sync::Mutex::default() })
            }
            other => {
                let why =
                    other.map_or_else(|e| e.to_string(), |o| String::from_utf8_lossy(&o.stderr).into_owned());
                assert!(
                    std::env::var("WHARF_REQUIRE_ALL").map_or(true, |v| v != "1"),
                    "{test}: Garage did not start and WHARF_REQUIRE_ALL=1: {why}"
                );
                eprintln!("SKIPPED {test}: Garage did not start ({why})");
                None
            }
        }
    }

    fn var(&self, name: &str) -> &str {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).expect(name)
    }

    fn pid(&self) -> String {
        std::fs::read_to_string(self.home.join("garage.pid")).expect("garage.pid").trim().to_owned()
    }

    fn signal(&self, signal: &str) {
        assert!(
            std::process::Command::new("kill").args([signal, &self.pid()]).status().expect("kill").success()
        );
    }

    /// Killed (SIGKILL), then started again on its data.
    fn restart(&self) {
        self.signal("-KILL");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let log = std::fs::File::create(self.home.join("garage-restarted.log")).expect("log");
        let child =
            std::process::Command::new(std::env::var("GARAGE_BIN").unwrap_or_else(|_| "garage".into()))
                .arg("-c")
                .arg(self.home.join("garage.toml"))
                .args(["server", "--single-node", "--default-bucket"])
                .env("GARAGE_DEFAULT_BUCKET", "registry")
                .env("GARAGE_DEFAULT_ACCESS_KEY", self.var("AWS_ACCESS_KEY_ID"))
                .env("GARAGE_DEFAULT_SECRET_KEY", self.var("AWS_SECRET_ACCESS_KEY"))
                .env("RUST_LOG", "garage=warn")
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .expect("garage");
        std::fs::write(self.home.join("garage.pid"), child.id().to_string()).expect("garage.pid");
        *self.restarted.lock().expect("lock") = Some(child);
    }

    /// A `wharf-server` process on this Garage, with `timeout` toward it.
    fn server(&self, timeout: &str) -> Process {
        let url = format!("{}&timeout={timeout}", self.var("WHARF_S3_URL"));
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Process::start_env(&["--storage", &url], &env)
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-CONT", &self.pid()]).status();
        let _ = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/garage.sh"))
            .arg("stop")
            .arg(&self.home)
            .status();
        if let Some(mut child) = self.restarted.lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a request during an outage may answer: what it would have, or 503 with
/// `Retry-After`; never 500, never a hang past `within`.
async fn during_outage(
    request: reqwest::RequestBuilder,
    ok: StatusCode,
    within: std::time::Duration,
) -> bool {
    let started = std::time::Instant::now();
    let response = request.send().await.expect("the server answers");
    let took = started.elapsed();
    assert!(took < within, "answered after {took:?}");
    let status = response.status();
    if status == ok {
        return true;
    }
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.text().await.unwrap_or_default());
    assert!(response.headers().contains_key("retry-after"), "503 with Retry-After");
    false
}

/// Issue 31: two servers over one Garage; Garage frozen (SIGSTOP), then killed, mid-run, with
/// pushes, pulls and a collection in flight; then restarted on its data. During the outage
/// every answer is what it would be or 503 with `Retry-After`, within the time-outs, tags read
/// before are still served, `/healthz` answers and `/readyz` says degraded; afterwards every
/// acknowledged push pulls whole from both processes, with no restart of either.
#[test]
fn an_s3_engine_that_stops_and_returns_costs_no_acknowledged_push() {
    let Some(garage) = Garage::start("an_s3_engine_that_stops_and_returns") else { return };
    runtime().block_on(async {
        let http =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().expect("client");
        let (one, two) = (garage.server("1s"), garage.server("1s"));
        one.ready(&http).await;
        two.ready(&http).await;
        let mut acked = Vec::new();
        for i in 0..3u64 {
            acked
                .push(push(&http, &one.base, "team/app", &format!("v{i}"), i, 64 << 10).await.expect("push"));
        }
        for image in &acked {
            assert_pulls(&http, &two.base, image).await;
        }
        // An upload session begun before the outage, its first half sent.
        let session = layer(77, 64 << 10);
        let begun = http.post(format!("{}/v2/team/app/blobs/uploads/", one.base)).send().await.expect("POST");
        assert_eq!(begun.status(), StatusCode::ACCEPTED);
        let location = begun.headers()["location"].to_str().expect("Location").to_owned();
        let location = if location.starts_with('/') { location } else { format!("/{location}") };
        let half = session.len() / 2;
        let patch = http
            .patch(format!("{}{location}", one.base))
            .header("content-range", format!("0-{}", half - 1))
            .header("content-type", "application/octet-stream")
            .body(session[..half].to_vec());
        assert_eq!(patch.send().await.expect("PATCH").status(), StatusCode::ACCEPTED);
        // Pushes, pulls and a collection, going on while the engine stops and returns.
        let (base_one, base_two) = (one.base.clone(), two.base.clone());
        let busy = {
            let http = http.clone();
            tokio::spawn(async move {
                let mut pushed = Vec::new();
                for i in 10..40u64 {
                    let base = if i % 2 == 0 { &base_one } else { &base_two };
                    match push(&http, base, "team/busy", &format!("b{i}"), i, 32 << 10).await {
                        Ok(image) => pushed.push(image),
                        Err(r) => {
                            assert!(
                                r.status == Some(StatusCode::SERVICE_UNAVAILABLE) && r.retry_after.is_some(),
                                "a push during the outage: {r:?}"
                            );
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                }
                pushed
            })
        };
        let collection = http.post(format!("{}/v2/_wharf/gc", one.base)).send();
        let within = std::time::Duration::from_secs(8);
        for (stop, name) in [("-STOP", "frozen"), ("-KILL", "killed")] {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            garage.signal(stop);
            let started = std::time::Instant::now();
            let push_url = format!("{}/v2/team/app/blobs/uploads/", one.base);
            assert!(
                !during_outage(http.post(&push_url), StatusCode::ACCEPTED, within).await,
                "{name}: a push"
            );
            let tag = format!("{}/v2/team/app/manifests/v1", two.base);
            let accept = "application/vnd.oci.image.manifest.v1+json";
            assert!(
                during_outage(http.get(&tag).header("accept", accept), StatusCode::OK, within).await,
                "{name}: a tag read before is served"
            );
            let health = http.get(format!("{}/healthz", two.base)).send().await.expect("healthz");
            assert_eq!(health.status(), StatusCode::OK, "{name}: /healthz");
            let ready = http.get(format!("{}/readyz", one.base)).send().await.expect("readyz");
            assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{name}: /readyz");
            let body: serde_json::Value = ready.json().await.expect("JSON");
            assert_eq!(
                (body["status"].as_str(), body["storage"].as_str()),
                (Some("degraded"), Some("unavailable"))
            );
            eprintln!("{name}: checked in {:?}", started.elapsed());
            if stop == "-STOP" {
                garage.signal("-CONT");
            }
        }
        garage.restart();
        // Both processes come back by themselves.
        for server in [&one, &two] {
            let mut ready = false;
            for _ in 0..120 {
                let r = http.get(format!("{}/readyz", server.base)).send().await.expect("readyz");
                if r.status() == StatusCode::OK {
                    ready = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            assert!(ready, "{} ready again without a restart", server.base);
        }
        let collected = collection.await.expect("the collection answers");
        assert!(
            matches!(collected.status(), StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE),
            "the collection during the outage: {}",
            collected.status()
        );
        acked.extend(busy.await.expect("the busy task"));
        // The session begun before the outage goes on, through the other process.
        let digest = Digest::sha256(&session);
        let patch = http
            .patch(format!("{}{location}", two.base))
            .header("content-range", format!("{half}-{}", session.len() - 1))
            .header("content-type", "application/octet-stream")
            .body(session[half..].to_vec());
        assert_eq!(
            patch.send().await.expect("PATCH").status(),
            StatusCode::ACCEPTED,
            "the session continues"
        );
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = http.put(format!("{}{location}{sep}digest={digest}", two.base)).send().await.expect("PUT");
        assert_eq!(put.status(), StatusCode::CREATED, "the session completes");
        let whole = http.get(format!("{}/v2/team/app/blobs/{digest}", one.base)).send().await.expect("GET");
        assert_eq!(Digest::sha256(&whole.bytes().await.expect("bytes")), digest);
        for i in 0..2u64 {
            let base = if i == 0 { &one.base } else { &two.base };
            acked.push(
                push(&http, base, "team/app", &format!("after{i}"), 100 + i, 64 << 10)
                    .await
                    .expect("push after"),
            );
        }
        let gc = http.post(format!("{}/v2/_wharf/gc", two.base)).send().await.expect("gc");
        assert_eq!(gc.status(), StatusCode::OK, "a collection after the outage");
        for image in &acked {
            assert_pulls(&http, &one.base, image).await;
            assert_pulls(&http, &two.base, image).await;
        }
        eprintln!("{} acknowledged pushes pull whole from both processes", acked.len());
    });
}

/// A TCP proxy on loopback that holds each chunk from the client `delay` before passing it
/// on: an engine that takes seconds per request. Its address.
async fn slow_proxy(upstream: std::net::SocketAddr, delay: std::time::Duration) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async {
                    let mut buf = vec![0; 64 << 10];
                    while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                        tokio::time::sleep(delay).await;
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = tokio::io::copy(&mut server_read, &mut client_write);
                tokio::select! {
                    () = up => {}
                    _ = down => {}
                }
            });
        }
    });
    addr
}

/// Issue 31: Garage behind a proxy that makes every request take 2 s. With `timeout=1s` every
/// request that needs the engine fails within the time-outs with 503 and `Retry-After`; with
/// `timeout=5s` a request goes through, slowly; `/healthz` answers at once throughout.
#[test]
fn a_slow_s3_engine_never_holds_a_request_past_the_time_outs() {
    let Some(url) = crate::common::s3_storage("a_slow_s3_engine", "slow") else { return };
    runtime().block_on(async {
        let endpoint = url.split("endpoint=").nth(1).and_then(|r| r.split('&').next()).expect("endpoint");
        let upstream: std::net::SocketAddr =
            endpoint.trim_start_matches("http://").parse().expect("a loopback endpoint");
        let proxy = slow_proxy(upstream, std::time::Duration::from_secs(2)).await;
        let slow = url.replace(endpoint, &format!("http://{proxy}"));
        let http =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build().expect("client");

        let impatient = Process::start(&format!("{slow}&timeout=1s"));
        let started = std::time::Instant::now();
        let health = http.get(format!("{}/healthz", impatient.base)).send().await.expect("healthz");
        assert_eq!(health.status(), StatusCode::OK);
        assert!(started.elapsed() < std::time::Duration::from_millis(500), "/healthz at once");
        for path in ["/v2/team/app/blobs/uploads/", "/v2/team/app/manifests/v1"] {
            let request = if path.ends_with('/') {
                http.post(format!("{}{path}", impatient.base))
            } else {
                http.get(format!("{}{path}", impatient.base))
            };
            // One try (1 s) plus the retries begun within the first second: about 2 s, then 503.
            let ok = during_outage(request, StatusCode::ACCEPTED, std::time::Duration::from_secs(6)).await;
            assert!(!ok, "{path}: the engine is slower than the time-out");
        }
        let health = http.get(format!("{}/healthz", impatient.base)).send().await.expect("healthz");
        assert_eq!(health.status(), StatusCode::OK);

        // Patient enough for the engine: the request takes its seconds, and answers.
        let patient = Process::start(&format!("{slow}&timeout=5s"));
        let started = std::time::Instant::now();
        let missing =
            http.get(format!("{}/v2/team/app/manifests/none", patient.base)).send().await.expect("GET");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND, "answered, slowly");
        let took = started.elapsed();
        assert!(
            took >= std::time::Duration::from_secs(2) && took < std::time::Duration::from_secs(10),
            "{took:?}"
        );
    });
}
