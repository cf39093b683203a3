//! The lifecycle's queries on both backends: access tracking, the commit/delete handshake,
//! removals queueing deletions, usage and traffic.

use std::collections::HashSet;

use oci::{Digest, GroupPath, Reference, RepositoryName};

use crate::tests::backends;
use crate::*;

fn group(path: &str) -> GroupPath {
    GroupPath::parse(path).unwrap()
}

fn blob(data: &[u8]) -> BlobRecord {
    BlobRecord {
        digest: Digest::of(data),
        size: data.len() as u64,
        media_type: "application/octet-stream".into(),
        upstream: "lab".into(),
    }
}

fn manifest(data: &[u8]) -> ManifestRecord {
    ManifestRecord {
        digest: Digest::of(data),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: data.len() as u64,
        checked_at: 0,
        stored: true,
        upstream: "lab".into(),
    }
}

fn by_digest(group_path: &str, image: &str, digest: &Digest) -> ManifestKey {
    ManifestKey {
        group: group(group_path),
        image: RepositoryName::parse(image).unwrap(),
        reference: Reference::Digest(digest.clone()),
    }
}

const SWEEPER: &str = "sweeper:test";
const TAKE: CommitLease<'static> = CommitLease::Take { holder: "node-a", ttl_ms: 30_000 };

#[tokio::test]
async fn reads_move_forward_and_count_hits_in_one_batch() {
    for (db, _dir) in backends().await {
        let layer = blob(b"layer");
        assert_eq!(db.commit_blob(&group("g"), &layer, TAKE, 10).await.unwrap(), Committed::Recorded);
        let image = manifest(b"manifest");
        let key = by_digest("g", "app", &image.digest);
        let tag = Reference::parse("v1").unwrap();
        db.commit_manifest(&key, Some(&tag), &image, std::slice::from_ref(&layer.digest), TAKE, 10)
            .await
            .unwrap();
        let blob_key = BlobKey { group: group("g"), digest: layer.digest.clone() };
        db.record_reads(
            &[(blob_key.clone(), Reads { last: 50, count: 3 })],
            &[(key.clone(), Reads { last: 60, count: 2 })],
        )
        .await
        .unwrap();
        // An older read never moves read_at back.
        db.record_reads(&[(blob_key, Reads { last: 20, count: 1 })], &[]).await.unwrap();
        let rows = db.objects_by_read(&group("g"), None, &None, 10).await.unwrap();
        let reads: Vec<(bool, i64)> = rows.iter().map(|row| (row.image.is_some(), row.read_at)).collect();
        assert_eq!(reads, vec![(false, 50), (true, 60)], "{}", db.backend());
        let usage = db.group_usage().await.unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!((usage[0].bytes, usage[0].blobs, usage[0].manifests, usage[0].tags), (5 + 8, 1, 1, 1));
        assert_eq!(usage[0].oldest_read, Some(50));
    }
}

