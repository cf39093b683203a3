//! One suite, run against SQLite always and against PostgreSQL when `DEPPROXY_TEST_POSTGRES_URL`
//! names a server (the project's test script sets it).

use oci::{Digest, GroupPath, Reference, RepositoryName};

use super::*;

pub(crate) async fn backends() -> Vec<(Metadata, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("meta.db").display());
    let mut all = vec![(Metadata::connect(&DatabaseUrl::new(url)).await.unwrap(), Some(dir))];
    if let Ok(server) = std::env::var("DEPPROXY_TEST_POSTGRES_URL") {
        // A new database each time: process ids are reused between runs, and a database named
        // by one alone could still hold an earlier run's rows.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let url = format!(
            "{}/depproxy_test_{}_{nanos}_{}",
            server.trim_end_matches('/'),
            std::process::id(),
            rand_suffix()
        );
        all.push((Metadata::connect(&DatabaseUrl::new(url)).await.unwrap(), None));
    }
    all
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn group(path: &str) -> GroupPath {
    GroupPath::parse(path).unwrap()
}

fn blob_key(path: &str, record: &BlobRecord) -> BlobKey {
    BlobKey { group: group(path), digest: record.digest.clone() }
}

fn manifest_key(image: &str, reference: &str) -> ManifestKey {
    ManifestKey {
        group: group("g"),
        image: RepositoryName::parse(image).unwrap(),
        reference: Reference::parse(reference).unwrap(),
    }
}

fn blob(data: &[u8]) -> BlobRecord {
    BlobRecord {
        digest: Digest::of(data),
        size: data.len() as u64,
        media_type: "application/octet-stream".into(),
        upstream: "lab".into(),
    }
}

#[tokio::test]
async fn blobs_are_scoped_per_group_and_upserts_are_idempotent() {
    for (db, _dir) in backends().await {
        let record = blob(b"layer");
        assert_eq!(db.find_blob(&blob_key("g", &record)).await.unwrap(), None);
        db.upsert_blob(&group("g"), &record, 1).await.unwrap();
        db.upsert_blob(&group("g"), &record, 2).await.unwrap();
        assert_eq!(db.find_blob(&blob_key("g", &record)).await.unwrap(), Some(record.clone()));
        assert_eq!(db.find_blob(&blob_key("other", &record)).await.unwrap(), None, "{}", db.backend());
    }
}

