//! Content-addressed object storage: verified atomic writes, ranged reads, start-up cleanup.
//!
//! An object is written once under `blobs/sha256/<2 hex>/<64 hex>` and shared by every group; the
//! metadata decides who may see it. Writes go to a staged temp file that is hashed as it is written
//! and only becomes visible (rename) when its size and sha256 match what was expected.

mod filesystem;
mod hashing;
mod paced;
mod s3;
mod s3_http;
mod s3_uploads;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use injector::KeyError;
use oci::Digest;
use tokio::sync::watch;

pub use filesystem::{FsStore, FsUpload, FsVerified, VerifiedSpool};
pub use hashing::{ContentHasher, Expectation, Hashed};
/// The client [`S3Store`] is built on, so tests and tools can reach its bucket the same way.
pub use object_store;
pub use s3::{S3Settings, S3Store, S3Upload, S3Verified};
pub use s3_http::S3Proxy;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error(transparent)]
    BadKey(#[from] KeyError),
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("digest mismatch: expected {expected}, computed {actual}")]
    DigestMismatch { expected: injector::Checksum, actual: injector::Checksum },
    #[error("the upload was not hashed in {0}, the algorithm it is expected in")]
    NotHashedIn(&'static str),
    #[error("object exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("upload writer stopped unexpectedly")]
    WriterGone,
    #[error("the writer wrote {written} bytes of the {queued} queued")]
    WriteIncomplete { queued: u64, written: u64 },
    #[error("a storage task failed: {0}")]
    TaskFailed(String),
}

impl From<tokio::task::JoinError> for StorageError {
    fn from(error: tokio::task::JoinError) -> Self {
        StorageError::TaskFailed(error.to_string())
    }
}

impl StorageError {
    /// Whether the error is about the bytes (upstream's fault), not about our storage.
    pub fn is_content_error(&self) -> bool {
        matches!(
            self,
            StorageError::SizeMismatch { .. }
                | StorageError::DigestMismatch { .. }
                | StorageError::TooLarge { .. }
        )
    }
}

/// An object found by listing a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its content-addressed key (`blobs/sha256/…`).
    pub key: String,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// A stream of object bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// An opened object (or a range of it).
pub struct ObjectReader {
    /// Bytes the stream will yield.
    pub len: u64,
    pub stream: ByteStream,
}

/// The outcome of a verified commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub key: String,
    pub digest: Digest,
    pub size: u64,
}

/// Reads a running upload's bytes back while they are written: every client of a fill tails it
/// through one of these. Positioned reads need no seek, so clones share one open file, which stays
/// readable after the upload is committed (renamed) or removed.
#[derive(Debug, Clone)]
pub struct SpoolReader {
    file: Arc<std::fs::File>,
    progress: watch::Receiver<u64>,
    /// Spool reads are limited store-wide, so lagging readers never crowd hits out of the
    /// blocking pool.
    reads: Arc<tokio::sync::Semaphore>,
}

impl SpoolReader {
    /// How many bytes are readable, updated as the writer writes.
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.progress.clone()
    }

    /// Up to `max` bytes from `offset` (on a blocking thread: a disk read may stall).
    pub async fn read_at(&self, offset: u64, max: usize) -> std::io::Result<Bytes> {
        use std::os::unix::fs::FileExt as _;
        let file = self.file.clone();
        let permit = self.reads.clone().acquire_owned().await.map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut buffer = bytes::BytesMut::zeroed(max);
            let read = file.read_at(&mut buffer, offset)?;
            if read == 0 && max > 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "spool shorter than published",
                ));
            }
            buffer.truncate(read);
            Ok(buffer.freeze())
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// A byte range of an object, as resolved from a `Range` header.
pub type ByteRange = Range<u64>;

/// The configured object store. One variant per backend; callers never see which.
#[derive(Debug, Clone)]
pub enum BlobStore {
    Filesystem(FsStore),
    S3(S3Store),
}

/// An upload whose bytes checked out, waiting to be made durable and visible.
pub enum Verified {
    Filesystem(FsVerified),
    S3(S3Verified),
}

impl Verified {
    /// The local file holding the verified bytes until they are persisted: for a check of the
    /// whole file (read it blocking, off the runtime).
    pub fn spool_path(&self) -> &std::path::Path {
        &self.spool().path
    }

    fn spool(&self) -> &VerifiedSpool {
        match self {
            Verified::Filesystem(verified) => verified.spool(),
            Verified::S3(verified) => verified.spool(),
        }
    }

    pub fn digest(&self) -> &Digest {
        &self.spool().digest
    }

    pub fn size(&self) -> u64 {
        self.spool().size
    }

    pub async fn persist(self) -> Result<Committed, StorageError> {
        match self {
            Verified::Filesystem(verified) => verified.persist().await,
            Verified::S3(verified) => verified.persist().await,
        }
    }
}

/// A running staged write into a [`BlobStore`].
pub enum Upload {
    Filesystem(FsUpload),
    S3(S3Upload),
}

