//! The HTTP layer: OCI distribution-spec v1.1 routes onto the [`Wharf`].
//!
//! Repository names hold `/`, so routes are matched by hand on the path after `/v2/`: the
//! last `/manifests/`, `/blobs/uploads/`, `/blobs/`, `/referrers/` or `/tags/list` splits the
//! name from what follows, and the name is validated before anything else happens.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use wharf_store::ByteStream;
use wharf_types::{Digest, MAX_MANIFEST_SIZE, MediaType, Repository, Tag, TagOrDigest};

use std::sync::Arc;

use crate::Wharf;
use crate::auth::{AccessControl, Need};
use crate::error::{Error, Result};
use crate::listener::Transport;
use crate::registry::Page;
use crate::text::{cut, first, header_value, percent_decode, printable, query_pairs};

const API_VERSION: &str = "Docker-Distribution-API-Version";
const CONTENT_DIGEST: &str = "Docker-Content-Digest";
const UPLOAD_UUID: &str = "Docker-Upload-UUID";

/// The registry's axum router: `/v2/…` per the distribution spec.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use wharf_server::{Wharf, router};
///
/// let app = router(Wharf::new(Arc::new(wharf_store::MemoryStore::new())));
/// # let _ = app;
/// ```
pub fn router(registry: Wharf) -> Router {
    router_with_access(registry, None)
}

/// The router with access control: every request is authorised by `access` (its token
/// endpoint is `/token`); `None` is an open registry, as [`router`].
pub fn router_with_access(registry: Wharf, access: Option<Arc<AccessControl>>) -> Router {
    app_router(registry, access, None)
}

/// The router of a [`Server`](crate::Server): with the URL clients reach it at, if known.
pub(crate) fn app_router(
    registry: Wharf,
    access: Option<Arc<AccessControl>>,
    public_url: Option<Arc<crate::PublicUrl>>,
) -> Router {
    let app = App { registry, access, sessions: Arc::new(crate::web::Sessions::default()), public_url };
    Router::new()
        .merge(crate::web::routes())
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(app.clone(), host_check))
        .layer(axum::middleware::from_fn_with_state(app.clone(), access_log))
        .with_state(app)
}

/// An open registry that listens on loopback answers only requests that name it by a
/// loopback name (or its public URL): a web page that rebinds its own name to 127.0.0.1
/// cannot read or write it from a browser (DNS rebinding). 421 otherwise.
async fn host_check(State(app): State<App>, request: Request, next: axum::middleware::Next) -> Response {
    let on_loopback = request
        .extensions()
        .get::<Transport>()
        .and_then(|t| t.local)
        .is_some_and(|local| local.ip().is_loopback());
    if app.access.is_none() && on_loopback {
        let host = request.headers().get(header::HOST).map(|h| h.to_str().unwrap_or("-"));
        let named = host.is_none_or(|h| {
            crate::listener::is_loopback_host(h) || app.public_url.as_ref().is_some_and(|u| u.names(h))
        });
        if !named {
            return Error::Misdirected(format!(
                "this registry listens on loopback and answers only to loopback names (localhost, 127.0.0.1, [::1]), not `{}`; set --public-url to serve another name",
                printable(host.unwrap_or_default(), 100)
            ))
            .into_response();
        }
    }
    next.run(request).await
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct App {
    pub(crate) registry: Wharf,
    pub(crate) access: Option<Arc<AccessControl>>,
    /// The web page's sessions.
    pub(crate) sessions: Arc<crate::web::Sessions>,
    /// The URL clients reach the registry at, if configured.
    pub(crate) public_url: Option<Arc<crate::PublicUrl>>,
}

/// Who the request came from, for the access log.
#[derive(Clone, Debug)]
struct Caller(String);

/// One log line per request: a request id (the client's `X-Request-Id` when it is short and
/// plain, a fresh one otherwise, echoed back), method, path, status, bytes in and out, and
/// duration. Headers are never logged, so no credential or token reaches the log.
async fn access_log(State(app): State<App>, mut request: Request, next: axum::middleware::Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |c| c.0.to_string());
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .map_or_else(|| "-".to_owned(), |v| cut(&String::from_utf8_lossy(v.as_bytes()), 200));
    let bytes_in = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or_else(|| "-".to_owned(), |n| n.to_string());
    let parsed = route(&decode_path(&path));
    let route_name = parsed.as_ref().map_or("other", Route::name);
    let repository = parsed.as_ref().and_then(Route::repository).unwrap_or("-").to_owned();
    // The handler takes the route from here rather than parsing the path again.
    request.extensions_mut().insert(Parsed(parsed));
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let bytes_out = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let user = response.extensions().get::<Caller>().map_or_else(|| "-".to_owned(), |c| cut(&c.0, 256));
    // Every string from the client is recorded as a string, which the text format quotes and
    // escapes (a `%0a` in a path never forges a log line, a space in a user agent or a
    // repository name never forges a `status=200 user=admin` field) and JSON escapes.
    let (method_text, path_text, repository_text) =
        (cut(method.as_str(), 32), cut(&path, 1024), cut(&repository, 256));
    tracing::info!(
        request_id = %id,
        client = %client,
        user = user.as_str(),
        method = method_text.as_str(),
        path = path_text.as_str(),
        repository = repository_text.as_str(),
        status = response.status().as_u16(),
        bytes_in = %bytes_in,
        bytes_out = %bytes_out,
        // Rounded to the microsecond; a number in JSON logs.
        duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        user_agent = user_agent.as_str(),
        "request"
    );
    let number = |s: &str| s.parse::<u64>().unwrap_or(0);
    app.registry.metrics().request(
        route_name,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
        (number(&bytes_in), number(&bytes_out)),
    );
    response.headers_mut().insert("x-request-id", header_value(&id));
    response
}

