//! Bytes of small committed objects (manifests, image configs) kept in memory, so the hottest hit
//! of a pull — the manifest by tag — costs no storage round trip (a blocking-pool hop on disk, a GET
//! on S3).
//!
//! Safe to cache because objects are content-addressed and immutable: a key always names the same
//! bytes. Bytes are checked against their digest when loaded, so a damaged file is refused rather
//! than pinned in memory. What leaves the cache (a purge, an eviction by this process) or is filled
//! again is dropped from memory too, so memory holds what the cache holds.

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use oci::Digest;
use storage::{BlobStore, StorageError};

/// Which objects are kept in memory and how many bytes of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmallObjectSettings {
    /// Objects up to this size are served from memory.
    pub max_object_size: u64,
    /// Total bytes kept; least recently used objects go first.
    pub capacity: u64,
}

/// Why a small object could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "stored object {key} does not match its record (expected {expected_size} bytes of {expected}, found {found_size} bytes of {found})"
    )]
    Damaged { key: String, expected: Digest, expected_size: u64, found: Digest, found_size: u64 },
}

#[derive(Clone)]
pub(crate) struct SmallObjects {
    cache: moka::future::Cache<String, Bytes>,
    max_object_size: u64,
}

impl SmallObjects {
    pub(crate) fn new(settings: SmallObjectSettings) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(settings.capacity)
            .weigher(|key: &String, bytes: &Bytes| u32::try_from(key.len() + bytes.len()).unwrap_or(u32::MAX))
            .build();
        SmallObjects { cache, max_object_size: settings.max_object_size }
    }

    /// Whether an object of `size` bytes is served from memory.
    pub(crate) fn holds(&self, size: u64) -> bool {
        size <= self.max_object_size
    }

    /// The whole object `key` (small enough for [`Self::holds`]), from memory or loaded once from
    /// `store` (concurrent misses of one key share the load).
    pub(crate) async fn get(
        &self,
        store: &BlobStore,
        key: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Bytes, std::sync::Arc<LoadError>> {
        self.cache.try_get_with_by_ref(key, load(store, key, digest, size)).await
    }

    /// Drops `key` from memory.
    pub(crate) async fn forget(&self, key: &str) {
        self.cache.invalidate(key).await;
    }

    /// Whether memory holds `key`.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.cache.contains_key(key)
    }
}

async fn load(store: &BlobStore, key: &str, digest: &Digest, size: u64) -> Result<Bytes, LoadError> {
    let reader = store.read(key, None).await?;
    // Bounded by the record's size (a small object's) plus one chunk, whatever the file holds.
    let mut bytes = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut stream = reader.stream;
    while let Some(chunk) = stream.try_next().await.map_err(StorageError::from)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > size {
            break;
        }
    }
    let found = Digest::of(&bytes);
    if bytes.len() as u64 != size || &found != digest {
        return Err(LoadError::Damaged {
            key: key.to_owned(),
            expected: digest.clone(),
            expected_size: size,
            found,
            found_size: bytes.len() as u64,
        });
    }
    Ok(bytes.freeze())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SETTINGS: SmallObjectSettings =
        SmallObjectSettings { max_object_size: 256 * 1024, capacity: 1 << 20 };

    pub(crate) async fn store_with(dir: &std::path::Path, bytes: &[u8]) -> (BlobStore, String, Digest) {
        let store = BlobStore::Filesystem(storage::FsStore::open(dir).await.unwrap());
        let digest = Digest::of(bytes);
        let mut upload = store.begin_upload(1 << 20, None).await.unwrap();
        upload.write(Bytes::copy_from_slice(bytes)).await.unwrap();
        let expected = storage::Expectation::digest(&digest, Some(bytes.len() as u64));
        let committed = upload.commit(&expected).await.unwrap();
        (store, committed.key, digest)
    }

    #[tokio::test]
    async fn a_loaded_object_is_served_without_touching_storage_again() {
        let dir = tempfile::tempdir().unwrap();
        let body = br#"{"schemaVersion":2}"#;
        let (store, key, digest) = store_with(dir.path(), body).await;
        let objects = SmallObjects::new(SETTINGS);

        let first = objects.get(&store, &key, &digest, body.len() as u64).await.unwrap();
        assert_eq!(&first[..], body);
        assert!(objects.contains(&key));
        store.delete(&key).await.unwrap();
        let second = objects.get(&store, &key, &digest, body.len() as u64).await.unwrap();
        assert_eq!(&second[..], body, "served from memory once the file is gone");

        objects.forget(&key).await;
        assert!(!objects.contains(&key), "forgotten");
        assert!(
            objects.get(&store, &key, &digest, body.len() as u64).await.is_err(),
            "read from storage again"
        );
    }

    #[tokio::test]
    async fn damaged_or_missing_objects_are_refused_and_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"config bytes";
        let (store, key, digest) = store_with(dir.path(), body).await;
        let objects = SmallObjects::new(SETTINGS);

        let wrong_size = objects.get(&store, &key, &digest, body.len() as u64 + 1).await.unwrap_err();
        assert!(matches!(*wrong_size, LoadError::Damaged { found_size: 12, .. }), "{wrong_size}");
        let other = Digest::of(b"something else");
        let wrong_digest = objects.get(&store, &key, &other, body.len() as u64).await.unwrap_err();
        assert!(matches!(*wrong_digest, LoadError::Damaged { .. }), "{wrong_digest}");
        assert!(!objects.contains(&key));

        store.delete(&key).await.unwrap();
        let missing = objects.get(&store, &key, &digest, body.len() as u64).await.unwrap_err();
        assert!(matches!(*missing, LoadError::Storage(StorageError::NotFound(_))), "{missing}");
        assert!(!objects.contains(&key));
    }
}
