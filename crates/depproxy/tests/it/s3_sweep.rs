//! The lifecycle on the scaled-out back-ends (PostgreSQL + S3 via moto), as several control
//! planes run it: two nodes sweeping at once take turns and delete each object once; a node killed
//! mid-sweep leaves nothing the next sweep cannot finish; and an evicted object is kept for the
//! delete delay, so a reader that started before gets all of it (S3 has no open-file semantics:
//! depproxy delays deletes instead).

use std::time::Duration;

use crate::support::backends::{S3Server, postgres_url};
use crate::support::processes::require_tools;
use crate::support::{Options, TestProxy, body_digest, client, pattern};
use depproxy::config::{Config, Overrides};
use lifecycle::{Lifecycle, LifecycleMetrics, PurgeRequest};
use testkit::FakeRegistry;

const MIB: usize = 1 << 20;
const DAY: Duration = Duration::from_secs(86_400);
/// Deletions due at once (the default on S3 waits 15 minutes for readers).
const NOW: &str = "delete_delay = \"0s\"\n";

fn toml(upstream: &str, s3: &S3Server, database: &str, node: &str, extra_storage: &str) -> String {
    format!(
        "database_url = \"{database}\"\n[[upstream]]\nname = \"up\"\nurl = \"{upstream}\"\n\
         [[group]]\npath = \"default\"\nupstream = \"up\"\nttl = \"1d\"\n{}{extra_storage}\n[cluster]\nnode_id = \"{node}\"\n",
        s3.storage_toml()
    )
}

/// A control plane's lifecycle (its own node name), with the clock at `now_ms`.
async fn node(toml: &str, dir: &std::path::Path, now_ms: i64) -> Lifecycle {
    let file = toml::from_str(toml).unwrap();
    let overrides = Overrides { data_dir: Some(dir.to_owned()), ..Overrides::default() };
    let config = Config::resolve(file, &overrides).unwrap();
    let metadata = metadata::Metadata::connect(&config.database_url).await.unwrap();
    let store = depproxy::app::open_store(&config).await.unwrap();
    let groups = depproxy::app::build_groups(&config, &upstream::UpstreamMetrics::default()).unwrap();
    depproxy::app::lifecycle(
        &config,
        metadata,
        store,
        depproxy::app::lifecycle_groups(&groups),
        cache::Clock::manual(now_ms),
        LifecycleMetrics::default(),
    )
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
        .unwrap()
}

async fn fill(proxy: &TestProxy, upstream: &FakeRegistry, count: u64) -> Vec<oci::Digest> {
    let mut digests = Vec::new();
    for n in 0..count {
        let digest = upstream.put_blob(pattern(MIB, 300 + n));
        let response = client().get(format!("{}/v2/lab/app/blobs/{digest}", proxy.url)).send().await.unwrap();
        assert_eq!(body_digest(response).await.unwrap().0, digest);
        digests.push(digest);
    }
    proxy.fills_settled().await;
    digests
}

