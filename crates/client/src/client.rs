//! The client: a validating builder, the auth dance, and the distribution operations.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LINK, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use wharf_types::{Digest, ErrorResponse, Manifest, MediaType, Reference, Registry, Tag, TagOrDigest};

use crate::auth::{Challenge, Credentials, DockerConfig, parse_challenge};
use crate::error::{Error, Result};

/// Blobs larger than this are pushed in chunks (resumable) rather than in one request.
const CHUNKED_ABOVE: usize = 64 * 1024 * 1024;
/// The chunk size of such pushes.
const CHUNK_SIZE: usize = 16 * 1024 * 1024;

/// Every manifest type the client accepts, for `Accept`.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Builds a [`Client`], validating the settings in [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    insecure: Vec<String>,
    loopback_http: bool,
    credentials: HashMap<String, Credentials>,
    timeout: Duration,
    user_agent: String,
    retries: u32,
    backoff: Duration,
    docker: Option<DockerConfig>,
    progress: Option<Progress>,
    concurrency: usize,
    tls: TlsSettings,
    public_only: bool,
    stall: Option<Duration>,
}

/// Extra trust and client certificates.
#[derive(Clone, Default)]
struct TlsSettings {
    /// PEM CA certificates trusted besides the system's.
    roots: Vec<Vec<u8>>,
    /// A client certificate chain and key (PEM), for every host.
    identity: Option<Vec<u8>>,
    /// Per-host directories in the containers `certs.d` layout.
    cert_dirs: Vec<(String, std::path::PathBuf)>,
    /// Roots of `certs.d` trees (`<root>/<host[:port]>/`).
    certs_d: Vec<std::path::PathBuf>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material stays out of Debug.
        f.debug_struct("TlsSettings")
            .field("roots", &self.roots.len())
            .field("identity", &self.identity.is_some())
            .field("cert_dirs", &self.cert_dirs)
            .field("certs_d", &self.certs_d)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            loopback_http: true,
            credentials: HashMap::new(),
            timeout: Duration::from_secs(300),
            user_agent: format!("wharf-client/{}", env!("CARGO_PKG_VERSION")),
            retries: 3,
            backoff: Duration::from_millis(200),
            docker: None,
            progress: None,
            concurrency: 4,
            tls: TlsSettings::default(),
            public_only: false,
            stall: None,
        }
    }
}

impl ClientBuilder {
    /// A builder with the defaults: HTTPS everywhere but on loopback (`localhost`,
    /// `127.0.0.0/8`, `[::1]`: plain HTTP, as docker and containers/image treat them),
    /// anonymous, 5-minute timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects only to public addresses ([`is_public`](crate::is_public)): names are
    /// resolved at each connection and their non-public addresses dropped (a name with no
    /// other is refused, so it cannot be rebound inside the network after a check); address
    /// literals — in a reference, a token realm, a redirect — are refused before anything is
    /// sent ([`Error::NotPublic`]). For a server that fetches from URLs it is given (a
    /// mirror's upstream, a webhook target), so it cannot be made a proxy into its network.
    #[must_use]
    pub fn with_public_addresses_only(mut self, on: bool) -> Self {
        self.public_only = on;
        self
    }

    /// Talks plain HTTP to `host[:port]` (the analogue of `--insecure`).
    #[must_use]
    pub fn with_insecure_host(mut self, host: impl Into<String>) -> Self {
        self.insecure.push(host.into());
        self
    }

    /// Whether loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) are plain HTTP
    /// (the default); with `false` they are HTTPS unless named by
    /// [`with_insecure_host`](Self::with_insecure_host).
    #[must_use]
    pub fn with_loopback_plain_http(mut self, on: bool) -> Self {
        self.loopback_http = on;
        self
    }

    /// Uses `credentials` for `host[:port]`.
    #[must_use]
    pub fn with_credentials(mut self, host: impl Into<String>, credentials: Credentials) -> Self {
        self.credentials.insert(host.into(), credentials);
        self
    }

    /// The timeout of each request (a whole blob transfer is one request).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a response may send nothing — before its head, or in the middle of its body —
    /// before the request fails as timed out (default: only [`with_timeout`](Self::with_timeout)
    /// bounds it). A peer that stalls is given up on in `stall`, not in the whole timeout;
    /// a body that keeps trickling is still bounded by the timeout.
    #[must_use]
    pub fn with_stall_timeout(mut self, stall: Duration) -> Self {
        self.stall = Some(stall);
        self
    }

    /// The `User-Agent`.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Falls back to a docker `config.json` (see [`DockerConfig::load`]) for hosts without
    /// explicit credentials.
    #[must_use]
    pub fn with_docker_config(mut self, config: DockerConfig) -> Self {
        self.docker = Some(config);
        self
    }

    /// How many blobs (layers) a copy or an export transfers at once (default 4).
    #[must_use]
    pub fn with_concurrency(mut self, blobs: usize) -> Self {
        self.concurrency = blobs;
        self
    }

