//! What every handler shares ([`App`]) and the request as it sees it ([`Ctx`]): parsed once —
//! route, method, headers, query pairs, client address, connection — before anything is
//! decided, and the [`Gate`] of what the caller may be shown.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};

use super::route::{Route, decode_path, route};
use crate::Wharf;
use crate::auth::AccessControl;
use crate::listener::Transport;
use crate::text::query_pairs;

/// What every handler shares: one pointer, so that handing it to each layer of every request
/// costs one reference count (a [`Wharf`] is a few dozen).
#[derive(Clone, Debug)]
pub(crate) struct App(Arc<Shared>);

/// What [`App`] points at.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) registry: Wharf,
    pub(crate) access: Option<Arc<AccessControl>>,
    /// The URL clients reach the registry at, if configured.
    pub(crate) public_url: Option<Arc<crate::PublicUrl>>,
}

impl App {
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for App {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The route the access log parsed, handed on to the handler in the request's extensions.
#[derive(Clone, Debug)]
pub(crate) struct Parsed(pub(crate) Option<Route>);

/// The request's id the access log gave it, handed on to the handler in the request's
/// extensions (events name it).
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) String);

/// A request, parsed once.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// What the path names (`None`: nothing here).
    pub(crate) route: Option<Route>,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    /// The query's pairs, decoded.
    pub(crate) query: Vec<(String, String)>,
    /// The client's address.
    pub(crate) client: Option<IpAddr>,
    /// The connection (TLS, a verified client certificate's user).
    pub(crate) transport: Transport,
    /// The access log's request id.
    pub(crate) request_id: Option<String>,
}

impl Ctx {
    /// Where the request comes from, as events tell it: `identity` (the caller's), the client
    /// address, the request id.
    pub(crate) fn origin(&self, identity: &wharf_auth::Identity) -> crate::webhooks::Origin {
        crate::webhooks::Origin::request(identity, self.client, self.request_id.clone())
    }

    /// The context of a request (its route as the access log parsed it, when it did).
    pub(crate) fn new(mut parts: http::request::Parts) -> Self {
        let route = match parts.extensions.remove::<Parsed>() {
            Some(Parsed(route)) => route,
            None => route(&decode_path(parts.uri.path())),
        };
        let client =
            parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let transport = parts.extensions.get::<Transport>().cloned().unwrap_or_default();
        let query = query_pairs(parts.uri.query());
        let request_id = parts.extensions.remove::<RequestId>().map(|r| r.0);
        Self {
            route,
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            query,
            client,
            transport,
            request_id,
        }
    }
}

/// What a handler may show a caller: everything (an open registry), or what the caller may
/// pull.
#[derive(Clone, Copy)]
pub(crate) struct Gate<'a>(pub(crate) Option<(&'a AccessControl, &'a wharf_auth::Principal)>);

impl Gate<'_> {
    pub(crate) fn visible(&self, repository: &str) -> bool {
        self.0.is_none_or(|(access, principal)| access.visible(principal, repository))
    }

    /// Whether the caller signed in and may push to the repository: a signer, who reads what it
    /// signs before a signature exists (trust policies never block it). Without access control,
    /// no one is.
    pub(crate) fn signer(&self, repository: &str) -> bool {
        self.0.is_some_and(|(access, principal)| {
            !matches!(principal.identity, wharf_auth::Identity::Anonymous)
                && access.can(principal, repository, wharf_auth::Action::Push)
        })
    }
}