/// A batch claim keeps only the free, unreferenced digests; the referenced one leaves the queue
/// and the lease of a fill stays the fill's; finishing the batch clears its queue entries and
/// leases, and a later commit of a deleted digest is recorded again.
#[tokio::test]
async fn a_batch_claim_takes_only_free_unreferenced_objects() {
    for (db, _dir) in backends().await {
        let (free, referenced, filling) = (blob(b"free"), blob(b"referenced"), blob(b"filling"));
        db.commit_blob(&group("g"), &free, TAKE, 1).await.unwrap();
        db.commit_blob(&group("g"), &referenced, TAKE, 1).await.unwrap();
        let rows = db.objects_by_read(&group("g"), None, &None, 10).await.unwrap();
        let removed = db.remove_objects(&rows, 5).await.unwrap();
        assert_eq!((removed.objects, removed.bytes), (2, free.size + referenced.size), "{}", db.backend());
        db.commit_blob(&group("other"), &referenced, TAKE, 6).await.unwrap();
        assert!(db.acquire_lease(&filling.digest, "node-a", "fill-1", 6, 30_000).await.unwrap());
        let asked = [free.digest.clone(), referenced.digest.clone(), filling.digest.clone()];
        let claimed = db.claim_for_delete_many(&asked, SWEEPER, "batch", 7, 30_000).await.unwrap();
        assert_eq!(claimed, vec![free.digest.clone()], "{}", db.backend());
        let due: Vec<Digest> =
            db.pending_deletes(100, 0, 10).await.unwrap().into_iter().map(|(d, _)| d).collect();
        assert_eq!(due, vec![free.digest.clone()], "the referenced one left the queue: {}", db.backend());
        db.finish_delete_many(&claimed, "batch").await.unwrap();
        assert!(db.pending_deletes(100, 0, 10).await.unwrap().is_empty());
        assert_eq!(db.commit_blob(&group("g"), &free, TAKE, 8).await.unwrap(), Committed::Recorded);
        assert_eq!(
            db.commit_blob(&group("g"), &filling, CommitLease::Held { id: "fill-1" }, 8).await.unwrap(),
            Committed::Recorded,
            "the fill's lease is still the fill's"
        );
    }
}

#[tokio::test]
async fn a_commit_after_a_sweeper_claim_is_refused_and_a_claim_after_a_commit_backs_off() {
    for (db, _dir) in backends().await {
        let layer = blob(b"shared layer");
        // The sweeper claims first: a commit (with or without a lease of its own) is refused.
        assert!(db.claim_for_delete(&layer.digest, SWEEPER, "s1", 0, 30_000).await.unwrap());
        assert_eq!(db.commit_blob(&group("g"), &layer, TAKE, 1).await.unwrap(), Committed::Refused);
        assert_eq!(
            db.commit_blob(&group("g"), &layer, CommitLease::Held { id: "fill-1" }, 1).await.unwrap(),
            Committed::Refused,
            "a fill whose lease was taken over by a sweeper records nothing"
        );
        assert_eq!(
            db.find_blob(&BlobKey { group: group("g"), digest: layer.digest.clone() }).await.unwrap(),
            None
        );
        db.finish_delete(&layer.digest, "s1").await.unwrap();

        // A commit first: the claim sees the row and backs off, dropping the queued deletion.
        assert_eq!(db.commit_blob(&group("g"), &layer, TAKE, 2).await.unwrap(), Committed::Recorded);
        assert!(!db.claim_for_delete(&layer.digest, SWEEPER, "s2", 3, 30_000).await.unwrap());
        // A fill holding the lease: the sweeper cannot claim.
        let other = blob(b"being filled");
        assert!(db.acquire_lease(&other.digest, "node-a", "fill-2", 3, 30_000).await.unwrap());
        assert!(!db.claim_for_delete(&other.digest, SWEEPER, "s3", 4, 30_000).await.unwrap());
        assert_eq!(
            db.commit_blob(&group("g"), &other, CommitLease::Held { id: "fill-2" }, 5).await.unwrap(),
            Committed::Recorded
        );
        assert!(
            !db.claim_for_delete(&other.digest, SWEEPER, "s4", 6, 30_000).await.unwrap(),
            "{}",
            db.backend()
        );
    }
}

