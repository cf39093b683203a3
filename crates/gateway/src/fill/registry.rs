//! The fills running on this node, by fill key: a request joins the running fill of its object or
//! registers a new one, whose task must then run under a [`Running`] guard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use injector::FillReport;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::recent::MemoryBudget;
use super::state::FillState;

/// A running fill as the registry knows it.
struct Entry {
    state: watch::Receiver<FillState>,
    /// Asks the fill to give way (it has no client, and someone waits for a fill).
    give_way: CancellationToken,
    started: Instant,
    /// What it fetches, for operators.
    about: FillAbout,
    /// Unix milliseconds at the start.
    started_at_ms: u64,
}

/// What a fill fetches, as operators see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FillAbout {
    /// The configured name of the upstream it asks first.
    pub upstream: String,
    /// The injector's kind (`manifest` or `blob`).
    pub kind: String,
    /// As the injector names it (e.g. `library/alpine:3.20`).
    pub object: String,
}

/// What a request found when it asked for the fill of its key.
pub(crate) enum Joined {
    /// A fill of the key runs: the request follows it.
    Follow(watch::Receiver<FillState>),
    /// None ran: the request registered one, and must run it.
    Lead(Lead),
}

/// A fill just registered: what its readers watch, and what running it takes.
pub(crate) struct Lead {
    /// The state, as the registering request reads it.
    pub reader: watch::Receiver<FillState>,
    /// Where the fill publishes its state.
    pub state: watch::Sender<FillState>,
    /// Asks the fill to give way (see [`Fills::make_room`]).
    pub give_way: CancellationToken,
}

/// An object a fill of this node stored a moment ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    pub digest: oci::Digest,
    pub size: u64,
    pub media_type: String,
    /// The upstream that served it.
    pub source: String,
}

/// How long a committed fill is remembered: a request the control plane answered "fetch" while
/// the fill was finishing (it asked before the record was there) may arrive after the fill left
/// the registry; it is served what was just stored instead of a second upstream fetch.
const COMMITTED_MEMORY: std::time::Duration = std::time::Duration::from_secs(10);
/// Committed fills remembered at most.
const COMMITTED_ENTRIES: usize = 4096;

/// The fills running on this node, by fill key.
pub struct Fills {
    inflight: Mutex<HashMap<String, Entry>>,
    /// Fills that stored their object in the last [`COMMITTED_MEMORY`], by fill key.
    committed: Mutex<HashMap<String, (Committed, Instant)>>,
    /// How many fills run; lets tests and shutdown wait for detached fills without polling.
    running: watch::Sender<usize>,
    /// Memory all fills' recent chunks share.
    budget: Arc<MemoryBudget>,
}

impl Fills {
    /// A registry whose fills keep at most `memory` bytes of recent chunks together.
    pub fn new(memory: usize) -> Self {
        Fills {
            inflight: Mutex::default(),
            committed: Mutex::default(),
            running: watch::channel(0).0,
            budget: Arc::new(MemoryBudget::new(memory)),
        }
    }

    pub(crate) fn budget(&self) -> Arc<MemoryBudget> {
        self.budget.clone()
    }

    pub fn len(&self) -> usize {
        *self.running.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every running fill and its progress, oldest first.
    pub fn snapshot(&self) -> Vec<FillReport> {
        let inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reports: Vec<(Instant, FillReport)> = inflight
            .values()
            .map(|entry| {
                // Once a source answered, the fill is that upstream's (a group's first may not
                // have had the object).
                let mut upstream = &entry.about.upstream;
                let state = entry.state.borrow();
                let (phase, bytes_done, bytes_total, clients) = match &*state {
                    FillState::Connecting => ("connecting", 0, None, 0),
                    FillState::Streaming(streaming) => {
                        upstream = &streaming.source;
                        let waiting = streaming.awaiting_verdict.load(std::sync::atomic::Ordering::Relaxed);
                        (
                            if waiting { "verdict" } else { "streaming" },
                            *streaming.recent.received().borrow(),
                            streaming.head.content_length,
                            streaming.recent.attached(),
                        )
                    }
                    FillState::Verified(finished) | FillState::Committed(finished) => {
                        upstream = &finished.streaming.source;
                        (
                            "finishing",
                            finished.size,
                            Some(finished.size),
                            finished.streaming.recent.attached(),
                        )
                    }
                    FillState::Failed(_) => ("failed", 0, None, 0),
                };
                let seconds = entry.started.elapsed().as_secs_f64();
                let rate = if seconds > 0.0 { (bytes_done as f64 / seconds) as u64 } else { 0 };
                let report = FillReport {
                    upstream: upstream.clone(),
                    kind: entry.about.kind.clone(),
                    object: entry.about.object.clone(),
                    phase: phase.to_owned(),
                    bytes_done,
                    bytes_total,
                    rate,
                    clients,
                    started_at: entry.started_at_ms,
                    node: String::new(),
                };
                (entry.started, report)
            })
            .collect();
        reports.sort_by_key(|(started, _)| *started);
        reports.into_iter().map(|(_, report)| report).collect()
    }

    /// Waits until no fill runs.
    pub async fn wait_idle(&self) {
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|count| *count == 0).await;
    }

