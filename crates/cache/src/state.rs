//! [`Cache`]: everything a decision needs, shared by all requests.

use std::time::Duration;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use metadata::{DocumentKey, ManifestKey, Metadata, MetadataError, ReferrersKey, ReferrersRecord};
use oci::{GroupPath, ImageAddress};
use upstream::{ObjectHead, UpstreamError};

use crate::admission::{AdmissionHook, Admissions};
use crate::catalog::{Catalog, CatalogSettings};
use crate::gone_upstream::GoneUpstream;
use crate::groups::{Groups, ResolveError, Resolved};
use crate::limits::Limits;
use crate::metrics::CacheMetrics;
use crate::not_found::{NotFoundMemory, PackageMissing};
use crate::reads::ReadLog;
use crate::single_flight::SingleFlight;
use metadata::Clock;

/// Limits and timings of the cache's decisions.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub limits: Limits,
    /// Longest wait for the HEAD that revalidates a stale tag; past it the cached copy is served.
    pub recheck_timeout: Duration,
    /// How long a fill lease lasts without renewal.
    pub lease_ttl: Duration,
    pub catalog: CatalogSettings,
    /// Upstream 404s remembered at once (each for its group's `negative_ttl`).
    pub not_found_entries: u64,
}

/// Tags listed as served although gone upstream (`stale_on_404`), at most.
const GONE_ENTRIES: u64 = 10_000;

/// The cache's domain state: groups, the catalog over the metadata database, the clock, and the
/// revalidations in flight.
pub struct Cache {
    pub(crate) catalog: Catalog,
    pub(crate) reads: ReadLog,
    /// The database's removal generation last seen: when another process removes rows, what
    /// this one remembers is dropped.
    generation: AtomicI64,
    pub(crate) groups: Groups,
    pub(crate) settings: CacheSettings,
    pub(crate) clock: Clock,
    /// Tag revalidations in flight: upstream's answer and the upstream that gave it.
    pub(crate) rechecks: SingleFlight<ManifestKey, Result<(ObjectHead, String), UpstreamError>>,
    /// Referrers lists being asked of upstream: its answer, as recorded.
    pub(crate) referrer_checks: SingleFlight<ReferrersKey, Result<ReferrersRecord, UpstreamError>>,
    /// Upstream 404s, answered again from memory for their group's `negative_ttl`.
    pub(crate) not_found: NotFoundMemory,
    /// The same, for package documents and files.
    pub(crate) package_not_found: NotFoundMemory<PackageMissing>,
    /// Package documents being read by the control plane for a file's checksum (a file asked
    /// for before its document): one upstream GET however many ask.
    pub(crate) document_reads: SingleFlight<DocumentKey, Result<(), UpstreamError>>,
    /// Package document fills decided here and not recorded yet.
    pub(crate) documents_filling: crate::filling_documents::FillingDocuments,
    /// Tags served although upstream now answers 404 for them (`stale_on_404`).
    pub(crate) gone: GoneUpstream,
    pub(crate) metrics: CacheMetrics,
    pub(crate) commits: OnceLock<Arc<dyn CommitObserver>>,
    /// Admission verdicts being asked, and hooks' recent silences.
    pub(crate) admissions: Admissions,
    /// What asks the groups' admission hooks (the control plane's HTTP client).
    pub(crate) hook: OnceLock<Arc<dyn AdmissionHook>>,
}

/// Told of every object a fill records, with its group and size (the lifecycle keeps its quota
/// estimates current with it, and sweeps early when a quota is passed).
pub trait CommitObserver: Send + Sync {
    fn committed(&self, group: &GroupPath, bytes: u64);
}

impl Cache {
    pub fn new(
        metadata: Metadata,
        groups: Groups,
        settings: CacheSettings,
        clock: Clock,
        metrics: CacheMetrics,
    ) -> Self {
        Cache {
            catalog: Catalog::new(metadata, settings.catalog),
            not_found: NotFoundMemory::new(settings.not_found_entries),
            package_not_found: NotFoundMemory::new(settings.not_found_entries),
            document_reads: SingleFlight::default(),
            documents_filling: Default::default(),
            reads: ReadLog::default(),
            generation: AtomicI64::new(i64::MIN),
            groups,
            settings,
            clock,
            rechecks: SingleFlight::default(),
            referrer_checks: SingleFlight::default(),
            gone: GoneUpstream::new(GONE_ENTRIES),
            metrics,
            commits: OnceLock::new(),
            admissions: Admissions::new(),
            hook: OnceLock::new(),
        }
    }

