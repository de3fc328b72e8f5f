//! The checks of the OCI distribution-spec conformance suite (both generations, as
//! OCI-CONFORMANCE.md lists them), over a real socket.

use reqwest::{Method, StatusCode};
use wharf_types::{Algorithm, Digest};

use crate::common::{OCI_INDEX, OCI_MANIFEST, Reg, header, image_manifest};

#[tokio::test]
async fn base_and_errors() {
    let reg = Reg::memory().await;
    let r = reg.req(Method::GET, "/v2/").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "Docker-Distribution-API-Version"), Some("registry/2.0"));
    // Unknown things are 404 with a spec error body.
    let r = reg.req(Method::GET, "/v2/repo/manifests/missing").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");
    for path in ["/v2/repo/manifests/.INVALID_MANIFEST_NAME", "/v2/repo/manifests/sha256:totallywrong"] {
        let r = reg.req(Method::HEAD, path).send().await.expect("send");
        assert!(
            matches!(r.status(), StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
            "{path}: {}",
            r.status()
        );
    }
    let r = reg.req(Method::GET, "/v2/Bad_Name/tags/list").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "NAME_INVALID");
    let r = reg.req(Method::GET, "/v2/a/../b/tags/list").send().await.expect("send");
    assert!(r.status().is_client_error());
    // A bad digest in a manifest PUT is 400.
    let r = reg.push_manifest("repo", "sha256:baddigeststring", OCI_MANIFEST, "{}").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    reg.stop().await;
}

#[tokio::test]
async fn blob_push_methods_and_reads() {
    let reg = Reg::memory().await;
    let repo = "conformance/repo1";
    // Monolithic POST ?digest=.
    let a = reg.push_blob(repo, &[7u8; 512]).await;
    let r = reg.req(Method::HEAD, &format!("/v2/{repo}/blobs/{a}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "Content-Length"), Some("512"));
    assert_eq!(header(&r, "Docker-Content-Digest"), Some(a.as_str()));
    let r = reg.req(Method::GET, &format!("/v2/{repo}/blobs/{a}")).send().await.expect("send");
    assert_eq!(r.bytes().await.expect("body").as_ref(), &[7u8; 512]);

    // POST then PUT with the body.
    let data = b"post-then-put".to_vec();
    let d = Digest::sha256(&data);
    let r = reg.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "Location").expect("Location").to_owned();
    let r = reg
        .req(Method::PUT, &format!("{}?digest={d}", reg.url(&location)))
        .body(data.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(header(&r, "Location").is_some());

    // Streamed PATCH, then PUT without a body.
    let data = vec![3u8; 42];
    let d = Digest::sha256(&data);
    let r = reg.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send().await.expect("send");
    let location = reg.url(header(&r, "Location").expect("Location"));
    let r = reg
        .req(Method::PATCH, &location)
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "Range"), Some("0-41"));
    let location = reg.url(header(&r, "Location").expect("Location"));
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={d}"))
        .header("Content-Length", "0")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);

    // Zero-byte blob and the empty JSON blob.
    for data in [&b""[..], b"{}"] {
        let d = reg.push_blob(repo, data).await;
        let r = reg.req(Method::GET, &format!("/v2/{repo}/blobs/{d}")).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.expect("body").as_ref(), data);
    }

    // sha512.
    let data = vec![9u8; 512];
    let d = Digest::compute(Algorithm::Sha512, &data);
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
        .body(data.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg.req(Method::GET, &format!("/v2/{repo}/blobs/{d}")).send().await.expect("send");
    assert_eq!(r.bytes().await.expect("body").as_ref(), data.as_slice());

    // A wrong digest: 400 DIGEST_INVALID, nothing stored.
    let wrong = Digest::sha256(b"something else");
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={wrong}"))
        .body(b"oh no".to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "DIGEST_INVALID");
    let r = reg.req(Method::HEAD, &format!("/v2/{repo}/blobs/{wrong}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    reg.stop().await;
}

#[tokio::test]
async fn chunked_uploads_and_416() {
    let reg = Reg::memory().await;
    let repo = "conformance/repo1";
    let data: Vec<u8> = (0..42u8).collect();
    let d = Digest::sha256(&data);
    let start = |reg: &Reg| {
        let url = reg.url(&format!("/v2/{repo}/blobs/uploads/"));
        let http = reg.http.clone();
        async move {
            let r = http.post(url).header("Content-Length", "0").send().await.expect("send");
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            header(&r, "Location").expect("Location").to_owned()
        }
    };
    // Chunk 2 first: 416.
    let location = reg.url(&start(&reg).await);
    let r = reg
        .req(Method::PATCH, &location)
        .header("Content-Range", "22-41")
        .body(data[22..].to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // A new session: chunk 1.
    let old = reg.url(&start(&reg).await);
    let r = reg
        .req(Method::PATCH, &old)
        .header("Content-Range", "0-21")
        .body(data[..22].to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "Range"), Some("0-21"));
    let next = reg.url(header(&r, "Location").expect("Location"));
    // Retrying chunk 1: 416.
    let r = reg
        .req(Method::PATCH, &old)
        .header("Content-Range", "0-21")
        .body(data[..22].to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // GET the session: 204 with Range and Location.
    let r = reg.req(Method::GET, &old).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "Range"), Some("0-21"));
    assert!(header(&r, "Location").is_some());
    // Chunk 2: 202 with the cumulative range.
    let r = reg
        .req(Method::PATCH, &next)
        .header("Content-Range", "22-41")
        .body(data[22..].to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "Range"), Some("0-41"));
    let next = reg.url(header(&r, "Location").expect("Location"));
    let r = reg
        .req(Method::PUT, &format!("{next}?digest={d}"))
        .header("Content-Length", "0")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(header(&r, "Location").is_some());

    // The last chunk in the PUT.
    let location = reg.url(&start(&reg).await);
    let r = reg
        .req(Method::PATCH, &location)
        .header("Content-Range", "0-21")
        .body(data[..22].to_vec())
        .send()
        .await
        .expect("send");
    let next = reg.url(header(&r, "Location").expect("Location"));
    let r = reg
        .req(Method::PUT, &format!("{next}?digest={d}"))
        .header("Content-Range", "22-41")
        .body(data[22..].to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);

    // Cancel: 204, then the session is gone.
    let location = reg.url(&start(&reg).await);
    let r = reg.req(Method::DELETE, &location).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = reg.req(Method::GET, &location).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN");

    // A chunked upload with a wrong digest: 400 at the PUT.
    let location = reg.url(&start(&reg).await);
    reg.req(Method::PATCH, &location).body(b"oh no".to_vec()).send().await.expect("send");
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={}", Digest::sha256(b"x")))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    reg.stop().await;
}

