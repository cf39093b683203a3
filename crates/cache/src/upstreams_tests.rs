//! A group with two upstreams (`internal`, then `hub`), each a fake registry: decisions ask them in
//! order, move past a 404 and past an outage (counted against the upstream's health), and ask the
//! upstream that served a tag first when it is checked again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use oci::{Digest, ImageAddress, Reference, RepositoryName};
use testkit::{FakeRegistry, Fault};
use upstream::{UpstreamError, UpstreamMetrics};

use crate::testing::{RECHECK, TestCache, test_cache_with_upstreams, upstream_client_with};
use crate::{CacheError, Decision, Fetch, Resolved, StoredObject};

struct Setup {
    test: TestCache,
    internal: FakeRegistry,
    hub: FakeRegistry,
    metrics: UpstreamMetrics,
    resolved: Resolved,
}

async fn setup() -> Setup {
    let (internal, hub) = (FakeRegistry::start().await, FakeRegistry::start().await);
    let metrics = UpstreamMetrics::default();
    let test = test_cache_with_upstreams(vec![
        upstream_client_with("internal", &internal.url(), metrics.clone()),
        upstream_client_with("hub", &hub.url(), metrics.clone()),
    ])
    .await;
    let address = ImageAddress::Root { image: RepositoryName::parse("lab/app").unwrap() };
    let resolved = test.cache.resolve(&address, None).unwrap();
    Setup { test, internal, hub, metrics, resolved }
}

impl Setup {
    fn failovers(&self, registry: &FakeRegistry) -> u64 {
        let host = registry.address().to_string();
        let counted = self.metrics.failovers(&host);
        assert_eq!(self.metrics.status().get(&host).map_or(0, |health| health.failovers), counted);
        counted
    }
}

fn fetch(decision: Result<Decision, CacheError>) -> Fetch {
    match decision.unwrap() {
        Decision::Fetch(fetch) => fetch,
        other => panic!("{other:?}"),
    }
}

fn upstreams(fetch: &Fetch) -> Vec<&str> {
    fetch.sources.iter().map(|source| source.upstream.as_str()).collect()
}