    /// Notes that the fill of `key` stored `object` (just before it leaves the registry).
    pub(crate) fn remember_committed(&self, key: &str, object: Committed) {
        let mut committed = self.committed.lock().unwrap_or_else(PoisonError::into_inner);
        if committed.len() >= COMMITTED_ENTRIES {
            committed.retain(|_, (_, at)| at.elapsed() < COMMITTED_MEMORY);
            if committed.len() >= COMMITTED_ENTRIES {
                committed.clear();
            }
        }
        committed.insert(key.to_owned(), (object, Instant::now()));
    }

    /// What a fill of `key` stored after `since` (within the last [`COMMITTED_MEMORY`]), if one
    /// did.
    pub(crate) fn committed_since(&self, key: &str, since: Instant) -> Option<Committed> {
        let committed = self.committed.lock().unwrap_or_else(PoisonError::into_inner);
        committed
            .get(key)
            .filter(|(_, at)| *at > since && at.elapsed() < COMMITTED_MEMORY)
            .map(|(object, _)| object.clone())
    }

    /// The state of the running fill of `key`, if one runs.
    pub(crate) fn join(&self, key: &str) -> Option<watch::Receiver<FillState>> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner).get(key).map(|entry| entry.state.clone())
    }

    /// Joins the fill of `key`, or — when none runs — registers one, which the caller must then
    /// run (under a [`Running`]).
    pub(crate) fn join_or_register(&self, key: &str, about: impl FnOnce() -> FillAbout) -> Joined {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = inflight.get(key) {
            return Joined::Follow(entry.state.clone());
        }
        let (sender, receiver) = watch::channel(FillState::Connecting);
        let give_way = CancellationToken::new();
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        let entry = Entry {
            state: receiver.clone(),
            give_way: give_way.clone(),
            started: Instant::now(),
            about: about(),
            started_at_ms,
        };
        inflight.insert(key.to_owned(), entry);
        self.running.send_replace(inflight.len());
        Joined::Lead(Lead { reader: receiver, state: sender, give_way })
    }

    /// Asks the oldest fill that no client follows to give way; says whether there was one.
    pub(crate) fn make_room(&self) -> bool {
        let inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        let orphan = inflight
            .values()
            .filter(|entry| !entry.give_way.is_cancelled())
            .filter(|entry| match &*entry.state.borrow() {
                FillState::Streaming(streaming) => streaming.recent.attached() == 0,
                _ => false,
            })
            .min_by_key(|entry| entry.started);
        match orphan {
            Some(entry) => {
                entry.give_way.cancel();
                true
            }
            None => false,
        }
    }

    /// Removes the entry of `key` if it is this fill's (a fill that went on uncached leaves early,
    /// and a new fill of the same key may have taken its place since).
    fn remove(&self, key: &str, state: &watch::Sender<FillState>) {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if inflight.get(key).is_some_and(|entry| entry.state.same_channel(&state.subscribe())) {
            inflight.remove(key);
        }
        self.running.send_replace(inflight.len());
    }
}

