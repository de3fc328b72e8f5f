//! The router without a socket (`tower::ServiceExt::oneshot`): error paths of every endpoint.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use tower::ServiceExt as _;
use wharf_server::{Registry, router};

async fn call(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (StatusCode, serde_json::Value) {
    let app = router(Registry::new(Arc::new(wharf_store::MemoryStore::new())));
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response =
        app.oneshot(request.body(Body::from(body.to_vec())).expect("request")).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
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
        ("GET", "/v2/a/tags/list?n=x", &[], b"", StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
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
        ("DELETE", "/v2/a/blobs/sha256:nope", &[], b"", StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
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
    // Not under /v2/: a plain 404.
    let (status, _) = call("GET", "/v1/", &[], b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
