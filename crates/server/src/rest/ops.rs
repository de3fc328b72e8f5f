//! The operator's routes: `/metrics`, `/healthz`, `/readyz`, and the API's base `/v2/`.

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
