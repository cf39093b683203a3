//! Decisions and fill records against a real SQLite database and a fake upstream registry (and
//! PostgreSQL, for leases, when the test script provides one).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oci::{Digest, ImageAddress, Reference, RepositoryName};
use testkit::{FakeRegistry, Fault};
use upstream::UpstreamError;

use crate::testing::{RECHECK, TestCache, test_cache};
use crate::{CacheError, Decision, FillPermit, Resolved, StoredObject};

struct Setup {
    test: TestCache,
    upstream: FakeRegistry,
    resolved: Resolved,
}

async fn setup_with(database: Option<String>) -> Setup {
    let upstream = FakeRegistry::start().await;
    let test = test_cache(&upstream.url(), false, database).await;
    let address = ImageAddress::Root { image: RepositoryName::parse("lab/app").unwrap() };
    let resolved = test.cache.resolve(&address, None).unwrap();
    Setup { test, upstream, resolved }
}

async fn setup() -> Setup {
    setup_with(None).await
}

fn tag(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

fn stored(digest: &Digest, size: usize, media_type: &str) -> StoredObject {
    StoredObject {
        digest: digest.clone(),
        size: size as u64,
        media_type: media_type.into(),
        upstream: "lab".into(),
    }
}

#[tokio::test]
async fn a_blob_miss_is_a_fetch_and_a_recorded_blob_is_a_hit() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"layer bytes".to_vec());
    let fetch = match setup.test.cache.blob(&setup.resolved, &digest, false).await.unwrap() {
        Decision::Fetch(fetch) => fetch,
        other => panic!("{other:?}"),
    };
    assert_eq!(fetch.sources.len(), 1);
    assert_eq!(fetch.sources[0].upstream, "lab");
    assert_eq!(fetch.sources[0].url, format!("{}/v2/lab/app/blobs/{digest}", setup.upstream.url()));
    assert_eq!(fetch.verify.as_ref().and_then(injector::Checksum::as_digest), Some(digest.clone()));
    assert_eq!(fetch.max_size, 1 << 20);
    assert_eq!(fetch.fill_key, format!("default|blob|{digest}"));
    assert!(!fetch.sources[0].headers.contains_key(http::header::AUTHORIZATION), "an anonymous upstream");

    setup
        .test
        .cache
        .record_blob(&setup.resolved, stored(&digest, 11, "application/octet-stream"), None)
        .await
        .unwrap();
    match setup.test.cache.blob(&setup.resolved, &digest, false).await.unwrap() {
        Decision::Serve { object, stale } => {
            assert_eq!(object, stored(&digest, 11, "application/octet-stream"));
            assert_eq!(stale, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(setup.upstream.count("GET", "/blobs/"), 0, "deciding never fetches bytes");
}

#[tokio::test]
async fn a_head_miss_asks_upstream_and_a_missing_object_is_upstreams_not_found() {
    let setup = setup().await;
    let digest = setup.upstream.put_blob(b"twelve bytes".to_vec());
    match setup.test.cache.blob(&setup.resolved, &digest, true).await.unwrap() {
        Decision::UpstreamHead { head, requested } => {
            assert_eq!(head.size, Some(12));
            assert_eq!(requested.as_ref(), Some(&digest));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(setup.upstream.count("HEAD", "/blobs/"), 1);
    let unknown = Digest::of(b"nowhere");
    match setup.test.cache.blob(&setup.resolved, &unknown, true).await {
        Err(CacheError::Upstream(UpstreamError::NotFound(oci::ObjectKind::Blob))) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_tag_is_fresh_for_its_window_then_revalidated_by_one_head() {
    let setup = setup().await;
    let (manifest, _) = setup.upstream.put_image("lab/app", "v1", &[b"layer"]);
    let fetch = match setup.test.cache.manifest(&setup.resolved, &tag("v1"), false).await.unwrap() {
        Decision::Fetch(fetch) => fetch,
        other => panic!("{other:?}"),
    };
    assert_eq!(fetch.verify, None, "a tag's digest is known only from the bytes");
    assert_eq!(fetch.fill_key, "default|manifest|lab/app:v1");
    assert!(fetch.sources[0].headers.contains_key(http::header::ACCEPT));
    assert_eq!(fetch.max_size, 1 << 16);

    let object = stored(&manifest, 300, oci::media::OCI_MANIFEST);
    setup.test.cache.record_manifest(&setup.resolved, &tag("v1"), object.clone(), &[], None).await.unwrap();
    for reference in [tag("v1"), Reference::Digest(manifest.clone())] {
        match setup.test.cache.manifest(&setup.resolved, &reference, false).await.unwrap() {
            Decision::Serve { object: served, stale: None } => assert_eq!(served, object),
            other => panic!("{reference}: {other:?}"),
        }
    }
    assert_eq!(setup.upstream.count("HEAD", "/manifests/"), 0, "fresh: no upstream request");

    setup.test.clock.advance(RECHECK);
    assert!(matches!(
        setup.test.cache.manifest(&setup.resolved, &tag("v1"), false).await.unwrap(),
        Decision::Serve { stale: None, .. }
    ));
    assert_eq!(setup.upstream.count("HEAD", "/manifests/v1"), 1, "stale: one HEAD confirms it");
    assert!(matches!(
        setup.test.cache.manifest(&setup.resolved, &tag("v1"), false).await.unwrap(),
        Decision::Serve { .. }
    ));
    assert_eq!(setup.upstream.count("HEAD", "/manifests/v1"), 1, "confirmed: fresh again");

    // The tag moves upstream: the next recheck sends the client to the new manifest.
    setup.upstream.put_image("lab/app", "v1", &[b"other layer"]);
    setup.test.clock.advance(RECHECK);
    match setup.test.cache.manifest(&setup.resolved, &tag("v1"), false).await.unwrap() {
        Decision::Fetch(fetch) => assert_eq!(fetch.fill_key, "default|manifest|lab/app:v1"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stale_tag_is_served_marked_stale_while_upstream_is_down() {
    let setup = setup().await;
    let (manifest, _) = setup.upstream.put_image("lab/app", "v1", &[b"layer"]);
    let object = stored(&manifest, 300, oci::media::OCI_MANIFEST);
    setup.test.cache.record_manifest(&setup.resolved, &tag("v1"), object, &[], None).await.unwrap();
    setup.test.clock.advance(RECHECK);
    setup.upstream.set_fault(Some(Fault::Status { status: 503, retry_after: None }));
    assert!(matches!(
        setup.test.cache.manifest(&setup.resolved, &tag("v1"), false).await.unwrap(),
        Decision::Serve { stale: Some(crate::Stale::UpstreamUnreachable), .. }
    ));
    // A refusal is an answer, not an outage: it is passed on.
    setup.upstream.set_fault(Some(Fault::Status { status: 404, retry_after: None }));
    assert!(matches!(
        setup.test.cache.manifest(&setup.resolved, &tag("v1"), false).await,
        Err(CacheError::Upstream(UpstreamError::NotFound(_)))
    ));
}

#[tokio::test]
async fn a_tag_learned_from_a_head_is_remembered_and_fetched_by_digest() {
    let setup = setup().await;
    let (manifest, _) = setup.upstream.put_image("lab/app", "v1", &[b"layer"]);
    assert!(matches!(
        setup.test.cache.manifest(&setup.resolved, &tag("v1"), true).await.unwrap(),
        Decision::UpstreamHead { .. }
    ));
    assert!(matches!(
        setup.test.cache.manifest(&setup.resolved, &tag("v1"), true).await.unwrap(),
        Decision::Serve { .. }
    ));
    match setup.test.cache.manifest(&setup.resolved, &tag("v1"), false).await.unwrap() {
        Decision::Fetch(fetch) => {
            assert_eq!(fetch.verify.as_ref().and_then(injector::Checksum::as_digest), Some(manifest.clone()));
            assert_eq!(fetch.fill_key, format!("default|manifest|{manifest}"));
            assert!(fetch.first_url().ends_with(&format!("/manifests/{manifest}")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(setup.upstream.count("HEAD", "/manifests/"), 1, "the second resolve cost nothing upstream");
}

#[tokio::test]
async fn a_fill_of_a_known_digest_takes_a_lease_on_one_node_too() {
    // The lease is what keeps the sweeper from deleting an object while it is filled.
    let setup = setup().await;
    let digest = Digest::of(b"x");
    assert!(matches!(
        setup.test.cache.authorize_fill(Some(&digest), "node-a", None).await.unwrap(),
        FillPermit::Store { lease: Some(_) }
    ));
    // A manifest by tag (digest unknown until the end) claims its object when it is recorded.
    assert_eq!(
        setup.test.cache.authorize_fill(None, "node-a", None).await.unwrap(),
        FillPermit::Store { lease: None }
    );
}

#[tokio::test]
async fn a_shared_database_lets_one_node_fill_an_object_at_a_time() {
    let Ok(server) = std::env::var("DEPPROXY_TEST_POSTGRES_URL") else {
        eprintln!("DEPPROXY_TEST_POSTGRES_URL is not set: the PostgreSQL half of this test is skipped");
        return;
    };
    let database =
        format!("{}/depproxy_cache_{}", server.trim_end_matches('/'), uuid::Uuid::new_v4().simple());
    let setup = setup_with(Some(database)).await;
    let digest = setup.upstream.put_blob(b"big layer".to_vec());
    let lease = match setup.test.cache.authorize_fill(Some(&digest), "node-a", None).await.unwrap() {
        FillPermit::Store { lease: Some(lease) } => lease,
        other => panic!("{other:?}"),
    };
    assert_eq!(lease.ttl, Duration::from_secs(30));
    assert!(matches!(
        setup.test.cache.authorize_fill(Some(&digest), "node-b", None).await.unwrap(),
        FillPermit::Passthrough { .. }
    ));
    assert!(matches!(
        setup.test.cache.authorize_fill(Some(&digest), "node-a", Some(&lease.id)).await.unwrap(),
        FillPermit::Store { lease: Some(_) }
    ));
    setup
        .test
        .cache
        .record_blob(&setup.resolved, stored(&digest, 9, "application/octet-stream"), Some(&lease.id))
        .await
        .unwrap();
    assert!(
        matches!(
            setup.test.cache.authorize_fill(Some(&digest), "node-b", None).await.unwrap(),
            FillPermit::Store { lease: Some(_) }
        ),
        "recording released the lease"
    );
}

/// Rows another process removes are forgotten without waiting for a flush of reads: through the
/// removal generation, checked every `every`, and on PostgreSQL through the removal's
/// notification — there the only way, the checks being an hour apart.
#[tokio::test]
async fn rows_another_process_removes_are_forgotten_by_the_removal_watch() {
    let mut databases = vec![(None, Duration::from_millis(50))];
    if let Ok(server) = std::env::var("DEPPROXY_TEST_POSTGRES_URL") {
        let database =
            format!("{}/depproxy_cache_{}", server.trim_end_matches('/'), uuid::Uuid::new_v4().simple());
        databases.push((Some(database), Duration::from_secs(3600)));
    }
    for (database, every) in databases {
        let setup = setup_with(database).await;
        let cache = &setup.test.cache;
        let digest = setup.upstream.put_blob(b"layer".to_vec());
        cache
            .record_blob(&setup.resolved, stored(&digest, 5, "application/octet-stream"), None)
            .await
            .unwrap();
        // A control plane's first check forgets everything (it knows no earlier generation).
        cache.notice_removals().await.unwrap();
        let watch = cache.listen_for_removals().await;
        assert_eq!(watch.as_ref().unwrap().listens(), setup.test.metadata.shared_by_nodes());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let following = cache.follow_removals(watch, every, async {
            let _ = stopped.await;
        });
        let removed_elsewhere = async {
            assert!(
                matches!(cache.blob(&setup.resolved, &digest, false).await.unwrap(), Decision::Serve { .. }),
                "remembered"
            );
            let group = oci::GroupPath::parse("default").unwrap();
            let rows = setup.test.metadata.objects_by_read(&group, None, &None, 10).await.unwrap();
            assert_eq!(setup.test.metadata.remove_objects(&rows, 0).await.unwrap().objects, 1);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Decision::Fetch(_) = cache.blob(&setup.resolved, &digest, false).await.unwrap() {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{}: never forgotten",
                    setup.test.metadata.backend()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = stop.send(());
        };
        tokio::join!(following, removed_elsewhere);
    }
}

fn policy(configure: impl FnOnce(&mut crate::PullPolicy)) -> crate::PullPolicy {
    let mut policy = crate::PullPolicy::open(crate::testing::NEGATIVE_TTL);
    configure(&mut policy);
    policy
}

#[tokio::test]
async fn an_upstream_404_is_remembered_for_the_groups_window() {
    let setup = setup().await;
    let cache = &setup.test.cache;
    let group = oci::GroupPath::parse("default").unwrap();
    // A HEAD finds nothing upstream: the next HEAD and GET of that tag do not ask again.
    assert!(matches!(
        cache.manifest(&setup.resolved, &tag("gone"), true).await,
        Err(CacheError::Upstream(UpstreamError::NotFound(oci::ObjectKind::Manifest)))
    ));
    for head in [true, false] {
        match cache.manifest(&setup.resolved, &tag("gone"), head).await {
            Err(CacheError::NotFoundRemembered { kind: oci::ObjectKind::Manifest, window }) => {
                assert_eq!(window, crate::testing::NEGATIVE_TTL)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(setup.upstream.count("HEAD", "/manifests/gone"), 1);
    assert_eq!(cache.metrics.not_found_remembered_count(&group), 2);
    // Past the window upstream is asked again (and the tag exists by now).
    setup.upstream.put_image("lab/app", "gone", &[b"layer"]);
    setup.test.clock.advance(crate::testing::NEGATIVE_TTL);
    assert!(matches!(
        cache.manifest(&setup.resolved, &tag("gone"), true).await.unwrap(),
        Decision::UpstreamHead { .. }
    ));
    assert_eq!(setup.upstream.count("HEAD", "/manifests/gone"), 2);

    // A blob HEAD the same, per digest and kind.
    let missing = Digest::of(b"never pushed");
    assert!(cache.blob(&setup.resolved, &missing, true).await.is_err());
    assert!(matches!(
        cache.blob(&setup.resolved, &missing, false).await,
        Err(CacheError::NotFoundRemembered { kind: oci::ObjectKind::Blob, .. })
    ));
    assert_eq!(setup.upstream.count("HEAD", "/blobs/"), 1);
}

#[tokio::test]
async fn a_fill_that_found_nothing_is_remembered_and_zero_remembers_nothing() {
    let setup = setup().await;
    let cache = &setup.test.cache;
    assert!(matches!(cache.manifest(&setup.resolved, &tag("v9"), false).await.unwrap(), Decision::Fetch(_)));
    // The gateway's fill got 404 and reported it.
    cache.fill_not_found(&setup.resolved, oci::ObjectKind::Manifest, &tag("v9"));
    assert!(matches!(
        cache.manifest(&setup.resolved, &tag("v9"), false).await,
        Err(CacheError::NotFoundRemembered { .. })
    ));
    let digest = Digest::of(b"layer");
    cache.fill_not_found(&setup.resolved, oci::ObjectKind::Blob, &Reference::Digest(digest.clone()));
    assert!(cache.blob(&setup.resolved, &digest, false).await.is_err());
    // Found after all (another fill stored it): answered from the cache, and forgotten.
    cache.record_blob(&setup.resolved, stored(&digest, 5, "application/octet-stream"), None).await.unwrap();
    assert!(matches!(cache.blob(&setup.resolved, &digest, false).await.unwrap(), Decision::Serve { .. }));

    // `negative_ttl = "0s"` (here by a reload): nothing is remembered, and what was is not used.
    assert!(cache.groups().replace_policy("default", policy(|policy| policy.negative_ttl = Duration::ZERO)));
    assert!(matches!(cache.manifest(&setup.resolved, &tag("v9"), false).await.unwrap(), Decision::Fetch(_)));
    cache.fill_not_found(&setup.resolved, oci::ObjectKind::Manifest, &tag("v8"));
    assert!(matches!(cache.manifest(&setup.resolved, &tag("v8"), false).await.unwrap(), Decision::Fetch(_)));
}

#[tokio::test]
async fn an_immutable_tag_is_never_revalidated() {
    let setup = setup().await;
    let cache = &setup.test.cache;
    let immutable = crate::TagPatterns::new(&["v*.*.*".to_owned()], ':').unwrap();
    assert!(cache.groups().replace_policy("default", policy(|policy| policy.immutable_tags = immutable)));
    for version in ["v1.2.3", "latest"] {
        let (manifest, _) = setup.upstream.put_image("lab/app", version, &[b"layer"]);
        let object = stored(&manifest, 300, oci::media::OCI_MANIFEST);
        cache.record_manifest(&setup.resolved, &tag(version), object, &[], None).await.unwrap();
    }
    setup.test.clock.advance(RECHECK * 10);
    for version in ["v1.2.3", "latest"] {
        assert!(matches!(
            cache.manifest(&setup.resolved, &tag(version), false).await.unwrap(),
            Decision::Serve { stale: None, .. }
        ));
    }
    assert_eq!(setup.upstream.count("HEAD", "/manifests/v1.2.3"), 0, "immutable: like a digest");
    assert_eq!(setup.upstream.count("HEAD", "/manifests/latest"), 1, "the others are revalidated");
}

#[tokio::test]
async fn a_tag_gone_upstream_is_served_stale_and_listed_when_the_group_says_so() {
    let setup = setup().await;
    let cache = &setup.test.cache;
    let group = oci::GroupPath::parse("default").unwrap();
    let (manifest, _) = setup.upstream.put_image("lab/app", "v1", &[b"layer"]);
    let object = stored(&manifest, 300, oci::media::OCI_MANIFEST);
    cache.record_manifest(&setup.resolved, &tag("v1"), object.clone(), &[], None).await.unwrap();
    setup.upstream.set_fault(Some(Fault::Status { status: 404, retry_after: None }));
    setup.test.clock.advance(RECHECK);
    // Off (the default): upstream's 404 is passed on.
    assert!(matches!(
        cache.manifest(&setup.resolved, &tag("v1"), false).await,
        Err(CacheError::Upstream(UpstreamError::NotFound(_)))
    ));
    assert!(cache.gone_upstream(&group).is_empty());

    assert!(cache.groups().replace_policy("default", policy(|policy| policy.stale_on_404 = true)));
    setup.upstream.set_fault(Some(Fault::Status { status: 404, retry_after: None }));
    let heads = setup.upstream.count("HEAD", "/manifests/v1");
    for _ in 0..2 {
        match cache.manifest(&setup.resolved, &tag("v1"), false).await.unwrap() {
            Decision::Serve { object: served, stale: Some(crate::Stale::GoneUpstream) } => {
                assert_eq!(served, object)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        setup.upstream.count("HEAD", "/manifests/v1"),
        heads,
        "the 404 of the earlier recheck is remembered: upstream is not asked again within negative_ttl"
    );
    let listed = cache.gone_upstream(&group);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].image.as_str(), listed[0].tag.as_str(), listed[0].served), ("lab/app", "v1", 2));
    assert_eq!(listed[0].digest, manifest);

    // Upstream has it again: served fresh, and no longer listed.
    setup.upstream.set_fault(None);
    setup.test.clock.advance(crate::testing::NEGATIVE_TTL);
    assert!(matches!(
        cache.manifest(&setup.resolved, &tag("v1"), false).await.unwrap(),
        Decision::Serve { stale: None, .. }
    ));
    assert!(cache.gone_upstream(&group).is_empty());
}

#[tokio::test]
async fn allow_and_deny_rules_judge_the_upstream_name_and_tag() {
    let setup = setup().await;
    let cache = &setup.test.cache;
    assert_eq!(cache.check_pull(&setup.resolved, Some("v1")), Ok(()), "no rules");
    let names = crate::NameRules::new(&["lab/*".to_owned()], &["lab/app:old*".to_owned()], ':').unwrap();
    assert!(cache.groups().replace_policy("default", policy(|policy| policy.names = names)));
    assert_eq!(cache.check_pull(&setup.resolved, Some("v1")), Ok(()));
    assert_eq!(
        cache.check_pull(&setup.resolved, Some("old-1")),
        Err(crate::Refusal::Denied { pattern: "lab/app:old*".into() })
    );
    assert_eq!(cache.check_pull(&setup.resolved, None), Ok(()), "a digest is judged by its name");
    let other = ImageAddress::Root { image: RepositoryName::parse("elsewhere/app").unwrap() };
    let other = cache.resolve(&other, None).unwrap();
    assert_eq!(cache.check_pull(&other, Some("v1")), Err(crate::Refusal::NotAllowed));
}
