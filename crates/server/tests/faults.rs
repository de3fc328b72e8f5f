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