#[tokio::test]
async fn removing_the_last_row_queues_the_object_and_shared_objects_stay() {
    for (db, _dir) in backends().await {
        let shared = blob(b"shared");
        let own = blob(b"own layer");
        for path in ["a", "b"] {
            db.commit_blob(&group(path), &shared, TAKE, 1).await.unwrap();
        }
        db.commit_blob(&group("a"), &own, TAKE, 1).await.unwrap();
        let rows = db.objects_by_read(&group("a"), None, &None, 10).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(db.remove_objects(&rows, 100).await.unwrap().bytes, shared.size + own.size);
        // Only the object no group holds any more is queued.
        assert_eq!(db.pending_deletes(100, 0, 10).await.unwrap(), vec![(own.digest.clone(), own.size)]);
        assert!(db.pending_deletes(99, 0, 10).await.unwrap().is_empty(), "not due before its time");
        assert_eq!(db.referenced_bytes().await.unwrap(), shared.size);
        assert_eq!(db.pending_bytes().await.unwrap(), own.size);
        let known = db
            .known_digests(&[shared.digest.to_string(), own.digest.to_string(), Digest::of(b"x").to_string()])
            .await
            .unwrap();
        assert_eq!(known, HashSet::from([shared.digest.to_string(), own.digest.to_string()]));
        assert!(db.claim_for_delete(&own.digest, SWEEPER, "s", 100, 1_000).await.unwrap());
        db.finish_delete(&own.digest, "s").await.unwrap();
        assert!(db.pending_deletes(200, 0, 10).await.unwrap().is_empty());
        assert!(db.known_digests(&[own.digest.to_string()]).await.unwrap().is_empty(), "{}", db.backend());
    }
}

#[tokio::test]
async fn removing_a_manifest_takes_its_tags_and_references() {
    for (db, _dir) in backends().await {
        let layer = blob(b"layer");
        let image = manifest(b"image manifest");
        let index = manifest(b"index");
        db.commit_blob(&group("g"), &layer, TAKE, 1).await.unwrap();
        let image_key = by_digest("g", "app", &image.digest);
        let index_key = by_digest("g", "app", &index.digest);
        let latest = Reference::parse("latest").unwrap();
        db.commit_manifest(&image_key, None, &image, std::slice::from_ref(&layer.digest), TAKE, 1)
            .await
            .unwrap();
        db.commit_manifest(&index_key, Some(&latest), &index, std::slice::from_ref(&image.digest), TAKE, 1)
            .await
            .unwrap();
        let tags = db.tags_of_group(&group("g")).await.unwrap();
        assert_eq!(
            tags,
            vec![TagRow { image: "app".into(), tag: "latest".into(), digest: index.digest.to_string() }]
        );
        let children = db.manifest_children(&group("g"), &[index.digest.to_string()]).await.unwrap();
        assert_eq!(children, vec![image.digest.to_string()]);
        let elsewhere = db
            .referenced_elsewhere(
                &group("g"),
                &[layer.digest.to_string()],
                &HashSet::from([image.digest.to_string()]),
            )
            .await
            .unwrap();
        assert!(elsewhere.is_empty());
        let index_row =
            db.manifests_of_image(&group("g"), &RepositoryName::parse("app").unwrap()).await.unwrap();
        let index_row: Vec<ObjectRow> =
            index_row.into_iter().filter(|row| row.digest == index.digest).collect();
        let removed = db.remove_objects(&index_row, 0).await.unwrap();
        assert_eq!((removed.objects, removed.tags), (1, 1));
        assert!(db.tags_of_group(&group("g")).await.unwrap().is_empty(), "the tag went with its manifest");
        assert!(db.manifest_children(&group("g"), &[index.digest.to_string()]).await.unwrap().is_empty());
        assert_eq!(db.group_usage().await.unwrap()[0].manifests, 1, "{}", db.backend());
    }
}

