//! The handlers' table: each route and method to the handler of its resource.

use axum::body::Body;
use axum::response::Response;
use http::Method;

use super::context::{App, Ctx, Gate};
use super::params::repository;
use super::route::Route;
use super::{blobs, credentials, extension, listings, manifests, ops};
use crate::error::{Error, Result};
use crate::text::printable;

/// Runs the handler of the request's route and method; 404 for no route, 405 (with `Allow`)
/// for a method the route does not answer.
pub(crate) async fn handle(app: &App, ctx: &Ctx, gate: Gate<'_>, body: Body) -> Result<Response> {
    let registry = &app.registry;
    let Some(route) = &ctx.route else {
        return Err(Error::RouteUnknown(printable(ctx.uri.path(), 200)));
    };
    match (route, &ctx.method) {
        // The token endpoint exists only under access control (`dispatch` answers it).
        (Route::Token, _) => Err(Error::RouteUnknown(printable(ctx.uri.path(), 200))),
        (Route::Metrics, &Method::GET) => ops::metrics(registry).await,
        (Route::Health, &(Method::GET | Method::HEAD)) => Ok(ops::health()),
        (Route::Ready, &(Method::GET | Method::HEAD)) => Ok(ops::ready(registry).await),
        (Route::Base, &(Method::GET | Method::HEAD)) => Ok(ops::base()),
        (Route::WasmPkg, &(Method::GET | Method::HEAD)) => {
            Ok(ops::wasm_pkg(registry, ctx, app.public_url.as_deref()))
        }
        (Route::WharfPackage(package), &Method::GET) => extension::package(registry, package, gate).await,
        (Route::WharfVersions(name), &Method::GET) => {
            extension::versions(registry, &repository(name)?, gate).await
        }
        (Route::WharfYanked(name, tag), &(Method::PUT | Method::DELETE)) => {
            extension::yank(registry, &repository(name)?, tag, ctx.method == Method::PUT).await
        }
        (Route::WharfRepositories, &Method::GET) => extension::repositories(registry, ctx, gate).await,
        (Route::WharfSearch, &Method::GET) => extension::search(registry, ctx, gate).await,
        (Route::WharfQuotas, &Method::GET) => extension::quotas(registry).await,
        (Route::WharfUpstreams, &Method::GET) => extension::upstreams(registry).await,
        (Route::WharfUpstreams, &Method::POST) => extension::sync_now(registry).await,
        (Route::WharfWebhooks, &Method::GET) => extension::webhooks(registry).await,
        (Route::WharfResend(name), &Method::POST) => extension::resend(registry, name, ctx).await,
        (Route::WharfRobots | Route::WharfRobot(_) | Route::WharfTokens | Route::WharfToken(_), _) => {
            credentials::handle(route, ctx, gate, body).await
        }
        (Route::WharfGc, &Method::GET) => extension::last_collection(registry).await,
        (Route::WharfGc, &Method::POST) => extension::collect(registry, ctx).await,
        (Route::WharfArtifacts(name), &Method::GET) => extension::artifacts(registry, name, ctx).await,
        (Route::WharfArtifact(name, reference), &Method::GET) => {
            extension::artifact(registry, name, reference).await
        }
        (Route::Catalog, &Method::GET) => listings::catalog(registry, ctx, gate).await,
        (Route::Tags(name), &Method::GET) => listings::tags(registry, name, ctx).await,
        (Route::Referrers(name, subject), &Method::GET) => {
            listings::referrers(registry, name, subject, ctx).await
        }
        (Route::Manifest(name, reference), &(Method::GET | Method::HEAD | Method::PUT | Method::DELETE)) => {
            manifests::manifest(registry, &repository(name)?, reference, ctx, &gate, body).await
        }
        (Route::Uploads(name), &Method::POST) => {
            blobs::start_upload(registry, gate, &repository(name)?, ctx, body).await
        }
        (Route::Upload(name, id), &(Method::GET | Method::PATCH | Method::PUT | Method::DELETE)) => {
            blobs::upload(registry, &repository(name)?, id, ctx, body).await
        }
        (Route::Blob(name, d), &(Method::GET | Method::HEAD)) => {
            blobs::blob(registry, &repository(name)?, d, ctx, &gate).await
        }
        (Route::Blob(name, d), &Method::DELETE) => blobs::delete_blob(registry, &repository(name)?, d).await,
        _ => Err(Error::MethodNotAllowed {
            method: printable(ctx.method.as_str(), 32),
            allow: route.allowed(),
        }),
    }
}
