//! Single-flight fills under concurrency: many clients of one cold object make one upstream GET
//! and get their bytes live; clients that leave or read slowly change nothing for the others or
//! for the cache. Upstream holds its body at a [`Gate`], so "while the fill runs" is an event the
//! test controls, never a guess about timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::support::{Options, TestProxy, assert_objects_hash_to_their_names, body_digest, client, pattern};
use http::StatusCode;
use oci::{Digest, Sha256Hasher};
use testkit::{FakeRegistry, Gate};
use tokio::sync::{mpsc, oneshot};

const MIB: usize = 1024 * 1024;

struct Setup {
    upstream: FakeRegistry,
    proxy: TestProxy,
    digest: Digest,
    size: u64,
    url: String,
    gate: Gate,
}

/// A cold blob of `size` bytes whose upstream body stops at `gate_at` until the gate opens.
async fn setup(size: usize, gate_at: usize) -> Setup {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let digest = upstream.put_blob(pattern(size, 42));
    let gate = Gate::new(gate_at);
    upstream.set_gate(Some(gate.clone()));
    let url = format!("{}/v2/lab/big/blobs/{digest}", proxy.url);
    Setup { upstream, proxy, digest, size: size as u64, url, gate }
}

impl Setup {
    /// Asserts the fill committed the object and that a new GET is a hit: no further upstream
    /// request, the right bytes.
    async fn assert_committed_and_served_locally(&self) {
        self.proxy.fills_settled().await;
        assert!(self.proxy.has_object(&self.digest), "the fill must commit");
        assert_eq!(self.proxy.temp_entries(), 0);
        let before = self.upstream.count("GET", "/blobs/");
        let response = client().get(&self.url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_digest(response).await.unwrap(), (self.digest.clone(), self.size));
        assert_eq!(
            self.upstream.count("GET", "/blobs/"),
            before,
            "a committed object is served without upstream"
        );
        assert_objects_hash_to_their_names(&self.proxy);
    }
}

/// One client's body: hashed as it arrives (never held whole), with events for the test.
struct Reader {
    response: reqwest::Response,
    hasher: Sha256Hasher,
}

impl Reader {
    async fn get(url: &str) -> Reader {
        let response = client().get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Reader { response, hasher: Sha256Hasher::new() }
    }

    fn received(&self) -> u64 {
        self.hasher.len()
    }

    /// Reads one chunk; `false` at the end of the body.
    async fn read_chunk(&mut self) -> bool {
        match self.response.chunk().await.unwrap() {
            Some(chunk) => {
                self.hasher.update(&chunk);
                true
            }
            None => false,
        }
    }

    async fn read_at_least(&mut self, n: u64) {
        while self.received() < n {
            assert!(self.read_chunk().await, "body ended after {} bytes", self.received());
        }
    }

