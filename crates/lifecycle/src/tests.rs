//! The lifecycle on a real store (local disk) and database (SQLite, and PostgreSQL when
//! `DEPPROXY_TEST_POSTGRES_URL` names a server): TTL with a manual clock, quotas, pins, purges,
//! garbage, readers of evicted objects, and the race of a fill's commit with a sweeper's delete.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cache::{Clock, Format, LifecyclePolicy, Pins};
use futures_util::StreamExt as _;
use metadata::{
    BlobKey, BlobRecord, CommitLease, Committed, DatabaseUrl, ManifestKey, ManifestRecord, Metadata, Reads,
    ReferrersAnswer, ReferrersKey, ReferrersRecord,
};
use oci::{Digest, GroupPath, Reference, RepositoryName};
use storage::{BlobStore, Expectation, FsStore};

use crate::*;

const DAY: Duration = Duration::from_secs(24 * 3600);
const START_MS: i64 = 1_700_000_000_000;
const TAKE: CommitLease<'static> = CommitLease::Take { holder: "node", ttl_ms: 30_000 };

struct Setup {
    lifecycle: Arc<Lifecycle>,
    metadata: Metadata,
    store: BlobStore,
    clock: Clock,
    _dir: tempfile::TempDir,
}

/// SQLite in `dir`, and a fresh PostgreSQL database when a server is given.
fn database_urls(dir: &std::path::Path) -> Vec<String> {
    let mut all = vec![format!("sqlite:{}", dir.join("meta.db").display())];
    if let Ok(server) = std::env::var("DEPPROXY_TEST_POSTGRES_URL") {
        all.push(format!(
            "{}/depproxy_lifecycle_{}",
            server.trim_end_matches('/'),
            uuid::Uuid::new_v4().simple()
        ));
    }
    all
}

fn group(path: &str) -> GroupPath {
    GroupPath::parse(path).unwrap()
}

fn base() -> SweepSettings {
    SweepSettings {
        max_size: None,
        high_watermark: 90,
        low_watermark: 80,
        delete_delay: Duration::ZERO,
        orphan_grace: Duration::from_secs(3600),
        upload_grace: Duration::from_secs(3600),
        lease_ttl: Duration::from_secs(30),
        // No other node to wait for, unless a test says so.
        removal_notice: Duration::ZERO,
        keep_recent: KEEP_RECENT,
        node: "test".into(),
    }
}

/// What the binary configures.
const KEEP_RECENT: Duration = Duration::from_secs(60);

/// One setup per database backend, each with its own store.
async fn setups(policies: &[(&str, LifecyclePolicy)], settings: SweepSettings) -> Vec<Setup> {
    let groups: Vec<(&str, Format, LifecyclePolicy)> =
        policies.iter().map(|(path, policy)| (*path, Format::Oci, policy.clone())).collect();
    setups_of(&groups, settings).await
}

/// [`setups`] with groups of any format.
async fn setups_of(policies: &[(&str, Format, LifecyclePolicy)], settings: SweepSettings) -> Vec<Setup> {
    let mut all = Vec::new();
    let dir_of_urls = tempfile::tempdir().unwrap();
    for url in database_urls(dir_of_urls.path()) {
        let dir = tempfile::tempdir().unwrap();
        let url = url.replace(&dir_of_urls.path().display().to_string(), &dir.path().display().to_string());
        let metadata = Metadata::connect(&DatabaseUrl::new(url)).await.unwrap();
        let store = BlobStore::Filesystem(FsStore::open(dir.path()).await.unwrap());
        let clock = Clock::manual(START_MS);
        let groups = policies
            .iter()
            .map(|(path, format, policy)| GroupPolicy {
                path: group(path),
                format: *format,
                policy: policy.clone(),
            })
            .collect();
        let lifecycle = Arc::new(Lifecycle::new(
            metadata.clone(),
            store.clone(),
            groups,
            settings.clone(),
            clock.clone(),
            LifecycleMetrics::default(),
        ));
        all.push(Setup { lifecycle, metadata, store, clock, _dir: dir });
    }
    all
}

impl Setup {
    /// Stores `bytes` and records them as a blob of `path`, read now.
    async fn blob(&self, path: &str, bytes: &[u8]) -> Digest {
        let digest = self.put(bytes).await;
        let record = BlobRecord {
            digest: digest.clone(),
            size: bytes.len() as u64,
            media_type: "x".into(),
            upstream: "lab".into(),
        };
        let committed =
            self.metadata.commit_blob(&group(path), &record, TAKE, self.clock.now_ms()).await.unwrap();
        assert_eq!(committed, Committed::Recorded);
        digest
    }

