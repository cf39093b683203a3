//! The cache in bounds, through real pulls: a store-wide quota held at every quiet moment while
//! three times its size is pulled (least recently read out first), TTL with the control plane's
//! clock, purges that the next pull heals, and reads tracked without touching the database on the
//! hit path.

use std::time::Duration;

use crate::support::{Options, TestProxy, body_digest, client, pattern};
use http::StatusCode;
use lifecycle::PurgeRequest;
use testkit::FakeRegistry;

const MIB: usize = 1 << 20;

async fn pull(proxy: &TestProxy, image: &str, tag: &str, layers: &[oci::Digest]) {
    let manifest = client()
        .get(format!("{}/v2/{image}/manifests/{tag}", proxy.url))
        .header("accept", oci::media::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), StatusCode::OK, "{image}:{tag}");
    manifest.bytes().await.unwrap();
    for layer in layers {
        let response = client().get(format!("{}/v2/{image}/blobs/{layer}", proxy.url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(&body_digest(response).await.unwrap().0, layer);
    }
}

/// Pulls 3× the store's quota, one image a minute (on the control plane's clock: a quota spares
/// what was recorded in the last minute); after each pull (fills and sweeps settled) the store is
/// within the quota plus the largest object, and what was read last is what stays.
#[tokio::test]
async fn a_store_quota_holds_while_three_times_its_size_is_pulled_and_lru_decides() {
    let upstream = FakeRegistry::start().await;
    let quota = 8 * MIB as u64;
    let config =
        "[cache]\nmax_size = \"8MiB\"\nhigh_watermark = 90\nlow_watermark = 70\nsweep_interval = \"1h\"\n";
    let clock = cache::Clock::manual(1_800_000_000_000);
    let proxy =
        TestProxy::start(Options::toml(config).with_upstream(&upstream.url()).clock(clock.clone())).await;
    let images: Vec<(String, Vec<oci::Digest>)> = (0..24u64)
        .map(|n| {
            let image = format!("lab/app{n}");
            let (_, layers) = upstream.put_image(&image, "v1", &[&pattern(MIB, 100 + n)]);
            (image, layers)
        })
        .collect();
    let mut trace = Vec::new();
    for (n, (image, layers)) in images.iter().enumerate() {
        clock.advance(Duration::from_secs(61));
        pull(&proxy, image, "v1", layers).await;
        if n == 20 {
            // Image 0 is read again (a hit): it becomes one of the most recently read.
            pull(&proxy, &images[0].0, "v1", &images[0].1).await;
            proxy.cache.flush_reads().await.unwrap();
        }
        proxy.settled().await;
        let stored = proxy.stored_bytes();
        trace.push(format!("after pull {:>2}: {:>8} bytes stored", n + 1, stored));
        assert!(stored <= quota + MIB as u64, "pull {}: {stored} bytes stored, quota {quota}", n + 1);
    }
    println!("quota trace (quota {quota} bytes, watermarks 90/70 %):\n{}", trace.join("\n"));
    let cached = |layers: &[oci::Digest]| proxy.has_object(&layers[0]);
    assert!(cached(&images[23].1) && cached(&images[22].1), "the latest pulls are cached");
    assert!(cached(&images[0].1), "image 0, read again at pull 21, is kept");
    assert!(!cached(&images[1].1) && !cached(&images[10].1), "the least recently read went");
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("depproxy_evicted_objects_total{reason=\"quota\"}"), "{metrics}");
    assert!(metrics.contains("depproxy_store_bytes"), "{metrics}");
}

