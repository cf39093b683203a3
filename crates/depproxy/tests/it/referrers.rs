//! Signatures and attestations through the proxy, in process against a fake registry: the
//! referrers API answered from a cached list (fresh for `manifest_recheck`, the `artifactType`
//! filter applied to the full list, served stale while upstream is down), upstream's 404 for it
//! kept so clients keep falling back to the tag schema offline, later pages passed through, and
//! cosign's tag-schema tags (`sha256-<hex>.sig`, `.att`) cached like any tag with their 404
//! probes remembered for `negative_ttl`; a group with several upstreams asking for a subject's
//! referrers where the subject came from.

use std::time::Duration;

use crate::support::switch::TcpSwitch;
use crate::support::{Options, TestProxy, client};
use cache::Clock;
use http::StatusCode;
use testkit::FakeRegistry;

const SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM: &str = "application/spdx+json";

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

fn config(upstream: &str) -> String {
    format!(
        "[[upstream]]\nname = \"up\"\nurl = \"{upstream}\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\n\
         manifest_recheck = \"5m\"\nnegative_ttl = \"1m\"\n[timeouts]\nrecheck = \"300ms\"\nheader = \"2s\"\nconnect = \"1s\"\n"
    )
}

/// The digests an answer lists.
async fn listed(response: reqwest::Response) -> Vec<String> {
    let index: serde_json::Value = response.json().await.unwrap();
    index["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn referrers_are_answered_from_the_cached_list_filtered_and_stale_while_upstream_is_down() {
    for split in [false, true] {
        let upstream = FakeRegistry::start().await;
        let switch = TcpSwitch::start(upstream.address()).await;
        let (subject, _) = upstream.put_image("lab/app", "v1", &[b"signed layer"]);
        let signature = upstream.put_referrer("lab/app", &subject, SIGNATURE);
        let sbom = upstream.put_referrer("lab/app", &subject, SBOM);
        let clock = Clock::manual(1_000_000);
        let mut options = Options::toml(&config(&switch.url())).clock(clock.clone());
        if split {
            options = options.split();
        }
        let proxy = TestProxy::start(options).await;
        let url = format!("{}/v2/lab/app/referrers/{subject}", proxy.url);
        let filtered_url = format!("{url}?artifactType=application/spdx%2Bjson");

        let all = get(&url).await;
        assert_eq!(all.status(), StatusCode::OK);
        assert_eq!(all.headers()["content-type"], oci::media::OCI_INDEX);
        assert!(all.headers().get("oci-filters-applied").is_none());
        assert!(all.headers().get("warning").is_none());
        let digests = listed(all).await;
        assert_eq!(digests.len(), 2);
        assert!(digests.contains(&signature.to_string()) && digests.contains(&sbom.to_string()));

        // The filter is applied here, to the cached full list: upstream is not asked again.
        let filtered = get(&filtered_url).await;
        assert_eq!(filtered.headers()["oci-filters-applied"], "artifactType");
        assert_eq!(listed(filtered).await, [sbom.to_string()]);
        assert_eq!(upstream.count("GET", "/referrers/"), 1, "split={split}: {:?}", upstream.log());
        assert_eq!(upstream.count("GET", "artifactType"), 0, "the full list is what is cached");

        // Past the window, upstream down: the cached list, with the stale `Warning`, filtered too.
        clock.advance(Duration::from_secs(301));
        switch.down();
        let stale = get(&url).await;
        assert_eq!(stale.status(), StatusCode::OK, "split={split}");
        assert!(stale.headers()["warning"].to_str().unwrap().starts_with("110"));
        assert_eq!(listed(stale).await.len(), 2);
        let stale = get(&filtered_url).await;
        assert_eq!(stale.headers()["oci-filters-applied"], "artifactType");
        assert!(stale.headers()["warning"].to_str().unwrap().starts_with("110"));
        assert_eq!(listed(stale).await, [sbom.to_string()]);
        // Nothing cached for another subject: upstream's failure.
        let cold = get(&format!("{}/v2/lab/app/referrers/{}", proxy.url, oci::Digest::of(b"other"))).await;
        assert_eq!(cold.status(), StatusCode::BAD_GATEWAY);

        // Back up: asked again, a new attestation shows, no warning.
        switch.up().await;
        let attestation = upstream.put_referrer("lab/app", &subject, "application/vnd.in-toto+json");
        let fresh = get(&url).await;
        assert!(fresh.headers().get("warning").is_none());
        assert!(listed(fresh).await.contains(&attestation.to_string()));
    }
}

#[tokio::test]
async fn without_the_referrers_api_upstream_clients_fall_back_to_the_tag_schema_offline_too() {
    let upstream = FakeRegistry::start().await;
    upstream.set_referrers_api(false);
    let switch = TcpSwitch::start(upstream.address()).await;
    let (subject, _) = upstream.put_image("lab/app", "v1", &[b"layer"]);
    let signature = upstream.put_referrer("lab/app", &subject, SIGNATURE);
    // What oras pushes to a registry without the API: an index tagged `sha256-<hex>`.
    let fallback_tag = format!("sha256-{}", subject.hex());
    let size = client()
        .head(format!("{}/v2/lab/app/manifests/{signature}", upstream.url()))
        .send()
        .await
        .unwrap()
        .content_length()
        .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": oci::media::OCI_INDEX, "manifests": [
        {"mediaType": oci::media::OCI_MANIFEST, "digest": signature.to_string(), "size": size, "artifactType": SIGNATURE}
    ]});
    let fallback = upstream.put_manifest(
        "lab/app",
        &fallback_tag,
        oci::media::OCI_INDEX,
        serde_json::to_vec(&index).unwrap(),
    );
    let clock = Clock::manual(1_000_000);
    let proxy = TestProxy::start(Options::toml(&config(&switch.url())).clock(clock.clone())).await;
    let referrers_url = format!("{}/v2/lab/app/referrers/{subject}", proxy.url);

    let answer = get(&referrers_url).await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let index = get(&format!("{}/v2/lab/app/manifests/{fallback_tag}", proxy.url)).await;
    assert_eq!(index.headers()["docker-content-digest"], fallback.to_string().as_str());
    assert_eq!(listed(index).await, [signature.to_string()]);
    let artifact = get(&format!("{}/v2/lab/app/manifests/{signature}", proxy.url)).await;
    assert_eq!(artifact.status(), StatusCode::OK);
    proxy.fills_settled().await;
    assert_eq!(get(&referrers_url).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(upstream.count("GET", "/referrers/"), 1, "the 404 is kept for the window");

    // Offline, past the window: still a 404 (not a 502), so clients read the tag schema, which
    // is served stale from the cache.
    switch.down();
    clock.advance(Duration::from_secs(301));
    assert_eq!(get(&referrers_url).await.status(), StatusCode::NOT_FOUND);
    let index = get(&format!("{}/v2/lab/app/manifests/{fallback_tag}", proxy.url)).await;
    assert_eq!(index.status(), StatusCode::OK);
    assert!(index.headers()["warning"].to_str().unwrap().starts_with("110"));
    assert_eq!(
        get(&format!("{}/v2/lab/app/manifests/{signature}", proxy.url)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn later_pages_of_a_referrers_list_pass_through() {
    let upstream = FakeRegistry::start().await;
    let (subject, _) = upstream.put_image("lab/app", "v1", &[b"layer"]);
    upstream.put_referrer("lab/app", &subject, SIGNATURE);
    let proxy = TestProxy::start(Options::toml(&config(&upstream.url()))).await;
    for _ in 0..2 {
        let page = get(&format!("{}/v2/lab/app/referrers/{subject}?n=1&last=x", proxy.url)).await;
        assert_eq!(page.status(), StatusCode::OK);
    }
    let asked: Vec<_> =
        upstream.log().into_iter().filter(|entry| entry.path.contains("/referrers/")).collect();
    assert_eq!(asked.len(), 2, "not cached: {asked:?}");
}

#[tokio::test]
async fn cosign_tag_schema_tags_cache_like_tags_and_their_404_probes_are_remembered() {
    let upstream = FakeRegistry::start().await;
    let switch = TcpSwitch::start(upstream.address()).await;
    let (subject, _) = upstream.put_image("lab/app", "v1", &[b"signed layer"]);
    let clock = Clock::manual(1_000_000);
    let proxy = TestProxy::start(Options::toml(&config(&switch.url())).clock(clock.clone())).await;
    let tag = |suffix: &str| format!("{}/v2/lab/app/manifests/sha256-{}.{suffix}", proxy.url, subject.hex());

    // cosign probes `.sig` (GET) and `.att` (HEAD) before anything is signed: each asked once,
    // then answered 404 from memory for `negative_ttl`.
    for _ in 0..3 {
        assert_eq!(get(&tag("sig")).await.status(), StatusCode::NOT_FOUND);
        let head = client().head(tag("att")).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(upstream.count("GET", ".sig"), 1, "{:?}", upstream.log());
    assert_eq!(upstream.count("HEAD", ".att"), 1, "{:?}", upstream.log());

    // Signed: after the 404's window the signature tag is fetched and cached like any tag.
    let (signature, layers) =
        upstream.put_image("lab/app", &format!("sha256-{}.sig", subject.hex()), &[b"sig"]);
    clock.advance(Duration::from_secs(61));
    let signed = get(&tag("sig")).await;
    assert_eq!(signed.headers()["docker-content-digest"], signature.to_string().as_str());
    let layer = get(&format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0])).await;
    assert_eq!(layer.bytes().await.unwrap().as_ref(), b"sig");
    proxy.fills_settled().await;
    upstream.clear_log();
    assert_eq!(get(&tag("sig")).await.status(), StatusCode::OK);
    assert!(upstream.log().is_empty(), "fresh for manifest_recheck: {:?}", upstream.log());

    // Upstream down past the window: `cosign verify` still finds its signature.
    switch.down();
    clock.advance(Duration::from_secs(301));
    let stale = get(&tag("sig")).await;
    assert_eq!(stale.headers()["docker-content-digest"], signature.to_string().as_str());
    assert!(stale.headers()["warning"].to_str().unwrap().starts_with("110"));
    let layer = get(&format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0])).await;
    assert_eq!(layer.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_group_with_several_upstreams_asks_for_referrers_where_the_image_came_from() {
    let (internal, hub) = (FakeRegistry::start().await, FakeRegistry::start().await);
    let (subject, _) = hub.put_image("lab/app", "v1", &[b"a layer only hub has"]);
    let signature = hub.put_referrer("lab/app", &subject, SIGNATURE);
    let config = format!(
        "[[upstream]]\nname = \"internal\"\nurl = \"{}\"\n[[upstream]]\nname = \"hub\"\nurl = \"{}\"\n\
         [[group]]\npath = \"default\"\nupstreams = [\"internal\", \"hub\"]\n",
        internal.url(),
        hub.url()
    );
    let proxy = TestProxy::start(Options::toml(&config)).await;
    // The image comes from `hub` (`internal` answers 404), and is recorded as hub's.
    let image = get(&format!("{}/v2/lab/app/manifests/v1", proxy.url)).await;
    assert_eq!(image.headers()["docker-content-digest"], subject.to_string().as_str());
    proxy.fills_settled().await;

    // `internal` serves the referrers API too and would answer an empty list: hub is asked first.
    let referrers = get(&format!("{}/v2/lab/app/referrers/{subject}", proxy.url)).await;
    assert_eq!(listed(referrers).await, [signature.to_string()]);
    assert_eq!((internal.count("GET", "/referrers/"), hub.count("GET", "/referrers/")), (0, 1));
}