    async fn put(&self, bytes: &[u8]) -> Digest {
        let mut upload = self.store.begin_upload(1 << 30, None).await.unwrap();
        upload.write(Bytes::copy_from_slice(bytes)).await.unwrap();
        upload.commit(&Expectation::default()).await.unwrap().digest
    }

    /// Records a manifest of `image:tag` in `path` referencing `children`.
    async fn manifest(&self, path: &str, image: &str, tag: &str, children: &[Digest]) -> Digest {
        let body = format!("{{\"image\":\"{image}\",\"tag\":\"{tag}\",\"n\":{}}}", children.len());
        let digest = self.put(body.as_bytes()).await;
        let key = ManifestKey {
            group: group(path),
            image: RepositoryName::parse(image).unwrap(),
            reference: Reference::Digest(digest.clone()),
        };
        let record = ManifestRecord {
            digest: digest.clone(),
            media_type: oci::media::OCI_MANIFEST.into(),
            size: body.len() as u64,
            checked_at: self.clock.now_ms(),
            stored: true,
            upstream: "lab".into(),
        };
        let tag = Reference::parse(tag).unwrap();
        let now = self.clock.now_ms();
        self.metadata.commit_manifest(&key, Some(&tag), &record, children, TAKE, now).await.unwrap();
        digest
    }

    /// Stores `bytes` as the (full) document of `package` in package group `path`.
    async fn package_document(&self, path: &str, package: &str, bytes: &[u8]) -> Digest {
        let digest = self.blob(path, bytes).await;
        let key =
            metadata::DocumentKey { group: group(path), package: package.into(), variant: "full".into() };
        let record = metadata::DocumentRecord {
            digest: digest.clone(),
            size: bytes.len() as u64,
            media_type: "application/json".into(),
            upstream: "lab".into(),
            checked_at: self.clock.now_ms(),
            modified_at: self.clock.now_ms(),
            stored: true,
        };
        self.metadata.record_package_document(&key, &record, self.clock.now_ms()).await.unwrap();
        digest
    }

    /// Lists `file` (a path under the group) of `package` at `version` and stores `bytes` as it.
    async fn package_file(
        &self,
        path: &str,
        package: &str,
        version: &str,
        file: &str,
        bytes: &[u8],
    ) -> Digest {
        let listing = metadata::FileListing {
            path: file.into(),
            version: version.into(),
            algorithm: String::new(),
            checksum: String::new(),
            url: format!("http://registry.example.com/{file}"),
        };
        let now = self.clock.now_ms();
        self.metadata.list_package_files(&group(path), package, "lab", &[listing], now).await.unwrap();
        let digest = self.blob(path, bytes).await;
        let stored =
            metadata::StoredFile { digest: digest.clone(), size: bytes.len() as u64, media_type: "x".into() };
        let served = metadata::ServedFile { package, version, upstream: "lab", url: "", at: now };
        self.metadata.record_package_file(&group(path), file, &stored, &served).await.unwrap();
        digest
    }

    async fn read(&self, path: &str, digest: &Digest) {
        let key = BlobKey { group: group(path), digest: digest.clone() };
        self.metadata
            .record_reads(&[(key, Reads { last: self.clock.now_ms(), count: 1 })], &[])
            .await
            .unwrap();
    }

    async fn has_row(&self, path: &str, digest: &Digest) -> bool {
        self.metadata
            .find_blob(&BlobKey { group: group(path), digest: digest.clone() })
            .await
            .unwrap()
            .is_some()
    }

    async fn stored(&self, digest: &Digest) -> bool {
        self.store.stat(&injector::storage_key(digest)).await.unwrap().is_some()
    }

    async fn stored_bytes(&self) -> u64 {
        let objects: Vec<_> = self.store.list_objects().collect().await;
        objects.into_iter().map(|object| object.unwrap().size).sum()
    }
}

fn ttl(days: u64) -> LifecyclePolicy {
    LifecyclePolicy { ttl: Some(DAY * days as u32), ..LifecyclePolicy::default() }
}

#[tokio::test]
async fn an_object_unread_past_the_ttl_goes_and_one_read_within_it_stays() {
    for setup in setups(&[("g", ttl(90))], base()).await {
        let old = setup.blob("g", b"read at day 0 only").await;
        let recent = setup.blob("g", b"read again at day 89").await;
        setup.clock.advance(DAY * 89);
        setup.read("g", &recent).await;
        setup.clock.advance(DAY * 2);
        let report = setup.lifecycle.sweep().await.unwrap();
        assert_eq!((report.ttl_objects, report.deleted_objects), (1, 1), "{report:?}");
        assert!(!setup.has_row("g", &old).await && !setup.stored(&old).await, "gone at day 91");
        assert!(setup.has_row("g", &recent).await && setup.stored(&recent).await, "read at day 89: kept");
    }
}

