//! Upstreams as users run them: freshness that spares the quota (tag rechecks by HEAD, coalesced,
//! after `manifest_recheck`), outages survived with cached content, every client addressing
//! convention, and the upstream request counters.

use std::time::Duration;

use crate::support::switch::TcpSwitch;
use crate::support::{Options, TestProxy, client};
use cache::Clock;
use http::StatusCode;
use testkit::{FakeRegistry, Fault};

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

fn proxy_config(upstream: &str, extra: &str) -> String {
    format!(
        "[[upstream]]\nname = \"up\"\nurl = \"{upstream}\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\nmanifest_recheck = \"5m\"\n[timeouts]\nrecheck = \"300ms\"\nheader = \"2s\"\nconnect = \"1s\"\n{extra}"
    )
}

async fn pull_manifest(proxy: &TestProxy, reference: &str) -> reqwest::Response {
    get(&format!("{}/v2/lab/app/manifests/{reference}", proxy.url)).await
}

#[tokio::test]
async fn cached_tags_are_served_without_upstream_until_the_recheck_window_ends() {
    let upstream = FakeRegistry::start().await;
    let (first, _) = upstream.put_image("lab/app", "v1", &[b"layer one"]);
    let clock = Clock::manual(1_000_000);
    let proxy =
        TestProxy::start(Options::toml(&proxy_config(&upstream.url(), "")).clock(clock.clone())).await;
    assert_eq!(pull_manifest(&proxy, "v1").await.status(), StatusCode::OK);
    proxy.fills_settled().await;
    upstream.clear_log();

    for _ in 0..10 {
        let response = pull_manifest(&proxy, "v1").await;
        assert_eq!(response.headers()["docker-content-digest"], first.to_string().as_str());
    }
    assert!(upstream.log().is_empty(), "inside the window: {:?}", upstream.log());

    clock.advance(Duration::from_secs(301));
    for _ in 0..10 {
        let response = pull_manifest(&proxy, "v1").await;
        assert_eq!(response.headers()["docker-content-digest"], first.to_string().as_str());
        assert!(response.headers().get("warning").is_none());
    }
    assert_eq!(upstream.count("HEAD", "/manifests/v1"), 1, "{:?}", upstream.log());
    assert_eq!(upstream.count("GET", "/manifests/"), 0);

    // A burst after the next window: still one HEAD.
    clock.advance(Duration::from_secs(301));
    upstream.clear_log();
    let burst: Vec<_> = (0..16).map(|_| pull_manifest(&proxy, "v1")).collect();
    for response in futures_util::future::join_all(burst).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(upstream.count("HEAD", "/manifests/v1"), 1, "{:?}", upstream.log());
    assert_eq!(upstream.count("GET", ""), 0);

    // The tag moves upstream: after the window the new digest is served.
    let (second, _) = upstream.put_image("lab/app", "v1", &[b"layer two"]);
    assert_ne!(first, second);
    clock.advance(Duration::from_secs(301));
    upstream.clear_log();
    let response = pull_manifest(&proxy, "v1").await;
    assert_eq!(response.headers()["docker-content-digest"], second.to_string().as_str());
    assert_eq!(oci::Digest::of(&response.bytes().await.unwrap()), second);
    assert_eq!(upstream.count("HEAD", "/manifests/v1"), 1);
    assert_eq!(upstream.count("GET", "/manifests/v1"), 1);
    proxy.fills_settled().await;
    // The old digest stays available by digest, without upstream.
    upstream.clear_log();
    assert_eq!(pull_manifest(&proxy, &first.to_string()).await.status(), StatusCode::OK);
    assert!(upstream.log().is_empty());
}

#[tokio::test]
async fn digests_blobs_and_blob_heads_never_contact_upstream_once_cached() {
    let upstream = FakeRegistry::start().await;
    let (manifest, layers) = upstream.put_image("lab/app", "v1", &[b"some layer"]);
    let clock = Clock::manual(0);
    let proxy =
        TestProxy::start(Options::toml(&proxy_config(&upstream.url(), "")).clock(clock.clone())).await;
    let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    assert_eq!(pull_manifest(&proxy, &manifest.to_string()).await.status(), StatusCode::OK);
    assert_eq!(get(&blob_url).await.bytes().await.unwrap().as_ref(), b"some layer");
    proxy.fills_settled().await;
    upstream.clear_log();
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(pull_manifest(&proxy, &manifest.to_string()).await.status(), StatusCode::OK);
    assert_eq!(get(&blob_url).await.status(), StatusCode::OK);
    assert_eq!(client().head(&blob_url).send().await.unwrap().status(), StatusCode::OK);
    assert!(upstream.log().is_empty(), "{:?}", upstream.log());
}

