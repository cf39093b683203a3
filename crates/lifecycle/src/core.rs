//! [`Lifecycle`]: one cache's database, store, groups and settings, and when it sweeps.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use cache::Clock;
use metadata::Metadata;
use storage::BlobStore;

use crate::metrics::LifecycleMetrics;
use crate::observer::RemovalObserver;
use crate::schedule::Schedule;
use crate::settings::{GroupPolicy, SweepSettings};

/// The lifecycle of one cache (metadata database + object store).
pub struct Lifecycle {
    pub(crate) metadata: Metadata,
    pub(crate) store: BlobStore,
    pub(crate) groups: Vec<GroupPolicy>,
    pub(crate) settings: SweepSettings,
    pub(crate) clock: Clock,
    pub(crate) metrics: LifecycleMetrics,
    pub(crate) schedule: Schedule,
    /// Who hears of this process's removals at once.
    pub(crate) removals: OnceLock<Arc<dyn RemovalObserver>>,
    /// When this process last removed rows (its deletions wait the removal notice after it).
    pub(crate) last_removal: Mutex<Option<Instant>>,
}

impl Lifecycle {
    pub fn new(
        metadata: Metadata,
        store: BlobStore,
        groups: Vec<GroupPolicy>,
        settings: SweepSettings,
        clock: Clock,
        metrics: LifecycleMetrics,
    ) -> Self {
        Lifecycle {
            metadata,
            store,
            groups,
            settings,
            clock,
            metrics,
            schedule: Schedule::default(),
            removals: OnceLock::new(),
            last_removal: Mutex::new(None),
        }
    }

    /// Installs the observer of this process's removals (once).
    pub fn observe_removals(&self, observer: Arc<dyn RemovalObserver>) {
        let _ = self.removals.set(observer);
    }

    pub fn groups(&self) -> &[GroupPolicy] {
        &self.groups
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub(crate) fn group(&self, path: &str) -> Option<&GroupPolicy> {
        self.groups.iter().find(|group| group.path.as_str() == path)
    }

    /// The lease holder name of this node's deletions (a `sweeper:` name, which commits refuse).
    pub(crate) fn holder(&self) -> String {
        format!("{}{}", metadata::SWEEPER_HOLDER_PREFIX, self.settings.node)
    }
}
