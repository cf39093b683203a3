//! A connection's socket under the server's clocks: idle (no request in flight — and, for
//! HTTP/1, no byte either way — for the keep-alive timeout closes it), write-idle (a write that
//! cannot make progress fails it), and for HTTP/2 a header block not finished within the
//! header-read timeout. The socket sees the bytes go by, so it tells HTTP/2 from HTTP/1 by the
//! connection preface and follows HTTP/2's frame boundaries: PING, SETTINGS and the like do not
//! keep an HTTP/2 connection alive — only open streams do.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::metrics::ServerMetrics;
use super::state::ConnectionState;

/// How long a connection the server asked to close may stay open after its last request.
const CLOSING_GRACE: Duration = Duration::from_millis(500);

/// The bytes every HTTP/2 connection opens with (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// What the connection speaks, as far as the bytes read so far tell.
#[derive(Debug)]
enum Framing {
    /// Matching the HTTP/2 preface: this many bytes so far.
    Detecting(usize),
    Http1,
    Http2(Frames),
}

/// Where the reader is in HTTP/2's frames.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; FRAME_HEADER],
    header_filled: usize,
    payload_left: usize,
    kind: u8,
    flags: u8,
    /// A header block (HEADERS, then CONTINUATION frames) begun and not finished.
    head_open: bool,
}

impl Frames {
    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let taken = self.payload_left.min(bytes.len());
                self.payload_left -= taken;
                bytes = &bytes[taken..];
                if self.payload_left == 0 {
                    self.frame_done();
                }
                continue;
            }
            let taken = (FRAME_HEADER - self.header_filled).min(bytes.len());
            self.header[self.header_filled..self.header_filled + taken].copy_from_slice(&bytes[..taken]);
            self.header_filled += taken;
            bytes = &bytes[taken..];
            if self.header_filled == FRAME_HEADER {
                self.header_filled = 0;
                let [a, b, c, kind, flags, ..] = self.header;
                self.payload_left = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                self.kind = kind;
                self.flags = flags;
                if kind == HEADERS || kind == CONTINUATION {
                    self.head_open = true;
                }
                if self.payload_left == 0 {
                    self.frame_done();
                }
            }
        }
    }

    fn frame_done(&mut self) {
        if (self.kind == HEADERS || self.kind == CONTINUATION) && self.flags & END_HEADERS != 0 {
            self.head_open = false;
        }
    }
}

impl Framing {
    fn observe(&mut self, bytes: &[u8]) {
        match self {
            Framing::Http1 => {}
            Framing::Http2(frames) => frames.observe(bytes),
            Framing::Detecting(matched) => {
                let wanted = &PREFACE[*matched..];
                let common = wanted.len().min(bytes.len());
                if bytes[..common] != wanted[..common] {
                    *self = Framing::Http1;
                } else if common == wanted.len() {
                    let mut frames = Frames::default();
                    frames.observe(&bytes[common..]);
                    *self = Framing::Http2(frames);
                } else {
                    *matched += common;
                }
            }
        }
    }

    fn is_http2(&self) -> bool {
        matches!(self, Framing::Http2(_))
    }

    fn head_open(&self) -> bool {
        matches!(self, Framing::Http2(frames) if frames.head_open)
    }
}

