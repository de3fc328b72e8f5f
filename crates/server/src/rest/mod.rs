//! The HTTP edge of the registry API (named `rest` so as not to shadow the `http` crate): OCI
//! distribution-spec v1.1 routes (and `_wharf`, the operator's routes, `/token`) onto the
//! [`Wharf`](crate::Wharf). A request walks down once:
//!
//! ```text
//! log::access_log (the loopback host check; route parsed: route::route)
//!   → dispatch: context::Ctx (query, client, connection parsed once)
//!     → guard::admit (auth asked once: an auth::Caller) → handlers::handle → a resource's
//!       handler (ops, listings, extension, manifests, blobs) → respond / Error's table
//!     → guard::record (the audit log)
//! ```
//!
//! The web page ([`crate::web`]) is another edge beside this one, with its own router; the
//! server merges both under [`layered`]'s host check and access log.

mod blobs;
mod context;
mod credentials;
mod extension;
mod guard;
mod handlers;
mod listings;
mod log;
mod manifests;
mod ops;
mod params;
mod respond;
mod route;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;

pub(crate) use context::{App, Shared};
use context::{Ctx, Gate};
use log::Who;
use respond::API_VERSION;
use route::Route;

/// The API's routes (everything the web page does not answer falls through to them).
pub(crate) fn api(app: App) -> Router {
    Router::new().fallback(dispatch).with_state(app)
}

/// `router` under the edge every request passes: the loopback host check, the access log.
pub(crate) fn layered(router: Router, app: App) -> Router {
    router.layer(axum::middleware::from_fn_with_state(app, log::access_log))
}

/// A request to a mirror of another registry (containerd's `?ns=<host>`) names the
/// repository as that registry does: it is renamed to its mirror here, before anything
/// (access included) looks at it.
fn transparent(registry: &crate::Wharf, ctx: &mut Ctx) {
    let Some(ns) = crate::text::first(&ctx.query, "ns") else { return };
    if let Some(name) = ctx.route.as_mut().and_then(Route::repository_mut)
        && let Some(local) = registry.transparent_name(ns, name)
    {
        *name = local;
    }
}

async fn dispatch(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut ctx = Ctx::new(parts);
    transparent(&app.registry, &mut ctx);
    let (result, who) = match &app.access {
        None => {
            let origin = ctx.origin(&wharf_auth::Identity::Anonymous);
            (origin.scope(handlers::handle(&app, &ctx, Gate(None), body)).await, None)
        }
        // The token endpoint reads its own query and form (with `+` as a space).
        Some(access) if matches!(ctx.route, Some(Route::Token)) => {
            let query = ctx.uri.query();
            (
                crate::auth::token::endpoint(access, &ctx.method, query, &ctx.headers, body, ctx.client)
                    .await,
                None,
            )
        }
        Some(access) => match guard::admit(&app.registry, access, &ctx).await {
            Err((e, who)) => (Err(e), Some(who)),
            Ok(admitted) => {
                let gate = Gate(Some((access, &admitted.caller.principal)));
                let origin = ctx.origin(&admitted.caller.principal.identity);
                let result = origin.scope(handlers::handle(&app, &ctx, gate, body)).await;
                guard::record(access, &ctx, &admitted, &result);
                (result, Some(admitted.caller.name().to_owned()))
            }
        },
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    if let Some(who) = who {
        response.extensions_mut().insert(Who(who));
    }
    response
}

/// The invariants of [`crate::fuzzing::request`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn check_parsers(data: &[u8]) {
    use http::{HeaderMap, header};
    use params::{blob_range, content_range, paging};
    use route::{decode_path, route};
    use wharf_types::Repository;

    use crate::text::{printable, query_pairs};

    let text = String::from_utf8_lossy(data);
    let (path, query) = text.split_once('?').unwrap_or((&text, ""));
    let decoded = decode_path(path);
    assert_eq!(
        decoded.matches('/').count(),
        path.matches('/').count(),
        "decoding {path:?} changed its separators: {decoded:?}"
    );
    if let Some(route) = route(&decoded) {
        let _ = (route.name(), route.allowed());
        if let Some(name) = route.repository()
            && let Ok(repo) = name.parse::<Repository>()
        {
            assert_eq!(repo.as_str(), name);
            assert!(!name.split('/').any(|c| c.is_empty() || c == "." || c == ".."), "{name:?}");
        }
    }
    let pairs = query_pairs(Some(query));
    let _ = paging(&pairs);
    let _ = printable(&text, 64);
    // The web page's: form bodies, its paths, the session cookie.
    for (k, v) in crate::text::form_pairs(&text) {
        assert!(k.len() + v.len() <= text.len(), "a form pair grew: {k:?}={v:?}");
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_RANGE, value.clone());
        headers.insert(header::RANGE, value);
        if let Ok(Some((a, b))) = content_range(&headers) {
            assert!(a <= b, "Content-Range {a}-{b}");
        }
        let size = u64::from(data.first().copied().unwrap_or(0)) * 7;
        if let Ok(Some(r)) = blob_range(&headers, size) {
            assert!(r.start < r.end && r.end <= size, "{r:?} of {size}");
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, header};
    use params::blob_range;
    use route::{decode_path, route};
    use wharf_types::Repository;

    use super::*;

    #[test]
    fn ranges() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, HeaderValue::from_str(v).expect("valid"));
            m
        };
        assert_eq!(blob_range(&h("bytes=500-1499"), 2048).expect("ok"), Some(500..1500));
        assert_eq!(blob_range(&h("bytes=500-"), 2048).expect("ok"), Some(500..2048));
        assert_eq!(blob_range(&h("bytes=-500"), 2048).expect("ok"), Some(1548..2048));
        assert_eq!(blob_range(&h("bytes=2000-5000"), 2048).expect("ok"), Some(2000..2048));
        assert!(blob_range(&h("bytes=500-0"), 2048).is_err());
        assert!(blob_range(&h("bytes=5000-10000"), 2048).is_err());
        assert_eq!(blob_range(&h("bytes=0-1,5-6"), 2048).expect("ok"), None);
    }

    proptest::proptest! {
        #[test]
        fn request_parsers_hold_their_invariants(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            crate::fuzzing::request(&data);
        }

        #[test]
        fn escaped_slashes_never_split_names(name in "[a-z]{1,5}(%2[Ff][a-z]{1,5}){1,3}") {
            let path = format!("/v2/{name}/tags/list");
            crate::fuzzing::request(path.as_bytes());
            let Some(Route::Tags(repo)) = route(&decode_path(&path)) else { panic!("a tags route") };
            assert!(!repo.contains('/'), "{repo}");
            assert!(repo.parse::<Repository>().is_err(), "{repo} accepted as a name");
        }
    }
}
