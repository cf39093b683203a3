//! One suite, run against SQLite always and against PostgreSQL when `DEPPROXY_TEST_POSTGRES_URL`
//! names a server (the project's test script sets it).

use super::*;

async fn backends() -> Vec<(Metadata, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("meta.db").display());
    let mut all = vec![(Metadata::connect(&url).await.unwrap(), Some(dir))];
    if let Ok(server) = std::env::var("DEPPROXY_TEST_POSTGRES_URL") {
        let url = format!(
            "{}/depproxy_test_{}",
            server.trim_end_matches('/'),
            std::process::id() as u64 * 1000 + rand_suffix()
        );
        all.push((Metadata::connect(&url).await.unwrap(), None));
    }
    all
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn blob(data: &[u8]) -> BlobRecord {
    BlobRecord {
        digest: Digest::of(data),
        size: data.len() as u64,
        media_type: "application/octet-stream".into(),
    }
}

#[tokio::test]
async fn blobs_are_scoped_per_group_and_upserts_are_idempotent() {
    for (db, _dir) in backends().await {
        let record = blob(b"layer");
        assert_eq!(db.find_blob("g", &record.digest).await.unwrap(), None);
        db.upsert_blob("g", &record, 1).await.unwrap();
        db.upsert_blob("g", &record, 2).await.unwrap();
        assert_eq!(db.find_blob("g", &record.digest).await.unwrap(), Some(record.clone()));
        assert_eq!(db.find_blob("other", &record.digest).await.unwrap(), None, "{}", db.backend());
    }
}

#[tokio::test]
async fn concurrent_finalizes_of_one_object_all_succeed() {
    for (db, _dir) in backends().await {
        let record = blob(b"shared");
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                let record = record.clone();
                tokio::spawn(async move { db.upsert_blob("g", &record, i).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert!(db.find_blob("g", &record.digest).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn manifests_repoint_and_track_checks() {
    for (db, _dir) in backends().await {
        let first = ManifestRecord {
            digest: Digest::of(b"m1"),
            media_type: oci::media::OCI_MANIFEST.into(),
            size: 2,
            checked_at: 10,
            stored: false,
        };
        db.upsert_manifest("g", "lab/tiny", "v1", &first, 10).await.unwrap();
        assert_eq!(db.find_manifest("g", "lab/tiny", "v1").await.unwrap(), Some(first.clone()));
        // Once the digest row exists, the tag's manifest counts as stored.
        db.upsert_manifest("g", "lab/tiny", &first.digest.to_string(), &first, 10).await.unwrap();
        let first = ManifestRecord { stored: true, ..first };
        assert_eq!(db.find_manifest("g", "lab/tiny", "v1").await.unwrap(), Some(first.clone()));
        assert!(db.find_manifest("g", "lab/tiny", &first.digest.to_string()).await.unwrap().unwrap().stored);
        db.mark_manifest_checked("g", "lab/tiny", "v1", 50).await.unwrap();
        assert_eq!(db.find_manifest("g", "lab/tiny", "v1").await.unwrap().unwrap().checked_at, 50);
        let second =
            ManifestRecord { digest: Digest::of(b"m2"), checked_at: 60, stored: false, ..first.clone() };
        db.upsert_manifest("g", "lab/tiny", "v1", &second, 60).await.unwrap();
        assert_eq!(db.find_manifest("g", "lab/tiny", "v1").await.unwrap(), Some(second));
        assert_eq!(db.find_manifest("g", "lab/other", "v1").await.unwrap(), None);
    }
}

#[tokio::test]
async fn leases_exclude_other_holders_until_expiry() {
    for (db, _dir) in backends().await {
        let digest = Digest::of(b"big");
        assert!(db.acquire_lease(&digest, "node-a", "l1", 1_000, 100).await.unwrap());
        assert!(!db.acquire_lease(&digest, "node-b", "l2", 1_050, 100).await.unwrap());
        assert!(db.renew_lease(&digest, "l1", 1_090, 100).await.unwrap());
        assert!(!db.acquire_lease(&digest, "node-b", "l2", 1_150, 100).await.unwrap());
        assert!(
            db.acquire_lease(&digest, "node-b", "l2", 1_191, 100).await.unwrap(),
            "expired lease is taken over"
        );
        assert!(!db.renew_lease(&digest, "l1", 1_200, 100).await.unwrap());
        db.release_lease(&digest, "l2").await.unwrap();
        assert!(db.acquire_lease(&digest, "node-a", "l3", 1_200, 100).await.unwrap());
    }
}
