//! The data plane under load and failure: a storm of cold misses beyond `max_concurrent_fills`
//! (the excess gets 503 + Retry-After after its queue timeout, never a hang; hits are served
//! throughout; a fill nobody follows any more gives way), and storage that fills up mid-fill (the
//! clients still get verified bytes, nothing is committed, no temp data is left, the next miss
//! caches again). Then the listener against abusive connections: slow, idle and oversized heads,
//! half-sent bodies, answers past their deadline, one address taking every connection, HTTP/2
//! without TLS (off by default; on, under its stream cap, deadlines and idle rule), and `Host`
//! names a loopback listener must not answer (DNS rebinding).

use std::time::Duration;

use crate::support::{Options, TestProxy, body_digest, client, pattern};
use http::StatusCode;
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
    slow.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
    // An idle kept-alive connection after one request: closed by the keep-alive timeout.
    let mut idle = connect(&proxy).await;
    idle.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    // Meanwhile hits are served.
    assert_eq!(body_digest(client().get(&url).send().await.unwrap()).await.unwrap().0, cached);
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(closed, "a half-sent header is cut off");
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "the request was answered first");
    assert!(closed, "an idle kept-alive connection is closed");

    // A request head over the limit is refused.
    let mut oversized = connect(&proxy).await;
    let huge = format!("GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
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
    stalled.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
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
    first.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut second = connect(&proxy).await;
    second.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
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
    second.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
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
    idle.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(closed, "closed after a second without a request");
    proxy.wait_for_metric("depproxy_connections_timed_out_total{reason=\"idle\"} 1").await;
}

/// A connection from a given loopback source address (every `127.0.0.0/8` address is this host's).
async fn connect_from(proxy: &TestProxy, source: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(proxy.url.trim_start_matches("http://").parse().unwrap()).await.unwrap()
}

/// `/metrics`, fetched from another source address than the test's clients (which may be at
/// their per-client limit).
async fn metrics_from(proxy: &TestProxy, source: &str) -> String {
    let client = reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    client.get(format!("{}/metrics", proxy.url)).send().await.unwrap().text().await.unwrap()
}

