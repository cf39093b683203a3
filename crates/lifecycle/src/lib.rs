//! The cache's lifecycle: what leaves it and when. A periodic sweep enforces each group's TTL and
//! quota and the store-wide quota (least recently read first, pinned tags kept), deletes objects
//! no group references any more, collects garbage (objects no row knows, stale spools, abandoned
//! S3 multipart uploads); purges remove what an operator asks for, as jobs with progress; and
//! statistics say what each group holds and serves. What enters it on a schedule is here too:
//! warming (`warming`), each group's `warm` entries run when due by one node of the cluster, as
//! jobs with a report (`warm_report`). Admission verdicts leave only when an operator asks
//! (`forget_verdicts`).
//!
//! Deletion is always the same handshake (`metadata::sweep`): rows go first (in one transaction
//! with queueing the objects they were the last reference to, and announcing the removal), the
//! process that removed them forgets them at once ([`RemovalObserver`]) and every other control
//! plane within `removal_notice`, after which each object is claimed through its fill lease — which
//! a running fill holds, and which a committing fill claims in the same transaction as its row —
//! and deleted only if still unreferenced. So an object being filled is never deleted, a fill's
//! commit never records an object a sweeper is deleting, and no node hands out an object whose
//! bytes are gone.

mod core;
mod error;
mod metrics;
mod observer;
mod pins;
mod purge;
mod removals;
mod runner;
mod schedule;
mod settings;
mod stats;
mod sweep;
mod verdicts;
mod warm_report;
mod warming;

pub use core::Lifecycle;
pub use error::LifecycleError;
pub use metrics::LifecycleMetrics;
pub use observer::RemovalObserver;
pub use purge::{PurgeReport, PurgeRequest};
pub use runner::SweeperStatus;
pub use settings::{GroupPolicy, SweepSettings};
pub use stats::{GroupStats, HOURS, HourTraffic, StoreStats, UpstreamShare};
pub use sweep::SweepReport;
pub use warm_report::{WarmEntryReport, WarmOutcome, WarmPatternReport, WarmReport, WarmTagReport};
pub use warming::{
    PackageTarget, PackageVersions, PullFailure, PullFuture, PullOutcome, VersionsFuture, WARM_JOB_KIND,
    WarmError, WarmGroup, WarmPuller, WarmTarget, WarmTrigger, Warming,
};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod warming_tests;