#[tokio::test]
async fn an_object_shared_by_two_groups_is_stored_once_and_deleted_with_its_last_row() {
    for setup in setups(&[("short", ttl(1)), ("long", ttl(30))], base()).await {
        let shared = setup.blob("short", b"shared layer").await;
        setup.blob("long", b"shared layer").await;
        setup.clock.advance(DAY * 2);
        setup.lifecycle.sweep().await.unwrap();
        assert!(!setup.has_row("short", &shared).await, "the short group's row went");
        assert!(
            setup.has_row("long", &shared).await && setup.stored(&shared).await,
            "the bytes stay for the other"
        );
        let stats = setup.lifecycle.stats(None).await.unwrap();
        assert_eq!(stats.physical_bytes, 12);
        setup.clock.advance(DAY * 30);
        setup.lifecycle.sweep().await.unwrap();
        assert!(!setup.stored(&shared).await, "deleted with its last row");
    }
}

#[tokio::test]
async fn stats_name_the_format_count_artifacts_and_documents_and_keep_24_hours_of_traffic() {
    use metadata::Traffic;
    const HOUR: Duration = Duration::from_secs(3600);
    for setup in setups(&[("g", LifecyclePolicy::default())], base()).await {
        let layer = setup.blob("g", b"a layer").await;
        setup.manifest("g", "lab/app", "v1", &[layer]).await;
        let now = setup.clock.now_ms();
        let this_hour = now - now.rem_euclid(3_600_000);
        let group_traffic = |hits, misses, bytes_served| {
            vec![(group("g"), Traffic { hits, misses, bytes_served, bytes_fetched: 0 })]
        };
        setup.metadata.add_traffic(this_hour - 30 * 3_600_000, &group_traffic(50, 0, 0)).await.unwrap();
        setup.metadata.add_traffic(this_hour - 2 * 3_600_000, &group_traffic(4, 1, 400)).await.unwrap();
        setup.metadata.add_traffic(this_hour, &group_traffic(3, 2, 300)).await.unwrap();
        let stats = setup.lifecycle.stats(Some("g")).await.unwrap();
        let g = &stats.groups[0];
        assert_eq!(g.format, Format::Oci);
        assert_eq!((g.artifacts, g.documents, g.tags), (1, 1, 1));
        assert_eq!((g.blobs, g.manifests), (g.artifacts, g.documents), "the old names say the same");
        assert_eq!(g.hourly.len(), HOURS);
        assert_eq!(g.hourly[HOURS - 1].hour, this_hour, "the current hour last");
        assert_eq!(g.hourly[0].hour, this_hour - 23 * 3_600_000);
        let hits: Vec<u64> = g.hourly.iter().map(|hour| hour.traffic.hits).collect();
        let mut expected = vec![0; HOURS];
        (expected[HOURS - 3], expected[HOURS - 1]) = (4, 3);
        assert_eq!(hits, expected, "30 hours ago is not among the 24");
        assert_eq!((g.last_24h.hits, g.last_24h.misses, g.last_24h.bytes_served), (7, 3, 700));
        assert_eq!((g.last_1h.hits, g.last_1h.misses), (3, 2));
        // An hour later the current hour is the next one, and the history moved with it.
        setup.clock.advance(HOUR);
        let later = setup.lifecycle.stats(Some("g")).await.unwrap();
        assert_eq!(later.groups[0].hourly[HOURS - 2].traffic.hits, 3);
        assert_eq!(later.groups[0].last_1h, Traffic::default());
    }
}