/// The route the access log parsed, handed on to the handler in the request's extensions.
#[derive(Clone, Debug)]
struct Parsed(Option<Route>);

/// What a `/v2/` path names.
#[derive(Clone, Debug)]
enum Route {
    Token,
    Metrics,
    Health,
    Ready,
    WharfRepositories,
    WharfSearch,
    WharfGc,
    WharfQuotas,
    WharfArtifacts(String),
    WharfArtifact(String, String),
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Referrers(String, String),
    Uploads(String),
    Upload(String, String),
    Blob(String, String),
}

impl Route {
    /// The repository the request is about, if any.
    fn repository(&self) -> Option<&str> {
        match self {
            Self::WharfArtifacts(n)
            | Self::WharfArtifact(n, _)
            | Self::Tags(n)
            | Self::Manifest(n, _)
            | Self::Referrers(n, _)
            | Self::Uploads(n)
            | Self::Upload(n, _)
            | Self::Blob(n, _) => Some(n),
            _ => None,
        }
    }

    /// The methods the route answers, for a 405's `Allow`.
    fn allowed(&self) -> &'static str {
        match self {
            Self::Metrics
            | Self::WharfRepositories
            | Self::WharfSearch
            | Self::WharfArtifacts(_)
            | Self::WharfArtifact(..)
            | Self::Catalog
            | Self::Tags(_)
            | Self::WharfQuotas
            | Self::Referrers(..) => "GET",
            Self::Health | Self::Ready | Self::Base => "GET, HEAD",
            Self::Token | Self::WharfGc => "GET, POST",
            Self::Manifest(..) => "GET, HEAD, PUT, DELETE",
            Self::Uploads(_) => "POST",
            Self::Upload(..) => "GET, PATCH, PUT, DELETE",
            Self::Blob(..) => "GET, HEAD, DELETE",
        }
    }

    /// A short name for metrics labels.
    fn name(&self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Metrics => "metrics",
            Self::Health => "healthz",
            Self::Ready => "readyz",
            Self::WharfRepositories | Self::WharfArtifacts(_) | Self::WharfArtifact(..) => "wharf",
            Self::WharfSearch => "search",
            Self::WharfGc => "gc",
            Self::WharfQuotas => "quotas",
            Self::Base => "base",
            Self::Catalog => "catalog",
            Self::Tags(_) => "tags",
            Self::Manifest(..) => "manifest",
            Self::Referrers(..) => "referrers",
            Self::Uploads(_) | Self::Upload(..) => "upload",
            Self::Blob(..) => "blob",
        }
    }
}

