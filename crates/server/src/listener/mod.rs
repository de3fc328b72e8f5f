//! Serving HTTP connections within limits: time to send request headers, keep-alive idle
//! time, a minimum rate for request bodies and responses, a cap on open connections (idle
//! ones give way to new ones) and on the connections of one client address, and a bounded
//! drain at shutdown.
//!
//! Each connection is served by hyper's HTTP/1.1 server on a task of its own. The socket is
//! wrapped so that the server knows, for every connection, whether a request is being served
//! (from the moment its headers are parsed to the end of its response body) and when bytes
//! last moved; a watchdog per connection closes it when a deadline passes:
//!
//! | state | deadline |
//! |---|---|
//! | new, nothing sent yet | `header_timeout` after accept |
//! | request headers arriving | `header_timeout` after their first byte |
//! | between requests (keep-alive) | `keepalive_timeout` after the last response |
//! | serving, request body slow | each `body_idle_timeout` spent waiting for the body must bring `min_transfer_rate` × that many bytes (the handler sees an error) |
//! | serving, response slow (the client reads little or nothing) | each `body_idle_timeout` spent with a write pending must take `min_transfer_rate` × that many bytes |
//!
//! Progress is measured in bytes per interval, not as time since the last byte: a client that
//! sends (or reads) a byte every few seconds is cut off all the same. Only time spent waiting
//! for the client counts, never time the server spends elsewhere.
//!
//! At `max_connections` open connections, the idle one that moved bytes longest ago is
//! closed to make room; when every connection is serving a request, new ones wait in the
//! listen queue. A connection in the middle of a request is never closed for room. One client
//! address (an IPv6 address by its /64) holds at most `max_connections_per_address` of them,
//! and never more than half of `max_connections`: a connection beyond that is closed as soon
//! as it is accepted, so one address holding slow requests on every connection it can open
//! leaves room for everyone else.

mod body;
mod limits;
mod public;
mod sendfile;
mod tracked;

pub use limits::Limits;
pub use public::PublicUrl;
pub(crate) use public::{authority_of, is_address, is_loopback_host, valid_host};
pub(crate) use sendfile::FileRegion;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

use tracked::{Conn, Tracked};

/// File descriptors kept for everything that is not a client connection (storage files,
/// journals, the listener, logs).
const RESERVED_FILES: u64 = 256;

/// Raises the soft limit on open files to the hard limit; returns the limit now in force
/// (`None` where it cannot be read).
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current
}

/// The open connections, for eviction and the drain.
#[derive(Debug, Default)]
struct Table {
    conns: Mutex<HashMap<u64, (std::net::IpAddr, Arc<Conn>)>>,
    /// Open connections by client address (an IPv6 address by its /64).
    by_address: Mutex<HashMap<std::net::IpAddr, usize>>,
}

/// A connection counted against its address; dropping it uncounts it.
struct AddressSlot {
    table: Arc<Table>,
    key: std::net::IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut by_address = self.table.by_address.lock().expect("lock");
        if let Some(n) = by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.key);
            }
        }
    }
}

impl Table {
    fn insert(&self, id: u64, peer: std::net::IpAddr, conn: Arc<Conn>) {
        self.conns.lock().expect("lock").insert(id, (wharf_auth::address_key(peer), conn));
    }

    fn remove(&self, id: u64) {
        self.conns.lock().expect("lock").remove(&id);
    }

    /// Closes the `n` idle connections that moved bytes longest ago (fewer if fewer are idle).
    fn evict_idle(&self, n: usize) {
        let conns = self.conns.lock().expect("lock");
        let mut idle: Vec<_> =
            conns.values().filter_map(|(_, c)| c.idle_since_io().map(|t| (t, c))).collect();
        if idle.len() > n {
            idle.select_nth_unstable_by_key(n, |(t, _)| *t);
            idle.truncate(n);
        }
        for (_, conn) in idle {
            conn.close();
        }
    }

    /// Counts a connection from `peer`. At its address's `cap`, the address's idle connection
    /// that moved bytes longest ago is closed to make room (it is uncounted when its task
    /// ends); when all of them are serving requests, `None`: the new one is refused.
    fn admit(self: &Arc<Self>, peer: std::net::IpAddr, cap: usize) -> Option<AddressSlot> {
        let key = wharf_auth::address_key(peer);
        let held = self.by_address.lock().expect("lock").get(&key).copied().unwrap_or(0);
        if held >= cap && !self.evict_idle_of(key) {
            return None;
        }
        *self.by_address.lock().expect("lock").entry(key).or_insert(0) += 1;
        Some(AddressSlot { table: Arc::clone(self), key })
    }