#[tokio::test]
async fn one_maintenance_lease_holder_at_a_time_and_traffic_adds_up() {
    for (db, _dir) in backends().await {
        assert!(db.try_maintenance_lease("sweep", "a", 1, 1_000).await.unwrap());
        assert!(!db.try_maintenance_lease("sweep", "b", 500, 1_000).await.unwrap());
        assert!(db.try_maintenance_lease("sweep", "a", 500, 1_000).await.unwrap(), "renewed by its holder");
        assert!(
            db.try_maintenance_lease("sweep", "b", 1_502, 1_000).await.unwrap(),
            "taken over once expired"
        );
        db.release_maintenance_lease("sweep", "b").await.unwrap();
        assert!(db.try_maintenance_lease("sweep", "a", 1_503, 1_000).await.unwrap());
        // A lease of a name no migration made (a group's warm entry) is made on first use.
        assert!(db.try_maintenance_lease("warm:default#0", "a", 1, 1_000).await.unwrap());
        assert!(!db.try_maintenance_lease("warm:default#0", "b", 2, 1_000).await.unwrap());

        let before = db.generation().await.unwrap();
        db.bump_generation().await.unwrap();
        assert_eq!(db.generation().await.unwrap(), before + 1);

        let hit = Traffic { hits: 2, bytes_served: 100, ..Traffic::default() };
        let miss = Traffic { misses: 1, bytes_fetched: 40, ..Traffic::default() };
        db.add_traffic(3_600_000, &[(group("g"), hit)]).await.unwrap();
        db.add_traffic(3_600_000, &[(group("g"), miss)]).await.unwrap();
        db.add_traffic(0, &[(group("g"), hit)]).await.unwrap();
        let recent = db.traffic_since(3_600_000).await.unwrap();
        assert_eq!(
            recent,
            vec![("g".to_owned(), Traffic { hits: 2, misses: 1, bytes_served: 100, bytes_fetched: 40 })]
        );
        db.add_traffic(7_200_000, &[(group("a"), miss)]).await.unwrap();
        let hourly = db.hourly_traffic_since(0).await.unwrap();
        let hours: Vec<(&str, i64, u64, u64)> = hourly
            .iter()
            .map(|row| (row.group.as_str(), row.hour, row.traffic.hits, row.traffic.misses))
            .collect();
        assert_eq!(
            hours,
            vec![("a", 7_200_000, 0, 1), ("g", 0, 2, 0), ("g", 3_600_000, 2, 1)],
            "hour by hour, by group then hour: {}",
            db.backend()
        );
        assert_eq!(db.hourly_traffic_since(3_600_000).await.unwrap().len(), 2, "{}", db.backend());
        assert_eq!(db.prune_traffic(3_600_000).await.unwrap(), 1, "{}", db.backend());

        db.create_job("j1", "purge", "group g", 5).await.unwrap();
        db.update_job_progress("j1", 3, 10, 300).await.unwrap();
        let job = db.find_job("j1").await.unwrap().unwrap();
        assert_eq!((job.state.as_str(), job.done, job.total, job.bytes), ("running", 3, 10, 300));
        db.finish_job("j1", None, 9).await.unwrap();
        assert_eq!(db.find_job("j1").await.unwrap().unwrap().state, "done");
    }
}

/// Every removal moves the generation in its own transaction (so no removal can go unannounced),
/// and on PostgreSQL wakes every listener at once.
#[tokio::test]
async fn every_removal_moves_the_generation_and_wakes_listeners() {
    for (db, _dir) in backends().await {
        let mut watch = db.watch_removals().await.unwrap();
        assert_eq!(watch.listens(), db.shared_by_nodes(), "{}", db.backend());
        let layer = blob(b"layer");
        let image = manifest(b"manifest");
        db.commit_blob(&group("g"), &layer, TAKE, 1).await.unwrap();
        let key = by_digest("g", "app", &image.digest);
        let tag = Reference::parse("v1").unwrap();
        db.commit_manifest(&key, Some(&tag), &image, std::slice::from_ref(&layer.digest), TAKE, 1)
            .await
            .unwrap();
        let mut generation = db.generation().await.unwrap();
        let mut moved = |now: i64, what: &str| {
            assert!(now > generation, "{}: {what} did not move the generation", db.backend());
            generation = now;
        };

        let app = RepositoryName::parse("app").unwrap();
        assert_eq!(db.remove_tags_of_image(&group("g"), &app).await.unwrap(), 1);
        moved(db.generation().await.unwrap(), "removing an image's tags");
        let rows = db.objects_by_read(&group("g"), None, &None, 10).await.unwrap();
        assert_eq!(db.remove_objects(&rows, 0).await.unwrap().objects, 2);
        moved(db.generation().await.unwrap(), "removing objects");
        assert_eq!(db.remove_objects(&rows, 0).await.unwrap().objects, 0);
        assert_eq!(db.generation().await.unwrap(), generation, "nothing removed: nothing announced");

        if watch.listens() {
            // The notifications were sent on commit; each wakes the listener.
            tokio::time::timeout(std::time::Duration::from_secs(5), watch.notified())
                .await
                .expect("a removal notification")
                .unwrap();
        }
    }
}

