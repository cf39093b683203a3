//! The registry client: one per configured upstream, long-lived, with a pooled HTTP client,
//! auth discovered from the `WWW-Authenticate` challenge (anonymous, Basic or Bearer tokens cached
//! until they expire), manifest/blob HEADs, and the streaming GET the gateway runs for a fill.
//!
//! Errors are classified so callers can answer clients correctly (404 stays 404, connect → 502,
//! timeout → 504, 429 keeps `Retry-After`, auth refusal says the upstream refused); a group with
//! several upstreams asks them in order ([`Attempts`]).

mod auth;
mod client;
mod egress;
mod error;
mod failover;
mod http;
mod metrics;
mod packages;
mod proxy;
mod status;

pub use auth::Credentials;
pub use client::{MetadataDocument, ObjectHead, TagList, UpstreamClient, UpstreamConfig};
pub use egress::{AllowEntry, BadAllowEntry, EgressPolicy, EgressRefusal, MAX_REDIRECTS, is_public};
pub use error::UpstreamError;
pub use failover::Attempts;
pub use http::{EgressClient, HttpOptions, build_http_client, open_stream};
pub use metrics::{RequestKind, UpstreamMetrics, host_label, host_label_of};
pub use packages::{PackageDocument, PassedThrough};
pub use proxy::{BadProxy, EgressProxy};
pub use status::{LastError, RateLimit, UpstreamHealth, UpstreamStatus};
