//! The router without a socket (`tower::ServiceExt::oneshot`): error paths of every endpoint.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use tower::ServiceExt as _;
use wharf_server::{Wharf, router};

async fn call(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (StatusCode, serde_json::Value) {
    let (status, _, json) = call_with_headers(method, uri, headers, body).await;
    (status, json)
}

async fn call_with_headers(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let app = router(Wharf::new(Arc::new(wharf_store::MemoryStore::new())));
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response =
        app.oneshot(request.body(Body::from(body.to_vec())).expect("request")).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn message(body: &serde_json::Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

fn code(body: &serde_json::Value) -> &str {
    body["errors"][0]["code"].as_str().unwrap_or_default()
}

const BLOB_URI: &str = "/v2/a/blobs/sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Method, URI, headers, body, expected status, expected code.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8], StatusCode, &'a str);

#[tokio::test]
async fn error_paths() {
    let cases: &[Case<'_>] = &[
        ("GET", "/v2/UPPER/tags/list", &[], b"", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("GET", "/v2/a/tags/list", &[], b"", StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        ("GET", "/v2/a/tags/list?n=x", &[], b"", StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID"),
        ("GET", "/v2/_catalog?n=-1", &[], b"", StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID"),
        ("GET", "/v2/_catalog?last=UPPER", &[], b"", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("GET", "/v2/a/tags/list?last=-x", &[], b"", StatusCode::BAD_REQUEST, "TAG_INVALID"),
        ("GET", "/v2/a/_wharf/artifacts?type=exe", &[], b"", StatusCode::BAD_REQUEST, "PARAMETER_INVALID"),
        ("GET", "/v2/a/_wharf/artifacts?last=nope", &[], b"", StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        ("GET", "/v2/a/_wharf/unknown", &[], b"", StatusCode::NOT_FOUND, "NOT_FOUND"),
        ("GET", "/v2/_wharf/nothing", &[], b"", StatusCode::NOT_FOUND, "NOT_FOUND"),
        ("GET", "/v1/", &[], b"", StatusCode::NOT_FOUND, "NOT_FOUND"),
        ("GET", "/v2/a%2Fb/tags/list", &[], b"", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("GET", "/v2/a/manifests/v1%2Fx", &[], b"", StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/a/blobs/sha256:nope", &[], b"", StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        ("GET", "/v2/a/manifests/latest", &[], b"", StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        ("PUT", "/v2/a/manifests/-bad-tag", &[], b"{}", StatusCode::BAD_REQUEST, "TAG_INVALID"),
        (
            "PUT",
            "/v2/a/manifests/v1",
            &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
            b"{",
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        (
            "PUT",
            "/v2/a/manifests/v1",
            &[("content-type", "nonsense")],
            b"{}",
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        ("DELETE", "/v2/a/manifests/v1", &[], b"", StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        ("GET", BLOB_URI, &[], b"", StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
        ("DELETE", "/v2/a/blobs/sha256:nope", &[], b"", StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        (
            "POST",
            "/v2/a/blobs/uploads/?digest=sha256:nope",
            &[],
            b"x",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            "POST",
            "/v2/a/blobs/uploads/?mount=sha256:nope",
            &[],
            b"",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            "POST",
            "/v2/a/blobs/uploads/?mount=x&from=BAD",
            &[],
            b"",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        ("GET", "/v2/a/blobs/uploads/unknown-id", &[], b"", StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        ("GET", "/v2/a/blobs/uploads/../etc", &[], b"", StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        ("GET", "/v2/a/../b/blobs/uploads/x", &[], b"", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("GET", "/v2/a/%2e%2e/b/tags/list", &[], b"", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        ("PATCH", "/v2/a/blobs/uploads/unknown-id", &[], b"x", StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        ("PUT", "/v2/a/blobs/uploads/unknown-id", &[], b"", StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        ("DELETE", "/v2/a/blobs/uploads/unknown-id", &[], b"", StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        ("GET", "/v2/a/referrers/sha256:nope", &[], b"", StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        ("POST", "/v2/a/manifests/v1", &[], b"", StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
        ("PUT", "/v2/_catalog", &[], b"", StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
    ];
    for (method, uri, headers, body, status, expected) in cases {
        let (got, json) = call(method, uri, headers, body).await;
        assert_eq!((got, code(&json)), (*status, *expected), "{method} {uri}");
    }
    // A malformed digest is named as such, never as another digest.
    let (_, json) = call("GET", "/v2/a/blobs/sha256:nope", &[], b"").await;
    assert!(message(&json).contains("sha256:nope"), "{json}");
    assert!(!message(&json).contains("e3b0c442"), "{json}");
    // A 405 says what is allowed.
    for (method, uri, allow) in [
        ("POST", "/v2/a/manifests/v1", "GET, HEAD, PUT, DELETE"),
        ("PUT", "/v2/_catalog", "GET"),
        ("PATCH", BLOB_URI, "GET, HEAD, DELETE"),
        ("DELETE", "/v2/", "GET, HEAD"),
    ] {
        let (status, headers, json) = call_with_headers(method, uri, &[], b"").await;
        assert_eq!((status, code(&json)), (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"), "{method} {uri}");
        assert_eq!(headers.get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{method} {uri}");
    }
}

/// A malformed `Content-Range` says that it is malformed, not that the upload is short.
#[tokio::test]
async fn malformed_content_range() {
    let app = router(Wharf::new(Arc::new(wharf_store::MemoryStore::new())));
    let post =
        Request::builder().method("POST").uri("/v2/a/blobs/uploads/").body(Body::empty()).expect("request");
    let response = app.clone().oneshot(post).await.expect("infallible");
    let location = response.headers()["location"].to_str().expect("text").to_owned();
    for range in ["abc", "5-3", "-", "1-x"] {
        let patch = Request::builder()
            .method("PATCH")
            .uri(&location)
            .header("content-range", range)
            .body(Body::from("x"))
            .expect("request");
        let response = app.clone().oneshot(patch).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(code(&json), "BLOB_UPLOAD_INVALID");
        assert!(message(&json).contains("malformed"), "{range}: {json}");
    }
}

/// Wharf is size-verified too: a descriptor whose size disagrees with the stored blob (or
/// child manifest) is refused, and nothing is stored.
#[tokio::test]
async fn descriptor_sizes_must_match() {
    let app = router(Wharf::new(Arc::new(wharf_store::MemoryStore::new())));
    let send = |method: &str, uri: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let app = app.clone();
        let request = request.body(Body::from(body)).expect("request");
        async move {
            let response = app.oneshot(request).await.expect("infallible");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
        }
    };
    let config = b"{}".to_vec();
    let digest = wharf_types::Digest::sha256(&config);
    let (status, _) = send("POST", &format!("/v2/a/blobs/uploads/?digest={digest}"), None, config).await;
    assert_eq!(status, StatusCode::CREATED);
    let manifest = |size: usize| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{size}}},"layers":[]}}"#
        )
    };
    let oci = Some("application/vnd.oci.image.manifest.v1+json");
    let (status, json) = send("PUT", "/v2/a/manifests/wrong", oci, manifest(3).into_bytes()).await;
    assert_eq!((status, code(&json)), (StatusCode::BAD_REQUEST, "SIZE_INVALID"), "{json}");
    assert!(message(&json).contains("3 bytes"), "{json}");
    let (status, _) = send("GET", "/v2/a/manifests/wrong", None, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a refused manifest was stored");
    let good = manifest(2);
    let (status, _) = send("PUT", "/v2/a/manifests/good", oci, good.clone().into_bytes()).await;
    assert_eq!(status, StatusCode::CREATED);
    // An index whose child descriptor has the wrong size.
    let child = wharf_types::Digest::sha256(good.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":{}}}]}}"#,
        good.len() + 1
    );
    let (status, json) = send(
        "PUT",
        "/v2/a/manifests/index",
        Some("application/vnd.oci.image.index.v1+json"),
        index.into_bytes(),
    )
    .await;
    assert_eq!((status, code(&json)), (StatusCode::BAD_REQUEST, "SIZE_INVALID"), "{json}");
}
