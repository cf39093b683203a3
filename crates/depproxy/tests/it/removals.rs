//! What leaves the cache leaves every node's memory of it before its bytes go: after a purge (the
//! lifecycle's, the admin API's, or `depproxy cache purge` run by another process while `serve`
//! runs) and after an eviction, the next pull is a miss for what went — never a hit on an object
//! that is no longer there ("stored object unreadable"). A hit whose object cannot be read anyway
//! (a file deleted by hand) is logged and counted as the miss it turns into.

use std::time::Duration;

use crate::support::logs::{Captured, Logged};
use crate::support::processes::{Depproxy, free_port, run};
use crate::support::{Options, TestProxy, body_digest, client, pattern};
use http::StatusCode;
use lifecycle::PurgeRequest;
use testkit::FakeRegistry;

const KIB: usize = 1 << 10;

/// Warnings that a stored object could not be read (the control plane's and the gateway's).
fn unreadable_warnings(events: &[Logged]) -> Vec<String> {
    events
        .iter()
        .filter(|event| event.level == tracing::Level::WARN)
        .filter(|event| event.fields.get("message").is_some_and(|message| message.contains("unreadable")))
        .map(|event| format!("{}: {:?}", event.target, event.fields))
        .collect()
}

/// The access log's decisions, by reference.
fn decisions(events: &[Logged]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|event| event.target == "depproxy::access")
        .map(|event| (event.fields["reference"].clone(), event.fields["decision"].clone()))
        .collect()
}

/// Pulls `image:tag` as a client does: the manifest by tag, then its config and layers, each
/// checked against its digest. Returns the digests of the config and layers.
async fn pull(url: &str, image: &str, tag: &str) -> Vec<oci::Digest> {
    let manifest = client()
        .get(format!("{url}/v2/{image}/manifests/{tag}"))
        .header("accept", oci::media::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), StatusCode::OK, "{image}:{tag}");
    let manifest: serde_json::Value = manifest.json().await.unwrap();
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().parse::<oci::Digest>().unwrap()];
    for layer in manifest["layers"].as_array().unwrap() {
        blobs.push(layer["digest"].as_str().unwrap().parse().unwrap());
    }
    for digest in &blobs {
        let response = client().get(format!("{url}/v2/{image}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{image}@{digest}");
        assert_eq!(&body_digest(response).await.unwrap().0, digest);
    }
    blobs
}

/// `depproxy_unreadable_hits_total` of a proxy.
async fn unreadable_hits(proxy: &TestProxy) -> String {
    let metrics = proxy.metrics().await;
    metrics.lines().find(|line| line.starts_with("depproxy_unreadable_hits_total")).unwrap().to_owned()
}

/// An image with small objects (served from memory once read) and a large layer (streamed from
/// storage).
fn put_layers_image(upstream: &FakeRegistry, image: &str, seed: u64) {
    upstream.put_image(image, "v1", &[&pattern(4 * KIB, seed), &pattern(300 * KIB, seed + 1)]);
}

async fn admin_token(proxy: &TestProxy) -> String {
    let metadata = metadata::Metadata::connect(&proxy.config.database_url).await.unwrap();
    let created =
        access::create_token(&metadata, &cache::Clock::system(), "ops", vec![], true, None).await.unwrap();
    proxy.access.tokens().reload().await.unwrap();
    created.secret
}

