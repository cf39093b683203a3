//! Coalescing of concurrent identical calls: the first caller runs the call, the others wait for
//! its result. Used for tag revalidation, so a burst of pulls of one stale tag costs one HEAD.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

pub struct SingleFlight<K, V> {
    inflight: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight { inflight: Mutex::new(HashMap::new()) }
    }
}

/// Removes the leader's entry even when the leader is cancelled (its client went away); waiting
/// followers then see the channel close and one of them runs the call itself.
struct LeaderGuard<'a, K: Hash + Eq, V> {
    flights: &'a SingleFlight<K, V>,
    key: Option<K>,
}

impl<K: Hash + Eq, V> Drop for LeaderGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flights.inflight.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    pub async fn run<F, Fut>(&self, key: K, call: F) -> V
    where
        F: Fn() -> Fut,
        Fut: Future<Output = V>,
    {
        loop {
            let role = {
                let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(receiver) = inflight.get(&key) {
                    Role::Follower(receiver.clone())
                } else {
                    let (sender, receiver) = watch::channel(None);
                    inflight.insert(key.clone(), receiver);
                    Role::Leader(sender)
                }
            };
            match role {
                Role::Leader(sender) => {
                    let guard = LeaderGuard { flights: self, key: Some(key.clone()) };
                    let value = call().await;
                    drop(guard);
                    sender.send_replace(Some(value.clone()));
                    return value;
                }
                Role::Follower(mut receiver) => {
                    if let Ok(value) = receiver.wait_for(Option::is_some).await
                        && let Some(value) = value.clone()
                    {
                        return value;
                    }
                    // The leader was cancelled before finishing: try again (possibly as leader).
                }
            }
        }
    }
}

enum Role<V> {
    Leader(watch::Sender<Option<V>>),
    Follower(watch::Receiver<Option<V>>),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_call() {
        let flights = Arc::new(SingleFlight::<&str, usize>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = watch::channel(false);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let flights = flights.clone();
                let calls = calls.clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    flights
                        .run("tag", || {
                            let calls = calls.clone();
                            let mut gate = gate.clone();
                            async move {
                                let _ = gate.wait_for(|open| *open).await;
                                calls.fetch_add(1, Ordering::SeqCst) + 41
                            }
                        })
                        .await
                })
            })
            .collect();
        // Every task is parked on the gate or on the leader before the call may finish.
        while flights.inflight.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        release.send_replace(true);
        for task in tasks {
            assert_eq!(task.await.unwrap(), 41);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over() {
        let flights = SingleFlight::<&str, u32>::default();
        let leader = flights.run("k", std::future::pending::<u32>);
        tokio::select! {
            _ = leader => unreachable!(),
            _ = tokio::task::yield_now() => {}
        }
        assert_eq!(flights.run("k", || async { 7 }).await, 7);
    }
}
