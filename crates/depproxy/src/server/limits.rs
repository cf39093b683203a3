//! A listener's limits and rules (`[server]`, `trusted_proxies`).

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::host::HostPolicy;

/// Limits of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Connections one client address may have open at once; beyond it a new connection is
    /// closed at once. A peer in `trusted_proxies` is not counted per connection: each of its
    /// requests counts for the client address its `X-Forwarded-For` resolves to, while in flight.
    pub max_connections_per_client: usize,
    /// Longest a client may take to send a request's headers (a request arriving byte by byte is
    /// cut off). hyper's header timer also runs while a kept-alive HTTP/1 connection waits for
    /// its next request, so it bounds the keep-alive idle time too. For HTTP/2 it bounds each
    /// header block, from its first frame.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request body, from the handler's first read of it
    /// (so the gap between two bytes is bounded too); then the request is answered `408` and
    /// the connection closed.
    pub body_read_timeout: Duration,
    /// Longest from a request's head to its response head, for what the proxy answers itself or
    /// from the control plane; a miss handed to a fill is bounded by the fill's own timers
    /// (`fill_queue_timeout`, the upstream timeouts) instead. Past it: `503`.
    pub request_timeout: Duration,
    /// A connection with no request in flight for this long is closed — and, for HTTP/1, with
    /// no byte in either direction. (A request waiting — for a fill slot, a slow upstream — is
    /// not idle; HTTP/2 PINGs and SETTINGS are not activity.)
    pub keepalive_timeout: Duration,
    /// A response the client stops reading for this long is dropped.
    pub write_idle_timeout: Duration,
    /// Largest request head (request line and headers; an HTTP/2 header list).
    pub max_header_bytes: usize,
    /// HTTP/2 streams a connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Whether a listener without TLS also speaks HTTP/2 (h2c, prior knowledge). With TLS,
    /// HTTP/2 is negotiated by ALPN whatever this says.
    pub http2: bool,
    /// Names a listener on a loopback address answers besides loopback ones.
    pub allowed_hosts: HostPolicy,
    /// Proxies whose `X-Forwarded-For` is believed (for counting their clients).
    pub trusted_proxies: Arc<[IpNet]>,
}
