//! A group with ordered upstreams (`upstreams = ["internal", "hub"]`), in process, in front of two
//! fake registries: the first that has the artifact serves it (a 404 moves on; a 5xx, 429 or
//! timeout moves on and counts against that upstream's health); which one served is recorded with
//! the object and shown by the statistics, the admin API and the access log; a tag is checked again
//! at the upstream that served it first.

use std::time::Duration;

use crate::support::{LogCapture, Options, TestProxy, client};
use cache::Clock;
use http::StatusCode;
use metadata::Metadata;
use testkit::{FakeRegistry, Fault};

fn config(internal: &FakeRegistry, hub: &FakeRegistry) -> String {
    format!(
        "[[upstream]]\nname = \"internal\"\nurl = \"{}\"\n\
         [[upstream]]\nname = \"hub\"\nurl = \"{}\"\n\
         [[group]]\npath = \"default\"\nupstreams = [\"internal\", \"hub\"]\nmanifest_recheck = \"5m\"\n\
         [timeouts]\nheader = \"1s\"\nrecheck = \"2s\"\nconnect = \"1s\"\n",
        internal.url(),
        hub.url()
    )
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

async fn admin_token(proxy: &TestProxy) -> String {
    let metadata = Metadata::connect(&proxy.config.database_url).await.unwrap();
    let created = access::create_token(&metadata, &Clock::system(), "ops", vec![], true, None).await.unwrap();
    proxy.access.tokens().reload().await.unwrap();
    created.secret
}

async fn admin_json(proxy: &TestProxy, token: &str, path: &str) -> serde_json::Value {
    let response =
        client().get(format!("{}{path}", proxy.admin_url)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

/// The access-log lines of requests for `fragment` (a digest, a tag).
fn access_lines(log: &LogCapture, fragment: &str) -> Vec<String> {
    log.lines()
        .into_iter()
        .filter(|line| line.contains("depproxy::access") && line.contains(fragment))
        .collect()
}

#[tokio::test]
async fn the_first_upstream_that_has_it_serves_and_is_asked_first_from_then_on() {
    let log = LogCapture::install();
    for split in [false, true] {
        let (internal, hub) = (FakeRegistry::start().await, FakeRegistry::start().await);
        let (manifest, layers) = hub.put_image("lab/app", "v1", &[b"a layer only hub has"]);
        let clock = Clock::manual(1_000_000);
        let options = Options::toml(&config(&internal, &hub)).clock(clock.clone());
        let proxy = TestProxy::start(if split { options.split() } else { options }).await;
        let mode = if split { "split" } else { "serve" };

        // The tag: `internal` answers 404, `hub` serves it.
        let response = get(&format!("{}/v2/lab/app/manifests/v1", proxy.url)).await;
        assert_eq!(response.status(), StatusCode::OK, "{mode}");
        assert_eq!(response.headers()["docker-content-digest"], manifest.to_string().as_str());
        assert_eq!(oci::Digest::of(&response.bytes().await.unwrap()), manifest);
        assert_eq!(internal.count("GET", "/manifests/v1"), 1, "{mode}: asked first");
        proxy.fills_settled().await;

        // Its layer is asked of the upstream that served the image: `internal` is not asked.
        let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
        assert_eq!(get(&blob_url).await.bytes().await.unwrap().as_ref(), b"a layer only hub has");
        proxy.fills_settled().await;
        assert_eq!(internal.count("GET", "/blobs/"), 0, "{mode}: {:?}", internal.log());
        assert_eq!(get(&blob_url).await.status(), StatusCode::OK, "{mode}: a hit");

        // The access log names the upstream, on the miss and on the hit.
        let lines = access_lines(&log, &layers[0].to_string());
        let decisions: Vec<(bool, bool)> = lines
            .iter()
            .map(|line| (line.contains("decision=miss"), line.contains("upstream=hub")))
            .collect();
        assert!(decisions.contains(&(true, true)), "{mode}: {lines:#?}");
        assert!(
            lines.iter().any(|line| line.contains("decision=hit") && line.contains("upstream=hub")),
            "{lines:#?}"
        );

        // Statistics and the admin API say what each upstream served.
        let stats = proxy.lifecycle.stats(Some("default")).await.unwrap();
        let shares: Vec<(&str, u64)> = stats.groups[0]
            .by_upstream
            .iter()
            .map(|share| (share.upstream.as_str(), share.objects))
            .collect();
        assert_eq!(shares, [("hub", 2)], "{mode}: the manifest and the layer");
        let token = admin_token(&proxy).await;
        let groups = admin_json(&proxy, &token, "/api/v1/groups").await;
        let default =
            groups["groups"].as_array().unwrap().iter().find(|group| group["group"] == "default").unwrap();
        assert_eq!(default["upstreams"], serde_json::json!(["internal", "hub"]), "{default}");
        assert_eq!(default["upstream"], "internal, hub");
        assert_eq!(default["by_upstream"][0]["upstream"], "hub", "{default}");
        assert_eq!(default["by_upstream"][0]["objects"], 2, "{default}");

        // Past the recheck window the tag is checked at `hub`, never at `internal` first.
        internal.clear_log();
        hub.clear_log();
        clock.advance(Duration::from_secs(301));
        let again = get(&format!("{}/v2/lab/app/manifests/v1", proxy.url)).await;
        assert_eq!(again.status(), StatusCode::OK);
        assert!(again.headers().get("warning").is_none());
        assert_eq!(hub.count("HEAD", "/manifests/v1"), 1, "{mode}: {:?}", hub.log());
        assert!(internal.log().is_empty(), "{mode}: {:?}", internal.log());
    }
}

#[tokio::test]
async fn an_upstream_that_fails_is_moved_past_and_counted_against_its_health() {
    let (internal, hub) = (FakeRegistry::start().await, FakeRegistry::start().await);
    let proxy = TestProxy::start(Options::toml(&config(&internal, &hub))).await;
    let token = admin_token(&proxy).await;
    let host = internal.address().to_string();
    let faults = [
        ("503", Fault::Status { status: 503, retry_after: None }),
        ("429", Fault::Status { status: 429, retry_after: Some("30".into()) }),
        ("timeout", Fault::Hang),
    ];
    for (counted, (name, fault)) in faults.into_iter().enumerate() {
        let bytes = format!("a layer both have ({name})").into_bytes();
        let digest = internal.put_blob(bytes.clone());
        hub.put_blob(bytes.clone());
        internal.set_fault(Some(fault));
        let response = get(&format!("{}/v2/lab/app/blobs/{digest}", proxy.url)).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice(), "{name}");
        proxy.fills_settled().await;
        assert_eq!(hub.count("GET", &format!("/blobs/{digest}")), 1, "{name}: the next upstream served");
        proxy
            .wait_for_metric(&format!(
                "depproxy_upstream_failovers_total{{upstream=\"{host}\"}} {}",
                counted + 1
            ))
            .await;
        let upstreams = admin_json(&proxy, &token, "/api/v1/upstreams").await;
        let seen =
            upstreams.as_array().unwrap().iter().find(|upstream| upstream["name"] == "internal").unwrap();
        assert_eq!(seen["failovers"], counted + 1, "{name}: {seen}");
        let stats = proxy.lifecycle.stats(Some("default")).await.unwrap();
        assert!(stats.groups[0].by_upstream.iter().any(|share| share.upstream == "hub"), "{name}");
    }
    let upstreams = admin_json(&proxy, &token, "/api/v1/upstreams").await;
    let hub_seen = upstreams.as_array().unwrap().iter().find(|upstream| upstream["name"] == "hub").unwrap();
    assert_eq!(hub_seen["failovers"], 0, "{hub_seen}");

    // When every upstream fails, the client hears of the outage, not of the other's 404.
    internal.set_fault(Some(Fault::Status { status: 503, retry_after: None }));
    let only_internal = internal.put_blob(b"hub has none of this".to_vec());
    let response = get(&format!("{}/v2/lab/app/blobs/{only_internal}", proxy.url)).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    // A 404 from each: the client's 404.
    internal.set_fault(None);
    let nowhere = oci::Digest::of(b"nowhere");
    let response = get(&format!("{}/v2/lab/app/blobs/{nowhere}", proxy.url)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "BLOB_UNKNOWN");
}