#[tokio::test]
async fn two_nodes_sweeping_at_once_delete_each_object_once_and_a_dead_sweeper_is_replaced() {
    require_tools(&["python3", "curl", "psql"]);
    let upstream = FakeRegistry::start().await;
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    let database = postgres_url();
    let proxy = TestProxy::start(
        Options::toml(&toml(&upstream.url(), &s3, &database, "proxy", "")).with_upstream(&upstream.url()),
    )
    .await;
    fill(&proxy, &upstream, 6).await;
    assert_eq!(s3.assert_objects_hash_to_their_names().await, 6);

    let later = now_ms() + 2 * DAY.as_millis() as i64;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(&toml(&upstream.url(), &s3, &database, "node-a", NOW), dir_a.path(), later).await;
    let b = node(&toml(&upstream.url(), &s3, &database, "node-b", NOW), dir_b.path(), later).await;
    let (report_a, report_b) = tokio::join!(a.sweep(), b.sweep());
    let (report_a, report_b) = (report_a.unwrap(), report_b.unwrap());
    assert_eq!(report_a.errors + report_b.errors, 0, "{report_a:?} {report_b:?}");
    assert_eq!(
        report_a.deleted_objects + report_b.deleted_objects,
        6,
        "each object deleted once: {report_a:?} {report_b:?}"
    );
    assert_eq!(report_a.ttl_objects + report_b.ttl_objects, 6);
    assert_eq!(s3.keys().len(), 0, "the bucket is empty");
    let stats = a.stats(None).await.unwrap();
    assert_eq!((stats.physical_bytes, stats.groups[0].blobs), (0, 0), "no row left");

    // A node dies mid-sweep: it holds the sweep lease, has removed rows and queued their objects,
    // and claimed one of them for deletion — then nothing more.
    let digests = fill(&proxy, &upstream, 3).await;
    let metadata = a.metadata();
    let dead = "sweeper:node-dead";
    assert!(metadata.try_maintenance_lease("sweep", dead, later, 30_000).await.unwrap());
    let group = oci::GroupPath::parse("default").unwrap();
    let rows = metadata.objects_by_read(&group, None, &None, 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    metadata.remove_objects(&rows, later).await.unwrap();
    assert!(metadata.claim_for_delete(&digests[0], dead, "dead-claim", later, 30_000).await.unwrap());
    // While its lease lives, the others skip their sweeps.
    assert!(b.sweep().await.unwrap().skipped);
    // Once it expired, the next sweeps finish the job: every queued object deleted (once the
    // removal notice has passed since the dead node removed the rows), no row left.
    let b = node(&toml(&upstream.url(), &s3, &database, "node-b", NOW), dir_b.path(), later + 31_000).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut deleted = 0;
    while deleted < 3 {
        let report = b.sweep().await.unwrap();
        assert!(!report.skipped && report.errors == 0, "{report:?}");
        deleted += report.deleted_objects;
        assert!(tokio::time::Instant::now() < deadline, "{deleted} of 3 deleted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(deleted, 3);
    assert_eq!(s3.keys().len(), 0);
    assert_eq!(b.stats(None).await.unwrap().pending_delete_bytes, 0);
    drop(s3);
}

#[tokio::test]
async fn an_evicted_object_on_s3_stays_for_the_delete_delay_and_a_reader_gets_all_of_it() {
    require_tools(&["python3", "curl", "psql"]);
    let upstream = FakeRegistry::start().await;
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    let database = postgres_url();
    let config = toml(&upstream.url(), &s3, &database, "proxy", "delete_delay = \"1h\"\n");
    let proxy = TestProxy::start(Options::toml(&config).with_upstream(&upstream.url())).await;
    let bytes = pattern(8 * MIB, 400);
    let digest = upstream.put_blob(bytes.clone());
    let url = format!("{}/v2/lab/app/blobs/{digest}", proxy.url);
    assert_eq!(body_digest(client().get(&url).send().await.unwrap()).await.unwrap().0, digest);
    proxy.fills_settled().await;

    // A hit starts, reads a little, and the group is purged under it.
    let mut reader = client().get(&url).send().await.unwrap();
    let mut received = reader.chunk().await.unwrap().unwrap().to_vec();
    let request = PurgeRequest {
        group: oci::GroupPath::parse("default").unwrap(),
        image: None,
        package: None,
        older_than: None,
    };
    let job = proxy.lifecycle.create_purge_job(&request).await.unwrap();
    let report = proxy.lifecycle.run_purge(&request, &job, |_, _| {}).await.unwrap();
    assert_eq!((report.objects, report.deleted_objects), (1, 0), "queued, not yet due: {report:?}");
    while let Some(chunk) = reader.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received, bytes, "the reader got the whole object");
    assert_eq!(s3.keys().len(), 1, "still in the bucket during the delay");

    // Past the delay, a sweep deletes it.
    let dir = tempfile::tempdir().unwrap();
    let later = node(&config, dir.path(), now_ms() + 2 * 3_600_000).await;
    let report = later.sweep().await.unwrap();
    assert_eq!(report.deleted_objects, 1, "{report:?}");
    assert_eq!(s3.keys().len(), 0);
}