    /// Calls `progress` as blobs transfer (digest, bytes done, total when known).
    #[must_use]
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// How many times a retryable failure is retried (default 3), and the first backoff
    /// (default 200 ms, doubling up to 30 s).
    #[must_use]
    pub fn with_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Trusts the CA certificates of `pem` (one or more `CERTIFICATE` blocks) besides the
    /// system's, for every host.
    #[must_use]
    pub fn with_ca_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.roots.push(pem.into());
        self
    }

    /// Presents a client certificate (mutual TLS) to every host: `pem` holds the
    /// certificate chain and its private key.
    #[must_use]
    pub fn with_client_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.identity = Some(pem.into());
        self
    }

    /// Reads `dir` as the containers tools' `--cert-dir` for `host[:port]`: every `*.crt`
    /// is a trusted CA, a `*.cert` with the `*.key` of the same name is the client
    /// certificate presented to that host.
    #[must_use]
    pub fn with_cert_dir(mut self, host: impl Into<String>, dir: impl Into<std::path::PathBuf>) -> Self {
        self.tls.cert_dirs.push((host.into(), dir.into()));
        self
    }

    /// Reads a `certs.d` tree (`/etc/containers/certs.d`, `/etc/docker/certs.d`): each
    /// `<root>/<host[:port]>/` directory is a [`with_cert_dir`](Self::with_cert_dir) for
    /// that host. A root that does not exist is skipped.
    #[must_use]
    pub fn with_certs_d(mut self, root: impl Into<std::path::PathBuf>) -> Self {
        self.tls.certs_d.push(root.into());
        self
    }

    /// The HTTP clients: the shared one, and one per host that has a client certificate of
    /// its own.
    fn http_clients(&self) -> Result<(reqwest::Client, HashMap<String, reqwest::Client>)> {
        let config = |m: String| Error::Config(m);
        let mut dirs = self.tls.cert_dirs.clone();
        for root in &self.tls.certs_d {
            let Ok(entries) = std::fs::read_dir(root) else { continue };
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    dirs.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
                }
            }
        }
        let mut roots = Vec::new();
        for pem in &self.tls.roots {
            roots.extend(
                reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| config(format!("CA certificates: {e}")))?,
            );
        }
        let mut identities = Vec::new();
        for (host, dir) in &dirs {
            let entries =
                std::fs::read_dir(dir).map_err(|e| config(format!("cert dir {}: {e}", dir.display())))?;
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for path in files {
                let read = || std::fs::read(&path).map_err(|e| config(format!("{}: {e}", path.display())));
                match path.extension().and_then(|e| e.to_str()) {
                    Some("crt") => roots.extend(
                        reqwest::Certificate::from_pem_bundle(&read()?)
                            .map_err(|e| config(format!("{}: {e}", path.display())))?,
                    ),
                    Some("cert") => {
                        let key = path.with_extension("key");
                        let mut pem = read()?;
                        pem.extend(std::fs::read(&key).map_err(|e| {
                            config(format!("{} has no key {}: {e}", path.display(), key.display()))
                        })?);
                        identities.push((host.clone(), pem));
                    }
                    _ => {}
                }
            }
        }
        let make = |identity: Option<&[u8]>| -> Result<reqwest::Client> {
            let mut builder = reqwest::Client::builder().user_agent(&self.user_agent).timeout(self.timeout);
            if let Some(stall) = self.stall {
                builder = builder.read_timeout(stall);
            }
            if self.public_only {
                builder = builder
                    .dns_resolver(std::sync::Arc::new(crate::reach::PublicResolver))
                    .redirect(crate::reach::redirects());
            }
            if !roots.is_empty() {
                builder = builder.tls_certs_merge(roots.clone());
            }
            if let Some(pem) = identity {
                builder = builder.identity(
                    identity_from_pem(pem).map_err(|e| config(format!("client certificate: {e}")))?,
                );
            }
            builder.build().map_err(|e| config(format!("HTTP client: {e}")))
        };
        let shared = make(self.tls.identity.as_deref())?;
        let mut per_host = HashMap::new();
        for (host, pem) in identities {
            per_host.insert(host, make(Some(&pem))?);
        }
        Ok((shared, per_host))
    }

    /// The client; an error for settings that cannot work (an empty host, a zero timeout,
    /// certificates that do not read).
    pub fn build(self) -> Result<Client> {
        if self.timeout.is_zero() || self.stall.is_some_and(|s| s.is_zero()) {
            return Err(Error::Config("a timeout must not be zero".into()));
        }
        if self.concurrency == 0 {
            return Err(Error::Config("the concurrency must be at least 1".into()));
        }
        if let Some(bad) =
            self.insecure.iter().chain(self.credentials.keys()).find(|h| h.is_empty() || h.contains('/'))
        {
            return Err(Error::Config(format!("`{bad}` is not a host[:port]")));
        }
        #[cfg(all(feature = "rustls-ring", not(feature = "rustls-aws-lc")))]
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Lost only to a concurrent installer, whose provider serves as well.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let (http, per_host) = self.http_clients()?;
        Ok(Client {
            inner: std::sync::Arc::new(Inner {
                http,
                per_host,
                insecure: self.insecure.into_iter().collect(),
                loopback_http: self.loopback_http,
                credentials: self.credentials,
                tokens: Mutex::new(HashMap::new()),
                basic_hosts: Mutex::new(HashSet::new()),
                retries: self.retries,
                backoff: self.backoff,
                docker: self.docker,
                looked_up: Mutex::new(HashMap::new()),
                progress: self.progress,
                concurrency: self.concurrency,
                public_only: self.public_only,
            }),
        })
    }
}