/// An object queued for deletion is handed out for deleting only once it was queued long enough
/// ago by the database's clock — whoever queued it — and queueing it again restarts the wait.
#[tokio::test]
async fn a_queued_deletion_waits_for_the_removal_notice_and_requeueing_restarts_it() {
    for (db, _dir) in backends().await {
        let layer = blob(b"layer");
        db.commit_blob(&group("g"), &layer, TAKE, 1).await.unwrap();
        let rows = db.objects_by_read(&group("g"), None, &None, 10).await.unwrap();
        assert_eq!(rows[0].recorded_at, 1);
        db.remove_objects(&rows, 0).await.unwrap();
        assert!(
            db.pending_deletes(0, 60_000, 10).await.unwrap().is_empty(),
            "{}: queued just now",
            db.backend()
        );
        assert_eq!(db.pending_deletes(0, 0, 10).await.unwrap().len(), 1);

        // Recorded again, removed again a moment later: a full notice from the second removal.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        db.commit_blob(&group("g"), &layer, TAKE, 2).await.unwrap();
        let rows = db.objects_by_read(&group("g"), None, &None, 10).await.unwrap();
        assert_eq!(rows[0].recorded_at, 2, "a new record dates the row");
        db.remove_objects(&rows, 0).await.unwrap();
        assert!(db.pending_deletes(0, 200, 10).await.unwrap().is_empty(), "{}: queued anew", db.backend());
    }
}

#[tokio::test]
async fn a_scheduled_run_is_claimed_once_per_period_and_jobs_keep_their_results() {
    for (db, _dir) in backends().await {
        assert_eq!(db.schedule("default#0").await.unwrap(), None);
        assert!(db.claim_due_schedule("default#0", 1_000, 7_000).await.unwrap(), "never run: due at once");
        assert!(!db.claim_due_schedule("default#0", 1_001, 7_001).await.unwrap(), "another node: not due");
        assert!(!db.claim_due_schedule("default#0", 6_999, 12_999).await.unwrap());
        assert!(db.claim_due_schedule("default#0", 7_000, 13_000).await.unwrap(), "due again");
        assert_eq!(db.schedule("default#0").await.unwrap(), Some((13_000, None)));
        db.set_schedule("default#0", Some(20_000), Some("job1")).await.unwrap();
        db.set_schedule("default#0", Some(21_000), None).await.unwrap();
        assert_eq!(db.schedule("default#0").await.unwrap(), Some((21_000, Some("job1".to_owned()))));
        db.set_schedule("default#0", None, Some("job2")).await.unwrap();
        assert_eq!(db.schedule("default#0").await.unwrap(), Some((21_000, Some("job2".to_owned()))));

        db.create_job("job1", "warm", "warm group default: x", 5).await.unwrap();
        db.create_job("job2", "warm", "warm group other: y", 6).await.unwrap();
        db.create_job("job3", "purge", "purge group default", 7).await.unwrap();
        db.set_job_result("job1", r#"{"fetched":1}"#).await.unwrap();
        let job = db.find_job("job1").await.unwrap().unwrap();
        assert_eq!(job.result.as_deref(), Some(r#"{"fetched":1}"#), "{}", db.backend());
        assert_eq!(db.find_job("job3").await.unwrap().unwrap().result, None);
        let recent = db.recent_jobs("warm", "warm group default:", 10).await.unwrap();
        assert_eq!(
            recent.iter().map(|job| job.id.as_str()).collect::<Vec<_>>(),
            ["job1"],
            "{}",
            db.backend()
        );
    }
}
