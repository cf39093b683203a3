//! The fills running on this node, by fill key: a request joins the running fill of its object or
//! registers a new one, whose task must then run under a [`Running`] guard.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use super::state::FillState;

/// The fills running on this node, by fill key.
pub struct Fills {
    inflight: Mutex<HashMap<String, watch::Receiver<FillState>>>,
    /// How many fills run; lets tests and shutdown wait for detached fills without polling.
    running: watch::Sender<usize>,
}

impl Default for Fills {
    fn default() -> Self {
        Fills { inflight: Mutex::default(), running: watch::channel(0).0 }
    }
}

impl Fills {
    pub fn len(&self) -> usize {
        *self.running.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until no fill runs.
    pub async fn wait_idle(&self) {
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|count| *count == 0).await;
    }

    /// Joins the fill of `key`; when none runs, registers one and returns the sender of its
    /// state too: the caller must then run it (under a [`Running`]).
    pub(crate) fn join_or_register(
        &self,
        key: &str,
    ) -> (watch::Receiver<FillState>, Option<watch::Sender<FillState>>) {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = inflight.get(key) {
            return (state.clone(), None);
        }
        let (sender, receiver) = watch::channel(FillState::Connecting);
        inflight.insert(key.to_owned(), receiver.clone());
        self.running.send_replace(inflight.len());
        (receiver, Some(sender))
    }

    fn remove(&self, key: &str) {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        inflight.remove(key);
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
        self.fills.remove(self.key);
        self.finished = true;
        self.state.send_replace(outcome);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            tracing::error!(key = self.key, "fill ended without a result");
            self.fills.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fill::state::{FillError, finished, started};

    #[tokio::test]
    async fn a_fill_that_dies_without_a_result_frees_its_key_and_fails_its_readers() {
        let fills = Fills::default();
        let (mut reader, sender) = fills.join_or_register("key");
        let sender = sender.unwrap();
        let (joined, none) = fills.join_or_register("key");
        assert!(none.is_none(), "a second caller joins");
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
        let (_, sender) = fills.join_or_register("key");
        assert!(sender.is_some(), "the next request starts a new fill");
    }

    #[tokio::test]
    async fn finishing_frees_the_key_and_publishes_the_outcome() {
        let fills = Fills::default();
        let (mut reader, sender) = fills.join_or_register("key");
        let running = Running::new(&fills, "key", sender.unwrap());
        running.finish(FillState::Failed(Arc::new(FillError::Broken("test".into()))));
        assert!(fills.is_empty());
        assert!(matches!(started(&mut reader).await, FillState::Failed(_)));
        assert!(matches!(
            finished(&mut reader).await,
            Err(error) if matches!(*error, FillError::Broken(_))
        ));
    }
}
