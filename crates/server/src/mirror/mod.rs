//! Pull-through mirrors of other registries (`[[upstream]]`): which local repositories stand
//! for which upstream repositories (`Mirror::route`, and containerd's `?ns=` through
//! `Mirror::transparent`), the client that reaches each upstream — public addresses only
//! unless the settings allow private ones, a stall bound, the upstream's credentials sent to
//! its host only, no retries (a failing upstream is answered from the cache at once) — and
//! `Flights`: one upstream fetch however many requests ask for the same thing at once.
//!
//! Bytes from an upstream are trusted for nothing: a manifest is read within
//! [`MAX_MANIFEST_SIZE`](wharf_types::MAX_MANIFEST_SIZE) and verified against its digest; a
//! blob is bounded by [`UpstreamSettings::max_blob`] and written through the store's
//! digest check (`tee`), so it becomes visible only once verified. What to fetch and when
//! is the façade's ([`Wharf::pull_through`](crate::Wharf::pull_through)).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::{BoxFuture, FutureExt as _, Shared};
use tokio::sync::mpsc;
use wharf_client::{Client, ClientBuilder, Credentials};
use wharf_store::ByteStream;
use wharf_types::{Digest, Manifest, Reference, Repository, Tag};

use crate::error::{Error, Result};
use crate::registry::Core;
use crate::registry::fence::Epoch;

/// Docker Hub's names: a repository of one component there is `library/<name>`.
const DOCKER_HUB: [&str; 3] = ["docker.io", "registry-1.docker.io", "index.docker.io"];

/// How long a tag is trusted before it is checked again, by default.
pub const TAG_TTL: Duration = Duration::from_secs(300);
/// How long an upstream may send nothing before it is given up on, by default.
pub const STALL: Duration = Duration::from_secs(30);
/// The largest blob fetched from an upstream, by default (16 GiB).
pub const MAX_BLOB: u64 = 16 << 30;
/// The default of [`UpstreamSettings::max_fetches`].
pub const MAX_FETCHES: usize = 16;

/// One upstream registry, as typed settings (the config's `[[upstream]]`, parsed at the edge).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UpstreamSettings {
    /// Its name (metrics, logs, errors).
    pub name: String,
    /// Where it is: `https://host[:port]`, or `http://` for one without TLS.
    pub url: String,
    /// Local repositories `<prefix>/<name>` mirror the upstream's `<name>`.
    pub prefix: Repository,
    /// More host names it answers to in containerd's `?ns=` (its URL's host always does;
    /// Docker Hub's three names for Docker Hub).
    pub hosts: Vec<String>,
    /// Credentials sent to it (and to the token service it names), never logged.
    pub credentials: Credentials,
    /// CA certificates (PEM) its TLS certificate is checked against, besides the system's.
    pub ca: Option<Vec<u8>>,
    /// How long a tag is served from the cache before it is checked again [default: 5m].
    pub tag_ttl: Duration,
    /// Whether its URL (and the token service and redirects it names) may be in a loopback,
    /// private or link-local range [default: no: the registry must not become a way into
    /// the operator's network].
    pub allow_private: bool,
    /// How long it may send nothing before a fetch fails [default: 30s].
    pub stall: Duration,
    /// The largest blob fetched from it [default: 16GiB].
    pub max_blob: u64,
    /// How many blobs are fetched from it at once (more wait their turn): with
    /// the bounded buffers of each (at most 12 MiB), what a mirror's fetches may hold in memory.
    pub max_fetches: usize,
    /// What is kept copied here on a schedule.
    pub sync: Vec<SyncRule>,
}

/// A repository of an upstream (or some of its tags) kept copied here, whole, on a schedule:
/// a registry prepared for offline use.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SyncRule {
    /// The repository's name at the upstream.
    pub repository: Repository,
    /// The tags copied (`*` matches any run of characters) [default: every tag].
    pub tags: Vec<String>,
    /// How often the upstream's tag list is read again and its tags copied.
    pub every: Duration,
}

