//! The listeners: every accepted connection under the limits a public server needs — a cap on
//! connections, a header-read timeout (slowloris), a keep-alive idle timeout, a request-header
//! size limit, and a write-idle timeout for clients that stop reading (their stream is dropped;
//! a fill they followed goes on) — optionally TLS (the control plane's listener), responses read
//! from storage handed to the connection one chunk at a time, and shutdown: stop accepting, drain
//! within the grace period.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use futures_util::task::AtomicWaker;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use supervisor::Supervisor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    /// `idle` (no byte either way for the keep-alive timeout) or `write_idle` (the client stopped
    /// reading its response).
    reason: &'static str,
}

/// What the listeners count: connections open, and connections the server closed on a timer.
#[derive(Clone, Debug, Default)]
pub struct ServerMetrics {
    open: Gauge,
    closed: Family<ClosedLabels, Counter>,
}

impl ServerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = ServerMetrics::default();
        // Both reasons exist from the start (at 0), so rates and dashboards see no gaps.
        for reason in ["idle", "write_idle"] {
            let _ = metrics.closed.get_or_create(&ClosedLabels { reason });
        }
        registry.register("depproxy_connections_open", "Client connections open", metrics.open.clone());
        registry.register(
            "depproxy_connections_timed_out",
            "Client connections closed by the server's idle or write-idle timeout",
            metrics.closed.clone(),
        );
        metrics
    }

    fn timed_out(&self, reason: &'static str) {
        self.closed.get_or_create(&ClosedLabels { reason }).inc();
    }
}

/// Limits of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers (a request arriving byte by byte is
    /// cut off). hyper's header timer also runs while a kept-alive connection waits for its next
    /// request, so it bounds the keep-alive idle time too.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no byte in either direction for this long is
    /// closed. (A request waiting — for a fill slot, a slow upstream — is not idle.)
    pub keepalive_timeout: Duration,
    /// A response the client stops reading for this long is dropped.
    pub write_idle_timeout: Duration,
    /// Largest request head (request line and headers).
    pub max_header_bytes: usize,
}

/// Connections the kernel queues before they are accepted. std's default (128) drops connection
/// attempts under a burst (a CI fleet starting at once) and makes clients retry after a second.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket with a deep accept queue (the kernel caps it at `net.core.somaxconn`).
pub fn bind(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for the open connections.
/// Every accepted connection gets `TCP_NODELAY`: responses are written as a header block and a
/// streamed body, and with Nagle's algorithm a small body (a manifest) would wait for the
/// client's delayed ACK — 40 ms per request on a kept-alive connection.
pub async fn run_server(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServerLimits,
    metrics: ServerMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_server_with_tls(listener, router, limits, metrics, None, shutdown).await
}

/// [`run_server`], with TLS on every connection when `tls` is given. The handshake happens on the
/// connection's own task, bounded by the header-read timeout, so a slow or silent client holds a
/// connection permit no longer than a slow plain-HTTP one.
pub async fn run_server_with_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServerLimits,
    metrics: ServerMetrics,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let connection = Connection {
            peer,
            router: router.clone(),
            builder: builder.clone(),
            limits,
            metrics: metrics.clone(),
            // Taken before the handshake, so a shutdown starting meanwhile still waits for it.
            watcher: graceful.watcher(),
        };
        let open = metrics.open.clone();
        open.inc();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection.serve(stream).await,
                // Boxed: a TLS session's state is several KiB, and inline it would size the task
                // of every plain connection too (10 000 idle keep-alive connections: ~50 MB).
                Some(acceptor) => {
                    Box::pin(async move {
                        match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await
                        {
                            Ok(Ok(stream)) => connection.serve(stream).await,
                            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    })
                    .await
                }
            }
            open.dec();
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// What serving one accepted connection needs.
struct Connection {
    peer: std::net::SocketAddr,
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    limits: ServerLimits,
    metrics: ServerMetrics,
    watcher: Watcher,
}

impl Connection {
    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, stream: S) {
        let Connection { peer, router, builder, limits, metrics, watcher } = self;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let io = TokioIo::new(
            Watched::new(stream, limits.keepalive_timeout, limits.write_idle_timeout)
                .counted(metrics)
                .busy_while(in_flight.clone()),
        );
        let service =
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                // The peer's address, for the gateway (client addresses) and the control plane.
                request.extensions_mut().insert(ConnectInfo(peer));
                // In flight from the request until its response body is dropped (sent or cut).
                let guard = InFlight::new(in_flight.clone());
                let answer = router.clone().oneshot(request.map(axum::body::Body::new));
                async move {
                    let response = answer.await?;
                    let paced = response.extensions().get::<gateway::ReadAtClientPace>().is_some();
                    Ok::<_, std::convert::Infallible>(response.map(move |body| {
                        let body = http_body_util::BodyExt::map_frame(body, move |frame| {
                            let _held = &guard;
                            frame
                        });
                        if paced {
                            axum::body::Body::new(OneChunkHeld::new(body))
                        } else {
                            axum::body::Body::new(body)
                        }
                    }))
                }
            });
        let connection = watcher.watch(builder.serve_connection_with_upgrades(io, service).into_owned());
        if let Err(error) = connection.await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// A response body handed to the connection one chunk at a time: the next chunk is taken only once
