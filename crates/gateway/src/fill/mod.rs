//! Single-flight fills: the first miss of an object starts a *detached* task (under the
//! supervisor) that fetches it from upstream into a staged upload, publishing its progress. Every
//! client of the object — the first one too — tails the upload's spool at its own pace. Clients
//! never own the fill: one that leaves changes nothing for the others or for the cache.
//!
//! State machine (published on a `watch` channel):
//!
//! ```text
//! Connecting ──headers 2xx──▶ Streaming{spool} ──verified──▶ Verified ──persisted+recorded──▶ Committed
//!      │                            │
//!      └──error──▶ Failed ◀──error / mismatch / too large / idle timeout / shutdown──┘
//! ```
//! The fill task dropping its sender without a final state also counts as failure. The in-flight
//! entry is removed *before* the final state is published, so a request arriving later never
//! joins a finished fill: it asks the control plane again and finds the object cached (or starts
//! a new fill after a failure).
//!
//! - [`registry`]: which fills run, by fill key; joining or registering one.
//! - [`admission`]: how many fills may run, overall and per client; the fair queue beyond.
//! - [`task`]: the fill itself: upstream stream → storage, verify, persist, finalize.
//! - [`control_calls`]: the fill's calls to the control plane (authorize, lease renewal, finalize).
//! - [`tail`]: one client's reader of a running fill.
//! - [`recent`]: the fill's recent bytes in memory, where followers read first.

mod admission;
mod control_calls;
mod recent;
mod registry;
mod state;
mod tail;
mod task;

pub use admission::FillLimits;
pub(crate) use admission::{Admission, Busy};
pub use registry::Fills;
pub(crate) use state::{FillState, Finished, finished, started};
pub(crate) use tail::Tail;
pub(crate) use task::join_or_start;