/// Sends a request head and reads until the response head has arrived; returns it.
async fn request_head(stream: &mut tokio::net::TcpStream, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !received.windows(4).any(|window| window == b"\r\n\r\n") {
        let n =
            tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await.unwrap().unwrap();
        assert!(n > 0, "closed before a response head: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_half_sent_request_body_is_answered_408_and_its_connection_closed_within_the_body_read_timeout() {
    use tokio::io::AsyncWriteExt as _;
    let upstream = FakeRegistry::start().await;
    // Every other timer at its default (30 s and more): only the body deadline can end this.
    let proxy = TestProxy::start(
        Options::toml("[server]\nbody_read_timeout = \"1s\"\n").with_upstream(&upstream.url()),
    )
    .await;
    let cached = upstream.put_blob(pattern(MIB, 70));
    let url = format!("{}/v2/lab/body/blobs/{cached}", proxy.url);
    assert_eq!(body_digest(client().get(&url).send().await.unwrap()).await.unwrap().0, cached);

    // A token request announcing 64 KiB that sends half of it, then nothing.
    let mut held = connect(&proxy).await;
    let head = "POST /v2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 65536\r\n\r\n";
    held.write_all(head.as_bytes()).await.unwrap();
    held.write_all(&[b'a'; 32 * 1024]).await.unwrap();
    let started = std::time::Instant::now();
    // Meanwhile hits are served.
    assert_eq!(body_digest(client().get(&url).send().await.unwrap()).await.unwrap().0, cached);
    let (answer, closed) = read_until_closed(&mut held, Duration::from_secs(20)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(closed, "the connection is closed after the 408");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed within body_read_timeout + 1 s or so: {took:?}");
    proxy.wait_for_metric("depproxy_requests_timed_out_total{reason=\"body\"} 1").await;
}

#[tokio::test]
async fn an_answer_the_proxy_owes_is_cut_at_the_request_timeout_but_a_miss_waiting_for_a_fill_slot_is_not() {
    let upstream = FakeRegistry::start().await;
    let config = "[server]\nrequest_timeout = \"1s\"\n[timeouts]\nheader = \"20s\"\n[limits]\nmax_concurrent_fills = 1\nfill_queue_timeout = \"10s\"\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;

    // A HEAD of a manifest the cache does not hold is answered by the control plane, which asks
    // upstream; upstream never answers. The client gets 503 at the request timeout, not 20 s later.
    let (manifest, _) = upstream.put_image("lab/slow", "v1", &[b"layer"]);
    upstream.set_fault_for(&manifest, Some(testkit::Fault::Hang));
    let started = std::time::Instant::now();
    let head = client().head(format!("{}/v2/lab/slow/manifests/v1", proxy.url)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(head.headers()["retry-after"], "1");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(5), "{took:?}");
    proxy.wait_for_metric("depproxy_requests_timed_out_total{reason=\"answer\"} 1").await;

    // One fill slot, held by a fill whose upstream body is gated; a second miss waits in the fill
    // queue past the request timeout, and is answered once the slot frees.
    let gate = Gate::new(1000);
    upstream.set_gate(Some(gate.clone()));
    let held = upstream.put_blob(pattern(MIB, 71));
    let waiting = upstream.put_blob(pattern(MIB, 72));
    let first = client().get(format!("{}/v2/lab/queue/blobs/{held}", proxy.url)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = tokio::spawn(client().get(format!("{}/v2/lab/queue/blobs/{waiting}", proxy.url)).send());
    // Past the request timeout, in the queue.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!second.is_finished(), "a miss in the fill queue is not cut by the request timeout");
    upstream.set_gate(None);
    gate.open();
    assert_eq!(body_digest(first).await.unwrap().0, held);
    let second = second.await.unwrap().unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(body_digest(second).await.unwrap().0, waiting);
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("depproxy_requests_timed_out_total{reason=\"answer\"} 1\n"), "{metrics}");
}

#[tokio::test]
async fn one_address_gets_max_connections_per_client_and_others_still_connect() {
    let upstream = FakeRegistry::start().await;
    let config = "[server]\nmax_connections_per_client = 2\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    let request = "GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut first = connect_from(&proxy, "127.0.0.1").await;
    let mut second = connect_from(&proxy, "127.0.0.1").await;
    assert!(request_head(&mut first, request).await.starts_with("HTTP/1.1 200"));
    assert!(request_head(&mut second, request).await.starts_with("HTTP/1.1 200"));
    // A third from the same address is closed at once, unanswered.
    let mut third = connect_from(&proxy, "127.0.0.1").await;
    let (answer, closed) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(closed && answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // Another address is not affected.
    let mut other = connect_from(&proxy, "127.0.0.2").await;
    assert!(request_head(&mut other, request).await.starts_with("HTTP/1.1 200"));
    let metrics = metrics_from(&proxy, "127.0.0.4").await;
    assert!(metrics.contains("depproxy_connections_refused_total{reason=\"per_client\"} 1\n"), "{metrics}");
    // A closed connection gives its slot back.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from(&proxy, "127.0.0.1").await;
        use tokio::io::AsyncWriteExt as _;
        let _ = again.write_all(request.as_bytes()).await;
        let (answer, _) = read_until_closed(&mut again, Duration::from_millis(500)).await;
        if String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot never came back");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_share_of_requests() {
    use tokio::io::AsyncWriteExt as _;
    let upstream = FakeRegistry::start().await;
    let config = "trusted_proxies = [\"127.0.0.3\"]\n[server]\nmax_connections_per_client = 1\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    // The proxy's first connection carries a request of client A that stays in flight (its body
    // comes slowly).
    let mut slow = connect_from(&proxy, "127.0.0.3").await;
    slow.write_all(b"POST /v2/token HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.7\r\nContent-Length: 100\r\n\r\nscope=").await.unwrap();
    // Its connections are not counted as one client's: a second and a third are served.
    let get =
        |client: &str| format!("GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {client}\r\n\r\n");
    let mut second = connect_from(&proxy, "127.0.0.3").await;
    let mut third = connect_from(&proxy, "127.0.0.3").await;
    // Client A has its one request in flight: refused. Client B is served.
    let refused = request_head(&mut second, &get("203.0.113.7")).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.to_ascii_lowercase().contains("retry-after: 1"), "{refused}");
    assert!(request_head(&mut third, &get("203.0.113.8")).await.starts_with("HTTP/1.1 200"));
    let metrics = metrics_from(&proxy, "127.0.0.4").await;
    assert!(metrics.contains("depproxy_requests_refused_total{reason=\"per_client\"} 1\n"), "{metrics}");
    assert!(metrics.contains("depproxy_connections_refused_total{reason=\"per_client\"} 0\n"), "{metrics}");
    drop(slow);
}

#[tokio::test]
async fn a_dual_stack_listener_sees_an_ipv4_client_by_its_ipv4_address() {
    use tokio::io::AsyncWriteExt as _;
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(
            |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>| async move {
                peer.ip().to_string()
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("[::]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut limits = crate::support::test_limits();
    limits.max_connections_per_client = 1;
    tokio::spawn(depproxy::server::run_server(
        listener,
        router,
        limits,
        depproxy::server::ServerMetrics::default(),
        std::future::pending(),
    ));
    let mut first = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    first.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let (answer, _) = read_until_closed(&mut first, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.ends_with("\r\n\r\n127.0.0.1"), "not ::ffff:127.0.0.1: {answer}");
}

#[tokio::test]
async fn a_loopback_listener_answers_only_loopback_or_allowed_host_names_and_every_answer_is_nosniff() {
    let upstream = FakeRegistry::start().await;
    let config = "[server]\nallowed_hosts = [\"registry.internal\"]\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    let answer = |request: &'static str| {
        let proxy = &proxy;
        async move {
            use tokio::io::AsyncWriteExt as _;
            let mut stream = connect(proxy).await;
            stream.write_all(request.as_bytes()).await.unwrap();
            let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
            String::from_utf8_lossy(&answer).to_ascii_lowercase()
        }
    };
    // What a DNS-rebinding page makes a browser send: the attacker's name, to 127.0.0.1.
    let rebound =
        answer("GET /v2/ HTTP/1.1\r\nHost: rebound.evil.example\r\nConnection: close\r\n\r\n").await;
    assert!(rebound.starts_with("http/1.1 421"), "{rebound}");
    assert!(rebound.contains("allowed_hosts"), "the refusal says what to do: {rebound}");
    assert!(rebound.contains("x-content-type-options: nosniff"), "{rebound}");
    for allowed in [
        "GET /v2/ HTTP/1.1\r\nHost: localhost:5000\r\nConnection: close\r\n\r\n",
        "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET /v2/ HTTP/1.1\r\nHost: [::1]:5000\r\nConnection: close\r\n\r\n",
        "GET /v2/ HTTP/1.1\r\nHost: Registry.Internal:5000\r\nConnection: close\r\n\r\n",
    ] {
        let answer = answer(allowed).await;
        assert!(answer.starts_with("http/1.1 200"), "{allowed:?}: {answer}");
        assert!(answer.contains("x-content-type-options: nosniff"), "{answer}");
    }
    let missing = answer("GET /v2/ HTTP/1.0\r\n\r\n").await;
    assert!(missing.starts_with("http/1.0 400") || missing.starts_with("http/1.1 400"), "{missing}");
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("depproxy_requests_refused_total{reason=\"host\"} 2\n"), "{metrics}");
    // Blobs and errors from the gateway are nosniff too.
    let unknown = client()
        .get(format!("{}/v2/lab/none/blobs/sha256:{}", proxy.url, "0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.headers()["x-content-type-options"], "nosniff");

    // A listener on every address is reached by name from the network: it answers any Host.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(depproxy::server::run_server(
        listener,
        proxy.router.clone(),
        proxy.config.server.clone(),
        depproxy::server::ServerMetrics::default(),
        std::future::pending(),
    ));
    let any = client()
        .get(format!("http://127.0.0.1:{port}/v2/"))
        .header("host", "registry.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(any.status(), StatusCode::OK);
}

/// An HTTP/2 connection without TLS (prior knowledge) that has had one `GET /v2/` answered, driven
/// in the background from then on (the handle resolves when the connection ends); and the number
/// of streams the server's SETTINGS allow.
async fn h2c(
    proxy: &TestProxy,
) -> (h2::client::SendRequest<bytes::Bytes>, tokio::task::JoinHandle<Result<(), h2::Error>>, usize) {
    let (send, mut connection) = h2::client::handshake(connect(proxy).await).await.unwrap();
    let mut send = send.ready().await.unwrap();
    let hello =
        send.send_request(http::Request::get("http://localhost/v2/").body(()).unwrap(), true).unwrap().0;
    let answer = tokio::select! {
        answer = hello => answer.unwrap(),
        ended = &mut connection => panic!("the connection ended first: {ended:?}"),
    };
    assert_eq!(answer.status(), StatusCode::OK);
    let streams = connection.max_concurrent_send_streams();
    (send, tokio::spawn(connection), streams)
}

#[tokio::test]
async fn h2c_is_off_by_default() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let (send, connection) = h2::client::handshake(connect(&proxy).await).await.unwrap();
    let driver = tokio::spawn(connection);
    let request = http::Request::get("http://localhost/v2/").body(()).unwrap();
    let answered = async { send.ready().await?.send_request(request, true)?.0.await };
    let answered = answered.await;
    assert!(answered.is_err(), "an HTTP/1-only listener does not speak HTTP/2: {answered:?}");
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the server closed the connection")
        .unwrap()
        .ok();
}

#[tokio::test]
async fn h2c_when_on_caps_streams_and_cuts_half_sent_bodies_per_stream_then_closes_the_connection() {
    let upstream = FakeRegistry::start().await;
    let config = "[server]\nhttp2 = true\nbody_read_timeout = \"1s\"\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    let (mut send, driver, streams) = h2c(&proxy).await;
    assert_eq!(streams, 64, "the server's SETTINGS_MAX_CONCURRENT_STREAMS");
    // As many token requests as the server allows, each with 4 KiB of a 64 KiB body.
    let mut answers = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..64 {
        send = send.ready().await.unwrap();
        let request = http::Request::post("http://localhost/v2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", "65536")
            .body(())
            .unwrap();
        let (answer, mut body) = send.send_request(request, false).unwrap();
        body.send_data(bytes::Bytes::from(vec![b'a'; 4096]), false).unwrap();
        answers.push(answer);
        bodies.push(body);
    }
    let started = std::time::Instant::now();
    // Each stream is answered 408 at its body deadline…
    for answer in answers {
        let answer = tokio::time::timeout(Duration::from_secs(10), answer).await.unwrap().unwrap();
        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
    }
    // …and the connection, whose client sent bodies too slowly, is closed.
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the connection stayed open")
        .unwrap()
        .ok();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "within body_read_timeout + 1 s or so: {took:?}");
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("depproxy_requests_timed_out_total{reason=\"body\"} 64\n"), "{metrics}");
    drop(bodies);
}

#[tokio::test]
async fn an_h2c_connection_that_only_pings_is_closed_after_the_keepalive_timeout() {
    let upstream = FakeRegistry::start().await;
    let config = "[server]\nhttp2 = true\nkeepalive_timeout = \"1s\"\n";
    let proxy = TestProxy::start(Options::toml(config).with_upstream(&upstream.url())).await;
    let (send, mut connection) = h2::client::handshake(connect(&proxy).await).await.unwrap();
    let mut pings = connection.ping_pong().expect("ping_pong taken once");
    let driver = tokio::spawn(connection);
    // Kept: a client connection ends when its last request handle is dropped.
    let _send = send.ready().await.unwrap();
    let started = std::time::Instant::now();
    // A PING every 200 ms: answered, but no stream is ever opened.
    let pinger = tokio::spawn(async move {
        let mut answered = 0;
        while pings.ping(h2::Ping::opaque()).await.is_ok() {
            answered += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        answered
    });
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("pings kept the connection open")
        .unwrap()
        .ok();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "{took:?}");
    assert!(pinger.await.unwrap() >= 3, "the pings were answered while it was open");
    proxy.wait_for_metric("depproxy_connections_timed_out_total{reason=\"idle\"} 1").await;
}