fn tag(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

#[tokio::test]
async fn a_miss_names_every_upstream_in_order_and_a_head_moves_past_a_404() {
    let setup = setup().await;
    let digest = setup.hub.put_blob(b"layer".to_vec());
    let miss = fetch(setup.test.cache.blob(&setup.resolved, &digest, false).await);
    assert_eq!(upstreams(&miss), ["internal", "hub"]);
    assert_eq!(miss.sources[0].url, format!("{}/v2/lab/app/blobs/{digest}", setup.internal.url()));
    assert_eq!(miss.sources[1].url, format!("{}/v2/lab/app/blobs/{digest}", setup.hub.url()));
    assert_eq!(miss.fill_key, format!("default|blob|{digest}"), "one fill per group and object");

    match setup.test.cache.blob(&setup.resolved, &digest, true).await.unwrap() {
        Decision::UpstreamHead { head, .. } => assert_eq!(head.size, Some(5)),
        other => panic!("{other:?}"),
    }
    assert_eq!((setup.internal.count("HEAD", "/blobs/"), setup.hub.count("HEAD", "/blobs/")), (1, 1));
    assert_eq!(setup.failovers(&setup.internal), 0, "a 404 is an answer, not a failure");
}

#[tokio::test]
async fn an_upstream_that_fails_is_moved_past_and_counted_against_its_health() {
    let setup = setup().await;
    let digest = setup.internal.put_blob(b"layer".to_vec());
    setup.hub.put_blob(b"layer".to_vec());
    for status in [503, 429] {
        setup.internal.set_fault(Some(Fault::Status { status, retry_after: None }));
        assert!(matches!(
            setup.test.cache.blob(&setup.resolved, &digest, true).await.unwrap(),
            Decision::UpstreamHead { .. }
        ));
    }
    assert_eq!(setup.hub.count("HEAD", "/blobs/"), 2, "the next upstream answered");
    assert_eq!(setup.failovers(&setup.internal), 2);
    assert_eq!(setup.failovers(&setup.hub), 0);

    // Every upstream failed: the client hears of the outage, not of the other's 404.
    let internal_only = setup.internal.put_blob(b"only internal".to_vec());
    setup.internal.set_fault(Some(Fault::Status { status: 503, retry_after: None }));
    match setup.test.cache.blob(&setup.resolved, &internal_only, true).await {
        Err(CacheError::Upstream(UpstreamError::Status { status })) => assert_eq!(status.as_u16(), 503),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_tag_is_asked_of_the_upstream_that_served_it_first() {
    let setup = setup().await;
    let cache = &setup.test.cache;
    let (manifest, layers) = setup.hub.put_image("lab/app", "v1", &[b"layer"]);
    // containerd resolves the tag: `internal` has no such tag, `hub` answers and is remembered.
    assert!(matches!(
        cache.manifest(&setup.resolved, &tag("v1"), true).await.unwrap(),
        Decision::UpstreamHead { .. }
    ));
    assert_eq!(setup.internal.count("HEAD", "/manifests/v1"), 1);
    let by_digest = fetch(cache.manifest(&setup.resolved, &tag("v1"), false).await);
    assert_eq!(
        upstreams(&by_digest),
        ["hub", "internal"],
        "the manifest by digest, from where the tag was found"
    );
    assert!(by_digest.sources[0].url.ends_with(&format!("/manifests/{manifest}")));

    // The fill recorded it as served by `hub`; its layers are asked of `hub` first as well.
    let object = StoredObject {
        digest: manifest.clone(),
        size: 300,
        media_type: oci::media::OCI_MANIFEST.into(),
        upstream: "hub".into(),
    };
    cache.record_manifest(&setup.resolved, &tag("v1"), object, &layers, None).await.unwrap();
    let layer = fetch(cache.blob(&setup.resolved, &layers[0], false).await);
    assert_eq!(upstreams(&layer), ["hub", "internal"]);

    // Past the recheck window the tag is checked at `hub`, not at `internal` first.
    setup.internal.clear_log();
    setup.test.clock.advance(RECHECK);
    match cache.manifest(&setup.resolved, &tag("v1"), false).await.unwrap() {
        Decision::Serve { object, stale: None } => assert_eq!(object.upstream, "hub"),
        other => panic!("{other:?}"),
    }
    assert_eq!(setup.hub.count("HEAD", "/manifests/v1"), 2);
    assert!(setup.internal.log().is_empty(), "{:?}", setup.internal.log());

    // `hub` no longer has it and `internal` now does: the tag moves to `internal`.
    let (moved, _) = setup.internal.put_image("lab/app", "v1", &[b"internal layer"]);
    setup.hub.set_fault(Some(Fault::Status { status: 404, retry_after: None }));
    setup.test.clock.advance(RECHECK);
    let refetch = fetch(cache.manifest(&setup.resolved, &tag("v1"), false).await);
    assert_eq!(upstreams(&refetch), ["internal", "hub"], "fetched from the upstream that answered");
    assert_eq!(setup.failovers(&setup.hub), 0, "a 404 moves on without counting");
    assert_ne!(moved, manifest);
}

#[tokio::test]
async fn a_new_tag_is_asked_in_the_configured_order() {
    let setup = setup().await;
    setup.internal.put_image("lab/app", "v2", &[b"internal"]);
    setup.hub.put_image("lab/app", "v2", &[b"hub"]);
    let miss = fetch(setup.test.cache.manifest(&setup.resolved, &tag("v2"), false).await);
    assert_eq!(upstreams(&miss), ["internal", "hub"], "an earlier upstream's tag shadows a later one's");
}

#[tokio::test]
async fn an_upstream_whose_token_service_is_down_is_left_out_of_a_fill() {
    let setup = setup().await;
    setup.internal.require_token("secret-token");
    setup.internal.set_token_endpoint_down(true);
    let digest = Digest::of(b"anything");
    let miss = fetch(setup.test.cache.blob(&setup.resolved, &digest, false).await);
    assert_eq!(upstreams(&miss), ["hub"]);
    assert_eq!(setup.failovers(&setup.internal), 1);
}