/// An OCI distribution client. Cloning it is cheap: clones share the connection pool, the
/// settings and the cached tokens.
#[derive(Debug, Clone)]
pub struct Client {
    inner: std::sync::Arc<Inner>,
}

/// What every clone of a [`Client`] shares.
#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// Clients of hosts with a client certificate of their own.
    per_host: HashMap<String, reqwest::Client>,
    insecure: HashSet<String>,
    loopback_http: bool,
    credentials: HashMap<String, Credentials>,
    /// Bearer tokens by (host, scope).
    tokens: Mutex<HashMap<(String, String), crate::auth::Secret>>,
    /// Hosts that asked for Basic auth: it is sent up front from then on.
    basic_hosts: Mutex<HashSet<String>>,
    retries: u32,
    backoff: Duration,
    docker: Option<DockerConfig>,
    /// Credentials found in the docker config, by host.
    looked_up: Mutex<HashMap<String, Credentials>>,
    progress: Option<Progress>,
    concurrency: usize,
    /// Only public addresses ([`ClientBuilder::with_public_addresses_only`]).
    public_only: bool,
}

/// A progress hook: called with a blob's digest, the bytes done, and the total when known.
#[derive(Clone)]
pub struct Progress(std::sync::Arc<ProgressFn>);

/// The function inside a [`Progress`].
type ProgressFn = dyn Fn(&Digest, u64, Option<u64>) + Send + Sync;

impl Progress {
    /// A hook calling `f`.
    pub fn new(f: impl Fn(&Digest, u64, Option<u64>) + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }
}