    /// Reads to the end: the digest and length of the whole body.
    async fn finish(mut self) -> (Digest, u64) {
        while self.read_chunk().await {}
        let len = self.hasher.len();
        (self.hasher.finish(), len)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_clients_of_a_cold_blob_make_one_upstream_get_and_stream_live() {
    const CLIENTS: usize = 32;
    let setup = setup(64 * MIB, 4 * MIB).await;
    let (first_bytes, mut first_bytes_seen) = mpsc::unbounded_channel::<usize>();
    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let url = setup.url.clone();
        let first_bytes = first_bytes.clone();
        clients.push(tokio::spawn(async move {
            let mut reader = Reader::get(&url).await;
            assert!(reader.read_chunk().await);
            first_bytes.send(index).unwrap();
            reader.finish().await
        }));
    }
    // Every client has bytes while upstream is still held mid-body: they stream live, none waits
    // for the end of the fill.
    for _ in 0..CLIENTS {
        first_bytes_seen.recv().await.unwrap();
    }
    assert_eq!(setup.upstream.count("GET", "/blobs/"), 1, "one upstream GET");
    assert_eq!(setup.proxy.gateway.fills_in_flight(), 1);
    assert!(!setup.proxy.has_object(&setup.digest), "the fill cannot have ended");
    setup.gate.open();
    for client in clients {
        assert_eq!(client.await.unwrap(), (setup.digest.clone(), setup.size));
    }
    assert_eq!(setup.upstream.count("GET", "/blobs/"), 1, "still one upstream GET");
    setup.assert_committed_and_served_locally().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dropping_at_ten_percent_does_not_stop_the_others() {
    const CLIENTS: usize = 8;
    let size = 16 * MIB;
    let setup = setup(size, size / 2).await;
    let (ready, mut ready_seen) = mpsc::unbounded_channel::<()>();
    let dropper = {
        let url = setup.url.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let mut reader = Reader::get(&url).await;
            reader.read_at_least(size as u64 / 10).await;
            let received = reader.received();
            drop(reader);
            ready.send(()).unwrap();
            received
        })
    };
    let mut others = Vec::new();
    for _ in 1..CLIENTS {
        let url = setup.url.clone();
        let ready = ready.clone();
        others.push(tokio::spawn(async move {
            let mut reader = Reader::get(&url).await;
            assert!(reader.read_chunk().await);
            ready.send(()).unwrap();
            reader.finish().await
        }));
    }
    for _ in 0..CLIENTS {
        ready_seen.recv().await.unwrap();
    }
    // The dropper left mid-fill (the gate still holds upstream at 50 %).
    let dropped_at = dropper.await.unwrap();
    assert!(dropped_at >= size as u64 / 10 && dropped_at < size as u64 / 2);
    assert!(!setup.proxy.has_object(&setup.digest));
    setup.gate.open();
    for other in others {
        assert_eq!(other.await.unwrap(), (setup.digest.clone(), setup.size));
    }
    assert_eq!(setup.upstream.count("GET", "/blobs/"), 1);
    setup.assert_committed_and_served_locally().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_delay_a_fast_one_or_the_fill() {
    let size = 16 * MIB;
    let setup = setup(size, MIB).await;
    let (ready, mut ready_seen) = mpsc::unbounded_channel::<()>();
    let (resume, resumed) = oneshot::channel::<()>();
    let slow_received = Arc::new(AtomicU64::new(0));
    let slow = {
        let url = setup.url.clone();
        let ready = ready.clone();
        let slow_received = slow_received.clone();
        tokio::spawn(async move {
            let mut reader = Reader::get(&url).await;
            assert!(reader.read_chunk().await);
            slow_received.store(reader.received(), Ordering::SeqCst);
            ready.send(()).unwrap();
            // Reads nothing more until told: its socket buffers fill up and stay full.
            resumed.await.unwrap();
            reader.finish().await
        })
    };
    let fast = {
        let url = setup.url.clone();
        tokio::spawn(async move {
            let mut reader = Reader::get(&url).await;
            assert!(reader.read_chunk().await);
            ready.send(()).unwrap();
            reader.finish().await
        })
    };
    for _ in 0..2 {
        ready_seen.recv().await.unwrap();
    }
    setup.gate.open();
    assert_eq!(fast.await.unwrap(), (setup.digest.clone(), setup.size));
    // The fill is done and committed while the slow reader still sits on its first chunk.
    setup.proxy.fills_settled().await;
    assert!(setup.proxy.has_object(&setup.digest));
    let slow_so_far = slow_received.load(Ordering::SeqCst);
    assert!(
        slow_so_far < setup.size / 10,
        "the slow reader had {slow_so_far} bytes when the fast one finished"
    );
    // The slow reader then gets its whole body from where it was.
    resume.send(()).unwrap();
    assert_eq!(slow.await.unwrap(), (setup.digest.clone(), setup.size));
    assert_eq!(setup.upstream.count("GET", "/blobs/"), 1);
    setup.assert_committed_and_served_locally().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_before_the_fill_ends_does_not_cancel_it() {
    let size = 8 * MIB;
    let setup = setup(size, MIB).await;
    let mut reader = Reader::get(&setup.url).await;
    assert!(reader.read_chunk().await);
    drop(reader);
    // Nobody is attached any more; the fill carries on once upstream does.
    assert_eq!(setup.proxy.gateway.fills_in_flight(), 1);
    setup.gate.open();
    setup.assert_committed_and_served_locally().await;
    assert_eq!(setup.upstream.count("GET", "/blobs/"), 1);
}
