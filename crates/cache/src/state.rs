//! [`Cache`]: everything a decision needs, shared by all requests.

use std::time::Duration;

use metadata::{ManifestKey, Metadata};
use oci::ImageAddress;
use upstream::{ObjectHead, UpstreamError};

use crate::catalog::{Catalog, CatalogSettings};
use crate::groups::{Groups, ResolveError, Resolved};
use crate::limits::Limits;
use crate::metrics::CacheMetrics;
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
}

/// The cache's domain state: groups, the catalog over the metadata database, the clock, and the
/// revalidations in flight.
pub struct Cache {
    pub(crate) catalog: Catalog,
    pub(crate) groups: Groups,
    pub(crate) settings: CacheSettings,
    pub(crate) clock: Clock,
    pub(crate) rechecks: SingleFlight<ManifestKey, Result<ObjectHead, UpstreamError>>,
    pub(crate) metrics: CacheMetrics,
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
            groups,
            settings,
            clock,
            rechecks: SingleFlight::default(),
            metrics,
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
}