#[tokio::test]
async fn pinned_images_survive_ttl_and_quota_but_not_a_purge() {
    let policy = LifecyclePolicy {
        ttl: Some(DAY),
        max_size: Some(100),
        pins: Pins::new(&["library/alpine:3.*".into()]).unwrap(),
    };
    for setup in setups(&[("g", policy.clone())], base()).await {
        let layer = setup.blob("g", &[7u8; 60]).await;
        let pinned = setup.manifest("g", "library/alpine", "3.20", std::slice::from_ref(&layer)).await;
        let other_layer = setup.blob("g", &[8u8; 60]).await;
        let unpinned =
            setup.manifest("g", "library/alpine", "edge", std::slice::from_ref(&other_layer)).await;
        // The referrers lists of both images (their signatures), read as long ago.
        let list = |subject: &Digest| ReferrersKey {
            group: group("g"),
            image: RepositoryName::parse("library/alpine").unwrap(),
            subject: subject.clone(),
        };
        let record = ReferrersRecord {
            answer: ReferrersAnswer::NotServed,
            upstream: String::new(),
            checked_at: setup.clock.now_ms(),
            read_at: 0,
        };
        for subject in [&pinned, &unpinned] {
            setup.metadata.record_referrers(&list(subject), &record, setup.clock.now_ms()).await.unwrap();
        }
        setup.clock.advance(DAY * 3);
        setup.lifecycle.sweep().await.unwrap();
        assert!(setup.metadata.find_referrers(&list(&pinned)).await.unwrap().is_some(), "pinned: stays");
        assert!(setup.metadata.find_referrers(&list(&unpinned)).await.unwrap().is_none(), "expired");
        assert!(
            setup.has_row("g", &layer).await && setup.stored(&layer).await,
            "the pinned image's layer stays"
        );
        assert!(setup.stored(&pinned).await);
        assert!(
            !setup.has_row("g", &other_layer).await && !setup.stored(&unpinned).await,
            "the rest expired"
        );
        let stats = setup.lifecycle.stats(Some("g")).await.unwrap();
        assert_eq!(stats.groups[0].pinned_bytes, stats.groups[0].bytes, "only pinned bytes are left");
        assert!(stats.groups[0].pinned_bytes > 60);

        let request = PurgeRequest { group: group("g"), image: None, package: None, older_than: None };
        let job = setup.lifecycle.create_purge_job(&request).await.unwrap();
        let report = setup.lifecycle.run_purge(&request, &job, |_, _| {}).await.unwrap();
        assert_eq!((report.objects, report.tags), (2, 1), "{report:?}");
        assert!(
            !setup.stored(&layer).await && !setup.stored(&pinned).await,
            "a purge removes pinned objects"
        );
        assert!(setup.metadata.find_referrers(&list(&pinned)).await.unwrap().is_none(), "and lists");
        let recorded = setup.lifecycle.job(&job).await.unwrap().unwrap();
        assert_eq!((recorded.state.as_str(), recorded.done, recorded.total), ("done", 2, 2));
    }
}

#[tokio::test]
async fn a_group_past_its_quota_loses_its_least_recently_read_objects_down_to_the_low_watermark() {
    let policy = LifecyclePolicy { max_size: Some(1000), ..LifecyclePolicy::default() };
    for setup in setups(&[("g", policy.clone())], base()).await {
        let mut blobs = Vec::new();
        for n in 0..10u8 {
            setup.clock.advance(Duration::from_secs(1));
            blobs.push(setup.blob("g", &[n; 100]).await);
        }
        // The oldest is read again: it is now the most recent.
        setup.clock.advance(Duration::from_secs(1));
        setup.read("g", &blobs[0]).await;
        // Recorded over a minute ago: all may go.
        setup.clock.advance(KEEP_RECENT);
        // 1000 bytes > 90 % of 1000: evict down to 800.
        let report = setup.lifecycle.sweep().await.unwrap();
        assert_eq!(report.quota_objects, 2, "{report:?}");
        assert!(setup.has_row("g", &blobs[0]).await, "read recently: kept");
        assert!(
            !setup.has_row("g", &blobs[1]).await && !setup.has_row("g", &blobs[2]).await,
            "least recent went"
        );
        assert_eq!(setup.stored_bytes().await, 800);
    }
}

#[tokio::test]
async fn the_store_quota_counts_each_object_once_and_evicts_it_from_every_group() {
    let settings = SweepSettings { max_size: Some(500), ..base() };
    for setup in
        setups(&[("a", LifecyclePolicy::default()), ("b", LifecyclePolicy::default())], settings.clone())
            .await
    {
        let mut blobs = Vec::new();
        for n in 0..5u8 {
            setup.clock.advance(Duration::from_secs(1));
            let digest = setup.blob("a", &[n; 100]).await;
            setup.blob("b", &[n; 100]).await;
            blobs.push(digest);
        }
        setup.clock.advance(KEEP_RECENT);
        // 500 bytes physical (1000 logical): past 90 %, down to 400.
        let report = setup.lifecycle.sweep().await.unwrap();
        assert_eq!(report.deleted_objects, 1, "{report:?}");
        assert!(!setup.has_row("a", &blobs[0]).await && !setup.has_row("b", &blobs[0]).await);
        assert_eq!(setup.stored_bytes().await, 400);
    }
}

#[tokio::test]
async fn a_purge_of_one_image_keeps_the_layers_other_images_use() {
    for setup in setups(&[("g", LifecyclePolicy::default())], base()).await {
        let shared = setup.blob("g", b"base layer").await;
        let own = setup.blob("g", b"app layer").await;
        let other = setup.blob("g", b"tool layer").await;
        setup.manifest("g", "acme/app", "v1", &[shared.clone(), own.clone()]).await;
        setup.manifest("g", "acme/tool", "v1", &[shared.clone(), other.clone()]).await;
        let request = PurgeRequest {
            group: group("g"),
            image: Some(RepositoryName::parse("acme/app").unwrap()),
            package: None,
            older_than: None,
        };
        let job = setup.lifecycle.create_purge_job(&request).await.unwrap();
        let report = setup.lifecycle.run_purge(&request, &job, |_, _| {}).await.unwrap();
        assert_eq!((report.objects, report.tags), (2, 1), "the manifest and its own layer: {report:?}");
        assert!(!setup.stored(&own).await);
        assert!(setup.stored(&shared).await && setup.stored(&other).await, "the other image is whole");
        let tags = setup.metadata.tags_of_group(&group("g")).await.unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].image, "acme/tool");
    }
}

