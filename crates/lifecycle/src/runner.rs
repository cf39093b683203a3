//! When sweeps run: every `sweep_interval`, and at once when commits push a group or the store
//! past its high watermark, so a quota holds between sweeps too.

use std::sync::Arc;
use std::time::Duration;

use cache::CommitObserver;
use oci::GroupPath;
use supervisor::StopSignal;

use crate::core::Lifecycle;
use crate::settings::watermark;

/// The sweeper of this process, as the admin API shows it.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct SweeperStatus {
    pub running: bool,
    /// Sweeps completed since the process started.
    pub completed: u64,
}

impl CommitObserver for Lifecycle {
    fn committed(&self, group: &GroupPath, bytes: u64) {
        let high = self.settings.high_watermark;
        let group_max = self.group(group.as_str()).and_then(|group| group.policy.max_size);
        let store_max = self.settings.max_size;
        let (group_bytes, store_bytes) =
            self.schedule.committed(group.as_str(), bytes, |group_bytes, store_bytes| {
                group_max.is_some_and(|max| group_bytes > watermark(max, high))
                    || store_max.is_some_and(|max| store_bytes > watermark(max, high))
            });
        // The gauges follow commits between measurements (an object already stored by another
        // group counts twice in the store's until the next one).
        self.metrics.group_bytes(group.as_str(), group_bytes);
        self.metrics.store_bytes(store_bytes);
    }
}

impl Lifecycle {
    /// Sweeps every `every` and when nudged, until the process drains.
    pub async fn run(self: Arc<Self>, every: Duration, signal: StopSignal) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = signal.draining() => return,
                () = self.schedule.next(&mut ticks) => {}
            }
            self.schedule.sweep_started();
            match self.sweep().await {
                Ok(report) if report.skipped => tracing::debug!("another node is sweeping"),
                Ok(report) => report.log(),
                Err(error) => tracing::warn!(%error, "sweep failed; the next one carries on"),
            }
            self.schedule.sweep_finished();
        }
    }

    /// Asks the running sweeper for a sweep now (it starts as soon as the current one, if any, ends).
    pub fn sweep_soon(&self) {
        self.schedule.nudge();
    }

    /// Whether a sweep runs now, and how many this process has completed.
    pub fn sweeper_status(&self) -> SweeperStatus {
        SweeperStatus { running: self.schedule.running(), completed: self.schedule.completed() }
    }

    /// Start-up warnings about quotas too small for the objects allowed in: one sweep frees
    /// `max_size × (high − low watermark)`, which should hold the largest blob.
    pub fn sizing_warnings(&self, max_blob_size: u64) -> Vec<String> {
        let (high, low) = (self.settings.high_watermark, self.settings.low_watermark);
        let store = self.settings.max_size.and_then(|max_size| {
            crate::settings::headroom_warning("[cache]", max_size, high, low, max_blob_size)
        });
        let groups = self.groups.iter().filter_map(|group| {
            let max_size = group.policy.max_size?;
            let what = format!("group {}", group.path);
            crate::settings::headroom_warning(&what, max_size, high, low, max_blob_size)
        });
        store.into_iter().chain(groups).collect()
    }

    /// Waits until no sweep runs or is due from a nudge (tests; a CLI waiting on a server).
    pub async fn settled(&self) {
        self.schedule.settled().await;
    }
}