#[cfg(feature = "progress")]
impl Progress {
    /// Progress bars on stderr (indicatif; feature `progress`): one per blob larger than
    /// 1 MiB, with bytes, total and rate. Draws nothing when stderr is not a terminal.
    pub fn bars() -> Self {
        use indicatif::{ProgressBar, ProgressStyle};
        let bar: Mutex<Option<(String, ProgressBar)>> = Mutex::new(None);
        Self::new(move |digest, done, total| {
            let Some(total) = total.filter(|t| *t > 1024 * 1024) else { return };
            let mut current = bar.lock().expect("lock");
            if current.as_ref().is_none_or(|(d, _)| d != digest.as_str()) {
                let b = ProgressBar::new(total);
                b.set_style(
                    ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
                        .expect("template"),
                );
                b.set_message(digest.encoded()[..12].to_owned());
                *current = Some((digest.to_string(), b));
            }
            if let Some((_, b)) = current.as_ref() {
                b.set_position(done);
                if done >= total {
                    b.finish();
                }
            }
        })
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// A token endpoint's answer (`token`, or OAuth2's `access_token`).
#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

/// What requests are sent to: the API host of a [`Reference`] or a [`Registry`].
pub(crate) trait Host {
    fn api_host(&self) -> &str;
}

impl Host for Reference {
    fn api_host(&self) -> &str {
        Reference::api_host(self)
    }
}

impl Host for Registry {
    fn api_host(&self) -> &str {
        Registry::api_host(self)
    }
}

fn scope(reference: &Reference, push: bool) -> String {
    format!("repository:{}:{}", reference.repository(), if push { "pull,push" } else { "pull" })
}

impl Client {
    /// A client with the default settings.
    pub fn new() -> Result<Self> {
        ClientBuilder::new().build()
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// For a public-only client, refuses a URL whose host is a non-public address literal.
    fn check_reach(&self, url: &reqwest::Url) -> Result<()> {
        if self.inner.public_only { crate::reach::check_url(url) } else { Ok(()) }
    }

    /// The client that sends to `url`'s host (its own when it has a client certificate).
    fn http_for(&self, url: &reqwest::Url) -> &reqwest::Client {
        if self.inner.per_host.is_empty() {
            return &self.inner.http;
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return &self.inner.http,
        };
        self.inner.per_host.get(&host).unwrap_or(&self.inner.http)
    }

    /// `http(s)://<api host>` of a reference's or a registry's host.
    pub(crate) fn base_url(&self, target: &impl Host) -> String {
        let host = target.api_host();
        let plain = self.inner.insecure.contains(host) || (self.inner.loopback_http && is_loopback(host));
        let scheme = if plain { "http" } else { "https" };
        format!("{scheme}://{host}")
    }

    fn repo_url(&self, reference: &Reference, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base_url(reference), reference.repository())
    }

    /// Sends a request made by `make` (called again for a retry), answering a 401 challenge
    /// once: Basic with the host's credentials, or a bearer token for `scope` from the
    /// challenge's realm (cached per host and scope).
    pub(crate) async fn send(
        &self,
        target: &impl Host,
        scope: &str,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        let host = target.api_host().to_owned();
        let credentials = self.credentials_for(&host)?;
        let cached = self.inner.tokens.lock().expect("lock").get(&(host.clone(), scope.to_owned())).cloned();
        let preset = match (&cached, &credentials) {
            (Some(token), _) => Some(format!("Bearer {}", token.expose())),
            (None, Credentials::Basic { username, password })
                if self.inner.basic_hosts.lock().expect("lock").contains(&host) =>
            {
                Some(basic_header(username, password))
            }
            _ => None,
        };
        let response = self.execute(&make, preset.as_deref()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge =
            response.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(parse_challenge);
        let header = match challenge {
            Some(Challenge::Basic) => match &credentials {
                Credentials::Basic { username, password } => {
                    self.inner.basic_hosts.lock().expect("lock").insert(host.clone());
                    basic_header(username, password)
                }
                _ => return Err(Error::Unauthorized { host, detail: "Basic credentials required".into() }),
            },
            Some(Challenge::Bearer { realm, service, scope: challenged }) => {
                let wanted = challenged.unwrap_or_else(|| scope.to_owned());
                let token =
                    self.fetch_token(&host, &realm, service.as_deref(), &wanted, &credentials).await?;
                self.inner
                    .tokens
                    .lock()
                    .expect("lock")
                    .insert((host.clone(), scope.to_owned()), token.clone());
                format!("Bearer {}", token.expose())
            }
            None => {
                return Err(Error::Unauthorized {
                    host,
                    detail: "no usable WWW-Authenticate challenge".into(),
                });
            }
        };
        self.execute(&make, Some(&header)).await
    }

    /// The host's explicit credentials, else what the docker config holds for it.
    fn credentials_for(&self, host: &str) -> Result<Credentials> {
        if let Some(c) = self.inner.credentials.get(host) {
            return Ok(c.clone());
        }
        let Some(docker) = &self.inner.docker else { return Ok(Credentials::Anonymous) };
        if let Some(c) = self.inner.looked_up.lock().expect("lock").get(host) {
            return Ok(c.clone());
        }
        let found = docker.credentials_for(host)?.unwrap_or_default();
        self.inner.looked_up.lock().expect("lock").insert(host.to_owned(), found.clone());
        Ok(found)
    }

    /// Sends a request, retrying what is safe to retry: any request answered 429 (it was not
    /// processed), and idempotent ones (GET, HEAD, PUT, DELETE) after a connection failure or
    /// a 502/503/504; waiting `Retry-After` when given, else an exponential backoff.
    async fn execute(&self, make: &impl Fn() -> RequestBuilder, auth: Option<&str>) -> Result<Response> {
        let mut builder = make();
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth);
        }
        let mut request = builder.build()?;
        self.check_reach(request.url())?;
        let idempotent =
            matches!(*request.method(), Method::GET | Method::HEAD | Method::PUT | Method::DELETE);
        let mut attempt = 0u32;
        loop {
            // A streamed body cannot be sent twice: such a request is never retried.
            let again = request.try_clone();
            let result = self.http_for(request.url()).execute(request).await;
            let delay = match &result {
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
                    Some(retry_after(r).unwrap_or(self.backoff(attempt)))
                }
                Ok(r) if idempotent && matches!(r.status().as_u16(), 502..=504) => {
                    Some(retry_after(r).unwrap_or(self.backoff(attempt)))
                }
                Err(e) if idempotent && (e.is_connect() || e.is_timeout() || e.is_request()) => {
                    Some(self.backoff(attempt))
                }
                _ => None,
            };
            match (delay, again) {
                (Some(delay), Some(next)) if attempt < self.inner.retries => {
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                    request = next;
                }
                _ => return Ok(result?),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.inner.backoff.saturating_mul(2u32.saturating_pow(attempt)).min(Duration::from_secs(30))
    }

    async fn fetch_token(
        &self,
        host: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: &Credentials,
    ) -> Result<crate::auth::Secret> {
        let mut url = Url::parse(realm).map_err(|e| Error::Unauthorized {
            host: host.into(),
            detail: format!("realm `{realm}`: {e}"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = service {
                q.append_pair("service", service);
            }
            // Several scopes (a mount needs pull on its source too) go as several parameters.
            for one in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", one);
            }
        }
        let request = match credentials {
            // OAuth2: the refresh token is exchanged by POST (docker's identity tokens).
            Credentials::IdentityToken(refresh) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose()),
                    ("client_id", "wharf"),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
                let joined = scopes.join(" ");
                if !joined.is_empty() {
                    form.push(("scope", &joined));
                }
                let body =
                    form.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect::<Vec<_>>().join("&");
                let mut post_url = url.clone();
                post_url.set_query(None);
                self.inner
                    .http
                    .post(post_url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            Credentials::Basic { username, password } => {
                self.inner.http.get(url).basic_auth(username, Some(password.expose()))
            }
            _ => self.inner.http.get(url),
        };
        let request = request.build()?;
        self.check_reach(request.url())?;
        let response = self.http_for(request.url()).execute(request).await?;
        if !response.status().is_success() {
            return Err(Error::Unauthorized {
                host: host.into(),
                detail: format!("token endpoint answered {}", response.status()),
            });
        }
        let body: TokenResponse = response.json().await?;
        body.token.or(body.access_token).map(crate::auth::Secret::new).ok_or_else(|| Error::Unauthorized {
            host: host.into(),
            detail: "the token endpoint returned no token".into(),
        })
    }

    /// Checks that the registry speaks the API (`GET /v2/`, authenticating if asked).
    pub async fn ping(&self, registry: &Registry) -> Result<()> {
        let url = format!("{}/v2/", self.base_url(registry));
        let response = self.send(registry, "", || self.inner.http.get(&url)).await?;
        expect(response, &[StatusCode::OK]).await.map(drop)
    }

    /// Resolves the reference to a digest and media type: a `HEAD` accepting every OCI and
    /// Docker manifest type, or a verified `GET` when the registry sends no digest header.
    pub async fn resolve(&self, reference: &Reference) -> Result<(Digest, MediaType)> {
        let url = self.repo_url(reference, &format!("manifests/{}", reference.target()));
        let response = self
            .send(reference, &scope(reference, false), || {
                self.inner.http.head(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        let response = expect(response, &[StatusCode::OK]).await?;
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let digest = header("Docker-Content-Digest").and_then(|d| d.parse::<Digest>().ok());
        let media_type = header("Content-Type").and_then(|m| m.parse::<MediaType>().ok());
        match (digest, media_type, reference.target()) {
            // A digest reference resolves to itself; a registry's header must agree.
            (Some(d), Some(mt), TagOrDigest::Digest(wanted)) if d == wanted => Ok((d, mt)),
            (Some(d), Some(mt), TagOrDigest::Tag(_)) => Ok((d, mt)),
            _ => {
                let manifest = self.pull_manifest(reference).await?;
                Ok((manifest.digest().clone(), manifest.media_type().clone()))
            }
        }
    }

    /// Pulls a manifest: exact bytes, digest verified (against the reference's digest, or the
    /// registry's `Docker-Content-Digest`).
    pub async fn pull_manifest(&self, reference: &Reference) -> Result<Manifest> {
        let url = self.repo_url(reference, &format!("manifests/{}", reference.target()));
        let response = self
            .send(reference, &scope(reference, false), || {
                self.inner.http.get(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        let response = expect(response, &[StatusCode::OK]).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<MediaType>().ok());
        let announced = response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let bytes = read_limited(response, wharf_types::MAX_MANIFEST_SIZE, "manifest").await?;
        let manifest = match (reference.target(), announced) {
            (TagOrDigest::Digest(d), _) | (TagOrDigest::Tag(_), Some(d)) => {
                Manifest::from_bytes_verified(bytes, content_type.as_ref(), &d)
            }
            (TagOrDigest::Tag(_), None) => Manifest::from_bytes(bytes, content_type.as_ref()),
        };
        manifest.map_err(|e| match e {
            wharf_types::Error::DigestMismatch { expected, actual } => {
                Error::DigestMismatch { expected, actual }
            }
            other => Error::Types(other),
        })
    }

    /// Whether the blob is in the repository.
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        let url = self.repo_url(reference, &format!("blobs/{digest}"));
        let response = self.send(reference, &scope(reference, false), || self.inner.http.head(&url)).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => expect(response, &[]).await.map(|_| false),
        }
    }

    /// Streams a blob into `out`, hashing as it goes; fails (after writing) when the bytes do
    /// not match `digest`. Returns the byte count.
    pub async fn pull_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64> {
        let mut response = self.get_blob_response(reference, digest, 0).await?;
        let total = response.content_length();
        let mut digester = digest.digester();
        let mut resumed = 0u32;
        loop {
            // Bytes a registry that ignored our `Range` sends again, to skip.
            let mut skip = if response.status() == StatusCode::OK { digester.len() } else { 0 };
            let mut stream = response.bytes_stream();
            let mut dropped = None;
            while let Some(chunk) = stream.next().await {
                let mut chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        dropped = Some(e);
                        break;
                    }
                };
                if skip > 0 {
                    let n = usize::try_from(skip.min(chunk.len() as u64)).unwrap_or(chunk.len());
                    chunk = chunk.slice(n..);
                    skip -= n as u64;
                }
                digester.update(&chunk);
                out.write_all(&chunk).await.map_err(Error::Io)?;
                self.report(digest, digester.len(), total);
            }
            match dropped {
                None => break,
                // The connection dropped mid-blob: ask for the rest with `Range`.
                Some(_) if resumed < self.inner.retries => {
                    resumed += 1;
                    response = self.get_blob_response(reference, digest, digester.len()).await?;
                }
                Some(e) => return Err(e.into()),
            }
        }
        out.flush().await.map_err(Error::Io)?;
        let len = digester.len();
        digester.verify(digest).map_err(|e| match e {
            wharf_types::Error::DigestMismatch { expected, actual } => {
                Error::DigestMismatch { expected, actual }
            }
            other => Error::Types(other),
        })?;
        Ok(len)
    }

    /// Opens a blob for reading: its size when the registry says it (`Content-Length`), and
    /// its bytes as they arrive — **not verified**: the caller hashes them ([`pull_blob`]
    /// does; a mirror writes them through a digest-verifying store). A stall or a dropped
    /// connection ends the stream with an error; nothing is retried midway.
    ///
    /// [`pull_blob`]: Self::pull_blob
    pub async fn open_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<(Option<u64>, BoxStream<'static, Result<Bytes>>)> {
        let response = self.get_blob_response(reference, digest, 0).await?;
        let size = response.content_length();
        Ok((size, response.bytes_stream().map_err(Error::from).boxed()))
    }

    pub(crate) fn report(&self, digest: &Digest, done: u64, total: Option<u64>) {
        if let Some(progress) = &self.inner.progress {
            (progress.0)(digest, done, total);
        }
    }

    /// The `GET` of a blob from byte `from` on (redirects followed): 200, or 206 for a range.
    pub(crate) async fn get_blob_response(
        &self,
        reference: &Reference,
        digest: &Digest,
        from: u64,
    ) -> Result<Response> {
        let url = self.repo_url(reference, &format!("blobs/{digest}"));
        let response = self
            .send(reference, &scope(reference, false), || {
                let request = self.inner.http.get(&url);
                if from > 0 {
                    request.header(reqwest::header::RANGE, format!("bytes={from}-"))
                } else {
                    request
                }
            })
            .await?;
        expect(response, &[StatusCode::OK, StatusCode::PARTIAL_CONTENT]).await
    }

    /// Pushes a blob held in memory (skipped when the registry has it): one `POST ?digest=`,
    /// or POST then PUT when the registry answers 202; above 64 MiB, resumable 16 MiB chunks
    /// ([`push_blob_chunked`](Self::push_blob_chunked)).
    pub async fn push_blob(&self, reference: &Reference, data: impl Into<Bytes>) -> Result<Digest> {
        let data: Bytes = data.into();
        if data.len() > CHUNKED_ABOVE {
            return self.push_blob_chunked(reference, data, CHUNK_SIZE).await;
        }
        let digest = Digest::sha256(&data);
        if self.blob_exists(reference, &digest).await? {
            return Ok(digest);
        }
        let scope = scope(reference, true);
        let url = self.repo_url(reference, &format!("blobs/uploads/?digest={digest}"));
        let response = self
            .send(reference, &scope, || {
                self.inner.http.post(&url).header(CONTENT_TYPE, "application/octet-stream").body(data.clone())
            })
            .await?;
        if response.status() == StatusCode::CREATED {
            self.report(&digest, data.len() as u64, Some(data.len() as u64));
            return Ok(digest);
        }
        let response = expect(response, &[StatusCode::ACCEPTED]).await?;
        let location = location(&response)?;
        let put = with_digest(&location, &digest);
        let response = self
            .send(reference, &scope, || {
                self.inner
                    .http
                    .put(put.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(data.clone())
            })
            .await?;
        expect(response, &[StatusCode::CREATED]).await?;
        self.report(&digest, data.len() as u64, Some(data.len() as u64));
        Ok(digest)
    }

    /// Mounts a blob from another repository of the same registry; `false` when the registry
    /// answered 202 (no mount; the session it opened is cancelled), so the caller uploads.
    pub async fn mount_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        from: &wharf_types::Repository,
    ) -> Result<bool> {
        let url = self.repo_url(reference, &format!("blobs/uploads/?mount={digest}&from={from}"));
        let mount_scope = format!("{} repository:{from}:pull", scope(reference, true));
        let response = self.send(reference, &mount_scope, || self.inner.http.post(&url)).await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Ok(session) = location(&response) {
                    let _ = self
                        .send(reference, &scope(reference, true), || self.inner.http.delete(session.clone()))
                        .await;
                }
                Ok(false)
            }
            _ => expect(response, &[]).await.map(|_| false),
        }
    }

    /// Pushes a manifest to the reference's tag (or digest); returns its digest.
    pub async fn push_manifest(&self, reference: &Reference, manifest: &Manifest) -> Result<Digest> {
        self.push_manifest_with_headers(reference, manifest).await.map(|(d, _)| d)
    }

    /// Pushes an image in one call: its config blob and each layer (a blob the registry
    /// already has is not sent again), then an OCI image manifest naming them with their
    /// digests and sizes. Returns the manifest's digest.
    ///
    /// ```no_run
    /// use wharf_types::{MediaType, Reference};
    ///
    /// # async fn f(client: &wharf_client::Client, layer: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    /// let reference: Reference = "localhost:5000/app:v1".parse()?;
    /// let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    /// let digest = client
    ///     .push_image(&reference, (MediaType::OCI_CONFIG, &config[..]), [(MediaType::OCI_LAYER_TAR_GZIP, layer)])
    ///     .await?;
    /// # let _ = digest; Ok(()) }
    /// ```
    pub async fn push_image<B: Into<Bytes>>(
        &self,
        reference: &Reference,
        config: (MediaType, impl Into<Bytes>),
        layers: impl IntoIterator<Item = (MediaType, B)>,
    ) -> Result<Digest> {
        let (config_type, config) = (config.0, config.1.into());
        let config_size = config.len() as u64;
        let config =
            wharf_types::Descriptor::new(config_type, self.push_blob(reference, config).await?, config_size);
        let mut descriptors = Vec::new();
        for (media_type, layer) in layers {
            let layer: Bytes = layer.into();
            let size = layer.len() as u64;
            descriptors.push(wharf_types::Descriptor::new(
                media_type,
                self.push_blob(reference, layer).await?,
                size,
            ));
        }
        let image = wharf_types::ImageManifest::new(config, descriptors);
        self.push_manifest(reference, &Manifest::from_image(&image)?).await
    }

    /// Pushes a manifest once under several tags: by digest with `?tag=` for each (one
    /// request) when the registry confirms them with `OCI-Tag`, else one push per tag.
    pub async fn push_manifest_tags(
        &self,
        reference: &Reference,
        manifest: &Manifest,
        tags: &[Tag],
    ) -> Result<Digest> {
        let by_digest = reference.clone().with_digest(manifest.digest().clone());
        let mut url = Url::parse(&self.repo_url(&by_digest, &format!("manifests/{}", manifest.digest())))
            .map_err(|e| Error::InvalidResponse(e.to_string()))?;
        for tag in tags {
            url.query_pairs_mut().append_pair("tag", tag.as_str());
        }
        let (bytes, media_type) = (manifest.bytes().clone(), manifest.media_type().essence().to_owned());
        let response = self
            .send(reference, &scope(reference, true), || {
                self.inner.http.put(url.clone()).header(CONTENT_TYPE, media_type.as_str()).body(bytes.clone())
            })
            .await?;
        let response = expect(response, &[StatusCode::CREATED]).await?;
        let confirmed: Vec<&str> =
            response.headers().get_all("OCI-Tag").iter().filter_map(|v| v.to_str().ok()).collect();
        for tag in tags.iter().filter(|t| !confirmed.contains(&t.as_str())) {
            self.push_manifest(&reference.clone().with_tag(tag.clone()), manifest).await?;
        }
        Ok(manifest.digest().clone())
    }

    /// [`push_manifest`](Self::push_manifest), with the response headers (`OCI-Subject`, …).
    pub(crate) async fn push_manifest_with_headers(
        &self,
        reference: &Reference,
        manifest: &Manifest,
    ) -> Result<(Digest, reqwest::header::HeaderMap)> {
        let url = self.repo_url(reference, &format!("manifests/{}", reference.target()));
        let bytes = manifest.bytes().clone();
        let media_type = manifest.media_type().essence().to_owned();
        let response = self
            .send(reference, &scope(reference, true), || {
                self.inner.http.put(&url).header(CONTENT_TYPE, media_type.as_str()).body(bytes.clone())
            })
            .await?;
        let response = expect(response, &[StatusCode::CREATED]).await?;
        Ok((manifest.digest().clone(), response.headers().clone()))
    }

    /// Every tag of the repository, following `Link` pagination.
    pub async fn tags(&self, reference: &Reference) -> Result<Vec<String>> {
        self.tags_stream(reference).try_collect().await
    }

    /// The tags of the repository as a stream, one page fetched at a time (`Link`).
    pub fn tags_stream<'a>(&'a self, reference: &'a Reference) -> BoxStream<'a, Result<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let url = self.repo_url(reference, "tags/list");
        self.paginate(reference, scope(reference, false), url, |page: TagList| page.tags.unwrap_or_default())
    }

    /// Follows `Link: <…>; rel="next"` from `start`, yielding what `names` takes from each
    /// page; the next page is fetched when the stream reaches it.
    pub(crate) fn paginate<'a, T: serde::de::DeserializeOwned + Send + 'a>(
        &'a self,
        target: &'a (impl Host + Sync),
        scope: String,
        start: String,
        names: impl Fn(T) -> Vec<String> + Send + Sync + 'a,
    ) -> BoxStream<'a, Result<String>> {
        let names = std::sync::Arc::new(names);
        futures_util::stream::try_unfold(Some(start), move |next| {
            let (scope, names) = (scope.clone(), names.clone());
            async move {
                type Page = futures_util::stream::Iter<std::vec::IntoIter<Result<String>>>;
                let Some(next) = next else { return Ok::<Option<(Page, Option<String>)>, Error>(None) };
                let url = Url::parse(&next).map_err(|e| Error::InvalidResponse(format!("`{next}`: {e}")))?;
                let response = self.send(target, &scope, || self.inner.http.get(url.clone())).await?;
                let response = expect(response, &[StatusCode::OK]).await?;
                let following = match next_link(&response) {
                    Some(link) => Some(
                        url.join(&link)
                            .map_err(|e| Error::InvalidResponse(format!("Link `{link}`: {e}")))?
                            .to_string(),
                    ),
                    None => None,
                };
                let page: Vec<Result<String>> = names(response.json().await?).into_iter().map(Ok).collect();
                Ok(Some((futures_util::stream::iter(page), following)))
            }
        })
        .try_flatten()
        .boxed()
    }