#[tokio::test]
async fn ranges() {
    let reg = Reg::memory().await;
    let data: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    let d = reg.push_blob("r", &data).await;
    for (range, len, content_range) in [
        ("bytes=500-1499", 1000, "bytes 500-1499/2048"),
        ("bytes=500-", 1548, "bytes 500-2047/2048"),
        ("bytes=-500", 500, "bytes 1548-2047/2048"),
        ("bytes=2000-5000", 48, "bytes 2000-2047/2048"),
    ] {
        let r = reg
            .req(Method::GET, &format!("/v2/r/blobs/{d}"))
            .header("Range", range)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&r, "Content-Range"), Some(content_range));
        assert_eq!(r.bytes().await.expect("body").len(), len);
    }
    for range in ["bytes=500-0", "bytes=5000-10000"] {
        let r = reg
            .req(Method::GET, &format!("/v2/r/blobs/{d}"))
            .header("Range", range)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
    }
    reg.stop().await;
}

#[tokio::test]
async fn mounts() {
    let reg = Reg::memory().await;
    let a = reg.push_blob("conformance/repo2", b"blob A").await;
    // Mount with from: 201 and the blob readable.
    let r = reg
        .req(Method::POST, &format!("/v2/conformance/repo1/blobs/uploads/?mount={a}&from=conformance/repo2"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "Location"), Some(format!("/v2/conformance/repo1/blobs/{a}").as_str()));
    assert_eq!(
        reg.req(Method::GET, &format!("/v2/conformance/repo1/blobs/{a}"))
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::OK
    );
    // Automatic mount without from.
    let r = reg
        .req(Method::POST, &format!("/v2/conformance/repo3/blobs/uploads/?mount={a}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    // Mount of a missing blob: never 201; an upload session instead.
    let missing = Digest::sha256(b"never pushed");
    for from in ["&from=conformance/repo2", ""] {
        let r = reg
            .req(Method::POST, &format!("/v2/conformance/repo1/blobs/uploads/?mount={missing}{from}"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert!(
            header(&r, "Location").expect("Location").starts_with("/v2/conformance/repo1/blobs/uploads/")
        );
    }
    // A repository does not serve blobs it does not hold.
    let r = reg.req(Method::GET, &format!("/v2/other/blobs/{a}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    reg.stop().await;
}

#[tokio::test]
async fn manifests_tags_and_deletes() {
    let reg = Reg::memory().await;
    let repo = "conformance/repo1";
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = reg.push_blob(repo, config).await;
    let l = reg.push_blob(repo, b"layer").await;
    let manifest = image_manifest(&c, config.len(), &[(l.clone(), 5)], r#","newUnspecifiedField":{"a":1}"#);
    let md = Digest::sha256(manifest.as_bytes());
    // By digest, then by tags.
    let r = reg.push_manifest(repo, md.as_str(), OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "Docker-Content-Digest"), Some(md.as_str()));
    assert_eq!(header(&r, "Location"), Some(format!("/v2/{repo}/manifests/{md}").as_str()));
    for tag in ["test0", "test1", "test2", "test3", "TEST0"] {
        assert_eq!(reg.push_manifest(repo, tag, OCI_MANIFEST, &manifest).await.status(), StatusCode::CREATED);
    }
    // Exact bytes, content type, digest on GET and HEAD, by tag and by digest.
    for reference in ["test0", md.as_str()] {
        let r = reg
            .req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(header(&r, "Docker-Content-Digest"), Some(md.as_str()));
        assert_eq!(r.text().await.expect("body"), manifest);
        let r =
            reg.req(Method::HEAD, &format!("/v2/{repo}/manifests/{reference}")).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "Content-Length"), Some(manifest.len().to_string().as_str()));
    }
    // Pushing to a digest the bytes do not have: 400 DIGEST_INVALID.
    let r = reg.push_manifest(repo, Digest::sha256(b"nope").as_str(), OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A manifest referencing a missing blob: MANIFEST_BLOB_UNKNOWN.
    let dangling = image_manifest(&c, config.len(), &[(Digest::sha256(b"missing"), 7)], "");
    let r = reg.push_manifest(repo, "dangling", OCI_MANIFEST, &dangling).await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    // Non-distributable layers need not be pushed.
    let foreign = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":9,"urls":["https://example.com/layer"]}}]}}"#,
        config.len(),
        Digest::sha256(b"elsewhere")
    );
    assert_eq!(
        reg.push_manifest(repo, "foreign", OCI_MANIFEST, &foreign).await.status(),
        StatusCode::CREATED
    );
    // Tag params.
    let r = reg
        .req(Method::PUT, &format!("/v2/{repo}/manifests/{md}?tag=a&tag=b"))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let tags: Vec<_> = r.headers().get_all("OCI-Tag").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(tags, ["a", "b"]);

    // Tags list: sorted, paginated with Link, `last` exclusive.
    let r = reg.req(Method::GET, &format!("/v2/{repo}/tags/list")).send().await.expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    let all: Vec<String> = serde_json::from_value(body["tags"].clone()).expect("tags");
    assert_eq!(all, ["TEST0", "a", "b", "foreign", "test0", "test1", "test2", "test3"]);
    let r = reg.req(Method::GET, &format!("/v2/{repo}/tags/list?n=3")).send().await.expect("send");
    let link = header(&r, "Link").expect("Link").to_owned();
    assert!(link.contains("last=b") && link.contains("rel=\"next\""), "{link}");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["tags"].as_array().expect("tags").len(), 3);
    let r = reg.req(Method::GET, &format!("/v2/{repo}/tags/list?n=3&last=b")).send().await.expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["tags"], serde_json::json!(["foreign", "test0", "test1"]));

    // Deletes: tag, then manifest, then blobs; each effective at once.
    let r = reg.req(Method::DELETE, &format!("/v2/{repo}/manifests/test3")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        reg.req(Method::HEAD, &format!("/v2/{repo}/manifests/test3")).send().await.expect("send").status(),
        StatusCode::NOT_FOUND
    );
    let r = reg.req(Method::DELETE, &format!("/v2/{repo}/manifests/{md}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        reg.req(Method::GET, &format!("/v2/{repo}/manifests/{md}")).send().await.expect("send").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.req(Method::GET, &format!("/v2/{repo}/manifests/test0")).send().await.expect("send").status(),
        StatusCode::NOT_FOUND
    );
    let r = reg.req(Method::DELETE, &format!("/v2/{repo}/blobs/{l}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        reg.req(Method::GET, &format!("/v2/{repo}/blobs/{l}")).send().await.expect("send").status(),
        StatusCode::NOT_FOUND
    );
    let r = reg.req(Method::GET, &format!("/v2/{repo}/tags/list")).send().await.expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["tags"], serde_json::json!(["foreign"]));

    // Catalog.
    let r = reg.req(Method::GET, "/v2/_catalog").send().await.expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["repositories"], serde_json::json!([repo]));
    reg.stop().await;
}

#[tokio::test]
async fn large_manifest_and_limit() {
    let reg = Reg::memory().await;
    let c = reg.push_blob("big", b"{}").await;
    // 390 annotations of 10,000 characters: ~3.9 MB, under the 4 MiB limit.
    let annotations: Vec<String> =
        (0..390).map(|i| format!(r#""key{i}":"{}""#, "x".repeat(10_000))).collect();
    let manifest = image_manifest(&c, 2, &[], &format!(r#","annotations":{{{}}}"#, annotations.join(",")));
    assert!(manifest.len() > 3_900_000 && manifest.len() < 4 * 1024 * 1024);
    let r = reg.push_manifest("big", "large", OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg.req(Method::GET, "/v2/big/manifests/large").send().await.expect("send");
    assert_eq!(r.text().await.expect("body"), manifest);
    // Over 4 MiB: refused with a spec error, nothing stored.
    let too_big =
        image_manifest(&c, 2, &[], &format!(r#","annotations":{{"k":"{}"}}"#, "y".repeat(4 * 1024 * 1024)));
    let r = reg.push_manifest("big", "huge", OCI_MANIFEST, &too_big).await;
    assert!(r.status().is_client_error());
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["errors"][0]["code"].is_string());
    assert_eq!(
        reg.req(Method::GET, "/v2/big/manifests/huge").send().await.expect("send").status(),
        StatusCode::NOT_FOUND
    );
    reg.stop().await;
}

#[tokio::test]
async fn referrers() {
    let reg = Reg::memory().await;
    let repo = "conformance/repo1";
    let empty = reg.push_blob(repo, b"{}").await;
    assert_eq!(empty, Digest::EMPTY_JSON);
    let layer = reg.push_blob(repo, b"signature").await;
    let subject_manifest = image_manifest(&empty, 2, &[], "");
    let subject = Digest::sha256(subject_manifest.as_bytes());
    // Unknown subject: an empty index.
    let r = reg.req(Method::GET, &format!("/v2/{repo}/referrers/{subject}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "Content-Type"), Some(OCI_INDEX));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["manifests"], serde_json::json!([]));
    assert_eq!(body["schemaVersion"], 2);
    assert_eq!(body["mediaType"], OCI_INDEX);
    // A referrer pushed before its subject exists: OCI-Subject is still answered.
    let referrer = |artifact_type: &str, note: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{artifact_type}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{layer}","size":9}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{}}},"annotations":{{"org.example.note":"{note}"}}}}"#,
            subject_manifest.len()
        )
    };
    let first = referrer("application/vnd.nhl.peanut.butter.bagel", "one");
    let first_digest = Digest::sha256(first.as_bytes());
    let r = reg.push_manifest(repo, first_digest.as_str(), OCI_MANIFEST, &first).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "OCI-Subject"), Some(subject.as_str()));
    let second = referrer("application/vnd.example.sbom", "two");
    let r = reg.push_manifest(repo, Digest::sha256(second.as_bytes()).as_str(), OCI_MANIFEST, &second).await;
    assert_eq!(header(&r, "OCI-Subject"), Some(subject.as_str()));
    reg.push_manifest(repo, "tagtest0", OCI_MANIFEST, &subject_manifest).await;
    // Listed with exact descriptor fields.
    let r = reg.req(Method::GET, &format!("/v2/{repo}/referrers/{subject}")).send().await.expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    let listed = body["manifests"].as_array().expect("manifests");
    assert_eq!(listed.len(), 2);
    let one = listed.iter().find(|d| d["digest"] == first_digest.as_str()).expect("first listed");
    assert_eq!(one["mediaType"], OCI_MANIFEST);
    assert_eq!(one["size"], first.len());
    assert_eq!(one["artifactType"], "application/vnd.nhl.peanut.butter.bagel");
    assert_eq!(one["annotations"], serde_json::json!({"org.example.note": "one"}));
    // Filtered.
    let r = reg
        .req(
            Method::GET,
            &format!("/v2/{repo}/referrers/{subject}?artifactType=application/vnd.nhl.peanut.butter.bagel"),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(header(&r, "OCI-Filters-Applied"), Some("artifactType"));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["manifests"].as_array().expect("manifests").len(), 1);
    // Deleting a referrer removes it from the list.
    reg.req(Method::DELETE, &format!("/v2/{repo}/manifests/{first_digest}")).send().await.expect("send");
    let r = reg.req(Method::GET, &format!("/v2/{repo}/referrers/{subject}")).send().await.expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["manifests"].as_array().expect("manifests").len(), 1);
    reg.stop().await;
}

#[tokio::test]
async fn indexes_need_their_children() {
    let reg = Reg::memory().await;
    let repo = "idx";
    let c = reg.push_blob(repo, b"{}").await;
    let child = image_manifest(&c, 2, &[], "");
    let child_digest = Digest::sha256(child.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child_digest}","size":{},"platform":{{"os":"wasi","architecture":"wasm"}}}}]}}"#,
        child.len()
    );
    let r = reg.push_manifest(repo, "multi", OCI_INDEX, &index).await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    reg.push_manifest(repo, child_digest.as_str(), OCI_MANIFEST, &child).await;
    assert_eq!(reg.push_manifest(repo, "multi", OCI_INDEX, &index).await.status(), StatusCode::CREATED);
    let r = reg.req(Method::GET, &format!("/v2/{repo}/manifests/multi")).send().await.expect("send");
    assert_eq!(header(&r, "Content-Type"), Some(OCI_INDEX));
    // Content-Type and mediaType must agree.
    let r = reg.push_manifest(repo, "mismatch", OCI_MANIFEST, &index).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    reg.stop().await;
}

#[tokio::test]
async fn embedded_data_counts_as_pushed() {
    let reg = Reg::memory().await;
    let c = reg.push_blob("d", b"{}").await;
    // "aGVsbG8=" is "hello": a layer embedded in its descriptor, never pushed.
    let hello = Digest::sha256(b"hello");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{c}","size":2}},"layers":[{{"mediaType":"text/plain","digest":"{hello}","size":5,"data":"aGVsbG8="}}]}}"#
    );
    assert_eq!(
        reg.push_manifest("d", "embedded", OCI_MANIFEST, &manifest).await.status(),
        StatusCode::CREATED
    );
    let r = reg.req(Method::GET, &format!("/v2/d/blobs/{hello}")).send().await.expect("send");
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"hello");
    // Embedded data that does not match its digest is refused ("d29ybGQ=" is "world").
    let lie = manifest.replace("aGVsbG8=", "d29ybGQ=");
    let r = reg
        .push_manifest(
            "other",
            "lie",
            OCI_MANIFEST,
            &lie.replace(c.as_str(), reg.push_blob("other", b"{}").await.as_str()),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    reg.stop().await;
}

#[tokio::test]
async fn content_type_parameters_are_not_echoed() {
    let reg = Reg::memory().await;
    let c = reg.push_blob("p", b"{}").await;
    let manifest = image_manifest(&c, 2, &[], "");
    let r = reg.push_manifest("p", "v1", &format!("{OCI_MANIFEST}; charset=utf-8"), &manifest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg.req(Method::GET, "/v2/p/manifests/v1").send().await.expect("send");
    assert_eq!(header(&r, "Content-Type"), Some(OCI_MANIFEST));
    reg.stop().await;
}

#[tokio::test]
async fn percent_encoded_digests_in_paths() {
    let reg = Reg::memory().await;
    let d = reg.push_blob("enc", b"x").await;
    let encoded = d.as_str().replace(':', "%3A");
    let r = reg.req(Method::GET, &format!("/v2/enc/blobs/{encoded}")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    reg.stop().await;
}