#[tokio::test]
async fn the_upstream_that_served_an_object_is_recorded_with_it() {
    for (db, _dir) in backends().await {
        let lease = CommitLease::Take { holder: "commit", ttl_ms: 1_000 };
        let internal = BlobRecord { upstream: "internal".into(), ..blob(b"from internal") };
        let hub = BlobRecord { upstream: "hub".into(), ..blob(b"from hub") };
        for record in [&internal, &hub] {
            assert_eq!(db.commit_blob(&group("g"), record, lease, 1).await.unwrap(), Committed::Recorded);
        }
        assert_eq!(db.find_blob(&blob_key("g", &hub)).await.unwrap().unwrap().upstream, "hub");
        let manifest = ManifestRecord {
            digest: Digest::of(b"m"),
            media_type: oci::media::OCI_MANIFEST.into(),
            size: 1,
            checked_at: 1,
            stored: true,
            upstream: "hub".into(),
        };
        let by_digest = manifest_key("lab/app", &manifest.digest.to_string());
        let tag = Reference::parse("v1").unwrap();
        db.commit_manifest(&by_digest, Some(&tag), &manifest, &[], lease, 1).await.unwrap();
        assert_eq!(db.find_manifest(&manifest_key("lab/app", "v1")).await.unwrap().unwrap().upstream, "hub");
        // A tag learned from another upstream's HEAD says so.
        let moved = ManifestRecord { upstream: "internal".into(), stored: false, ..manifest.clone() };
        db.upsert_manifest(&manifest_key("lab/app", "v2"), &moved, 2).await.unwrap();
        assert_eq!(
            db.find_manifest(&manifest_key("lab/app", "v2")).await.unwrap().unwrap().upstream,
            "internal"
        );
        let image = RepositoryName::parse("lab/app").unwrap();
        assert_eq!(
            db.image_upstream(&group("g"), &image).await.unwrap().as_deref(),
            Some("internal"),
            "the latest"
        );
        let other = RepositoryName::parse("lab/other").unwrap();
        assert_eq!(db.image_upstream(&group("g"), &other).await.unwrap(), None);
        let usage = db.upstream_usage().await.unwrap();
        let of = |upstream: &str| usage.iter().find(|entry| entry.upstream == upstream).cloned().unwrap();
        assert_eq!((of("internal").objects, of("internal").bytes), (1, 13), "{}", db.backend());
        assert_eq!((of("hub").objects, of("hub").bytes), (2, 9), "a blob and a stored manifest");
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
                tokio::spawn(async move { db.upsert_blob(&group("g"), &record, i).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert!(db.find_blob(&blob_key("g", &record)).await.unwrap().is_some());
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
            upstream: "lab".into(),
        };
        let tag = manifest_key("lab/tiny", "v1");
        let by_digest = manifest_key("lab/tiny", &first.digest.to_string());
        db.upsert_manifest(&tag, &first, 10).await.unwrap();
        assert_eq!(db.find_manifest(&tag).await.unwrap(), Some(first.clone()));
        // Once the digest row exists, the tag's manifest counts as stored.
        db.upsert_manifest(&by_digest, &first, 10).await.unwrap();
        let first = ManifestRecord { stored: true, ..first };
        assert_eq!(db.find_manifest(&tag).await.unwrap(), Some(first.clone()));
        assert!(db.find_manifest(&by_digest).await.unwrap().unwrap().stored);
        db.mark_manifest_checked(&tag, 50).await.unwrap();
        assert_eq!(db.find_manifest(&tag).await.unwrap().unwrap().checked_at, 50);
        let second =
            ManifestRecord { digest: Digest::of(b"m2"), checked_at: 60, stored: false, ..first.clone() };
        db.upsert_manifest(&tag, &second, 60).await.unwrap();
        assert_eq!(db.find_manifest(&tag).await.unwrap(), Some(second));
        assert_eq!(db.find_manifest(&manifest_key("lab/other", "v1")).await.unwrap(), None);
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

#[tokio::test]
async fn only_a_shared_database_coordinates_nodes() {
    for (db, dir) in backends().await {
        assert_eq!(db.shared_by_nodes(), dir.is_none(), "{}", db.backend());
    }
}

#[test]
fn database_urls_never_show_their_password() {
    let url = DatabaseUrl::new("postgres://depproxy:s3cret@db.internal:5432/depproxy");
    for shown in [url.to_string(), format!("{url:?}"), url.redacted()] {
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
    }
    assert_eq!(url.expose(), "postgres://depproxy:s3cret@db.internal:5432/depproxy");
    assert_eq!(DatabaseUrl::new("sqlite:./data/depproxy.db").to_string(), "sqlite:./data/depproxy.db");
    let error = MetadataError::UnsupportedUrl(DatabaseUrl::new("mysql://root:hunter2@x/db"));
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

fn token(name: &str, hash: &str) -> AccessTokenRecord {
    AccessTokenRecord {
        id: format!("id-{name}-{hash}"),
        name: name.into(),
        secret_hash: hash.into(),
        groups: vec![group("a"), group("b/c")],
        admin: false,
        created_at: 10,
        expires_at: Some(1_000),
        revoked_at: None,
        last_used_at: None,
    }
}

#[tokio::test]
async fn access_tokens_are_found_by_hash_and_id_revoked_by_name_and_touched() {
    for (db, _dir) in backends().await {
        let ci = token("ci", "h1");
        db.insert_access_token(&ci).await.unwrap();
        assert!(
            matches!(db.insert_access_token(&token("ci", "h2")).await, Err(MetadataError::NameTaken(_))),
            "one active token per name"
        );
        assert_eq!(db.find_access_token_by_hash("h1").await.unwrap(), Some(ci.clone()));
        assert_eq!(db.find_access_token(&ci.id).await.unwrap(), Some(ci.clone()));
        assert_eq!(db.find_access_token_by_hash("nope").await.unwrap(), None);
        assert!(ci.is_active(999) && !ci.is_active(1_000));

        db.touch_access_tokens(&[(ci.id.clone(), 50), (ci.id.clone(), 40)]).await.unwrap();
        assert_eq!(db.find_access_token(&ci.id).await.unwrap().unwrap().last_used_at, Some(50));

        assert!(db.revoke_access_token("ci", 60).await.unwrap());
        assert!(!db.revoke_access_token("ci", 61).await.unwrap(), "already revoked");
        let revoked = db.find_access_token(&ci.id).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(60));
        assert!(!revoked.is_active(0));
        db.insert_access_token(&AccessTokenRecord { created_at: 20, ..token("ci", "h3") }).await.unwrap();
        let names: Vec<(String, bool)> = db
            .list_access_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|record| (record.name.clone(), record.revoked_at.is_some()))
            .collect();
        assert_eq!(names, vec![("ci".to_owned(), true), ("ci".to_owned(), false)], "{}", db.backend());
    }
}

#[tokio::test]
async fn verdicts_are_kept_per_group_and_digest_until_forgotten_which_is_announced() {
    for (db, _dir) in backends().await {
        let digest = Digest::of(b"an image manifest");
        let other = Digest::of(b"another");
        assert_eq!(db.find_verdict(&group("g"), &digest).await.unwrap(), None);
        let refused = VerdictRecord { allowed: false, reason: "CVE-2024-0001".into(), decided_at: 5 };
        db.record_verdict(&group("g"), &digest, &refused).await.unwrap();
        let allowed = VerdictRecord { allowed: true, reason: String::new(), decided_at: 6 };
        db.record_verdict(&group("h"), &digest, &allowed).await.unwrap();
        db.record_verdict(&group("g"), &other, &allowed).await.unwrap();
        assert_eq!(db.find_verdict(&group("g"), &digest).await.unwrap(), Some(refused.clone()));
        assert_eq!(db.find_verdict(&group("h"), &digest).await.unwrap(), Some(allowed.clone()));
        // Asked again (a verdict after a forget): the new one replaces it.
        let later = VerdictRecord { allowed: true, reason: "fixed".into(), decided_at: 9 };
        db.record_verdict(&group("g"), &digest, &later).await.unwrap();
        assert_eq!(db.find_verdict(&group("g"), &digest).await.unwrap(), Some(later));

        let generation = db.generation().await.unwrap();
        assert_eq!(db.forget_verdicts(&digest).await.unwrap(), 2, "{}: every group's", db.backend());
        assert!(db.generation().await.unwrap() > generation, "{}: announced", db.backend());
        assert_eq!(db.find_verdict(&group("g"), &digest).await.unwrap(), None);
        assert_eq!(db.find_verdict(&group("h"), &digest).await.unwrap(), None);
        assert_eq!(db.find_verdict(&group("g"), &other).await.unwrap(), Some(allowed), "others stay");
        let generation = db.generation().await.unwrap();
        assert_eq!(db.forget_verdicts(&digest).await.unwrap(), 0);
        assert_eq!(db.generation().await.unwrap(), generation, "nothing forgotten: nothing announced");
    }
}

#[tokio::test]
async fn referrers_lists_are_kept_whole_with_their_freshness_and_go_with_ttl_and_purges() {
    for (db, _dir) in backends().await {
        let image = RepositoryName::parse("lab/app").unwrap();
        let key = |image: &str, subject: &[u8]| ReferrersKey {
            group: group("g"),
            image: RepositoryName::parse(image).unwrap(),
            subject: Digest::of(subject),
        };
        assert_eq!(db.find_referrers(&key("lab/app", b"s")).await.unwrap(), None);
        let list = ReferrersRecord {
            answer: ReferrersAnswer::List {
                body: br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
                link: Some("</v2/lab/app/referrers/x?n=1>; rel=\"next\"".into()),
            },
            upstream: "lab".into(),
            checked_at: 10,
            read_at: 0,
        };
        db.record_referrers(&key("lab/app", b"s"), &list, 10).await.unwrap();
        assert_eq!(
            db.find_referrers(&key("lab/app", b"s")).await.unwrap(),
            Some(ReferrersRecord { read_at: 10, ..list.clone() }),
            "{}",
            db.backend()
        );
        // Upstream stopped serving the API: the answer is replaced, the row kept.
        let not_served = ReferrersRecord {
            answer: ReferrersAnswer::NotServed,
            upstream: String::new(),
            checked_at: 20,
            read_at: 0,
        };
        db.record_referrers(&key("lab/app", b"s"), &not_served, 20).await.unwrap();
        let found = db.find_referrers(&key("lab/app", b"s")).await.unwrap().unwrap();
        assert_eq!((found.answer, found.checked_at), (ReferrersAnswer::NotServed, 20));
        db.note_referrers_read(&key("lab/app", b"s"), 30).await.unwrap();
        db.note_referrers_read(&key("lab/app", b"s"), 25).await.unwrap();
        assert_eq!(
            db.find_referrers(&key("lab/app", b"s")).await.unwrap().unwrap().read_at,
            30,
            "never back"
        );

        db.record_referrers(&key("lab/other", b"s"), &list, 40).await.unwrap();
        db.record_referrers(&key("lab/app", b"t"), &list, 50).await.unwrap();
        let none = std::collections::HashSet::new();
        let pinned: std::collections::HashSet<String> = [Digest::of(b"s").to_string()].into();
        assert_eq!(
            db.remove_referrer_lists(&group("g"), None, Some(31), &pinned).await.unwrap(),
            0,
            "pinned"
        );
        assert_eq!(
            db.remove_referrer_lists(&group("g"), None, Some(31), &none).await.unwrap(),
            1,
            "TTL by read"
        );
        assert_eq!(db.find_referrers(&key("lab/app", b"s")).await.unwrap(), None);
        assert_eq!(db.remove_referrer_lists(&group("other"), None, None, &none).await.unwrap(), 0);
        assert_eq!(
            db.remove_referrer_lists(&group("g"), Some(&image), None, &none).await.unwrap(),
            1,
            "by image"
        );
        assert!(db.find_referrers(&key("lab/other", b"s")).await.unwrap().is_some());
        assert_eq!(db.remove_referrer_lists(&group("g"), None, None, &none).await.unwrap(), 1, "a purge");
    }
}