/// One outage kind: how to break the upstream, and what a client gets when nothing is cached.
struct Outage {
    name: &'static str,
    expected_cold: StatusCode,
}

async fn break_upstream(name: &str, upstream: &FakeRegistry, switch: &TcpSwitch) {
    match name {
        "503" => upstream.set_fault(Some(Fault::Status { status: 503, retry_after: None })),
        "429" => upstream.set_fault(Some(Fault::Status { status: 429, retry_after: Some("30".into()) })),
        "stall" => upstream.set_fault(Some(Fault::Hang)),
        "refused" => switch.down(),
        "token" => upstream.set_token_endpoint_down(true),
        other => panic!("unknown outage {other}"),
    }
}

#[tokio::test]
async fn outages_serve_cached_content_stale_and_fail_cleanly_without_it() {
    let outages = [
        Outage { name: "503", expected_cold: StatusCode::BAD_GATEWAY },
        Outage { name: "429", expected_cold: StatusCode::TOO_MANY_REQUESTS },
        Outage { name: "stall", expected_cold: StatusCode::GATEWAY_TIMEOUT },
        Outage { name: "refused", expected_cold: StatusCode::BAD_GATEWAY },
        Outage { name: "token", expected_cold: StatusCode::BAD_GATEWAY },
    ];
    for outage in outages {
        let upstream = FakeRegistry::start().await;
        upstream.require_token("t0ken");
        let switch = TcpSwitch::start(upstream.address()).await;
        let (_, layers) = upstream.put_image("lab/app", "v1", &[b"cached layer"]);
        upstream.put_image("lab/cold", "v1", &[b"never pulled"]);
        let config = proxy_config(&switch.url(), "");
        let clock = Clock::manual(0);
        let proxy = TestProxy::start(Options::toml(&config).clock(clock.clone())).await;
        assert_eq!(pull_manifest(&proxy, "v1").await.status(), StatusCode::OK);
        let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
        assert_eq!(get(&blob_url).await.status(), StatusCode::OK);
        proxy.fills_settled().await;

        // A restart: token cache and connections gone, only the data directory remains.
        let data_dir = proxy.into_data_dir();
        let proxy = TestProxy::start(Options::toml(&config).clock(clock.clone()).data_dir(data_dir)).await;
        break_upstream(outage.name, &upstream, &switch).await;
        clock.advance(Duration::from_secs(600));
        upstream.clear_log();

        let stale = pull_manifest(&proxy, "v1").await;
        assert_eq!(stale.status(), StatusCode::OK, "{}: a cached tag must be served", outage.name);
        assert!(stale.headers()["warning"].to_str().unwrap().starts_with("110"), "{}", outage.name);
        let blob = get(&blob_url).await;
        assert_eq!(blob.status(), StatusCode::OK, "{}", outage.name);
        assert_eq!(blob.bytes().await.unwrap().as_ref(), b"cached layer");

        let cold = get(&format!("{}/v2/lab/cold/manifests/v1", proxy.url)).await;
        assert_eq!(cold.status(), outage.expected_cold, "{}: nothing cached", outage.name);
        let body: serde_json::Value = cold.json().await.unwrap();
        assert!(body["errors"][0]["code"].is_string(), "{}: OCI error body", outage.name);
    }
}

#[tokio::test]
async fn hits_never_fetch_a_token() {
    let upstream = FakeRegistry::start().await;
    upstream.require_token("t0ken");
    let (manifest, layers) = upstream.put_image("lab/app", "v1", &[b"layer"]);
    let config = proxy_config(&upstream.url(), "");
    let proxy = TestProxy::start(Options::toml(&config)).await;
    get(&format!("{}/v2/lab/app/manifests/{manifest}", proxy.url)).await.bytes().await.unwrap();
    get(&format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0])).await.bytes().await.unwrap();
    proxy.fills_settled().await;
    let proxy = TestProxy::start(Options::toml(&config).data_dir(proxy.into_data_dir())).await;
    upstream.set_token_endpoint_down(true);
    upstream.clear_log();
    assert_eq!(get(&format!("{}/v2/lab/app/manifests/{manifest}", proxy.url)).await.status(), StatusCode::OK);
    assert_eq!(get(&format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0])).await.status(), StatusCode::OK);
    assert!(upstream.log().is_empty(), "{:?}", upstream.log());
}

