//! How big an object the cache accepts, by kind.

use oci::ObjectKind;

/// Size limits for cached objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_blob_size: u64,
    pub max_manifest_size: u64,
}

impl Limits {
    /// The largest object of `kind` that may be fetched and stored.
    pub fn max_size(&self, kind: ObjectKind) -> u64 {
        match kind {
            ObjectKind::Blob => self.max_blob_size,
            ObjectKind::Manifest => self.max_manifest_size,
        }
    }
}