fn route(path: &str) -> Option<Route> {
    match path {
        "/healthz" => return Some(Route::Health),
        "/readyz" => return Some(Route::Ready),
        "/metrics" => return Some(Route::Metrics),
        "/token" => return Some(Route::Token),
        _ => {}
    }
    let rest = path.strip_prefix("/v2")?;
    let rest = match rest {
        "" | "/" => return Some(Route::Base),
        r => r.strip_prefix('/')?,
    };
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    // The `_wharf` extension (OCI reserves `_`-prefixed components for extensions, and no
    // repository name component can start with `_`).
    if rest == "_wharf/repositories" {
        return Some(Route::WharfRepositories);
    }
    if rest == "_wharf/search" {
        return Some(Route::WharfSearch);
    }
    if rest == "_wharf/gc" {
        return Some(Route::WharfGc);
    }
    if rest == "_wharf/quotas" {
        return Some(Route::WharfQuotas);
    }
    if let Some((name, what)) = rest.split_once("/_wharf/") {
        return match what.strip_prefix("artifacts") {
            Some("") => Some(Route::WharfArtifacts(name.to_owned())),
            Some(r) => Some(Route::WharfArtifact(name.to_owned(), r.strip_prefix('/')?.to_owned())),
            None => None,
        };
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name.to_owned()));
    }
    let split = |marker: &str| rest.rsplit_once(marker).map(|(a, b)| (a.to_owned(), b.to_owned()));
    if let Some((name, reference)) = split("/manifests/") {
        return Some(Route::Manifest(name, reference));
    }
    if let Some((name, digest)) = split("/referrers/") {
        return Some(Route::Referrers(name, digest));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads").or_else(|| rest.strip_suffix("/blobs/uploads/")) {
        return Some(Route::Uploads(name.to_owned()));
    }
    if let Some((name, id)) = split("/blobs/uploads/") {
        return Some(Route::Upload(name, id));
    }
    if let Some((name, digest)) = split("/blobs/") {
        return Some(Route::Blob(name, digest));
    }
    None
}

/// Decodes a URL path, except `%2F`: an escaped `/` inside a component is not a separator
/// (it stays `%2F`, which no name, tag or digest accepts).
fn decode_path(path: &str) -> String {
    percent_decode(&path.replace("%2F", "%252F").replace("%2f", "%252f"))
}

fn repository(name: &str) -> Result<Repository> {
    Ok(name.parse::<Repository>()?)
}

fn digest(s: &str) -> Result<Digest> {
    Ok(s.parse::<Digest>()?)
}

