//! The supervisor of background work: every task that outlives the request that started it — a
//! fill, its lease renewal, a periodic job — runs here, so that shutdown can drain it within a
//! grace period and an operator can see what is running.
//!
//! Shutdown has two signals, as garage's background runner does: *draining* (no new periodic runs;
//! running work goes on) when shutdown begins, and *cancelled* when the grace period is over (work
//! stops now, cleaning up after itself). A task that has not ended a short cleanup deadline after
//! that is aborted.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long cancelled tasks get to clean up (remove temp data, abort uploads) before they are
/// aborted outright.
pub const CLEANUP_DEADLINE: Duration = Duration::from_secs(10);

/// Runs and tracks background tasks; cheap to clone (clones share the same tasks).
#[derive(Clone, Default)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tracker: TaskTracker,
    draining: CancellationToken,
    cancelled: CancellationToken,
    tasks: Mutex<BTreeMap<u64, Entry>>,
    next_id: AtomicU64,
    /// How many tasks run: lets tests and shutdown wait without polling.
    running: watch::Sender<usize>,
}

struct Entry {
    kind: &'static str,
    name: String,
    started: SystemTime,
    abort: Option<AbortHandle>,
}

/// What a task sees of shutdown.
#[derive(Clone, Debug)]
pub struct StopSignal {
    draining: CancellationToken,
    cancelled: CancellationToken,
}

impl StopSignal {
    /// Completes when shutdown begins: start nothing new (periodic jobs stop here).
    pub async fn draining(&self) {
        self.draining.cancelled().await;
    }

    /// Completes when the grace period is over: stop now and clean up.
    pub async fn cancelled(&self) {
        self.cancelled.cancelled().await;
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.is_cancelled()
    }
}

/// One running task, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub id: u64,
    /// What sort of work (`fill`, `lease-renewal`, …).
    pub kind: &'static str,
    /// Which one (the object being filled, the job's name).
    pub name: String,
    pub started: SystemTime,
}

/// How a shutdown went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Tasks running when shutdown began.
    pub running_at_start: usize,
    /// Tasks still running when the grace period ended, told to stop.
    pub cancelled: Vec<TaskStatus>,
    /// Tasks that had not stopped by the cleanup deadline, aborted.
    pub aborted: Vec<TaskStatus>,
}

impl ShutdownReport {
    /// Whether everything finished inside the grace period.
    pub fn drained(&self) -> bool {
        self.cancelled.is_empty()
    }
}

/// Removes a task's entry when its future ends, panics or is aborted.
struct Registration {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.remove(&self.id);
        self.inner.running.send_replace(tasks.len());
    }
}

impl Supervisor {
    pub fn new() -> Self {
        Supervisor::default()
    }

    /// The signal tasks watch for shutdown.
    pub fn stop_signal(&self) -> StopSignal {
        StopSignal { draining: self.inner.draining.clone(), cancelled: self.inner.cancelled.clone() }
    }

