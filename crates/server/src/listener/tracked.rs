//! What the watchdog knows of a connection: whether it is serving, and when bytes moved.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::sendfile::{FileRegion, Placeholder, Queue, Split, split};

use super::Limits;

/// The state of one connection, shared by its socket, its requests and the table.
#[derive(Debug)]
pub(super) struct Conn {
    state: Mutex<State>,
    close: Notify,
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
        };
        Self { state: Mutex::new(state), close: Notify::new(), files: Mutex::default() }
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
    /// a request that is not stalled on the client.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let s = self.state.lock().expect("lock");
        if s.serving > 0 {
            return s.write_blocked_since.map(|t| t + limits.body_idle_timeout);
        }
        Some(match s.head_since {
            Some(t) => t + limits.header_timeout,
            None if s.used => s.idle_since + limits.keepalive_timeout,
            None => s.idle_since + limits.header_timeout,
        })
    }

    /// When an idle connection last moved bytes; `None` while it serves a request.
    pub(super) fn idle_since_io(&self) -> Option<Instant> {
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

    fn wrote(&self, blocked: bool) {
        let mut s = self.state.lock().expect("lock");
        let now = Instant::now();
        if blocked {
            s.write_blocked_since.get_or_insert(now);
        } else {
            s.write_blocked_since = None;
            s.last_io = now;
        }
    }
}

impl Tracked<TcpStream> {
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
pub(super) struct Tracked<T> {
    inner: T,
    conn: Arc<Conn>,
}

impl<T> Tracked<T> {
    pub(super) fn new(inner: T, conn: Arc<Conn>) -> Self {
        Self { inner, conn }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
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
impl AsyncWrite for Tracked<TcpStream> {
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
        self.conn.wrote(result.is_pending());
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
