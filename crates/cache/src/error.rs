//! Why a cache decision or record failed.

use std::time::Duration;

use oci::{Digest, ObjectKind};

use crate::admission::AdmittedBy;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The upstream failed or refused while deciding (token, HEAD).
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    /// The upstream answered 404 for this object within the group's `negative_ttl`: not asked
    /// again.
    #[error("{} unknown to upstream registry (its 404 is remembered for {})", kind.as_str(), telemetry::HumanDuration(*window))]
    NotFoundRemembered { kind: ObjectKind, window: Duration },
    /// The group's admission hook refused the object (or gave no verdict, and the group refuses
    /// then): `reason` is the hook's.
    #[error("refused by the admission hook: {reason}")]
    AdmissionRefused { digest: Digest, reason: String, by: AdmittedBy },
    #[error("metadata: {0}")]
    Metadata(#[from] metadata::MetadataError),
}
