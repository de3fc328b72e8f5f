//! Guarding: a request under access control asks `auth` once who is calling and whether it
//! may go on ([`admit`]); what it wrote, allowed or refused, goes to the audit log
//! ([`record`]).

use axum::response::Response;
use http::{Method, StatusCode};
use wharf_types::{Digest, Repository, Tag, TagOrDigest};

use super::context::Ctx;
use super::respond::CONTENT_DIGEST;
use super::route::Route;
use crate::Wharf;
use crate::auth::{AccessControl, Caller, Need};
use crate::error::{Error, Result};
use crate::text::{first, printable};

/// A request let through: who is calling, and where a tag it moves pointed before.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) caller: Caller,
    previous: Option<Digest>,
}

/// Decides a request: the caller when it may go on; the refusal (recorded when it was a
/// write) with who was refused, when known.
pub(crate) async fn admit(
    registry: &Wharf,
    access: &AccessControl,
    ctx: &Ctx,
) -> std::result::Result<Admitted, (Error, String)> {
    let need = need(ctx.route.as_ref(), &ctx.method, &ctx.query);
    let principal = match access.authorize(&need, &ctx.headers, ctx.client, &ctx.transport).await {
        Ok(p) => p,
        Err((e, who)) => {
            audit(access, ctx, &who, e.code_and_status().1, None, None);
            return Err((e, who));
        }
    };
    // A tag about to move: where it pointed before.
    let previous = match (&ctx.route, &ctx.method) {
        (Some(Route::Manifest(name, reference)), &Method::PUT) => {
            match (name.parse::<Repository>(), reference.parse::<Tag>()) {
                (Ok(repo), Ok(tag)) => {
                    registry.head_manifest(&repo, &TagOrDigest::Tag(tag)).await.ok().map(|(d, ..)| d)
                }
                _ => None,
            }
        }
        _ => None,
    };
    Ok(Admitted { caller: Caller { principal, client: ctx.client }, previous })
}

/// Records what an admitted request wrote (a push, a tag move, a mount, a delete), whether
/// it went through or not.
pub(crate) fn record(access: &AccessControl, ctx: &Ctx, admitted: &Admitted, result: &Result<Response>) {
    let (status, digest) = match result {
        Ok(r) => {
            (r.status(), r.headers().get(CONTENT_DIGEST).and_then(|v| v.to_str().ok()).map(str::to_owned))
        }
        Err(e) => (e.code_and_status().1, None),
    };
    audit(access, ctx, admitted.caller.name(), status, digest.as_deref(), admitted.previous.as_ref());
}

/// What a route needs of the caller.
pub(crate) fn need(route: Option<&Route>, method: &Method, query: &[(String, String)]) -> Need {
    use wharf_auth::Action::{Delete, Pull, Push};
    let Some(route) = route else { return Need::Public };
    let one = |name: &String, action, scope| Need::Repository(vec![(name.clone(), action, scope)]);
    match route {
        Route::Health | Route::Ready | Route::Token | Route::WasmPkg => Need::Public,
        Route::Metrics => Need::Metrics,
        Route::WharfGc
        | Route::WharfQuotas
        | Route::WharfUpstreams
        | Route::WharfWebhooks
        | Route::WharfResend(_)
        | Route::WharfRobots
        | Route::WharfRobot(_) => Need::Admin,
        Route::WharfTokens | Route::WharfToken(_) => Need::Tokens,
        Route::Base => Need::Authenticated,
        Route::Catalog | Route::WharfRepositories | Route::WharfSearch | Route::WharfPackage(_) => {
            Need::Listing
        }
        Route::WharfYanked(n, _) => one(n, Push, "push"),
        Route::Blob(n, _) | Route::Manifest(n, _) if *method == Method::DELETE => one(n, Delete, "delete"),
        Route::Manifest(n, _) if *method == Method::PUT => one(n, Push, "pull,push"),
        Route::Blob(n, _)
        | Route::Manifest(n, _)
        | Route::Tags(n)
        | Route::Referrers(n, _)
        | Route::WharfArtifacts(n)
        | Route::WharfArtifact(n, _)
        | Route::WharfVersions(n) => one(n, Pull, "pull"),
        Route::Upload(n, _) => one(n, Push, "pull,push"),
        Route::Uploads(n) => {
            let mut items = vec![(n.clone(), Push, "pull,push")];
            if first(query, "mount").is_some()
                && let Some(from) = first(query, "from")
            {
                items.push((from.to_owned(), Pull, "pull"));
            }
            Need::Repository(items)
        }
    }
}

/// Records a write (a push, a tag move, a mount, a delete), allowed or refused.
fn audit(
    access: &AccessControl,
    ctx: &Ctx,
    who: &str,
    status: StatusCode,
    digest: Option<&str>,
    previous: Option<&Digest>,
) {
    let (route, method, query, client) = (ctx.route.as_ref(), &ctx.method, &ctx.query[..], ctx.client);
    let (event, repository, reference) = match (route, method) {
        (Some(Route::Manifest(n, r)), &Method::PUT) => ("push", n, Some(r.clone())),
        (Some(Route::Manifest(n, r)), &Method::DELETE) => ("delete", n, Some(r.clone())),
        (Some(Route::Blob(n, d)), &Method::DELETE) => ("delete", n, Some(d.clone())),
        (Some(Route::Upload(n, _)), &Method::PUT) => ("push", n, first(query, "digest").map(str::to_owned)),
        (Some(Route::Uploads(n)), &Method::POST) if first(query, "mount").is_some() => {
            ("mount", n, first(query, "mount").map(str::to_owned))
        }
        (Some(Route::Uploads(n)), &Method::POST) if first(query, "digest").is_some() => {
            ("push", n, first(query, "digest").map(str::to_owned))
        }
        _ => return,
    };
    let result = if status.is_success() {
        "ok"
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "refused"
    } else {
        "failed"
    };
    let mut fields = serde_json::json!({
        "identity": printable(who, 256),
        "client": client.map(|c| c.to_string()),
        "repository": printable(repository, 256),
        "reference": reference.as_deref().map(|r| printable(r, 256)),
        "digest": digest,
        "status": status.as_u16(),
        "result": result,
    });
    if let Some(from) = first(query, "from") {
        fields["from"] = serde_json::json!(printable(from, 256));
    }
    access.audit.record(event, fields.clone());
    let tag_moved = event == "push"
        && result == "ok"
        && matches!(route, Some(Route::Manifest(..)))
        && reference.as_deref().is_some_and(|r| r.parse::<Tag>().is_ok());
    if tag_moved {
        fields["tag"] = fields["reference"].take();
        fields["previous"] = serde_json::json!(previous.map(ToString::to_string));
        access.audit.record("tag", fields);
    }
}
