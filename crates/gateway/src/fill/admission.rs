//! How many fills may run at once — overall and per client address (as the control plane
//! resolved it through `trusted_proxies`, not the connection's peer) — so a storm of cold misses
//! (a CI fleet pulling hundreds of distinct layers, or an abuser) cannot take every connection,
//! thread and byte of memory. A miss beyond the limits waits in a fair queue (one queue per client
//! address, served in turn) up to a timeout, then is answered 503 with `Retry-After`: never a
//! hang. While someone waits, a fill that no client follows any more gives way first.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// The limits, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillLimits {
    /// Fills running at once on this gateway.
    pub max_fills: usize,
    /// Fills one client address may have running at once.
    pub per_client: usize,
    /// Longest a miss waits for a free fill before it is answered 503.
    pub queue_timeout: Duration,
}

/// The right to run one fill; given back (to the next in line) when dropped.
pub(crate) struct FillSlot {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl std::fmt::Debug for FillSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FillSlot({})", self.client)
    }
}

impl Drop for FillSlot {
    fn drop(&mut self) {
        self.admission.release(self.client);
    }
}

/// No fill could start within the queue timeout.
#[derive(Debug)]
pub(crate) struct Busy {
    pub retry_after: Duration,
}

pub(crate) struct Admission {
    limits: FillLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: usize,
    by_client: HashMap<IpAddr, usize>,
    /// Waiting misses per client, and the clients in the order they are served.
    waiting: HashMap<IpAddr, VecDeque<oneshot::Sender<()>>>,
    turns: VecDeque<IpAddr>,
}

impl State {
    fn may_start(&self, limits: &FillLimits, client: IpAddr) -> bool {
        self.running < limits.max_fills
            && self.by_client.get(&client).copied().unwrap_or(0) < limits.per_client
    }

    fn start(&mut self, client: IpAddr) {
        self.running += 1;
        *self.by_client.entry(client).or_default() += 1;
    }
}

impl Admission {
    pub(crate) fn new(limits: FillLimits) -> Arc<Self> {
        Arc::new(Admission {
            limits: FillLimits {
                max_fills: limits.max_fills.max(1),
                per_client: limits.per_client.max(1),
                ..limits
            },
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a fill of `client`, now or after waiting its turn. `make_room` is asked to stop
    /// a fill nobody follows when the limit is reached (it says whether it did).
    pub(crate) async fn admit(
        self: &Arc<Self>,
        client: IpAddr,
        make_room: impl Fn() -> bool,
    ) -> Result<FillSlot, Busy> {
        let (mut receiver, full) = {
            let mut state = self.lock();
            if state.may_start(&self.limits, client) && state.waiting.is_empty() {
                state.start(client);
                return Ok(FillSlot { admission: self.clone(), client });
            }
            // In line — and served at once if a slot is free for this client (others may be
            // waiting only for their own share).
            let (sender, receiver) = oneshot::channel();
            let queue = state.waiting.entry(client).or_default();
            if queue.is_empty() {
                state.turns.push_back(client);
            }
            state.waiting.entry(client).or_default().push_back(sender);
            Self::hand_over(&self.limits, &mut state);
            (receiver, state.running >= self.limits.max_fills)
        };
        if receiver.try_recv().is_ok() {
            return Ok(FillSlot { admission: self.clone(), client });
        }
        if full {
            make_room();
        }
        match tokio::time::timeout(self.limits.queue_timeout, receiver).await {
            // The slot was counted for us when we were handed it.
            Ok(Ok(())) => Ok(FillSlot { admission: self.clone(), client }),
            Ok(Err(_)) | Err(_) => {
                self.forget_closed();
                Err(Busy { retry_after: self.limits.queue_timeout.max(Duration::from_secs(1)) })
            }
        }
    }

    fn release(&self, client: IpAddr) {
        let mut state = self.lock();
        state.running = state.running.saturating_sub(1);
        if let Some(count) = state.by_client.get_mut(&client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.by_client.remove(&client);
            }
        }
        Self::hand_over(&self.limits, &mut state);
    }

    /// Gives free slots to waiting misses: each client in turn, as its own share allows.
    fn hand_over(limits: &FillLimits, state: &mut State) {
        let mut skipped = 0;
        while state.running < limits.max_fills && skipped < state.turns.len() {
            let Some(client) = state.turns.pop_front() else { break };
            if !state.may_start(limits, client) {
                state.turns.push_back(client);
                skipped += 1;
                continue;
            }
            let Some(queue) = state.waiting.get_mut(&client) else { continue };
            let mut handed = false;
            while let Some(waiter) = queue.pop_front() {
                if waiter.send(()).is_ok() {
                    handed = true;
                    break;
                }
            }
            let more = !queue.is_empty();
            if !more {
                state.waiting.remove(&client);
            } else {
                state.turns.push_back(client);
            }
            if handed {
                state.start(client);
                skipped = 0;
            }
        }
    }

    /// Drops waiters that gave up (timed out or went away).
    fn forget_closed(&self) {
        let mut state = self.lock();
        state.waiting.retain(|_, queue| {
            queue.retain(|waiter| !waiter.is_closed());
            !queue.is_empty()
        });
        let waiting: Vec<IpAddr> = state.waiting.keys().copied().collect();
        state.turns.retain(|client| waiting.contains(client));
    }

    /// Fills running now.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.lock().running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn limits(max_fills: usize, per_client: usize) -> FillLimits {
        FillLimits { max_fills, per_client, queue_timeout: Duration::from_secs(5) }
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_limit_a_miss_waits_then_gets_busy() {
        let admission = Admission::new(limits(2, 2));
        let first = admission.admit(ip(1), || false).await.unwrap();
        let _second = admission.admit(ip(2), || false).await.unwrap();
        let started = tokio::time::Instant::now();
        let busy = admission.admit(ip(3), || false).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(5), "waited the queue timeout, then gave up");
        assert_eq!(busy.retry_after, Duration::from_secs(5));
        // A slot given back goes to the next waiter.
        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(ip(3), || false).await.map(|_slot| ()) }
        });
        tokio::task::yield_now().await;
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(admission.running(), 1, "the waiter's slot was released when it dropped it");
    }

    #[tokio::test(start_paused = true)]
    async fn one_client_cannot_take_every_slot_and_waiters_are_served_in_turn() {
        let admission = Admission::new(limits(3, 2));
        let greedy: Vec<FillSlot> = vec![
            admission.admit(ip(1), || false).await.unwrap(),
            admission.admit(ip(1), || false).await.unwrap(),
        ];
        // The greedy client is at its share: its third miss waits although a slot is free…
        let greedy_third = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(ip(1), || false).await.map(|_slot| ()) }
        });
        tokio::task::yield_now().await;
        // …and another client gets the free slot at once.
        let other = admission.admit(ip(2), || false).await.unwrap();
        assert_eq!(admission.running(), 3);
        drop(greedy);
        greedy_third.await.unwrap().unwrap();
        drop(other);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_admission_asks_for_room() {
        let admission = Admission::new(limits(1, 1));
        let _running = admission.admit(ip(1), || false).await.unwrap();
        let asked = std::sync::atomic::AtomicBool::new(false);
        let _ = admission
            .admit(ip(2), || {
                asked.store(true, std::sync::atomic::Ordering::SeqCst);
                false
            })
            .await;
        assert!(asked.load(std::sync::atomic::Ordering::SeqCst));
    }
}
