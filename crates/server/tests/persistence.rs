//! State lives in the backend: a restart loses nothing, and two server processes over one
//! S3 bucket serve the same registry.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use wharf_types::Digest;

use crate::common::{OCI_MANIFEST, Process, Reg, header, image_manifest};

#[tokio::test]
async fn a_restart_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || async {
        Arc::new(wharf_store::FsStore::open(dir.path()).await.expect("open")) as Arc<dyn wharf_store::Storage>
    };
    let reg = Reg::start(open().await).await;
    let c = reg.push_blob("r/app", b"{}").await;
    let manifest = image_manifest(&c, 2, &[], "");
    assert_eq!(reg.push_manifest("r/app", "v1", OCI_MANIFEST, &manifest).await.status(), StatusCode::CREATED);
    // An upload left half done.
    let r = reg.req(Method::POST, "/v2/r/app/blobs/uploads/").send().await.expect("send");
    let location = header(&r, "Location").expect("Location").to_owned();
    reg.req(Method::PATCH, &location)
        .header("Content-Range", "0-4")
        .body(b"hello".to_vec())
        .send()
        .await
        .expect("send");
    reg.stop().await;

    let reg = Reg::start(open().await).await;
    let r = reg.req(Method::GET, "/v2/r/app/manifests/v1").send().await.expect("send");
    assert_eq!(r.text().await.expect("body"), manifest);
    let r = reg.req(Method::GET, &location).send().await.expect("send");
    assert_eq!(header(&r, "Range"), Some("0-4"));
    reg.req(Method::PATCH, &location)
        .header("Content-Range", "5-10")
        .body(b" world".to_vec())
        .send()
        .await
        .expect("send");
    let d = Digest::sha256(b"hello world");
    let r = reg.req(Method::PUT, &format!("{location}?digest={d}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg.req(Method::GET, "/v2/_catalog").send().await.expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["repositories"], serde_json::json!(["r/app"]));
    reg.stop().await;
}

#[tokio::test]
async fn two_processes_over_one_s3_bucket() {
    let Some(storage) = crate::common::s3_storage("two_processes_over_one_s3_bucket", "two") else {
        return;
    };
    let (a, b) = (Process::start(&storage), Process::start(&storage));
    let http = reqwest::Client::new();
    a.ready(&http).await;
    b.ready(&http).await;
    // A chunked upload begun on A continues on B and finishes on A.
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 256) as u8).collect();
    let d = Digest::sha256(&data);
    let r = http.post(format!("{}/v2/shared/repo/blobs/uploads/", a.base)).send().await.expect("send");
    let location = header(&r, "Location").expect("Location").to_owned();
    http.patch(format!("{}{location}", a.base))
        .header("Content-Range", "0-999")
        .body(data[..1000].to_vec())
        .send()
        .await
        .expect("send");
    let r = http
        .patch(format!("{}{location}", b.base))
        .header("Content-Range", "1000-2999")
        .body(data[1000..].to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "Range"), Some("0-2999"));
    let r = http.put(format!("{}{location}?digest={d}", a.base)).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    // A manifest pushed to B is served by A.
    let c = Digest::sha256(b"{}");
    http.post(format!("{}/v2/shared/repo/blobs/uploads/?digest={c}", b.base))
        .body("{}")
        .send()
        .await
        .expect("send");
    let manifest = image_manifest(&c, 2, &[(d.clone(), data.len())], "");
    let r = http
        .put(format!("{}/v2/shared/repo/manifests/v1", b.base))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = http.get(format!("{}/v2/shared/repo/manifests/v1", a.base)).send().await.expect("send");
    assert_eq!(r.text().await.expect("body"), manifest);
    let r = http.get(format!("{}/v2/shared/repo/blobs/{d}", b.base)).send().await.expect("send");
    assert_eq!(r.bytes().await.expect("body").as_ref(), data.as_slice());
}

