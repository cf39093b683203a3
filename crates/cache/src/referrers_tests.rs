//! Referrers lists against a real SQLite database and fake upstream registries: cached whole and
//! fresh for the recheck window, asked again after it (once for a burst), served stale while
//! upstream is down, upstream's 404 kept too, `stale_on_404`, and a group with several upstreams
//! asking the one that served the subject first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oci::{Digest, ImageAddress, Reference, RepositoryName};
use testkit::{FakeRegistry, Fault};
use upstream::UpstreamError;

use crate::testing::{
    NEGATIVE_TTL, RECHECK, TestCache, named_upstream_client, test_cache, test_cache_with_upstreams,
};
use crate::{CacheError, PullPolicy, Referrers, Resolved, Stale, StoredObject};

const SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM: &str = "application/spdx+json";

fn resolve(test: &TestCache) -> Resolved {
    let address = ImageAddress::Root { image: RepositoryName::parse("lab/app").unwrap() };
    test.cache.resolve(&address, None).unwrap()
}

/// The digests the list names.
fn listed(referrers: &Referrers) -> Vec<String> {
    let list: serde_json::Value = serde_json::from_slice(referrers.list.as_ref().expect("a list")).unwrap();
    list["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap().to_owned()).collect()
}

fn past_the_window(test: &TestCache) {
    test.clock.advance(RECHECK + Duration::from_secs(1));
}

#[tokio::test]
async fn a_list_is_served_from_the_cache_for_its_window_then_asked_again_and_served_stale_when_upstream_is_down()
 {
    let upstream = FakeRegistry::start().await;
    let test = test_cache(&upstream.url(), false, None).await;
    let resolved = resolve(&test);
    let (subject, _) = upstream.put_image("lab/app", "v1", &[b"signed"]);
    let signature = upstream.put_referrer("lab/app", &subject, SIGNATURE);

    let first = test.cache.referrers(&resolved, &subject).await.unwrap();
    assert_eq!(listed(&first), [signature.to_string()]);
    assert_eq!(first.stale, None);
    assert_eq!(first.upstream_path, format!("/v2/lab/app/referrers/{subject}"));
    for _ in 0..5 {
        assert_eq!(test.cache.referrers(&resolved, &subject).await.unwrap(), first);
    }
    assert_eq!(upstream.count("GET", "/referrers/"), 1, "inside the window: {:?}", upstream.log());
    assert_eq!(upstream.count("GET", "artifactType"), 0, "the full list is asked for");

    // After the window: asked again, once for a burst; a new attestation shows.
    let sbom = upstream.put_referrer("lab/app", &subject, SBOM);
    past_the_window(&test);
    let burst: Vec<_> = (0..8).map(|_| test.cache.referrers(&resolved, &subject)).collect();
    for answer in futures_util::future::join_all(burst).await {
        assert_eq!(listed(&answer.unwrap()).len(), 2);
    }
    assert_eq!(upstream.count("GET", "/referrers/"), 2, "{:?}", upstream.log());
    let now = test.cache.referrers(&resolved, &subject).await.unwrap();
    assert!(listed(&now).contains(&sbom.to_string()));

    // Upstream down past the window: the cached list, marked stale; still stale while it stays down.
    upstream.set_fault(Some(Fault::Status { status: 503, retry_after: None }));
    past_the_window(&test);
    for _ in 0..2 {
        let stale = test.cache.referrers(&resolved, &subject).await.unwrap();
        assert_eq!(stale.stale, Some(Stale::UpstreamUnreachable));
        assert_eq!(stale.list, now.list);
    }
    // Back up: fresh again.
    upstream.set_fault(None);
    assert_eq!(test.cache.referrers(&resolved, &subject).await.unwrap().stale, None);

    // A subject never asked about while upstream is down: upstream's failure, nothing cached.
    upstream.set_fault(Some(Fault::Status { status: 503, retry_after: None }));
    let other = Digest::of(b"another subject");
    match test.cache.referrers(&resolved, &other).await {
        Err(CacheError::Upstream(UpstreamError::Status { .. })) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_upstream_without_the_referrers_api_is_remembered_and_stays_a_404_while_it_is_down() {
    let upstream = FakeRegistry::start().await;
    upstream.set_referrers_api(false);
    let test = test_cache(&upstream.url(), false, None).await;
    let resolved = resolve(&test);
    let (subject, _) = upstream.put_image("lab/app", "v1", &[b"layer"]);

    let answer = test.cache.referrers(&resolved, &subject).await.unwrap();
    assert_eq!((answer.list, answer.stale), (None, None), "upstream serves no referrers API");
    test.cache.referrers(&resolved, &subject).await.unwrap();
    assert_eq!(upstream.count("GET", "/referrers/"), 1, "the 404 is kept for the window");

    upstream.set_fault(Some(Fault::Status { status: 503, retry_after: None }));
    upstream.set_referrers_api(true);
    past_the_window(&test);
    let answer = test.cache.referrers(&resolved, &subject).await.unwrap();
    assert_eq!(answer.list, None, "clients keep falling back to the tag schema");
    assert_eq!(answer.stale, Some(Stale::UpstreamUnreachable));

    // The upstream learns the API: the next check finds the list.
    upstream.set_fault(None);
    let signature = upstream.put_referrer("lab/app", &subject, SIGNATURE);
    past_the_window(&test);
    assert_eq!(listed(&test.cache.referrers(&resolved, &subject).await.unwrap()), [signature.to_string()]);
}

#[tokio::test]
async fn a_list_upstream_stops_serving_is_a_404_unless_the_group_keeps_it_stale_on_404() {
    let upstream = FakeRegistry::start().await;
    let test = test_cache(&upstream.url(), false, None).await;
    let resolved = resolve(&test);
    let (subject, _) = upstream.put_image("lab/app", "v1", &[b"layer"]);
    upstream.put_referrer("lab/app", &subject, SIGNATURE);
    let cached = test.cache.referrers(&resolved, &subject).await.unwrap();

    upstream.set_referrers_api(false);
    resolved.group.policy.replace(PullPolicy { stale_on_404: true, ..PullPolicy::open(NEGATIVE_TTL) });
    past_the_window(&test);
    let kept = test.cache.referrers(&resolved, &subject).await.unwrap();
    assert_eq!((kept.list, kept.stale), (cached.list.clone(), Some(Stale::GoneUpstream)));

    resolved.group.policy.replace(PullPolicy::open(NEGATIVE_TTL));
    let gone = test.cache.referrers(&resolved, &subject).await.unwrap();
    assert_eq!((gone.list, gone.stale), (None, None), "recorded as upstream's answer");
}

#[tokio::test]
async fn a_group_with_several_upstreams_asks_the_one_that_served_the_subject_first() {
    let (internal, hub) = (FakeRegistry::start().await, FakeRegistry::start().await);
    let test = test_cache_with_upstreams(vec![
        named_upstream_client("internal", &internal.url()),
        named_upstream_client("hub", &hub.url()),
    ])
    .await;
    let resolved = resolve(&test);
    let (subject, _) = hub.put_image("lab/app", "v1", &[b"layer"]);
    let signature = hub.put_referrer("lab/app", &subject, SIGNATURE);
    let object = StoredObject {
        digest: subject.clone(),
        size: 100,
        media_type: oci::media::OCI_MANIFEST.into(),
        upstream: "hub".into(),
    };
    test.cache
        .record_manifest(&resolved, &Reference::Digest(subject.clone()), object, &[], None)
        .await
        .unwrap();

    // `internal` serves the referrers API too, and would answer an empty list: not asked.
    let answer = test.cache.referrers(&resolved, &subject).await.unwrap();
    assert_eq!(listed(&answer), [signature.to_string()]);
    assert_eq!((internal.count("GET", "/referrers/"), hub.count("GET", "/referrers/")), (0, 1));

    // The upstream that answered is asked first when the list is checked again. When it is down,
    // the others' empty lists replace nothing: the cached list is served stale.
    past_the_window(&test);
    test.cache.referrers(&resolved, &subject).await.unwrap();
    assert_eq!((internal.count("GET", "/referrers/"), hub.count("GET", "/referrers/")), (0, 2));
    hub.set_fault(Some(Fault::Status { status: 503, retry_after: None }));
    past_the_window(&test);
    let stale = test.cache.referrers(&resolved, &subject).await.unwrap();
    assert_eq!(
        (listed(&stale), stale.stale),
        (vec![signature.to_string()], Some(Stale::UpstreamUnreachable))
    );
    assert_eq!(internal.count("GET", "/referrers/"), 1, "asked next");
    hub.set_fault(None);

    // An image the group holds nothing of: the configured order; `internal`'s empty list does not
    // hide `hub`'s referrers.
    let address = ImageAddress::Root { image: RepositoryName::parse("lab/other").unwrap() };
    let elsewhere = test.cache.resolve(&address, None).unwrap();
    let (other, _) = hub.put_image("lab/other", "v1", &[b"other layer"]);
    let sbom = hub.put_referrer("lab/other", &other, SBOM);
    let answer = test.cache.referrers(&elsewhere, &other).await.unwrap();
    assert_eq!(listed(&answer), [sbom.to_string()]);
    assert_eq!(answer.upstream_path, format!("/v2/lab/other/referrers/{other}"));
    assert_eq!(internal.count("GET", &format!("/referrers/{other}")), 1, "asked first");
    // No upstream holds any: the first empty list answers.
    let unknown = Digest::of(b"unknown");
    let none = test.cache.referrers(&elsewhere, &unknown).await.unwrap();
    assert_eq!((listed(&none).len(), none.stale), (0, None));
    assert_eq!(hub.count("GET", &format!("/referrers/{unknown}")), 1, "both were asked");
}

#[tokio::test]
async fn an_answer_that_is_no_image_index_is_not_cached() {
    let upstream = FakeRegistry::start().await;
    let test = test_cache(&upstream.url(), false, None).await;
    let resolved = resolve(&test);
    let (subject, _) = upstream.put_image("lab/app", "v1", &[b"layer"]);
    upstream.set_fault(Some(Fault::WrongBytes));
    match test.cache.referrers(&resolved, &subject).await {
        Err(CacheError::Upstream(UpstreamError::Protocol(message))) => {
            assert!(message.contains("not a referrers list"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    upstream.set_fault(None);
    assert!(test.cache.referrers(&resolved, &subject).await.unwrap().list.is_some());
    assert_eq!(upstream.count("GET", "/referrers/"), 2, "the bad answer was not kept");
}
