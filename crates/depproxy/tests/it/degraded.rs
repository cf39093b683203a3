//! The data plane when things are not simple: ranged requests for objects not cached yet (one fill,
//! 206 with just those bytes, as soon as they are there), a cached object gone from storage (served
//! from upstream and stored again), the metadata database unreachable (hits from memory still
//! work, misses pass through uncached), and a manifest request that must never join a blob's fill.

use crate::support::switch::TcpSwitch;
use crate::support::{Options, TestProxy, body_digest, client, pattern};
use http::StatusCode;
use testkit::{FakeRegistry, Gate};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_range_of_an_uncached_blob_is_206_with_those_bytes_from_the_one_fill() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let size = 4 * MIB;
    let data = pattern(size, 11);
    let digest = upstream.put_blob(data.clone());
    // Upstream holds the body at 2 MiB: a range inside it must arrive before the fill can end.
    let gate = Gate::new(2 * MIB);
    upstream.set_gate(Some(gate.clone()));
    let url = format!("{}/v2/lab/resume/blobs/{digest}", proxy.url);
    let response = client().get(&url).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()["content-range"], format!("bytes 100-199/{size}").as_str());
    assert_eq!(response.headers()["content-length"], "100");
    assert_eq!(response.bytes().await.unwrap().as_ref(), &data[100..200], "served while the fill is held");
    // A resumed download: the second half, joining the same fill.
    let resumed = client().get(&url).header("range", format!("bytes={}-", 3 * MIB)).send().await.unwrap();
    assert_eq!(resumed.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resumed.headers()["content-range"], format!("bytes {}-{}/{size}", 3 * MIB, size - 1).as_str());
    gate.open();
    assert_eq!(resumed.bytes().await.unwrap().as_ref(), &data[3 * MIB..]);
    assert_eq!(upstream.count("GET", "/blobs/"), 1, "one upstream download for every range");
    proxy.fills_settled().await;
    assert!(proxy.has_object(&digest), "the fill a range started is stored whole");
    // A range past the end is 416, a hit or a miss alike.
    let beyond = client().get(&url).header("range", format!("bytes={size}-")).send().await.unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let other = upstream.put_blob(pattern(MIB, 12));
    let beyond_miss = client()
        .get(format!("{}/v2/lab/resume/blobs/{other}", proxy.url))
        .header("range", format!("bytes={}-", 2 * MIB))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond_miss.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn a_cached_object_gone_from_storage_is_fetched_again_and_stored_again() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let data = pattern(3 * MIB, 13);
    let digest = upstream.put_blob(data.clone());
    let url = format!("{}/v2/lab/gone/blobs/{digest}", proxy.url);
    assert_eq!(body_digest(client().get(&url).send().await.unwrap()).await.unwrap().0, digest);
    proxy.fills_settled().await;
    let path = proxy.data_dir.path().join(injector::storage_key(&digest));
    std::fs::remove_file(&path).unwrap();

    let before = upstream.count("GET", "/blobs/");
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "not a 500: the object comes from upstream");
    assert_eq!(body_digest(response).await.unwrap(), (digest.clone(), data.len() as u64));
    assert_eq!(upstream.count("GET", "/blobs/"), before + 1);
    proxy.fills_settled().await;
    assert!(path.exists(), "healed: stored again");
    let metrics = client().get(format!("{}/metrics", proxy.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("depproxy_unreadable_hits_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_unreachable_hits_from_memory_work_and_misses_pass_through() {
    let upstream = FakeRegistry::start().await;
    // PostgreSQL behind a switch that can cut it off.
    let server = std::env::var("DEPPROXY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let address: std::net::SocketAddr = {
        let url = url::Url::parse(&server).unwrap();
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432)).parse().unwrap()
    };
    let switch = TcpSwitch::start(address).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let database = format!(
        "postgres://postgres@{}/depproxy_degraded_{}_{nanos}",
        switch.url().trim_start_matches("http://"),
        std::process::id()
    );
    let config = format!(
        "database_url = \"{database}\"\n[[upstream]]\nname = \"up\"\nurl = \"{}\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\n",
        upstream.url()
    );
    let proxy = TestProxy::start(Options::toml(&config)).await;
    let (manifest, layers) = upstream.put_image("lab/app", "v1", &[&pattern(MIB, 14)]);
    let manifest_url = format!("{}/v2/lab/app/manifests/v1", proxy.url);
    let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    for url in [&manifest_url, &blob_url] {
        assert_eq!(client().get(url).send().await.unwrap().status(), StatusCode::OK);
    }
    proxy.fills_settled().await;

    switch.down();
    let ready = client().get(format!("{}/readyz", proxy.url)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().await.unwrap().contains("database"), "readiness names what is down");
    // Hits the control plane remembers: served, no upstream request.
    let before = upstream.count("GET", "/");
    for url in [&manifest_url, &blob_url] {
        let response = client().get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
    }
    assert_eq!(upstream.count("GET", "/"), before, "hits from memory");
    // A miss: served from upstream, uncached (its authorize call fails), never a 500.
    let fresh = upstream.put_blob(pattern(MIB, 15));
    let fresh_url = format!("{}/v2/lab/app/blobs/{fresh}", proxy.url);
    let response = client().get(&fresh_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_digest(response).await.unwrap().0, fresh);
    proxy.fills_settled().await;
    let metrics = client().get(format!("{}/metrics", proxy.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("depproxy_metadata_errors_total"), "{metrics}");
    assert!(!metrics.contains("depproxy_metadata_errors_total 0"), "the failure is counted: {metrics}");

    // Back: everything recovers by itself.
    switch.up().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let response = client().get(&fresh_url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        body_digest(response).await.unwrap();
        proxy.fills_settled().await;
        if proxy.has_object(&fresh) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the miss never got cached after the database came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = manifest;
}

#[tokio::test]
async fn a_manifest_request_for_a_layer_digest_never_joins_the_layers_fill() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let size = 8 * MIB;
    let data = pattern(size, 16);
    let digest = upstream.put_blob(data.clone());
    let gate = Gate::new(MIB);
    upstream.set_gate(Some(gate.clone()));
    // The manifest request comes first: its fill (manifest limits, manifest checks) must not be
    // the one the layer's clients join.
    let as_manifest = tokio::spawn({
        let url = format!("{}/v2/lab/mixed/manifests/{digest}", proxy.url);
        async move { client().get(url).send().await.unwrap().status() }
    });
    upstream.wait_for_requests("GET", "/manifests/", 1).await;
    let layer = client().get(format!("{}/v2/lab/mixed/blobs/{digest}", proxy.url)).send().await.unwrap();
    upstream.set_gate(None);
    gate.open();
    assert_eq!(layer.status(), StatusCode::OK);
    assert_eq!(body_digest(layer).await.unwrap(), (digest.clone(), size as u64), "the layer pull is whole");
    assert_ne!(as_manifest.await.unwrap(), StatusCode::OK, "a layer is no manifest");
    proxy.fills_settled().await;
    assert!(proxy.has_object(&digest));
}

#[tokio::test]
async fn readiness_says_whether_storage_answers() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let readyz = || async { client().get(format!("{}/readyz", proxy.url)).send().await.unwrap() };
    let ready = readyz().await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.text().await.unwrap(), "ready");
    assert_eq!(client().get(format!("{}/healthz", proxy.url)).send().await.unwrap().status(), StatusCode::OK);

    // Storage that cannot be read (its root is a file), on a proxy not asked before (an answer is
    // reused for a second).
    let broken = TestProxy::start(Options::upstream(&upstream.url())).await;
    let root = broken.data_dir.path().join("blobs");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::write(&root, b"not a directory").unwrap();
    let not_ready = client().get(format!("{}/readyz", broken.url)).send().await.unwrap();
    assert_eq!(not_ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(not_ready.text().await.unwrap(), "not ready: storage unreachable");
}
