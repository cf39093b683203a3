//! A request's answer as a value the control plane renders: serve what is stored, fetch it from
//! upstream (with what to verify it against), or answer a HEAD from upstream's — the same for
//! every format. Lookups that fail because the database does is answered as "not cached".

use http::HeaderMap;
use metadata::{BlobRecord, ManifestRecord};
use oci::{Digest, ObjectKind};
use upstream::ObjectHead;

use crate::state::Cache;

/// An object in storage, as its metadata row describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// The upstream that served it (empty: not known).
    pub upstream: String,
}

/// Why a cached document is served without upstream's confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Upstream could not be asked (down, timing out, rate-limiting).
    UpstreamUnreachable,
    /// Upstream answered 404 for it, and the group serves it anyway (`stale_on_404`).
    GoneUpstream,
}

/// What to do with a request for a stored object (an artifact or a document).
#[derive(Debug, Clone)]
pub enum Decision {
    /// A hit: serve the stored object; `stale` says why upstream did not confirm it, if it did not.
    Serve { object: StoredObject, stale: Option<Stale> },
    /// A miss: fetch it from upstream, stream it to the client and store it.
    Fetch(Fetch),
    /// A HEAD of an uncached object, answered from upstream's HEAD.
    UpstreamHead { head: ObjectHead, requested: Option<Digest> },
}

/// How to fetch a missing object.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub kind: ObjectKind,
    /// Where to fetch it, in the order the group asks its upstreams; never empty.
    pub sources: Vec<FetchSource>,
    /// What the bytes must hash to, when known up front (blobs and manifests by digest).
    pub verify: Option<injector::Checksum>,
    pub max_size: u64,
    /// Requests with the same key share one upstream fetch. Scoped per group, so a group is never
    /// served bytes its own upstream did not send.
    pub fill_key: String,
    /// Held for the group's admission verdict: the clients get the bytes only once the hook
    /// allowed them, which takes at most this long. None: served as they come.
    pub hold: Option<std::time::Duration>,
}

/// One upstream a fill may fetch the object from.
#[derive(Debug, Clone)]
pub struct FetchSource {
    /// The configured upstream's name: the gateway fetches through that upstream's own HTTP
    /// client (its CA, its redirect rules).
    pub upstream: String,
    /// Absolute upstream URL of the object.
    pub url: String,
    /// The complete upstream request header set (`Authorization`, `Accept`).
    pub headers: HeaderMap,
}

impl Fetch {
    /// The first source's URL (what the fill is named by in logs).
    pub fn first_url(&self) -> &str {
        self.sources.first().map_or("", |source| source.url.as_str())
    }
}

impl From<BlobRecord> for StoredObject {
    fn from(record: BlobRecord) -> Self {
        StoredObject {
            digest: record.digest,
            size: record.size,
            media_type: record.media_type,
            upstream: record.upstream,
        }
    }
}

impl From<&ManifestRecord> for StoredObject {
    fn from(record: &ManifestRecord) -> Self {
        StoredObject {
            digest: record.digest.clone(),
            size: record.size,
            media_type: record.media_type.clone(),
            upstream: record.upstream.clone(),
        }
    }
}

/// Reports the metadata database failing, once per interval however many requests see it.
static DATABASE_DOWN: telemetry::Throttle = telemetry::Throttle::new(std::time::Duration::from_secs(30));

impl Cache {
    /// A lookup's answer, or — when the database fails — "not cached": a miss is fetched from
    /// upstream and passes through uncached (its authorize call fails too), so clients are served
    /// while the database is down, and everything recovers by itself when it returns.
    pub(crate) fn degraded<T>(&self, lookup: Result<Option<T>, metadata::MetadataError>) -> Option<T> {
        match lookup {
            Ok(found) => found,
            Err(error) => {
                self.metrics.database_errors.inc();
                if let Some(held_back) = DATABASE_DOWN.admit() {
                    tracing::warn!(%error, held_back, "metadata database unavailable: answering as if nothing were cached");
                }
                None
            }
        }
    }
}
