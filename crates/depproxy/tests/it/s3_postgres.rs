//! The scaled-out back-ends: objects in a real S3-compatible server (moto), metadata in a real
//! PostgreSQL. The same pull behaviour as local disk + SQLite, objects land straight in the bucket
//! under their content-addressed key (multipart for big ones), and nothing lands on a mismatch.
//!
//! Needs python3 with moto and a PostgreSQL server (`scripts/install-test-deps.sh`).

use crate::support::backends::{S3Server, postgres_url};
use crate::support::processes::require_tools;
use crate::support::switch::TcpSwitch;
use crate::support::{Options, TestProxy, client};
use http::StatusCode;
use testkit::{FakeRegistry, Fault};

fn config(upstream: &str, s3: &S3Server, extra: &str) -> String {
    format!(
        "database_url = \"{}\"\n[[upstream]]\nname = \"up\"\nurl = \"{upstream}\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\n{}{extra}",
        postgres_url(),
        s3.storage_toml()
    )
}

async fn start(upstream: &FakeRegistry, extra: &str) -> (S3Server, TestProxy) {
    require_tools(&["python3", "curl", "psql"]);
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    let proxy = TestProxy::start(Options::toml(&config(&upstream.url(), &s3, extra))).await;
    (s3, proxy)
}

fn layer(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8).collect()
}

#[tokio::test]
async fn pulls_land_in_the_bucket_and_metadata_in_postgres() {
    let upstream = FakeRegistry::start().await;
    let big = layer(20 << 20, 1);
    let small = layer(3_000, 2);
    let (manifest, layers) = upstream.put_image("lab/app", "v1", &[&big, &small]);
    let (s3, proxy) = start(&upstream, "").await;

    let response = client().get(format!("{}/v2/lab/app/manifests/v1", proxy.url)).send().await.unwrap();
    assert_eq!(response.headers()["docker-content-digest"], manifest.to_string().as_str());
    for (digest, bytes) in layers.iter().zip([&big, &small]) {
        let response = client().get(format!("{}/v2/lab/app/blobs/{digest}", proxy.url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
    proxy.fills_settled().await;
    assert_eq!(s3.assert_objects_hash_to_their_names().await, 3, "manifest and two layers in the bucket");
    assert!(proxy.stored_objects().is_empty(), "nothing on local disk with S3 storage");
    assert_eq!(proxy.temp_entries(), 0);
    let spool = proxy.data_dir.path().join("spool/tmp");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "spools are removed after commit");

    // Warm: served from the bucket, with ranges, no upstream request.
    upstream.clear_log();
    let url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    assert_eq!(client().get(&url).send().await.unwrap().bytes().await.unwrap().as_ref(), big.as_slice());
    let partial = client().get(&url).header("range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(partial.bytes().await.unwrap().as_ref(), &big[1000..2000]);
    let by_tag = client().get(format!("{}/v2/lab/app/manifests/v1", proxy.url)).send().await.unwrap();
    assert_eq!(by_tag.status(), StatusCode::OK);
    assert!(upstream.log().is_empty(), "{:?}", upstream.log());
    drop(s3);
}

#[tokio::test]
async fn a_mismatch_puts_nothing_in_the_bucket() {
    let upstream = FakeRegistry::start().await;
    let big = layer(12 << 20, 3);
    let digest = upstream.put_blob(big.clone());
    let (s3, proxy) = start(&upstream, "").await;
    upstream.set_fault(Some(Fault::WrongBytes));
    let url = format!("{}/v2/lab/app/blobs/{digest}", proxy.url);
    let response = client().get(&url).send().await.unwrap();
    assert!(response.bytes().await.is_err(), "the body must not look complete");
    proxy.fills_settled().await;
    let key = injector::storage_key(&digest);
    assert!(s3.object(&key).await.is_none(), "a blob that failed verification reached the bucket");
    assert!(s3.keys().is_empty());
    upstream.set_fault(None);
    assert_eq!(client().get(&url).send().await.unwrap().bytes().await.unwrap().as_ref(), big.as_slice());
    proxy.fills_settled().await;
    assert_eq!(s3.assert_objects_hash_to_their_names().await, 1);
}

#[tokio::test]
async fn redirect_mode_sends_clients_to_a_presigned_url() {
    let upstream = FakeRegistry::start().await;
    let (manifest, layers) = upstream.put_image("lab/app", "v1", &[b"redirected layer"]);
    let (_s3, proxy) = start(&upstream, "redirect = true\n").await;
    let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    assert_eq!(
        client().get(&blob_url).send().await.unwrap().bytes().await.unwrap().as_ref(),
        b"redirected layer"
    );
    proxy.fills_settled().await;
    let hit = client().get(&blob_url).send().await.unwrap();
    assert_eq!(hit.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = hit.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("X-Amz-Signature"), "{location}");
    let followed = reqwest::get(&location).await.unwrap();
    assert_eq!(followed.bytes().await.unwrap().as_ref(), b"redirected layer");
    // Manifests are never redirected: clients need our headers.
    let manifest_response =
        client().get(format!("{}/v2/lab/app/manifests/{manifest}", proxy.url)).send().await.unwrap();
    assert_eq!(manifest_response.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_the_bucket_unreachable_hits_come_from_upstream_and_misses_pass_through() {
    let upstream = FakeRegistry::start().await;
    require_tools(&["python3", "curl", "psql"]);
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    let target: std::net::SocketAddr = s3.endpoint.trim_start_matches("http://").parse().unwrap();
    let switch = TcpSwitch::start(target).await;
    let toml = config(&upstream.url(), &s3, "").replace(&s3.endpoint, &switch.url());
    let proxy = TestProxy::start(Options::toml(&toml)).await;
    let cached = layer(4 << 20, 7);
    let (_, layers) = upstream.put_image("lab/app", "v1", &[&cached]);
    let cached_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    assert_eq!(client().get(&cached_url).send().await.unwrap().bytes().await.unwrap().as_ref(), &cached[..]);
    proxy.fills_settled().await;
    assert_eq!(s3.assert_objects_hash_to_their_names().await, 1);

    switch.down();
    // A cached blob: its object cannot be read, so it comes from the upstream, verified.
    upstream.clear_log();
    let response = client().get(&cached_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &cached[..]);
    assert_eq!(upstream.count("GET", &format!("/v2/lab/app/blobs/{}", layers[0])), 1);
    // A miss: passed through (its upload fails after verification; the client has its bytes).
    let fresh = layer(3 << 20, 8);
    let fresh_digest = upstream.put_blob(fresh.clone());
    let fresh_url = format!("{}/v2/lab/app/blobs/{fresh_digest}", proxy.url);
    let response = client().get(&fresh_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &fresh[..]);
    proxy.fills_settled().await;
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("depproxy_unreadable_hits_total 1"), "{metrics}");
    assert!(!metrics.contains("depproxy_storage_write_errors_total 0"), "{metrics}");
    assert_eq!(proxy.temp_entries(), 0);

    // Back: the next miss is stored, and the cached blob is a hit again.
    switch.up().await;
    let response = client().get(&fresh_url).send().await.unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), &fresh[..]);
    proxy.fills_settled().await;
    assert_eq!(
        s3.assert_objects_hash_to_their_names().await,
        2,
        "the miss is stored once the bucket is back"
    );
    upstream.clear_log();
    assert_eq!(client().get(&cached_url).send().await.unwrap().bytes().await.unwrap().as_ref(), &cached[..]);
    assert!(upstream.log().is_empty(), "a hit again: {:?}", upstream.log());
}
