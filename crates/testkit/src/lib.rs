//! Test support: [`FakeRegistry`], an in-process upstream registry that counts every request and
//! misbehaves on command (statuses, truncation, wrong bytes, stalls, resets, redirects, lying
//! `Content-Length`, token auth, gated streaming), so tests can assert exactly what the proxy did;
//! and [`RecordingProxy`], a forward proxy that records where it is asked to go.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gate;
mod proxy;
mod raw;
mod registry;

pub use gate::Gate;
pub use proxy::RecordingProxy;
pub use registry::{FakeRegistry, Fault, RequestLog};