impl SyncRule {
    /// Every tag of `repository`, every `every`.
    pub fn new(repository: Repository, every: Duration) -> Self {
        Self { repository, tags: vec!["*".into()], every }
    }

    /// Whether the rule copies `tag`.
    pub(crate) fn copies(&self, tag: &str) -> bool {
        self.tags.iter().any(|p| wharf_auth::glob(p.as_bytes(), tag.as_bytes()))
    }
}

impl UpstreamSettings {
    /// An upstream called `name` at `url` (`https://host[:port]` or `http://…`), mirrored
    /// under `prefix`, with the defaults.
    pub fn new(name: &str, url: &str, prefix: Repository) -> Result<Self> {
        let bad = |why: &str| Error::BadRequest(format!("upstream `{name}`: url `{url}`: {why}"));
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        let host = rest.ok_or_else(|| bad("expected https://host[:port] or http://host[:port]"))?;
        let host = host.strip_suffix('/').unwrap_or(host);
        if host.is_empty() || host.contains(['/', '?', '#', '@']) {
            return Err(bad("only a scheme and a host[:port]; repositories go under the prefix"));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(Error::BadRequest(format!("upstream name `{name}`: letters, digits, `-`, `_`, `.`")));
        }
        Ok(Self {
            name: name.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            prefix,
            hosts: Vec::new(),
            credentials: Credentials::Anonymous,
            ca: None,
            tag_ttl: TAG_TTL,
            allow_private: false,
            stall: STALL,
            max_blob: MAX_BLOB,
            max_fetches: MAX_FETCHES,
            sync: Vec::new(),
        })
    }

    /// `host[:port]` of the URL.
    fn host(&self) -> &str {
        self.url.split_once("://").map_or(self.url.as_str(), |(_, r)| r)
    }

    fn is_docker_hub(&self) -> bool {
        DOCKER_HUB.contains(&self.host())
    }
}

/// One upstream with its client.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    pub(crate) settings: UpstreamSettings,
    client: Client,
    /// The blob fetches under way may hold a permit each (`max_fetches`).
    pub(crate) fetches: Arc<tokio::sync::Semaphore>,
}

impl Upstream {
    fn new(settings: UpstreamSettings) -> Result<Self> {
        let host = settings.host().to_owned();
        let mut builder = ClientBuilder::new()
            .with_public_addresses_only(!settings.allow_private)
            .with_stall_timeout(settings.stall)
            // A whole blob is one request: the stall bound is what gives up on a dead peer.
            .with_timeout(Duration::from_secs(24 * 3600))
            // A failing upstream is answered from the cache at once, not after backoffs.
            .with_retries(0, Duration::from_millis(100))
            .with_loopback_plain_http(false)
            .with_user_agent(format!("wharf-server/{} (mirror)", env!("CARGO_PKG_VERSION")));
        if settings.url.starts_with("http://") {
            builder = builder.with_insecure_host(host.clone());
        }
        if !matches!(settings.credentials, Credentials::Anonymous) {
            builder = builder.with_credentials(host, settings.credentials.clone());
        }
        if let Some(pem) = &settings.ca {
            builder = builder.with_ca_certificates(pem.clone());
        }
        let client =
            builder.build().map_err(|e| Error::BadRequest(format!("upstream `{}`: {e}", settings.name)))?;
        let fetches = Arc::new(tokio::sync::Semaphore::new(settings.max_fetches.max(1)));
        Ok(Self { settings, client, fetches })
    }

    /// The name, for metrics and logs.
    pub(crate) fn name(&self) -> &str {
        &self.settings.name
    }
}

/// The upstream repository a local repository mirrors.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) upstream: Upstream,
    /// The repository's name at the upstream.
    pub(crate) remote: Repository,
}

impl Route {
    fn reference(&self) -> Result<Reference> {
        Ok(Reference::new(self.upstream.settings.host(), self.remote.clone())?)
    }

