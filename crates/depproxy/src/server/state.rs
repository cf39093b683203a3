//! What a connection's socket, its service and its serving task share: the requests in flight
//! (a connection with one is not idle), and whether the server wants it closed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection's shared state.
#[derive(Debug, Default)]
pub(crate) struct ConnectionState {
    in_flight: AtomicUsize,
    /// When the last request in flight ended: the connection's idle time starts there.
    last_ended: Mutex<Option<Instant>>,
    closing: AtomicBool,
    close_requested: Notify,
}

impl ConnectionState {
    /// Whether a request is in flight: from its head until its response body is dropped.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// When a request last ended (its response body dropped), if one has.
    pub(crate) fn last_ended(&self) -> Option<Instant> {
        *self.last_ended.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the server asked for the connection to close.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Asks the connection to close once its requests in flight are answered (a client that let
    /// a request body time out does not get to send another request on it).
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.close_requested.notify_one();
    }

    /// Resolves once [`Self::close`] was called.
    pub(crate) async fn close_requested(&self) {
        if !self.closing() {
            self.close_requested.notified().await;
        }
    }
}

/// Counts a request in flight on its connection while alive.
pub(crate) struct InFlight(Arc<ConnectionState>);

impl InFlight {
    pub(crate) fn new(connection: Arc<ConnectionState>) -> Self {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(connection)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The time first: a reader that sees no request in flight must see when the last ended.
        *self.0.last_ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_busy_while_a_request_is_in_flight() {
        let connection = Arc::new(ConnectionState::default());
        assert!(!connection.busy());
        let first = InFlight::new(connection.clone());
        let second = InFlight::new(connection.clone());
        drop(first);
        assert!(connection.busy());
        drop(second);
        assert!(!connection.busy());
    }

    #[tokio::test]
    async fn a_close_asked_before_anyone_waits_is_not_lost() {
        let connection = ConnectionState::default();
        connection.close();
        connection.close_requested().await;
        assert!(connection.closing());
    }
}