/// Purges `image` through the admin API and waits for the job to end.
async fn purge_through_admin_api(admin_url: &str, token: &str, image: &str) {
    let accepted = client()
        .delete(format!("{admin_url}/api/v1/groups/default/cache?image={image}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let location = accepted.headers()["location"].to_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job: serde_json::Value = client()
            .get(format!("{admin_url}{location}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["state"] != "running" {
            assert_eq!(job["state"], "done", "{job}");
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pull, purge (through the lifecycle, then through the admin API), pull again: every object of
/// the purged image is a miss fetched again — no hit on a deleted object, no unreadable warning, no
/// hit counted in the statistics — and the tag is recorded again.
#[tokio::test]
async fn a_pull_after_a_purge_is_all_misses_and_no_stored_object_is_unreadable() {
    let (captured, _guard) = Captured::start();
    let upstream = FakeRegistry::start().await;
    put_layers_image(&upstream, "lab/layers", 1);
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let admin_url = proxy.admin_url.clone();
    let token = admin_token(&proxy).await;
    let request = PurgeRequest {
        group: oci::GroupPath::parse("default").unwrap(),
        image: Some(oci::RepositoryName::parse("lab/layers").unwrap()),
        package: None,
        older_than: None,
    };

    for (round, through) in ["the lifecycle", "the admin API"].into_iter().enumerate() {
        // Cached, then read as hits: the control plane remembers the rows, and the gateway the
        // small objects. (Flushed before the hits: a control plane that had not read the removal
        // generation yet would forget everything at that first check.)
        let blobs = pull(&proxy.url, "lab/layers", "v1").await;
        proxy.fills_settled().await;
        proxy.cache.flush_reads().await.unwrap();
        pull(&proxy.url, "lab/layers", "v1").await;
        proxy.cache.flush_reads().await.unwrap();
        let before = proxy.lifecycle.stats(Some("default")).await.unwrap().groups[0].last_24h;
        let (config, small_layer) = (&blobs[0], &blobs[1]);
        assert!(proxy.gateway.holds_in_memory(config) && proxy.gateway.holds_in_memory(small_layer));

        match round {
            0 => {
                let job = proxy.lifecycle.create_purge_job(&request).await.unwrap();
                proxy.lifecycle.run_purge(&request, &job, |_, _| {}).await.unwrap();
            }
            _ => purge_through_admin_api(&admin_url, &token, "lab/layers").await,
        }
        for digest in &blobs {
            assert!(!proxy.has_object(digest), "{through}: purged from storage");
            assert!(!proxy.gateway.holds_in_memory(digest), "{through}: dropped from memory");
        }

        captured.take();
        upstream.clear_log();
        pull(&proxy.url, "lab/layers", "v1").await;
        proxy.fills_settled().await;
        let events = captured.take();
        assert_eq!(unreadable_warnings(&events), Vec::<String>::new(), "after a purge through {through}");
        let decided = decisions(&events);
        assert_eq!(decided.len(), 1 + blobs.len(), "{decided:?}");
        assert!(decided.iter().all(|(_, decision)| decision == "miss"), "{through}: {decided:?}");
        assert_eq!(upstream.count("GET", "/manifests/v1"), 1, "{through}: the tag is fetched again");
        for digest in &blobs {
            assert_eq!(upstream.count("GET", &format!("/blobs/{digest}")), 1, "{through}: {digest}");
        }

        proxy.cache.flush_reads().await.unwrap();
        let stats = proxy.lifecycle.stats(Some("default")).await.unwrap();
        let after = stats.groups[0].last_24h;
        assert_eq!(after.hits, before.hits, "{through}: no hit counted for what was fetched again");
        assert_eq!(after.misses, before.misses + 1 + blobs.len() as u64, "{through}");
        assert_eq!(stats.groups[0].tags, 1, "{through}: the tag is recorded again");
        assert_eq!(stats.groups[0].blobs, blobs.len() as u64, "{through}");
    }
    assert_eq!(unreadable_hits(&proxy).await, "depproxy_unreadable_hits_total 0");
}

/// Rows removed by another process (no word to this one's gateway): once the control plane has
/// noticed, a pull is all misses, and the gateway, told to fill objects it keeps in memory, drops
/// them from memory — it serves them again from what the fills store.
#[tokio::test]
async fn a_gateway_told_to_fill_an_object_drops_it_from_memory() {
    let upstream = FakeRegistry::start().await;
    put_layers_image(&upstream, "lab/layers", 7);
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let blobs = pull(&proxy.url, "lab/layers", "v1").await;
    proxy.fills_settled().await;
    pull(&proxy.url, "lab/layers", "v1").await;
    let (config, small_layer) = (&blobs[0], &blobs[1]);
    assert!(proxy.gateway.holds_in_memory(config) && proxy.gateway.holds_in_memory(small_layer));

    let metadata = proxy.cache.metadata();
    let group = oci::GroupPath::parse("default").unwrap();
    let rows = metadata.objects_by_read(&group, None, &None, 10).await.unwrap();
    assert_eq!(metadata.remove_objects(&rows, 0).await.unwrap().objects, 4);
    proxy.cache.notice_removals().await.unwrap();
    assert!(proxy.gateway.holds_in_memory(config), "another process's removal: memory not told");

    upstream.clear_log();
    pull(&proxy.url, "lab/layers", "v1").await;
    proxy.fills_settled().await;
    assert_eq!(upstream.count("GET", &format!("/blobs/{config}")), 1, "a miss");
    assert!(!proxy.gateway.holds_in_memory(config), "dropped when told to fill it");
    assert!(!proxy.gateway.holds_in_memory(small_layer), "dropped when told to fill it");
    pull(&proxy.url, "lab/layers", "v1").await;
    assert!(proxy.gateway.holds_in_memory(config), "a hit loads it again");
}

/// A store quota smaller than three images, pulled round after round (each a minute later on the
/// control plane's clock, so quotas may evict what came before) with purges in between: every
/// eviction and purge reaches the catalog and the small-object memory at once, so an evicted
/// image's next pull is all misses and no stored object is ever unreadable.
#[tokio::test]
async fn evictions_and_purges_round_after_round_never_leave_a_hit_on_a_deleted_object() {
    let (captured, _guard) = Captured::start();
    let upstream = FakeRegistry::start().await;
    let images: Vec<String> = (0..4).map(|n| format!("lab/app{n}")).collect();
    for (n, image) in images.iter().enumerate() {
        put_layers_image(&upstream, image, 10 * n as u64);
    }
    let clock = cache::Clock::manual(1_800_000_000_000);
    // Each image is ~310 KiB: the quota holds two, so every other pull evicts.
    let config = "[cache]\nmax_size = \"700KiB\"\nsweep_interval = \"1h\"\n";
    let proxy =
        TestProxy::start(Options::toml(config).with_upstream(&upstream.url()).clock(clock.clone())).await;
    let (mut misses, mut evictions) = (0, 0);
    for round in 0..12 {
        let image = &images[round % images.len()];
        captured.take();
        let config = pull(&proxy.url, image, "v1").await.remove(0);
        proxy.settled().await;
        let events = captured.take();
        assert_eq!(unreadable_warnings(&events), Vec::<String>::new(), "round {round} ({image})");
        // The images share their config blob (read every round); the rest is each image's own,
        // evicted since its last pull.
        let own: Vec<(String, String)> = decisions(&events)
            .into_iter()
            .filter(|(reference, _)| *reference != config.to_string())
            .collect();
        assert_eq!(own.len(), 3, "{own:?}");
        assert!(own.iter().all(|(_, decision)| decision == "miss"), "round {round} ({image}): {own:?}");
        misses += own.len();
        if round % 5 == 4 {
            let request = PurgeRequest {
                group: oci::GroupPath::parse("default").unwrap(),
                image: None,
                package: None,
                older_than: None,
            };
            let job = proxy.lifecycle.create_purge_job(&request).await.unwrap();
            proxy.lifecycle.run_purge(&request, &job, |_, _| {}).await.unwrap();
        }
        clock.advance(Duration::from_secs(61));
        let metrics = proxy.metrics().await;
        evictions = metrics
            .lines()
            .find_map(|line| line.strip_prefix("depproxy_evicted_objects_total{reason=\"quota\"} "))
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert!(evictions >= 10, "the quota evicted as it went: {evictions}");
    assert_eq!(misses, 12 * 3, "every pull fetched its image again");
    assert_eq!(unreadable_hits(&proxy).await, "depproxy_unreadable_hits_total 0");
}

/// Files deleted by hand (a layer, and the manifest a tag names): each hit on them turns into a
/// refetch, which the access log, the decision metric and the group's statistics count as the miss
/// it is — not as a hit — and the manifest asked for by tag is recorded under the tag again.
#[tokio::test]
async fn a_hit_on_an_object_deleted_by_hand_is_logged_and_counted_as_a_miss() {
    let (captured, _guard) = Captured::start();
    let upstream = FakeRegistry::start().await;
    put_layers_image(&upstream, "lab/layers", 3);
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let blobs = pull(&proxy.url, "lab/layers", "v1").await;
    proxy.fills_settled().await;
    proxy.cache.flush_reads().await.unwrap();
    let before = proxy.lifecycle.stats(Some("default")).await.unwrap().groups[0].last_24h;
    let manifest_url = format!("{}/v2/lab/layers/manifests/v1", proxy.url);
    let head = client().head(&manifest_url).header("accept", oci::media::OCI_MANIFEST).send().await.unwrap();
    let manifest: oci::Digest = head.headers()[oci::CONTENT_DIGEST_HEADER].to_str().unwrap().parse().unwrap();
    let large = blobs.last().unwrap();
    for digest in [large, &manifest] {
        std::fs::remove_file(proxy.data_dir.path().join(injector::storage_key(digest))).unwrap();
    }
    let tag_checked = proxy.cache.metadata().find_manifest(&tag_key()).await.unwrap().unwrap().checked_at;

    captured.take();
    upstream.clear_log();
    let response =
        client().get(&manifest_url).header("accept", oci::media::OCI_MANIFEST).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_digest(response).await.unwrap().0, manifest);
    let response = client().get(format!("{}/v2/lab/layers/blobs/{large}", proxy.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&body_digest(response).await.unwrap().0, large);
    proxy.fills_settled().await;
    assert!(proxy.has_object(large) && proxy.has_object(&manifest), "stored again");
    assert_eq!(upstream.count("GET", &format!("/blobs/{large}")), 1);
    assert_eq!(upstream.count("GET", &format!("/manifests/{manifest}")), 1);
    let events = captured.take();
    let control_warnings = unreadable_warnings(&events)
        .into_iter()
        .filter(|warning| warning.contains("stored object unreadable; fetching it again"))
        .count();
    assert_eq!(control_warnings, 2, "{:?}", unreadable_warnings(&events));
    assert_eq!(
        decisions(&events),
        vec![("v1".to_owned(), "miss".to_owned()), (large.to_string(), "miss".to_owned())]
    );
    let tag = proxy.cache.metadata().find_manifest(&tag_key()).await.unwrap().unwrap();
    assert_eq!(tag.digest, manifest);
    assert!(tag.checked_at > tag_checked, "the tag is recorded again by the refetch");

    proxy.cache.flush_reads().await.unwrap();
    let after = proxy.lifecycle.stats(Some("default")).await.unwrap().groups[0].last_24h;
    // The HEAD before the deletions was the only hit.
    assert_eq!(after.hits, before.hits + 1, "no hit for what was fetched again: {after:?}");
    assert_eq!(after.bytes_served, before.bytes_served, "{after:?}");
    assert_eq!(after.misses, before.misses + 2);
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("depproxy_gateway_responses_total{decision=\"hit\"} 1"), "{metrics}");
    assert!(metrics.contains("depproxy_unreadable_hits_total 2"), "{metrics}");
}

/// The tag row of `lab/layers:v1` in group `default`.
fn tag_key() -> metadata::ManifestKey {
    metadata::ManifestKey {
        group: oci::GroupPath::parse("default").unwrap(),
        image: oci::RepositoryName::parse("lab/layers").unwrap(),
        reference: oci::Reference::parse("v1").unwrap(),
    }
}

/// `depproxy cache purge` in another process while `depproxy serve` runs and is pulled from, all
/// along: the server forgets the purged rows before their objects go, so not one of its pulls
/// hits an unreadable object, and once the purge is done the image is fetched again.
#[tokio::test]
async fn a_cache_purge_from_another_process_reaches_a_running_serve_before_the_objects_go() {
    let upstream = FakeRegistry::start().await;
    put_layers_image(&upstream, "lab/layers", 5);
    let config = format!(
        "admin_listen = \"127.0.0.1:{}\"\n[[upstream]]\nname = \"lab\"\nurl = \"{}\"\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n[cache]\nsweep_interval = \"1h\"\n",
        free_port(),
        upstream.url()
    );
    let serve = Depproxy::serve_with_config(&config);
    let url = serve.url();
    let config_file = serve.data_dir.path().join("depproxy.toml");
    let blobs = pull(&url, "lab/layers", "v1").await;
    pull(&url, "lab/layers", "v1").await;
    let stored = |digest: &oci::Digest| serve.data_dir.path().join(injector::storage_key(digest)).exists();
    // The fills are detached from the clients: wait for their objects to be stored.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !blobs.iter().all(stored) {
        assert!(tokio::time::Instant::now() < deadline, "objects not stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    upstream.clear_log();
    let mut purge = std::process::Command::new(Depproxy::binary())
        .args(["cache", "purge", "--group", "default", "--image", "lab/layers", "--config"])
        .arg(&config_file)
        .arg("--data-dir")
        .arg(serve.data_dir.path())
        .env_remove("LD_LIBRARY_PATH")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Pulls while the purge removes rows, waits for the server to forget them, and deletes the
    // objects (those the server has not stored again meanwhile).
    let mut pulls_during = 0;
    while purge.try_wait().unwrap().is_none() {
        pull(&url, "lab/layers", "v1").await;
        pulls_during += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = purge.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("removed 4 objects"), "{summary}");
    pull(&url, "lab/layers", "v1").await;
    let log = std::fs::read_to_string(serve.data_dir.path().join("serve.log")).unwrap();
    let unreadable: Vec<&str> = log.lines().filter(|line| line.contains("unreadable")).collect();
    assert!(unreadable.is_empty(), "{unreadable:#?}");

    assert!(
        pulls_during >= 3,
        "the purge waits for running servers to forget its rows: {pulls_during} pulls"
    );
    // The server noticed the purge while it ran: its pulls since fetched everything again.
    assert!(upstream.count("GET", "/manifests/v1") >= 1, "the purged tag is fetched again");
    for digest in &blobs {
        assert!(upstream.count("GET", &format!("/blobs/{digest}")) >= 1, "{digest} is fetched again");
    }

    let stats = run(std::process::Command::new(Depproxy::binary())
        .args(["cache", "stats", "--json", "--config"])
        .arg(&config_file)
        .arg("--data-dir")
        .arg(serve.data_dir.path()));
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["groups"][0]["tags"], 1, "the tag is recorded again: {stats}");
}
