//! The data plane under load and failure: a storm of cold misses beyond `max_concurrent_fills`
//! (the excess gets 503 + Retry-After after its queue timeout, never a hang; hits are served
//! throughout; a fill nobody follows any more gives way), and storage that fills up mid-fill (the
//! clients still get verified bytes, nothing is committed, no temp data is left, the next miss
//! caches again).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::StatusCode;
use support::{Options, TestProxy, body_digest, client, pattern};
use testkit::{FakeRegistry, Gate};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_fill_storm_beyond_the_limit_gets_503_and_hits_are_served_throughout() {
    let upstream = FakeRegistry::start().await;
    let config =
        "[limits]\nmax_concurrent_fills = 2\nmax_fills_per_client = 2\nfill_queue_timeout = \"1s\"\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    let cached = upstream.put_blob(pattern(MIB, 20));
    let cached_url = format!("{}/v2/lab/storm/blobs/{cached}", proxy.url);
    assert_eq!(body_digest(client().get(&cached_url).send().await.unwrap()).await.unwrap().0, cached);
    proxy.fills_settled().await;

    // Two slow fills take both slots: upstream holds their bodies.
    let gate = Gate::new(MIB / 2);
    upstream.set_gate(Some(gate.clone()));
    let blobs: Vec<_> = (0..4).map(|seed| upstream.put_blob(pattern(2 * MIB, 30 + seed))).collect();
    let url = |digest: &oci::Digest| format!("{}/v2/lab/storm/blobs/{digest}", proxy.url);
    let mut first = client().get(url(&blobs[0])).send().await.unwrap();
    let second = client().get(url(&blobs[1])).send().await.unwrap();
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    assert!(!first.chunk().await.unwrap().unwrap().is_empty());

    // The third waits its turn, then is told to come back: no hang.
    let started = std::time::Instant::now();
    let refused = client().get(url(&blobs[2])).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited the queue timeout first");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");

    // A hit during the storm is served at once.
    let hit = client().get(&cached_url).send().await.unwrap();
    assert_eq!(hit.status(), StatusCode::OK);
    assert_eq!(body_digest(hit).await.unwrap().0, cached);

    // The first fill's client leaves: that fill keeps its slot until someone needs it, then gives
    // way; the waiting miss starts.
    drop(first);
    let fourth = client().get(url(&blobs[3])).send().await.unwrap();
    assert_eq!(fourth.status(), StatusCode::OK, "an orphan fill gave way");
    upstream.set_gate(None);
    gate.open();
    assert_eq!(body_digest(fourth).await.unwrap().0, blobs[3]);
    assert_eq!(body_digest(second).await.unwrap().0, blobs[1]);
    proxy.fills_settled().await;
    let metrics = client().get(format!("{}/metrics", proxy.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("depproxy_fills_refused_total 1"), "{metrics}");
}

/// Behind an ingress every connection comes from the ingress: fills are counted per client as the
/// control plane resolved it from the trusted proxy's `X-Forwarded-For`, in process and in split
/// mode alike.
#[tokio::test]
async fn fills_are_admitted_per_client_behind_a_trusted_proxy() {
    for split in [false, true] {
        let upstream = FakeRegistry::start().await;
        let config = "trusted_proxies = [\"127.0.0.1\"]\n[limits]\nmax_concurrent_fills = 4\n\
                      max_fills_per_client = 1\nfill_queue_timeout = \"1s\"\n";
        let mut options = Options::toml(config).with_upstream(&upstream.url());
        if split {
            options = options.split();
        }
        let proxy = TestProxy::start(options).await;
        let gate = Gate::new(MIB / 2);
        upstream.set_gate(Some(gate.clone()));
        let blobs: Vec<_> = (0..3).map(|seed| upstream.put_blob(pattern(2 * MIB, 50 + seed))).collect();
        let pull = |digest: &oci::Digest, client_address: &str| {
            client()
                .get(format!("{}/v2/lab/ingress/blobs/{digest}", proxy.url))
                .header("x-forwarded-for", client_address)
                .send()
        };
        let mut first = pull(&blobs[0], "10.0.0.1").await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert!(!first.chunk().await.unwrap().unwrap().is_empty());
        // Another client, through the same ingress: a slot of its own, at once.
        let started = std::time::Instant::now();
        let other = pull(&blobs[1], "10.0.0.2").await.unwrap();
        assert_eq!(other.status(), StatusCode::OK, "split: {split}");
        assert!(started.elapsed() < Duration::from_secs(1), "split: {split}: it waited for a slot");
        // The first client is at its share: its second miss waits, then is told to come back.
        let refused = pull(&blobs[2], "10.0.0.1").await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "split: {split}");
        upstream.set_gate(None);
        gate.open();
        assert_eq!(body_digest(other).await.unwrap().0, blobs[1]);
        drop(first);
        proxy.fills_settled().await;
    }
}