fn body_stream(body: Body) -> ByteStream {
    body.into_data_stream().map_err(std::io::Error::other).boxed()
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes> {
    let mut stream = body_stream(body);
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(Error::TooLarge(format!("the manifest exceeds the limit of {limit} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

async fn dispatch(State(app): State<App>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let route = match parts.extensions.remove::<Parsed>() {
        Some(Parsed(route)) => route,
        None => route(&decode_path(parts.uri.path())),
    };
    let (result, caller) = match &app.access {
        None => (
            handle(&app.registry, route, Gate(None), &parts.method, &parts.uri, &parts.headers, body).await,
            None,
        ),
        Some(access) => guarded(&app.registry, access, route, &parts, body).await,
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    if let Some(caller) = caller {
        response.extensions_mut().insert(caller);
    }
    response
}

/// What a handler may show a caller: everything (an open registry), or what the caller may
/// pull.
#[derive(Clone, Copy)]
struct Gate<'a>(Option<(&'a AccessControl, &'a wharf_auth::Principal)>);

impl Gate<'_> {
    fn visible(&self, repository: &str) -> bool {
        self.0.is_none_or(|(access, principal)| access.visible(principal, repository))
    }
}

/// A request under access control: the token endpoint, or authorisation then the handler,
/// with writes (allowed or refused) in the audit log.
async fn guarded(
    registry: &Wharf,
    access: &AccessControl,
    route: Option<Route>,
    parts: &http::request::Parts,
    body: Body,
) -> (Result<Response>, Option<Caller>) {
    let client = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let transport = parts.extensions.get::<Transport>().cloned().unwrap_or_default();
    if matches!(route, Some(Route::Token)) {
        let result = crate::auth::token::endpoint(
            access,
            &parts.method,
            parts.uri.query(),
            &parts.headers,
            body,
            client,
        )
        .await;
        return (result, None);
    }
    let query = query_pairs(parts.uri.query());
    let need = need(route.as_ref(), &parts.method, &query);
    let principal = match access.authorize(&need, &parts.headers, client, &transport).await {
        Ok(p) => p,
        Err((e, who)) => {
            let status = e.code_and_status().1;
            audit(access, route.as_ref(), &parts.method, &query, &who, client, status, None, None);
            return (Err(e), Some(Caller(who)));
        }
    };
    let who = principal.identity.name().to_owned();
    // A tag about to move: where it pointed before.
    let previous = match (&route, &parts.method) {
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
    let gate = Gate(Some((access, &principal)));
    let result = handle(registry, route.clone(), gate, &parts.method, &parts.uri, &parts.headers, body).await;
    let (status, digest) = match &result {
        Ok(r) => {
            (r.status(), r.headers().get(CONTENT_DIGEST).and_then(|v| v.to_str().ok()).map(str::to_owned))
        }
        Err(e) => (e.code_and_status().1, None),
    };
    audit(access, route.as_ref(), &parts.method, &query, &who, client, status, digest.as_deref(), previous);
    (result, Some(Caller(who)))
}

/// What a route needs of the caller.
fn need(route: Option<&Route>, method: &Method, query: &[(String, String)]) -> Need {
    use wharf_auth::Action::{Delete, Pull, Push};
    let Some(route) = route else { return Need::Public };
    let one = |name: &String, action, scope| Need::Repository(vec![(name.clone(), action, scope)]);
    match route {
        Route::Health | Route::Ready | Route::Token => Need::Public,
        Route::Metrics => Need::Metrics,
        Route::WharfGc | Route::WharfQuotas => Need::Admin,
        Route::Base => Need::Authenticated,
        Route::Catalog | Route::WharfRepositories | Route::WharfSearch => Need::Listing,
        Route::Tags(n) | Route::Referrers(n, _) | Route::WharfArtifacts(n) | Route::WharfArtifact(n, _) => {
            one(n, Pull, "pull")
        }
        Route::Blob(n, _) | Route::Manifest(n, _) if *method == Method::DELETE => one(n, Delete, "delete"),
        Route::Manifest(n, _) if *method == Method::PUT => one(n, Push, "pull,push"),
        Route::Blob(n, _) | Route::Manifest(n, _) => one(n, Pull, "pull"),
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
#[allow(clippy::too_many_arguments)]
fn audit(
    access: &AccessControl,
    route: Option<&Route>,
    method: &Method,
    query: &[(String, String)],
    who: &str,
    client: Option<std::net::IpAddr>,
    status: StatusCode,
    digest: Option<&str>,
    previous: Option<Digest>,
) {
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
        fields["previous"] = serde_json::json!(previous.map(|d| d.to_string()));
        access.audit.record("tag", fields);
    }
}

async fn handle(
    registry: &Wharf,
    route: Option<Route>,
    gate: Gate<'_>,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let Some(route) = route else {
        return Err(Error::RouteUnknown(printable(uri.path(), 200)));
    };
    let allow = route.allowed();
    let query = query_pairs(uri.query());
    match (route, method.clone()) {
        // The token endpoint exists only under access control (`guarded`).
        (Route::Token, _) => Err(Error::RouteUnknown(printable(uri.path(), 200))),
        (Route::Metrics, Method::GET) => {
            let text = registry.render_metrics().await?;
            Ok(json_response(
                StatusCode::OK,
                text.into_bytes(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ))
        }
        (Route::Health, Method::GET | Method::HEAD) => {
            Ok(json_response(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec(), "application/json"))
        }
        (Route::Ready, Method::GET | Method::HEAD) => {
            // Ready when the storage answers a read.
            match registry.catalog(Some(1), None).await {
                Ok(_) => {
                    Ok(json_response(StatusCode::OK, b"{\"status\":\"ready\"}".to_vec(), "application/json"))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "storage not reachable");
                    Ok(json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        b"{\"status\":\"storage unreachable\"}".to_vec(),
                        "application/json",
                    ))
                }
            }
        }
        (Route::WharfRepositories, Method::GET) => {
            let (n, last) = paging(&query)?;
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
        (Route::WharfSearch, Method::GET) => {
            let filters = crate::search::Query::from_pairs(&query)?;
            let (n, last) = paging(&query)?;
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
        (Route::WharfQuotas, Method::GET) => {
            Ok(json_value(&serde_json::json!({ "quotas": registry.quota_usages().await? })))
        }
        (Route::WharfGc, Method::GET) => {
            Ok(json_value(&serde_json::json!({ "last": registry.last_gc_report().await? })))
        }
        (Route::WharfGc, Method::POST) => {
            let mut options = registry.lifecycle().options().clone();
            match first(&query, "dryRun") {
                None | Some("false") => {}
                Some("true" | "") => options = options.with_dry_run(true),
                Some(other) => {
                    return Err(Error::ParameterInvalid(format!(
                        "dryRun `{}`: true or false",
                        printable(other, 40)
                    )));
                }
            }
            if let Some(grace) = first(&query, "grace") {
                let grace = crate::units::parse_grace(grace)
                    .map_err(|e| Error::ParameterInvalid(format!("grace: {e}")))?;
                options = options.with_grace(grace);
            }
            let report = registry.collect_garbage(&options).await?;
            Ok(json_value(&serde_json::to_value(&report).expect("a report serialises")))
        }
        (Route::WharfArtifacts(name), Method::GET) => {
            let repo = repository(&name)?;
            let wasm_only = match first(&query, "type") {
                None => false,
                Some("wasm") => true,
                Some(other) => {
                    return Err(Error::ParameterInvalid(format!("type `{other}`: only `wasm` is known")));
                }
            };
            let (n, last) = paging(&query)?;
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
        (Route::WharfArtifact(name, reference), Method::GET) => {
            let repo = repository(&name)?;
            let reference =
                reference.parse::<TagOrDigest>().map_err(|_| Error::ManifestUnknown(reference.clone()))?;
            Ok(json_value(&registry.artifact(&repo, &reference).await?))
        }
        (Route::Base, Method::GET | Method::HEAD) => {
            Ok(json_response(StatusCode::OK, b"{}".to_vec(), "application/json"))
        }
        (Route::Catalog, Method::GET) => {
            let (n, last) = paging(&query)?;
            if let Some(last) = &last {
                repository(last)?;
            }
            let page = registry.catalog_where(n, last.as_deref(), &|r| gate.visible(r)).await?;
            let body = serde_json::json!({ "repositories": page.names });
            Ok(paged(&body, &page, "/v2/_catalog", n))
        }
        (Route::Tags(name), Method::GET) => {
            let repo = repository(&name)?;
            let (n, last) = paging(&query)?;
            if let Some(last) = &last {
                last.parse::<Tag>()?;
            }
            let page = registry.tags(&repo, n, last.as_deref()).await?;
            let body = serde_json::json!({ "name": repo.as_str(), "tags": page.names });
            Ok(paged(&body, &page, &format!("/v2/{repo}/tags/list"), n))
        }
        (
            Route::Manifest(name, reference),
            m @ (Method::GET | Method::HEAD | Method::PUT | Method::DELETE),
        ) => manifest(registry, &m, &repository(&name)?, &reference, headers, &query, body).await,
        (Route::Referrers(name, subject), Method::GET) => {
            let repo = repository(&name)?;
            let subject = digest(&subject)?;
            let artifact_type = first(&query, "artifactType");
            let index = registry.referrers(&repo, &subject, artifact_type).await?;
            let json = serde_json::to_vec(&index).expect("an index serialises");
            let mut response = json_response(StatusCode::OK, json, MediaType::OCI_INDEX.as_str());
            if artifact_type.is_some() {
                response
                    .headers_mut()
                    .insert("OCI-Filters-Applied", HeaderValue::from_static("artifactType"));
            }
            Ok(response)
        }
        (Route::Uploads(name), Method::POST) => {
            start_upload(registry, gate, &repository(&name)?, &query, body).await
        }
        (Route::Upload(name, id), m @ (Method::GET | Method::PATCH | Method::PUT | Method::DELETE)) => {
            upload(registry, &m, &repository(&name)?, &id, headers, &query, body).await
        }
        (Route::Blob(name, d), m @ (Method::GET | Method::HEAD)) => {
            blob(registry, &m, &repository(&name)?, &d, headers).await
        }
        (Route::Blob(name, d), Method::DELETE) => {
            let repo = repository(&name)?;
            registry.delete_blob(&repo, &digest(&d)?).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => Err(Error::MethodNotAllowed { method: printable(method.as_str(), 32), allow }),
    }
}

fn paging(query: &[(String, String)]) -> Result<(Option<usize>, Option<String>)> {
    let n = match first(query, "n") {
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            Error::PaginationInvalid(format!("n must be a non-negative number, not `{}`", printable(n, 64)))
        })?),
        None => None,
    };
    Ok((n, first(query, "last").map(str::to_owned)))
}

fn paged(body: &serde_json::Value, page: &Page, path: &str, n: Option<usize>) -> Response {
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

fn json_value(value: &impl serde::Serialize) -> Response {
    json_response(StatusCode::OK, serde_json::to_vec(value).expect("JSON serialises"), "application/json")
}

fn json_response(status: StatusCode, body: Vec<u8>, content_type: &str) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, header_value(content_type));
    response
}

#[allow(clippy::too_many_arguments)]
async fn manifest(
    registry: &Wharf,
    method: &Method,
    repo: &Repository,
    reference: &str,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: Body,
) -> Result<Response> {
    let parsed = reference.parse::<TagOrDigest>();
    match *method {
        Method::GET | Method::HEAD => {
            // An unparsable reference names no manifest.
            let reference = parsed.map_err(|_| Error::ManifestUnknown(reference.to_owned()))?;
            let (digest, media_type, size, bytes) = if *method == Method::HEAD {
                let (d, mt, size) = registry.head_manifest(repo, &reference).await?;
                (d, mt, size, None)
            } else {
                let m = registry.get_manifest(repo, &reference).await?;
                let size = m.bytes.len() as u64;
                (m.digest, m.media_type, size, Some(m.bytes))
            };
            let mut response = match bytes {
                Some(bytes) => (StatusCode::OK, bytes).into_response(),
                None => StatusCode::OK.into_response(),
            };
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, header_value(&media_type));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            h.insert(CONTENT_DIGEST, header_value(digest.as_str()));
            Ok(response)
        }
        Method::PUT => {
            let reference = parsed?;
            let content_type = match headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
                Some(ct) => Some(ct.parse::<MediaType>().map_err(|e| Error::ManifestInvalid(e.to_string()))?),
                None => None,
            };
            let mut extra_tags = Vec::new();
            for (k, v) in query {
                if k == "tag" {
                    extra_tags.push(v.parse::<Tag>()?);
                }
            }
            let bytes = read_limited(body, MAX_MANIFEST_SIZE).await?;
            let put =
                registry.put_manifest(repo, &reference, content_type.as_ref(), bytes, &extra_tags).await?;
            let mut response = StatusCode::CREATED.into_response();
            let h = response.headers_mut();
            h.insert(header::LOCATION, header_value(&format!("/v2/{repo}/manifests/{}", put.digest)));
            h.insert(CONTENT_DIGEST, header_value(put.digest.as_str()));
            if let Some(subject) = &put.subject {
                h.insert("OCI-Subject", header_value(subject.as_str()));
            }
            for tag in put.tags.iter().filter(|t| extra_tags.contains(t)) {
                h.append("OCI-Tag", header_value(tag.as_str()));
            }
            Ok(response)
        }
        Method::DELETE => {
            let reference = parsed.map_err(|_| Error::ManifestUnknown(reference.to_owned()))?;
            registry.delete_manifest(repo, &reference).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => unreachable!("dispatched on the methods a manifest answers"),
    }
}

fn upload_location(repo: &Repository, id: &str) -> HeaderValue {
    header_value(&format!("/v2/{repo}/blobs/uploads/{id}"))
}

fn upload_accepted(repo: &Repository, id: &str, size: u64, status: StatusCode) -> Response {
    let mut response = status.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, upload_location(repo, id));
    h.insert(UPLOAD_UUID, header_value(id));
    // The received range, inclusive; `0-0` for an empty session, as distribution says it.
    h.insert(header::RANGE, header_value(&format!("0-{}", size.saturating_sub(1))));
    h.insert("OCI-Chunk-Min-Length", HeaderValue::from(1u64));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    response
}

fn blob_created(repo: &Repository, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, header_value(&format!("/v2/{repo}/blobs/{digest}")));
    h.insert(CONTENT_DIGEST, header_value(digest.as_str()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    response
}

async fn start_upload(
    registry: &Wharf,
    gate: Gate<'_>,
    repo: &Repository,
    query: &[(String, String)],
    body: Body,
) -> Result<Response> {
    if let Some(mount) = first(query, "mount") {
        let d = digest(mount)?;
        let from = match first(query, "from") {
            Some(from) => Some(repository(from)?),
            None => None,
        };
        // Only from a repository the caller may pull.
        if registry.mount_where(repo, &d, from.as_ref(), &|r| gate.visible(r.as_str())).await? {
            return Ok(blob_created(repo, &d));
        }
        // Nothing to mount: an ordinary upload session, as the spec says.
        let id = registry.begin_upload(repo).await?;
        return Ok(upload_accepted(repo, id.as_str(), 0, StatusCode::ACCEPTED));
    }
    if let Some(d) = first(query, "digest") {
        let d = digest(d)?;
        registry.put_blob(repo, &d, body_stream(body)).await?;
        return Ok(blob_created(repo, &d));
    }
    let id = registry.begin_upload(repo).await?;
    Ok(upload_accepted(repo, id.as_str(), 0, StatusCode::ACCEPTED))
}

/// A `Content-Range: <start>-<end>` (with or without a `bytes ` prefix).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let malformed = || {
        Error::ContentRangeInvalid(format!(
            "Content-Range `{}` is malformed: expected <start>-<end>",
            printable(&String::from_utf8_lossy(value.as_bytes()), 100)
        ))
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let range = text.trim().trim_start_matches("bytes ").split('/').next().unwrap_or_default();
    let parsed = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)));
    match parsed {
        Some((a, b)) if a <= b => Ok(Some((a, b))),
        _ => Err(malformed()),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

#[allow(clippy::too_many_arguments)]
async fn upload(
    registry: &Wharf,
    method: &Method,
    repo: &Repository,
    id: &str,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: Body,
) -> Result<Response> {
    let session = &wharf_store::UploadId::parse(id).ok_or_else(|| Error::UploadUnknown(id.to_owned()))?;
    match *method {
        Method::GET => {
            let size = registry.upload_status(repo, session).await?;
            Ok(upload_accepted(repo, id, size, StatusCode::NO_CONTENT))
        }
        Method::PATCH => {
            let range = content_range(headers)?;
            if let (Some((a, b)), Some(len)) = (range, content_length(headers))
                && (b - a).checked_add(1) != Some(len)
            {
                return Err(Error::SizeInvalid(format!("Content-Range {a}-{b} but Content-Length {len}")));
            }
            let size = registry.append_upload(repo, session, range.map(|r| r.0), body_stream(body)).await?;
            Ok(upload_accepted(repo, id, size, StatusCode::ACCEPTED))
        }
        Method::PUT => {
            let d = first(query, "digest")
                .ok_or_else(|| Error::DigestInvalid("the digest parameter is missing".into()))?;
            let d = digest(d)?;
            let has_body = content_length(headers).is_none_or(|l| l > 0);
            if has_body {
                let offset = content_range(headers)?.map(|r| r.0);
                registry.append_upload(repo, session, offset, body_stream(body)).await?;
            }
            registry.finish_upload(repo, session, &d).await?;
            Ok(blob_created(repo, &d))
        }
        Method::DELETE => {
            registry.cancel_upload(repo, session).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => unreachable!("dispatched on the methods an upload answers"),
    }
}

/// A single `Range: bytes=…` against a blob of `size` bytes: `Ok(None)` for no (or an
/// unusable multi-range) header, the half-open range otherwise.
fn blob_range(headers: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: answer the whole blob, as the spec allows
    }
    let bad = || Error::BlobRange { size };
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let suffix: u64 = b.parse().map_err(|_| bad())?;
        if suffix == 0 || size == 0 {
            return Err(bad());
        }
        size.saturating_sub(suffix)..size
    } else {
        let start: u64 = a.parse().map_err(|_| bad())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| bad())?.min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Err(bad());
        }
        start..end + 1
    };
    Ok(Some(range))
}

