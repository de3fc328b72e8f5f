//! Zero-copy blob bodies: on a plain-TCP HTTP/1 connection, the bytes of a blob file go
//! from the page cache to the socket with `sendfile`, never through user space.
//!
//! hyper writes a response body as the `Bytes` frames its body yields, each an `IoSlice` of a
//! vectored write. A blob's body on such a connection is a [`Placeholder`]: frames that point
//! into one private static buffer ([`FRAMES`]) and are never read. The connection's socket
//! ([`super::tracked::Tracked`]) recognises a slice inside that buffer by its address and
//! sends that many bytes of the next [`FileRegion`] queued on the connection instead. hyper
//! writes the bodies of one connection in order, so the regions are consumed in the order
//! their responses were made; a placeholder byte with no region left is an error that closes
//! the connection, never a zero sent as data.
//!
//! TLS connections (and with them HTTP/2) keep the streamed body: the bytes are encrypted in
//! user space anyway.

use std::collections::VecDeque;
use std::fs::File;
use std::io::IoSlice;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The largest frame of a placeholder body (the most one `sendfile` call is offered).
const FRAME: usize = 4 * 1024 * 1024;

/// What placeholder frames point into. A zeroed static lives in `.bss`: it costs address
/// space, not memory, since nothing ever reads it.
static FRAMES: [u8; FRAME] = [0; FRAME];

/// A blob's file and the bytes of it a response sends, attached to a response by the handler
/// (an extension); the listener swaps the body for a [`Placeholder`] where it can.
#[derive(Clone, Debug)]
pub(crate) struct FileRegion {
    pub(crate) file: Arc<File>,
    pub(crate) range: Range<u64>,
}

impl FileRegion {
    fn len(&self) -> u64 {
        self.range.end - self.range.start
    }
}

/// The regions whose placeholder bytes a connection has yet to write, oldest first.
#[derive(Debug, Default)]
pub(super) struct Queue(VecDeque<FileRegion>);

impl Queue {
    /// Queues `region` and returns the body that stands for its bytes.
    pub(super) fn push(&mut self, region: FileRegion) -> Placeholder {
        let placeholder = Placeholder::new(&region);
        if region.len() > 0 {
            self.0.push_back(region);
        }
        placeholder
    }

    /// Sends up to `len` bytes of the oldest region to `socket` (a non-blocking socket that is
    /// ready for writing): the byte count, or `WouldBlock`.
    pub(super) fn send(&mut self, socket: &tokio::net::TcpStream, len: usize) -> std::io::Result<usize> {
        let Some(region) = self.0.front_mut() else {
            return Err(std::io::Error::other("a placeholder body byte with no file region to send"));
        };
        let count = usize::try_from(region.len()).unwrap_or(usize::MAX).min(len);
        let mut offset = region.range.start;
        let sent = rustix::fs::sendfile(socket, &*region.file, Some(&mut offset), count)?;
        if sent == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the blob file is shorter than its size",
            ));
        }
        region.range.start += sent as u64;
        if region.range.is_empty() {
            self.0.pop_front();
        }
        Ok(sent)
    }
}

/// How a vectored write starts: with placeholder bytes (`File(n)`: the first `n` bytes are
/// a region's) or with plain bytes (`Plain(k)`: write the first `k` slices as they are).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Split {
    File(usize),
    Plain(usize),
}

/// Where placeholder bytes start in `bufs`.
pub(super) fn split(bufs: &[IoSlice<'_>]) -> Split {
    match bufs.iter().position(|b| !b.is_empty()) {
        Some(first) if is_placeholder(&bufs[first]) => Split::File(bufs[first].len()),
        _ => Split::Plain(bufs.iter().position(|b| !b.is_empty() && is_placeholder(b)).unwrap_or(bufs.len())),
    }
}

/// Whether `bytes` lies inside [`FRAMES`] (compared by address, never read).
fn is_placeholder(bytes: &[u8]) -> bool {
    let start = FRAMES.as_ptr() as usize;
    let at = bytes.as_ptr() as usize;
    at >= start && at < start + FRAMES.len()
}

/// A body of `len` placeholder bytes, in frames of at most [`FRAME`]. While it goes out, it
/// asks the kernel to read the next frame's pages of the file ahead of the socket
/// (`POSIX_FADV_WILLNEED`, which starts the reads and returns).
#[derive(Debug)]
pub(super) struct Placeholder {
    file: Arc<File>,
    next: u64,
    end: u64,
}

impl Placeholder {
    fn new(region: &FileRegion) -> Self {
        let body = Self { file: Arc::clone(&region.file), next: region.range.start, end: region.range.end };
        body.read_ahead(body.next);
        body
    }

    fn read_ahead(&self, from: u64) {
        let len = (self.end - from).min(FRAME as u64);
        if let Some(len) = std::num::NonZeroU64::new(len) {
            // Only a hint: an error just means the socket waits for the disk.
            let _ = rustix::fs::fadvise(&*self.file, from, Some(len), rustix::fs::Advice::WillNeed);
        }
    }
}

impl Body for Placeholder {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.next >= self.end {
            return Poll::Ready(None);
        }
        let n = usize::try_from(self.end - self.next).unwrap_or(FRAME).min(FRAME);
        self.next += n as u64;
        self.read_ahead(self.next);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FRAMES[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_finds_placeholder_bytes_by_address() {
        let zeros = [0u8; 8];
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        let frame = &FRAMES[..1024];
        let inner = &FRAMES[100..200];
        assert_eq!(split(&[]), Split::Plain(0));
        assert_eq!(split(&[IoSlice::new(head), IoSlice::new(&zeros)]), Split::Plain(2));
        assert_eq!(split(&[IoSlice::new(head), IoSlice::new(frame), IoSlice::new(head)]), Split::Plain(1));
        assert_eq!(split(&[IoSlice::new(&[]), IoSlice::new(inner), IoSlice::new(head)]), Split::File(100));
        assert_eq!(split(&[IoSlice::new(frame)]), Split::File(1024));
    }
}