/// Read-after-write across processes on the hot path: a tag moved (or deleted) through one
/// process is what the other serves on its very next request — GET and HEAD by tag, 1,000
/// times in a row, each direction in turn. The readers keep nothing that could go stale.
async fn tags_move_under_two_processes(storage: &str) {
    let (a, b) = (Process::start(storage), Process::start(storage));
    let http = reqwest::Client::new();
    a.ready(&http).await;
    b.ready(&http).await;
    let repo = "moving/app";
    // Three manifests, each pushed once by digest.
    let c = Digest::sha256(b"{}");
    let r = http
        .post(format!("{}/v2/{repo}/blobs/uploads/?digest={c}", a.base))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let manifests: Vec<(String, String)> = (0..3)
        .map(|i| {
            let m = image_manifest(&c, 2, &[], &format!(r#","annotations":{{"n":"{i}"}}"#));
            (Digest::sha256(m.as_bytes()).to_string(), m)
        })
        .collect();
    for (digest, m) in &manifests {
        let r = http
            .put(format!("{}/v2/{repo}/manifests/{digest}", a.base))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    }
    for i in 0..1000usize {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        if i % 10 == 9 {
            // Deleted through one: gone from the other at once.
            let r =
                http.delete(format!("{}/v2/{repo}/manifests/live", writer.base)).send().await.expect("send");
            assert_eq!(r.status(), StatusCode::ACCEPTED, "delete {i}");
            for method in [Method::HEAD, Method::GET] {
                let r = http.request(method.clone(), format!("{}/v2/{repo}/manifests/live", reader.base));
                let r = r.header("Accept", OCI_MANIFEST).send().await.expect("send");
                assert_eq!(
                    r.status(),
                    StatusCode::NOT_FOUND,
                    "{method} {i}: the tag was deleted through the other"
                );
            }
            continue;
        }
        let (digest, m) = &manifests[i % 3];
        let r = http
            .put(format!("{}/v2/{repo}/manifests/live", writer.base))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED, "move {i}");
        for method in [Method::HEAD, Method::GET] {
            let r = http
                .request(method.clone(), format!("{}/v2/{repo}/manifests/live", reader.base))
                .header("Accept", OCI_MANIFEST)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), StatusCode::OK, "{method} {i}");
            assert_eq!(
                header(&r, "Docker-Content-Digest"),
                Some(digest.as_str()),
                "{method} {i}: moved through the other"
            );
            if method == Method::GET {
                assert_eq!(&r.text().await.expect("body"), m, "GET {i}");
            }
        }
    }
}

#[tokio::test]
async fn a_tag_moved_through_one_process_is_served_moved_by_another_on_fs() {
    let dir = tempfile::tempdir().expect("tempdir");
    tags_move_under_two_processes(&format!("fs:{}", dir.path().display())).await;
}

#[tokio::test]
async fn a_tag_moved_through_one_process_is_served_moved_by_another_on_garage() {
    let Some(storage) = crate::common::s3_storage(
        "a_tag_moved_through_one_process_is_served_moved_by_another_on_garage",
        "moving",
    ) else {
        return;
    };
    tags_move_under_two_processes(&storage).await;
}

#[tokio::test]
async fn stale_uploads_are_purged() {
    let registry = wharf_server::Wharf::new(Arc::new(wharf_store::MemoryStore::new()));
    let repo: wharf_types::Repository = "r".parse().expect("name");
    let id = registry.begin_upload(&repo).await.expect("begin");
    assert_eq!(registry.purge_stale_uploads(Duration::from_secs(3600)).await.expect("purge"), 0);
    assert_eq!(registry.upload_status(&repo, &id).await.expect("status"), 0);
    assert_eq!(registry.purge_stale_uploads(Duration::ZERO).await.expect("purge"), 1);
    assert!(registry.upload_status(&repo, &id).await.is_err(), "the session is gone");
}

/// The reproduction of issue 13: on fs storage, an upload to `org` and then to `org/app`
/// answered 500 and left a journal record that kept the server from starting again. Now every
/// parent/child pair works, and the server stops and starts cleanly.
#[tokio::test]
async fn parent_and_child_repositories_survive_sigterm_and_restart_on_fs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = format!("fs:{}", dir.path().display());
    let http = reqwest::Client::new();
    let mut first = Process::start(&storage);
    first.ready(&http).await;
    for repo in ["org", "org/app"] {
        let r = http.post(format!("{}/v2/{repo}/blobs/uploads/", first.base)).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::ACCEPTED, "POST to {repo}");
    }
    // The most ordinary names, child first this time, each with a tagged image.
    let c = Digest::sha256(b"{}");
    let manifest = image_manifest(&c, 2, &[], "");
    for repo in ["library/ubuntu", "library", "org/app/web"] {
        let r = http
            .post(format!("{}/v2/{repo}/blobs/uploads/?digest={c}", first.base))
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED, "blob to {repo}");
        let r = http
            .put(format!("{}/v2/{repo}/manifests/latest", first.base))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED, "manifest to {repo}");
    }
    let exit = first.signal("-TERM");
    assert!(exit.success(), "exit after SIGTERM: {exit}");

    let second = Process::start(&storage);
    second.ready(&http).await;
    let r = http.get(format!("{}/v2/_catalog", second.base)).send().await.expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body["repositories"],
        serde_json::json!(["library", "library/ubuntu", "org", "org/app", "org/app/web"])
    );
    for repo in ["library/ubuntu", "library", "org/app/web"] {
        let r = http.get(format!("{}/v2/{repo}/manifests/latest", second.base)).send().await.expect("send");
        assert_eq!(r.text().await.expect("body"), manifest, "{repo}");
    }
}

