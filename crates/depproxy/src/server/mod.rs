//! The listeners: every accepted connection under the limits a public server needs — a cap on
//! connections overall and per client address, a header-read timeout (slowloris), a body-read
//! timeout, a deadline for the proxy's own answers, a keep-alive idle timeout that HTTP/2 PINGs
//! do not reset, a request-header size limit, a cap on HTTP/2 streams per connection, and a
//! write-idle timeout for clients that stop reading (their stream is dropped; a fill they
//! followed goes on) — optionally TLS with certificates re-read on SIGHUP, `Host` checked on a
//! loopback listener (DNS rebinding), responses read from storage handed to the connection one
//! chunk at a time, and shutdown: stop accepting, drain within the grace period.

mod body;
mod clients;
mod host;
mod limits;
mod listener;
mod metrics;
mod paced;
mod state;
mod tls;
mod watched;

pub use host::{Host, HostPolicy, MalformedHost};
pub use limits::ServerLimits;
pub use listener::{Served, bind, run_server, run_server_with_tls, serve_until};
pub use metrics::ServerMetrics;
pub use tls::{TlsCertificate, TlsError};
