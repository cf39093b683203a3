//! The control plane's readiness (`GET /_depproxy/ready`), answered from the last check: anyone
//! who reaches a gateway can ask for it, so the database is pinged at most once per
//! [`REUSE`] whatever the number of requests, and a burst waits for one ping instead of sending
//! its own.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a readiness answer is reused.
pub(crate) const REUSE: Duration = Duration::from_secs(1);
/// A ping that takes longer than this says: not ready.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The last readiness answer and when it was found.
#[derive(Default)]
pub(crate) struct Readiness {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    /// Whether the control plane is ready: the answer of the last `ping` if it is recent, else
    /// of a new one (one at a time: callers meanwhile wait for it and take its answer).
    pub(crate) async fn ready(&self, ping: impl Future<Output = bool>) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ready)) = *last
            && at.elapsed() < REUSE
        {
            return ready;
        }
        let ready = tokio::time::timeout(PING_TIMEOUT, ping).await.unwrap_or(false);
        *last = Some((Instant::now(), ready));
        ready
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_readiness_requests_pings_the_database_once_per_interval() {
        let readiness = Arc::new(Readiness::default());
        let pings = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let ask = || {
            let (readiness, pings, healthy) = (readiness.clone(), pings.clone(), healthy.clone());
            async move {
                readiness
                    .ready(async {
                        pings.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        healthy.load(Ordering::SeqCst)
                    })
                    .await
            }
        };
        let burst: Vec<_> = (0..100).map(|_| tokio::spawn(ask())).collect();
        for request in burst {
            assert!(request.await.unwrap());
        }
        assert_eq!(pings.load(Ordering::SeqCst), 1, "one ping for the whole burst");
        // The database goes down: the answer changes within the interval, after one more ping.
        healthy.store(false, Ordering::SeqCst);
        assert!(ask().await, "reused");
        tokio::time::advance(REUSE).await;
        assert!(!ask().await);
        assert!(!ask().await);
        assert_eq!(pings.load(Ordering::SeqCst), 2);
        // A ping that hangs is an answer too: not ready.
        tokio::time::advance(REUSE).await;
        let hanging = readiness.ready(std::future::pending::<bool>());
        assert!(!hanging.await);
    }
}