/// A journal damaged by hand is moved aside with an error; the server starts and says so in
/// its metrics.
#[tokio::test]
async fn the_server_starts_after_a_corrupted_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = format!("fs:{}", dir.path().display());
    let http = reqwest::Client::new();
    let c = Digest::sha256(b"{}");
    {
        let mut first = Process::start(&storage);
        first.ready(&http).await;
        let r = http
            .post(format!("{}/v2/org/blobs/uploads/?digest={c}", first.base))
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED);
        assert!(first.signal("-TERM").success());
    }
    // A journal left by a store that is gone: one good record, then garbage where the next
    // record would be.
    let journal = dir.path().join("journal/0000000000000000-00000001.log");
    let mut bytes = wharf_store::encode_journal_record(&[wharf_store::Write::Set {
        key: "catalog/restored".into(),
        value: bytes::Bytes::new(),
    }]);
    bytes.extend_from_slice(b"XXXX this is not a record at all, and more follows");
    bytes.extend_from_slice(&[0; 4096]);
    bytes.extend_from_slice(b"trailing damage");
    std::fs::write(&journal, &bytes).expect("write journal");

    let second = Process::start(&storage);
    second.ready(&http).await;
    let r = http.get(format!("{}/v2/_catalog", second.base)).send().await.expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["repositories"], serde_json::json!(["org", "restored"]));
    let metrics = http.get(format!("{}/metrics", second.base)).send().await.expect("send");
    let metrics = metrics.text().await.expect("body");
    assert!(metrics.contains("wharf_store_quarantined 1"), "{metrics}");
    let quarantined: Vec<_> = std::fs::read_dir(dir.path().join("quarantine")).expect("quarantine").collect();
    assert_eq!(quarantined.len(), 1);
    assert!(!journal.exists(), "the damaged journal was replayed and removed");
}

/// On S3 with `redirect=true`, blob GETs and HEADs answer `307` to a presigned URL on the
/// engine (what the repository does not hold still answers 404 here), and following it gives
/// the bytes, whole or a range.
#[tokio::test]
async fn blobs_redirect_to_presigned_urls_on_s3() {
    let Some(url) = crate::common::s3_storage("blobs_redirect_to_presigned_urls_on_s3", "redirect") else {
        return;
    };
    let server = Process::start(&format!("{url}&redirect=true"));
    let follow = reqwest::Client::new();
    server.ready(&follow).await;
    let stay =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let blob = wharf_store::testing::content(77, 3 * 1024 * 1024 + 5);
    let digest = Digest::sha256(&blob);
    let base = &server.base;
    let pushed = stay
        .post(format!("{base}/v2/r/app/blobs/uploads/?digest={digest}"))
        .body(blob.clone())
        .send()
        .await
        .expect("push");
    assert_eq!(pushed.status(), StatusCode::CREATED);
    let engine = reqwest::Url::parse(
        url.split("endpoint=").nth(1).and_then(|e| e.split('&').next()).expect("endpoint"),
    )
    .expect("endpoint URL");

    for method in [Method::GET, Method::HEAD] {
        let r = stay
            .request(method.clone(), format!("{base}/v2/r/app/blobs/{digest}"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT, "{method}");
        let location = reqwest::Url::parse(header(&r, "Location").expect("Location")).expect("a URL");
        assert_eq!((location.host_str(), location.port()), (engine.host_str(), engine.port()), "{method}");
        assert!(location.query().is_some_and(|q| q.contains("X-Amz-Signature=")), "presigned: {location}");
        assert!(
            location.query().is_some_and(|q| q.contains("X-Amz-Expires=300")),
            "five minutes: {location}"
        );
    }
    // Not in this repository: no URL for it.
    let r = stay.get(format!("{base}/v2/other/blobs/{digest}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.expect("body").contains("BLOB_UNKNOWN"));

    let r = follow.get(format!("{base}/v2/r/app/blobs/{digest}")).send().await.expect("follow");
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.expect("bytes");
    assert_eq!(Digest::sha256(&body), digest, "byte-exact through the redirect");
    let r = follow
        .get(format!("{base}/v2/r/app/blobs/{digest}"))
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.expect("bytes"), blob.slice(1000..2000));
    let r = follow.head(format!("{base}/v2/r/app/blobs/{digest}")).send().await.expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "Content-Length"), Some(blob.len().to_string().as_str()));
}
