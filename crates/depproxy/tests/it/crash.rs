//! Crash safety with real processes: `kill -9` of `depproxy serve` in the middle of a fill, then a
//! restart on the same data directory. Nothing half-written may be visible as an object, the
//! orphaned spool is removed at start-up, what was committed before the crash is still served
//! from the cache, and the interrupted object is fetched again correctly.

use std::path::Path;

use crate::support::processes::{Depproxy, stored_object_hashes};
use crate::support::{body_digest, client, pattern};
use http::StatusCode;
use testkit::{FakeRegistry, Gate};

const MIB: usize = 1024 * 1024;

fn temp_files(data_dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(data_dir.join("tmp"))
        .unwrap()
        .flatten()
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry.metadata().unwrap().len()))
        .collect()
}

// The upstream runs in this process and must keep serving while the test waits on processes:
// blocking calls go to the blocking pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_fill_then_restart_leaves_no_bad_object_and_pulls_again() {
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let url = upstream.url();
    let small = pattern(200_000, 1);
    let small_digest = upstream.put_blob(small.clone());
    let big_size = 32 * MIB;
    let big_digest = upstream.put_blob(pattern(big_size, 2));

    let proxy = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Depproxy::serve(&url)).await.unwrap()
    };
    let small_url = |proxy: &Depproxy| format!("{}/v2/lab/crash/blobs/{small_digest}", proxy.url());
    let big_url = |proxy: &Depproxy| format!("{}/v2/lab/crash/blobs/{big_digest}", proxy.url());

    // Committed before the crash: the client is served once the bytes are verified, and the
    // fill commits right after.
    let response = client().get(small_url(&proxy)).send().await.unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), small.as_slice());
    wait_stored(&proxy, 1).await;

    // A fill held mid-way by upstream, with a client attached and receiving.
    let gate = Gate::new(big_size / 2);
    upstream.set_gate(Some(gate.clone()));
    let mut response = client().get(big_url(&proxy)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = 0;
    while received < MIB {
        received += response.chunk().await.unwrap().unwrap().len();
    }
    // Clients get a fill's bytes from memory as they arrive; the spool follows within moments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let spools = temp_files(proxy.data_dir.path());
        assert_eq!(spools.len(), 1, "one fill spooling: {spools:?}");
        if spools[0].1 >= received as u64 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the spool never caught up: {spools:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let data_dir = tokio::task::spawn_blocking(move || proxy.crash()).await.unwrap();
    // The client's body is cut short, not ended as if complete.
    assert!(crate::support::body_is_cut(response).await, "a killed fill must not look like a whole body");
    assert_eq!(temp_files(data_dir.path()).len(), 1, "the crash leaves its spool behind");
    gate.open();
    upstream.set_gate(None);

    let proxy = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Depproxy::serve_on(&url, data_dir)).await.unwrap()
    };
    assert!(temp_files(proxy.data_dir.path()).is_empty(), "start-up removes orphaned spools");
    let objects = stored_object_hashes(proxy.data_dir.path());
    assert_eq!(
        objects,
        vec![(small_digest.hex().to_owned(), small_digest.hex().to_owned())],
        "only the object committed before the crash is in storage, intact"
    );

    let before = upstream.count("GET", "/blobs/");
    let response = client().get(small_url(&proxy)).send().await.unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), small.as_slice());
    assert_eq!(
        upstream.count("GET", "/blobs/"),
        before,
        "what was committed before the crash is still a hit"
    );

    let response = client().get(big_url(&proxy)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_digest(response).await.unwrap(), (big_digest.clone(), big_size as u64));
    assert_eq!(upstream.count("GET", "/blobs/"), before + 1);
    // The client is done once the bytes are verified; the fill then makes them durable and
    // records them. Wait for that (the stored-fill counter), then look at the disk.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !client()
        .get(format!("{}/metrics", proxy.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("depproxy_fills_total{outcome=\"stored\"} 1")
    {
        assert!(std::time::Instant::now() < deadline, "the pull after the restart never committed");
        tokio::task::yield_now().await;
    }
    for (name, hash) in stored_object_hashes(proxy.data_dir.path()) {
        assert_eq!(name, hash, "a stored object does not hash to its name");
    }
    assert!(
        proxy.data_dir.path().join(injector::storage_key(&big_digest)).exists(),
        "the pull after the restart commits"
    );
    assert!(temp_files(proxy.data_dir.path()).is_empty());
}

/// Waits until the proxy process has committed `count` fills (its stored-fill counter): clients
/// are done once the bytes are verified, the commit follows.
async fn wait_stored(proxy: &Depproxy, count: u64) {
    let expected = format!("depproxy_fills_total{{outcome=\"stored\"}} {count}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics =
            client().get(format!("{}/metrics", proxy.url())).send().await.unwrap().text().await.unwrap();
        if metrics.contains(&expected) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no commit: {metrics}");
        tokio::task::yield_now().await;
    }
}

/// `SIGTERM` in the middle of a fill, with a short grace period: the process stops accepting,
/// cancels the fill when the grace is over, exits cleanly (status 0) and leaves no temp data and
/// no object behind; the client's body is cut, never complete-looking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_fill_cancels_it_at_the_grace_end_and_leaves_nothing() {
    crate::support::install_crypto();
    let upstream = FakeRegistry::start().await;
    let size = 16 * MIB;
    let digest = upstream.put_blob(pattern(size, 3));
    let gate = Gate::new(size / 2);
    upstream.set_gate(Some(gate.clone()));
    let config = format!(
        "[[upstream]]\nname = \"up\"\nurl = \"{}\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\n\
         [timeouts]\nshutdown_grace = \"1s\"\n",
        upstream.url()
    );
    let proxy = tokio::task::spawn_blocking(move || Depproxy::serve_with_config(&config)).await.unwrap();
    let url = format!("{}/v2/lab/term/blobs/{digest}", proxy.url());
    let mut response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = 0;
    while received < MIB {
        received += response.chunk().await.unwrap().unwrap().len();
    }
    assert_eq!(temp_files(proxy.data_dir.path()).len(), 1, "the fill is spooling");

    let (data_dir, took) =
        tokio::task::spawn_blocking(move || proxy.terminate(std::time::Duration::from_secs(20)))
            .await
            .unwrap();
    assert!(took >= std::time::Duration::from_secs(1), "the grace period was given: {took:?}");
    assert!(crate::support::body_is_cut(response).await, "a cancelled fill must not look like a whole body");
    assert!(temp_files(data_dir.path()).is_empty(), "no temp data left");
    assert!(stored_object_hashes(data_dir.path()).is_empty(), "nothing stored");
    let log = std::fs::read_to_string(data_dir.path().join("serve.log")).unwrap();
    assert!(log.contains("cancelling background work"), "{log}");
    gate.open();
}
