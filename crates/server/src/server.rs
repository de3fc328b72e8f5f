//! Running the registry: storage from a spec string, binding, serving, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use crate::Wharf;
use crate::auth::AccessControl;
use crate::error::{Error, Result};

/// Where the registry keeps its data, as `--storage` spells it: a spec for a
/// [`wharf_store::Storage`] backend, which [`open`](Self::open) opens.
///
/// ```
/// use wharf_server::StorageSpec;
///
/// let spec: StorageSpec = "fs:./wharf-data".parse()?;
/// assert_eq!(spec, StorageSpec::Fs("./wharf-data".into()));
/// assert_eq!(spec.to_string(), "fs:./wharf-data");
/// assert!("ftp://x".parse::<StorageSpec>().is_err());
/// # Ok::<(), wharf_server::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageSpec {
    /// `fs:<dir>`: a local directory.
    Fs(std::path::PathBuf),
    /// `memory`: nothing survives the process.
    Memory,
    /// `s3://<bucket>[/<prefix>]?endpoint=…&region=…[&redirect=true]`, credentials from the
    /// AWS variables.
    S3(String),
}

impl std::str::FromStr for StorageSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "memory" {
            Ok(Self::Memory)
        } else if let Some(dir) = s.strip_prefix("fs:") {
            Ok(Self::Fs(dir.into()))
        } else if s.starts_with("s3://") {
            Ok(Self::S3(s.to_owned()))
        } else {
            Err(Error::BadRequest(format!(
                "storage `{s}`: expected fs:<dir>, memory or s3://<bucket>?endpoint=…"
            )))
        }
    }
}

impl std::fmt::Display for StorageSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fs(dir) => write!(f, "fs:{}", dir.display()),
            Self::Memory => f.write_str("memory"),
            Self::S3(url) => f.write_str(url),
        }
    }
}

impl StorageSpec {
    /// Opens the backend this spec names (an `fs` directory is created, or recovered after a
    /// crash).
    pub async fn open(&self) -> Result<Arc<dyn wharf_store::Storage>> {
        Ok(match self {
            Self::Memory => Arc::new(wharf_store::MemoryStore::new()),
            Self::Fs(dir) => Arc::new(wharf_store::FsStore::open(dir).await?),
            #[cfg(feature = "s3")]
            Self::S3(url) => Arc::new(wharf_store::S3Store::from_url(url)?),
            #[cfg(not(feature = "s3"))]
            Self::S3(_) => {
                return Err(Error::Unsupported("this build has no S3 support (feature `s3`)".into()));
            }
        })
    }
}

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
    if let Some(access) = &access {
        access.attach(Arc::clone(registry.storage()));
    }
    let sessions = Arc::new(crate::web::Sessions::default());
    let site = crate::web::Site {
        registry: registry.clone(),
        access: access.clone(),
        sessions,
        public_url: public_url.clone(),
    };
    let app = crate::rest::App::new(crate::rest::Shared { registry, access, public_url });
    let both = crate::web::router(site).merge(crate::rest::api(app.clone()));
    crate::rest::layered(both, app)
}

/// A registry bound to a socket, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    registry: Wharf,
    limits: crate::Limits,
    tls: Option<Arc<crate::tls::Tls>>,
    access: Option<Arc<crate::AccessControl>>,
    gc_every: Option<std::time::Duration>,
    scrub_every: Option<std::time::Duration>,
    public_url: Option<Arc<crate::PublicUrl>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port), with a listen queue of 4096 connections.
    #[allow(clippy::unused_async)] // async in the API since the start; binding may resolve names one day
    pub async fn bind(addr: SocketAddr, registry: Wharf) -> std::io::Result<Self> {
        let socket =
            if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(4096)?;
        Ok(Self {
            listener,
            registry,
            limits: crate::Limits::default(),
            tls: None,
            access: None,
            gc_every: None,
            scrub_every: None,
            public_url: None,
        })
    }

    /// Serves TLS (HTTP/2 and HTTP/1.1 by ALPN) instead of plain HTTP.
    #[must_use]
    pub fn with_tls(mut self, tls: Arc<crate::tls::Tls>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Puts every request under `access`.
    #[must_use]
    pub fn with_access(mut self, access: Arc<crate::AccessControl>) -> Self {
        self.access = Some(access);
        self
    }

    /// Serves within `limits` (time-outs, connections, drain) instead of the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: crate::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Collects garbage every `every` (with the registry's lifecycle settings), the first
    /// time one interval after the start; other processes on the same storage may do the
    /// same (one collects at a time).
    #[must_use]
    pub fn with_gc_every(mut self, every: Option<std::time::Duration>) -> Self {
        self.gc_every = every;
        self
    }

    /// Scrubs every `every` (a slow pass: every blob is read).
    #[must_use]
    pub fn with_scrub_every(mut self, every: Option<std::time::Duration>) -> Self {
        self.scrub_every = every;
        self
    }

    /// The URL clients reach the registry at (behind a TLS proxy, the proxy's): cookies are
    /// `Secure` when it is `https`, the web page shows it in pull commands, and a registry on
    /// loopback answers to its host too. (The token realm is
    /// [`AccessControl::with_realm`](crate::AccessControl::with_realm).)
    #[must_use]
    pub fn with_public_url(mut self, url: crate::PublicUrl) -> Self {
        self.public_url = Some(Arc::new(url));
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish within the drain deadline ([`Limits`](crate::Limits)). Upload sessions older
    /// than a day are cancelled every ten minutes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let janitor = tokio::spawn(purge_uploads(self.registry.clone()));
        let reloader = tokio::spawn(reload_files(self.tls.clone(), self.access.clone()));
        let background = Background::start();
        let worker = background.spawn(self.registry.work_jobs());
        let trust_checks = (!self.registry.trust().is_empty()).then(|| {
            let registry = self.registry.clone();
            tokio::spawn(async move {
                match registry.queue_trust_checks().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(manifests = n, "trust material changed: verifying signatures again");
                    }
                    Err(e) => tracing::error!(error = %e, "cannot queue signature verifications"),
                }
            })
        });
        let collector = self.gc_every.map(|every| tokio::spawn(collect_every(self.registry.clone(), every)));
        let scrubber = self.scrub_every.map(|every| tokio::spawn(scrub_every(self.registry.clone(), every)));
        let syncer =
            self.registry.mirror().has_sync().then(|| tokio::spawn(plan_sync(self.registry.clone())));
        let deliveries = (!self.registry.webhooks().is_empty())
            .then(|| tokio::spawn(queue_deliveries(self.registry.clone())));
        let router = app_router(self.registry, self.access, self.public_url);
        let result = crate::listener::serve(self.listener, router, self.limits, self.tls, shutdown).await;
        janitor.abort();
        reloader.abort();
        worker.abort();
        for task in collector.into_iter().chain(scrubber).chain(syncer).chain(trust_checks).chain(deliveries)
        {
            task.abort();
        }
        result
    }

    /// Serves on a background task; the handle shuts it down.
    pub fn spawn(self) -> ServerHandle {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = self.local_addr();
        let task = tokio::spawn(self.run_until(async {
            let _ = rx.await;
        }));
        ServerHandle { addr, stop: Some(tx), task }
    }
}

