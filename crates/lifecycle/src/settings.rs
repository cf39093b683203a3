//! What the lifecycle is configured with: each group's policy and the store-wide settings.

use std::time::Duration;

use cache::{Format, LifecyclePolicy};
use oci::GroupPath;

/// A group as the lifecycle sees it.
#[derive(Debug, Clone)]
pub struct GroupPolicy {
    pub path: GroupPath,
    /// The protocol it proxies: shown beside its figures, never acted on (the lifecycle treats
    /// every format's rows alike).
    pub format: Format,
    pub policy: LifecyclePolicy,
}

/// Store-wide settings.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// Bytes the whole store may hold; `None`: no store-wide quota.
    pub max_size: Option<u64>,
    /// Percent of a quota past which eviction starts…
    pub high_watermark: u8,
    /// …and down to which it evicts.
    pub low_watermark: u8,
    /// How long an object whose last row went stays in storage before it is deleted (readers that
    /// started before keep reading; S3 has no open-file semantics).
    pub delete_delay: Duration,
    /// Age before an object no row knows (a crash between commit and record) is collected.
    pub orphan_grace: Duration,
    /// Age of a spool or an S3 multipart upload after which it counts as abandoned.
    pub upload_grace: Duration,
    /// How long the sweep lease lasts without renewal (a sweeper that died is replaced after it).
    pub lease_ttl: Duration,
    /// How long after its last row went an object stays in storage at least, whoever removed the
    /// row: every control plane forgets removed rows within this (they check the database's
    /// removal generation more often), so none still hands out the object when it goes.
    pub removal_notice: Duration,
    /// Objects recorded less than this long ago are never evicted to make room for a quota (a
    /// store smaller than one image would otherwise lose the image just pulled).
    pub keep_recent: Duration,
    /// This node's name, in the sweep lease and object claims.
    pub node: String,
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `percent` of `max_size`.
pub(crate) fn watermark(max_size: u64, percent: u8) -> u64 {
    (u128::from(max_size) * u128::from(percent) / 100) as u64
}

/// A start-up warning for a quota (`what`: the store's or a group's) in which one sweep cannot
/// make room for the largest blob: it frees `max_size × (high − low watermark)`, and an object
/// larger than that evicts everything else (or, being just recorded, overruns the quota until it
/// is a minute old).
pub(crate) fn headroom_warning(
    what: &str,
    max_size: u64,
    high: u8,
    low: u8,
    max_blob_size: u64,
) -> Option<String> {
    let freed = watermark(max_size, high).saturating_sub(watermark(max_size, low));
    (freed < max_blob_size).then(|| {
        format!(
            "{what} max_size {max_size} bytes with watermarks {high}/{low} % frees {freed} bytes per sweep, \
             less than [limits] max_blob_size ({max_blob_size} bytes): one large layer evicts everything \
             else; raise max_size or lower max_blob_size"
        )
    })
}