#[tokio::test]
async fn garbage_in_storage_is_collected_after_its_grace_and_known_objects_stay() {
    let settings = SweepSettings { orphan_grace: Duration::ZERO, ..base() };
    for setup in setups(&[("g", LifecyclePolicy::default())], settings.clone()).await {
        let orphan = setup.put(b"committed, never recorded").await;
        let known = setup.blob("g", b"recorded").await;
        let report = setup.lifecycle.sweep().await.unwrap();
        assert_eq!(report.garbage_objects, 1, "{report:?}");
        assert!(!setup.stored(&orphan).await && setup.stored(&known).await);
    }
    // Within the grace, nothing is collected (a commit may be about to be recorded).
    for setup in setups(&[("g", LifecyclePolicy::default())], base()).await {
        let young = setup.put(b"just committed").await;
        setup.lifecycle.sweep().await.unwrap();
        assert!(setup.stored(&young).await);
    }
}

#[tokio::test]
async fn a_reader_of_an_evicted_object_on_disk_gets_all_of_it() {
    for setup in setups(&[("g", LifecyclePolicy::default())], base()).await {
        let bytes: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let digest = setup.blob("g", &bytes).await;
        let mut reader = setup.store.read(&injector::storage_key(&digest), None).await.unwrap();
        let mut received = reader.stream.next().await.unwrap().unwrap().to_vec();
        let request = PurgeRequest { group: group("g"), image: None, package: None, older_than: None };
        let job = setup.lifecycle.create_purge_job(&request).await.unwrap();
        setup.lifecycle.run_purge(&request, &job, |_, _| {}).await.unwrap();
        assert!(!setup.stored(&digest).await, "deleted while being read");
        while let Some(chunk) = reader.stream.next().await {
            received.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(received, bytes, "an open file outlives its deletion");
    }
}

/// A fill commits an object of group `b` while a sweeper deletes the same object (its last row,
/// in group `a`, just expired): whichever wins, no row ever points at a deleted object. The fill
/// does what the gateway does: take the object's lease, write, record under that lease (or,
/// refused the lease, stream without storing).
#[tokio::test]
async fn a_commit_racing_a_sweep_never_leaves_a_row_without_its_object() {
    for setup in setups(&[("a", ttl(1)), ("b", LifecyclePolicy::default())], base()).await {
        let (mut recorded, mut refused) = (0, 0);
        for round in 0..200u32 {
            let bytes = format!("object {round}").into_bytes();
            let digest = setup.blob("a", &bytes).await;
            setup.clock.advance(DAY * 2);
            let record = BlobRecord {
                digest: digest.clone(),
                size: bytes.len() as u64,
                media_type: "x".into(),
                upstream: "lab".into(),
            };
            let lifecycle = setup.lifecycle.clone();
            let sweep = tokio::spawn(async move { lifecycle.sweep().await.unwrap() });
            // The fill: its bytes land (again) in storage, then it records its row.
            let metadata = setup.metadata.clone();
            let store = setup.store.clone();
            let clock = setup.clock.clone();
            let commit = tokio::spawn(async move {
                // Vary who gets ahead, round by round.
                for _ in 0..(round % 13) * 3 {
                    tokio::task::yield_now().await;
                }
                let lease = format!("fill-{round}");
                let now = clock.now_ms();
                if !metadata.acquire_lease(&record.digest, "node", &lease, now, 30_000).await.unwrap() {
                    return Committed::Refused;
                }
                let mut upload = store.begin_upload(1 << 20, None).await.unwrap();
                upload.write(Bytes::from(bytes)).await.unwrap();
                upload.commit(&Expectation::default()).await.unwrap();
                let held = CommitLease::Held { id: &lease };
                metadata.commit_blob(&group("b"), &record, held, clock.now_ms()).await.unwrap()
            });
            let (sweep, commit) = (sweep.await.unwrap(), commit.await.unwrap());
            match commit {
                Committed::Recorded => recorded += 1,
                Committed::Refused => refused += 1,
            }
            let row = setup.has_row("b", &digest).await;
            assert!(
                !row || setup.stored(&digest).await,
                "round {round}: a row without its object ({sweep:?})"
            );
            // Whatever is left unreferenced is garbage the next sweep (or the orphan grace) handles.
        }
        eprintln!("{}: {recorded} commits recorded, {refused} refused", setup.metadata.backend());
        assert!(recorded > 0, "some commits won the race");
    }
}

/// The image just pulled into a store smaller than it stays until it is a minute old: a quota
/// never evicts what was recorded in the last minute (older objects go first, as always).
#[tokio::test]
async fn a_quota_never_evicts_an_object_recorded_in_the_last_minute() {
    let settings = SweepSettings { max_size: Some(500), ..base() };
    let group_quota = LifecyclePolicy { max_size: Some(500), ..LifecyclePolicy::default() };
    for (path, settings) in [("store", settings), ("group", base())] {
        for setup in setups(&[(path, group_quota.clone())], settings.clone()).await {
            let old = setup.blob(path, &[1u8; 100]).await;
            setup.clock.advance(Duration::from_secs(600));
            let just_pulled = setup.blob(path, &[2u8; 600]).await;
            let report = setup.lifecycle.sweep().await.unwrap();
            assert_eq!(report.quota_objects, 1, "{path}: only the old object goes: {report:?}");
            assert!(!setup.stored(&old).await, "{path}");
            assert!(
                setup.has_row(path, &just_pulled).await && setup.stored(&just_pulled).await,
                "{path}: recorded just now, kept although over the quota"
            );

            setup.clock.advance(KEEP_RECENT + Duration::from_secs(1));
            let report = setup.lifecycle.sweep().await.unwrap();
            assert_eq!(report.quota_objects, 1, "{path}: a minute later it may go: {report:?}");
            assert!(!setup.stored(&just_pulled).await, "{path}");
        }
    }
}

/// What the observer of removals heard, and whether each object was still in storage then.
#[derive(Default)]
struct HeardRemovals {
    store: std::sync::OnceLock<BlobStore>,
    heard: std::sync::Mutex<Vec<(Vec<Digest>, bool)>>,
}

impl RemovalObserver for HeardRemovals {
    fn removed<'a>(
        &'a self,
        objects: &'a [Digest],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let mut all_stored = true;
            for digest in objects {
                let store = self.store.get().unwrap();
                all_stored &= store.stat(&injector::storage_key(digest)).await.unwrap().is_some();
            }
            self.heard.lock().unwrap().push((objects.to_vec(), all_stored));
        })
    }
}