/// A connection's socket with its clocks.
pub(crate) struct Watched<S> {
    inner: S,
    connection: Option<Arc<ConnectionState>>,
    idle: Duration,
    write_idle: Duration,
    head_limit: Duration,
    last_activity: Instant,
    idle_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    head_timer: Option<Pin<Box<Sleep>>>,
    framing: Framing,
    metrics: Option<ServerMetrics>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, idle: Duration, write_idle: Duration) -> Self {
        Watched {
            inner,
            connection: None,
            idle,
            write_idle,
            head_limit: Duration::MAX,
            last_activity: Instant::now(),
            idle_timer: None,
            write_timer: None,
            head_timer: None,
            framing: Framing::Detecting(0),
            metrics: None,
        }
    }

    pub(crate) fn counted(mut self, metrics: ServerMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The connection is not idle while it has a request in flight, and closes soon after its
    /// last one once the server asks it to.
    pub(crate) fn tracking(mut self, connection: Arc<ConnectionState>) -> Self {
        self.connection = Some(connection);
        self
    }

    /// An HTTP/2 header block must be finished within `limit` of its first frame.
    pub(crate) fn head_within(mut self, limit: Duration) -> Self {
        self.head_limit = limit;
        self
    }

    fn busy(&self) -> bool {
        self.connection.as_ref().is_some_and(|connection| connection.busy())
    }

    fn closing(&self) -> bool {
        self.connection.as_ref().is_some_and(|connection| connection.closing())
    }

    fn timed_out(&self, reason: &'static str, message: &'static str) -> std::io::Error {
        if let Some(metrics) = &self.metrics {
            metrics.timed_out(reason);
        }
        std::io::Error::new(std::io::ErrorKind::TimedOut, message)
    }

    /// Records traffic. For HTTP/2 it is not activity: frames such as PING cost a client
    /// nothing, and only open streams keep the connection. The armed idle timer stays: when it
    /// fires at its old deadline, the next read re-checks against the new one (dropping it here
    /// would leave a read that already returned `Pending` with nothing to wake it).
    fn active(&mut self) {
        if !self.framing.is_http2() {
            self.last_activity = Instant::now();
        }
    }

    /// Follows the bytes read: HTTP/2's header blocks start and stop the head timer.
    fn observe(&mut self, bytes: &[u8]) {
        self.framing.observe(bytes);
        if !self.framing.head_open() {
            self.head_timer = None;
        } else if self.head_timer.is_none() {
            let limit = self.head_limit;
            self.head_timer = Some(Box::pin(tokio::time::sleep(limit)));
        }
    }

    /// Whether an HTTP/2 header block has been open too long.
    fn head_expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.head_timer.as_mut().is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }

    /// Whether the connection has been idle too long (arms the timer that wakes us to find out).
    /// A busy connection counts as active: its idle time starts when its last request ends.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.busy() {
            self.last_activity = Instant::now();
        } else if let Some(ended) = self.connection.as_ref().and_then(|connection| connection.last_ended()) {
            self.last_activity = self.last_activity.max(ended);
        }
        let idle = if self.closing() { self.idle.min(CLOSING_GRACE) } else { self.idle };
        let deadline = self.last_activity + idle;
        let timer = self.idle_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// Whether a pending write has been stuck too long (arms its timer on the first pending poll).
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let stall = self.write_idle;
        let timer = self.write_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        timer.as_mut().poll(cx).is_ready()
    }

    fn written<T>(
        &mut self,
        outcome: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match outcome {
            Poll::Pending if self.write_stalled(cx) => {
                Poll::Ready(Err(self.timed_out("write_idle", "the client stopped reading")))
            }
            Poll::Pending => Poll::Pending,
            ready => {
                self.write_timer = None;
                self.active();
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending if this.head_expired(cx) => {
                Poll::Ready(Err(this.timed_out("head", "an HTTP/2 request head did not arrive in time")))
            }
            Poll::Pending if this.write_timer.is_none() && this.idle_expired(cx) => {
                Poll::Ready(Err(this.timed_out("idle", "the connection was idle too long")))
            }
            Poll::Pending => Poll::Pending,
            ready => {
                if buf.filled().len() > before {
                    this.observe(&buf.filled()[before..]);
                    this.active();
                }
                ready
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.written(outcome, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(outcome, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_flush(cx);
        this.written(outcome, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::super::state::InFlight;
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let length = payload.len();
        let mut frame =
            vec![(length >> 16) as u8, (length >> 8) as u8, length as u8, kind, flags, 0, 0, 0, 1];
        frame.extend_from_slice(payload);
        frame
    }

    const PING: u8 = 0x6;
    const SETTINGS: u8 = 0x4;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_fails_the_write_after_the_write_idle_time() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut watched = Watched::new(ours, Duration::from_secs(600), Duration::from_secs(30));
        let started = Instant::now();
        let outcome = watched.write_all(&vec![0u8; 1 << 20]).await;
        assert_eq!(outcome.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_and_an_active_one_is_not() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut watched = Watched::new(ours, Duration::from_secs(10), Duration::from_secs(30));
        let mut buf = [0u8; 4];
        let reader = tokio::spawn(async move {
            let first = watched.read_exact(&mut buf).await.map(|_| buf);
            let second = watched.read(&mut buf).await;
            (first, second)
        });
        tokio::time::sleep(Duration::from_secs(8)).await;
        theirs.write_all(b"ping").await.unwrap();
        let (first, second) = reader.await.unwrap();
        assert_eq!(&first.unwrap(), b"ping", "activity before the idle time keeps it open");
        assert_eq!(second.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    }

    /// Reads everything until the socket fails; how long that took.
    async fn read_until_error(mut watched: Watched<tokio::io::DuplexStream>) -> (std::io::Error, Duration) {
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match watched.read(&mut buf).await {
                Ok(0) => panic!("closed by the peer"),
                Ok(_) => {}
                Err(error) => return (error, started.elapsed()),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pings_and_settings_do_not_keep_an_http2_connection_without_streams() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let watched = Watched::new(ours, Duration::from_secs(10), Duration::from_secs(30))
            .tracking(Arc::new(ConnectionState::default()));
        let reader = tokio::spawn(read_until_error(watched));
        theirs.write_all(PREFACE).await.unwrap();
        theirs.write_all(&frame(SETTINGS, 0, &[])).await.unwrap();
        // A PING every second, for ever: bytes, but no stream.
        let pinger = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if theirs.write_all(&frame(PING, 0, &[0; 8])).await.is_err() {
                    return;
                }
            }
        });
        let (error, after) = reader.await.unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(after, Duration::from_secs(10), "closed at the idle time, pings or not");
        pinger.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn pings_keep_an_http1_connection_as_before() {
        // The same bytes without the preface are HTTP/1 traffic: activity, as for any HTTP/1 byte.
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let watched = Watched::new(ours, Duration::from_secs(10), Duration::from_secs(30));
        let reader = tokio::spawn(read_until_error(watched));
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            theirs.write_all(b"x").await.unwrap();
        }
        let (error, after) = reader.await.unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(after, Duration::from_secs(25), "10 s after the last byte");
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_with_a_stream_in_flight_is_not_idle() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let connection = Arc::new(ConnectionState::default());
        let watched =
            Watched::new(ours, Duration::from_secs(10), Duration::from_secs(30)).tracking(connection.clone());
        let reader = tokio::spawn(read_until_error(watched));
        theirs.write_all(PREFACE).await.unwrap();
        let stream = InFlight::new(connection.clone());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!reader.is_finished(), "a stream in flight keeps the connection");
        drop(stream);
        // Wake the reader, as the stream's end does hyper's connection task.
        theirs.write_all(&frame(PING, 0, &[0; 8])).await.unwrap();
        let (error, after) = reader.await.unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(after, Duration::from_secs(70), "idle from the stream's end");
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_header_block_left_unfinished_is_cut_at_the_head_limit() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let connection = Arc::new(ConnectionState::default());
        let watched = Watched::new(ours, Duration::from_secs(600), Duration::from_secs(30))
            .tracking(connection.clone())
            .head_within(Duration::from_secs(5));
        let reader = tokio::spawn(read_until_error(watched));
        // Another stream in flight: the idle rule does not apply; only the head limit can.
        let _other = InFlight::new(connection);
        theirs.write_all(PREFACE).await.unwrap();
        // A finished header block, then one whose CONTINUATION never comes.
        theirs.write_all(&frame(HEADERS, END_HEADERS, b"block")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(!reader.is_finished(), "a finished head starts no clock");
        let started = Instant::now();
        theirs.write_all(&frame(HEADERS, 0, b"first half")).await.unwrap();
        theirs.write_all(&frame(CONTINUATION, 0, b"more")).await.unwrap();
        let (error, _) = reader.await.unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn frames_are_followed_across_reads_of_any_size() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(SETTINGS, 0, &[0; 12]));
        bytes.extend(frame(HEADERS, 0, &[7; 40]));
        let open_at = bytes.len();
        bytes.extend(frame(CONTINUATION, END_HEADERS, &[7; 3]));
        let closed_at = bytes.len();
        for step in [1, 2, 5, 9, 10, 64] {
            let mut framing = Framing::Detecting(0);
            for (offset, chunk) in bytes.chunks(step).enumerate() {
                framing.observe(chunk);
                let end = (offset + 1) * step;
                if end >= open_at && end < closed_at {
                    assert!(framing.head_open(), "step {step}: open at {end}");
                }
            }
            assert!(framing.is_http2() && !framing.head_open(), "step {step}");
        }
        let mut http1 = Framing::Detecting(0);
        http1.observe(b"PRI * HTTP/1.1\r\n");
        assert!(matches!(http1, Framing::Http1));
    }
}
