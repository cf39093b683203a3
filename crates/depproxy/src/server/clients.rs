//! Connections per client address (`[server] max_connections_per_client`), so one address cannot
//! take every connection. Addresses are counted canonical: an IPv4 client reaching a dual-stack
//! listener as `::ffff:a.b.c.d` is the same client as `a.b.c.d`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// How many connections (or, behind a trusted proxy, requests) each client address holds.
#[derive(Debug)]
pub(crate) struct ClientCounts {
    limit: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One of a client's connections (or requests); given back when dropped.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    counts: Arc<ClientCounts>,
    client: IpAddr,
}

impl ClientCounts {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(ClientCounts { limit: limit.max(1), held: Mutex::default() })
    }

    /// A slot for `client`, or `None` when it holds its share already.
    pub(crate) fn take(self: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        let client = client.to_canonical();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(client).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot { counts: self.clone(), client })
    }

    #[cfg(test)]
    fn held(&self, client: IpAddr) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).get(&client).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_no_more_and_others_are_not_affected() {
        let counts = ClientCounts::new(2);
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let first = counts.take(client).unwrap();
        let _second = counts.take(client).unwrap();
        assert!(counts.take(client).is_none(), "a third connection is refused");
        assert!(counts.take(other).is_some(), "another address has its own share");
        drop(first);
        assert!(counts.take(client).is_some(), "a closed connection gives its slot back");
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_same_client() {
        let counts = ClientCounts::new(1);
        let _v4 = counts.take("192.0.2.7".parse().unwrap()).unwrap();
        assert!(counts.take("::ffff:192.0.2.7".parse().unwrap()).is_none());
        assert_eq!(counts.held("192.0.2.7".parse().unwrap()), 1);
    }

    #[test]
    fn the_last_slot_given_back_forgets_the_address() {
        let counts = ClientCounts::new(3);
        let client: IpAddr = "2001:db8::1".parse().unwrap();
        drop(counts.take(client).unwrap());
        assert!(counts.held.lock().unwrap().is_empty());
    }
}
