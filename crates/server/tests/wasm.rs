//! The Wasm-aware registry: classification at push, the `_wharf` artifact API with Harbor's
//! view side by side, the validate policy, health endpoints.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use wharf_types::Digest;
use wharf_wasm::ArtifactBuilder;

use crate::common::{OCI_INDEX, OCI_MANIFEST, Reg};

/// A WASI module, as the `wat` crate would build `(module (func (export "_start")))`.
const MODULE: &[u8] = &[
    0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 7, 10, 1, 6, 95, 115, 116, 97, 114, 116, 0,
    0, 10, 4, 1, 2, 0, 11,
];

async fn push_artifact(reg: &Reg, repo: &str, tag: &str, artifact: &wharf_wasm::Artifact) {
    for blob in artifact.blobs() {
        reg.push_blob(repo, &blob.data).await;
    }
    let body = String::from_utf8(artifact.manifest.bytes().to_vec()).expect("utf-8");
    let r = reg.push_manifest(repo, tag, OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
}

async fn get_json(reg: &Reg, path: &str) -> serde_json::Value {
    let r = reg.req(Method::GET, path).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.expect("json")
}

#[tokio::test]
async fn the_harbor_article_flows_and_the_cncf_artifact() {
    let reg = Reg::memory().await;
    // Flow 1: a wasm-to-oci artifact.
    let w2o = ArtifactBuilder::new(MODULE.to_vec()).with_title("hello.wasm").wasm_to_oci().expect("build");
    push_artifact(&reg, "wasm/hello", "v1", &w2o).await;
    // Flow 2: an image built by buildah with `--annotation run.oci.handler=wasm`.
    let config = br#"{"created":"2026-11-25T17:21:27Z","architecture":"amd64","os":"linux","config":{"Cmd":["/hello.wasm"]},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"COPY hello.wasm /"}]}"#;
    let c = reg.push_blob("wasm/hello", config).await;
    let l = reg.push_blob("wasm/hello", b"not really a tar.gz, the classifier does not read it").await;
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{l}","size":52}}],"annotations":{{"run.oci.handler":"wasm"}}}}"#,
        config.len()
    );
    assert_eq!(
        reg.push_manifest("wasm/hello", "annotated", OCI_MANIFEST, &image).await.status(),
        StatusCode::CREATED
    );
    // The CNCF v0 artifact.
    let cncf =
        ArtifactBuilder::new(MODULE.to_vec()).with_created("2025-01-01T00:00:00Z").cncf().expect("build");
    push_artifact(&reg, "wasm/hello", "cncf", &cncf).await;

    let a = get_json(&reg, "/v2/wasm/hello/_wharf/artifacts/v1").await;
    assert_eq!(
        (a["wasm"].as_bool(), a["kind"].as_str(), a["harborType"].as_str()),
        (Some(true), Some("wasm-to-oci"), Some("WASM"))
    );
    assert_eq!(a["module"]["header"]["kind"], "core-module");
    assert_eq!(a["tags"], serde_json::json!(["v1"]));
    assert!(!a["evidence"].as_array().expect("evidence").is_empty());

    let a = get_json(&reg, "/v2/wasm/hello/_wharf/artifacts/annotated").await;
    assert_eq!(
        (a["wasm"].as_bool(), a["kind"].as_str(), a["harborType"].as_str()),
        (Some(true), Some("compat-annotated"), Some("WASM"))
    );
    assert_eq!(a["config"]["architecture"], "amd64");
    assert_eq!(a["config"]["created"], "2026-11-25T17:21:27Z");
    assert_eq!(a["history"][0]["created_by"], "COPY hello.wasm /");
    assert_eq!(
        a["harbor"]["extraAttrs"]["manifest.config.mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );

    let a = get_json(&reg, "/v2/wasm/hello/_wharf/artifacts/cncf").await;
    assert_eq!(
        (a["wasm"].as_bool(), a["kind"].as_str(), a["harborType"].as_str()),
        (Some(true), Some("cncf-artifact"), Some("UNKNOWN"))
    );

    // The listing, filtered to Wasm, with sizes (manifest + referenced blobs) and tags.
    let list = get_json(&reg, "/v2/wasm/hello/_wharf/artifacts?type=wasm").await;
    let artifacts = list["artifacts"].as_array().expect("artifacts");
    assert_eq!(artifacts.len(), 3);
    let w = artifacts.iter().find(|a| a["digest"] == w2o.manifest.digest().as_str()).expect("listed");
    let expected_size = w2o.manifest.size() + w2o.blobs().map(|b| b.data.len() as u64).sum::<u64>();
    assert_eq!(w["size"], expected_size);
    assert!(w["pushedAt"].as_str().is_some_and(|t| t.contains('T')));

    // The registry-wide view.
    let repos = get_json(&reg, "/v2/_wharf/repositories").await;
    assert_eq!(repos["repositories"][0]["name"], "wasm/hello");
    assert_eq!(repos["repositories"][0]["wasm"], 3);
    assert_eq!(repos["repositories"][0]["byHarborType"]["WASM"], 2);
    assert_eq!(repos["repositories"][0]["byHarborType"]["UNKNOWN"], 1);
    reg.stop().await;
}

#[tokio::test]
async fn indexes_and_plain_images() {
    let reg = Reg::memory().await;
    let config = br#"{"architecture":"wasm","os":"wasi","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = reg.push_blob("mixed", config).await;
    let child = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let child_digest = Digest::sha256(child.as_bytes());
    reg.push_manifest("mixed", child_digest.as_str(), OCI_MANIFEST, &child).await;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child_digest}","size":{},"platform":{{"os":"wasi","architecture":"wasm"}}}}]}}"#,
        child.len()
    );
    reg.push_manifest("mixed", "multi", OCI_INDEX, &index).await;
    let a = get_json(&reg, &format!("/v2/mixed/_wharf/artifacts/{child_digest}")).await;
    assert_eq!((a["kind"].as_str(), a["harborType"].as_str()), (Some("platform-image"), Some("IMAGE")));
    let a = get_json(&reg, "/v2/mixed/_wharf/artifacts/multi").await;
    assert_eq!((a["kind"].as_str(), a["harborType"].as_str()), (Some("wasm-index"), Some("IMAGE")));
    // Deleting a manifest removes its artifact record.
    reg.req(Method::DELETE, &format!("/v2/mixed/manifests/{child_digest}")).send().await.expect("send");
    let list = get_json(&reg, "/v2/mixed/_wharf/artifacts").await;
    assert_eq!(list["artifacts"].as_array().expect("artifacts").len(), 1);
    let r = reg.req(Method::GET, "/v2/unknown/_wharf/artifacts").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    reg.stop().await;
}