    /// The group that serves a request and the image name within it.
    pub fn resolve(&self, address: &ImageAddress, query: Option<&str>) -> Result<Resolved, ResolveError> {
        self.groups.resolve(address, query)
    }

    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    pub fn limits(&self) -> Limits {
        self.settings.limits
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Installs the observer of recorded objects (once).
    pub fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        let _ = self.commits.set(observer);
    }

    pub(crate) fn committed(&self, group: &GroupPath, bytes: u64) {
        self.reads.fetched(group, bytes);
        if let Some(observer) = self.commits.get() {
            observer.committed(group, bytes);
        }
    }

    /// The metadata database (for the lifecycle, which works on rows in bulk).
    pub fn metadata(&self) -> &Metadata {
        self.catalog.metadata()
    }

    /// Writes the reads and traffic noted since the last flush, then checks whether rows were
    /// removed (by a sweep, a purge, another node) and if so forgets what it remembers, so a purged
    /// tag is fetched again. Runs every `[cache] access_flush_interval`.
    pub async fn flush_reads(&self) -> Result<(), MetadataError> {
        let batch = self.reads.take();
        if !batch.is_empty() {
            let now = self.clock.now_ms();
            let hour = now - now.rem_euclid(HOUR_MS);
            let blobs: Vec<_> = batch.blobs.iter().map(|(key, reads)| (key.clone(), *reads)).collect();
            let manifests = batch.manifest_rows();
            let traffic: Vec<_> =
                batch.traffic.iter().map(|(group, traffic)| (group.clone(), *traffic)).collect();
            let taken_back: Vec<_> =
                batch.taken_back.iter().map(|(group, traffic)| (group.clone(), *traffic)).collect();
            let metadata = self.catalog.metadata();
            let written = async {
                metadata.record_reads(&blobs, &manifests).await?;
                metadata.add_traffic(hour, &traffic).await?;
                // After the hits were added: usually the hit taken back is in this very batch.
                metadata.take_back_hits(hour, &taken_back).await
            };
            if let Err(error) = written.await {
                self.reads.restore(batch);
                return Err(error);
            }
        }
        self.notice_removals().await
    }

    /// Rows were removed by this process (a sweep, a purge, verdicts forgotten): forgets what is
    /// remembered at once,
    /// rather than at the next check of the generation.
    pub fn forget_removed_rows(&self) {
        self.catalog.forget_all();
        self.admissions.forget();
    }

    /// Notices rows removed by any process: checks the removal generation every `every` and, on
    /// PostgreSQL, as soon as a removal is notified; until `stop` completes.
    pub async fn watch_removals(&self, every: Duration, stop: impl Future<Output = ()>) {
        let watch = self.listen_for_removals().await;
        self.follow_removals(watch, every, stop).await;
    }

    /// Starts listening for removal notifications (PostgreSQL; `None` when that fails).
    pub async fn listen_for_removals(&self) -> Option<metadata::RemovalWatch> {
        match self.catalog.metadata().watch_removals().await {
            Ok(watch) => Some(watch),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for removals; checking the database periodically only");
                None
            }
        }
    }

    /// [`Cache::watch_removals`] with a listener already started.
    pub async fn follow_removals(
        &self,
        mut watch: Option<metadata::RemovalWatch>,
        every: Duration,
        stop: impl Future<Output = ()>,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => return,
                notified = notification(&mut watch) => {
                    if let Err(error) = notified {
                        // Reconnected by the next wait (a pause first: the database may be down);
                        // the ticks cover the gap.
                        tracing::debug!(%error, "removal notifications interrupted");
                        tokio::time::sleep(every.min(Duration::from_secs(1))).await;
                    }
                }
                _ = ticks.tick() => {}
            }
            if let Err(error) = self.notice_removals().await
                && let Some(held_back) = REMOVALS_UNCHECKED.admit()
            {
                tracing::warn!(%error, held_back, "cannot check the database for removed rows");
            }
        }
    }

    /// Drops remembered rows when the database's removal generation moved.
    pub async fn notice_removals(&self) -> Result<(), MetadataError> {
        let current = self.catalog.metadata().generation().await?;
        let previous = self.generation.swap(current, Ordering::AcqRel);
        // The first check knows no earlier generation: forgetting once then costs a few lookups.
        if previous != current {
            self.catalog.forget_all();
            self.admissions.forget();
        }
        Ok(())
    }
}

const HOUR_MS: i64 = 3_600_000;

/// Reports failed removal checks once per interval.
static REMOVALS_UNCHECKED: telemetry::Throttle = telemetry::Throttle::new(Duration::from_secs(60));

/// The next removal notification; never, without a listener.
async fn notification(watch: &mut Option<metadata::RemovalWatch>) -> Result<(), MetadataError> {
    match watch {
        Some(watch) => watch.notified().await,
        None => std::future::pending().await,
    }
}