#[tokio::test]
async fn ttl_follows_the_clock_and_an_expired_image_is_fetched_again_on_the_next_pull() {
    let upstream = FakeRegistry::start().await;
    let clock = cache::Clock::manual(1_800_000_000_000);
    let config = "[[upstream]]\nname = \"up\"\nurl = \"UP\"\n[[group]]\npath = \"default\"\nupstream = \"up\"\nttl = \"90d\"\n"
        .replace("UP", &upstream.url());
    let proxy = TestProxy::start(Options::toml(&config).clock(clock.clone())).await;
    let (_, kept_layers) = upstream.put_image("lab/kept", "v1", &[&pattern(MIB, 1)]);
    let (_, gone_layers) = upstream.put_image("lab/gone", "v1", &[&pattern(MIB, 2)]);
    pull(&proxy, "lab/kept", "v1", &kept_layers).await;
    pull(&proxy, "lab/gone", "v1", &gone_layers).await;
    proxy.fills_settled().await;
    clock.advance(Duration::from_secs(89 * 86_400));
    pull(&proxy, "lab/kept", "v1", &kept_layers).await;
    proxy.cache.flush_reads().await.unwrap();
    clock.advance(Duration::from_secs(2 * 86_400));
    let report = proxy.lifecycle.sweep().await.unwrap();
    assert!(report.ttl_objects >= 2, "{report:?}");
    assert!(proxy.has_object(&kept_layers[0]), "read at day 89: kept at day 91");
    assert!(!proxy.has_object(&gone_layers[0]), "not read for 91 days: gone");

    // The next pull fetches it again: a miss, never an error.
    proxy.cache.flush_reads().await.unwrap();
    upstream.clear_log();
    pull(&proxy, "lab/gone", "v1", &gone_layers).await;
    assert_eq!(upstream.count("GET", &format!("/blobs/{}", gone_layers[0])), 1);
    proxy.fills_settled().await;
    assert!(proxy.has_object(&gone_layers[0]));
}

#[tokio::test]
async fn a_purged_image_is_fetched_again_by_the_next_pull_and_the_others_stay() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let (_, purged) = upstream.put_image("lab/purged", "v1", &[&pattern(MIB, 3)]);
    let (_, other) = upstream.put_image("lab/other", "v1", &[&pattern(MIB, 4)]);
    pull(&proxy, "lab/purged", "v1", &purged).await;
    pull(&proxy, "lab/other", "v1", &other).await;
    proxy.fills_settled().await;

    let request = PurgeRequest {
        group: oci::GroupPath::parse("default").unwrap(),
        image: Some(oci::RepositoryName::parse("lab/purged").unwrap()),
        package: None,
        older_than: None,
    };
    let job = proxy.lifecycle.create_purge_job(&request).await.unwrap();
    let report = proxy.lifecycle.run_purge(&request, &job, |_, _| {}).await.unwrap();
    assert_eq!((report.objects, report.tags), (2, 1), "its manifest and its own layer: {report:?}");
    assert!(!proxy.has_object(&purged[0]));
    assert!(proxy.has_object(&other[0]), "the other image stays");

    // The purge reached the control plane as it happened: the purged tag is a plain miss.
    upstream.clear_log();
    pull(&proxy, "lab/purged", "v1", &purged).await;
    assert_eq!(
        upstream.count("GET", "/manifests/v1"),
        1,
        "the purged tag is fetched again: {:?}",
        upstream.log()
    );
    assert_eq!(upstream.count("GET", &format!("/blobs/{}", purged[0])), 1);
    proxy.fills_settled().await;
    let stats = proxy.lifecycle.stats(Some("default")).await.unwrap();
    assert_eq!(stats.groups[0].tags, 2);
}

#[tokio::test]
async fn hits_are_counted_and_dated_in_batches_with_traffic_per_group() {
    let upstream = FakeRegistry::start().await;
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    let (_, layers) = upstream.put_image("lab/app", "v1", &[&pattern(MIB, 5)]);
    pull(&proxy, "lab/app", "v1", &layers).await;
    proxy.fills_settled().await;
    for _ in 0..3 {
        pull(&proxy, "lab/app", "v1", &layers).await;
    }
    proxy.cache.flush_reads().await.unwrap();
    let stats = proxy.lifecycle.stats(Some("default")).await.unwrap();
    let traffic = stats.groups[0].last_24h;
    // First pull: 2 misses (manifest, layer); then 3 pulls × 2 hits.
    assert_eq!((traffic.hits, traffic.misses), (6, 2), "{traffic:?}");
    assert!(traffic.bytes_served >= 3 * MIB as u64, "{traffic:?}");
    assert!(traffic.bytes_fetched >= MIB as u64, "{traffic:?}");
    assert_eq!(stats.groups[0].blobs, 1);
    assert_eq!(stats.groups[0].manifests, 1);
}

