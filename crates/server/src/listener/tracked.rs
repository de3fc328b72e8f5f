//! What the watchdog knows of a connection: whether it is serving, and when bytes moved.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::sendfile::{FileRegion, Placeholder, Queue, Split, split};

use super::limits::Limits;

/// The state of one connection, shared by its socket, its requests and the table.
#[derive(Debug)]
pub(super) struct Conn {
    state: Mutex<State>,
    close: Notify,
    /// Asked to close: no longer counted as idle room to make.
    closing: std::sync::atomic::AtomicBool,
    /// Cut off past a deadline: its socket is reset when it goes.
    pub(super) cut: std::sync::atomic::AtomicBool,
    /// Blob file regions whose placeholder bodies are yet to be written (plain TCP only).
    files: Mutex<Queue>,
}

#[derive(Debug)]
struct State {
    /// Requests being served: from parsed headers to the end of the response body.
    serving: u32,
    /// Whether a request was ever served (a new connection waits on the header time-out,
    /// a used one on the keep-alive time-out).
    used: bool,
    /// When the connection last became idle (accepted, or its last response ended).
    idle_since: Instant,
    /// The first byte of the next request's headers, while idle.
    head_since: Option<Instant>,
    /// When a byte was last read or written.
    last_io: Instant,
    /// Since when a write has been waiting for the client to read.
    write_blocked_since: Option<Instant>,
    /// Of the response's current interval: time spent with a write waiting, bytes written.
    write_waited: Duration,
    write_bytes: u64,
}

/// A request being served; dropping it ends it.
#[derive(Debug)]
pub(super) struct Serving(Arc<Conn>);

impl Drop for Serving {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().expect("lock");
        s.serving -= 1;
        if s.serving == 0 {
            s.idle_since = Instant::now();
            s.head_since = None;
            s.write_blocked_since = None;
            s.write_waited = Duration::ZERO;
            s.write_bytes = 0;
        }
    }
}

impl Conn {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        let state = State {
            serving: 0,
            used: false,
            idle_since: now,
            head_since: None,
            last_io: now,
            write_blocked_since: None,
            write_waited: Duration::ZERO,
            write_bytes: 0,
        };
        Self {
            state: Mutex::new(state),
            close: Notify::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
            cut: std::sync::atomic::AtomicBool::new(false),
            files: Mutex::default(),
        }
    }

    /// A request's headers were parsed: the connection serves it until the guard drops.
    pub(super) fn begin(self: &Arc<Self>) -> Serving {
        let mut s = self.state.lock().expect("lock");
        s.serving += 1;
        s.used = true;
        s.head_since = None;
        Serving(Arc::clone(self))
    }

    /// When the connection must be closed, if nothing happens before: `None` while it serves
    /// a request that is not waiting on the client to read. While a response waits, each
    /// `body_idle_timeout` of waiting must take `min_transfer_rate` × that many bytes: an
    /// interval that did starts a new one, one that did not is due now.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let mut s = self.state.lock().expect("lock");
        if s.serving > 0 {
            let since = s.write_blocked_since?;
            let now = Instant::now();
            let interval = limits.body_idle_timeout;
            // When this interval of waiting ends (or ended).
            let due = since + interval.saturating_sub(s.write_waited);
            if now < due {
                return Some(due);
            }
            let needed = (u128::from(limits.min_transfer_rate) * interval.as_millis() / 1000).max(1);
            if u128::from(s.write_bytes) < needed {
                return Some(due);
            }
            s.write_waited = Duration::ZERO;
            s.write_bytes = 0;
            s.write_blocked_since = Some(now);
            return Some(now + interval);
        }
        Some(match s.head_since {
            Some(t) => t + limits.header_timeout,
            None if s.used => s.idle_since + limits.keepalive_timeout,
            None => s.idle_since + limits.header_timeout,
        })
    }

    /// When an idle connection last moved bytes; `None` while it serves a request.
    pub(super) fn idle_since_io(&self) -> Option<Instant> {
        if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let s = self.state.lock().expect("lock");
        (s.serving == 0).then_some(s.last_io)
    }

    /// Queues a blob file region to be sent with `sendfile`; its response gets the returned
    /// body, whose bytes stand for the region's.
    pub(super) fn send_file(&self, region: FileRegion) -> Placeholder {
        self.files.lock().expect("lock").push(region)
    }

    /// Asks the connection's task to close it.
    pub(super) fn close(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::Relaxed);
        self.close.notify_one();
    }

    /// Completes once [`close`](Self::close) was called.
    pub(super) async fn closed(&self) {
        self.close.notified().await;
    }

    fn read(&self, n: usize) {
        if n > 0 {
            let mut s = self.state.lock().expect("lock");
            let now = Instant::now();
            s.last_io = now;
            if s.serving == 0 && s.head_since.is_none() {
                s.head_since = Some(now);
            }
        }
    }

    fn wrote(&self, written: usize, blocked: bool) {
        let mut s = self.state.lock().expect("lock");
        let now = Instant::now();
        if blocked {
            s.write_blocked_since.get_or_insert(now);
        } else {
            if let Some(since) = s.write_blocked_since.take() {
                s.write_waited += now.saturating_duration_since(since);
            }
            s.write_bytes += written as u64;
            s.last_io = now;
        }
    }
}

impl Tracked {
    /// Sends up to `len` bytes of the connection's oldest queued file region.
    fn poll_send_file(&self, cx: &mut Context<'_>, len: usize) -> Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(tokio::io::Interest::WRITABLE, || {
                self.conn.files.lock().expect("lock").send(&self.inner, len)
            });
            match sent {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }
}

/// A socket that reports its reads and writes to its [`Conn`].
#[derive(Debug)]
pub(super) struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl Tracked {
    pub(super) fn new(inner: TcpStream, conn: Arc<Conn>) -> Self {
        Self { inner, conn }
    }
}

/// A connection cut off by the watchdog is reset, not closed: what the kernel still holds for
/// a client that reads too slowly is dropped, not sent on at its pace.
impl Drop for Tracked {
    fn drop(&mut self) {
        if self.conn.cut.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = rustix::net::sockopt::set_socket_linger(&self.inner, Some(std::time::Duration::ZERO));
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            self.conn.read(buf.filled().len() - before);
        }
        result
    }
}

/// Writes the socket, sending blob file regions where a write starts with placeholder bytes.
impl AsyncWrite for Tracked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = match split(bufs) {
            Split::Plain(k) => Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..k]),
            Split::File(len) => self.poll_send_file(cx, len),
        };
        match &result {
            Poll::Ready(Ok(n)) => self.conn.wrote(*n, false),
            Poll::Ready(Err(_)) => self.conn.wrote(0, false),
            Poll::Pending => self.conn.wrote(0, true),
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