/// A small tmpfs as the data directory: storage fills up in the middle of a fill.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(bytes: usize) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap().keep();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "cannot mount a tmpfs (the test needs root)");
        SmallDisk { path: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[tokio::test]
async fn a_disk_filling_up_mid_fill_still_serves_verified_bytes_and_commits_nothing() {
    let upstream = FakeRegistry::start().await;
    let disk = SmallDisk::mount(4 * MIB);
    let database = tempfile::tempdir().unwrap();
    let config = format!(
        "data_dir = \"{}\"\ndatabase_url = \"sqlite:{}\"\n",
        disk.path.display(),
        database.path().join("meta.db").display()
    );
    let mut options = Options::toml(&config).with_upstream(&upstream.url());
    options.keep_data_dir = true;
    let proxy = TestProxy::start(options).await;
    let big = pattern(8 * MIB, 40);
    let digest = upstream.put_blob(big.clone());
    let url = format!("{}/v2/lab/full/blobs/{digest}", proxy.url);
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_digest(response).await.unwrap(),
        (digest.clone(), big.len() as u64),
        "verified bytes, whole"
    );
    proxy.fills_settled().await;
    let stored = |digest: &oci::Digest| disk.path.join(injector::storage_key(digest)).exists();
    assert!(!stored(&digest), "nothing committed");
    assert_eq!(std::fs::read_dir(disk.path.join("tmp")).unwrap().count(), 0, "no temp data left");
    let metrics = client().get(format!("{}/metrics", proxy.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("depproxy_storage_write_errors_total 1"), "{metrics}");

    // Storage is tried again by the next miss, and a blob that fits is cached.
    let small = upstream.put_blob(pattern(MIB, 41));
    let response = client().get(format!("{}/v2/lab/full/blobs/{small}", proxy.url)).send().await.unwrap();
    assert_eq!(body_digest(response).await.unwrap().0, small);
    proxy.fills_settled().await;
    assert!(stored(&small), "the next miss caches");
}

async fn connect(proxy: &TestProxy) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(proxy.url.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the peer closes the connection or `limit` passes; returns what arrived and
/// whether it closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt as _;
    let mut received = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (received, false),
        }
    }
}