    pub(crate) fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    pub(crate) fn retry_count(&self) -> u32 {
        self.inner.retries
    }

    /// Deletes a blob from the repository.
    pub async fn delete_blob(&self, reference: &Reference, digest: &Digest) -> Result<()> {
        let url = self.repo_url(reference, &format!("blobs/{digest}"));
        let response = self
            .send(reference, &scope(reference, true), || self.inner.http.request(Method::DELETE, &url))
            .await?;
        expect(response, &[StatusCode::ACCEPTED, StatusCode::OK]).await.map(drop)
    }

    /// Deletes the manifest (or tag) the reference names.
    pub async fn delete_manifest(&self, reference: &Reference) -> Result<()> {
        let url = self.repo_url(reference, &format!("manifests/{}", reference.target()));
        let response = self
            .send(reference, &scope(reference, true), || self.inner.http.request(Method::DELETE, &url))
            .await?;
        expect(response, &[StatusCode::ACCEPTED, StatusCode::OK]).await.map(drop)
    }
}

/// A client identity from one PEM holding the certificate chain and its private key.
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
fn identity_from_pem(pem: &[u8]) -> reqwest::Result<reqwest::Identity> {
    reqwest::Identity::from_pem(pem)
}

/// A client identity from one PEM holding the certificate chain and its private key (native
/// TLS takes them apart).
#[cfg(not(any(feature = "rustls-ring", feature = "rustls-aws-lc")))]
fn identity_from_pem(pem: &[u8]) -> reqwest::Result<reqwest::Identity> {
    let text = String::from_utf8_lossy(pem);
    let (mut certs, mut key) = (String::new(), String::new());
    let mut block = String::new();
    for line in text.lines() {
        block.push_str(line);
        block.push('\n');
        if line.starts_with("-----END ") {
            let into = if line.contains("PRIVATE KEY") { &mut key } else { &mut certs };
            into.push_str(&block);
            block.clear();
        }
    }
    reqwest::Identity::from_pkcs8_pem(certs.as_bytes(), key.as_bytes())
}

