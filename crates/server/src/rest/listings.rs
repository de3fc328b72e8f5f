//! The distribution spec's listings: the catalog, a repository's tags, a subject's
//! referrers.

use axum::response::Response;
use http::{HeaderValue, StatusCode};
use wharf_types::{MediaType, Tag};

use super::context::{Ctx, Gate};
use super::params::{digest, paging, repository};
use super::respond::{json_response, paged};
use crate::Wharf;
use crate::error::Result;
use crate::text::first;

/// `GET /v2/_catalog`: the repositories the caller may see.
pub(crate) async fn catalog(registry: &Wharf, ctx: &Ctx, gate: Gate<'_>) -> Result<Response> {
    let query = &ctx.query;
    let (n, last) = paging(query)?;
    if let Some(last) = &last {
        repository(last)?;
    }
    let page = registry.catalog_where(n, last.as_deref(), &|r| gate.visible(r)).await?;
    let body = serde_json::json!({ "repositories": page.names });
    Ok(paged(&body, &page, "/v2/_catalog", n))
}

/// `GET /v2/<name>/tags/list`.
pub(crate) async fn tags(registry: &Wharf, name: &str, ctx: &Ctx) -> Result<Response> {
    let query = &ctx.query;
    let repo = repository(name)?;
    let (n, last) = paging(query)?;
    if let Some(last) = &last {
        last.parse::<Tag>()?;
    }
    let page = registry.tags(&repo, n, last.as_deref()).await?;
    let body = serde_json::json!({ "name": repo.as_str(), "tags": page.names });
    Ok(paged(&body, &page, &format!("/v2/{repo}/tags/list"), n))
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=…]`.
pub(crate) async fn referrers(registry: &Wharf, name: &str, subject: &str, ctx: &Ctx) -> Result<Response> {
    let query = &ctx.query;
    let repo = repository(name)?;
    let subject = digest(subject)?;
    let artifact_type = first(query, "artifactType");
    let index = registry.referrers(&repo, &subject, artifact_type).await?;
    let json = serde_json::to_vec(&index).expect("an index serialises");
    let mut response = json_response(StatusCode::OK, json, MediaType::OCI_INDEX.as_str());
    if artifact_type.is_some() {
        response.headers_mut().insert("OCI-Filters-Applied", HeaderValue::from_static("artifactType"));
    }
    Ok(response)
}
