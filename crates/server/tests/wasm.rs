//! The Wasm-aware registry: classification at push, the `_wharf` artifact API with Harbor's
//! view side by side, the validate policy, health endpoints.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use wharf_types::Digest;
use wharf_wasm::ArtifactBuilder;

use crate::common::{OCI_INDEX, OCI_MANIFEST, Reg, header, image_manifest};

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

/// The artifact at `path` once its inspection job has run (the server's worker takes it at
/// once; this waits at most ten seconds).
pub(crate) async fn inspected(reg: &Reg, path: &str) -> serde_json::Value {
    for _ in 0..400 {
        let a = get_json(reg, path).await;
        if a["inspection"]["status"] != "pending" {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{path}: still pending after ten seconds");
}

/// A tar layer holding `files`, compressed with `compression` (`none`, `gzip`, `zstd`).
pub(crate) fn tar_layer(files: &[(&str, &[u8])], compression: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        builder.append_data(&mut header, path, *bytes).expect("append");
    }
    let tar = builder.into_inner().expect("tar");
    match compression {
        "gzip" => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &tar).expect("gzip");
            gz.finish().expect("gzip")
        }
        "zstd" => ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest),
        _ => tar,
    }
}

/// Pushes an image of `layers` (media type, bytes) with `config` and manifest `annotations`
/// (a JSON object's text); returns its digest.
async fn push_image(
    reg: &Reg,
    repo: &str,
    tag: &str,
    config: &[u8],
    layers: &[(&str, Vec<u8>)],
    annotations: &str,
) -> Digest {
    let c = reg.push_blob(repo, config).await;
    let mut descriptors = Vec::new();
    for (media_type, bytes) in layers {
        let d = reg.push_blob(repo, bytes).await;
        descriptors.push(format!(r#"{{"mediaType":"{media_type}","digest":"{d}","size":{}}}"#, bytes.len()));
    }
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{}],"annotations":{annotations}}}"#,
        config.len(),
        descriptors.join(",")
    );
    let r = reg.push_manifest(repo, tag, OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    Digest::sha256(body.as_bytes())
}

const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

