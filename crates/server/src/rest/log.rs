//! The edge of every request: the loopback host check and the access log (one line per
//! request, and its metrics).

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header;

use super::context::{App, Parsed, RequestId};
use super::route::{Route, decode_path, route};
use crate::error::Error;
use crate::listener::Transport;
use crate::text::{cut, header_value, printable};

/// An open registry that listens on loopback answers only requests that name it by a
/// loopback name (or its public URL): a web page that rebinds its own name to 127.0.0.1
/// cannot read or write it from a browser (DNS rebinding). 421 otherwise.
///
/// The check, done by [`access_log`] before the request goes on (one middleware, not two:
/// each costs a boxed future and a clone of the state per request).
fn misdirected(app: &App, request: &Request) -> Option<Response> {
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
            return Some(
                Error::Misdirected(format!(
                    "this registry listens on loopback and answers only to loopback names (localhost, 127.0.0.1, [::1]), not `{}`; set --public-url to serve another name",
                    printable(host.unwrap_or_default(), 100)
                ))
                .into_response(),
            );
        }
    }
    None
}

/// A request id no other request of any process is likely to share: 32 hex digits, a random
/// prefix drawn once per process and a counter (no system call per request, unlike a random
/// UUID each time).
fn fresh_request_id() -> String {
    static PREFIX: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or_default())
    });
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:016x}{n:016x}", *PREFIX)
}

/// Who the request came from (or who was refused), as the access log records it.
#[derive(Clone, Debug)]
pub(crate) struct Who(pub(crate) String);

/// One log line per request: a request id (the client's `X-Request-Id` when it is short and
/// plain, a fresh one otherwise, echoed back), method, path, status, bytes in and out, and
/// duration. Headers are never logged, so no credential or token reaches the log. A request
/// that fails the loopback host check ([`misdirected`]) is answered 421 here and logged like
/// any other.
pub(crate) async fn access_log(
    State(app): State<App>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map_or_else(fresh_request_id, str::to_owned);
    let method = request.method().clone();
    let length = |headers: &http::HeaderMap| {
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    };
    let bytes_in = length(request.headers());
    let parsed = route(&decode_path(request.uri().path()));
    let route_name = parsed.as_ref().map_or("other", Route::name);
    // What only the log line needs is gathered only when the line is written.
    let logged = tracing::enabled!(tracing::Level::INFO).then(|| {
        let client = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or_else(|| "-".to_owned(), |c| c.0.to_string());
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .map_or_else(|| "-".to_owned(), |v| cut(&String::from_utf8_lossy(v.as_bytes()), 200));
        let repository = parsed.as_ref().and_then(Route::repository).unwrap_or("-");
        // Every string from the client is recorded as a string, which the text format quotes
        // and escapes (a `%0a` in a path never forges a log line, a space in a user agent or a
        // repository name never forges a `status=200 user=admin` field) and JSON escapes.
        (client, user_agent, cut(request.uri().path(), 1024), cut(repository, 256))
    });
    // The handler takes the route from here rather than parsing the path again.
    request.extensions_mut().insert(Parsed(parsed));
    request.extensions_mut().insert(RequestId(id.clone()));
    let started = std::time::Instant::now();
    let mut response = match misdirected(&app, &request) {
        Some(refused) => refused,
        None => next.run(request).await,
    };
    let elapsed = started.elapsed().as_secs_f64();
    let bytes_out = length(response.headers());
    if let Some((client, user_agent, path_text, repository_text)) = logged {
        let user = response.extensions().get::<Who>().map_or_else(|| "-".to_owned(), |c| cut(&c.0, 256));
        let number = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        tracing::info!(
            request_id = %id,
            client = %client,
            user = user.as_str(),
            method = cut(method.as_str(), 32).as_str(),
            path = path_text.as_str(),
            repository = repository_text.as_str(),
            status = response.status().as_u16(),
            bytes_in = %number(bytes_in),
            bytes_out = %number(bytes_out),
            // Rounded to the microsecond; a number in JSON logs.
            duration_ms = (elapsed * 1e6).round() / 1e3,
            user_agent = user_agent.as_str(),
            "request"
        );
    }
    app.registry.metrics().request(
        route_name,
        method.as_str(),
        response.status().as_u16(),
        elapsed,
        (bytes_in.unwrap_or(0), bytes_out.unwrap_or(0)),
    );
    response.headers_mut().insert("x-request-id", header_value(&id));
    response
}