/// A removal reaches this process's observer at once — while the objects are still in storage —
/// and storage deletion waits `removal_notice` after the rows went, whoever removed them.
#[tokio::test]
async fn removals_are_heard_at_once_and_objects_outlive_their_rows_by_the_removal_notice() {
    let notice = Duration::from_millis(800);
    let settings = SweepSettings { removal_notice: notice, ..base() };
    for setup in setups(&[("g", ttl(1))], settings.clone()).await {
        let observer = Arc::new(HeardRemovals::default());
        let _ = observer.store.set(setup.store.clone());
        setup.lifecycle.observe_removals(observer.clone());

        // A sweep's eviction.
        let evicted = setup.blob("g", b"evicted by ttl").await;
        setup.clock.advance(DAY * 2);
        let started = std::time::Instant::now();
        let report = setup.lifecycle.sweep().await.unwrap();
        assert_eq!((report.ttl_objects, report.deleted_objects), (1, 1), "{report:?}");
        assert!(started.elapsed() >= notice, "deleted only after the removal notice");
        assert_eq!(observer.heard.lock().unwrap().as_slice(), &[(vec![evicted.clone()], true)]);
        assert!(!setup.stored(&evicted).await);

        // A purge.
        let purged = setup.blob("g", b"purged").await;
        let request = PurgeRequest { group: group("g"), image: None, package: None, older_than: None };
        let job = setup.lifecycle.create_purge_job(&request).await.unwrap();
        let started = std::time::Instant::now();
        let report = setup.lifecycle.run_purge(&request, &job, |_, _| {}).await.unwrap();
        assert_eq!((report.objects, report.deleted_objects), (1, 1), "{report:?}");
        assert!(started.elapsed() >= notice);
        assert_eq!(observer.heard.lock().unwrap().last().unwrap(), &(vec![purged.clone()], true));

        // Rows removed by another process (no observer here): a sweep right after leaves the
        // object alone; once the notice has passed, it goes.
        let elsewhere = setup.blob("g", b"removed by another process").await;
        let rows = setup.metadata.objects_by_read(&group("g"), None, &None, 10).await.unwrap();
        setup.metadata.remove_objects(&rows, setup.clock.now_ms()).await.unwrap();
        let report = setup.lifecycle.sweep().await.unwrap();
        assert_eq!(report.deleted_objects, 0, "{report:?}");
        assert!(setup.stored(&elsewhere).await, "{}: still within the notice", setup.metadata.backend());
        tokio::time::sleep(notice).await;
        let report = setup.lifecycle.sweep().await.unwrap();
        assert_eq!(report.deleted_objects, 1, "{report:?}");
        assert!(!setup.stored(&elsewhere).await);
    }
}