/// A server running in the background.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// The address it serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for in-flight requests, and returns how serving ended.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(std::io::Error::other)?
    }
}

/// The runtime background jobs run on: its threads at a lower CPU priority than the ones
/// serving requests (nice 10 on Linux), so that the job worker's inspections, webhook
/// deliveries and mirror syncs take what requests leave of the machine's cores and never the
/// other way round (collections and scrubs still run beside requests). Falls back to the
/// serving runtime where it cannot be built.
struct Background(Option<tokio::runtime::Runtime>);

/// How much less CPU priority background threads have (a nice value: 10 weighs a tenth of 0).
const BACKGROUND_NICE: i32 = 10;

impl Background {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("wharf-jobs")
            .enable_all()
            .on_thread_start(|| {
                #[cfg(target_os = "linux")]
                if let Err(e) =
                    rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE)
                {
                    tracing::debug!(error = %e, "cannot lower a background thread's priority");
                }
            })
            .build();
        match runtime {
            Ok(runtime) => Self(Some(runtime)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the background runtime: jobs run beside requests");
                Self(None)
            }
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
        match &self.0 {
            Some(runtime) => runtime.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// How long an upload session may live.
const UPLOAD_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

async fn collect_every(registry: Wharf, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        let options = registry.lifecycle().options().clone();
        match registry.collect_garbage(&options).await {
            Ok(_) => {}
            Err(crate::Error::Busy(why)) => tracing::debug!(%why, "garbage collection skipped"),
            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
        }
    }
}

async fn scrub_every(registry: Wharf, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        match registry.scrub(true).await {
            Ok(report) if !report.damage.is_empty() => {
                tracing::error!(damage = report.damage.len(), "scrub found damage (see gc/last-scrub)");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "scrub failed"),
        }
    }
}

/// Queues the tags of the mirror's sync rules as they fall due (looked at every minute).
async fn plan_sync(registry: Wharf) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        match registry.plan_sync(false).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tags = n, "sync: tags queued"),
            Err(e) => tracing::warn!(error = %e, "sync: queueing tags failed"),
        }
    }
}

/// At start and every 30 seconds, queues the delivery of webhook events that have none
/// queued (a delivery job that ended in the instant a push read it was there; a webhook
/// brought back into the config).
async fn queue_deliveries(registry: Wharf) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        every.tick().await;
        match registry.queue_deliveries().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(streams = n, "webhook events queued for delivery"),
            Err(e) => tracing::warn!(error = %e, "queueing webhook deliveries failed"),
        }
    }
}

async fn purge_uploads(registry: Wharf) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        match registry.purge_stale_uploads(UPLOAD_MAX_AGE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "cancelled stale upload sessions"),
            Err(e) => tracing::warn!(error = %e, "purging stale upload sessions failed"),
        }
    }
}

/// Reads the certificate, key and htpasswd files (and a watched config file's access rules)
/// again when they change (checked every two seconds) or on SIGHUP. A file that does not
/// read keeps what is in force.
async fn reload_files(tls: Option<Arc<crate::tls::Tls>>, access: Option<Arc<crate::AccessControl>>) {
    if tls.is_none() && access.is_none() {
        return;
    }
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let forced = tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        #[cfg(not(unix))]
        let forced = {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            false
        };
        if let Some(tls) = &tls {
            match tls.reload(forced) {
                Ok(true) => tracing::info!("TLS certificate and key reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "reloading TLS failed: the previous certificate stays in use");
                }
            }
        }
        if let Some(access) = &access {
            match access.reload(forced) {
                Ok(true) => {
                    tracing::info!(users = access.authenticator().users().len(), "access control reloaded");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "reloading access control failed: the previous users and rules stay in force");
                }
            }
        }
    }
}