#[tokio::test]
async fn every_addressing_convention_reaches_the_right_upstream() {
    let hub = FakeRegistry::start().await;
    let lab = FakeRegistry::start().await;
    let (hub_manifest, _) = hub.put_image("library/alpine", "3", &[b"hub layer"]);
    let (lab_manifest, _) = lab.put_image("team/tool", "v1", &[b"lab layer"]);
    let lab_host = lab.address().to_string();
    let config = format!(
        "[[upstream]]\nname = \"hub\"\nurl = \"{}\"\n[[upstream]]\nname = \"lab\"\nurl = \"{}\"\npath_prefix = true\n[[group]]\npath = \"default\"\nupstream = \"hub\"\n[[group]]\npath = \"acme/platform\"\nupstream = \"lab\"\n",
        hub.url(),
        lab.url()
    );
    let proxy = TestProxy::start(Options::toml(&config)).await;
    let digest_of = |response: &reqwest::Response| {
        response.headers()["docker-content-digest"].to_str().unwrap().to_owned()
    };
    let cases = [
        ("/v2/library/alpine/manifests/3".to_owned(), hub_manifest.to_string()),
        (
            "/v2/acme/platform/dependency_proxy/containers/team/tool/manifests/v1".to_owned(),
            lab_manifest.to_string(),
        ),
        ("/v2/lab/team/tool/manifests/v1".to_owned(), lab_manifest.to_string()),
        (format!("/v2/team/tool/manifests/v1?ns={lab_host}"), lab_manifest.to_string()),
    ];
    for (path, expected) in &cases {
        let response = get(&format!("{}{path}", proxy.url)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(&digest_of(&response), expected, "{path}");
        proxy.fills_settled().await;
    }
    assert_eq!(lab.count("GET", "/manifests/v1"), 1, "group, prefix and ns forms share the lab cache");
    let refused = get(&format!("{}/v2/team/tool/manifests/v1?ns=elsewhere.example", proxy.url)).await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "NAME_UNKNOWN");
}

#[tokio::test]
async fn upstream_requests_are_counted_by_kind_in_metrics() {
    let upstream = FakeRegistry::start().await;
    let (_, layers) = upstream.put_image("lab/app", "v1", &[b"layer"]);
    let clock = Clock::manual(0);
    let proxy =
        TestProxy::start(Options::toml(&proxy_config(&upstream.url(), "")).clock(clock.clone())).await;
    pull_manifest(&proxy, "v1").await.bytes().await.unwrap();
    get(&format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0])).await.bytes().await.unwrap();
    proxy.fills_settled().await;
    clock.advance(Duration::from_secs(400));
    pull_manifest(&proxy, "v1").await.bytes().await.unwrap();
    let text = get(&format!("{}/metrics", proxy.url)).await.text().await.unwrap();
    let host = upstream.address().to_string();
    for (kind, count) in [("get_manifest", 1), ("get_blob", 1), ("head_manifest", 1)] {
        let line = format!("depproxy_upstream_requests_total{{upstream=\"{host}\",kind=\"{kind}\"}} {count}");
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("depproxy_gateway_responses_total{decision=\"hit\"}"), "{text}");
}

#[tokio::test]
async fn basic_auth_upstreams_use_the_configured_credentials() {
    let upstream = FakeRegistry::start().await;
    upstream.require_basic("ci", "s3cret");
    let (_, layers) = upstream.put_image("lab/app", "v1", &[b"basic layer"]);
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "s3cret\n").unwrap();
    let with_credentials = format!(
        // Anonymous pulls through credentials: allowed on this loopback listener (access control
        // has tests of its own).
        "[[upstream]]\nname = \"up\"\nurl = \"{}\"\nusername = \"ci\"\npassword_file = \"{}\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\naccess = \"anonymous\"\n",
        upstream.url(),
        password_file.display()
    );
    let proxy = TestProxy::start(Options::toml(&with_credentials)).await;
    assert_eq!(pull_manifest(&proxy, "v1").await.status(), StatusCode::OK);
    let blob = get(&format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0])).await;
    assert_eq!(blob.bytes().await.unwrap().as_ref(), b"basic layer");

    let without = TestProxy::start(Options::toml(&proxy_config(&upstream.url(), ""))).await;
    let refused = pull_manifest(&without, "v1").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("Basic credentials"), "{body}");
}

#[tokio::test]
async fn tag_lists_pass_through_with_pagination_pointing_at_the_proxy() {
    let upstream = FakeRegistry::start().await;
    for tag in ["a", "b", "c"] {
        upstream.put_image("lab/app", tag, &[tag.as_bytes()]);
    }
    let proxy = TestProxy::start(Options::toml(&proxy_config(&upstream.url(), ""))).await;
    let first = get(&format!("{}/v2/lab/app/tags/list?n=2", proxy.url)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["link"], "</v2/lab/app/tags/list?n=2&last=b>; rel=\"next\"");
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!(["a", "b"]));
    let next = get(&format!("{}/v2/lab/app/tags/list?n=2&last=b", proxy.url)).await;
    let body: serde_json::Value = next.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!(["c"]));
    // Not cached: every listing is asked upstream.
    assert_eq!(upstream.count("GET", "/tags/list"), 2);
    let unknown = get(&format!("{}/v2/lab/nothing/tags/list", proxy.url)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
