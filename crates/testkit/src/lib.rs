//! Test support: [`FakeRegistry`], an in-process upstream registry that counts every request and
//! misbehaves on command (statuses, truncation, wrong bytes, stalls, resets, redirects, lying
//! `Content-Length`, token auth, gated streaming), so tests can assert exactly what the proxy did.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gate;
mod raw;
mod registry;

pub use gate::Gate;
pub use registry::{FakeRegistry, Fault, RequestLog};
