//! Routing: what a `/v2/` path names. Repository names hold `/`, so routes are matched by
//! hand on the path after `/v2/`: the last `/manifests/`, `/blobs/uploads/`, `/blobs/`,
//! `/referrers/` or `/tags/list` splits the name from what follows, and the name is
//! validated before anything else happens.

use crate::text::percent_decode;

/// What a `/v2/` path names.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    Token,
    Metrics,
    Health,
    Ready,
    WharfRepositories,
    WharfSearch,
    WharfGc,
    WharfQuotas,
    /// `/v2/_wharf/upstreams`.
    WharfUpstreams,
    /// `/v2/_wharf/webhooks`.
    WharfWebhooks,
    /// `/v2/_wharf/webhooks/<name>/resend`.
    WharfResend(String),
    /// `/v2/_wharf/robots`.
    WharfRobots,
    /// `/v2/_wharf/robots/<name>`.
    WharfRobot(String),
    /// `/v2/_wharf/tokens`.
    WharfTokens,
    /// `/v2/_wharf/tokens/<id>`.
    WharfToken(String),
    WharfArtifacts(String),
    WharfArtifact(String, String),
    /// `/v2/_wharf/packages/<ns>:<name>`.
    WharfPackage(String),
    /// `/v2/<name>/_wharf/versions`.
    WharfVersions(String),
    /// `/v2/<name>/_wharf/yanked/<tag>`.
    WharfYanked(String, String),
    /// `/.well-known/wasm-pkg/registry.json`.
    WasmPkg,
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
    pub(crate) fn repository(&self) -> Option<&str> {
        match self {
            Self::WharfArtifacts(n)
            | Self::WharfArtifact(n, _)
            | Self::WharfVersions(n)
            | Self::WharfYanked(n, _)
            | Self::Tags(n)
            | Self::Manifest(n, _)
            | Self::Referrers(n, _)
            | Self::Uploads(n)
            | Self::Upload(n, _)
            | Self::Blob(n, _) => Some(n),
            _ => None,
        }
    }

    /// The repository the request is about, to rename it.
    pub(crate) fn repository_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::WharfArtifacts(n)
            | Self::WharfArtifact(n, _)
            | Self::WharfVersions(n)
            | Self::WharfYanked(n, _)
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
    pub(crate) fn allowed(&self) -> &'static str {
        match self {
            Self::Metrics
            | Self::WharfRepositories
            | Self::WharfSearch
            | Self::WharfArtifacts(_)
            | Self::WharfArtifact(..)
            | Self::WharfPackage(_)
            | Self::WharfVersions(_)
            | Self::Catalog
            | Self::Tags(_)
            | Self::WharfQuotas
            | Self::WharfWebhooks
            | Self::Referrers(..) => "GET",
            Self::Health | Self::Ready | Self::Base | Self::WasmPkg => "GET, HEAD",
            Self::WharfYanked(..) => "PUT, DELETE",
            Self::Token | Self::WharfGc | Self::WharfUpstreams | Self::WharfRobots | Self::WharfTokens => {
                "GET, POST"
            }
            Self::WharfRobot(_) => "GET, PATCH, DELETE",
            Self::WharfToken(_) => "DELETE",
            Self::Manifest(..) => "GET, HEAD, PUT, DELETE",
            Self::Uploads(_) | Self::WharfResend(_) => "POST",
            Self::Upload(..) => "GET, PATCH, PUT, DELETE",
            Self::Blob(..) => "GET, HEAD, DELETE",
        }
    }

    /// A short name for metrics labels.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Metrics => "metrics",
            Self::Health => "healthz",
            Self::Ready => "readyz",
            Self::WharfRepositories | Self::WharfArtifacts(_) | Self::WharfArtifact(..) => "wharf",
            Self::WharfSearch => "search",
            Self::WharfPackage(_) | Self::WharfVersions(_) | Self::WharfYanked(..) => "packages",
            Self::WasmPkg => "wasm-pkg",
            Self::WharfGc => "gc",
            Self::WharfQuotas => "quotas",
            Self::WharfUpstreams => "upstreams",
            Self::WharfWebhooks | Self::WharfResend(_) => "webhooks",
            Self::WharfRobots | Self::WharfRobot(_) => "robots",
            Self::WharfTokens | Self::WharfToken(_) => "tokens",
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

pub(crate) fn route(path: &str) -> Option<Route> {
    match path {
        "/healthz" => return Some(Route::Health),
        "/readyz" => return Some(Route::Ready),
        "/metrics" => return Some(Route::Metrics),
        "/token" => return Some(Route::Token),
        "/.well-known/wasm-pkg/registry.json" => return Some(Route::WasmPkg),
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
    if rest == "_wharf/upstreams" {
        return Some(Route::WharfUpstreams);
    }
    if rest == "_wharf/webhooks" {
        return Some(Route::WharfWebhooks);
    }
    if let Some(name) = rest.strip_prefix("_wharf/webhooks/").and_then(|r| r.strip_suffix("/resend")) {
        return Some(Route::WharfResend(name.to_owned()));
    }
    match rest {
        "_wharf/robots" => return Some(Route::WharfRobots),
        "_wharf/tokens" => return Some(Route::WharfTokens),
        _ => {}
    }
    if let Some(name) = rest.strip_prefix("_wharf/robots/") {
        return Some(Route::WharfRobot(name.to_owned()));
    }
    if let Some(id) = rest.strip_prefix("_wharf/tokens/") {
        return Some(Route::WharfToken(id.to_owned()));
    }
    if let Some(package) = rest.strip_prefix("_wharf/packages/") {
        return Some(Route::WharfPackage(package.to_owned()));
    }
    if let Some((name, what)) = rest.split_once("/_wharf/") {
        if what == "versions" {
            return Some(Route::WharfVersions(name.to_owned()));
        }
        if let Some(tag) = what.strip_prefix("yanked/") {
            return Some(Route::WharfYanked(name.to_owned(), tag.to_owned()));
        }
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
pub(crate) fn decode_path(path: &str) -> String {
    percent_decode(&path.replace("%2F", "%252F").replace("%2f", "%252f"))
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
}