#[tokio::test]
async fn the_validate_policy() {
    let storage = Arc::new(wharf_store::MemoryStore::new());
    let server = wharf_server::Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        wharf_server::Registry::new(storage).with_wasm_validate(true),
    )
    .await
    .expect("bind");
    let reg = Reg {
        base: format!("http://{}", server.local_addr()),
        http: reqwest::Client::new(),
        handle: Some(server.spawn()),
    };
    // A real module passes.
    let real = ArtifactBuilder::new(MODULE.to_vec()).wasm_to_oci().expect("build");
    push_artifact(&reg, "policy", "real", &real).await;
    // A fake: the header is Wasm, the body is not.
    let mut fake_bytes = MODULE.to_vec();
    fake_bytes.extend_from_slice(&[0xff, 0xff, 0xff]);
    let fake = ArtifactBuilder::new(fake_bytes).wasm_to_oci().expect("build");
    for blob in fake.blobs() {
        reg.push_blob("policy", &blob.data).await;
    }
    let body = String::from_utf8(fake.manifest.bytes().to_vec()).expect("utf-8");
    let r = reg.push_manifest("policy", "fake", OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let json: serde_json::Value = r.json().await.expect("json");
    assert_eq!(json["errors"][0]["code"], "MANIFEST_INVALID");
    assert!(json["errors"][0]["message"].as_str().is_some_and(|m| m.contains("not valid WebAssembly")));
    assert_eq!(
        reg.req(Method::GET, "/v2/policy/manifests/fake").send().await.expect("send").status(),
        StatusCode::NOT_FOUND
    );
    reg.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let reg = Reg::memory().await;
    for path in ["/healthz", "/readyz"] {
        let r = reg.req(Method::GET, path).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    reg.stop().await;
}

#[tokio::test]
async fn metrics_counters_move() {
    let reg = Reg::memory().await;
    let w2o = ArtifactBuilder::new(MODULE.to_vec()).wasm_to_oci().expect("build");
    push_artifact(&reg, "m", "v1", &w2o).await;
    reg.req(Method::POST, "/v2/m/blobs/uploads/").send().await.expect("send");
    let r = reg.req(Method::GET, "/metrics").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("body");
    let value = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no `{needle}` in\n{text}"))
    };
    assert_eq!(value(r#"wharf_http_requests_total{route="manifest",method="PUT",status="201"}"#), 1.0);
    assert_eq!(value(r#"wharf_http_requests_total{route="upload",method="POST",status="201"}"#), 2.0);
    assert_eq!(value(r#"wharf_artifacts_pushed_total{kind="wasm-to-oci",harbor_type="WASM"}"#), 1.0);
    assert_eq!(value("wharf_upload_sessions "), 1.0);
    assert_eq!(value("wharf_repositories "), 1.0);
    assert!(value(r#"wharf_http_request_bytes_total{route="upload"}"#) > 0.0);
    assert!(text.contains("wharf_http_request_duration_seconds_bucket"));
    reg.stop().await;
}