    /// Runs `work` as a tracked task. It gets the stop signal and should end soon after
    /// [`StopSignal::cancelled`], leaving nothing half done. Must be called inside a Tokio runtime.
    pub fn spawn<F, Fut>(&self, kind: &'static str, name: impl Into<String>, work: F)
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut tasks = self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = Entry { kind, name: name.into(), started: SystemTime::now(), abort: None };
            tasks.insert(id, entry);
            self.inner.running.send_replace(tasks.len());
        }
        let registration = Registration { inner: self.inner.clone(), id };
        let future = work(self.stop_signal());
        let handle = self.inner.tracker.spawn(async move {
            let _registration = registration;
            future.await;
        });
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // The task may already have finished and removed itself.
        if let Some(entry) = tasks.get_mut(&id) {
            entry.abort = Some(handle.abort_handle());
        }
    }

    /// Runs `job` every `every` (the first run after one period) until shutdown begins; a run in
    /// progress when it does is left to finish (it is cancelled with the rest after the grace).
    pub fn spawn_periodic<F, Fut>(&self, name: impl Into<String>, every: Duration, mut job: F)
    where
        F: FnMut(StopSignal) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn("periodic", name, move |signal| async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    biased;
                    _ = signal.draining() => return,
                    _ = ticks.tick() => job(signal.clone()).await,
                }
            }
        });
    }

    /// What runs now, oldest first.
    pub fn running(&self) -> Vec<TaskStatus> {
        let tasks = self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks
            .iter()
            .map(|(id, entry)| TaskStatus {
                id: *id,
                kind: entry.kind,
                name: entry.name.clone(),
                started: entry.started,
            })
            .collect()
    }

    /// How many tasks run.
    pub fn len(&self) -> usize {
        *self.inner.running.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until no task runs (new ones may start afterwards).
    pub async fn wait_idle(&self) {
        let mut running = self.inner.running.subscribe();
        let _ = running.wait_for(|count| *count == 0).await;
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.is_cancelled()
    }

    /// Drains: lets running tasks finish for up to `grace`, then cancels them and gives them
    /// [`CLEANUP_DEADLINE`] to clean up before aborting what is left. Tasks spawned while draining
    /// are drained with the rest.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let mut report = ShutdownReport { running_at_start: self.len(), ..ShutdownReport::default() };
        self.inner.draining.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait()).await.is_ok() {
            return report;
        }
        report.cancelled = self.running();
        tracing::warn!(
            tasks = report.cancelled.len(),
            ?grace,
            "grace period over; cancelling background work"
        );
        self.inner.cancelled.cancel();
        if tokio::time::timeout(CLEANUP_DEADLINE, self.inner.tracker.wait()).await.is_ok() {
            return report;
        }
        report.aborted = self.running();
        tracing::error!(tasks = report.aborted.len(), "background work did not stop; aborting it");
        let handles: Vec<AbortHandle> = {
            let tasks = self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner);
            tasks.values().filter_map(|entry| entry.abort.clone()).collect()
        };
        for handle in handles {
            handle.abort();
        }
        self.inner.tracker.wait().await;
        report
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_that_finishes_inside_the_grace_is_not_cancelled() {
        let supervisor = Supervisor::new();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let completed = Arc::new(AtomicUsize::new(0));
        let done = completed.clone();
        supervisor.spawn("fill", "blob a", move |signal| async move {
            tokio::select! {
                _ = finished => { done.fetch_add(1, Ordering::SeqCst); }
                _ = signal.cancelled() => {}
            }
        });
        assert_eq!(supervisor.running().len(), 1);
        assert_eq!(supervisor.running()[0].kind, "fill");
        assert_eq!(supervisor.running()[0].name, "blob a");
        let shutdown = tokio::spawn({
            let supervisor = supervisor.clone();
            async move { supervisor.shutdown(Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(supervisor.is_draining());
        finish.send(()).unwrap();
        let report = shutdown.await.unwrap();
        assert!(report.drained(), "{report:?}");
        assert_eq!(report.running_at_start, 1);
        assert_eq!(completed.load(Ordering::SeqCst), 1);
        assert!(supervisor.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn work_past_the_grace_is_cancelled_and_cleans_up() {
        let supervisor = Supervisor::new();
        let cleaned = Arc::new(AtomicUsize::new(0));
        let cleanup = cleaned.clone();
        supervisor.spawn("fill", "slow", move |signal| async move {
            signal.cancelled().await;
            cleanup.fetch_add(1, Ordering::SeqCst);
        });
        let started = tokio::time::Instant::now();
        let report = supervisor.shutdown(Duration::from_secs(30)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(30), "cancelled exactly at the grace's end");
        assert_eq!(report.cancelled.len(), 1);
        assert!(report.aborted.is_empty());
        assert_eq!(cleaned.load(Ordering::SeqCst), 1);
        assert!(supervisor.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_ignores_cancellation_is_aborted() {
        let supervisor = Supervisor::new();
        supervisor.spawn("fill", "stubborn", |_signal| std::future::pending::<()>());
        let report = supervisor.shutdown(Duration::from_secs(1)).await;
        assert_eq!(report.cancelled.len(), 1);
        assert_eq!(report.aborted.len(), 1);
        assert_eq!(report.aborted[0].name, "stubborn");
        assert!(supervisor.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_jobs_run_on_schedule_and_stop_when_draining() {
        let supervisor = Supervisor::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        supervisor.spawn_periodic("sweep", Duration::from_secs(10), move |_signal| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let report = supervisor.shutdown(Duration::from_secs(60)).await;
        assert!(report.drained(), "a periodic job stops at once when draining: {report:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_panicking_task_leaves_the_registry() {
        let supervisor = Supervisor::new();
        supervisor.spawn("fill", "panics", |_signal| async { panic!("boom") });
        supervisor.wait_idle().await;
        assert!(supervisor.running().is_empty());
    }
}
