//! The `_wharf` extension: repositories with their artifact counts, search, the artifacts
//! of a repository and one artifact's record, garbage collection, quotas.

use axum::response::Response;
use http::header;
use wharf_types::TagOrDigest;

use super::context::{Ctx, Gate};
use super::params::{digest, paging, repository};
use super::respond::{json_value, paged};
use crate::Wharf;
use crate::error::{Error, Result};
use crate::registry::Page;
use crate::text::{first, header_value, printable};

/// `GET /v2/_wharf/repositories`.
pub(crate) async fn repositories(registry: &Wharf, ctx: &Ctx, gate: Gate<'_>) -> Result<Response> {
    let query = &ctx.query;
    let (n, last) = paging(query)?;
    if let Some(last) = &last {
        repository(last)?;
    }
    // A page of 100 unless asked otherwise, as the search.
    let n = n.unwrap_or(100);
    let (repositories, more) =
        registry.repository_summaries_page(n, last.as_deref(), &|r| gate.visible(r)).await?;
    let names = repositories.iter().map(|r| r.name.clone()).collect();
    let body = serde_json::json!({ "repositories": repositories });
    Ok(paged(&body, &Page::new(names, more), "/v2/_wharf/repositories", Some(n)))
}

/// `GET /v2/_wharf/search`.
pub(crate) async fn search(registry: &Wharf, ctx: &Ctx, gate: Gate<'_>) -> Result<Response> {
    let query = &ctx.query;
    let filters = crate::search::Query::from_pairs(query)?;
    let (n, last) = paging(query)?;
    // A page of 100 unless asked otherwise, as distribution's catalog.
    let n = Some(n.unwrap_or(100));
    let (hits, more) = registry.search(&filters, n, last.as_deref(), &|r| gate.visible(r)).await?;
    let link = match (more, n, hits.last()) {
        (true, Some(n), Some(last)) => Some(crate::search::next_link(&filters, n, last)),
        _ => None,
    };
    let mut response = json_value(&serde_json::json!({ "results": hits }));
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, header_value(&link));
    }
    Ok(response)
}

/// `GET /v2/_wharf/quotas`.
pub(crate) async fn quotas(registry: &Wharf) -> Result<Response> {
    Ok(json_value(&serde_json::json!({ "quotas": registry.quota_usages().await? })))
}

/// `GET /v2/_wharf/upstreams`: the mirror's upstreams and their sync rules.
pub(crate) async fn upstreams(registry: &Wharf) -> Result<Response> {
    Ok(json_value(&serde_json::json!({ "upstreams": registry.upstreams().await? })))
}

/// `POST /v2/_wharf/upstreams`: every sync rule's tags queued now.
pub(crate) async fn sync_now(registry: &Wharf) -> Result<Response> {
    Ok(json_value(&serde_json::json!({ "queued": registry.plan_sync(true).await? })))
}

/// `GET /v2/_wharf/webhooks`: each webhook with its backlog, parked events and last
/// deliveries.
pub(crate) async fn webhooks(registry: &Wharf) -> Result<Response> {
    Ok(json_value(&serde_json::json!({ "webhooks": registry.webhook_status().await? })))
}

/// `POST /v2/_wharf/webhooks/<name>/resend[?event=<id>]`: parked events back in line.
pub(crate) async fn resend(registry: &Wharf, name: &str, ctx: &Ctx) -> Result<Response> {
    let n = registry.resend_events(name, first(&ctx.query, "event")).await?;
    Ok(json_value(&serde_json::json!({ "webhook": name, "queued": n })))
}

/// `GET /v2/_wharf/gc`: the last collection's report.
pub(crate) async fn last_collection(registry: &Wharf) -> Result<Response> {
    Ok(json_value(&serde_json::json!({ "last": registry.last_gc_report().await? })))
}

/// `POST /v2/_wharf/gc[?dryRun=true][&grace=…]`: a collection now.
pub(crate) async fn collect(registry: &Wharf, ctx: &Ctx) -> Result<Response> {
    let query = &ctx.query;
    let mut options = registry.lifecycle().options().clone();
    match first(query, "dryRun") {
        None | Some("false") => {}
        Some("true" | "") => options = options.with_dry_run(true),
        Some(other) => {
            return Err(Error::ParameterInvalid(format!("dryRun `{}`: true or false", printable(other, 40))));
        }
    }
    if let Some(grace) = first(query, "grace") {
        let grace =
            crate::units::parse_grace(grace).map_err(|e| Error::ParameterInvalid(format!("grace: {e}")))?;
        options = options.with_grace(grace);
    }
    let report = registry.collect_garbage(&options).await?;
    Ok(json_value(&serde_json::to_value(&report).expect("a report serialises")))
}

