//! The operator's routes: `/metrics`, `/healthz`, `/readyz`, the API's base `/v2/`, and
//! `/.well-known/wasm-pkg/registry.json`.

use axum::response::Response;
use http::StatusCode;

use super::respond::json_response;
use crate::Wharf;
use crate::error::Result;

/// `GET /metrics`: the Prometheus text.
pub(crate) async fn metrics(registry: &Wharf) -> Result<Response> {
    let text = registry.render_metrics().await?;
    Ok(json_response(
        StatusCode::OK,
        text.into_bytes(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    ))
}

/// `/healthz`: the process answers.
pub(crate) fn health() -> Response {
    json_response(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec(), "application/json")
}

/// `/readyz`: `ready` when the storage answers a read and no fault is under way; `degraded`
/// with `storage: "full"` (200: pulls are served) or `storage: "unavailable"` (503), and
/// since when (unix seconds).
pub(crate) async fn ready(registry: &Wharf) -> Response {
    let read = registry.catalog(Some(1), None).await;
    let incident = registry.storage_incident();
    let (status, body) = match (&read, &incident) {
        (Ok(_), None) => (StatusCode::OK, serde_json::json!({"status": "ready"})),
        (Ok(_), Some(i)) if i.fault == wharf_store::Fault::Full => {
            (StatusCode::OK, serde_json::json!({"status": "degraded", "storage": "full", "since": i.since}))
        }
        (_, incident) => {
            if let (Err(e), None) = (&read, incident) {
                tracing::warn!(error = %e, "readiness: the storage did not answer a read");
            }
            let since = incident.as_ref().map(|i| i.since);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "degraded", "storage": "unavailable", "since": since}),
            )
        }
    };
    json_response(status, body.to_string().into_bytes(), "application/json")
}

/// `/v2/`: the API is here.
pub(crate) fn base() -> Response {
    json_response(StatusCode::OK, b"{}".to_vec(), "application/json")
}

/// `/.well-known/wasm-pkg/registry.json`: where `wkg` finds this registry's packages. The
/// registry named is `[packages] registry`, else the public URL's host, else the host the
/// client reached (a valid `host[:port]`; the listener's host check has vetted it).
pub(crate) fn wasm_pkg(
    registry: &Wharf,
    ctx: &super::context::Ctx,
    public: Option<&crate::PublicUrl>,
) -> Response {
    let reached = match public {
        Some(url) => url.authority().to_owned(),
        None => ctx
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| crate::listener::valid_host(h))
            .unwrap_or("localhost")
            .to_ascii_lowercase(),
    };
    let body = registry.packages().registry_json(&reached);
    let mut response = json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("JSON serialises"),
        "application/json",
    );
    // Discovery is cached by clients for a while; a minute keeps a changed config visible.
    response
        .headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("public, max-age=60"));
    response
}
