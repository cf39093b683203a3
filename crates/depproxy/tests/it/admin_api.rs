//! The admin API on its own listener: only admin access tokens get in (401 without one, 403 for a
//! pull token, the failure limit applies), statistics per group, and a purge answered `202` with a
//! job whose progress can be read, after which the next pull fetches the image again.

use std::time::Duration;

use crate::support::{Options, TestProxy, body_digest, client, pattern};
use http::StatusCode;
use metadata::{Clock, Metadata};
use oci::GroupPath;
use testkit::FakeRegistry;

const MIB: usize = 1 << 20;

async fn token(proxy: &TestProxy, name: &str, admin: bool) -> String {
    let metadata = Metadata::connect(&proxy.config.database_url).await.unwrap();
    let groups = if admin { vec![] } else { vec![GroupPath::parse("default").unwrap()] };
    let created = access::create_token(&metadata, &Clock::system(), name, groups, admin, None).await.unwrap();
    proxy.access.tokens().reload().await.unwrap();
    created.secret
}

#[tokio::test]
async fn only_admin_tokens_get_in_and_a_purge_is_a_job_whose_end_the_next_pull_sees() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let admin_url = proxy.admin_url.clone();
    let admin = token(&proxy, "ops", true).await;
    let puller = token(&proxy, "ci", false).await;
    let (_, layers) = upstream.put_image("lab/app", "v1", &[&pattern(MIB, 9)]);
    let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    let manifest = client().get(format!("{}/v2/lab/app/manifests/v1", proxy.url)).send().await.unwrap();
    assert_eq!(manifest.status(), StatusCode::OK);
    manifest.bytes().await.unwrap();
    body_digest(client().get(&blob_url).send().await.unwrap()).await.unwrap();
    proxy.fills_settled().await;

    let groups = format!("{admin_url}/api/v1/groups");
    let anonymous = client().get(&groups).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    let wrong = client().get(&groups).bearer_auth("dpp_0000000000000000_nope").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let pull_only = client().get(&groups).bearer_auth(&puller).send().await.unwrap();
    assert_eq!(pull_only.status(), StatusCode::FORBIDDEN);

    proxy.cache.flush_reads().await.unwrap();
    let stats: serde_json::Value =
        client().get(&groups).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    let default =
        stats["groups"].as_array().unwrap().iter().find(|group| group["group"] == "default").unwrap();
    assert_eq!(default["blobs"], 1, "{stats}");
    assert!(stats["physical_bytes"].as_u64().unwrap() >= MIB as u64);
    // Every format's words, the old names beside them; the last 24 hours hour by hour.
    assert_eq!(default["format"], "oci", "{stats}");
    assert_eq!((&default["artifacts"], &default["documents"]), (&default["blobs"], &default["manifests"]));
    assert_eq!((default["artifacts"].as_u64(), default["documents"].as_u64()), (Some(1), Some(1)), "{stats}");
    let hourly = default["hourly"].as_array().unwrap();
    assert_eq!(hourly.len(), 24, "{stats}");
    let hours: Vec<u64> = hourly.iter().map(|hour| hour["hour"].as_u64().unwrap()).collect();
    assert!(
        hours.windows(2).all(|pair| pair[1] == pair[0] + 3_600_000),
        "oldest first, an hour apart: {hours:?}"
    );
    let misses: u64 = hourly.iter().map(|hour| hour["misses"].as_u64().unwrap()).sum();
    assert_eq!(misses, default["last_24h"]["misses"].as_u64().unwrap(), "{stats}");
    assert!(misses >= 2, "the manifest and the layer: {stats}");

    // Bad requests are refused with what is wrong.
    let purge = |query: &str| {
        client().delete(format!("{admin_url}/api/v1/groups/default/cache{query}")).bearer_auth(&admin).send()
    };
    assert_eq!(purge("?older_than=soon").await.unwrap().status(), StatusCode::BAD_REQUEST);
    let unknown = client().delete(format!("{admin_url}/api/v1/groups/nope/cache")).bearer_auth(&admin).send();
    assert_eq!(unknown.await.unwrap().status(), StatusCode::NOT_FOUND);

    // A purge: 202, a job to poll, then the next pull fetches again.
    let accepted = purge("?image=lab/app").await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let location = accepted.headers()["location"].to_str().unwrap().to_owned();
    let answer: serde_json::Value = accepted.json().await.unwrap();
    assert_eq!(answer["status"], location);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job: serde_json::Value = client()
            .get(format!("{admin_url}{location}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["state"] != "running" {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        (job["done"].as_u64(), job["total"].as_u64()),
        (Some(2), Some(2)),
        "manifest and layer: {job}"
    );
    assert!(!proxy.has_object(&layers[0]));
    upstream.clear_log();
    body_digest(client().get(&blob_url).send().await.unwrap()).await.unwrap();
    assert_eq!(upstream.count("GET", &format!("/blobs/{}", layers[0])), 1);
    let missing =
        client().get(format!("{admin_url}/api/v1/jobs/nope")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// `POST /api/v1/sweep` starts a sweep in the running sweeper at once (not at its next tick):
/// an image past its TTL on the manual clock is gone once `GET /api/v1/sweep` counts the sweep.
#[tokio::test]
async fn an_admin_asks_for_a_sweep_and_sees_it_done() {
    let upstream = FakeRegistry::start().await;
    let clock = cache::Clock::manual(1_800_000_000_000);
    let config = "[[upstream]]\nname = \"up\"\nurl = \"UP\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\nttl = \"1d\"\n[cache]\nsweep_interval = \"1h\"\n"
        .replace("UP", &upstream.url());
    let proxy = TestProxy::start(Options::toml(&config).clock(clock.clone())).await;
    let admin_url = proxy.admin_url.clone();
    let admin = token(&proxy, "ops", true).await;
    let (_, layers) = upstream.put_image("lab/app", "v1", &[&pattern(MIB, 3)]);
    let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    body_digest(client().get(&blob_url).send().await.unwrap()).await.unwrap();
    proxy.fills_settled().await;
    proxy.settled().await;
    clock.advance(Duration::from_secs(2 * 86_400));

    let sweep = format!("{admin_url}/api/v1/sweep");
    assert_eq!(client().post(&sweep).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let accepted = client().post(&sweep).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let before: serde_json::Value = accepted.json().await.unwrap();
    let before = before["completed"].as_u64().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value =
            client().get(&sweep).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
        if status["completed"].as_u64().unwrap() > before && status["running"] == false {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!proxy.has_object(&layers[0]), "not read for 2 days with a 1-day TTL: swept");
}

/// The sweeper's line is fields, not Rust's debug format, and only when a sweep did something: an
/// idle sweep every `sweep_interval` is no line at info.
#[tokio::test]
async fn the_sweeper_logs_fields_and_only_when_it_did_something() {
    let log = crate::support::LogCapture::install();
    let upstream = FakeRegistry::start().await;
    let clock = cache::Clock::manual(1_800_000_000_000);
    let config = "[[upstream]]\nname = \"up\"\nurl = \"UP\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\nttl = \"1d\"\n[cache]\nsweep_interval = \"1h\"\n"
        .replace("UP", &upstream.url());
    let proxy = TestProxy::start(Options::toml(&config).clock(clock.clone())).await;
    let (_, layers) = upstream.put_image("lab/app", "v1", &[&pattern(MIB, 3)]);
    let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    body_digest(client().get(&blob_url).send().await.unwrap()).await.unwrap();
    proxy.fills_settled().await;
    proxy.settled().await;
    let sweeps = || log.lines().into_iter().filter(|line| line.contains("sweep")).collect::<Vec<_>>();

    proxy.lifecycle.sweep_soon();
    proxy.settled().await;
    assert!(proxy.lifecycle.sweeper_status().completed >= 2, "the start-up sweep and this one ran");
    assert_eq!(sweeps(), Vec::<String>::new(), "sweeps that removed nothing say nothing at info");

    clock.advance(Duration::from_secs(2 * 86_400));
    proxy.lifecycle.sweep_soon();
    proxy.settled().await;
    assert!(!proxy.has_object(&layers[0]), "not read for 2 days with a 1-day TTL: swept");
    let lines = sweeps();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert!(line.contains(" INFO ") && line.contains("sweep done"), "{line}");
    assert!(line.contains(&format!(" ttl_objects=1 ttl_bytes={MIB}")), "{line}");
    assert!(line.contains(" deleted_objects=1 "), "{line}");
    assert!(!line.contains('{') && !line.contains("=0"), "fields, and only those that are not zero: {line}");
}

/// Events the proxy logs reach `GET /api/v1/events` through the layer `depproxy serve` installs.
fn record_events() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry().with(telemetry::events::EventsLayer).try_init();
}

async fn get_json(url: &str, token: &str) -> serde_json::Value {
    let response = client().get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.json().await.unwrap()
}

/// Polls `url` until `done` holds for its JSON (the fill runs in its own task: no event to wait on
/// from outside the process but its progress).
async fn wait_json(url: &str, token: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let value = get_json(url, token).await;
        if done(&value) {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{url}: {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_operator_view_groups_upstreams_fills_events_tokens_and_the_openapi_document() {
    record_events();
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let admin_url = proxy.admin_url.clone();
    let admin = token(&proxy, "ops", true).await;
    let puller = token(&proxy, "ci", false).await;
    let (_, layers) = upstream.put_image("lab/app", "v1", &[&pattern(MIB, 4)]);
    for _ in 0..2 {
        let manifest = client().get(format!("{}/v2/lab/app/manifests/v1", proxy.url)).send().await.unwrap();
        assert_eq!(manifest.status(), StatusCode::OK);
        manifest.bytes().await.unwrap();
        proxy.fills_settled().await;
    }
    proxy.settled().await;
    proxy.cache.flush_reads().await.unwrap();

    for route in ["groups", "upstreams", "fills", "events", "tokens"] {
        let url = format!("{admin_url}/api/v1/{route}");
        assert_eq!(client().get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{route}");
        let pull_only = client().get(&url).bearer_auth(&puller).send().await.unwrap();
        assert_eq!(pull_only.status(), StatusCode::FORBIDDEN, "{route}");
    }

    let groups = get_json(&format!("{admin_url}/api/v1/groups"), &admin).await;
    let default =
        groups["groups"].as_array().unwrap().iter().find(|group| group["group"] == "default").unwrap();
    assert_eq!(default["access"], "anonymous", "{default}");
    assert_eq!(default["upstream"], proxy.config.upstreams[0].name.as_str());
    assert_eq!(
        (default["last_24h"]["hits"].as_u64(), default["last_24h"]["misses"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(default["last_24h"]["hit_ratio"], 0.5);
    assert_eq!(default["last_1h"]["hits"], 1);

    let upstreams = get_json(&format!("{admin_url}/api/v1/upstreams"), &admin).await;
    let host = upstream.url().trim_start_matches("http://").to_owned();
    let lab = upstreams.as_array().unwrap().iter().find(|entry| entry["host"] == host.as_str()).unwrap();
    assert_eq!(lab["reachable"], true, "{lab}");
    assert!(lab["latency_ms"].as_f64().is_some(), "{lab}");

    // A fill held by the upstream after 100 kB shows with its progress, and is gone once done.
    let gate = testkit::Gate::new(100_000);
    upstream.set_gate(Some(gate.clone()));
    let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    let pull = tokio::spawn(async move { body_digest(client().get(&blob_url).send().await.unwrap()).await });
    let fills_url = format!("{admin_url}/api/v1/fills");
    let fills = wait_json(&fills_url, &admin, |fills| fills[0]["bytes_done"].as_u64() >= Some(100_000)).await;
    assert_eq!(fills[0]["phase"], "streaming", "{fills}");
    assert_eq!(fills[0]["kind"], "blob");
    assert_eq!(fills[0]["object"], format!("lab/app@{}", layers[0]).as_str());
    assert_eq!(fills[0]["bytes_total"], MIB as u64);
    assert_eq!(fills[0]["clients"], 1);
    assert_eq!(fills[0]["node"], proxy.config.node_id.as_str());
    gate.open();
    upstream.set_gate(None);
    pull.await.unwrap().unwrap();
    proxy.fills_settled().await;
    assert_eq!(get_json(&fills_url, &admin).await, serde_json::json!([]));

    // A failed fill is an event.
    let (_, broken) = upstream.put_image("lab/broken", "v1", &[&pattern(MIB, 5)]);
    upstream.set_fault_for(&broken[0], Some(testkit::Fault::Status { status: 500, retry_after: None }));
    let failed =
        client().get(format!("{}/v2/lab/broken/blobs/{}", proxy.url, broken[0])).send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    proxy.fills_settled().await;
    let events = get_json(&format!("{admin_url}/api/v1/events?limit=5"), &admin).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["kind"] == "warning"
                && event["message"].as_str().unwrap().contains("fill failed")),
        "{events}"
    );

    // Tokens: created (the secret once), listed without it, revoked.
    let tokens_url = format!("{admin_url}/api/v1/tokens");
    let bad = client().post(&tokens_url).bearer_auth(&admin).json(&serde_json::json!({"name": "x y"})).send();
    assert_eq!(bad.await.unwrap().status(), StatusCode::BAD_REQUEST);
    let created = client()
        .post(&tokens_url)
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "deploy", "groups": ["default"], "expires_in": "30d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: serde_json::Value = created.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("dpp_"));
    assert!(created["token"]["expires_at"].as_i64().is_some());
    let listed = get_json(&tokens_url, &admin).await;
    assert!(!listed.to_string().contains(&secret), "a secret in the list");
    let deploy = listed.as_array().unwrap().iter().find(|token| token["name"] == "deploy").unwrap();
    assert_eq!(deploy["status"], "active");
    assert_eq!(deploy["groups"], serde_json::json!(["default"]));
    let revoke = client().delete(format!("{tokens_url}/deploy")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(revoke.status(), StatusCode::OK);
    let again = client().delete(format!("{tokens_url}/deploy")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let listed = get_json(&tokens_url, &admin).await;
    let deploy = listed.as_array().unwrap().iter().find(|token| token["name"] == "deploy").unwrap();
    assert_eq!(deploy["status"], "revoked");

    // The OpenAPI document describes every route and the admin token scheme.
    let document: serde_json::Value =
        client().get(format!("{admin_url}/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    for path in [
        "/api/v1/groups",
        "/api/v1/upstreams",
        "/api/v1/fills",
        "/api/v1/events",
        "/api/v1/tokens",
        "/api/v1/tokens/{name}",
        "/api/v1/groups/{path}/cache",
        "/api/v1/jobs/{id}",
        "/api/v1/sweep",
        "/api/v1/verdicts/{digest}",
    ] {
        assert!(document["paths"][path].is_object(), "{path} missing from {document}");
    }
    assert_eq!(document["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");
}

/// `GET /v2/token` with a wrong password, as a client at `address` (through a trusted proxy).
async fn failed_login(proxy: &TestProxy, address: &str) -> StatusCode {
    let url = format!("{}/v2/token?service=depproxy&scope=repository:lab/app:pull", proxy.url);
    let response = client()
        .get(url)
        .basic_auth("ci", Some("dpp_0000000000000000_wrong"))
        .header("x-forwarded-for", address)
        .send()
        .await
        .unwrap();
    response.status()
}

#[tokio::test]
async fn failed_logins_are_one_row_of_denials_and_cannot_push_errors_out() {
    record_events();
    let upstream = FakeRegistry::start().await;
    let mut options = Options::upstream(&upstream.url());
    options.file.trusted_proxies = vec!["127.0.0.1".into()];
    let proxy = TestProxy::start(options).await;
    let admin_url = proxy.admin_url.clone();
    let admin = token(&proxy, "ops", true).await;

    // An error: a fill the upstream fails.
    let (_, broken) = upstream.put_image("lab/broken", "v1", &[&pattern(MIB, 5)]);
    upstream.set_fault_for(&broken[0], Some(testkit::Fault::Status { status: 500, retry_after: None }));
    let failed =
        client().get(format!("{}/v2/lab/broken/blobs/{}", proxy.url, broken[0])).send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    proxy.fills_settled().await;

    // 12 wrong passwords from one address: past the limit (10 a minute) they are answered 429.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(failed_login(&proxy, "10.0.0.7").await);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses[11], StatusCode::TOO_MANY_REQUESTS);
    let denials = get_json(&format!("{admin_url}/api/v1/events?kind=denied"), &admin).await;
    let rows: Vec<&serde_json::Value> =
        denials.as_array().unwrap().iter().filter(|row| row["client"] == "10.0.0.7").collect();
    assert_eq!(rows.len(), 1, "12 failed logins are one row: {denials:#}");
    let row = rows[0];
    assert_eq!((row["count"].as_u64(), row["kind"].as_str()), (Some(12), Some("denied")), "{row}");
    let summary = row["summary"].as_str().unwrap();
    assert!(summary.starts_with("12 × failed login from 10.0.0.7 within "), "{summary}");
    assert!(row["at"].as_u64() >= row["first_at"].as_u64(), "{row}");
    // The latest: refused unchecked, with the wait in whole seconds (not `764.130452ms`).
    let message = row["message"].as_str().unwrap();
    let wait = message.split("retry in ").nth(1).unwrap_or_else(|| panic!("{message}"));
    let seconds = wait.strip_suffix('s').unwrap_or_else(|| panic!("{message}"));
    assert!(seconds.parse::<u64>().is_ok_and(|seconds| (1..=60).contains(&seconds)), "{message}");
    let errors = get_json(&format!("{admin_url}/api/v1/events?kind=error,warning"), &admin).await;
    let errors = errors.as_array().unwrap();
    assert!(errors.iter().all(|event| event["kind"] != "denied"), "{errors:#?}");
    assert!(
        errors.iter().any(|event| event["message"].as_str().unwrap().contains("fill failed")),
        "{errors:#?}"
    );
    // Without `kind`, both, newest first, with the fields the API always had.
    let all = get_json(&format!("{admin_url}/api/v1/events?limit=1000"), &admin).await;
    let all = all.as_array().unwrap();
    assert!(
        all.iter().any(|event| event["kind"] == "denied")
            && all.iter().any(|event| event["kind"] != "denied")
    );
    for event in all {
        for field in ["at", "kind", "group", "image", "message"] {
            assert!(event.get(field).is_some(), "{field} missing from {event}");
        }
    }
    assert!(all.windows(2).all(|pair| pair[0]["at"].as_u64() >= pair[1]["at"].as_u64()), "newest first");
    let bad = client().get(format!("{admin_url}/api/v1/events?kind=oops")).bearer_auth(&admin).send().await;
    assert_eq!(bad.unwrap().status(), StatusCode::BAD_REQUEST);

    // The status page shows the denials apart, the 12 failed logins on one row.
    let login = client().post(format!("{admin_url}/login")).form(&[("token", admin.clone())]).send();
    let login = login.await.unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = client().get(format!("{admin_url}/")).header("cookie", &cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    let (errors_part, denials_part) = page.split_once("<h2>Recent denials</h2>").expect("a denials table");
    let errors_part = &errors_part[errors_part.find("<h2>Recent errors</h2>").unwrap()..];
    assert!(errors_part.contains("fill failed") && !errors_part.contains("failed login"), "{errors_part}");
    let denials_part = &denials_part[..denials_part.find("</section>").unwrap()];
    assert_eq!(denials_part.matches("failed login from 10.0.0.7").count(), 1, "{denials_part}");
    assert!(denials_part.contains("12 × failed login from 10.0.0.7 within"), "{denials_part}");

    // A flood of failed logins, each from an address of its own (no two are repeats), more than
    // the denials ring holds: the error is still there.
    for n in 0..(telemetry::events::CAPACITY + 100) {
        let address = format!("10.1.{}.{}", n / 256, n % 256);
        assert_eq!(failed_login(&proxy, &address).await, StatusCode::UNAUTHORIZED);
    }
    let denials = get_json(&format!("{admin_url}/api/v1/events?kind=denied&limit=1000"), &admin).await;
    assert_eq!(denials.as_array().unwrap().len(), telemetry::events::CAPACITY, "the denials ring is full");
    let errors = get_json(&format!("{admin_url}/api/v1/events?kind=error,warning"), &admin).await;
    assert!(
        errors
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["message"].as_str().unwrap().contains("fill failed")),
        "the flood pushed the error out: {errors:#}"
    );
}

#[tokio::test]
async fn in_split_mode_the_control_plane_shows_the_gateways_live_fills() {
    let upstream = FakeRegistry::start().await;
    let mut options = Options::upstream(&upstream.url());
    options.split = true;
    let proxy = TestProxy::start(options).await;
    let admin_url = proxy.admin_url.clone();
    let admin = token(&proxy, "ops", true).await;
    let (_, layers) = upstream.put_image("lab/app", "v1", &[&pattern(MIB, 6)]);
    let gate = testkit::Gate::new(100_000);
    upstream.set_gate(Some(gate.clone()));
    let blob_url = format!("{}/v2/lab/app/blobs/{}", proxy.url, layers[0]);
    let pull = tokio::spawn(async move { body_digest(client().get(&blob_url).send().await.unwrap()).await });
    // The gateway reports its fills every second over the signed channel.
    let fills_url = format!("{admin_url}/api/v1/fills");
    let fills = wait_json(&fills_url, &admin, |fills| fills[0]["bytes_done"].as_u64() >= Some(100_000)).await;
    assert_eq!(fills[0]["node"], proxy.config.node_id.as_str(), "{fills}");
    assert_eq!(fills[0]["object"], format!("lab/app@{}", layers[0]).as_str());
    gate.open();
    upstream.set_gate(None);
    pull.await.unwrap().unwrap();
    proxy.fills_settled().await;
    wait_json(&fills_url, &admin, |fills| fills.as_array().is_some_and(Vec::is_empty)).await;
}

/// The admin listener limits failed logins on its own: wrong admin logins do not lock registry
/// clients at the same address out, nor do wrong registry logins lock out operators; and a right
/// admin token is served even from an address past its quota.
#[tokio::test]
async fn the_admin_listener_limits_failed_logins_apart_from_registry_logins() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let admin_url = proxy.admin_url.clone();
    let admin = token(&proxy, "ops", true).await;
    let groups = format!("{admin_url}/api/v1/groups");
    let mut limited = 0;
    for attempt in 0..30 {
        let guess = format!("dpp_0123456789abcdef_guess{attempt}");
        match client().get(&groups).bearer_auth(guess).send().await.unwrap().status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    assert!(limited >= 15, "only {limited} of 30 wrong admin logins were limited");
    assert_eq!(client().get(&groups).bearer_auth(&admin).send().await.unwrap().status(), StatusCode::OK);
    // The same address's registry logins are counted apart: a wrong one is a plain 401.
    let registry_login = client()
        .get(format!("{}/v2/token?service=depproxy", proxy.url))
        .basic_auth("ci", Some("dpp_0123456789abcdef_wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(registry_login.status(), StatusCode::UNAUTHORIZED);
}
