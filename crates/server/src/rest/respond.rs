//! Responses: JSON bodies, paged listings with their `Link`, and the headers the
//! distribution spec names. (The error table — code, status, message — is the domain
//! error's own: `Error::code_and_status`.)

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use crate::registry::Page;
use crate::text::header_value;

pub(crate) const API_VERSION: &str = "Docker-Distribution-API-Version";
pub(crate) const CONTENT_DIGEST: &str = "Docker-Content-Digest";
pub(crate) const UPLOAD_UUID: &str = "Docker-Upload-UUID";

pub(crate) fn paged(body: &serde_json::Value, page: &Page, path: &str, n: Option<usize>) -> Response {
    let json = serde_json::to_vec(body).expect("JSON serialises");
    let mut response = json_response(StatusCode::OK, json, "application/json");
    if let (true, Some(n), Some(last)) = (page.more, n, page.names.last()) {
        // `path` may carry a query of its own (a filter the next page keeps).
        let sep = if path.contains('?') { '&' } else { '?' };
        let link = format!("<{path}{sep}n={n}&last={last}>; rel=\"next\"");
        response.headers_mut().insert(header::LINK, header_value(&link));
    }
    response
}

pub(crate) fn json_value(value: &impl serde::Serialize) -> Response {
    json_response(StatusCode::OK, serde_json::to_vec(value).expect("JSON serialises"), "application/json")
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>, content_type: &str) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, header_value(content_type));
    response
}
