//! The registry's web page at `/`: repositories, their artifacts, and what is inside each Wasm
//! artifact, rendered by the server (askama templates compiled into the binary, every value
//! escaped) with a login against the registry's own users and permissions.
//!
//! Pages: `/` (repositories, search), `/repositories/<name>` (artifacts),
//! `/repositories/<name>/-/artifacts/<digest|tag>` (one artifact),
//! `/repositories/<name>/-/delete` (confirm, then `POST`), `/webhooks` (administrators: each
//! webhook's last deliveries and parked events, which a `POST` sends again), `/login`,
//! `POST /logout`,
//! `/static/…` (one stylesheet, one script of conveniences). A `-` can never be a repository
//! name component, so these paths cannot collide with a repository's.
//!
//! Every response carries a strict `Content-Security-Policy` (scripts and styles from
//! `/static/` only, no inline script, no framing); forms carry the session's CSRF token.

mod session;
mod view;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use wharf_auth::Action;
use wharf_types::{Manifest, MediaType, Repository, TagOrDigest};

pub(crate) use session::Sessions;
use view::{ArtifactParts, ArtifactRow, HitRow, ModuleView, RepositoryRow};

use crate::Wharf;
use crate::api::ArtifactSummary;
use crate::auth::{AccessControl, Caller};
use crate::listener::Transport;
use crate::search::Query;
use crate::text::{UNRESERVED, percent_encode};
use crate::text::{first, form_pairs, query_pairs};

/// Repositories per page.
const REPOSITORIES_PER_PAGE: usize = 50;
/// Artifacts per page of a repository.
const ARTIFACTS_PER_PAGE: usize = 100;
/// The largest form body read.
const MAX_FORM: usize = 16 * 1024;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the page's handlers share.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    pub(crate) registry: Wharf,
    pub(crate) access: Option<Arc<AccessControl>>,
    /// The page's sessions.
    pub(crate) sessions: Arc<Sessions>,
    /// The URL clients reach the registry at, if configured.
    pub(crate) public_url: Option<Arc<crate::PublicUrl>>,
}

/// The page's router, with its own state (the server merges it with the API's).
pub(crate) fn router(site: Site) -> Router {
    Router::new()
        .route("/", get(repositories))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/static/{file}", get(static_file))
        .route("/repositories/{*path}", get(repository_get).post(repository_post))
        .route("/packages/{package}", get(package_get))
        .route("/webhooks", get(webhooks_get).post(webhooks_post))
        .route("/tokens", get(credentials_get).post(credentials_post))
        .route("/robots", get(credentials_get).post(credentials_post))
        .with_state(site)
}

/// What every page shows around its content.
struct PageInfo {
    title: String,
    auth: bool,
    user: Option<String>,
    csrf: String,
    version: &'static str,
}

/// Who is looking: their session when they logged in, else an anonymous visitor's CSRF
/// nonce (set on this response when they had none), and what they may do.
struct Visitor {
    /// The session of a user who logged in.
    session_id: Option<String>,
    /// A nonce to set in the CSRF cookie (an anonymous visitor who had none).
    new_nonce: Option<String>,
    user: Option<String>,
    csrf: String,
    caller: Caller,
    /// Cookies are `Secure` (TLS here, or an `https` public URL).
    secure: bool,
}

impl Visitor {
    fn of(app: &Site, parts: &http::request::Parts) -> Self {
        let transport = parts.extensions.get::<Transport>().cloned().unwrap_or_default();
        let client =
            parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let found = session::cookie(&parts.headers).and_then(|id| app.sessions.get(&id).map(|s| (id, s)));
        let (session_id, user, csrf, new_nonce) = if let Some((id, s)) = found {
            (Some(id), s.user, s.csrf, None)
        } else {
            // An anonymous visitor: a signed nonce cookie (no session stored).
            let known = session::cookie_named(&parts.headers, session::CSRF_COOKIE);
            let nonce = known.clone().unwrap_or_else(Sessions::nonce);
            let fresh = known.is_none().then(|| nonce.clone());
            (None, None, app.sessions.csrf_for(&nonce), fresh)
        };
        let caller = Caller::without_credentials(user.as_deref(), &transport, client);
        let secure = transport.tls || app.public_url.as_ref().is_some_and(|u| u.is_https());
        Self { session_id, new_nonce, user, csrf, caller, secure }
    }

