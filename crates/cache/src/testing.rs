//! A cache for tests of this crate and the crates above it: one group `default` mirroring one
//! upstream (or asking several in order), over a fresh SQLite database (or a given database URL),
//! with a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use metadata::{DatabaseUrl, Metadata};
use upstream::{HttpOptions, UpstreamClient, UpstreamConfig, UpstreamMetrics};

use crate::{
    AccessPolicy, Cache, CacheSettings, CatalogSettings, Clock, GroupSettings, Groups, Limits, UpstreamRoute,
    Upstreams,
};

/// How long a tag stays fresh in a test cache.
pub const RECHECK: Duration = Duration::from_secs(60);
/// How long a test cache remembers an upstream's 404.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Size limits of a test cache.
pub const LIMITS: Limits = Limits { max_blob_size: 1 << 20, max_manifest_size: 1 << 16 };

/// A test cache and what it lives on.
pub struct TestCache {
    pub cache: Cache,
    pub clock: Clock,
    /// The database under the cache (for access tokens, leases).
    pub metadata: Metadata,
    /// Holds the SQLite file: keep it as long as the cache.
    pub dir: tempfile::TempDir,
}

/// A client of the upstream at `url`, named `lab`.
pub fn upstream_client(url: &str) -> UpstreamClient {
    named_upstream_client("lab", url)
}

/// A client of the upstream at `url`, named `name`.
pub fn named_upstream_client(name: &str, url: &str) -> UpstreamClient {
    upstream_client_with(name, url, UpstreamMetrics::default())
}

/// A client of the upstream at `url`, named `name`, counting into `metrics`.
pub fn upstream_client_with(name: &str, url: &str, metrics: UpstreamMetrics) -> UpstreamClient {
    UpstreamClient::new(UpstreamConfig {
        name: name.into(),
        url: url.parse().unwrap(),
        credentials: None,
        http: HttpOptions {
            connect_timeout: Duration::from_secs(2),
            header_timeout: Duration::from_secs(5),
            extra_ca_pem: Vec::new(),
            redirect_allow: Vec::new(),
            realm_allow: Vec::new(),
            proxy: None,
        },
        metrics,
        files_url: None,
    })
    .unwrap()
}

/// A cache whose group `default` mirrors the upstream at `upstream_url` (also reachable as
/// `/v2/lab/<image>` when `path_prefix`), on `database` or a fresh SQLite file.
pub async fn test_cache(upstream_url: &str, path_prefix: bool, database: Option<String>) -> TestCache {
    let lab = upstream_client(upstream_url);
    let route = UpstreamRoute {
        upstream: lab.clone(),
        format: crate::Format::Oci,
        path_prefix,
        implicit_access: AccessPolicy::anonymous(),
    };
    test_cache_of(Upstreams::single(lab), vec![route], database).await
}

/// A cache whose group `default` asks `upstreams` in order (none reachable by a mirror form).
pub async fn test_cache_with_upstreams(upstreams: Vec<UpstreamClient>) -> TestCache {
    test_cache_of(Upstreams::new(upstreams).unwrap(), Vec::new(), None).await
}

async fn test_cache_of(
    upstreams: Upstreams,
    routes: Vec<UpstreamRoute>,
    database: Option<String>,
) -> TestCache {
    let dir = tempfile::tempdir().unwrap();
    let url = database.unwrap_or_else(|| format!("sqlite:{}", dir.path().join("meta.db").display()));
    let metadata = Metadata::connect(&DatabaseUrl::new(url)).await.unwrap();
    let groups = Groups::new(
        [GroupSettings {
            path: oci::GroupPath::parse("default").unwrap(),
            format: crate::Format::Oci,
            upstreams,
            manifest_recheck: RECHECK,
            access: AccessPolicy::anonymous(),
            lifecycle: crate::LifecyclePolicy::default(),
            policy: crate::PolicyCell::new(crate::PullPolicy::open(NEGATIVE_TTL)),
        }],
        routes,
        RECHECK,
        crate::LifecyclePolicy::default(),
        crate::PullPolicy::open(NEGATIVE_TTL),
    )
    .unwrap();
    let clock = Clock::manual(1_000_000);
    let settings = CacheSettings {
        limits: LIMITS,
        recheck_timeout: Duration::from_secs(2),
        lease_ttl: Duration::from_secs(30),
        catalog: CatalogSettings { capacity: 100, ttl: Duration::from_secs(60) },
        not_found_entries: 1_000,
    };
    let cache = Cache::new(metadata.clone(), groups, settings, clock.clone(), crate::CacheMetrics::default());
    TestCache { cache, clock, metadata, dir }
}