fn basic_header(username: &str, password: &crate::auth::Secret) -> String {
    use base64::Engine as _;
    let raw = format!("{username}:{}", password.expose());
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A `Retry-After` in seconds (at most 30).
fn retry_after(response: &Response) -> Option<Duration> {
    let secs: u64 =
        response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(30)))
}

/// The target of a `Link: <…>; rel="next"` header.
pub(crate) fn next_link(response: &Response) -> Option<String> {
    let link = response.headers().get(LINK)?.to_str().ok()?;
    let target = link.split(';').next()?;
    Some(target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
}

pub(crate) fn location(response: &Response) -> Result<Url> {
    let value = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::InvalidResponse("an upload answer without Location".into()))?;
    response.url().join(value).map_err(|e| Error::InvalidResponse(format!("Location `{value}`: {e}")))
}

pub(crate) fn with_digest(location: &Url, digest: &Digest) -> Url {
    let mut url = location.clone();
    url.query_pairs_mut().append_pair("digest", digest.as_str());
    url
}

pub(crate) async fn read_limited(response: Response, limit: usize, what: &str) -> Result<Bytes> {
    let mut out = bytes::BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(Error::InvalidResponse(format!("a {what} larger than {limit} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// The response if its status is one of `ok`; otherwise the registry's error.
pub(crate) async fn expect(response: Response, ok: &[StatusCode]) -> Result<Response> {
    if ok.contains(&response.status()) {
        return Ok(response);
    }
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    let errors = serde_json::from_slice::<ErrorResponse>(&body).ok();
    Err(Error::Registry {
        status: status.as_u16(),
        errors,
        body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    })
}

/// Whether `host[:port]` names this machine: `localhost`, an address in `127.0.0.0/8`, or
/// `[::1]`.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod loopback_tests {
    use super::is_loopback;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "LOCALHOST:1",
            "127.0.0.1:5000",
            "127.8.9.10",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in
            ["registry.example:5000", "10.0.0.1:5000", "localhost.example.com", "[::2]:5000", "ghcr.io"]
        {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