/// `GET /v2/<name>/_wharf/artifacts[?type=wasm]`.
pub(crate) async fn artifacts(registry: &Wharf, name: &str, ctx: &Ctx) -> Result<Response> {
    let query = &ctx.query;
    let repo = repository(name)?;
    let wasm_only = match first(query, "type") {
        None => false,
        Some("wasm") => true,
        Some(other) => {
            return Err(Error::ParameterInvalid(format!("type `{other}`: only `wasm` is known")));
        }
    };
    let (n, last) = paging(query)?;
    let last = last.as_deref().map(digest).transpose()?;
    // A page reads the page (records, and the tags of each), not the repository.
    let (artifacts, more) = if let Some(n) = n {
        registry.artifacts_page(&repo, wasm_only, n, last.as_ref()).await?
    } else {
        let mut artifacts = registry.artifacts(&repo, wasm_only).await?;
        artifacts.sort_by(|a, b| a.digest.as_str().cmp(b.digest.as_str()));
        if let Some(last) = &last {
            artifacts.retain(|a| a.digest.as_str() > last.as_str());
        }
        (artifacts, false)
    };
    let names: Vec<String> = artifacts.iter().map(|a| a.digest.to_string()).collect();
    let page = Page::new(names, more);
    let body = serde_json::json!({ "name": repo.as_str(), "artifacts": artifacts });
    let path = format!("/v2/{repo}/_wharf/artifacts{}", if wasm_only { "?type=wasm" } else { "" });
    Ok(paged(&body, &page, &path, n))
}

/// `GET /v2/<name>/_wharf/artifacts/<reference>`.
pub(crate) async fn artifact(registry: &Wharf, name: &str, reference: &str) -> Result<Response> {
    let repo = repository(name)?;
    let reference =
        reference.parse::<TagOrDigest>().map_err(|_| Error::ManifestUnknown(reference.to_owned()))?;
    let record = registry.artifact(&repo, &reference).await?;
    let mut value = serde_json::to_value(&record).expect("a record serialises");
    if let Some(summary) = registry.trust_summary(&repo, &record.summary.digest).await? {
        value["trust"] = serde_json::to_value(summary).expect("a summary serialises");
    }
    if let Some(verdict) = registry.trust_verdict(&repo, &record.summary.digest).await? {
        value["trustVerdict"] = serde_json::to_value(verdict).expect("a verdict serialises");
    }
    Ok(json_value(&value))
}

/// `GET /v2/_wharf/packages/<ns>:<name>`: the package where `[packages]` puts it, if the
/// caller may see that repository (else 404, as for a repository that does not exist).
pub(crate) async fn package(registry: &Wharf, package: &str, gate: Gate<'_>) -> Result<Response> {
    let name: crate::packages::PackageName = package.parse()?;
    let repo = registry.package_repository(&name);
    if !gate.visible(repo.as_str()) {
        return Err(Error::NameUnknown(format!("{name} (repository {repo})")));
    }
    versions(registry, &repo, gate).await.map_err(|e| match e {
        Error::NameUnknown(_) => Error::NameUnknown(format!("{name} (repository {repo})")),
        other => other,
    })
}

/// `GET /v2/<name>/_wharf/versions`: the repository's versions as a package's.
pub(crate) async fn versions(
    registry: &Wharf,
    repo: &wharf_types::Repository,
    gate: Gate<'_>,
) -> Result<Response> {
    let body = registry.package_versions(repo, &|r| gate.visible(r)).await?;
    Ok(json_value(&serde_json::to_value(&body).expect("versions serialise")))
}

/// `PUT|DELETE /v2/<name>/_wharf/yanked/<tag>`: yank a version, or take the yank back.
pub(crate) async fn yank(
    registry: &Wharf,
    repo: &wharf_types::Repository,
    tag: &str,
    yanked: bool,
) -> Result<Response> {
    let tag: wharf_types::Tag = tag.parse().map_err(|e| Error::TagInvalid(format!("{e}")))?;
    registry.set_yanked(repo, &tag, yanked).await?;
    Ok(json_value(&serde_json::json!({ "tag": tag.as_str(), "yanked": yanked })))
}
