//! S3-compatible object storage (through `object_store`). A fill writes a local spool (hashed as
//! bytes come, tailed by clients that join the fill); once size and sha256 check out — after the
//! clients are served — the spool is uploaded to the object's content-addressed key (one PUT, or a
//! multipart upload streamed from the file, aborted on failure), by a bounded number of uploads at
//! a time, so S3 part buffers stay bounded whatever the number of fills.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer as _;
use object_store::{GetOptions, GetRange, ObjectStore as _, ObjectStoreExt as _, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt as _;

use crate::filesystem::{FsStore, FsUpload, VerifiedSpool};
use crate::s3_http::{S3_CONNECT_TIMEOUT, S3_READ_TIMEOUT, S3Connector, S3Proxy};
use crate::s3_uploads::UploadSweeper;
use injector::{digest_of_key, storage_key};
use secrecy::{ExposeSecret as _, SecretString};

use crate::{ByteRange, Committed, Expectation, ListedObject, ObjectReader, SpoolReader, StorageError};

/// Size of a multipart part (S3's minimum is 5 MiB), and the threshold below which one PUT is used.
const PART_SIZE: usize = 8 << 20;
/// Parts uploaded concurrently per upload.
const PART_CONCURRENCY: usize = 2;
/// Uploads to the bucket running at once (each holds up to `(1 + PART_CONCURRENCY) × PART_SIZE`).
pub const UPLOAD_SLOTS: usize = 4;

/// Where and how to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:8014`; `None` means AWS.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`), what most S3-compatible servers want.
    pub path_style: bool,
    /// Explicit credentials; when absent, the standard `AWS_*` environment is used.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// Key prefix inside the bucket (e.g. `depproxy/`).
    pub prefix: String,
    /// Answer hits with a 307 to a presigned URL instead of streaming through the gateway.
    pub redirect: bool,
    /// How long a presigned URL stays valid.
    pub presigned_url_ttl: Duration,
    /// Local directory for fill spools.
    pub spool_dir: PathBuf,
    /// The forward proxy to reach the bucket through (`[egress] proxy`); never the environment's.
    /// (Boxed: the settings travel inside an enum whose other variant is empty.)
    pub proxy: Option<Box<S3Proxy>>,
}

/// An S3 bucket plus a local spool directory.
#[derive(Debug, Clone)]
pub struct S3Store {
    store: Arc<AmazonS3>,
    spool: Arc<Spool>,
    prefix: String,
    redirect: bool,
    presigned_url_ttl: Duration,
    uploads: Arc<tokio::sync::Semaphore>,
    sweeper: UploadSweeper,
}

/// No deadline on a whole request — a multi-gigabyte object streamed to a slow client takes as
/// long as it takes (object_store's default 30 s would cut it) — but a stalled read or connect
/// fails fast, so a hit whose bucket is down falls back to the upstream within seconds.
fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(S3_CONNECT_TIMEOUT)
        .with_read_timeout(S3_READ_TIMEOUT)
}

/// A few quick retries (object_store's default is 10 over up to 3 minutes, during which a client
/// would hang on a down bucket).
fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
    }
}

/// The local directory fills spool to, created by the first fill (or [`S3Store::remove_orphans`],
/// which a gateway calls at start-up): a control plane opens the bucket too, but never fills, so
/// it needs no local directory at all.
#[derive(Debug)]
struct Spool {
    dir: PathBuf,
    store: tokio::sync::OnceCell<FsStore>,
}

impl Spool {
    async fn open(&self) -> Result<&FsStore, StorageError> {
        self.store.get_or_try_init(|| FsStore::open(self.dir.clone())).await
    }

    /// The spool store if it exists (opened here, or left on disk by an earlier run).
    async fn existing(&self) -> Result<Option<&FsStore>, StorageError> {
        if self.store.initialized() || tokio::fs::try_exists(&self.dir).await? {
            return self.open().await.map(Some);
        }
        Ok(None)
    }
}

fn s3_error(error: object_store::Error) -> StorageError {
    match error {
        object_store::Error::NotFound { path, .. } => StorageError::NotFound(path),
        other => StorageError::Io(std::io::Error::other(other)),
    }
}