impl BlobStore {
    /// Backend name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            BlobStore::Filesystem(_) => "filesystem",
            BlobStore::S3(_) => "s3",
        }
    }

    pub async fn stat(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self {
            BlobStore::Filesystem(store) => store.stat(key).await,
            BlobStore::S3(store) => store.stat(key).await,
        }
    }

    pub async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<ObjectReader, StorageError> {
        match self {
            BlobStore::Filesystem(store) => store.read(key, range).await,
            BlobStore::S3(store) => store.read(key, range).await,
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            BlobStore::Filesystem(store) => store.delete(key).await,
            BlobStore::S3(store) => store.delete(key).await,
        }
    }

    pub async fn remove_orphans(&self) -> Result<usize, StorageError> {
        match self {
            BlobStore::Filesystem(store) => store.remove_orphans().await,
            BlobStore::S3(store) => store.remove_orphans().await,
        }
    }

    /// Removes staged writes (spools) untouched for `older_than`, while the process runs.
    pub async fn remove_stale_temp(&self, older_than: std::time::Duration) -> Result<usize, StorageError> {
        match self {
            BlobStore::Filesystem(store) => store.remove_stale_temp(older_than).await,
            BlobStore::S3(store) => store.remove_stale_temp(older_than).await,
        }
    }

    /// Aborts multipart uploads started more than `older_than` ago (S3; nothing on disk).
    pub async fn abort_stale_uploads(&self, older_than: std::time::Duration) -> Result<usize, StorageError> {
        match self {
            BlobStore::Filesystem(_) => Ok(0),
            BlobStore::S3(store) => store.abort_stale_uploads(older_than).await,
        }
    }

    /// Every committed object (content-addressed keys only; anything else in the bucket is not ours).
    pub fn list_objects(
        &self,
    ) -> futures_util::stream::BoxStream<'static, Result<ListedObject, StorageError>> {
        match self {
            BlobStore::Filesystem(store) => store.list_objects(),
            BlobStore::S3(store) => store.list_objects(),
        }
    }

    /// Starts a staged write of at most `limit` bytes, hashed in sha256 and, when given, in the
    /// algorithm of the checksum it will be verified against.
    pub async fn begin_upload(
        &self,
        limit: u64,
        declared: Option<injector::ChecksumAlgorithm>,
    ) -> Result<Upload, StorageError> {
        match self {
            BlobStore::Filesystem(store) => {
                Ok(Upload::Filesystem(store.begin_upload(limit, declared).await?))
            }
            BlobStore::S3(store) => Ok(Upload::S3(store.begin_upload(limit, declared).await?)),
        }
    }

    /// Where a client may fetch an object directly (a presigned URL), when the store offers it
    /// and is configured to.
    pub async fn redirect_url(&self, key: &str) -> Result<Option<String>, StorageError> {
        match self {
            BlobStore::Filesystem(_) => Ok(None),
            BlobStore::S3(store) => store.presigned_url(key).await,
        }
    }
}

impl Upload {
    /// A reader of the bytes written so far.
    pub fn spool_reader(&self) -> SpoolReader {
        match self {
            Upload::Filesystem(upload) => upload.spool_reader(),
            Upload::S3(upload) => upload.spool_reader(),
        }
    }

    pub async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), StorageError> {
        match self {
            Upload::Filesystem(upload) => upload.write(chunk).await,
            Upload::S3(upload) => upload.write(chunk).await,
        }
    }

    pub async fn commit(self, expected: &Expectation) -> Result<Committed, StorageError> {
        match self {
            Upload::Filesystem(upload) => upload.commit(expected).await,
            Upload::S3(upload) => upload.commit(expected).await,
        }
    }

    /// Checks the bytes; the object is neither durable nor visible until [`Verified::persist`].
    pub async fn verify(self, expected: &Expectation) -> Result<Verified, StorageError> {
        match self {
            Upload::Filesystem(upload) => Ok(Verified::Filesystem(upload.verify(expected).await?)),
            Upload::S3(upload) => Ok(Verified::S3(upload.verify(expected).await?)),
        }
    }

    /// Verifies like [`Upload::commit`] but stores nothing.
    pub async fn verify_and_discard(self, expected: &Expectation) -> Result<Committed, StorageError> {
        match self {
            Upload::Filesystem(upload) => upload.verify_and_discard(expected).await,
            Upload::S3(upload) => upload.verify_and_discard(expected).await,
        }
    }

    pub async fn abort(self) {
        match self {
            Upload::Filesystem(upload) => upload.abort().await,
            Upload::S3(upload) => upload.abort().await,
        }
    }

    /// Gives up storing (storage failed): removes what was staged, and returns the hash of every
    /// byte accepted, so the caller can stream on and still verify.
    pub async fn abandon(self) -> ContentHasher {
        match self {
            Upload::Filesystem(upload) => upload.abandon().await,
            Upload::S3(upload) => upload.abandon().await,
        }
    }
}
