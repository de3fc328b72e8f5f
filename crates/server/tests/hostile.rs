//! Issue 29: hostile content costs the sender, not the registry. Each test is one finding of
//! the security review, made as the reviewer made it, against a real server on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use wharf_server::Wharf;
use wharf_types::Digest;
use wharf_wasm::ArtifactBuilder;

use crate::common::{OCI_MANIFEST, Reg};
use crate::wasm::{inspected, tar_layer};

const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The config of an image crun runs `/app.wasm` of.
const ANNOTATED_CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/app.wasm"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
/// The config of an ordinary container image.
const PLAIN_CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;

/// A module importing nothing.
fn harmless() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "_start")))"#).expect("valid")
}

/// A module importing `wasi_snapshot_preview1::fd_write`, which the policies below deny.
fn denied() -> Vec<u8> {
    wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (func (export "_start")))"#,
    )
    .expect("valid")
}

/// Pushes an image (its config, then `layers` by media type, each named as many times as
/// `times` says) and answers the manifest PUT's response.
async fn push_image(
    reg: &Reg,
    repo: &str,
    tag: &str,
    config: &[u8],
    layers: &[(&str, &[u8])],
    times: usize,
    annotations: &str,
) -> reqwest::Response {
    let c = reg.push_blob(repo, config).await;
    let mut descriptors = Vec::new();
    for (media_type, bytes) in layers {
        let d = reg.push_blob(repo, bytes).await;
        for _ in 0..times {
            descriptors
                .push(format!(r#"{{"mediaType":"{media_type}","digest":"{d}","size":{}}}"#, bytes.len()));
        }
    }
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{IMAGE_CONFIG}","digest":"{c}","size":{}}},"layers":[{}],"annotations":{annotations}}}"#,
        config.len(),
        descriptors.join(",")
    );
    reg.push_manifest(repo, tag, OCI_MANIFEST, &body).await
}

async fn refusal(r: reqwest::Response) -> (StatusCode, String, String) {
    let status = r.status();
    let json: serde_json::Value = r.json().await.expect("json");
    (
        status,
        json["errors"][0]["code"].as_str().unwrap_or_default().to_owned(),
        json["errors"][0]["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn policies(toml: &str) -> wharf_server::wasm_policy::WasmPolicies {
    let config: wharf_server::config::FileConfig = toml::from_str(toml).expect("config");
    wharf_server::wasm_policy::WasmPolicies::from_config(&config.wasm_policy).expect("policies")
}

/// Finding 1: one 1 MB layer whose first entry is a 1 GiB GNU long name. The push is
/// answered, the artifact says why it was not inspected, no job is left to run again; with
/// `--wasm-validate` too (read inside the PUT); a Wasm image with that layer is refused by the
/// validation and by a policy (fail-closed). (On the main before this, the reader took the
/// 1 GiB into memory, and the job stayed pending.)
#[tokio::test]
async fn a_gib_long_name_costs_a_header_and_is_recorded() {
    use wharf_store::MetaStore as _;
    let bomb = wharf_wasm::fuzzing::long_name_gzip(1024);
    assert!(bomb.len() < (2 << 20), "{} bytes", bomb.len());
    for validate in [false, true] {
        let storage = Arc::new(wharf_store::MemoryStore::new());
        let reg = Reg::serve(Wharf::new(storage.clone()).with_wasm_validate(validate)).await;
        let started = Instant::now();
        let r = push_image(&reg, "plain/app", "v1", PLAIN_CONFIG, &[(TAR_GZIP, &bomb)], 1, "{}").await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "validate {validate}: {}",
            r.text().await.unwrap_or_default()
        );
        let a = inspected(&reg, "/v2/plain/app/_wharf/artifacts/v1").await;
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(a["inspection"]["status"], "failed", "{a}");
        let error = a["inspection"]["error"].as_str().expect("why");
        assert!(
            error.starts_with("not inspected: over budget: 1073741824 bytes of a tar extended header"),
            "{error}"
        );
        // Nothing left to run after a restart.
        for _ in 0..100 {
            if storage.list_meta("jobs/").await.expect("list").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(storage.list_meta("jobs/").await.expect("list"), Vec::<String>::new());
        if validate {
            // A Wasm image whose module cannot be read is not valid as Wasm: refused, stored not.
            let r = push_image(
                &reg,
                "wasm/app",
                "v1",
                ANNOTATED_CONFIG,
                &[(TAR_GZIP, &bomb)],
                1,
                r#"{"run.oci.handler":"wasm"}"#,
            )
            .await;
            let (status, code, message) = refusal(r).await;
            assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"), "{message}");
            assert!(message.contains("cannot be read") && message.contains("over budget"), "{message}");
            let r = reg.req(Method::GET, "/v2/wasm/app/manifests/v1").send().await.expect("send");
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
        }
        reg.stop().await;
    }
    // A policy that judges modules cannot judge this one: refused, with the reason.
    let reg = Reg::serve(Wharf::new(Arc::new(wharf_store::MemoryStore::new())).with_wasm_policies(policies(
        "[[wasm_policy]]\nname = \"p\"\nrepositories = [\"**\"]\ndeny_imports = [\"wasi:sockets/*\"]\n",
    )))
    .await;
    let r = push_image(
        &reg,
        "wasm/app",
        "v1",
        ANNOTATED_CONFIG,
        &[(TAR_GZIP, &bomb)],
        1,
        r#"{"run.oci.handler":"wasm"}"#,
    )
    .await;
    let (status, code, message) = refusal(r).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "DENIED"), "{message}");
    assert!(
        message.contains("policy p")
            && message.contains("cannot be determined")
            && message.contains("over budget"),
        "{message}"
    );
    reg.stop().await;
}

/// Finding 2: a descriptor with `urls` never makes the registry read another repository's
/// blob: a config with `urls` must be in the repository like any config, and a layer with
/// `urls` is foreign — accepted, never read. (Before, mallory's artifact record showed
/// team/secret's build history, and answered whether a digest existed anywhere.)
#[tokio::test]
async fn descriptors_with_urls_never_read_other_repositories() {
    let reg = Reg::memory().await;
    let secret_config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/app.wasm"]},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"RUN TOKEN=hunter2 ./build"}]}"#;
    let layer = tar_layer(&[("app.wasm", &denied())], "gzip");
    let r = push_image(
        &reg,
        "team/secret",
        "v1",
        secret_config,
        &[(TAR_GZIP, &layer)],
        1,
        r#"{"run.oci.handler":"wasm"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let config_digest = Digest::sha256(secret_config);
    let layer_digest = Digest::sha256(&layer);
    // Mallory names the secret config, with `urls`: refused, as a config this repository lacks.
    let mine = reg.push_blob("mallory/leak", b"{}").await;
    let body = |config: String, layers: String| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{config},"layers":[{layers}],"annotations":{{"run.oci.handler":"wasm"}}}}"#
        )
    };
    let leaky = body(
        format!(
            r#"{{"mediaType":"{IMAGE_CONFIG}","digest":"{config_digest}","size":{},"urls":["https://elsewhere.example/c"]}}"#,
            secret_config.len()
        ),
        format!(
            r#"{{"mediaType":"{TAR_GZIP}","digest":"{layer_digest}","size":{},"urls":["https://elsewhere.example/l"]}}"#,
            layer.len()
        ),
    );
    let (status, code, message) =
        refusal(reg.push_manifest("mallory/leak", "v1", OCI_MANIFEST, &leaky).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"), "{message}");
    // Its own config, the secret layer as a foreign layer: accepted, and never read.
    let foreign = body(
        format!(r#"{{"mediaType":"{IMAGE_CONFIG}","digest":"{mine}","size":2}}"#),
        format!(
            r#"{{"mediaType":"{TAR_GZIP}","digest":"{layer_digest}","size":{},"urls":["https://elsewhere.example/l"]}}"#,
            layer.len()
        ),
    );
    let r = reg.push_manifest("mallory/leak", "v2", OCI_MANIFEST, &foreign).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    let a = inspected(&reg, "/v2/mallory/leak/_wharf/artifacts/v2").await;
    let text = a.to_string();
    assert!(!text.contains("hunter2") && !text.contains("fd_write"), "{a}");
    assert!(a["module"].is_null(), "{a}");
    assert!(a["modules"][0]["error"].as_str().is_some_and(|e| e.contains("foreign layer")), "{a}");
    // The same without `urls` is refused: the layer is not in mallory's repository.
    let unlinked = body(
        format!(r#"{{"mediaType":"{IMAGE_CONFIG}","digest":"{mine}","size":2}}"#),
        format!(r#"{{"mediaType":"{TAR_GZIP}","digest":"{layer_digest}","size":{}}}"#, layer.len()),
    );
    let (status, code, _) =
        refusal(reg.push_manifest("mallory/leak", "v3", OCI_MANIFEST, &unlinked).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"));
    reg.stop().await;
}

/// One tar entry of [`layer`].
enum E<'a> {
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

/// A tar layer of `entries`, names written exactly as given.
fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        let (path, data, kind, link): (&str, &[u8], tar::EntryType, Option<&str>) = match entry {
            E::File(p, d) => (p, d, tar::EntryType::Regular, None),
            E::Link(p, t) => (p, &[], tar::EntryType::Symlink, Some(t)),
            E::Hard(p, t) => (p, &[], tar::EntryType::Link, Some(t)),
        };
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        if let Some(target) = link {
            header.set_link_name(target).expect("link");
        }
        header.as_mut_bytes()[..100].fill(0);
        header.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        tar.append(&header, data).expect("append");
    }
    tar.into_inner().expect("tar")
}

/// Finding 4: a policy judges what a runtime would run. A harmless `app.wasm` before the
/// denied one, `./app.wasm` beside `app.wasm`, a symbolic or hard link to the denied module,
/// a module too large to read: each was a 201 where the denied module alone was a 403.
#[tokio::test]
async fn policies_judge_the_file_unpacking_leaves_and_fail_closed() {
    let mut budget = wharf_wasm::budget::Budget::default();
    budget.module_bytes = 4096;
    let registry = Wharf::new(Arc::new(wharf_store::MemoryStore::new()))
        .with_inspection(budget, None)
        .with_wasm_policies(policies("[[wasm_policy]]\nname = \"no-fd\"\nrepositories = [\"strict/**\"]\ndeny_imports = [\"wasi_snapshot_preview1\"]\n"));
    let reg = Reg::serve(registry).await;
    let (good, bad) = (harmless(), denied());
    let push = |name: &'static str, tar: Vec<u8>| {
        let reg = &reg;
        async move {
            let r = push_image(
                reg,
                "strict/app",
                name,
                ANNOTATED_CONFIG,
                &[(TAR, &tar)],
                1,
                r#"{"run.oci.handler":"wasm"}"#,
            )
            .await;
            let status = r.status();
            (status, r.text().await.unwrap_or_default())
        }
    };
    assert_eq!(push("good", layer(&[E::File("app.wasm", &good)])).await.0, StatusCode::CREATED);
    let big = wat::parse_str(format!("(module (data \"{}\") (memory 1))", "x".repeat(5000))).expect("valid");
    let cases = [
        ("bad", layer(&[E::File("app.wasm", &bad)]), "imports wasi_snapshot_preview1"),
        (
            "twice",
            layer(&[E::File("app.wasm", &good), E::File("app.wasm", &bad)]),
            "imports wasi_snapshot_preview1",
        ),
        (
            "dotted",
            layer(&[E::File("app.wasm", &good), E::File("./app.wasm", &bad)]),
            "imports wasi_snapshot_preview1",
        ),
        (
            "slashes",
            layer(&[E::File("app.wasm", &good), E::File("//app.wasm", &bad)]),
            "imports wasi_snapshot_preview1",
        ),
        (
            "symlink",
            layer(&[E::File("real.wasm", &bad), E::Link("app.wasm", "real.wasm")]),
            "imports wasi_snapshot_preview1",
        ),
        (
            "hardlink",
            layer(&[E::File("real.wasm", &bad), E::Hard("app.wasm", "real.wasm")]),
            "imports wasi_snapshot_preview1",
        ),
        ("dangling", layer(&[E::Link("app.wasm", "nowhere.wasm")]), "cannot be determined"),
        ("large", layer(&[E::File("app.wasm", &big)]), "cannot be determined"),
    ];
    for (tag, tar, why) in cases {
        let (status, text) = push(tag, tar).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{tag}: {text}");
        assert!(text.contains("no-fd") && text.contains(why), "{tag}: {text}");
        let r = reg.req(Method::GET, &format!("/v2/strict/app/manifests/{tag}")).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{tag}: nothing stored");
    }
    // Two layers: the upper one's whiteout removes the denied module, the harmless one after it
    // is what runs.
    let lower = layer(&[E::File("app.wasm", &bad)]);
    let upper = layer(&[
        E::File(".wh.app.wasm", b""),
        E::File("other.wasm", &good),
        E::Link("app.wasm", "other.wasm"),
    ]);
    let r = push_image(
        &reg,
        "strict/app",
        "layers",
        ANNOTATED_CONFIG,
        &[(TAR, &lower), (TAR, &upper)],
        1,
        r#"{"run.oci.handler":"wasm"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    let a = inspected(&reg, "/v2/strict/app/_wharf/artifacts/layers").await;
    assert_eq!(
        (a["modules"][0]["path"].as_str(), a["modules"][0]["layer"].as_u64()),
        (Some("other.wasm"), Some(1)),
        "{a}"
    );
    reg.stop().await;
}

/// Finding 5: while a manifest naming a 1 MB layer with a 1 GiB filler entry 100 times is
/// inspected, another repository's module is inspected within 2 s of its push; the big one
/// ends at its budget, recorded; each run is counted before it starts.
#[tokio::test]
async fn one_push_never_holds_up_another_repositorys_inspection() {
    use wharf_store::MetaStore as _;
    let mut budget = wharf_wasm::budget::Budget::default();
    budget.artifact_bytes = 3 << 30;
    budget.time = Duration::from_secs(20);
    let storage = Arc::new(wharf_store::MemoryStore::new());
    let reg = Reg::serve(Wharf::new(storage.clone()).with_inspection(budget, Some(2))).await;
    let filler = wharf_wasm::fuzzing::big_entry_gzip(b'0', 1024);
    assert!(filler.len() < (2 << 20));
    let r = push_image(
        &reg,
        "mallory/heavy",
        "v1",
        ANNOTATED_CONFIG,
        &[(TAR_GZIP, &filler)],
        100,
        r#"{"run.oci.handler":"wasm"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    // The heavy job is running (its attempt counted before the run).
    let started = Instant::now();
    let counted = loop {
        let pending = storage.list_meta("jobs/pending/").await.expect("list");
        if let Some(key) = pending.first()
            && let Some(record) = storage.get_meta(key).await.expect("get")
        {
            let job: serde_json::Value = serde_json::from_slice(&record).expect("json");
            if job["attempts"] == 1 {
                break true;
            }
        }
        if started.elapsed() > Duration::from_secs(5) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(counted, "the heavy job's attempt is counted while it runs");
    // Someone else's small module, pushed now, is inspected within 2 s.
    let module = ArtifactBuilder::new(harmless()).wasm_to_oci().expect("build");
    let pushed = Instant::now();
    for blob in module.blobs() {
        reg.push_blob("victim/app", &blob.data).await;
    }
    let body = String::from_utf8(module.manifest.bytes().to_vec()).expect("utf-8");
    assert_eq!(
        reg.push_manifest("victim/app", "v1", OCI_MANIFEST, &body).await.status(),
        StatusCode::CREATED
    );
    let a = inspected(&reg, "/v2/victim/app/_wharf/artifacts/v1").await;
    let waited = pushed.elapsed();
    assert_eq!(a["inspection"]["status"], "done", "{a}");
    assert!(waited < Duration::from_secs(2), "the small module waited {waited:?}");
    let heavy = get(&reg, "/v2/mallory/heavy/_wharf/artifacts/v1").await;
    assert_eq!(heavy["inspection"]["status"], "pending", "still reading when the small one was done");
    // The heavy one ends at its budget, recorded; its job is gone.
    let mut heavy = heavy;
    for _ in 0..600 {
        heavy = get(&reg, "/v2/mallory/heavy/_wharf/artifacts/v1").await;
        if heavy["inspection"]["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = heavy["inspection"]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("not inspected: over budget"), "{heavy}");
    eprintln!("the small module was inspected {waited:?} after its push; the heavy one: {error}");
    reg.stop().await;
}

async fn get(reg: &Reg, path: &str) -> serde_json::Value {
    reg.req(Method::GET, path).send().await.expect("send").json().await.expect("json")
}

/// A job whose runs keep ending the process (counted before each run) is parked after three,
/// its artifact saying why, and never run again.
#[tokio::test]
async fn a_job_out_of_attempts_is_parked_not_retried_forever() {
    use wharf_store::MetaStore as _;
    use wharf_types::{MediaType, Repository, TagOrDigest};
    let storage: Arc<dyn wharf_store::Storage> = Arc::new(wharf_store::MemoryStore::new());
    let registry = Wharf::new(Arc::clone(&storage));
    let repo: Repository = "crashy/app".parse().expect("name");
    let artifact = ArtifactBuilder::new(harmless()).wasm_to_oci().expect("build");
    for blob in artifact.blobs() {
        let data = blob.data.clone();
        let stream = Box::pin(futures_util::stream::once(async move { Ok(data) }));
        registry.put_blob(&repo, &blob.descriptor.digest, stream).await.expect("blob");
    }
    let media_type: MediaType = OCI_MANIFEST.parse().expect("media type");
    let tag: TagOrDigest = "v1".parse().expect("tag");
    registry
        .put_manifest(&repo, &tag, Some(&media_type), artifact.manifest.bytes().clone(), &[])
        .await
        .expect("put");
    // Three runs started and never finished (the process died each time): what they left.
    let pending = storage.list_meta("jobs/pending/").await.expect("list");
    assert_eq!(pending.len(), 1);
    let mut job: serde_json::Value =
        serde_json::from_slice(&storage.get_meta(&pending[0]).await.expect("get").expect("job"))
            .expect("json");
    job["attempts"] = 3.into();
    storage.set_meta(&pending[0], serde_json::to_vec(&job).expect("json").into()).await.expect("set");
    registry.run_pending_jobs().await.expect("jobs");
    let a = registry.artifact(&repo, &tag).await.expect("artifact");
    assert_eq!(a.inspection.status.to_string(), "failed");
    let error = a.inspection.error.expect("why").to_string();
    assert!(error.contains("gave up after 3 attempts"), "{error}");
    assert!(storage.list_meta("jobs/pending/").await.expect("list").is_empty());
    assert!(storage.list_meta("jobs/leases/").await.expect("list").is_empty());
    assert_eq!(storage.list_meta("jobs/parked/").await.expect("list").len(), 1);
    assert!(registry.render_metrics().await.expect("metrics").contains("wharf_jobs_parked 1"));
    registry.run_pending_jobs().await.expect("nothing to run");
    assert_eq!(
        registry.artifact(&repo, &tag).await.expect("artifact").inspection.status.to_string(),
        "failed"
    );
}