    fn page(&self, app: &Site, title: impl Into<String>) -> PageInfo {
        PageInfo {
            title: title.into(),
            auth: app.access.is_some(),
            user: self.user.clone(),
            csrf: self.csrf.clone(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    fn sees(&self, app: &Site, repository: &str) -> bool {
        app.access.as_ref().is_none_or(|a| a.visible(&self.caller.principal, repository))
    }

    fn may(&self, app: &Site, repository: &str, action: Action) -> bool {
        app.access.as_ref().is_none_or(|a| a.can(&self.caller.principal, repository, action))
    }

    /// A POSTed form, when it carries this session's CSRF token; the refusal page otherwise.
    async fn form(&self, app: &Site, body: Body) -> Result<Vec<(String, String)>, Box<Response>> {
        let form = match axum::body::to_bytes(body, MAX_FORM).await {
            Ok(bytes) => form_pairs(&String::from_utf8_lossy(&bytes)),
            Err(_) => Vec::new(),
        };
        let presented = first(&form, "csrf").unwrap_or_default();
        let valid = match &self.session_id {
            // The session must still be live (not logged out elsewhere).
            Some(id) => app.sessions.get(id).is_some_and(|s| session::csrf_matches(&s.csrf, presented)),
            // A nonce set only now was never in a form.
            None => self.new_nonce.is_none() && session::csrf_matches(&self.csrf, presented),
        };
        if valid {
            return Ok(form);
        }
        Err(Box::new(self.message(
            app,
            StatusCode::FORBIDDEN,
            "Form expired",
            "The form was not this session's (it expired, or came from another site): load the page again."
                .into(),
            "/",
        )))
    }

    /// A page: the security headers, and the CSRF cookie when it is new.
    fn respond(&self, status: StatusCode, html: String) -> Response {
        let mut response = (status, html).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        secure_headers(headers);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(nonce) = &self.new_nonce {
            headers.append(header::SET_COOKIE, cookie_value(session::CSRF_COOKIE, Some(nonce), self.secure));
        }
        response
    }

    fn redirect(&self, to: &str) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        let headers = response.headers_mut();
        headers.insert(header::LOCATION, crate::text::header_value(to));
        secure_headers(headers);
        if let Some(nonce) = &self.new_nonce {
            headers.append(header::SET_COOKIE, cookie_value(session::CSRF_COOKIE, Some(nonce), self.secure));
        }
        response
    }

    fn message(&self, app: &Site, status: StatusCode, title: &str, message: String, back: &str) -> Response {
        let page = MessagePage { page: self.page(app, title), message, back: back.to_owned() };
        self.respond(status, render(&page))
    }

    fn not_found(&self, app: &Site) -> Response {
        self.message(
            app,
            StatusCode::NOT_FOUND,
            "Not found",
            "Nothing here, or nothing you may see.".into(),
            "/",
        )
    }
}

fn cookie_value(name: &str, value: Option<&str>, secure: bool) -> HeaderValue {
    crate::text::header_value(&session::set_cookie(name, value, secure))
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|e| format!("<!doctype html><title>Error</title><p>{e}</p>"))
}

/// Previous and next links.
struct Pager {
    number: usize,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "repositories.html")]
struct RepositoriesPage {
    page: PageInfo,
    q: String,
    field: String,
    fields: Vec<(&'static str, &'static str)>,
    wasm_only: bool,
    searching: bool,
    hits: Vec<HitRow>,
    repositories: Vec<RepositoryRow>,
    pager: Pager,
    /// The `wkg` config line that points at this registry, and where packages live.
    wkg_registry: String,
    wkg_prefix: String,
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    page: PageInfo,
    name: String,
    /// A mirrored repository's upstream and each tag's last check there.
    cached_from: Option<crate::api::CachedFrom>,
    total: usize,
    wasm: usize,
    artifacts: Vec<ArtifactRow>,
    pager: Pager,
}

#[derive(Template)]
#[template(path = "package.html")]
struct PackagePage {
    page: PageInfo,
    package: String,
    repository: String,
    repository_href: String,
    latest: String,
    versions: Vec<VersionRow>,
    other_tags: Vec<String>,
    dependents: Vec<(String, String)>,
}

/// One version on a package's page.
struct VersionRow {
    version: String,
    href: String,
    yanked: bool,
    kind: String,
    exports: Vec<String>,
    imports: Vec<String>,
    uses: Vec<(String, String)>,
    wasi: String,
    size: String,
    pushed: String,
}

