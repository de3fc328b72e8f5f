//! Webhooks against a receiver written with the receivers' own libraries
//! (`tests/webhooks/receiver.py`: PyPI's `standardwebhooks` verifies every delivery, the
//! CloudEvents SDK parses it): what each event says, retries in order, a SIGKILL with events
//! pending, two processes over one storage, parking and re-sending, and targets refused at
//! start.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use wharf_types::Digest;

use crate::common::{OCI_MANIFEST, Process, Reg, image_manifest, venv_python};

/// A Standard Webhooks key (the specification's example).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The workspace's `.venv` Python with the receiver's libraries (see [`venv_python`]).
fn python(test: &str) -> Option<PathBuf> {
    venv_python(test, &["standardwebhooks", "cloudevents.v1.http"])
}

/// `tests/webhooks/receiver.py` on a loopback port; killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Receiver {
    /// On `port` (0: any), answering 500 for the first `fail_for` seconds.
    fn start(python: &Path, dir: &Path, fail_for: f64, port: u16) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/webhooks/receiver.py");
        let log = dir.join(format!("received-{}.jsonl", wharf_store::UploadId::random()));
        let mut child = Command::new(python)
            .arg(&script)
            .arg(&log)
            .args(["--secret", SECRET, "--fail-for", &fail_for.to_string(), "--port", &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        let port = line.trim().strip_prefix("listening on ").and_then(|p| p.parse().ok()).expect("a port");
        Self { child, port, log }
    }

    /// Every request it logged, in order.
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// The deliveries it accepted (2xx), in order.
    fn accepted(&self) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["answered"] == 204).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Waits (at most `limit`) until `done` holds.