#[tokio::test]
async fn slow_idle_and_oversized_connections_are_closed_and_hits_go_on() {
    use tokio::io::AsyncWriteExt as _;
    let upstream = FakeRegistry::start().await;
    let config =
        "[server]\nheader_read_timeout = \"1s\"\nkeepalive_timeout = \"1s\"\nmax_header_bytes = \"16KiB\"\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    let cached = upstream.put_blob(pattern(MIB, 50));
    let url = format!("{}/v2/lab/conn/blobs/{cached}", proxy.url);
    assert_eq!(body_digest(client().get(&url).send().await.unwrap()).await.unwrap().0, cached);

    // Half a request header, then nothing (slowloris): closed by the header timeout.
    let mut slow = connect(&proxy).await;
    slow.write_all(b"GET /v2/ HTTP/1.1\r\nHost: proxy\r\nX-Slow: ").await.unwrap();
    // An idle kept-alive connection after one request: closed by the keep-alive timeout.
    let mut idle = connect(&proxy).await;
    idle.write_all(b"GET /v2/ HTTP/1.1\r\nHost: proxy\r\n\r\n").await.unwrap();
    // Meanwhile hits are served.
    assert_eq!(body_digest(client().get(&url).send().await.unwrap()).await.unwrap().0, cached);
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(closed, "a half-sent header is cut off");
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "the request was answered first");
    assert!(closed, "an idle kept-alive connection is closed");

    // A request head over the limit is refused.
    let mut oversized = connect(&proxy).await;
    let huge = format!("GET /v2/ HTTP/1.1\r\nHost: proxy\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    let _ = oversized.write_all(huge.as_bytes()).await;
    let (answer, closed) = read_until_closed(&mut oversized, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed && answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_the_fill_goes_on() {
    use tokio::io::AsyncWriteExt as _;
    let upstream = FakeRegistry::start().await;
    let config = "[server]\nwrite_idle_timeout = \"1s\"\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    let size = 32 * MIB;
    let digest = upstream.put_blob(pattern(size, 51));
    let path = format!("/v2/lab/stall/blobs/{digest}");
    // This client asks and never reads: its socket buffers fill, then its writes stall.
    let mut stalled = connect(&proxy).await;
    stalled.write_all(format!("GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n").as_bytes()).await.unwrap();
    // Another client of the same fill reads everything.
    let reader = client().get(format!("{}{path}", proxy.url)).send().await.unwrap();
    assert_eq!(body_digest(reader).await.unwrap(), (digest.clone(), size as u64));
    proxy.fills_settled().await;
    assert!(proxy.has_object(&digest), "the fill committed without the stalled client");
    // The stalled client's connection is dropped after the write-idle time: reading then gets
    // what was buffered, then the close — never the whole body.
    proxy.wait_for_metric("depproxy_connections_timed_out_total{reason=\"write_idle\"} 1").await;
    let (received, closed) = read_until_closed(&mut stalled, Duration::from_secs(10)).await;
    assert!(closed, "the stalled connection was dropped");
    assert!(received.len() < size, "it did not get the whole body: {}", received.len());
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_one_to_close() {
    use tokio::io::AsyncWriteExt as _;
    let upstream = FakeRegistry::start().await;
    let proxy =
        TestProxy::start(Options::toml("[server]\nmax_connections = 1\n").with_upstream(&upstream.url()))
            .await;
    let mut first = connect(&proxy).await;
    first.write_all(b"GET /v2/ HTTP/1.1\r\nHost: proxy\r\n\r\n").await.unwrap();
    let mut second = connect(&proxy).await;
    second.write_all(b"GET /v2/ HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n").await.unwrap();
    let (answer, _) = read_until_closed(&mut second, Duration::from_millis(500)).await;
    assert!(answer.is_empty(), "the second connection waits while the first is open");
    drop(first);
    let (answer, closed) = read_until_closed(&mut second, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(closed);
}

#[tokio::test]
async fn a_miss_waiting_for_a_fill_slot_longer_than_the_keepalive_timeout_gets_its_answer() {
    use tokio::io::AsyncWriteExt as _;
    let upstream = FakeRegistry::start().await;
    // One fill at a time, a queue timeout beyond the keep-alive timeout: the waiting request's
    // connection carries no byte while it waits, and must not be closed as idle.
    let config = "[server]\nkeepalive_timeout = \"1s\"\n[limits]\nmax_concurrent_fills = 1\nfill_queue_timeout = \"3s\"\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    let gate = testkit::Gate::new(1000);
    upstream.set_gate(Some(gate.clone()));
    let held = upstream.put_blob(pattern(MIB, 60));
    let waiting = upstream.put_blob(pattern(MIB, 61));
    // The first fill has its headers out and holds the only slot.
    let first = client().get(format!("{}/v2/lab/slot/blobs/{held}", proxy.url)).send().await.unwrap();
    let mut second = connect(&proxy).await;
    let path = format!("/v2/lab/slot/blobs/{waiting}");
    second.write_all(format!("GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n").as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut second, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after"), "{answer}");
    gate.open();
    assert_eq!(body_digest(first).await.unwrap().0, held);
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_by_the_keepalive_timeout_alone() {
    use tokio::io::AsyncWriteExt as _;
    let upstream = FakeRegistry::start().await;
    // The header-read timeout stays at its 30 s default: only the keep-alive timeout can close it.
    let config = "[server]\nkeepalive_timeout = \"1s\"\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    let mut idle = connect(&proxy).await;
    idle.write_all(b"GET /v2/ HTTP/1.1\r\nHost: proxy\r\n\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(closed, "closed after a second without a request");
    proxy.wait_for_metric("depproxy_connections_timed_out_total{reason=\"idle\"} 1").await;
}