    /// What the upstream's tag points at (a `HEAD`: Docker Hub does not count it as a pull).
    pub(crate) async fn resolve(&self, tag: &Tag) -> Result<Digest> {
        let reference = self.reference()?.with_tag(tag.clone());
        let what = || format!("tag `{tag}`");
        self.upstream.client.resolve(&reference).await.map(|(d, _)| d).map_err(|e| self.failed(&what(), &e))
    }

    /// The manifest `digest`, verified.
    pub(crate) async fn manifest(&self, digest: &Digest) -> Result<Manifest> {
        let reference = self.reference()?.with_digest(digest.clone());
        self.upstream
            .client
            .pull_manifest(&reference)
            .await
            .map_err(|e| self.failed(&format!("manifest {digest}"), &e))
    }

    /// The blob `digest`: its size when the upstream says it, and its bytes, bounded by
    /// `max_blob` (not yet verified: [`tee`] writes them through the store's check).
    pub(crate) async fn blob(&self, digest: &Digest) -> Result<(Option<u64>, ByteStream)> {
        let reference = self.reference()?;
        let what = format!("blob {digest}");
        let (size, stream) =
            self.upstream.client.open_blob(&reference, digest).await.map_err(|e| {
                match self.failed(&what, &e) {
                    Error::ManifestUnknown(_) => Error::BlobUnknown(digest.clone()),
                    other => other,
                }
            })?;
        let max = self.upstream.settings.max_blob;
        if size.is_some_and(|s| s > max) {
            return Err(
                self.invalid(&format!("{what} is {} bytes, over its limit of {max}", size.unwrap_or(0)))
            );
        }
        let mut seen = 0u64;
        let name = self.upstream.name().to_owned();
        let bounded = stream
            .map(move |chunk| {
                let chunk = chunk.map_err(|e| std::io::Error::other(format!("upstream `{name}`: {e}")))?;
                seen += chunk.len() as u64;
                if seen > max {
                    return Err(std::io::Error::other(format!(
                        "upstream `{name}` sent more than {max} bytes"
                    )));
                }
                Ok(chunk)
            })
            .boxed();
        Ok((size, bounded))
    }

    /// The upstream repository's tags (every page).
    pub(crate) async fn tags(&self) -> Result<Vec<String>> {
        let reference = self.reference()?;
        self.upstream.client.tags(&reference).await.map_err(|e| self.failed("the tag list", &e))
    }

    /// The error a failed upstream request answers: not found as not found; an upstream that
    /// does not answer, stalls, refuses or limits as [`Error::Upstream`] (the cache may
    /// answer instead); what does not verify as invalid.
    fn failed(&self, what: &str, e: &wharf_client::Error) -> Error {
        let name = self.upstream.name();
        if e.is_not_found() {
            return Error::ManifestUnknown(format!(
                "{what} of `{}` is not at upstream `{name}`",
                self.remote
            ));
        }
        match e {
            wharf_client::Error::DigestMismatch { .. }
            | wharf_client::Error::Types(_)
            | wharf_client::Error::InvalidResponse(_) => self.invalid(&format!("{what}: {e}")),
            _ => Error::Upstream(format!(
                "upstream `{name}` ({}) failed: {what}: {e}",
                self.upstream.settings.url
            )),
        }
    }

    fn invalid(&self, why: &str) -> Error {
        Error::ManifestInvalid(format!("upstream `{}` sent what Wharf refuses: {why}", self.upstream.name()))
    }
}

/// Every upstream (the config's `[[upstream]]`).
#[derive(Debug, Default)]
pub struct Mirror {
    upstreams: Vec<Upstream>,
    pub(crate) flights: Flights,
}

impl Mirror {
    /// The mirror of `upstreams`; an error when two share a prefix or one prefix holds
    /// another, or a client cannot be built (a CA that does not read).
    pub fn new(upstreams: Vec<UpstreamSettings>) -> Result<Self> {
        for (i, a) in upstreams.iter().enumerate() {
            for b in &upstreams[i + 1..] {
                let (pa, pb) = (a.prefix.as_str(), b.prefix.as_str());
                let nested =
                    |x: &str, y: &str| x == y || y.strip_prefix(x).is_some_and(|r| r.starts_with('/'));
                if nested(pa, pb) || nested(pb, pa) || a.name == b.name {
                    return Err(Error::BadRequest(format!(
                        "upstreams `{}` and `{}`: each needs a name and a prefix of its own",
                        a.name, b.name
                    )));
                }
            }
        }
        let upstreams = upstreams.into_iter().map(Upstream::new).collect::<Result<_>>()?;
        Ok(Self { upstreams, flights: Flights::default() })
    }