/// A registered fill while its task runs. [`Running::finish`] removes the in-flight entry, then
/// publishes the final state. Dropped unfinished — the fill panicked or its task was cancelled —
/// it still removes the entry, then closes the state channel, which readers take as failure: a key
/// is never left pointing at a dead fill, and `wait_idle` never waits for one.
pub(crate) struct Running<'a> {
    fills: &'a Fills,
    key: &'a str,
    pub(crate) state: watch::Sender<FillState>,
    finished: bool,
}

impl<'a> Running<'a> {
    pub(crate) fn new(fills: &'a Fills, key: &'a str, state: watch::Sender<FillState>) -> Self {
        Running { fills, key, state, finished: false }
    }

    pub(crate) fn finish(mut self, outcome: FillState) {
        // Removed first: a request arriving from now on asks the control plane again instead of
        // joining a finished fill.
        self.fills.remove(self.key, &self.state);
        self.finished = true;
        self.state.send_replace(outcome);
    }

    /// Lets new requests start a new fill of this key (this one streams on uncached: storage
    /// failed, and the next fill tries it again) while the attached clients finish.
    pub(crate) fn leave_early(&self) {
        self.fills.remove(self.key, &self.state);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            tracing::error!(key = self.key, "fill ended without a result");
            self.fills.remove(self.key, &self.state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fill::state::{FillError, finished, started};

    impl Joined {
        /// The fill's state, whoever runs it.
        fn reader(&self) -> watch::Receiver<FillState> {
            match self {
                Joined::Follow(reader) | Joined::Lead(Lead { reader, .. }) => reader.clone(),
            }
        }

        /// What running the fill takes, when this request registered it.
        fn lead(self) -> Option<Lead> {
            match self {
                Joined::Follow(_) => None,
                Joined::Lead(lead) => Some(lead),
            }
        }
    }

    #[tokio::test]
    async fn a_fill_that_dies_without_a_result_frees_its_key_and_fails_its_readers() {
        let fills = Fills::new(1 << 20);
        let first = fills.join_or_register("key", FillAbout::default);
        let mut reader = first.reader();
        let sender = first.lead().unwrap().state;
        let second = fills.join_or_register("key", FillAbout::default);
        let joined = second.reader();
        assert!(second.lead().is_none(), "a second caller joins");
        assert_eq!(fills.len(), 1);
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _running = Running::new(&fills, "key", sender);
            panic!("the fill panics");
        }));
        assert!(died.is_err());
        assert!(fills.is_empty(), "the entry is gone");
        fills.wait_idle().await;
        for state in [&mut reader, &mut joined.clone()] {
            match started(state).await {
                FillState::Failed(error) => assert!(matches!(*error, FillError::Vanished)),
                _ => panic!("a reader of a dead fill must see a failure"),
            }
        }
        let again = fills.join_or_register("key", FillAbout::default);
        assert!(again.lead().is_some(), "the next request starts a new fill");
    }

    #[tokio::test]
    async fn a_snapshot_lists_running_fills_with_their_phase() {
        let fills = Fills::new(1 << 20);
        let about = || FillAbout { upstream: "lab".into(), kind: "manifest".into(), object: "app:v1".into() };
        let lead = fills.join_or_register("key", about).lead().unwrap();
        let snapshot = fills.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!(snapshot[0].phase, "connecting");
        assert_eq!(snapshot[0].object, "app:v1");
        assert!(snapshot[0].started_at > 0);
        let running = Running::new(&fills, "key", lead.state);
        running.finish(FillState::Failed(Arc::new(FillError::Broken("test".into()))));
        assert!(fills.snapshot().is_empty());
    }

    #[tokio::test]
    async fn finishing_frees_the_key_and_publishes_the_outcome() {
        let fills = Fills::new(1 << 20);
        let lead = fills.join_or_register("key", FillAbout::default).lead().unwrap();
        let mut reader = lead.reader;
        let running = Running::new(&fills, "key", lead.state);
        running.finish(FillState::Failed(Arc::new(FillError::Broken("test".into()))));
        assert!(fills.is_empty());
        assert!(matches!(started(&mut reader).await, FillState::Failed(_)));
        assert!(matches!(
            finished(&mut reader).await,
            Err(error) if matches!(*error, FillError::Broken(_))
        ));
    }
}
