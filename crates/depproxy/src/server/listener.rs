//! The accept loop, and what each connection is served with: its socket under the server's clocks,
//! TLS if given, HTTP/1.1 (and HTTP/2 with TLS, or without TLS when `http2` is on), and a service
//! around the router that enforces the per-request rules — `Host` on a loopback listener, the
//! per-client share behind a trusted proxy, the body and answer deadlines — and marks every
//! response `nosniff` (and its cookies `Secure` over TLS).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use supervisor::Supervisor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::body::{BodyDeadline, DeadlineBody};
use super::clients::{ClientCounts, ClientSlot};
use super::host::{HostPolicy, HostRefusal};
use super::limits::ServerLimits;
use super::metrics::ServerMetrics;
use super::paced::OneChunkHeld;
use super::state::{ConnectionState, InFlight};
use super::watched::Watched;

/// Connections the kernel queues before they are accepted. std's default (128) drops connection
/// attempts under a burst (a CI fleet starting at once) and makes clients retry after a second.
const LISTEN_BACKLOG: u32 = 4096;

/// Reports clients refused for having their share of connections, once a minute.
static PER_CLIENT_REFUSALS: telemetry::Throttle = telemetry::Throttle::new(Duration::from_secs(60));

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

/// What every connection of a listener shares.
struct Listening {
    router: Router,
    limits: ServerLimits,
    metrics: ServerMetrics,
    /// `Some` on a loopback listener: the names it answers.
    host_check: Option<HostPolicy>,
    clients: Arc<ClientCounts>,
    trusted_proxies: access::TrustedProxies,
    /// HTTP/1.1 and HTTP/2 (TLS, or h2c when allowed).
    any_version: auto::Builder<TokioExecutor>,
    /// HTTP/1.1 only (without TLS when h2c is not allowed).
    http1_only: auto::Builder<TokioExecutor>,
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
    let local = listener.local_addr()?;
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let any_version = builder(&limits);
    let listening = Arc::new(Listening {
        router,
        host_check: local.ip().to_canonical().is_loopback().then(|| limits.allowed_hosts.clone()),
        clients: ClientCounts::new(limits.max_connections_per_client),
        trusted_proxies: access::TrustedProxies::new(limits.trusted_proxies.to_vec()),
        http1_only: any_version.clone().http1_only(),
        any_version,
        limits,
        metrics,
    });
    // Each connection holds a receiver until it ends: the sender closes when all have.
    let (stop, stopping) = watch::channel(());
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
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let from_trusted_proxy =
            listening.limits.trusted_proxies.iter().any(|network| network.contains(&peer.ip()));
        // A trusted proxy's connections carry many clients: they are counted per request.
        let client_slot = if from_trusted_proxy {
            None
        } else {
            match listening.clients.take(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    listening.metrics.connection_refused("per_client");
                    if let Some(held_back) = PER_CLIENT_REFUSALS.admit() {
                        tracing::warn!(
                            client = %peer.ip(),
                            limit = listening.limits.max_connections_per_client,
                            held_back,
                            "a client address has max_connections_per_client connections open; its new ones are closed"
                        );
                    }
                    continue;
                }
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let connection = Connection {
            peer,
            from_trusted_proxy,
            tls: tls.is_some(),
            listening: listening.clone(),
            // Taken before the handshake, so a shutdown starting meanwhile still waits for it.
            stopping: stopping.clone(),
        };
        let open = listening.metrics.open.clone();
        open.inc();
        let tls = tls.clone();
        let header_read_timeout = listening.limits.header_read_timeout;
        tokio::spawn(async move {
            match tls {
                None => connection.serve(stream).await,
                // Boxed: a TLS session's state is several KiB, and inline it would size the task
                // of every plain connection too (10 000 idle keep-alive connections: ~50 MB).
                Some(acceptor) => {
                    Box::pin(async move {
                        match tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => connection.serve(stream).await,
                            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    })
                    .await
                }
            }
            open.dec();
            drop(client_slot);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(());
    drop(stopping);
    stop.closed().await;
    Ok(())
}

/// The connection builder of a listener: HTTP/1.1 and HTTP/2 under the listener's limits.
fn builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams.max(1))
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// What serving one accepted connection needs.
struct Connection {
    peer: SocketAddr,
    from_trusted_proxy: bool,
    tls: bool,
    listening: Arc<Listening>,
    stopping: watch::Receiver<()>,
}

impl Connection {
    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, stream: S) {
        let Connection { peer, from_trusted_proxy, tls, listening, mut stopping } = self;
        let state = Arc::new(ConnectionState::default());
        let limits = &listening.limits;
        let io = TokioIo::new(
            Watched::new(stream, limits.keepalive_timeout, limits.write_idle_timeout)
                .counted(listening.metrics.clone())
                .tracking(state.clone())
                .head_within(limits.header_read_timeout),
        );
        let request = Requests {
            peer,
            from_trusted_proxy,
            tls,
            listening: listening.clone(),
            connection: state.clone(),
        };
        let service = hyper::service::service_fn(move |incoming: hyper::Request<hyper::body::Incoming>| {
            // In flight from the request until its response body is dropped (sent or cut).
            let in_flight = InFlight::new(request.connection.clone());
            let answer = request.clone().answer(incoming, in_flight);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let builder = if tls || limits.http2 { &listening.any_version } else { &listening.http1_only };
        // Not `serve_connection_with_upgrades`: it ignores `http1_only`, and nothing here upgrades.
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            tokio::select! {
                outcome = connection.as_mut() => {
                    if let Err(error) = outcome {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                // The server stops: finish the requests in flight, take no new one.
                _ = stopping.changed(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = state.close_requested(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// One connection's requests: the rules each passes before the router, and what its answer gets.
#[derive(Clone)]
struct Requests {
    peer: SocketAddr,
    from_trusted_proxy: bool,
    tls: bool,
    listening: Arc<Listening>,
    connection: Arc<ConnectionState>,
}

impl Requests {
    async fn answer(
        self,
        mut request: hyper::Request<hyper::body::Incoming>,
        in_flight: InFlight,
    ) -> Response {
        let listening = &self.listening;
        let limits = &listening.limits;
        if let Some(policy) = &listening.host_check
            && let Err(refusal) = policy.check(&request)
        {
            listening.metrics.request_refused("host");
            return self.finish(host_refused(refusal), in_flight, None);
        }
        let Ok(client_slot) = self.client_slot(&request) else {
            listening.metrics.request_refused("per_client");
            let refused = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "this client has max_connections_per_client requests in flight; retry shortly\n",
                Some("1"),
            );
            return self.finish(refused, in_flight, None);
        };
        // The peer's address, for the gateway (client addresses) and the control plane.
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let from_fill = gateway::AnswerFromFill::default();
        request.extensions_mut().insert(from_fill.clone());
        let body_deadline = Arc::new(BodyDeadline::default());
        let request = request.map(|body| {
            axum::body::Body::new(DeadlineBody::new(body, limits.body_read_timeout, body_deadline.clone()))
        });
        let answer = listening.router.clone().oneshot(request);
        let response = match within(answer, limits.request_timeout, &from_fill).await {
            Some(response) => response,
            None => {
                listening.metrics.request_timed_out("answer");
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no answer within the request timeout; retry shortly\n",
                    Some("1"),
                )
            }
        };
        let response = if body_deadline.missed() {
            // Whatever the handler made of its broken body: the client was too slow. It does not
            // get to send another request on this connection.
            listening.metrics.request_timed_out("body");
            self.connection.close();
            plain(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time\n", None)
        } else {
            response
        };
        self.finish(response, in_flight, client_slot)
    }

    /// Behind a trusted proxy, the request counts for its client (by `X-Forwarded-For`) while in
    /// flight; a client with its share of requests in flight is refused.
    fn client_slot<B>(&self, request: &hyper::Request<B>) -> Result<Option<ClientSlot>, ClientBusy> {
        if !self.from_trusted_proxy {
            return Ok(None);
        }
        let forwarded_for =
            request.headers().get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok());
        let client = self.listening.trusted_proxies.client_address(self.peer.ip(), forwarded_for);
        self.listening.clients.take(client).map(Some).ok_or(ClientBusy)
    }

    /// What every response gets: `nosniff`, `Secure` cookies over TLS, and the guards that keep
    /// the request counted until its body is sent or dropped.
    fn finish(
        &self,
        mut response: Response,
        in_flight: InFlight,
        client_slot: Option<ClientSlot>,
    ) -> Response {
        let headers = response.headers_mut();
        headers.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
        if self.tls {
            mark_cookies_secure(headers);
        }
        let paced = response.extensions().get::<gateway::ReadAtClientPace>().is_some();
        response.map(move |body| {
            let body = http_body_util::BodyExt::map_frame(body, move |frame| {
                let _held = (&in_flight, &client_slot);
                frame
            });
            if paced { axum::body::Body::new(OneChunkHeld::new(body)) } else { axum::body::Body::new(body) }
        })
    }
}

/// A client behind a trusted proxy has its share of requests in flight.
struct ClientBusy;

/// The router's answer, unless it takes longer than `limit` and is not handed to a fill (then
/// the fill's own timers bound it).
async fn within(
    answer: impl Future<Output = Result<Response, Infallible>>,
    limit: Duration,
    from_fill: &gateway::AnswerFromFill,
) -> Option<Response> {
    tokio::pin!(answer);
    let answered = match tokio::time::timeout(limit, answer.as_mut()).await {
        Ok(answered) => answered,
        Err(_) if from_fill.is_marked() => answer.await,
        Err(_) => return None,
    };
    match answered {
        Ok(response) => Some(response),
        Err(never) => match never {},
    }
}

fn host_refused(refusal: HostRefusal) -> Response {
    match refusal {
        HostRefusal::NotAllowed => plain(
            StatusCode::MISDIRECTED_REQUEST,
            "this listener is on a loopback address: it answers requests for localhost, a loopback \
             address, or a name in [server] allowed_hosts only\n",
            None,
        ),
        HostRefusal::Missing => plain(StatusCode::BAD_REQUEST, "a Host header is required\n", None),
        HostRefusal::Malformed => {
            plain(StatusCode::BAD_REQUEST, "the Host header is not one host[:port]\n", None)
        }
    }
}

/// A plain-text answer of the listener's own.
fn plain(status: StatusCode, text: &'static str, retry_after: Option<&'static str>) -> Response {
    let mut response = Response::new(axum::body::Body::from(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
    }
    response
}

/// Adds `Secure` to every cookie set without it: over TLS a cookie must never travel in clear text
/// later (the admin API's session cookie).
fn mark_cookies_secure(headers: &mut HeaderMap) {
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| {
            let secure = value.to_str().is_ok_and(|text| {
                text.split(';').skip(1).any(|attribute| attribute.trim().eq_ignore_ascii_case("secure"))
            });
            if secure {
                return value.clone();
            }
            let mut marked = value.as_bytes().to_vec();
            marked.extend_from_slice(b"; Secure");
            HeaderValue::from_bytes(&marked).unwrap_or_else(|_| value.clone())
        })
        .collect();
    headers.remove(header::SET_COOKIE);
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
}
/// A bound listener and what it serves.
pub struct Served {
    /// What the listener is, in its log lines (`admin`, `metrics`).
    pub name: &'static str,
    pub listener: tokio::net::TcpListener,
    pub router: Router,
    pub limits: ServerLimits,
    pub metrics: ServerMetrics,
    pub tls: Option<TlsAcceptor>,
}

impl Served {
    /// Serves until `stop` is sent (or dropped).
    fn spawn(self, stop: tokio::sync::oneshot::Receiver<()>) -> tokio::task::JoinHandle<std::io::Result<()>> {
        let Served { listener, router, limits, metrics, tls, .. } = self;
        tokio::spawn(run_server_with_tls(listener, router, limits, metrics, tls, async move {
            let _ = stop.await;
        }))
    }
}

/// Serves `main` and `others` (the admin API, a metrics endpoint) until `signal`, then shuts down:
/// no listener accepts new connections; running requests, downloads and background work get
/// `grace` to finish; then background work is cancelled (cleaning up after itself) and the
/// connections still open on any listener are closed. `main` ending on its own ends the serving
/// (with its error); another listener's failure is logged, and the others go on.
pub async fn serve_until(
    main: Served,
    others: Vec<Served>,
    supervisor: &Supervisor,
    grace: Duration,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut stops = Vec::new();
    let mut stop_channel = || {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        stopped
    };
    let mut server = main.spawn(stop_channel());
    let mut side = tokio::task::JoinSet::new();
    for served in others {
        let name = served.name;
        let serving = served.spawn(stop_channel());
        side.spawn(async move {
            match serving.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "{name} listener failed"),
                Err(error) => tracing::error!(%error, "{name} listener failed"),
            }
        });
    }
    tokio::select! {
        finished = &mut server => {
            drop(stops);
            return finished.map_err(std::io::Error::other)?;
        }
        () = signal => {}
    }
    tracing::info!(grace = %telemetry::HumanDuration(grace), running = supervisor.len(),
        "shutting down: no new connections, draining");
    for stop in stops {
        let _ = stop.send(());
    }
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
    let every_listener = async {
        let finished = (&mut server).await;
        while side.join_next().await.is_some() {}
        finished
    };
    match tokio::time::timeout(left, every_listener).await {
        Ok(finished) => finished.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!("connections still open at the grace's end; closing them");
            server.abort();
            side.abort_all();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_over_tls_are_marked_secure_once() {
        let mut headers = HeaderMap::new();
        headers.append(header::SET_COOKIE, HeaderValue::from_static("session=abc; HttpOnly; Path=/"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("other=1; secure"));
        mark_cookies_secure(&mut headers);
        let cookies: Vec<&str> =
            headers.get_all(header::SET_COOKIE).iter().map(|value| value.to_str().unwrap()).collect();
        assert_eq!(cookies, ["session=abc; HttpOnly; Path=/; Secure", "other=1; secure"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_past_the_request_timeout_is_dropped_unless_a_fill_has_it() {
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(90)).await;
            Ok(Response::new(axum::body::Body::empty()))
        };
        let unmarked = gateway::AnswerFromFill::default();
        let started = tokio::time::Instant::now();
        assert!(within(slow(), Duration::from_secs(60), &unmarked).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(60));

        let marked = gateway::AnswerFromFill::default();
        let started = tokio::time::Instant::now();
        let waiting_on_a_fill = async {
            marked.mark();
            slow().await
        };
        assert!(within(waiting_on_a_fill, Duration::from_secs(60), &marked).await.is_some());
        assert_eq!(started.elapsed(), Duration::from_secs(90), "the fill's own timers bound it");
    }
}