#[tokio::test]
async fn the_harbor_article_flows_and_the_cncf_artifact() {
    let reg = Reg::memory().await;
    // Flow 1: a wasm-to-oci artifact.
    let w2o = ArtifactBuilder::new(MODULE.to_vec()).with_title("hello.wasm").wasm_to_oci().expect("build");
    push_artifact(&reg, "wasm/hello", "v1", &w2o).await;
    // Flow 2: an image built by buildah with `--annotation run.oci.handler=wasm`.
    let config = br#"{"created":"2026-11-25T17:21:27Z","architecture":"amd64","os":"linux","config":{"Cmd":["/hello.wasm"]},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"COPY hello.wasm /"}]}"#;
    let layer = tar_layer(&[("etc/motd", b"hi"), ("hello.wasm", MODULE)], "gzip");
    push_image(
        &reg,
        "wasm/hello",
        "annotated",
        config,
        &[(TAR_GZIP, layer)],
        r#"{"run.oci.handler":"wasm"}"#,
    )
    .await;
    // The CNCF v0 artifact.
    let cncf =
        ArtifactBuilder::new(MODULE.to_vec()).with_created("2025-01-01T00:00:00Z").cncf().expect("build");
    push_artifact(&reg, "wasm/hello", "cncf", &cncf).await;

    let a = inspected(&reg, "/v2/wasm/hello/_wharf/artifacts/v1").await;
    assert_eq!(
        (a["wasm"].as_bool(), a["kind"].as_str(), a["harborType"].as_str()),
        (Some(true), Some("wasm-to-oci"), Some("WASM"))
    );
    assert_eq!(a["module"]["header"]["kind"], "core-module");
    assert_eq!(a["inspection"]["status"], "done");
    assert_eq!(a["tags"], serde_json::json!(["v1"]));
    assert!(!a["evidence"].as_array().expect("evidence").is_empty());

    let a = inspected(&reg, "/v2/wasm/hello/_wharf/artifacts/annotated").await;
    assert_eq!(
        (a["wasm"].as_bool(), a["kind"].as_str(), a["harborType"].as_str()),
        (Some(true), Some("compat-annotated"), Some("WASM"))
    );
    assert_eq!(a["module"]["exports"][0]["name"], "_start", "{a}");
    assert_eq!(a["modules"][0]["path"], "hello.wasm");
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

/// Walks a listing page by page through its `Link`s: every item of `key` on the way.
async fn walk(reg: &Reg, first: &str, key: &str) -> Vec<serde_json::Value> {
    let (mut out, mut path) = (Vec::new(), first.to_owned());
    loop {
        let r = reg.req(Method::GET, &path).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let next =
            header(&r, "link").map(|l| l.trim_start_matches('<').split('>').next().expect("<…>").to_owned());
        let body: serde_json::Value = r.json().await.expect("json");
        out.extend(body[key].as_array().expect("a list").iter().cloned());
        match next {
            Some(next) => path = next,
            None => return out,
        }
    }
}

/// `_wharf/artifacts?n=` reads a page and the tags of its artifacts from the tag hints: the
/// same artifacts with the same tags as the whole listing, after tags moved and were deleted,
/// and for a repository whose tags predate the hints (written once, on the first page).
#[tokio::test]
async fn artifact_pages_carry_their_tags() {
    let storage = Arc::new(wharf_store::MemoryStore::new());
    let reg = Reg::start(storage.clone()).await;
    let repo = "org/many";
    let mut digests = Vec::new();
    for i in 0..25 {
        if i % 5 == 0 {
            let artifact = ArtifactBuilder::new(MODULE.to_vec())
                .with_created(format!("2025-01-{:02}T00:00:00Z", i + 1))
                .cncf()
                .expect("build");
            push_artifact(&reg, repo, &format!("t{i}"), &artifact).await;
            digests.push(artifact.manifest.digest().clone());
            continue;
        }
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","created":"{i}","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let c = reg.push_blob(repo, config.as_bytes()).await;
        let body = image_manifest(&c, config.len(), &[], "");
        assert!(reg.push_manifest(repo, &format!("t{i}"), OCI_MANIFEST, &body).await.status().is_success());
        if i % 4 == 0 {
            assert!(
                reg.push_manifest(repo, &format!("also-{i}"), OCI_MANIFEST, &body)
                    .await
                    .status()
                    .is_success()
            );
        }
        digests.push(Digest::sha256(body.as_bytes()));
    }
    // t1 moves to the manifest of t3; t2 is deleted: their old hints must not show.
    let moved = reg
        .req(Method::GET, &format!("/v2/{repo}/manifests/t3"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(reg.push_manifest(repo, "t1", OCI_MANIFEST, &moved).await.status().is_success());
    assert_eq!(
        reg.req(Method::DELETE, &format!("/v2/{repo}/manifests/t2")).send().await.expect("delete").status(),
        StatusCode::ACCEPTED
    );

    let whole = get_json(&reg, &format!("/v2/{repo}/_wharf/artifacts")).await["artifacts"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(whole.len(), 25);
    let tags_of = |list: &[serde_json::Value]| -> Vec<(String, Vec<String>)> {
        list.iter()
            .map(|a| {
                let tags = a["tags"]
                    .as_array()
                    .expect("tags")
                    .iter()
                    .map(|t| t.as_str().expect("tag").to_owned())
                    .collect();
                (a["digest"].as_str().expect("digest").to_owned(), tags)
            })
            .collect()
    };
    let expected = tags_of(&whole);
    let t3 = expected.iter().find(|(_, t)| t.contains(&"t3".to_owned())).expect("t3");
    assert_eq!(t3.1, vec!["t1".to_owned(), "t3".to_owned()]);
    assert!(expected.iter().all(|(_, t)| !t.contains(&"t2".to_owned())));
    assert_eq!(
        tags_of(&walk(&reg, &format!("/v2/{repo}/_wharf/artifacts?n=7"), "artifacts").await),
        expected
    );
    let wasm = get_json(&reg, &format!("/v2/{repo}/_wharf/artifacts?type=wasm")).await["artifacts"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(wasm.len(), 5);
    assert_eq!(
        tags_of(&walk(&reg, &format!("/v2/{repo}/_wharf/artifacts?type=wasm&n=2"), "artifacts").await),
        tags_of(&wasm)
    );

    // Tags written before the hints existed: the first page writes them, once.
    let hints =
        wharf_store::MetaStore::list_meta(&*storage, &format!("repositories/{repo}/_manifests/tagged/"))
            .await
            .expect("list");
    assert!(hints.len() >= 24, "{hints:?}");
    for key in hints.iter().chain([&format!("repositories/{repo}/_manifests/tag-index")]) {
        wharf_store::MetaStore::remove_meta(&*storage, key).await.expect("remove");
    }
    assert_eq!(
        tags_of(&walk(&reg, &format!("/v2/{repo}/_wharf/artifacts?n=10"), "artifacts").await),
        expected
    );
    let marker = format!("repositories/{repo}/_manifests/tag-index");
    assert!(wharf_store::MetaStore::get_meta(&*storage, &marker).await.expect("get").is_some());
    assert!(digests.iter().all(|d| expected.iter().any(|(e, _)| e == d.as_str())));
    reg.stop().await;
}

/// `_wharf/repositories` goes page by page (100 unless `n` says otherwise), each page with
/// the counts of its repositories, and the pages together are the whole registry; the web
/// page's list goes by the last name shown, with or without the Wasm filter.
#[tokio::test]
async fn repository_listings_go_page_by_page() {
    let reg = Reg::memory().await;
    // 53 repositories (one more than a web page of 50 with the 3 below), every third with a
    // Wasm artifact, the others with a plain image.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let mut wasm_names = Vec::new();
    let mut names = Vec::new();
    for i in 0..53 {
        let name = format!("org/app-{i:02}");
        if i % 3 == 0 {
            let artifact = ArtifactBuilder::new(MODULE.to_vec()).cncf().expect("build");
            push_artifact(&reg, &name, "v1", &artifact).await;
            wasm_names.push(name.clone());
        } else {
            let c = reg.push_blob(&name, config).await;
            let body = image_manifest(&c, config.len(), &[], "");
            assert!(reg.push_manifest(&name, "v1", OCI_MANIFEST, &body).await.status().is_success());
        }
        names.push(name);
    }
    let mut seen = Vec::new();
    let mut path = "/v2/_wharf/repositories?n=20".to_owned();
    loop {
        let r = reg.req(Method::GET, &path).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        let next =
            header(&r, "link").map(|l| l.trim_start_matches('<').split('>').next().expect("<…>").to_owned());
        let body: serde_json::Value = r.json().await.expect("json");
        let page = body["repositories"].as_array().expect("repositories").clone();
        assert!(page.len() <= 20 && (next.is_none() || page.len() == 20), "{path}: {}", page.len());
        for repo in page {
            let name = repo["name"].as_str().expect("name").to_owned();
            let wasm = wasm_names.contains(&name);
            assert_eq!(
                (repo["artifacts"].as_u64(), repo["wasm"].as_u64()),
                (Some(1), Some(u64::from(wasm))),
                "{name}"
            );
            seen.push(name);
        }
        match next {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(seen, names);
    let all = get_json(&reg, "/v2/_wharf/repositories").await;
    assert_eq!(all["repositories"].as_array().map(Vec::len), Some(53), "a default page of 100 holds all");
    let r = reg.req(Method::GET, "/v2/_wharf/repositories?last=Not%20a%20name").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The web page: 50 a page, the next one after the last name shown.
    let rows = |html: &str| -> Vec<String> {
        names.iter().filter(|n| html.contains(&format!(">{n}<"))).cloned().collect()
    };
    let html = reg.req(Method::GET, "/").send().await.expect("send").text().await.expect("html");
    assert_eq!(rows(&html), names[..50].to_vec());
    assert!(
        html.contains("href=\"/?page=2&#38;after=org%2Fapp-49\" rel=\"next\""),
        "a link to the next page"
    );
    let html = reg
        .req(Method::GET, "/?page=2&after=org%2Fapp-49")
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("html");
    assert_eq!(rows(&html), names[50..].to_vec());
    assert!(!html.contains("rel=\"next\""));
    let html = reg.req(Method::GET, "/?wasm=1").send().await.expect("send").text().await.expect("html");
    assert_eq!(rows(&html), wasm_names, "the 18 Wasm repositories on one page");
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
    let reg = Reg::serve(wharf_server::Wharf::new(storage).with_wasm_validate(true)).await;
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

/// Module info for every layout whose module sits in a tar layer (gzip and zstd), a probe that
/// finds `plugin.wasm` (F7), each Wasm child of an index, a component's WIT world; and a
/// missing module said plainly.
#[tokio::test]
async fn modules_in_tar_layers_indexes_and_components() {
    let reg = Reg::memory().await;
    let image_config = |extra: &str| {
        format!(
            r#"{{"architecture":"amd64","os":"linux"{extra},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        )
    };
    // crun's compat variant, the module in a tar+zstd layer under WorkingDir.
    let config = image_config(r#","config":{"Entrypoint":["main.wasm"],"WorkingDir":"/app"}"#);
    let layer = tar_layer(&[("app/main.wasm", MODULE)], "zstd");
    push_image(
        &reg,
        "l",
        "zstd",
        config.as_bytes(),
        &[(TAR_ZSTD, layer)],
        r#"{"module.wasm.image/variant":"compat"}"#,
    )
    .await;
    let a = inspected(&reg, "/v2/l/_wharf/artifacts/zstd").await;
    assert_eq!(
        (a["format"].as_str(), a["modules"][0]["path"].as_str()),
        (Some("F2"), Some("app/main.wasm")),
        "{a}"
    );
    assert_eq!(a["module"]["validation"]["valid"], true);
    // The module is in the lower layer; the upper one is ordinary files.
    let config = image_config(r#","config":{"Cmd":["/hello.wasm"]}"#);
    let lower = tar_layer(&[("hello.wasm", MODULE)], "gzip");
    let upper = tar_layer(&[("etc/hosts", b"127.0.0.1 localhost")], "gzip");
    push_image(
        &reg,
        "l",
        "two",
        config.as_bytes(),
        &[(TAR_GZIP, lower), (TAR_GZIP, upper)],
        r#"{"run.oci.handler":"wasm"}"#,
    )
    .await;
    let a = inspected(&reg, "/v2/l/_wharf/artifacts/two").await;
    assert_eq!(a["modules"][0]["layer"], 0, "{a}");
    assert_eq!(a["module"]["header"]["kind"], "core-module");
    // Not Wasm by its metadata, but its last layer holds plugin.wasm: F7 once read.
    let config = image_config("");
    let layer = tar_layer(&[("plugin.wasm", MODULE)], "gzip");
    push_image(&reg, "l", "plugin", config.as_bytes(), &[(TAR_GZIP, layer)], "{}").await;
    let a = inspected(&reg, "/v2/l/_wharf/artifacts/plugin").await;
    assert_eq!((a["wasm"].as_bool(), a["format"].as_str()), (Some(true), Some("F7")), "{a}");
    assert_eq!(a["module"]["header"]["kind"], "core-module");
    // A plain image with an ordinary last layer: read, nothing found, still not Wasm.
    let layer = tar_layer(&[("bin/sh", b"#!")], "gzip");
    push_image(&reg, "l", "plain", config.as_bytes(), &[(TAR_GZIP, layer)], "{}").await;
    let a = inspected(&reg, "/v2/l/_wharf/artifacts/plain").await;
    assert_eq!((a["wasm"].as_bool(), a["inspection"]["status"].as_str()), (Some(false), Some("done")), "{a}");
    assert!(a["module"].is_null());
    // An annotated image whose module is in no layer: failed, and why.
    let config = image_config(r#","config":{"Cmd":["/missing.wasm"]}"#);
    let layer = tar_layer(&[("hello.wasm", MODULE)], "gzip");
    push_image(
        &reg,
        "l",
        "missing",
        config.as_bytes(),
        &[(TAR_GZIP, layer)],
        r#"{"run.oci.handler":"wasm"}"#,
    )
    .await;
    let a = inspected(&reg, "/v2/l/_wharf/artifacts/missing").await;
    assert_eq!(a["inspection"]["status"], "failed");
    assert!(a["inspection"]["error"].as_str().is_some_and(|e| e.contains("/missing.wasm")), "{a}");

    // podman's wasi/wasm image as the child of an index: the index shows the child's module.
    let config = br#"{"architecture":"wasm","os":"wasi","config":{"Entrypoint":["/hello.wasm"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = tar_layer(&[("hello.wasm", MODULE)], "gzip");
    let child = push_image(&reg, "l", "child", config, &[(TAR_GZIP, layer)], "{}").await;
    let child_bytes = reg
        .req(Method::GET, "/v2/l/manifests/child")
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("body");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":{},"platform":{{"os":"wasi","architecture":"wasm"}}}}]}}"#,
        child_bytes.len()
    );
    assert_eq!(reg.push_manifest("l", "multi", OCI_INDEX, &index).await.status(), StatusCode::CREATED);
    inspected(&reg, "/v2/l/_wharf/artifacts/child").await;
    let a = get_json(&reg, "/v2/l/_wharf/artifacts/multi").await;
    assert_eq!(a["kind"], "wasm-index");
    assert_eq!(a["wasmChildren"][0]["module"]["header"]["kind"], "core-module", "{a}");

    // A component, pushed as wkg pushes it (CNCF layout): its world and WASI version.
    let component =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/cli-http-component.wasm"))
            .expect("fixture");
    let cncf = ArtifactBuilder::new(component).cncf().expect("build");
    push_artifact(&reg, "l", "component", &cncf).await;
    let a = inspected(&reg, "/v2/l/_wharf/artifacts/component").await;
    let module = &a["module"];
    assert_eq!(module["wasiVersion"], "0.2.0", "{a}");
    assert!(module["world"]["wit"].as_str().is_some_and(|w| w.contains("export wasi:cli/run@0.2.0;")), "{a}");
    assert_eq!(module["world"]["exports"][1]["name"], "wasi:http/incoming-handler@0.2.0");
    assert_eq!(module["producers"]["processedBy"][0]["name"], "rustc");
    reg.stop().await;
}

/// The job queue is durable (a push acknowledged before a crash is inspected after the
/// restart) and shared: two registries over one storage run each job once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_queue_survives_a_restart_and_runs_each_job_once() {
    use wharf_server::Wharf;
    use wharf_types::{MediaType, Repository, TagOrDigest};
    let push = |registry: Wharf, tag: String, nonce: u8| async move {
        let repo: Repository = "jobs/app".parse().expect("name");
        let mut module = MODULE.to_vec();
        module.extend_from_slice(&[0, 2, 1, nonce]); // a custom section `\x01` holding the nonce
        let artifact = ArtifactBuilder::new(module).wasm_to_oci().expect("build");
        for blob in artifact.blobs() {
            let data = blob.data.clone();
            let stream = Box::pin(futures_util::stream::once(async move { Ok(data) }));
            registry.put_blob(&repo, &blob.descriptor.digest, stream).await.expect("blob");
        }
        let reference: TagOrDigest = tag.parse().expect("tag");
        let media_type: MediaType = OCI_MANIFEST.parse().expect("media type");
        registry
            .put_manifest(&repo, &reference, Some(&media_type), artifact.manifest.bytes().clone(), &[])
            .await
            .expect("manifest");
    };
    let status = |registry: Wharf, tag: &'static str| async move {
        let repo: Repository = "jobs/app".parse().expect("name");
        let a = registry.artifact(&repo, &tag.parse().expect("tag")).await.expect("artifact");
        (a.inspection.status.to_string(), a.module.clone().unwrap_or_default())
    };
    // A registry without a server has no worker: the job waits in the records.
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Wharf::new(Arc::new(wharf_store::FsStore::open(dir.path()).await.expect("open")));
    push(fs.clone(), "v1".into(), 1).await;
    assert_eq!(status(fs.clone(), "v1").await.0, "pending");
    drop(fs);
    let fs = Wharf::new(Arc::new(wharf_store::FsStore::open(dir.path()).await.expect("reopen")));
    assert_eq!(status(fs.clone(), "v1").await.0, "pending");
    fs.run_pending_jobs().await.expect("jobs");
    let (state, module) = status(fs.clone(), "v1").await;
    assert_eq!(state, "done");
    assert_eq!(module["header"]["kind"], "core-module");
    assert!(
        fs.storage().list_meta("jobs/").await.expect("list").is_empty(),
        "the job and its lease are gone"
    );

    // Two registries (two processes) over one storage, eight jobs, both draining at once.
    let shared: Arc<dyn wharf_store::Storage> = Arc::new(wharf_store::MemoryStore::new());
    let (a, b) = (Wharf::new(Arc::clone(&shared)), Wharf::new(shared));
    for i in 0..8u8 {
        push(a.clone(), format!("t{i}"), i).await;
    }
    let (ra, rb) = tokio::join!(a.run_pending_jobs(), b.run_pending_jobs());
    ra.expect("a");
    rb.expect("b");
    let done = |text: String| {
        text.lines()
            .find(|l| l.starts_with(r#"wharf_jobs_total{kind="inspect",outcome="done"}"#))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (da, db) =
        (done(a.render_metrics().await.expect("metrics")), done(b.render_metrics().await.expect("metrics")));
    assert_eq!(da + db, 8, "each job once: {da} + {db}");
    assert!(a.render_metrics().await.expect("metrics").contains("wharf_jobs_pending 0"));
}

/// `[[wasm_policy]]`: denied imports, WASI versions, Wasm only (signatures still welcome),
/// module size, validation; a refused push names the policy and the offence and stores nothing.
#[tokio::test]
async fn wasm_policies_refuse_with_a_clear_message_and_store_nothing() {
    let config: wharf_server::config::FileConfig = toml::from_str(
        r#"
        [[wasm_policy]]
        name = "no-env"
        repositories = ["strict/**"]
        deny_imports = ["wasi:cli/environment", "wasi:sockets/*"]

        [[wasm_policy]]
        repositories = ["p2/*"]
        wasi = ["0.2"]

        [[wasm_policy]]
        name = "wasm-only"
        repositories = ["only/*"]
        wasm_only = true
        validate = true
        max_module_size = "1KiB"
        "#,
    )
    .expect("config");
    let policies =
        wharf_server::wasm_policy::WasmPolicies::from_config(&config.wasm_policy).expect("policies");
    let reg = Reg::serve(
        wharf_server::Wharf::new(Arc::new(wharf_store::MemoryStore::new())).with_wasm_policies(policies),
    )
    .await;
    let component =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/cli-http-component.wasm"))
            .expect("fixture");
    let cncf = ArtifactBuilder::new(component).cncf().expect("build");
    let refused = |r: reqwest::Response, status: StatusCode, code: &'static str| async move {
        assert_eq!(r.status(), status);
        let json: serde_json::Value = r.json().await.expect("json");
        assert_eq!(json["errors"][0]["code"], code, "{json}");
        json["errors"][0]["message"].as_str().expect("message").to_owned()
    };
    let push = |repo: &'static str, tag: &'static str, artifact: &wharf_wasm::Artifact| {
        let body = String::from_utf8(artifact.manifest.bytes().to_vec()).expect("utf-8");
        let blobs: Vec<Vec<u8>> = artifact.blobs().map(|b| b.data.to_vec()).collect();
        let reg = &reg;
        async move {
            for blob in &blobs {
                reg.push_blob(repo, blob).await;
            }
            reg.push_manifest(repo, tag, OCI_MANIFEST, &body).await
        }
    };

    // The component imports wasi:cli/environment: refused in strict/**, by name.
    let message = refused(push("strict/app", "v1", &cncf).await, StatusCode::FORBIDDEN, "DENIED").await;
    assert!(message.contains("no-env") && message.contains("wasi:cli/environment@0.2.0"), "{message}");
    assert!(message.contains("deny_imports = wasi:cli/environment"), "{message}");
    for path in
        ["/v2/strict/app/manifests/v1", &format!("/v2/strict/app/manifests/{}", cncf.manifest.digest())]
    {
        assert_eq!(
            reg.req(Method::GET, path).send().await.expect("send").status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let r = reg.req(Method::GET, "/v2/strict/app/_wharf/artifacts").send().await.expect("send");
    let listed: serde_json::Value = r.json().await.expect("json");
    assert!(listed["artifacts"].as_array().is_none_or(Vec::is_empty), "{listed}");
    // A preview-1 module is fine there, and its module info is there at once (read inline).
    let module = ArtifactBuilder::new(MODULE.to_vec()).wasm_to_oci().expect("build");
    assert_eq!(push("strict/app", "ok", &module).await.status(), StatusCode::CREATED);
    let a = get_json(&reg, "/v2/strict/app/_wharf/artifacts/ok").await;
    assert_eq!(a["inspection"]["status"], "done");

    // WASI 0.2 only: the component passes, a preview-1 module does not.
    assert_eq!(push("p2/app", "component", &cncf).await.status(), StatusCode::CREATED);
    let wasi_module =
        wat::parse_str(r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#)
            .expect("valid");
    let p1 = ArtifactBuilder::new(wasi_module).wasm_to_oci().expect("build");
    let message = refused(push("p2/app", "p1", &p1).await, StatusCode::FORBIDDEN, "DENIED").await;
    assert!(message.contains("targets WASI preview1; allowed: 0.2"), "{message}");

    // Wasm only: a plain image is refused, a signature (with a subject) is not; 1 KiB modules.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = reg.push_blob("only/app", config).await;
    let plain = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let message = refused(
        reg.push_manifest("only/app", "plain", OCI_MANIFEST, &plain).await,
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;
    assert!(message.contains("wasm_only"), "{message}");
    assert_eq!(push("only/app", "v1", &module).await.status(), StatusCode::CREATED);
    let empty = reg.push_blob("only/app", b"{}").await;
    let signature = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.dev.cosign.simplesigning.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}}}}"#,
        module.manifest.digest(),
        module.manifest.size()
    );
    let digest = Digest::sha256(signature.as_bytes());
    let r = reg.push_manifest("only/app", digest.as_str(), OCI_MANIFEST, &signature).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    let big = ArtifactBuilder::new(
        wat::parse_str(format!("(module (data \"{}\") (memory 1))", "x".repeat(2000))).expect("valid"),
    )
    .wasm_to_oci()
    .expect("build");
    let message = refused(push("only/app", "big", &big).await, StatusCode::FORBIDDEN, "DENIED").await;
    assert!(message.contains("max_module_size") && message.contains("more than 1024"), "{message}");
    let mut fake_bytes = MODULE.to_vec();
    fake_bytes.extend_from_slice(&[0xff, 0xff, 0xff]);
    let fake = ArtifactBuilder::new(fake_bytes).wasm_to_oci().expect("build");
    let message =
        refused(push("only/app", "fake", &fake).await, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    assert!(message.contains("validate"), "{message}");
    // Elsewhere, nothing applies.
    assert_eq!(push("free/app", "fake", &fake).await.status(), StatusCode::CREATED);
    // A malformed policy is refused with its name.
    let bad: wharf_server::config::FileConfig =
        toml::from_str("[[wasm_policy]]\nname = \"x\"\nrepositories = [\"a\"]\nwasi = [\"p2\"]\n")
            .expect("parses");
    let err = wharf_server::wasm_policy::WasmPolicies::from_config(&bad.wasm_policy).expect_err("refused");
    assert!(err.to_string().contains("x: `wasi` entry `p2`"), "{err}");
    reg.stop().await;
}

/// The results of a search: `repository:first tag`, sorted.
async fn search_hits(reg: &Reg, q: &str) -> Vec<String> {
    let json = get_json(reg, &format!("/v2/_wharf/search?{q}")).await;
    let mut hits: Vec<String> = json["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| {
            format!(
                "{}:{}",
                h["repository"].as_str().unwrap_or_default(),
                h["tags"][0].as_str().unwrap_or("-")
            )
        })
        .collect();
    hits.sort();
    hits
}

/// `GET /v2/_wharf/search`: by exported and imported interface (exact, without version, `*`),
/// WASI version, kind, layout, language, free text over names, tags and annotations; pages
/// with `Link`; a second process sharing the storage sees what the first pushed.
#[tokio::test]
async fn search_by_interface_wasi_kind_layout_language_and_text() {
    let storage: Arc<dyn wharf_store::Storage> = Arc::new(wharf_store::MemoryStore::new());
    let (reg, other) = (Reg::start(Arc::clone(&storage)).await, Reg::start(Arc::clone(&storage)).await);
    assert!(search_hits(&other, "").await.is_empty(), "the second process loads its (empty) index first");
    let component =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wasm/cli-http-component.wasm"))
            .expect("fixture");
    let cncf = ArtifactBuilder::new(component)
        .with_annotation("org.opencontainers.image.description", "An HTTP handler for the edge")
        .cncf()
        .expect("build");
    push_artifact(&reg, "edge/handler", "v1", &cncf).await;
    let p1 = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (func (export "_start")) (@producers (language "Rust" "") (processed-by "rustc" "1.95.0")))"#,
    )
    .expect("valid");
    push_artifact(&reg, "tools/cli", "latest", &ArtifactBuilder::new(p1).wasm_to_oci().expect("build")).await;
    let layer = tar_layer(&[("hello.wasm", MODULE)], "gzip");
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/hello.wasm"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    push_image(&reg, "tools/annotated", "v2", config, &[(TAR_GZIP, layer)], r#"{"run.oci.handler":"wasm"}"#)
        .await;
    let plain = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    push_image(&reg, "tools/plain", "v1", plain, &[], "{}").await;
    for path in [
        "/v2/edge/handler/_wharf/artifacts/v1",
        "/v2/tools/cli/_wharf/artifacts/latest",
        "/v2/tools/annotated/_wharf/artifacts/v2",
    ] {
        inspected(&reg, path).await;
    }

    for reg in [&reg, &other] {
        assert_eq!(search_hits(reg, "export=wasi:cli/run").await, ["edge/handler:v1"]);
        assert_eq!(search_hits(reg, "export=wasi:cli/run@0.2.0").await, ["edge/handler:v1"]);
        assert_eq!(search_hits(reg, "export=wasi:http/*").await, ["edge/handler:v1"]);
        assert!(search_hits(reg, "import=wasi:http/*").await.is_empty());
        assert_eq!(search_hits(reg, "import=wasi:cli/environment").await, ["edge/handler:v1"]);
        assert_eq!(search_hits(reg, "wasi=0.2").await, ["edge/handler:v1"]);
        assert_eq!(search_hits(reg, "wasi=preview1").await, ["tools/cli:latest"]);
        assert_eq!(search_hits(reg, "import=wasi_snapshot_preview1").await, ["tools/cli:latest"]);
        assert_eq!(search_hits(reg, "kind=module").await, ["tools/annotated:v2", "tools/cli:latest"]);
        assert_eq!(search_hits(reg, "kind=component").await, ["edge/handler:v1"]);
        assert_eq!(search_hits(reg, "layout=F2").await, ["tools/annotated:v2"]);
        assert_eq!(search_hits(reg, "layout=cncf-artifact").await, ["edge/handler:v1"]);
        assert_eq!(search_hits(reg, "language=rust").await, ["edge/handler:v1", "tools/cli:latest"]);
        assert_eq!(search_hits(reg, "q=edge%20handler").await, ["edge/handler:v1"]);
        assert_eq!(
            search_hits(reg, "q=tools").await,
            ["tools/annotated:v2", "tools/cli:latest"],
            "not the plain image"
        );
        assert_eq!(search_hits(reg, "q=latest").await, ["tools/cli:latest"]);
        assert_eq!(search_hits(reg, "kind=module&language=rust").await, ["tools/cli:latest"]);
    }
    // Pages: one at a time, following Link, filters kept.
    let r = reg.req(Method::GET, "/v2/_wharf/search?kind=module&n=1").send().await.expect("send");
    let link = r.headers()["link"].to_str().expect("link").to_owned();
    assert!(link.starts_with("</v2/_wharf/search?kind=module&n=1&last=tools/annotated@sha256:"), "{link}");
    let next = link.trim_start_matches('<').split('>').next().expect("url").to_owned();
    let page: serde_json::Value = get_json(&reg, &next).await;
    assert_eq!(page["results"][0]["repository"], "tools/cli");
    // A moved tag and a deleted manifest, in both processes.
    let digest = cncf.manifest.digest().clone();
    reg.req(Method::DELETE, &format!("/v2/edge/handler/manifests/{digest}")).send().await.expect("send");
    assert!(search_hits(&reg, "export=wasi:cli/run").await.is_empty());
    assert!(search_hits(&other, "export=wasi:cli/run").await.is_empty());
    // A stamp a process left a day ago is cleared by the next query.
    storage.set_meta("search/stamps/gone", "7 1000".into()).await.expect("stamp");
    search_hits(&reg, "kind=module").await;
    assert_eq!(storage.get_meta("search/stamps/gone").await.expect("get"), None);
    // Bad parameters are refused.
    for q in ["kind=library", "colour=blue", "n=x", "last=nope"] {
        let r = reg.req(Method::GET, &format!("/v2/_wharf/search?{q}")).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
    }
    reg.stop().await;
    other.stop().await;
}