#[derive(Template)]
#[template(path = "artifact.html")]
struct ArtifactPage {
    page: PageInfo,
    repository: String,
    repository_href: String,
    tags: Vec<String>,
    short_digest: String,
    overview: Vec<(String, String)>,
    wasm: bool,
    kind: String,
    format: String,
    badge_class: &'static str,
    evidence: Vec<(String, String, String)>,
    hints: Vec<String>,
    warnings: Vec<String>,
    harbor: Vec<(String, String)>,
    module: Option<ModuleView>,
    inspection_note: Option<String>,
    children: Vec<(String, String, String, String)>,
    layers: Vec<(usize, String, String, String, String)>,
    config: Vec<(String, String)>,
    history: Vec<String>,
    annotations: Vec<(String, String)>,
    referrers: Vec<(String, String, String, String)>,
    /// Under a trust policy: whether a pull is served, and why.
    verdict: Option<(bool, String)>,
    signatures: Vec<view::SignatureRow>,
    signatures_omitted: Option<String>,
    pulls: Vec<(String, String)>,
    deletes: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: PageInfo,
    error: Option<String>,
    username: String,
    next: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    page: PageInfo,
    what: String,
    consequence: String,
    action: String,
    target: String,
    back: String,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    page: PageInfo,
    hooks: Vec<crate::webhooks::WebhookStatus>,
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct CredentialsPage {
    page: PageInfo,
    intro: &'static str,
    /// Robots (an administrator's page), else the visitor's own tokens.
    robots: bool,
    action: &'static str,
    rows: Vec<CredentialRow>,
    made: Option<Made>,
    error: Option<String>,
    default_expiry: &'static str,
}

/// A credential as the page lists it.
struct CredentialRow {
    id: String,
    name: String,
    username: String,
    grants: String,
    created: String,
    expires: String,
    last_used: String,
    state: &'static str,
    disabled: bool,
}

/// A credential just made, with its secret (shown this once).
struct Made {
    name: String,
    username: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    page: PageInfo,
    message: String,
    back: String,
}

/// The search fields of the repositories page: (query parameter, label).
const FIELDS: [(&str, &str); 4] = [
    ("text", "name, tag or annotation"),
    ("import", "imports"),
    ("export", "exports"),
    ("wasi", "WASI version"),
];

async fn repositories(State(app): State<Site>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    let query = query_pairs(parts.uri.query());
    let q = first(&query, "q").unwrap_or_default().trim().to_owned();
    let field =
        first(&query, "field").filter(|f| FIELDS.iter().any(|(v, _)| v == f)).unwrap_or("text").to_owned();
    let wasm_only = first(&query, "wasm") == Some("1");
    let number = first(&query, "page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let visible = |name: &str| visitor.sees(&app, name);
    // Pages go by the last name shown (`after`); `page` only numbers them.
    let link = |page: usize, after: Option<&str>| {
        let mut href = format!("/?page={page}");
        if let Some(after) = after {
            href.push_str("&after=");
            href.push_str(&percent_encode(after, UNRESERVED));
        }
        if wasm_only {
            href.push_str("&wasm=1");
        }
        href
    };
    let mut page = RepositoriesPage {
        page: visitor.page(&app, "Repositories"),
        q: q.clone(),
        field: field.clone(),
        fields: FIELDS.to_vec(),
        wasm_only,
        searching: !q.is_empty(),
        hits: Vec::new(),
        repositories: Vec::new(),
        pager: Pager { number, previous: None, next: None },
        wkg_registry: {
            let reached = match &app.public_url {
                Some(url) => url.authority().to_owned(),
                None => parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| crate::listener::valid_host(h))
                    .unwrap_or("localhost:5000")
                    .to_owned(),
            };
            app.registry.packages().registry(&reached).to_owned()
        },
        wkg_prefix: app.registry.packages().namespace_prefix().to_owned(),
    };
    if page.searching {
        let mut search = Query::default();
        let value = Some(q.clone());
        match field.as_str() {
            "import" => search.import = value,
            "export" => search.export = value,
            "wasi" => search.wasi = value,
            _ => search.text = value,
        }
        let after = first(&query, "after");
        match app.registry.search(&search, Some(REPOSITORIES_PER_PAGE), after, &visible).await {
            Ok((hits, more)) => {
                if let (true, Some(last)) = (more, hits.last()) {
                    page.pager.next = Some(format!(
                        "/?q={}&field={field}&after={}",
                        percent_encode(&q, UNRESERVED),
                        percent_encode(&format!("{}@{}", last.repository, last.digest), UNRESERVED)
                    ));
                }
                if after.is_some() {
                    page.pager.previous =
                        Some(format!("/?q={}&field={field}", percent_encode(&q, UNRESERVED)));
                }
                page.hits = hits.iter().map(HitRow::from).collect();
            }
            Err(e) => {
                return visitor.message(&app, StatusCode::BAD_REQUEST, "Search", e.to_string(), "/");
            }
        }
        return visitor.respond(StatusCode::OK, render(&page));
    }
    // A page of the catalog after `after` (and, for Wasm only, further pages until a page of
    // matching repositories is found): never the whole registry.
    let after = first(&query, "after").filter(|a| a.parse::<Repository>().is_ok());
    let keep = |artifacts: &[ArtifactSummary]| !wasm_only || artifacts.iter().any(|a| a.wasm);
    let (found, more) =
        match app.registry.repositories_with_artifacts(REPOSITORIES_PER_PAGE, after, &visible, keep).await {
            Ok(found) => found,
            Err(e) => {
                return visitor.message(&app, StatusCode::INTERNAL_SERVER_ERROR, "Error", e.to_string(), "/");
            }
        };
    if let (true, Some((last, _))) = (more, found.last()) {
        page.pager.next = Some(link(number + 1, Some(last)));
    }
    page.pager.previous = after.is_some().then(|| link(1, None));
    page.repositories =
        found.into_iter().map(|(name, artifacts)| RepositoryRow::new(name, &artifacts)).collect();
    visitor.respond(StatusCode::OK, render(&page))
}

/// `<name>`, `<name>/-/artifacts/<reference>` or `<name>/-/delete`.
enum RepoPath {
    Repository(String),
    Artifact(String, String),
    Delete(String),
}

fn repo_path(path: &str) -> Option<RepoPath> {
    match path.split_once("/-/") {
        None => Some(RepoPath::Repository(path.trim_end_matches('/').to_owned())),
        Some((name, "delete")) => Some(RepoPath::Delete(name.to_owned())),
        Some((name, rest)) => {
            rest.strip_prefix("artifacts/").map(|r| RepoPath::Artifact(name.to_owned(), r.to_owned()))
        }
    }
}

async fn repository_get(State(app): State<Site>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    let path = parts.uri.path().strip_prefix("/repositories/").unwrap_or_default().to_owned();
    let Some(route) = repo_path(&path) else { return visitor.not_found(&app) };
    let name = match &route {
        RepoPath::Repository(n) | RepoPath::Artifact(n, _) | RepoPath::Delete(n) => n.clone(),
    };
    let Ok(repo) = name.parse::<Repository>() else { return visitor.not_found(&app) };
    if !visitor.sees(&app, repo.as_str()) {
        return visitor.not_found(&app);
    }
    let query = query_pairs(parts.uri.query());
    match route {
        RepoPath::Repository(_) => repository_page(&app, &visitor, &repo, &query).await,
        RepoPath::Artifact(_, reference) => {
            artifact_page(&app, &visitor, &parts.headers, &repo, &reference).await
        }
        RepoPath::Delete(_) => {
            let Some(target) = first(&query, "target").and_then(|t| t.parse::<TagOrDigest>().ok()) else {
                return visitor.not_found(&app);
            };
            if !visitor.may(&app, repo.as_str(), Action::Delete) {
                return forbidden(&app, &visitor, &repo);
            }
            let (what, consequence) = match &target {
                TagOrDigest::Tag(t) => (
                    format!("the tag {repo}:{t}"),
                    "The tag goes; the manifest it names stays, with its other tags.".to_owned(),
                ),
                TagOrDigest::Digest(d) => (
                    format!("the manifest {repo}@{}", view::short(d.as_str())),
                    "The manifest goes, with every tag that names it.".to_owned(),
                ),
            };
            let page = ConfirmPage {
                page: visitor.page(&app, "Delete"),
                what,
                consequence,
                action: format!("/repositories/{repo}/-/delete"),
                target: target.to_string(),
                back: view::repository_href(repo.as_str()),
            };
            visitor.respond(StatusCode::OK, render(&page))
        }
    }
}

fn forbidden(app: &Site, visitor: &Visitor, repo: &Repository) -> Response {
    let who = visitor.user.as_deref().map_or_else(|| "Anonymous visitors".to_owned(), |u| format!("`{u}`"));
    visitor.message(
        app,
        StatusCode::FORBIDDEN,
        "Not allowed",
        format!("{who} may not delete in {repo}."),
        &view::repository_href(repo.as_str()),
    )
}

async fn repository_page(
    app: &Site,
    visitor: &Visitor,
    repo: &Repository,
    query: &[(String, String)],
) -> Response {
    let mut artifacts = match app.registry.artifacts(repo, false).await {
        Ok(a) => a,
        Err(crate::error::Error::NameUnknown(_)) => return visitor.not_found(app),
        Err(e) => {
            return visitor.message(app, StatusCode::INTERNAL_SERVER_ERROR, "Error", e.to_string(), "/");
        }
    };
    let number = first(query, "page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let cached_from = app.registry.cached_from(repo).await.ok().flatten();
    let html =
        repository_html(visitor.page(app, repo.as_str()), repo.as_str(), cached_from, &mut artifacts, number);
    visitor.respond(StatusCode::OK, html)
}

/// A repository's page (page `number`, newest first), as served.
fn repository_html(
    page: PageInfo,
    name: &str,
    cached_from: Option<crate::api::CachedFrom>,
    artifacts: &mut [ArtifactSummary],
    number: usize,
) -> String {
    artifacts
        .sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then_with(|| a.digest.as_str().cmp(b.digest.as_str())));
    let skip = (number - 1) * ARTIFACTS_PER_PAGE;
    let link = |n: usize| format!("/repositories/{name}?page={n}");
    let cached_from = cached_from.map(|mut c| {
        for when in c.checked.values_mut() {
            *when = view::time(Some(when));
        }
        c
    });
    let view = RepositoryPage {
        page,
        name: name.to_owned(),
        cached_from,
        total: artifacts.len(),
        wasm: artifacts.iter().filter(|a| a.wasm).count(),
        artifacts: artifacts
            .iter()
            .skip(skip)
            .take(ARTIFACTS_PER_PAGE)
            .map(|a| ArtifactRow::new(name, a))
            .collect(),
        pager: Pager {
            number,
            previous: (number > 1).then(|| link(number - 1)),
            next: (artifacts.len() > skip + ARTIFACTS_PER_PAGE).then(|| link(number + 1)),
        },
    };
    render(&view)
}

/// The page of a repository holding `artifacts`, rendered as the server renders it for an
/// anonymous visitor of an open registry (for benchmarks and tools).
pub fn render_repository(name: &str, artifacts: &mut [ArtifactSummary]) -> String {
    let page = PageInfo {
        title: name.to_owned(),
        auth: false,
        user: None,
        csrf: String::new(),
        version: env!("CARGO_PKG_VERSION"),
    };
    repository_html(page, name, None, artifacts, 1)
}

async fn artifact_page(
    app: &Site,
    visitor: &Visitor,
    headers: &HeaderMap,
    repo: &Repository,
    reference: &str,
) -> Response {
    let Ok(target) = reference.parse::<TagOrDigest>() else { return visitor.not_found(app) };
    let Ok(record) = app.registry.artifact(repo, &target).await else { return visitor.not_found(app) };
    let digest = record.summary.digest.clone();
    let manifest = match app.registry.get_manifest(repo, &TagOrDigest::Digest(digest.clone())).await {
        Ok(stored) => {
            let media_type = stored.media_type.parse::<MediaType>().ok();
            Manifest::from_bytes(stored.bytes, media_type.as_ref()).ok()
        }
        Err(_) => None,
    };
    let referrers = app
        .registry
        .referrers(repo, &digest, None)
        .await
        .map(|index| {
            index
                .manifests
                .iter()
                .map(|d| {
                    (
                        d.artifact_type
                            .as_ref()
                            .map_or_else(|| d.media_type.to_string(), ToString::to_string),
                        view::short(d.digest.as_str()),
                        view::artifact_href(repo.as_str(), d.digest.as_str()),
                        view::size(d.size),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let host = match &app.public_url {
        Some(url) => url.authority(),
        None => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| crate::listener::valid_host(h))
            .unwrap_or("localhost:5000"),
    };
    let shown = match record.summary.tags.first() {
        Some(tag) => format!("{host}/{repo}:{tag}"),
        None => format!("{host}/{repo}@{digest}"),
    };
    let mut deletes = Vec::new();
    if visitor.may(app, repo.as_str(), Action::Delete) {
        let confirm = |target: &str| {
            format!("/repositories/{repo}/-/delete?target={}", percent_encode(target, UNRESERVED))
        };
        for tag in &record.summary.tags {
            deletes.push((format!("Delete the tag {tag}"), confirm(tag)));
        }
        deletes.push(("Delete the manifest (and its tags)".to_owned(), confirm(digest.as_str())));
    }
    let verdict = match app.registry.trust_verdict(repo, &digest).await {
        Ok(v) => v.map(|v| (v.verdict == "verified" || v.verdict == "unjudged", v.sentence())),
        Err(e) => Some((false, e.to_string())),
    };
    let (signatures, signatures_omitted) = match app.registry.trust_summary(repo, &digest).await {
        Ok(Some(summary)) => view::signature_rows(repo.as_str(), &summary),
        _ => (Vec::new(), None),
    };
    let parts = ArtifactParts::new(repo.as_str(), &record, manifest.as_ref());
    let page = ArtifactPage {
        page: visitor.page(app, format!("{repo}@{}", parts.short_digest)),
        repository: repo.to_string(),
        repository_href: view::repository_href(repo.as_str()),
        tags: record.summary.tags.clone(),
        pulls: view::pull_commands(&shown, host, record.summary.wasm, !visitor.secure),
        referrers,
        verdict,
        signatures,
        signatures_omitted,
        deletes,
        short_digest: parts.short_digest,
        overview: parts.overview,
        wasm: parts.wasm,
        kind: parts.kind,
        format: parts.format,
        badge_class: parts.badge_class,
        evidence: parts.evidence,
        hints: parts.hints,
        warnings: parts.warnings,
        harbor: parts.harbor,
        module: parts.module,
        inspection_note: parts.inspection_note,
        children: parts.children,
        layers: parts.layers,
        config: parts.config,
        history: parts.history,
        annotations: parts.annotations,
    };
    visitor.respond(StatusCode::OK, render(&page))
}

/// `/packages/<ns>:<name>`: a package's versions (semver order), what each is and uses, and
/// what uses it.
async fn package_get(State(app): State<Site>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    let raw = parts.uri.path().strip_prefix("/packages/").unwrap_or_default();
    let Ok(package) = crate::text::percent_decode(raw).parse::<crate::packages::PackageName>() else {
        return visitor.not_found(&app);
    };
    let repo = app.registry.package_repository(&package);
    if !visitor.sees(&app, repo.as_str()) {
        return visitor.not_found(&app);
    }
    let visible = |name: &str| visitor.sees(&app, name);
    let listing = match app.registry.package_versions(&repo, &visible).await {
        Ok(l) => l,
        Err(crate::error::Error::NameUnknown(_)) => return visitor.not_found(&app),
        Err(e) => {
            return visitor.message(&app, StatusCode::INTERNAL_SERVER_ERROR, "Error", e.to_string(), "/");
        }
    };
    let package_href = |name: &str| format!("/packages/{}", percent_encode(name, b"-._~:"));
    let versions: Vec<VersionRow> = listing
        .versions
        .iter()
        .map(|v| VersionRow {
            version: v.version.clone(),
            href: view::artifact_href(repo.as_str(), &v.tag),
            yanked: v.yanked,
            kind: match v.content.as_deref() {
                Some("wit-package") => "WIT package".to_owned(),
                Some(other) => other.to_owned(),
                None => "not inspected yet".to_owned(),
            },
            exports: v.exports.clone(),
            imports: v.imports.clone(),
            uses: v
                .dependencies
                .iter()
                .map(|d| {
                    let shown = match (&d.version, &d.provided_by) {
                        (Some(ver), Some(_)) => format!("{}@{ver} (here)", d.package),
                        (Some(ver), None) => format!("{}@{ver}", d.package),
                        _ => d.package.clone(),
                    };
                    (shown, package_href(&d.package))
                })
                .collect(),
            wasi: v.wasi_version.clone().unwrap_or_else(|| "none".into()),
            size: view::size(v.size),
            pushed: view::time(v.pushed_at.as_deref()),
        })
        .collect();
    let dependents = listing
        .dependents
        .iter()
        .map(|d| {
            let name = match (&d.package, &d.uses) {
                (Some(p), Some(u)) => format!("{p} (uses {u})"),
                (Some(p), None) => p.clone(),
                (None, _) => d.repository.clone(),
            };
            let href = match &d.package {
                Some(p) => package_href(p),
                None => view::artifact_href(&d.repository, d.digest.as_str()),
            };
            (name, href)
        })
        .collect();
    let page = PackagePage {
        page: visitor.page(&app, package.to_string()),
        package: package.to_string(),
        repository: repo.to_string(),
        repository_href: view::repository_href(repo.as_str()),
        latest: listing.versions.last().map_or_else(|| "<version>".to_owned(), |v| v.version.clone()),
        versions,
        other_tags: listing.other_tags,
        dependents,
    };
    visitor.respond(StatusCode::OK, render(&page))
}

async fn repository_post(State(app): State<Site>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    let path = parts.uri.path().strip_prefix("/repositories/").unwrap_or_default().to_owned();
    let Some(RepoPath::Delete(name)) = repo_path(&path) else { return visitor.not_found(&app) };
    let Ok(repo) = name.parse::<Repository>() else { return visitor.not_found(&app) };
    if !visitor.sees(&app, repo.as_str()) {
        return visitor.not_found(&app);
    }
    let form = match visitor.form(&app, body).await {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    if !visitor.may(&app, repo.as_str(), Action::Delete) {
        return forbidden(&app, &visitor, &repo);
    }
    let Some(target) = first(&form, "target").and_then(|t| t.parse::<TagOrDigest>().ok()) else {
        return visitor.not_found(&app);
    };
    let origin =
        crate::webhooks::Origin::request(&visitor.caller.principal.identity, visitor.caller.client, None);
    match origin.scope(app.registry.delete_manifest(&repo, &target)).await {
        Ok(()) => visitor.redirect(&view::repository_href(repo.as_str())),
        Err(e) => visitor.message(
            &app,
            e.code_and_status().1,
            "Not deleted",
            e.to_string(),
            &view::repository_href(repo.as_str()),
        ),
    }
}

impl Visitor {
    /// Whether the visitor administers the registry (or the registry is open).
    fn admin(&self, app: &Site) -> bool {
        app.access.as_ref().is_none_or(|a| a.is_admin(&self.caller.principal))
    }
}

/// `/webhooks`: each webhook's last deliveries and parked events (administrators only).
async fn webhooks_get(State(app): State<Site>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    if !visitor.admin(&app) {
        return visitor.not_found(&app);
    }
    match app.registry.webhook_status().await {
        Ok(hooks) => {
            let page = WebhooksPage { page: visitor.page(&app, "Webhooks"), hooks };
            visitor.respond(StatusCode::OK, render(&page))
        }
        Err(e) => visitor.message(&app, e.code_and_status().1, "Webhooks", e.to_string(), "/"),
    }
}

/// `POST /webhooks` (`webhook`, CSRF token): a webhook's parked events sent again.
async fn webhooks_post(State(app): State<Site>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    if !visitor.admin(&app) {
        return visitor.not_found(&app);
    }
    let form = match visitor.form(&app, body).await {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let webhook = first(&form, "webhook").unwrap_or_default().to_owned();
    match app.registry.resend_events(&webhook, None).await {
        Ok(_) => visitor.redirect("/webhooks"),
        Err(e) => visitor.message(&app, e.code_and_status().1, "Not sent", e.to_string(), "/webhooks"),
    }
}

/// Which credentials a page is about, and whether the visitor may see it: `/robots` for
/// administrators, `/tokens` for a signed-in user's own personal access tokens.
fn credentials_page(
    app: &Site,
    visitor: &Visitor,
    path: &str,
) -> Option<(Arc<AccessControl>, wharf_auth::credential::Kind)> {
    use wharf_auth::credential::Kind;
    let access = app.access.clone()?;
    access.credentials()?;
    match path {
        "/robots" if visitor.user.is_some() && access.is_admin(&visitor.caller.principal) => {
            Some((access, Kind::Robot))
        }
        "/tokens" if visitor.user.is_some() => Some((access, Kind::Personal)),
        _ => None,
    }
}

/// `/robots` and `/tokens`: the list and the form.
async fn credentials_get(State(app): State<Site>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    let Some((access, kind)) = credentials_page(&app, &visitor, parts.uri.path()) else {
        return visitor.not_found(&app);
    };
    credentials_view(&app, &visitor, &access, kind, None, None).await
}

/// The page of `kind`, with a credential just made or an error to say.
async fn credentials_view(
    app: &Site,
    visitor: &Visitor,
    access: &AccessControl,
    kind: wharf_auth::credential::Kind,
    made: Option<Made>,
    error: Option<(StatusCode, String)>,
) -> Response {
    use wharf_auth::credential::Kind;
    let Some(store) = access.credentials() else { return visitor.not_found(app) };
    let robots = kind == Kind::Robot;
    let owner = if robots { None } else { visitor.user.as_deref() };
    let listed = match store.list(kind, owner).await {
        Ok(listed) => listed,
        Err(e) => return visitor.message(app, e.code_and_status().1, "Credentials", e.to_string(), "/"),
    };
    let when =
        |secs: Option<u64>| secs.map_or_else(String::new, |s| view::time(Some(&crate::clock::rfc3339_of(s))));
    let rows = listed
        .into_iter()
        .map(|l| {
            let c = l.credential;
            let grants = c
                .grants
                .iter()
                .map(|g| {
                    let actions: Vec<&str> = g.actions.iter().map(Action::as_str).collect();
                    let patterns: Vec<String> = g.repositories.iter().map(ToString::to_string).collect();
                    format!("{} on {}", actions.join(", "), patterns.join(" "))
                })
                .collect::<Vec<_>>()
                .join("; ");
            CredentialRow {
                state: if c.disabled {
                    "disabled"
                } else if c.expired {
                    "expired"
                } else {
                    "active"
                },
                expires: if c.expires.is_some() { when(c.expires) } else { "never".into() },
                created: when(Some(c.created)),
                last_used: if l.last_used.is_some() { when(l.last_used) } else { "never".into() },
                disabled: c.disabled,
                id: c.id,
                name: c.name,
                username: c.username,
                grants,
            }
        })
        .collect();
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let page = CredentialsPage {
        page: visitor.page(app, if robots { "Robot accounts" } else { "Your access tokens" }),
        intro: if robots {
            "Robots are identities of their own for pipelines: each may do its grants' actions within what its maker may, until it expires or is disabled."
        } else {
            "A personal access token signs in with your user name and does no more than its grants and you: give it to a script or a CI job instead of your password."
        },
        robots,
        action: if robots { "/robots" } else { "/tokens" },
        rows,
        made,
        error,
        default_expiry: if robots { "90d" } else { "30d" },
    };
    visitor.respond(status, render(&page))
}

/// `POST /robots` and `/tokens` (`op` = `create`, `disable`, `enable`, `delete`; CSRF token).
async fn credentials_post(State(app): State<Site>, request: Request) -> Response {
    use wharf_auth::credential::Kind;
    let (parts, body) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    let Some((access, kind)) = credentials_page(&app, &visitor, parts.uri.path()) else {
        return visitor.not_found(&app);
    };
    let form = match visitor.form(&app, body).await {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let Some(store) = access.credentials() else { return visitor.not_found(&app) };
    let action = if kind == Kind::Robot { "/robots" } else { "/tokens" };
    let failed = |e: crate::error::Error| Some((e.code_and_status().1, e.to_string()));
    let op = first(&form, "op").unwrap_or_default();
    if op == "create" {
        let mut actions = Vec::new();
        for (key, value) in &form {
            if key == "action" {
                match Action::parse(value) {
                    Some(a) => actions.push(a),
                    None => {
                        return credentials_view(
                            &app,
                            &visitor,
                            &access,
                            kind,
                            None,
                            failed(crate::error::Error::BadRequest(format!(
                                "no action `{}`",
                                crate::text::printable(value, 20)
                            ))),
                        )
                        .await;
                    }
                }
            }
        }
        let expires = first(&form, "expires").map(str::trim).filter(|e| !e.is_empty());
        let asked = crate::auth::credentials::Create {
            name: first(&form, "name").unwrap_or_default().trim().to_owned(),
            grants: vec![crate::auth::credentials::GrantRequest {
                repositories: first(&form, "repositories")
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                actions,
            }],
            expires_in: expires.map(str::to_owned),
        };
        return match store.make(access.authenticator(), &visitor.caller.principal, kind, asked).await {
            Ok((credential, secret)) => {
                let made = Made {
                    username: credential.identity().name().to_owned(),
                    name: credential.name.clone(),
                    secret: secret.expose().to_owned(),
                };
                credentials_view(&app, &visitor, &access, kind, Some(made), None).await
            }
            Err(e) => credentials_view(&app, &visitor, &access, kind, None, failed(e)).await,
        };
    }
    let id = first(&form, "id").unwrap_or_default();
    let owner = visitor.user.as_deref();
    let found = match store.get(id).await {
        Ok(found) => found.filter(|c| c.kind == kind && (kind == Kind::Robot || c.owner.as_deref() == owner)),
        Err(e) => return credentials_view(&app, &visitor, &access, kind, None, failed(e)).await,
    };
    let Some(credential) = found else {
        let gone = crate::error::Error::RouteUnknown(format!(
            "no credential `{}` here",
            crate::text::printable(id, 64)
        ));
        return credentials_view(&app, &visitor, &access, kind, None, failed(gone)).await;
    };
    let done = match op {
        "delete" => store.remove(&credential).await,
        "disable" | "enable" if kind == Kind::Robot => {
            store.set_disabled(&credential, op == "disable").await.map(|_| ())
        }
        _ => {
            Err(crate::error::Error::BadRequest(format!("no operation `{}`", crate::text::printable(op, 20))))
        }
    };
    match done {
        Ok(()) => visitor.redirect(action),
        Err(e) => credentials_view(&app, &visitor, &access, kind, None, failed(e)).await,
    }
}

/// Only a path of this site: a login never sends a visitor elsewhere. Checked as browsers
/// parse a `Location`: they drop tabs and newlines anywhere and read `\` as `/`, so
/// `/\t/evil.example` is `//evil.example`; any control character, space or backslash, and
/// any `//` start, is refused.
fn local(next: Option<&str>) -> String {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    })
    .unwrap_or("/")
    .to_owned()
}

async fn login_form(State(app): State<Site>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    if app.access.is_none() {
        return visitor.message(
            &app,
            StatusCode::OK,
            "Log in",
            "This registry has no users: everyone may see and do everything.".into(),
            "/",
        );
    }
    let query = query_pairs(parts.uri.query());
    let page = LoginPage {
        page: visitor.page(&app, "Log in"),
        error: None,
        username: String::new(),
        next: local(first(&query, "next")),
    };
    visitor.respond(StatusCode::OK, render(&page))
}

async fn login(State(app): State<Site>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    let Some(access) = app.access.clone() else { return visitor.redirect("/") };
    let form = match visitor.form(&app, body).await {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let username = first(&form, "username").unwrap_or_default().to_owned();
    let password = first(&form, "password").unwrap_or_default();
    let next = local(first(&form, "next"));
    match access.login(&username, password, visitor.caller.client).await {
        Ok(principal) => {
            // A new session for the user (an earlier one's id may have been seen).
            if let Some(id) = &visitor.session_id {
                app.sessions.end(id);
            }
            let (id, _) = app.sessions.start(principal.identity.name());
            let mut response = StatusCode::SEE_OTHER.into_response();
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, crate::text::header_value(&next));
            headers.insert(header::SET_COOKIE, cookie_value(session::COOKIE, Some(&id), visitor.secure));
            secure_headers(headers);
            response
        }
        Err(denied) => {
            let status = match denied {
                wharf_auth::Denied::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let page = LoginPage {
                page: visitor.page(&app, "Log in"),
                error: Some(denied.to_string()),
                username,
                next,
            };
            visitor.respond(status, render(&page))
        }
    }
}

async fn logout(State(app): State<Site>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let visitor = Visitor::of(&app, &parts);
    if let Err(refused) = visitor.form(&app, body).await {
        return *refused;
    }
    if let Some(id) = &visitor.session_id {
        app.sessions.end(id);
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    headers.insert(header::SET_COOKIE, cookie_value(session::COOKIE, None, visitor.secure));
    secure_headers(headers);
    response
}

async fn static_file(request: Request) -> Response {
    let (body, content_type) = match request.uri().path() {
        "/static/wharf.css" => (include_str!("../../static/wharf.css"), "text/css; charset=utf-8"),
        "/static/wharf.js" => (include_str!("../../static/wharf.js"), "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    secure_headers(headers);
    response
}

#[cfg(any(test, feature = "fuzzing"))]
/// The web page's parsers on any text (the `request` fuzz target): nothing panics, a
/// repository path names a valid repository or none, a login's `next` is always a local path,
/// a session cookie is 64 hex digits.
pub(crate) fn check_parsers(text: &str) {
    if let Some(RepoPath::Repository(n) | RepoPath::Artifact(n, _) | RepoPath::Delete(n)) = repo_path(text)
        && let Ok(repo) = n.parse::<Repository>()
    {
        assert_eq!(repo.as_str(), n);
    }
    let next = local(Some(text));
    assert!(next == "/" || (next == text && next.starts_with('/') && !next.starts_with("//")), "{next:?}");
    if let Ok(value) = HeaderValue::from_str(text) {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, value);
        if let Some(id) = session::cookie(&headers) {
            assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
        }
    }
    let encoded = percent_encode(text, UNRESERVED);
    assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)), "{encoded:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_redirects() {
        assert!(matches!(repo_path("a/b"), Some(RepoPath::Repository(n)) if n == "a/b"));
        assert!(
            matches!(repo_path("a/b/-/artifacts/v1"), Some(RepoPath::Artifact(n, r)) if n == "a/b" && r == "v1")
        );
        assert!(matches!(repo_path("a/-/delete"), Some(RepoPath::Delete(n)) if n == "a"));
        assert!(repo_path("a/-/other").is_none());
        assert_eq!(local(Some("/repositories/x")), "/repositories/x");
        for hostile in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            " //evil.example",
            "/\u{0}/evil.example",
            "/\u{a0}/evil.example",
        ] {
            assert_eq!(local(Some(hostile)), "/", "{hostile}");
        }
    }
}
