//! Multipart uploads left behind by a node that died mid-upload: `S3Store::abort_stale_uploads`
//! finds them in a real S3-compatible server (moto) and aborts those old enough, and nothing else:
//! not completed objects, not uploads under another store's prefix, not uploads of keys depproxy
//! never writes.
//!
//! moto (5.x) reports every upload as initiated at a fixed date in 2010, so the age cut-off is
//! exercised here at its ends — zero (everything is stale) and a century (nothing is) — and between
//! them by the unit tests beside the code.
//!
//! Needs python3 with moto (`scripts/install-test-deps.sh`).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::support::backends::S3Server;
use crate::support::processes::{require_tools, run};
use storage::object_store::aws::{AmazonS3, AmazonS3Builder};
use storage::object_store::path::Path as ObjectPath;
use storage::object_store::{ObjectStoreExt as _, PutPayload};
use storage::{Expectation, S3Store};

/// Longer than any upload moto or a real bucket can report has been running.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

async fn start() -> S3Server {
    require_tools(&["python3", "curl"]);
    tokio::task::spawn_blocking(S3Server::start).await.unwrap()
}

/// A client of our own, as the node that died would have had.
fn bucket_client(s3: &S3Server) -> Arc<AmazonS3> {
    let store = AmazonS3Builder::new()
        .with_endpoint(&s3.endpoint)
        .with_allow_http(true)
        .with_bucket_name(&s3.bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    Arc::new(store)
}

/// A content-addressed key, as depproxy names objects.
fn object_key(seed: &str) -> String {
    injector::storage_key(&oci::Digest::of(seed.as_bytes()))
}

/// Starts a multipart upload of `key`, sends one part, and walks away, as a dying node would.
async fn abandon_upload(bucket: &AmazonS3, key: &str) {
    let mut upload = bucket.put_multipart(&ObjectPath::from(key)).await.unwrap();
    upload.put_part(PutPayload::from(vec![7u8; 5 << 20])).await.unwrap();
}

/// Keys of the bucket's in-progress multipart uploads, asked of the server directly.
fn pending_uploads(s3: &S3Server) -> Vec<String> {
    let listing = run(Command::new("curl")
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "test:test"])
        .args(["-sf", &format!("{}/{}?uploads", s3.endpoint, s3.bucket)]));
    let mut keys: Vec<String> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|part| part.split("</Key>").next())
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

async fn commit_object(store: &S3Store, bytes: &[u8]) -> String {
    let mut upload = store.begin_upload(bytes.len() as u64, None).await.unwrap();
    upload.write(bytes.to_vec().into()).await.unwrap();
    let expected = Expectation::digest(&oci::Digest::of(bytes), Some(bytes.len() as u64));
    upload.commit(&expected).await.unwrap().key
}

async fn read_object(store: &S3Store, key: &str) -> Vec<u8> {
    let mut stream = store.read(key, None).await.unwrap().stream;
    let mut bytes = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    bytes
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn stale_uploads_under_the_prefix_are_aborted_and_nothing_else() {
    let s3 = start().await;
    let bucket = bucket_client(&s3);
    let store = s3.store_with_prefix("depproxy/").await;
    let neighbour = s3.store_with_prefix("tenant/").await;

    let object = b"a completed object, which no sweep may touch".to_vec();
    let object_key_committed = commit_object(&store, &object).await;
    let old = format!("depproxy/{}", object_key("old"));
    let fresh = format!("depproxy/{}", object_key("fresh"));
    let neighbours = format!("tenant/{}", object_key("tenant"));
    let foreign = "depproxy/exports/report.tar".to_owned();
    for key in [&old, &fresh, &neighbours, &foreign] {
        abandon_upload(&bucket, key).await;
    }
    let everything = sorted(&[&old, &fresh, &neighbours, &foreign]);
    assert_eq!(pending_uploads(&s3), everything);

    assert_eq!(store.abort_stale_uploads(CENTURY).await.unwrap(), 0, "nothing is a century old");
    assert_eq!(pending_uploads(&s3), everything);

    assert_eq!(store.abort_stale_uploads(Duration::ZERO).await.unwrap(), 2, "the old and the fresh one");
    assert_eq!(
        pending_uploads(&s3),
        sorted(&[&neighbours, &foreign]),
        "another prefix's upload and a key depproxy never writes are left alone"
    );
    assert_eq!(store.abort_stale_uploads(Duration::ZERO).await.unwrap(), 0, "a second sweep finds none");
    assert_eq!(read_object(&store, &object_key_committed).await, object, "completed objects stay");
    assert_eq!(store.stat(&object_key_committed).await.unwrap(), Some(object.len() as u64));

    assert_eq!(neighbour.abort_stale_uploads(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(pending_uploads(&s3), vec![foreign]);
}

#[tokio::test]
async fn without_a_prefix_only_depproxy_keys_are_swept() {
    let s3 = start().await;
    let bucket = bucket_client(&s3);
    let store = s3.store().await;

    let ours = object_key("ours");
    let prefixed = format!("tenant/{}", object_key("tenant"));
    let foreign = "backups/2026-01-01.tar".to_owned();
    for key in [&ours, &prefixed, &foreign] {
        abandon_upload(&bucket, key).await;
    }

    assert_eq!(store.abort_stale_uploads(CENTURY).await.unwrap(), 0);
    assert_eq!(store.abort_stale_uploads(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(pending_uploads(&s3), sorted(&[&prefixed, &foreign]));
}

#[tokio::test]
async fn a_listing_the_bucket_refuses_is_an_error_that_says_why() {
    let s3 = start().await;
    let spool = tempfile::tempdir().unwrap();
    let missing = S3Store::open(storage::S3Settings {
        endpoint: Some(s3.endpoint.clone()),
        bucket: "no-such-bucket".into(),
        region: "us-east-1".into(),
        path_style: true,
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        prefix: String::new(),
        redirect: false,
        presigned_url_ttl: Duration::from_secs(600),
        spool_dir: spool.path().to_owned(),
        proxy: None,
    })
    .await
    .unwrap();
    let error = missing.abort_stale_uploads(Duration::ZERO).await.unwrap_err().to_string();
    assert!(error.contains("404") && error.contains("NoSuchBucket"), "{error}");
    assert!(!error.contains("X-Amz-Signature"), "no signed URL in errors: {error}");
}