impl S3Store {
    pub async fn open(settings: S3Settings) -> Result<Self, StorageError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_client_options(client_options())
            .with_http_connector(S3Connector { proxy: settings.proxy.as_deref().cloned() })
            .with_retry(retry_config())
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(!settings.path_style);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let store = builder.build().map_err(s3_error)?;
        let spool = Arc::new(Spool { dir: settings.spool_dir, store: tokio::sync::OnceCell::new() });
        Ok(S3Store {
            store: Arc::new(store),
            spool,
            prefix: settings.prefix,
            redirect: settings.redirect,
            presigned_url_ttl: settings.presigned_url_ttl,
            uploads: Arc::new(tokio::sync::Semaphore::new(UPLOAD_SLOTS)),
            sweeper: UploadSweeper::new(settings.proxy.as_deref())?,
        })
    }

    fn path(&self, key: &str) -> Result<ObjectPath, StorageError> {
        digest_of_key(key)?;
        Ok(ObjectPath::from(format!("{}{key}", self.prefix)))
    }

    pub async fn stat(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.store.head(&self.path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(s3_error(error)),
        }
    }

    pub async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<ObjectReader, StorageError> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        let result = self.store.get_opts(&self.path(key)?, options).await.map_err(s3_error)?;
        let len = result.range.end - result.range.start;
        let stream = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok(ObjectReader { len, stream })
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(s3_error(error)),
        }
    }

    /// A presigned GET URL for a hit, when redirects are enabled.
    pub async fn presigned_url(&self, key: &str) -> Result<Option<String>, StorageError> {
        if !self.redirect {
            return Ok(None);
        }
        let path = self.path(key)?;
        let url = self
            .store
            .signed_url(http::Method::GET, &path, self.presigned_url_ttl)
            .await
            .map_err(s3_error)?;
        Ok(Some(url.to_string()))
    }

    /// Removes fill spools left by a crash. Incomplete multipart uploads are not touched here:
    /// see [`S3Store::abort_stale_uploads`].
    /// Creates the spool directory when missing.
    pub async fn remove_orphans(&self) -> Result<usize, StorageError> {
        self.spool.open().await?.remove_orphans().await
    }

    /// Removes spools untouched for `older_than` (none when there is no spool directory).
    pub async fn remove_stale_temp(&self, older_than: Duration) -> Result<usize, StorageError> {
        match self.spool.existing().await? {
            Some(spool) => spool.remove_stale_temp(older_than).await,
            None => Ok(0),
        }
    }

    /// Every committed object under this store's prefix.
    pub fn list_objects(
        &self,
    ) -> futures_util::stream::BoxStream<'static, Result<ListedObject, StorageError>> {
        let prefix = self.prefix.clone();
        let under = ObjectPath::from(format!("{prefix}blobs/sha256"));
        self.store
            .list(Some(&under))
            .map_err(s3_error)
            .try_filter_map(move |meta| {
                let key = meta.location.as_ref().strip_prefix(prefix.as_str()).map(str::to_owned);
                let listed = key.filter(|key| digest_of_key(key).is_ok()).map(|key| ListedObject {
                    key,
                    size: meta.size,
                    modified: std::time::SystemTime::from(meta.last_modified),
                });
                std::future::ready(Ok(listed))
            })
            .boxed()
    }

    /// Aborts the incomplete multipart uploads under this store's prefix that were initiated at
    /// least `older_than` ago (a node died mid-upload), returning how many it aborted. Only keys
    /// this store writes are considered, so a shared bucket's other uploads are safe; but a live
    /// upload older than `older_than` would be aborted too, so it must exceed the longest upload.
    pub async fn abort_stale_uploads(&self, older_than: Duration) -> Result<usize, StorageError> {
        self.sweeper.abort_stale(&self.store, &self.prefix, older_than).await
    }

    /// Starts a fill: bytes go to a local spool (tailed by clients, hashed as they come); the
    /// bucket gets them once they are verified ([`S3Verified::persist`]).
    pub async fn begin_upload(
        &self,
        limit: u64,
        declared: Option<injector::ChecksumAlgorithm>,
    ) -> Result<S3Upload, StorageError> {
        Ok(S3Upload {
            store: self.clone(),
            spool: self.spool.open().await?.begin_upload(limit, declared).await?,
        })
    }

    /// Uploads a verified spool file to its key: one PUT when it fits one part, else a multipart
    /// upload streamed from the file. At most [`UPLOAD_SLOTS`] run at once, so the part buffers of
    /// every fill together stay under `UPLOAD_SLOTS × (1 + PART_CONCURRENCY) × PART_SIZE`.
    async fn upload_file(
        &self,
        path: &std::path::Path,
        key: &ObjectPath,
        size: u64,
    ) -> Result<(), StorageError> {
        let _slot = self.uploads.acquire().await.map_err(|_| StorageError::WriterGone)?;
        if size <= PART_SIZE as u64 {
            let bytes = tokio::fs::read(path).await?;
            self.store.put(key, PutPayload::from(bytes)).await.map_err(s3_error)?;
            return Ok(());
        }
        let mut file = tokio::fs::File::open(path).await?;
        let mut upload = WriteMultipart::new_with_chunk_size(
            self.store.put_multipart(key).await.map_err(s3_error)?,
            PART_SIZE,
        );
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(read) => read,
                Err(error) => {
                    let _ = upload.abort().await;
                    return Err(error.into());
                }
            };
            if read == 0 {
                break;
            }
            if let Err(error) = upload.wait_for_capacity(PART_CONCURRENCY).await {
                let _ = upload.abort().await;
                return Err(s3_error(error));
            }
            upload.write(&buffer[..read]);
        }
        upload.finish().await.map_err(s3_error)?;
        Ok(())
    }
}