    /// Whether no upstream is configured.
    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    /// The upstream repository `repo` mirrors, if it is under an upstream's prefix (with
    /// Docker Hub's rule: `<prefix>/alpine` is `library/alpine` there).
    pub(crate) fn route(&self, repo: &Repository) -> Option<Route> {
        self.upstreams.iter().find_map(|upstream| {
            let rest = repo.as_str().strip_prefix(upstream.settings.prefix.as_str())?.strip_prefix('/')?;
            let remote = if upstream.settings.is_docker_hub() && !rest.contains('/') {
                format!("library/{rest}")
            } else {
                rest.to_owned()
            };
            Some(Route { upstream: upstream.clone(), remote: remote.parse().ok()? })
        })
    }

    /// Whether any upstream has sync rules.
    pub fn has_sync(&self) -> bool {
        self.upstreams.iter().any(|u| !u.settings.sync.is_empty())
    }

    /// Every upstream.
    pub(crate) fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }

    /// The local name of `name` requested as a mirror of host `ns` (containerd sends
    /// `?ns=<host>` with each request to a mirror): `<prefix>/<name>` of the upstream that
    /// answers to that host; `None` for a host no upstream answers to.
    pub(crate) fn transparent(&self, ns: &str, name: &str) -> Option<String> {
        let upstream = self.upstreams.iter().find(|u| {
            let s = &u.settings;
            s.host() == ns
                || s.hosts.iter().any(|h| h == ns)
                || (s.is_docker_hub() && DOCKER_HUB.contains(&ns))
        })?;
        Some(format!("{}/{name}", upstream.settings.prefix))
    }
}

/// What a fetch came to, shared by everyone who waited for it: whether it brought anything
/// new from the upstream (a tag checked and found unchanged did not), or why it failed.
pub(crate) type Outcome = std::result::Result<bool, Arc<Error>>;
/// A fetch under way, awaited by every request that asked for the same thing.
pub(crate) type Flight = Shared<BoxFuture<'static, Outcome>>;

/// The fetches under way, by what they fetch.
#[derive(Debug, Default)]
pub(crate) struct Flights(Arc<Mutex<HashMap<String, Flight>>>);

impl Flights {
    /// The fetch of `key` under way, or a new one running `work` — spawned, so that it
    /// finishes (and is stored) even when every request that waited for it has gone — and
    /// whether this call started it.
    pub(crate) fn join(
        &self,
        key: &str,
        work: impl FnOnce() -> BoxFuture<'static, Result<bool>>,
    ) -> (Flight, bool) {
        let mut flights = self.0.lock().expect("lock");
        if let Some(flight) = flights.get(key) {
            return (flight.clone(), false);
        }
        let work = work();
        let all = Arc::clone(&self.0);
        let owned = key.to_owned();
        // The lock is held until the flight is in the map: its removal comes after.
        let task = tokio::spawn(async move {
            let outcome = work.await.map_err(Arc::new);
            all.lock().expect("lock").remove(&owned);
            outcome
        });
        let flight = async move {
            task.await.unwrap_or_else(|e| Err(Arc::new(Error::Upstream(format!("a fetch failed: {e}")))))
        }
        .boxed()
        .shared();
        flights.insert(key.to_owned(), flight.clone());
        (flight, true)
    }
}