/// A sample of the proxy's `/metrics`, e.g. `depproxy_store_bytes`.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
        .parse()
        .unwrap()
}

/// The size gauges are right from the start on an existing data directory and follow every
/// commit, without a sweep: here another node holds the sweep lease, so this one never sweeps.
#[tokio::test]
async fn the_size_gauges_are_loaded_at_start_and_follow_commits() {
    let upstream = FakeRegistry::start().await;
    let (_, first) = upstream.put_image("lab/first", "v1", &[&pattern(MIB, 6)]);
    let (_, second) = upstream.put_image("lab/second", "v1", &[&pattern(MIB, 7)]);
    let proxy = TestProxy::start(Options::upstream(&upstream.url())).await;
    pull(&proxy, "lab/first", "v1", &first).await;
    proxy.settled().await;
    let stored = proxy.lifecycle.stats(None).await.unwrap().physical_bytes;
    assert!(stored > MIB as u64);
    let metadata = metadata::Metadata::connect(&proxy.config.database_url).await.unwrap();
    let now = cache::Clock::system().now_ms();
    assert!(metadata.try_maintenance_lease("sweep", "sweeper:elsewhere", now, 3_600_000).await.unwrap());

    let restarted =
        TestProxy::start(Options::upstream(&upstream.url()).data_dir(proxy.into_data_dir())).await;
    let metrics = restarted.metrics().await;
    assert_eq!(sample(&metrics, "depproxy_store_bytes"), stored, "at start");
    assert_eq!(sample(&metrics, "depproxy_cache_bytes{group=\"default\"}"), stored, "at start");
    // What the group holds, in every format's words, and its format.
    let held = restarted.lifecycle.stats(Some("default")).await.unwrap().groups[0].clone();
    assert_eq!(sample(&metrics, "depproxy_cache_artifacts{group=\"default\"}"), held.artifacts, "at start");
    assert_eq!(sample(&metrics, "depproxy_cache_documents{group=\"default\"}"), held.documents, "at start");
    assert!(held.artifacts >= 1 && held.documents == 1, "{held:?}");
    assert_eq!(sample(&metrics, "depproxy_group_info{group=\"default\",format=\"oci\"}"), 1, "{metrics}");

    pull(&restarted, "lab/second", "v1", &second).await;
    restarted.fills_settled().await;
    let now_stored = restarted.lifecycle.stats(None).await.unwrap().physical_bytes;
    assert!(now_stored > stored + MIB as u64);
    let metrics = restarted.metrics().await;
    assert_eq!(sample(&metrics, "depproxy_store_bytes"), now_stored, "after commits");
    assert_eq!(sample(&metrics, "depproxy_cache_bytes{group=\"default\"}"), now_stored, "after commits");
}

/// A store quota of which one sweep frees less than the largest blob allowed is warned about at
/// start-up; one that frees enough is not.
#[tokio::test]
async fn a_store_quota_too_small_for_the_largest_blob_is_warned_about_at_start() {
    let (captured, _guard) = crate::support::logs::Captured::start();
    let upstream = FakeRegistry::start().await;
    let small = "[cache]\nmax_size = \"80MiB\"\n[limits]\nmax_blob_size = \"1GiB\"\n";
    let _proxy = TestProxy::start(Options::toml(small).with_upstream(&upstream.url())).await;
    let warnings = crate::support::logs::warnings(&captured.take());
    let sizing: Vec<&String> = warnings.iter().filter(|warning| warning.contains("max_size")).collect();
    assert_eq!(sizing.len(), 1, "{warnings:#?}");
    assert!(
        sizing[0].contains("[cache] max_size 83886080 bytes with watermarks 90/80 % frees 8388608 bytes")
            && sizing[0].contains("max_blob_size (1073741824 bytes)"),
        "{}",
        sizing[0]
    );

    let large = "[cache]\nmax_size = \"20GiB\"\n[limits]\nmax_blob_size = \"1GiB\"\n";
    let _proxy = TestProxy::start(Options::toml(large).with_upstream(&upstream.url())).await;
    let warnings = crate::support::logs::warnings(&captured.take());
    assert!(!warnings.iter().any(|warning| warning.contains("max_size")), "{warnings:#?}");
}
