//! The sweeper's triggers: usage estimates (the last sweep's figures plus what was committed
//! since), a nudge for a sweep now, and the count of sweeps done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Notify, watch};

/// Usage as last measured, plus commits since.
#[derive(Debug, Default)]
pub(crate) struct Estimates {
    store: u64,
    groups: HashMap<String, u64>,
}

/// The sweeper's triggers and progress.
#[derive(Debug)]
pub(crate) struct Schedule {
    estimates: Mutex<Estimates>,
    nudge: Notify,
    nudged: AtomicBool,
    running: AtomicBool,
    /// Sweeps completed (for whoever waits for one).
    completed: watch::Sender<u64>,
    /// When the sweep's current batch started.
    busy_since: Mutex<std::time::Instant>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            estimates: Mutex::default(),
            nudge: Notify::new(),
            nudged: AtomicBool::new(false),
            running: AtomicBool::new(false),
            completed: watch::channel(0).0,
            busy_since: Mutex::new(std::time::Instant::now()),
        }
    }
}

impl Schedule {
    pub(crate) fn measured(&self, store: u64, groups: HashMap<String, u64>) {
        *self.estimates.lock().unwrap_or_else(PoisonError::into_inner) = Estimates { store, groups };
    }

    /// Adds a commit to the estimates; `over(group bytes, store bytes)` says whether a quota is
    /// passed, and then a sweep is due at once. Returns the new estimates (group, store).
    pub(crate) fn committed(
        &self,
        group: &str,
        bytes: u64,
        over: impl FnOnce(u64, u64) -> bool,
    ) -> (u64, u64) {
        let (passed, group_bytes, store_bytes) = {
            let mut estimates = self.estimates.lock().unwrap_or_else(PoisonError::into_inner);
            estimates.store += bytes;
            let store_bytes = estimates.store;
            let group_bytes = estimates.groups.entry(group.to_owned()).or_default();
            *group_bytes += bytes;
            (over(*group_bytes, store_bytes), *group_bytes, store_bytes)
        };
        if passed {
            self.nudged.store(true, Ordering::Release);
            self.nudge.notify_one();
        }
        (group_bytes, store_bytes)
    }

    /// Waits for a tick of `ticks` or a nudge.
    pub(crate) async fn next(&self, ticks: &mut tokio::time::Interval) {
        tokio::select! {
            () = self.nudge.notified() => {}
            _ = ticks.tick() => {}
        }
    }

    /// Asks for a sweep now (an operator's request).
    pub(crate) fn nudge(&self) {
        self.nudged.store(true, Ordering::Release);
        self.nudge.notify_one();
    }

    pub(crate) fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    pub(crate) fn completed(&self) -> u64 {
        *self.completed.borrow()
    }

    /// Starts the sweep's duty cycle (see [`Schedule::pause_between_batches`]).
    pub(crate) fn start_pacing(&self) {
        *self.busy_since.lock().unwrap_or_else(PoisonError::into_inner) = std::time::Instant::now();
    }

    /// Pauses as long as the sweep has just worked (at most a second), so a sweep takes at most
    /// about half of the machine from the hits it shares it with; a sweep of 100 000 objects
    /// under full hit load otherwise raised the hits' p99 past 20 ms.
    pub(crate) async fn pause_between_batches(&self) {
        let busy = self.busy_since.lock().unwrap_or_else(PoisonError::into_inner).elapsed();
        tokio::time::sleep(busy.min(std::time::Duration::from_secs(1))).await;
        self.start_pacing();
    }

    pub(crate) fn sweep_started(&self) {
        self.running.store(true, Ordering::Release);
        self.nudged.store(false, Ordering::Release);
    }

    pub(crate) fn sweep_finished(&self) {
        self.running.store(false, Ordering::Release);
        self.completed.send_modify(|count| *count += 1);
    }

    /// Waits until no sweep runs or is due from a nudge.
    pub(crate) async fn settled(&self) {
        let mut completed = self.completed.subscribe();
        loop {
            if !self.running.load(Ordering::Acquire) && !self.nudged.load(Ordering::Acquire) {
                return;
            }
            if completed.changed().await.is_err() {
                return;
            }
        }
    }
}