/// The error a request that waited on a failed fetch answers: the same kind as the fetch's
/// (a full or unavailable storage stays what it is: 507 or 503, not the upstream's fault).
pub(crate) fn again(e: &Error) -> Error {
    if let Some(fault) = e.fault() {
        return Error::Store(wharf_store::Error::injected(fault, "storing a fetched blob"));
    }
    match e {
        Error::ManifestUnknown(s) => Error::ManifestUnknown(s.clone()),
        Error::BlobUnknown(d) => Error::BlobUnknown(d.clone()),
        Error::ManifestInvalid(s) => Error::ManifestInvalid(s.clone()),
        Error::Denied { message, challenge } => {
            Error::Denied { message: message.clone(), challenge: challenge.clone() }
        }
        other => Error::Upstream(other.to_string()),
    }
}

/// Writes `source` into the store as blob `digest` linked to `repo` — verified there, so it
/// is visible only if whole and right — handing the same bytes to `client` as they pass. The
/// last chunk is handed over only once the blob is verified and stored, so a client never
/// receives a whole body that did not verify; a client that does not take a chunk within
/// `stall` is dropped (the write goes on). Returns the bytes written.
pub(crate) async fn tee(
    core: &Core,
    epoch: &Epoch,
    repo: &Repository,
    digest: &Digest,
    mut source: ByteStream,
    client: Option<mpsc::Sender<std::io::Result<Bytes>>>,
    stall: Duration,
) -> Result<u64> {
    let (to_store, from_source) = mpsc::channel::<std::io::Result<Bytes>>(CHUNKS);
    let sink =
        futures_util::stream::unfold(from_source, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
            .boxed();
    // The store (hashing, writing) on a task of its own: on another core than the reading of
    // the upstream and the sending to the client.
    let store = {
        let (core, epoch, repo, digest) = (core.clone(), epoch.clone(), repo.clone(), digest.clone());
        tokio::spawn(async move { core.store_blob(&epoch, &repo, &digest, sink).await })
    };
    let store = async move {
        store.await.unwrap_or_else(|e| Err(Error::Upstream(format!("storing a fetched blob failed: {e}"))))
    };
    let pump = async move {
        let mut pump = Pump { client, held: None, to_store, stall, spent: VecDeque::new() };
        // The small reads of a socket gathered into chunks of about 1 MiB (one channel
        // hand-over, one write and one send per MiB rather than per few KiB), in buffers used
        // again once the store and the client are done with them (a fresh 1 MiB allocation is
        // a fresh 256 pages to fault in).
        let mut gathered = pump.buffer();
        loop {
            match source.next().await {
                Some(Ok(chunk)) => {
                    if gathered.len() + chunk.len() > gathered.capacity() && !gathered.is_empty() {
                        let next = pump.buffer();
                        if !pump.hand_on(std::mem::replace(&mut gathered, next).freeze()).await {
                            break;
                        }
                    }
                    if chunk.len() >= gathered.capacity() {
                        // Already big: on as it is.
                        if !pump.hand_on(chunk).await {
                            break;
                        }
                        continue;
                    }
                    gathered.extend_from_slice(&chunk);
                    if gathered.len() >= GATHER {
                        let next = pump.buffer();
                        if !pump.hand_on(std::mem::replace(&mut gathered, next).freeze()).await {
                            break;
                        }
                    }
                }
                Some(Err(e)) => {
                    let _ = pump.to_store.send(Err(e)).await;
                    break;
                }
                None => {
                    if !gathered.is_empty() {
                        pump.hand_on(gathered.freeze()).await;
                    }
                    break;
                }
            }
        }
        drop(pump.to_store);
        (pump.client, pump.held)
    };
    let (stored, (client, held)) = tokio::join!(store, pump);
    if let Some(tx) = client {
        let last = match &stored {
            Ok(_) => held.map(Ok),
            Err(e) => Some(Err(std::io::Error::other(format!("the blob did not verify: {e}")))),
        };
        if let Some(last) = last {
            let _ = tx.send(last).await;
        }
    }
    stored.map(|info| info.size)
}

/// What [`tee`] hands on: every chunk to the store as it comes, each to the client once the
/// next one follows (the last once the blob verified).
struct Pump {
    client: Option<mpsc::Sender<std::io::Result<Bytes>>>,
    held: Option<Bytes>,
    to_store: mpsc::Sender<std::io::Result<Bytes>>,
    stall: Duration,
    /// The chunks handed on lately, to gather into again once nobody else holds them.
    spent: VecDeque<Bytes>,
}

impl Pump {
    /// Hands `chunk` on; `false` when the store has gone (it failed: its error is the answer).
    async fn hand_on(&mut self, chunk: Bytes) -> bool {
        if let Some(previous) = self.held.replace(chunk.clone())
            && let Some(tx) = &self.client
            && !matches!(tokio::time::timeout(self.stall, tx.send(Ok(previous))).await, Ok(Ok(())))
        {
            self.client = None;
        }
        self.spent.push_back(chunk.clone());
        if self.spent.len() > 2 * CHUNKS + 2 {
            self.spent.pop_front();
        }
        self.to_store.send(Ok(chunk)).await.is_ok()
    }

    /// An empty buffer of [`GATHER`] bytes: the oldest one handed on when the store and the
    /// client are done with it, a new one otherwise.
    fn buffer(&mut self) -> bytes::BytesMut {
        if let Some(oldest) = self.spent.pop_front() {
            match oldest.try_into_mut() {
                Ok(mut buffer) if buffer.capacity() >= GATHER => {
                    buffer.clear();
                    return buffer;
                }
                Ok(_) => {}
                Err(oldest) => self.spent.push_front(oldest),
            }
        }
        bytes::BytesMut::with_capacity(GATHER)
    }
}

/// How many bytes [`tee`] gathers before handing them on.
const GATHER: usize = 1 << 20;
/// How many gathered chunks wait for the store, and for the client: with the chunk being
/// gathered, the one held back and those kept to gather into again, a fetch holds at most
/// `(2 * CHUNKS + 4) * GATHER` bytes (12 MiB), and an upstream at most `max_fetches` fetches
/// at once.
pub(crate) const CHUNKS: usize = 4;

/// A stream of what a [`tee`] hands over.
pub(crate) fn received(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> ByteStream {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(name: &str, url: &str, prefix: &str) -> UpstreamSettings {
        UpstreamSettings::new(name, url, prefix.parse().expect("prefix")).expect("settings")
    }

    #[test]
    fn routes_by_prefix_with_docker_hubs_library_rule() {
        let mirror = Mirror::new(vec![
            settings("hub", "https://registry-1.docker.io", "dockerhub"),
            settings("ghcr", "https://ghcr.io", "ghcr"),
        ])
        .expect("mirror");
        let route = |r: &str| mirror.route(&r.parse().expect("repo")).map(|r| r.remote.to_string());
        assert_eq!(route("dockerhub/alpine").as_deref(), Some("library/alpine"));
        assert_eq!(route("dockerhub/bitnami/redis").as_deref(), Some("bitnami/redis"));
        assert_eq!(route("ghcr/webassembly/wasi/io").as_deref(), Some("webassembly/wasi/io"));
        assert_eq!(route("ghcrx/a"), None);
        assert_eq!(route("ghcr"), None);
        assert_eq!(
            mirror.transparent("docker.io", "library/alpine").as_deref(),
            Some("dockerhub/library/alpine")
        );
        assert_eq!(mirror.transparent("ghcr.io", "a/b").as_deref(), Some("ghcr/a/b"));
        assert_eq!(mirror.transparent("quay.io", "a/b"), None);
    }

    #[test]
    fn settings_are_checked() {
        let p = || "p".parse::<Repository>().expect("prefix");
        assert!(UpstreamSettings::new("a", "ftp://x", p()).is_err());
        assert!(UpstreamSettings::new("a", "https://x/path", p()).is_err());
        assert!(UpstreamSettings::new("a", "https://user@x", p()).is_err());
        assert!(UpstreamSettings::new("a b", "https://x", p()).is_err());
        let nested = Mirror::new(vec![settings("a", "https://x", "p"), settings("b", "https://y", "p/q")]);
        assert!(nested.is_err());
        let same = Mirror::new(vec![settings("a", "https://x", "p"), settings("a", "https://y", "q")]);
        assert!(same.is_err());
    }
}