async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pushes an image (a config blob, a layer) to `repo` under `reference`; the annotation
/// makes each manifest distinct. Returns its digest.
async fn push_image(http: &reqwest::Client, base: &str, repo: &str, reference: &str, note: &str) -> Digest {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"not really a tar";
    for blob in [&config[..], &layer[..]] {
        let r = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={}", Digest::sha256(blob)))
            .body(blob.to_vec())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let manifest = image_manifest(
        &Digest::sha256(config),
        config.len(),
        &[(Digest::sha256(layer), layer.len())],
        &format!(r#","annotations":{{"note":"{note}"}}"#),
    );
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", OCI_MANIFEST)
        .header("X-Request-Id", format!("req-{note}"))
        .body(manifest.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    Digest::sha256(manifest.as_bytes())
}

/// `GET /v2/_wharf/webhooks`, checked against the OpenAPI document.
async fn webhook_status(reg: &Reg) -> Value {
    let status: Value =
        reg.req(Method::GET, "/v2/_wharf/webhooks").send().await.expect("send").json().await.expect("json");
    let (doc, mut errors) = (crate::openapi::document(), Vec::new());
    let schema = crate::openapi::response_schema(&doc, "/v2/_wharf/webhooks");
    crate::openapi::check(&doc, schema, &status, "/v2/_wharf/webhooks", &mut errors);
    assert!(errors.is_empty(), "the OpenAPI document does not describe it: {errors:?}");
    status
}

fn config_file(dir: &Path, text: &str) -> PathBuf {
    std::fs::write(dir.join("secret"), SECRET).expect("write");
    let path = dir.join("wharf.toml");
    std::fs::write(&path, text).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_arrives_signed_once_with_what_changed() {
    let Some(python) = python("every_event_arrives_signed_once_with_what_changed") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&python, dir.path(), 0.0, 0);
    let port = receiver.port;
    let text = format!(
        r#"
        [[wasm_policy]]
        name = "wasm-only"
        repositories = ["strict/*"]
        wasm_only = true

        [[quota]]
        name = "tiny"
        repositories = ["tiny/**"]
        max_bytes = "100B"

        [[webhook]]
        name = "all"
        url = "http://127.0.0.1:{port}/all?token=s3cr3t-query"
        secret_file = "secret"
        headers = {{ "X-Team" = "platform" }}
        allow_private = true

        [[webhook]]
        name = "dist"
        url = "http://127.0.0.1:{port}/dist"
        secret_file = "secret"
        format = "distribution"
        events = ["manifest.pushed", "manifest.deleted"]
        repositories = ["app/**"]
        allow_private = true
        "#
    );
    let path = config_file(dir.path(), &text);
    let file = wharf_server::config::FileConfig::read(&path).expect("config");
    let webhooks = file.webhooks(dir.path()).expect("webhooks");
    assert!(!format!("{webhooks:?}").contains("s3cr3t") && !format!("{:?}", file.webhook).contains("MfKQ"));
    let policies = wharf_server::wasm_policy::WasmPolicies::from_config(&file.wasm_policy).expect("policies");
    let lifecycle = wharf_server::lifecycle::Lifecycle::from_config(
        &wharf_server::lifecycle::GcConfig::default(),
        &[],
        &file.quota,
    )
    .expect("lifecycle");
    let reg = Reg::serve(
        wharf_server::Wharf::in_memory()
            .with_wasm_policies(policies)
            .with_lifecycle(lifecycle)
            .with_webhooks(webhooks),
    )
    .await;
    let (http, base) = (&reg.http, reg.base.as_str());

    // A push with a tag, the tag moved, the tag deleted, the first manifest deleted.
    let first = push_image(http, base, "app/web", "v1", "one").await;
    let second = push_image(http, base, "app/web", "v1", "two").await;
    assert_eq!(reg.req(Method::DELETE, "/v2/app/web/manifests/v1").send().await.expect("send").status(), 202);
    let r = reg.req(Method::DELETE, &format!("/v2/app/web/manifests/{first}")).send().await.expect("send");
    assert_eq!(r.status(), 202);
    // A policy refusal: a plain image where only Wasm may go.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    reg.push_blob("strict/x", config).await;
    reg.push_blob("strict/x", b"not really a tar").await;
    let manifest = image_manifest(
        &Digest::sha256(config),
        config.len(),
        &[(Digest::sha256(b"not really a tar"), 16)],
        "",
    );
    assert_eq!(
        reg.push_manifest("strict/x", "v1", OCI_MANIFEST, &manifest).await.status(),
        StatusCode::FORBIDDEN
    );
    // A quota refusal: a blob over 100 bytes.
    let r = reg
        .req(Method::POST, &format!("/v2/tiny/x/blobs/uploads/?digest={}", Digest::sha256(&[7u8; 200])))
        .body(vec![7u8; 200])
        .send()
        .await
        .expect("send");
    let q = reg.req(Method::GET, "/v2/_wharf/quotas").send().await.expect("send").text().await.expect("text");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{q}");
    // A collection that removes the deleted manifest's bytes.
    let r = reg.req(Method::POST, "/v2/_wharf/gc?grace=0").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    // A component, pushed as wkg pushes it: its Wasm fields once its modules were read.
    let component =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/cli-http-component.wasm"))
            .expect("fixture");
    let cncf = wharf_wasm::ArtifactBuilder::new(component).cncf().expect("build");
    for blob in cncf.blobs() {
        reg.push_blob("wasm/cli", &blob.data).await;
    }
    let body = String::from_utf8(cncf.manifest.bytes().to_vec()).expect("utf-8");
    assert_eq!(
        reg.push_manifest("wasm/cli", "1.0.0", OCI_MANIFEST, &body).await.status(),
        StatusCode::CREATED
    );

    let of = |path: &str| -> Vec<Value> {
        receiver
            .accepted()
            .into_iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(path)))
            .collect()
    };
    // app/web: 2 + 2 + 1 + 1; strict/x: 1; tiny/x: 1; the collection: 1; wasm/cli: pushed,
    // tag.created, inspection.finished.
    until("every event", Duration::from_secs(30), || of("/all").len() >= 12 && of("/dist").len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = of("/all");
    assert_eq!(all.len(), 12, "each event once: {all:#?}");
    for r in receiver.records() {
        assert_eq!(r["answered"], 204);
        assert_eq!(r["verified"], true, "{r}");
    }
    let ids: BTreeSet<&str> = all.iter().map(|r| r["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), all.len(), "ids are unique");
    for r in &all {
        assert_eq!(r["webhookId"], r["id"], "webhook-id is the CloudEvents id");
        assert_eq!(r["specversion"], "1.0");
        assert_eq!(r["path"], "/all?token=s3cr3t-query");
    }
    let types = |repo: &str| -> Vec<String> {
        all.iter()
            .filter(|r| r["data"]["repository"] == repo)
            .map(|r| r["type"].as_str().expect("type").to_owned())
            .collect()
    };
    assert_eq!(
        types("app/web"),
        [
            "dev.wharf.manifest.pushed",
            "dev.wharf.tag.created",
            "dev.wharf.manifest.pushed",
            "dev.wharf.tag.moved",
            "dev.wharf.tag.deleted",
            "dev.wharf.manifest.deleted"
        ]
    );
    let web: Vec<&Value> = all.iter().filter(|r| r["data"]["repository"] == "app/web").collect();
    let pushed = &web[0];
    assert_eq!(pushed["subject"], "app/web:v1");
    assert_eq!(pushed["source"], "/v2/app/web");
    assert_eq!(pushed["data"]["digest"], first.to_string());
    assert_eq!(pushed["data"]["mediaType"], OCI_MANIFEST);
    assert_eq!(pushed["data"]["requestId"], "req-one");
    assert_eq!(pushed["data"]["client"], "127.0.0.1");
    assert_eq!(pushed["data"]["actor"]["kind"], "anonymous");
    assert!(pushed["data"]["size"].as_u64().is_some_and(|s| s > 100), "{pushed}");
    let moved = &web[3];
    assert_eq!(moved["data"]["digest"], second.to_string());
    assert_eq!(moved["data"]["previousDigest"], first.to_string());
    assert_eq!(web[4]["data"]["tag"], "v1");
    assert_eq!(web[5]["data"]["digest"], first.to_string());
    let refused: Vec<&Value> = all.iter().filter(|r| r["type"] == "dev.wharf.policy.refused").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["data"]["repository"], "strict/x");
    assert_eq!(refused[0]["data"]["action"], "push");
    assert!(refused[0]["data"]["reason"].as_str().is_some_and(|r| r.contains("wasm-only")), "{}", refused[0]);
    assert_eq!(
        types("wasm/cli"),
        ["dev.wharf.manifest.pushed", "dev.wharf.tag.created", "dev.wharf.inspection.finished"]
    );
    for r in all.iter().filter(|r| r["data"]["repository"] == "wasm/cli") {
        let wasm = &r["data"]["wasm"];
        assert_eq!(wasm["kind"], "component", "{r}");
        assert_eq!(wasm["layout"], "cncf-artifact", "{r}");
        assert_eq!(wasm["inspection"], "done", "{r}");
        assert!(wasm["wasiVersion"].as_str().is_some_and(|v| v.starts_with("0.2")), "{r}");
        let named = |list: &Value, name: &str| {
            list.as_array().is_some_and(|l| l.iter().any(|e| e.as_str().is_some_and(|e| e.starts_with(name))))
        };
        assert!(named(&wasm["imports"], "wasi:cli/environment"), "{r}");
        assert!(named(&wasm["exports"], "wasi:"), "{r}");
    }

    // distribution's envelope, to the webhook written for it.
    let dist = of("/dist");
    assert_eq!(dist.len(), 3, "{dist:#?}");
    let actions: Vec<&str> =
        dist.iter().map(|r| r["envelope"]["events"][0]["action"].as_str().expect("action")).collect();
    assert_eq!(actions, ["push", "push", "delete"]);
    let target = &dist[0]["envelope"]["events"][0]["target"];
    assert_eq!(
        (target["repository"].as_str(), target["digest"].as_str()),
        (Some("app/web"), Some(first.as_str()))
    );
    assert_eq!(dist[0]["envelope"]["events"][0]["request"]["id"], "req-one");

    // What operators see: the last deliveries (the URL without its query), and metrics. Sent
    // records are removed in batches: nothing waits within a couple of seconds.
    let started = Instant::now();
    let status = loop {
        let status = webhook_status(&reg).await;
        if status["webhooks"].as_array().expect("webhooks").iter().all(|h| h["pending"] == 0) {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "events still pending: {status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let hooks = status["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks[0]["name"], "all");
    assert_eq!(hooks[0]["url"], format!("http://127.0.0.1:{port}/all"));
    assert_eq!(hooks[0]["signed"], true);
    assert_eq!(hooks[0]["pending"], 0);
    let recent = hooks[0]["recent"].as_array().expect("recent");
    assert_eq!(recent.len(), 12);
    assert!(
        recent.iter().all(|d| d["status"] == 204 && d["outcome"] == "delivered" && d["latencyMs"].is_u64())
    );
    let metrics = reg.req(Method::GET, "/metrics").send().await.expect("send").text().await.expect("text");
    assert!(
        metrics.contains(r#"wharf_webhook_deliveries_total{webhook="all",outcome="delivered"} 12"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"wharf_webhook_events_pending{webhook="all"} 0"#), "{metrics}");
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_for_thirty_seconds_gets_everything_in_order() {
    let Some(python) = python("a_receiver_down_for_thirty_seconds_gets_everything_in_order") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&python, dir.path(), 30.0, 0);
    // A second webhook whose receiver is up all along: the first one's outage holds back
    // nothing of its.
    let healthy = Receiver::start(&python, dir.path(), 0.0, 0);
    let text = format!(
        r#"
        [[webhook]]
        name = "ci"
        url = "http://127.0.0.1:{}/"
        secret_file = "secret"
        events = ["manifest.pushed"]
        backoff = "1s"
        max_backoff = "4s"
        attempts = 100
        allow_private = true

        [[webhook]]
        name = "audit"
        url = "http://127.0.0.1:{}/"
        secret_file = "secret"
        events = ["manifest.pushed"]
        allow_private = true
        "#,
        receiver.port, healthy.port
    );
    let path = config_file(dir.path(), &text);
    let file = wharf_server::config::FileConfig::read(&path).expect("config");
    let reg = Reg::serve(
        wharf_server::Wharf::in_memory().with_webhooks(file.webhooks(dir.path()).expect("webhooks")),
    )
    .await;
    let mut pushed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..12 {
        let repo = format!("team/app{}", i % 3);
        let digest = push_image(&reg.http, &reg.base, &repo, &format!("t{i}"), &format!("n{i}")).await;
        pushed.entry(repo).or_default().push(digest.to_string());
    }
    let started = Instant::now();
    until("12 deliveries to the healthy webhook", Duration::from_secs(15), || healthy.accepted().len() >= 12)
        .await;
    assert!(
        receiver.accepted().is_empty() && started.elapsed() < Duration::from_secs(15),
        "the healthy webhook was told everything during the other one's outage"
    );
    until("12 deliveries after the outage", Duration::from_secs(90), || receiver.accepted().len() >= 12)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 12, "each once: {accepted:#?}");
    assert!(receiver.records().iter().any(|r| r["answered"] == 500), "the receiver did fail first");
    let mut arrived: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &accepted {
        assert_eq!(r["verified"], true);
        arrived
            .entry(r["data"]["repository"].as_str().expect("repo").to_owned())
            .or_default()
            .push(r["data"]["digest"].as_str().expect("digest").to_owned());
    }
    assert_eq!(arrived, pushed, "in order per repository");
    let mut told: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in healthy.accepted() {
        told.entry(r["data"]["repository"].as_str().expect("repo").to_owned())
            .or_default()
            .push(r["data"]["digest"].as_str().expect("digest").to_owned());
    }
    assert_eq!(told, pushed, "the healthy webhook: each once, in order per repository");
    let status = webhook_status(&reg).await;
    let recent = status["webhooks"][0]["recent"].as_array().expect("recent").clone();
    assert!(recent.iter().any(|d| d["status"] == 500 && d["outcome"] == "failed"), "{recent:#?}");
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_out_of_attempts_is_parked_shown_and_sent_again_with_its_id() {
    let Some(python) = python("an_event_out_of_attempts_is_parked_shown_and_sent_again_with_its_id") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let text = format!(
        r#"
        [[webhook]]
        name = "ops"
        url = "http://127.0.0.1:{port}/"
        secret_file = "secret"
        events = ["manifest.pushed"]
        backoff = "100ms"
        attempts = 2
        allow_private = true
        "#
    );
    let path = config_file(dir.path(), &text);
    let file = wharf_server::config::FileConfig::read(&path).expect("config");
    let reg = Reg::serve(
        wharf_server::Wharf::in_memory().with_webhooks(file.webhooks(dir.path()).expect("webhooks")),
    )
    .await;
    let digest = push_image(&reg.http, &reg.base, "ops/app", "v1", "parked").await;
    // Checked against the OpenAPI document with parked events in it too.
    let status = || async { webhook_status(&reg).await["webhooks"][0].clone() };
    let started = Instant::now();
    let parked = loop {
        let s = status().await;
        if s["parkedCount"] == 1 {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never parked: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let event = parked["parked"][0]["event"].as_str().expect("id").to_owned();
    assert_eq!(parked["parked"][0]["attempts"], 2);
    assert!(parked["parked"][0]["error"].as_str().is_some_and(|e| e.contains("connect")), "{parked:#}");
    assert_eq!(parked["pending"], 0);
    let metrics = reg.req(Method::GET, "/metrics").send().await.expect("send").text().await.expect("text");
    assert!(metrics.contains(r#"wharf_webhook_events_parked{webhook="ops"} 1"#), "{metrics}");
    assert!(
        metrics.contains(r#"wharf_webhook_deliveries_total{webhook="ops",outcome="parked"} 1"#),
        "{metrics}"
    );
    // The web page shows it, escaped as every string; its form sends it again once a receiver
    // listens: the same event, the same id.
    let page = reg.req(Method::GET, "/webhooks").send().await.expect("send");
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("wharf_csrf="))
        .and_then(|c| c.split(';').next())
        .expect("a CSRF cookie")
        .to_owned();
    let html = page.text().await.expect("body");
    assert!(html.contains(&event) && html.contains("Send the parked events again"), "{html}");
    assert!(html.contains("manifest.pushed") && html.contains("could not connect"), "{html}");
    let at = html.find(r#"name="csrf" value=""#).expect("a form") + r#"name="csrf" value=""#.len();
    let csrf = html[at..].split('"').next().expect("a token").to_owned();
    let receiver = Receiver::start(&python, dir.path(), 0.0, port);
    let web = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let forged = web
        .post(reg.url("/webhooks"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=forged&webhook=ops")
        .send()
        .await
        .expect("send");
    assert_ne!(forged.status(), StatusCode::SEE_OTHER, "a forged form is refused");
    assert_eq!(status().await["parkedCount"], 1, "and changes nothing");
    let r = web
        .post(reg.url("/webhooks"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&webhook=ops"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    until("the re-sent event", Duration::from_secs(20), || receiver.accepted().len() == 1).await;
    let got = &receiver.accepted()[0];
    assert_eq!(
        (got["id"].as_str(), got["data"]["digest"].as_str()),
        (Some(event.as_str()), Some(digest.as_str()))
    );
    assert_eq!(status().await["parkedCount"], 0);
    let r = reg.req(Method::POST, "/v2/_wharf/webhooks/ops/resend").send().await.expect("send");
    assert_eq!(r.json::<Value>().await.expect("json")["queued"], 0, "nothing parked any more");
    let r = reg.req(Method::POST, "/v2/_wharf/webhooks/nope/resend").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    reg.stop().await;
}

/// The config of the binary's tests: one webhook of pushes to `port`.
fn binary_config(dir: &Path, port: u16) -> PathBuf {
    config_file(
        dir,
        &format!(
            r#"
            [[webhook]]
            name = "deploy"
            url = "http://127.0.0.1:{port}/"
            secret_file = "secret"
            events = ["manifest.pushed"]
            backoff = "500ms"
            max_backoff = "2s"
            attempts = 1000
            allow_private = true
            "#
        ),
    )
}

/// Each delivered digest with the ids it came under; panics on a digest that came with two.
fn ids_by_digest(receiver: &Receiver) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    for r in receiver.accepted() {
        assert_eq!(r["verified"], true);
        let (digest, id) = (r["data"]["digest"].as_str().expect("digest"), r["id"].as_str().expect("id"));
        if let Some(before) = ids.insert(digest.to_owned(), id.to_owned()) {
            assert_eq!(before, id, "a repeat keeps its id");
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_events_pending_survive_a_sigkill() {
    let Some(python) = python("two_hundred_events_pending_survive_a_sigkill") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = binary_config(dir.path(), port);
    let storage = format!("fs:{}", dir.path().join("data").display());
    let args = ["--config", config.to_str().expect("utf-8"), "--storage", &storage];
    let http = reqwest::Client::new();
    let mut server = Process::start_with(&args);
    server.ready(&http).await;
    let mut pushed = BTreeSet::new();
    for i in 0..200 {
        pushed.insert(
            push_image(
                &http,
                &server.base,
                &format!("fleet/svc{}", i % 8),
                &format!("b{i}"),
                &format!("k{i}"),
            )
            .await
            .to_string(),
        );
    }
    // No receiver yet: all 200 wait. The server dies without a word.
    server.signal("-KILL");
    let receiver = Receiver::start(&python, dir.path(), 0.0, port);
    let server = Process::start_with(&args);
    server.ready(&http).await;
    until("200 events after the restart", Duration::from_secs(150), || ids_by_digest(&receiver).len() >= 200)
        .await;
    let ids = ids_by_digest(&receiver);
    assert_eq!(ids.keys().cloned().collect::<BTreeSet<_>>(), pushed, "every event, at least once");
    let unique: BTreeSet<&String> = ids.values().collect();
    assert_eq!(unique.len(), 200, "one id per event");
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_over_one_storage_deliver_each_event_once() {
    let Some(python) = python("two_processes_over_one_storage_deliver_each_event_once") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&python, dir.path(), 0.0, 0);
    let config = binary_config(dir.path(), receiver.port);
    let storage = format!("fs:{}", dir.path().join("data").display());
    let args = ["--config", config.to_str().expect("utf-8"), "--storage", &storage];
    let http = reqwest::Client::new();
    let (a, b) = (Process::start_with(&args), Process::start_with(&args));
    a.ready(&http).await;
    b.ready(&http).await;
    for i in 0..60 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        push_image(&http, base, &format!("shared/svc{}", i % 6), &format!("t{i}"), &format!("p{i}")).await;
    }
    until("60 events", Duration::from_secs(60), || receiver.accepted().len() >= 60).await;
    // Time for a second delivery, were there one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = receiver.accepted();
    let ids: BTreeSet<&str> = accepted.iter().map(|r| r["id"].as_str().expect("id")).collect();
    assert_eq!((ids.len(), accepted.len()), (60, 60), "each event delivered by exactly one process");

    // `wharf-server webhook test`: one signed test event now, the answer printed.
    let run = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_wharf-server"))
            .args(["--config", config.to_str().expect("utf-8"), "webhook", "test", "deploy"])
            .output()
            .expect("run")
    };
    let out = run(&config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(answer["status"], 204, "{answer}");
    until("the test event", Duration::from_secs(10), || receiver.accepted().len() == 61).await;
    let test = receiver.accepted().pop().expect("the test event");
    assert_eq!(
        (test["type"].as_str(), test["verified"].as_bool()),
        (Some("dev.wharf.webhook.test"), Some(true))
    );
    assert_eq!(test["id"], answer["event"]);
    let dead = tempfile::tempdir().expect("tempdir");
    let out = run(&binary_config(dead.path(), free_port()));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not connect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn targets_inside_the_network_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://[::1]:8080/",
        "http://localhost:9/",
    ] {
        let config = config_file(dir.path(), &format!("[[webhook]]\nname = \"x\"\nurl = \"{url}\"\n"));
        let out = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
            .args([
                "--config",
                config.to_str().expect("utf-8"),
                "--storage",
                "memory",
                "--listen",
                "127.0.0.1:0",
            ])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url} accepted");
        assert!(stderr.contains("[[webhook]] `x`") && stderr.contains("allow_private"), "{url}: {stderr}");
        // Allowed when the operator says so (nothing is sent: only the address is checked).
        let allowed = wharf_server::config::FileConfig::parse(&format!(
            "[[webhook]]\nname = \"x\"\nurl = \"{url}\"\nallow_private = true\n"
        ))
        .expect("parses");
        assert!(allowed.webhooks(dir.path()).is_ok(), "{url}");
    }
    let bad = |text: &str| {
        wharf_server::config::FileConfig::parse(text)
            .expect("parses")
            .webhooks(dir.path())
            .expect_err(text)
            .to_string()
    };
    assert!(
        bad("[[webhook]]\nname = \"x\"\nurl = \"https://h.example/\"\nevents = [\"push\"]\n")
            .contains("unknown event `push`")
    );
    assert!(bad("[[webhook]]\nname = \"X Y\"\nurl = \"https://h.example/\"\n").contains("lowercase"));
    assert!(
        bad("[[webhook]]\nname = \"d\"\nurl = \"https://h.example/\"\nformat = \"distribution\"\nevents = [\"policy.refused\"]\n")
            .contains("no action")
    );
    assert!(bad("[[webhook]]\nname = \"s\"\nurl = \"https://h.example/\"\nsecret_env = \"WHARF_NO_SUCH_VARIABLE\"\n").contains("WHARF_NO_SUCH_VARIABLE"));
    std::fs::write(dir.path().join("short"), "whsec_c2hvcnQ=").expect("write");
    assert!(
        bad("[[webhook]]\nname = \"s\"\nurl = \"https://h.example/\"\nsecret_file = \"short\"\n")
            .contains("24 to 64 bytes")
    );
}