    /// Closes the idle connection of address `key` that moved bytes longest ago; whether there
    /// was one.
    fn evict_idle_of(&self, key: std::net::IpAddr) -> bool {
        let conns = self.conns.lock().expect("lock");
        let oldest = conns
            .values()
            .filter(|(k, _)| *k == key)
            .filter_map(|(_, c)| c.idle_since_io().map(|t| (t, c)))
            .min_by_key(|(t, _)| *t);
        oldest.map(|(_, c)| c.close()).is_some()
    }

    fn close_all(&self) -> usize {
        let conns = self.conns.lock().expect("lock");
        conns.values().for_each(|(_, c)| c.close());
        conns.len()
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = effective_max_connections(limits.max_connections);
    let per_address = per_address_cap(limits.max_connections_per_address, max);
    // At the cap, room is made for a burst at a time (each eviction scans every connection).
    let burst = (max / 64).max(1);
    let slots = Arc::new(Semaphore::new(max));
    let table = Arc::new(Table::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ids = AtomicU64::new(0);
    tokio::pin!(shutdown);
    'accept: loop {
        // A slot for the next connection: free, or made by closing an idle one, or waited for.
        let permit = if let Ok(p) = Arc::clone(&slots).try_acquire_owned() {
            p
        } else {
            table.evict_idle(burst);
            tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => p.expect("the semaphore is never closed"),
                () = &mut shutdown => break 'accept,
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before accept): make room
                    // and go on; never stop serving.
                    tracing::warn!(error = %e, "accept failed");
                    table.evict_idle(burst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break 'accept,
        };
        let Some(address) = table.admit(peer.ip(), per_address) else {
            // One address holds its share: this one is closed at once (its slot goes back).
            tracing::debug!(peer = %peer, cap = per_address, "a client address is at its connection cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new());
        table.insert(id, peer.ip(), Arc::clone(&conn));
        let task = Connection {
            id,
            peer,
            conn,
            permit,
            _address: address,
            router: router.clone(),
            limits,
            stop: stop_rx.clone(),
            table: Arc::clone(&table),
            tls: tls.clone(),
        };
        tokio::spawn(task.run(stream));
    }
    drop(listener);
    // Drain: idle connections close now, in-flight requests finish, within the deadline.
    let _ = stop_tx.send(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, slots.acquire_many(all)).await.is_err() {
        let open = table.close_all();
        tracing::warn!(open, "drain deadline passed: closing the connections still open");
        let _ = tokio::time::timeout(Duration::from_secs(5), slots.acquire_many(all)).await;
    }
    Ok(())
}

/// The connections one address may hold: `wanted` (0: no cap of its own), never more than
/// half of `max` (at least one).
fn per_address_cap(wanted: usize, max: usize) -> usize {
    let half = (max / 2).max(1);
    if wanted == 0 { half } else { wanted.min(half) }
}

/// `wanted`, lowered so that the connections fit in the open-files limit.
fn effective_max_connections(wanted: usize) -> usize {
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let fit =
        files.map_or(wanted, |f| usize::try_from(f.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX));
    if fit < wanted {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = files,
            using = fit.max(1),
            "max connections lowered to fit the open-files limit"
        );
    }
    wanted.min(fit).max(1)
}

/// How a request reached the server: over TLS or not, and the subject of the client
/// certificate the TLS handshake verified. Put in every request's extensions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Transport {
    pub(crate) tls: bool,
    pub(crate) client_cert_user: Option<Arc<str>>,
    /// The server's address the connection reached.
    pub(crate) local: Option<SocketAddr>,
}

/// One accepted connection and what serving it needs.
struct Connection {
    id: u64,
    peer: SocketAddr,
    conn: Arc<Conn>,
    permit: OwnedSemaphorePermit,
    _address: AddressSlot,
    router: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    table: Arc<Table>,
    tls: Option<Arc<crate::tls::Tls>>,
}

impl Connection {
    async fn run(mut self, stream: tokio::net::TcpStream) {
        let local = stream.local_addr().ok();
        let io = Tracked::new(stream, Arc::clone(&self.conn));
        match self.tls.as_ref().map(|t| t.config()) {
            None => self.serve(io, Transport { local, ..Transport::default() }, false).await,
            Some(config) => {
                // The handshake is part of sending the request head: same deadline.
                let handshake = tokio_rustls::TlsAcceptor::from(config).accept(io);
                match tokio::time::timeout(self.limits.header_timeout, handshake).await {
                    Ok(Ok(stream)) => {
                        let session = stream.get_ref().1;
                        let h2 = session.alpn_protocol() == Some(b"h2");
                        let client_cert_user = session
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| crate::tls::subject_common_name(c))
                            .and_then(|cn| self.tls.as_ref().and_then(|t| t.user_of(&cn)));
                        self.serve(stream, Transport { tls: true, client_cert_user, local }, h2).await;
                    }
                    Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
                }
            }
        }
        self.table.remove(self.id);
        drop(self.permit);
    }

