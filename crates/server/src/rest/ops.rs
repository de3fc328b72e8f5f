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

/// `/readyz`: ready when the storage answers a read.
pub(crate) async fn ready(registry: &Wharf) -> Response {
    match registry.catalog(Some(1), None).await {
        Ok(_) => json_response(StatusCode::OK, b"{\"status\":\"ready\"}".to_vec(), "application/json"),
        Err(e) => {
            tracing::warn!(error = %e, "storage not reachable");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                b"{\"status\":\"storage unreachable\"}".to_vec(),
                "application/json",
            )
        }
    }
}

/// `/v2/`: the API is here.
pub(crate) fn base() -> Response {
    json_response(StatusCode::OK, b"{}".to_vec(), "application/json")
}