/// the connection has let the previous one go (written it to the socket). hyper keeps taking
/// chunks while its write buffer has room; for a client reading slowly, that buffer stays full,
/// and a chunk or two per connection (up to 128 KiB) would sit in memory waiting for it.
struct OneChunkHeld<B> {
    inner: B,
    hand_off: Arc<HandOff>,
}

/// Whether a chunk handed on is still held, and who waits for it to be let go.
#[derive(Default)]
struct HandOff {
    held: AtomicBool,
    waiting: AtomicWaker,
}

/// A chunk's bytes; dropping them (the connection has written them) lets the next chunk go.
struct HeldChunk {
    bytes: bytes::Bytes,
    hand_off: Arc<HandOff>,
}

impl AsRef<[u8]> for HeldChunk {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for HeldChunk {
    fn drop(&mut self) {
        self.hand_off.held.store(false, Ordering::Release);
        self.hand_off.waiting.wake();
    }
}

impl<B> OneChunkHeld<B> {
    fn new(inner: B) -> Self {
        OneChunkHeld { inner, hand_off: Arc::default() }
    }
}

impl<B> http_body::Body for OneChunkHeld<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
        let this = &mut *self;
        if this.hand_off.held.load(Ordering::Acquire) {
            this.hand_off.waiting.register(cx.waker());
            // Let go between the first look and the registration: its wake-up may be lost.
            if this.hand_off.held.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        Poll::Ready(frame.map(|frame| {
            frame.map(|frame| match frame.into_data() {
                Ok(bytes) if !bytes.is_empty() => {
                    this.hand_off.held.store(true, Ordering::Release);
                    let held = HeldChunk { bytes, hand_off: this.hand_off.clone() };
                    http_body::Frame::data(bytes::Bytes::from_owner(held))
                }
                Ok(bytes) => http_body::Frame::data(bytes),
                Err(frame) => frame,
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A TLS acceptor for a listener, from PEM files: the certificate chain (leaf first) and its
/// private key. HTTP/2 and HTTP/1.1 are offered by ALPN.
pub fn tls_acceptor(cert_pem: &std::path::Path, key_pem: &std::path::Path) -> Result<TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let unreadable = |path: &std::path::Path| {
        let path = path.to_owned();
        move |error: rustls::pki_types::pem::Error| TlsError::Pem { path, message: error.to_string() }
    };
    let certificates = CertificateDer::pem_file_iter(cert_pem)
        .map_err(unreadable(cert_pem))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable(cert_pem))?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            path: cert_pem.to_owned(),
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(unreadable(key_pem))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Why a listener's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {message}", path.display())]
    Pem { path: std::path::PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// Serves `router` on `listener` until `signal`, then shuts down: no new connections; running
/// requests, downloads and background work get `grace` to finish; then background work is
/// cancelled (cleaning up after itself) and the connections still open are closed.
#[allow(clippy::too_many_arguments)]
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServerLimits,
    metrics: ServerMetrics,
    tls: Option<TlsAcceptor>,
    supervisor: &Supervisor,
    grace: Duration,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(run_server_with_tls(listener, router, limits, metrics, tls, async move {
        let _ = stopped.await;
    }));
    tokio::select! {
        finished = &mut server => return finished.map_err(std::io::Error::other)?,
        () = signal => {}
    }
    tracing::info!(grace = %telemetry::HumanDuration(grace), running = supervisor.len(),
        "shutting down: no new connections, draining");
    let _ = stop.send(());
    let started = tokio::time::Instant::now();
    let report = supervisor.shutdown(grace).await;
    if report.drained() {
        tracing::info!(finished = report.running_at_start, "background work finished");
    } else {
        let cancelled: Vec<String> =
            report.cancelled.iter().map(|task| format!("{} {}", task.kind, task.name)).collect();
        tracing::warn!(
            ?cancelled,
            aborted = report.aborted.len(),
            "background work cancelled at the grace's end"
        );
    }
    let left = grace.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, &mut server).await {
        Ok(finished) => finished.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!("connections still open at the grace's end; closing them");
            server.abort();
            Ok(())
        }
    }
}

/// Counts a connection's requests in flight while alive.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's socket with two clocks: no request in flight and no byte in either direction
/// for `idle` closes it; a write that cannot make progress for `write_idle` (the client stopped
/// reading) fails it.
struct Watched<S> {
    inner: S,
    in_flight: Option<Arc<AtomicUsize>>,
    idle: Duration,
    write_idle: Duration,
    last_activity: Instant,
    idle_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    metrics: Option<ServerMetrics>,
}

impl<S> Watched<S> {
    fn new(inner: S, idle: Duration, write_idle: Duration) -> Self {
        Watched {
            inner,
            in_flight: None,
            idle,
            write_idle,
            last_activity: Instant::now(),
            idle_timer: None,
            write_timer: None,
            metrics: None,
        }
    }

    fn counted(mut self, metrics: ServerMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The connection is not idle while `count` > 0.
    fn busy_while(mut self, count: Arc<AtomicUsize>) -> Self {
        self.in_flight = Some(count);
        self
    }

    fn busy(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|count| count.load(Ordering::Acquire) > 0)
    }

    fn timed_out(&self, reason: &'static str, message: &'static str) -> std::io::Error {
        if let Some(metrics) = &self.metrics {
            metrics.timed_out(reason);
        }
        std::io::Error::new(std::io::ErrorKind::TimedOut, message)
    }

    /// Records activity. The armed idle timer stays: when it fires at its old deadline, the next
    /// read re-checks against the new one (dropping it here would leave a read that already
    /// returned `Pending` with nothing to wake it).
    fn active(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Whether the connection has been idle too long (arms the timer that wakes us to find out).
    /// A busy connection counts as active: its idle time starts when its last request ends.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.busy() {
            self.last_activity = Instant::now();
        }
        let deadline = self.last_activity + self.idle;
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
            Poll::Pending if this.write_timer.is_none() && this.idle_expired(cx) => {
                Poll::Ready(Err(this.timed_out("idle", "the connection was idle too long")))
            }
            Poll::Pending => Poll::Pending,
            ready => {
                if buf.filled().len() > before {
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

    use super::*;

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

    #[tokio::test]
    async fn a_paced_body_hands_on_its_next_chunk_only_once_the_previous_is_let_go() {
        use http_body_util::BodyExt as _;
        let chunks = ["one", "two", "three"].map(|chunk| Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)));
        let mut body = OneChunkHeld::new(axum::body::Body::from_stream(futures_util::stream::iter(chunks)));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "one");
        let mut next = body.frame();
        assert!(futures_util::poll!(&mut next).is_pending(), "the first chunk is still held");
        let kept = first.clone();
        drop(first);
        assert!(futures_util::poll!(&mut next).is_pending(), "a clone holds the chunk too");
        drop(kept);
        let second = next.await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "two");
        drop(second);
        let third = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(third, "three");
        drop(third);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn letting_a_held_chunk_go_wakes_the_connection_waiting_for_the_next() {
        use http_body_util::BodyExt as _;
        let chunks = ["one", "two"].map(|chunk| Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)));
        let mut body = OneChunkHeld::new(axum::body::Body::from_stream(futures_util::stream::iter(chunks)));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        // The connection's task waits for the next chunk; another task writes the first out.
        let writer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            drop(first);
        });
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "two");
        writer.await.unwrap();
    }
}