#[test]
fn a_quota_that_frees_less_than_the_largest_blob_per_sweep_is_warned_about() {
    let policy = LifecyclePolicy { max_size: Some(100 << 20), ..LifecyclePolicy::default() };
    let groups = vec![GroupPolicy { path: group("small"), format: Format::Oci, policy }];
    let settings = SweepSettings { max_size: Some(80 << 20), ..base() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lifecycle = runtime.block_on(async {
        let url = format!("sqlite:{}", dir.path().join("meta.db").display());
        let metadata = Metadata::connect(&DatabaseUrl::new(url)).await.unwrap();
        let store = BlobStore::Filesystem(FsStore::open(dir.path()).await.unwrap());
        Lifecycle::new(
            metadata,
            store,
            groups,
            settings,
            Clock::manual(START_MS),
            LifecycleMetrics::default(),
        )
    });
    // 90/80 % of 80 MiB frees 8 MiB a sweep: a 10 MiB layer does not fit; of 100 MiB, 10 MiB does.
    let warnings = lifecycle.sizing_warnings(10 << 20);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("[cache] max_size 83886080 bytes"), "{}", warnings[0]);
    let warnings = lifecycle.sizing_warnings(11 << 20);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[1].starts_with("group small max_size"), "{}", warnings[1]);
    assert!(lifecycle.sizing_warnings(1 << 20).is_empty());
}