    async fn serve<I>(&mut self, io: I, transport: Transport, h2: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let tls = transport.tls;
        let (conn, router, peer, limits) =
            (Arc::clone(&self.conn), self.router.clone(), self.peer, self.limits);
        let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let busy = conn.begin();
            let mut request = request.map(|b| {
                Body::new(body::MinRate::new(b, limits.body_idle_timeout, limits.min_transfer_rate))
            });
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(transport.clone());
            // HTTP/2 names the host in the URI (`:authority`) only; handlers read `Host`.
            if !request.headers().contains_key(http::header::HOST)
                && let Some(authority) = request.uri().authority()
                && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
            {
                request.headers_mut().insert(http::header::HOST, host);
            }
            let router = router.clone();
            let conn = Arc::clone(&conn);
            async move {
                let mut response = router.oneshot(request).await.unwrap_or_else(|e: Infallible| match e {});
                // A blob file on plain TCP goes out with `sendfile`, not through this process.
                if let Some(region) = response.extensions_mut().remove::<FileRegion>()
                    && !tls
                {
                    let placeholder = conn.send_file(region);
                    response = response.map(|_| Body::new(placeholder));
                }
                // The connection is serving until the response body is sent (or dropped).
                Ok::<_, Infallible>(response.map(move |b| {
                    Body::new(b.map_frame(move |frame| {
                        let _ = &busy;
                        frame
                    }))
                }))
            }
        });
        if h2 {
            let builder = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
            let served = builder.serve_connection(io, service);
            tokio::pin!(served);
            self.watch(served, hyper::server::conn::http2::Connection::graceful_shutdown).await;
        } else {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // Header and keep-alive time-outs are the watchdog's below.
            builder.header_read_timeout(None);
            if !tls {
                // Body frames go to the socket as they are, never copied into one buffer: the
                // socket finds placeholder frames by their address (see `sendfile`).
                builder.writev(true);
            }
            let served = builder.serve_connection(io, service);
            tokio::pin!(served);
            self.watch(served, hyper::server::conn::http1::Connection::graceful_shutdown).await;
        }
    }

    /// Drives a connection until it ends, closing it when a deadline passes and shutting it
    /// down gracefully when the server drains.
    async fn watch<F: Future>(
        &mut self,
        mut served: std::pin::Pin<&mut F>,
        mut graceful: impl FnMut(std::pin::Pin<&mut F>),
    ) {
        let mut draining = *self.stop.borrow();
        if draining {
            graceful(served.as_mut());
        }
        loop {
            let now = Instant::now();
            let deadline = self.conn.deadline(&self.limits);
            if deadline.is_some_and(|d| d <= now) {
                tracing::debug!(peer = %self.peer, "closing a connection past its deadline");
                self.conn.cut.store(true, std::sync::atomic::Ordering::Relaxed);
                break;
            }
            let wake = deadline.unwrap_or(now + Duration::from_secs(1)).min(now + Duration::from_secs(5));
            tokio::select! {
                _ = served.as_mut() => break,
                () = self.conn.closed() => break,
                () = tokio::time::sleep_until(wake.into()) => {}
                _ = self.stop.changed(), if !draining => {
                    draining = true;
                    graceful(served.as_mut());
                }
            }
        }
    }
}