async fn blob(
    registry: &Wharf,
    method: &Method,
    repo: &Repository,
    d: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    let d = digest(d)?;
    // Storage that serves blobs itself (S3 with `redirect=true`): the client goes there.
    if let Some(url) = registry.blob_url(repo, &d, *method == Method::HEAD).await? {
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        let h = response.headers_mut();
        h.insert(header::LOCATION, header_value(&url));
        h.insert(CONTENT_DIGEST, header_value(d.as_str()));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(response);
    }
    let info = registry.stat_blob(repo, &d).await?.ok_or_else(|| Error::BlobUnknown(d.clone()))?;
    let range = blob_range(headers, info.size)?;
    if *method == Method::HEAD {
        let mut response = StatusCode::OK.into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        h.insert(CONTENT_DIGEST, header_value(d.as_str()));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        return Ok(response);
    }
    let partial = range.is_some();
    let got = registry.get_blob(repo, &d, range).await?;
    let status = if partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let mut response = (status, Body::from_stream(got.stream)).into_response();
    if let Some(file) = got.file {
        // The listener may send the file itself rather than stream it.
        response.extensions_mut().insert(crate::listener::FileRegion { file, range: got.range.clone() });
    }
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(got.range.end - got.range.start));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(CONTENT_DIGEST, header_value(d.as_str()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if partial {
        let cr = format!("bytes {}-{}/{}", got.range.start, got.range.end - 1, got.size);
        h.insert(header::CONTENT_RANGE, header_value(&cr));
    }
    Ok(response)
}

/// The invariants of [`crate::fuzzing::request`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn check_parsers(data: &[u8]) {
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
    crate::web::check_parsers(&text);
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
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route("/v2/"), Some(Route::Base)));
        assert!(matches!(route("/v2"), Some(Route::Base)));
        assert!(matches!(route("/v2/_catalog"), Some(Route::Catalog)));
        assert!(matches!(route("/v2/a/b/tags/list"), Some(Route::Tags(n)) if n == "a/b"));
        assert!(matches!(route("/v2/a/manifests/v1"), Some(Route::Manifest(n, r)) if n == "a" && r == "v1"));
        assert!(matches!(route("/v2/a/blobs/uploads/"), Some(Route::Uploads(n)) if n == "a"));
        assert!(
            matches!(route("/v2/a/b/blobs/uploads/xyz"), Some(Route::Upload(n, i)) if n == "a/b" && i == "xyz")
        );
        assert!(
            matches!(route("/v2/a/blobs/sha256:x"), Some(Route::Blob(n, d)) if n == "a" && d == "sha256:x")
        );
        assert!(matches!(route("/v2/a/referrers/sha256:x"), Some(Route::Referrers(..))));
        assert!(route("/v3/").is_none());
    }

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