/// A fill whose bytes checked out, not yet in the bucket.
pub struct S3Verified {
    store: S3Store,
    spool: VerifiedSpool,
}

impl S3Verified {
    pub(crate) fn spool(&self) -> &VerifiedSpool {
        &self.spool
    }

    /// Uploads the verified spool under the content-addressed key; the spool goes afterwards.
    pub async fn persist(self) -> Result<Committed, StorageError> {
        let key = storage_key(&self.spool.digest);
        let path = self.store.path(&key)?;
        self.store.upload_file(&self.spool.path, &path, self.spool.size).await?;
        Ok(Committed { key, digest: self.spool.digest.clone(), size: self.spool.size })
    }
}

/// A running fill into S3: a local spool until verified.
pub struct S3Upload {
    store: S3Store,
    spool: FsUpload,
}

impl S3Upload {
    pub fn spool_reader(&self) -> SpoolReader {
        self.spool.spool_reader()
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.spool.write(chunk).await
    }

    /// Finishes the spool and checks the bytes; nothing is in the bucket yet ([`S3Verified::persist`]).
    pub async fn verify(self, expected: &Expectation) -> Result<S3Verified, StorageError> {
        let spool = self.spool.verify_and_keep(expected).await?;
        Ok(S3Verified { store: self.store, spool })
    }

    /// Verifies, then uploads under the object's content-addressed key.
    pub async fn commit(self, expected: &Expectation) -> Result<Committed, StorageError> {
        self.verify(expected).await?.persist().await
    }

    pub async fn verify_and_discard(self, expected: &Expectation) -> Result<Committed, StorageError> {
        self.spool.verify_and_discard(expected).await
    }

    pub async fn abort(self) {
        self.spool.abort().await;
    }

    pub async fn abandon(self) -> crate::ContentHasher {
        self.spool.abandon().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(spool_dir: PathBuf) -> S3Settings {
        S3Settings {
            endpoint: Some("http://127.0.0.1:9".into()),
            bucket: "depproxy".into(),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: Some("test".into()),
            secret_access_key: Some(SecretString::from("test")),
            prefix: String::new(),
            redirect: false,
            presigned_url_ttl: Duration::from_secs(600),
            spool_dir,
            proxy: None,
        }
    }

    #[tokio::test]
    async fn the_spool_directory_is_created_by_the_first_fill_not_by_opening_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("absent");
        let store = S3Store::open(settings(data_dir.join("spool"))).await.unwrap();
        assert!(!data_dir.exists(), "a control plane opening the bucket creates no local directory");
        assert_eq!(store.remove_stale_temp(Duration::ZERO).await.unwrap(), 0);
        assert!(!data_dir.exists(), "the sweeper's spool clean-up creates nothing either");
        assert_eq!(store.remove_orphans().await.unwrap(), 0);
        assert!(data_dir.join("spool/tmp").is_dir(), "a gateway's start-up makes the spool");
        let upload = store.begin_upload(10, None).await.unwrap();
        upload.abort().await;
    }
}