fn package_group(format: Format, policy: LifecyclePolicy) -> [(&'static str, Format, LifecyclePolicy); 2] {
    [("js", format, policy), ("g", Format::Oci, LifecyclePolicy::default())]
}

#[tokio::test]
async fn purging_a_package_removes_its_documents_and_files_and_keeps_what_others_name() {
    for setup in setups_of(&package_group(Format::Npm, LifecyclePolicy::default()), base()).await {
        let lodash = setup.package_document("js", "lodash", b"lodash packument").await;
        let old = setup.package_file("js", "lodash", "3.0.0", "lodash/-/lodash-3.0.0.tgz", b"lodash 3").await;
        let shared =
            setup.package_file("js", "lodash", "4.0.0", "lodash/-/lodash-4.0.0.tgz", b"same bytes").await;
        let react = setup.package_document("js", "react", b"react packument").await;
        setup.package_file("js", "react", "18.0.0", "react/-/react-18.0.0.tgz", b"same bytes").await;
        // Another group holds lodash 3's bytes too: they stay in storage.
        setup.blob("g", b"lodash 3").await;

        let stats = setup.lifecycle.stats(Some("js")).await.unwrap();
        let js = &stats.groups[0];
        assert_eq!((js.format, js.documents, js.artifacts, js.tags), (Format::Npm, 2, 3, 0), "{js:?}");

        let purge = |package: &str| PurgeRequest {
            group: group("js"),
            image: None,
            package: Some(package.into()),
            older_than: None,
        };
        let job = setup.lifecycle.create_purge_job(&purge("lodash")).await.unwrap();
        let report = setup.lifecycle.run_purge(&purge("lodash"), &job, |_, _| {}).await.unwrap();
        assert_eq!((report.format, report.objects, report.tags), (Format::Npm, 2, 0), "{report:?}");
        assert_eq!(report.deleted_objects, 1, "lodash's document; lodash 3 is another group's too");
        assert!(!setup.has_row("js", &lodash).await && !setup.stored(&lodash).await);
        assert!(!setup.has_row("js", &old).await && setup.stored(&old).await, "group g still holds it");
        assert!(setup.has_row("js", &shared).await && setup.stored(&shared).await, "react names it");
        assert!(setup.has_row("js", &react).await);
        assert!(setup.metadata.package_digests(&group("js"), "lodash").await.unwrap().is_empty());
        let stats = setup.lifecycle.stats(Some("js")).await.unwrap();
        assert_eq!((stats.groups[0].documents, stats.groups[0].artifacts), (1, 1));

        // What does not fit the group is refused before anything is done.
        let image = PurgeRequest {
            group: group("js"),
            image: Some(RepositoryName::parse("library/alpine").unwrap()),
            package: None,
            older_than: None,
        };
        let error = setup.lifecycle.create_purge_job(&image).await.unwrap_err();
        assert!(error.to_string().contains("holds packages, not images"), "{error}");
        let error = setup.lifecycle.create_purge_job(&purge("Lodash")).await.unwrap_err();
        assert!(error.to_string().contains("lowercase"), "{error}");
        let on_images = PurgeRequest { group: group("g"), ..purge("lodash") };
        let error = setup.lifecycle.create_purge_job(&on_images).await.unwrap_err();
        assert!(error.to_string().contains("holds images, not packages"), "{error}");
    }
}

#[tokio::test]
async fn a_package_purge_with_a_cutoff_and_a_whole_group_purge() {
    for setup in setups_of(&package_group(Format::Pypi, LifecyclePolicy::default()), base()).await {
        let page = setup.package_document("js", "zope-interface", b"page").await;
        let wheel = setup
            .package_file(
                "js",
                "zope-interface",
                "",
                "packages/zope.interface-6.0-py3-none-any.whl",
                b"wheel",
            )
            .await;
        setup.clock.advance(DAY * 10);
        setup.read("js", &page).await;
        // Written as pip users write it: normalized to the name the rows hold.
        let request = PurgeRequest {
            group: group("js"),
            image: None,
            package: Some("Zope.Interface".into()),
            older_than: Some(DAY * 5),
        };
        let job = setup.lifecycle.create_purge_job(&request).await.unwrap();
        let report = setup.lifecycle.run_purge(&request, &job, |_, _| {}).await.unwrap();
        assert_eq!(report.objects, 1, "only the wheel was not read for 5 days: {report:?}");
        assert!(setup.has_row("js", &page).await && !setup.has_row("js", &wheel).await);
        assert_eq!(
            setup.metadata.package_digests(&group("js"), "zope-interface").await.unwrap().len(),
            2,
            "with a cutoff the names stay (the wheel's reads as not stored)"
        );

        let whole = PurgeRequest { group: group("js"), image: None, package: None, older_than: None };
        let job = setup.lifecycle.create_purge_job(&whole).await.unwrap();
        setup.lifecycle.run_purge(&whole, &job, |_, _| {}).await.unwrap();
        assert!(!setup.has_row("js", &page).await && !setup.stored(&page).await);
        assert!(setup.metadata.package_objects(&group("js")).await.unwrap().is_empty(), "names forgotten");
    }
}

#[tokio::test]
async fn pinned_packages_survive_ttl_and_quota() {
    let patterns = ["lodash@4.*".to_owned(), "@internal/*".to_owned()];
    let policy = LifecyclePolicy {
        ttl: Some(DAY),
        max_size: None,
        pins: Pins::for_format(&patterns, Format::Npm).unwrap(),
    };
    for setup in setups_of(&package_group(Format::Npm, policy.clone()), base()).await {
        let lodash = setup.package_document("js", "lodash", b"lodash packument").await;
        let four = setup.package_file("js", "lodash", "4.17.21", "lodash/-/lodash-4.17.21.tgz", b"4").await;
        let three = setup.package_file("js", "lodash", "3.10.1", "lodash/-/lodash-3.10.1.tgz", b"3").await;
        let internal = setup.package_document("js", "@internal/tools", b"internal packument").await;
        let tools = setup
            .package_file("js", "@internal/tools", "0.1.0", "@internal/tools/-/tools-0.1.0.tgz", b"tools")
            .await;
        let react = setup.package_document("js", "react", b"react packument").await;
        setup.clock.advance(DAY * 3);
        let report = setup.lifecycle.sweep().await.unwrap();
        assert_eq!(report.ttl_objects, 2, "lodash 3 and react's document: {report:?}");
        for kept in [&lodash, &four, &internal, &tools] {
            assert!(setup.has_row("js", kept).await && setup.stored(kept).await, "pinned: {kept}");
        }
        for gone in [&three, &react] {
            assert!(!setup.has_row("js", gone).await, "not pinned: {gone}");
        }
        let stats = setup.lifecycle.stats(Some("js")).await.unwrap();
        assert_eq!(stats.groups[0].pinned_bytes, stats.groups[0].bytes);
        assert_eq!(stats.groups[0].pins, patterns);
    }
    // A quota far below what is pinned evicts only what is not.
    let quota = LifecyclePolicy { ttl: None, max_size: Some(10), ..policy };
    for setup in setups_of(&package_group(Format::Npm, quota.clone()), base()).await {
        let four =
            setup.package_file("js", "lodash", "4.17.21", "lodash/-/lodash-4.17.21.tgz", &[4; 40]).await;
        let react = setup.package_file("js", "react", "18.0.0", "react/-/react-18.0.0.tgz", &[1; 40]).await;
        setup.clock.advance(DAY);
        setup.lifecycle.sweep().await.unwrap();
        assert!(setup.has_row("js", &four).await, "pinned");
        assert!(!setup.has_row("js", &react).await, "evicted for the quota");
    }
}
