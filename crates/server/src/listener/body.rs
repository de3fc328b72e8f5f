//! A request body that fails when the client sends it too slowly.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// `inner`, failing with [`std::io::ErrorKind::TimedOut`] when an `interval` spent waiting for
/// it brings fewer than `rate × interval` bytes (with `rate` 0: no byte at all). Only time
/// spent waiting counts: time the handler spends elsewhere (storage that is slow to take the
/// bytes) does not.
#[derive(Debug)]
pub(super) struct MinRate<B> {
    inner: B,
    interval: Duration,
    /// Bytes each interval must bring (at least one).
    needed: u64,
    /// Waiting time and bytes of the current interval.
    waited: Duration,
    bytes: u64,
    pending_since: Option<Instant>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> MinRate<B> {
    pub(super) fn new(inner: B, interval: Duration, rate: u64) -> Self {
        let needed = (u128::from(rate) * interval.as_millis() / 1000).max(1);
        Self {
            inner,
            interval,
            needed: u64::try_from(needed).unwrap_or(u64::MAX),
            waited: Duration::ZERO,
            bytes: 0,
            pending_since: None,
            sleep: None,
        }
    }

    /// Time waited in this interval, the current wait included.
    fn waited(&self, now: Instant) -> Duration {
        self.waited + self.pending_since.map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// At the end of an interval: an error if it brought too little, else a new interval.
    fn check(&mut self, now: Instant) -> Result<(), std::io::Error> {
        if self.waited(now) < self.interval {
            return Ok(());
        }
        if self.bytes < self.needed {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the request body brought {} bytes in {} s of waiting, fewer than the {} required",
                    self.bytes,
                    self.interval.as_secs_f64(),
                    self.needed
                ),
            ));
        }
        self.waited = Duration::ZERO;
        self.bytes = 0;
        if self.pending_since.is_some() {
            self.pending_since = Some(now);
        }
        Ok(())
    }
}

impl<B> Body for MinRate<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(frame) => {
                    let now = Instant::now();
                    if let Some(since) = this.pending_since.take() {
                        this.waited += now.saturating_duration_since(since);
                    }
                    this.sleep = None;
                    if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                        this.bytes += data.map_or(0, |d| d.len() as u64);
                    }
                    if let Err(e) = this.check(now) {
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                    return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
                }
                Poll::Pending => {
                    let now = Instant::now();
                    this.pending_since.get_or_insert(now);
                    if let Err(e) = this.check(now) {
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                    let wake = now + this.interval.saturating_sub(this.waited(now));
                    let sleep =
                        this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(wake.into())));
                    if sleep.deadline() != wake.into() {
                        sleep.as_mut().reset(wake.into());
                    }
                    match sleep.as_mut().poll(cx) {
                        // The interval ended while waiting: check it (above) on the next turn.
                        Poll::Ready(()) => {}
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    /// A body fed by a channel: the test decides when each frame comes.
    fn channel() -> (tokio::sync::mpsc::Sender<Bytes>, impl Body<Data = Bytes, Error = std::io::Error> + Unpin)
    {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let stream = tokio_stream_like(rx);
        (tx, http_body_util::StreamBody::new(stream))
    }

    fn tokio_stream_like(
        mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_byte_now_and_then_is_cut_off_and_a_steady_body_is_not() {
        // 1 KiB/s over 10 s intervals: a byte every 2 s fails at the end of the first interval.
        let (tx, inner) = channel();
        let mut body = MinRate::new(inner, Duration::from_secs(10), 1024);
        let feeder = tokio::spawn(async move {
            loop {
                if tx.send(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        let started = tokio::time::Instant::now();
        let error = loop {
            match body.frame().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => break e,
                None => panic!("the body ended"),
            }
        };
        assert!(error.to_string().contains("fewer than the 10240 required"), "{error}");
        assert!(started.elapsed() <= Duration::from_secs(11), "{:?}", started.elapsed());
        feeder.abort();
        // 2 KiB every second passes interval after interval.
        let (tx, inner) = channel();
        let mut body = MinRate::new(inner, Duration::from_secs(10), 1024);
        tokio::spawn(async move {
            for _ in 0..35 {
                tx.send(Bytes::from(vec![0u8; 2048])).await.expect("send");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut total = 0;
        while let Some(frame) = body.frame().await {
            total += frame.expect("a steady body").into_data().map_or(0, |d| d.len());
        }
        assert_eq!(total, 35 * 2048);
    }
}
