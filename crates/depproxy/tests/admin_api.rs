//! The admin API on its own listener: only admin access tokens get in (401 without one, 403 for a
//! pull token, the failure limit applies), statistics per group, and a purge answered `202` with a
//! job whose progress can be read, after which the next pull fetches the image again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::StatusCode;
use metadata::{Clock, Metadata};
use oci::GroupPath;
use support::{Options, TestProxy, body_digest, client, pattern, spawn_server};
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
    let admin_url = spawn_server(proxy.admin.clone()).await;
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

    let stats: serde_json::Value =
        client().get(&groups).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    let default =
        stats["groups"].as_array().unwrap().iter().find(|group| group["group"] == "default").unwrap();
    assert_eq!(default["blobs"], 1, "{stats}");
    assert!(stats["physical_bytes"].as_u64().unwrap() >= MIB as u64);

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
    let admin_url = spawn_server(proxy.admin.clone()).await;
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
