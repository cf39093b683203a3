//! Local-disk storage: a staged temp file per upload, written and hashed on a blocking thread,
//! fsynced and renamed into place only after verification.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use oci::{Digest, Sha256Hasher};
use tokio::sync::{mpsc, watch};

use injector::{digest_of_key, storage_key};

use crate::{ByteRange, ByteStream, Committed, Expectation, ObjectReader, SpoolReader, StorageError};

/// Chunks queued to an upload's writer thread before `write` waits: bounds memory per fill.
const WRITE_QUEUE_CHUNKS: usize = 16;
/// Read size for serving objects.
const READ_CHUNK: usize = 256 * 1024;
/// Reads in flight ahead of the client: disk reads overlap with socket writes, and memory per
/// response stays at `READ_AHEAD × READ_CHUNK`.
const READ_AHEAD: usize = 4;

/// Objects under `<root>/blobs/…`, staged writes under `<root>/tmp/`.
#[derive(Debug, Clone)]
pub struct FsStore {
    inner: Arc<Paths>,
}

#[derive(Debug)]
struct Paths {
    root: PathBuf,
    tmp: PathBuf,
}

impl FsStore {
    /// Opens (creating when missing) a store rooted at `root`.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        let tmp = root.join("tmp");
        tokio::fs::create_dir_all(root.join("blobs/sha256")).await?;
        tokio::fs::create_dir_all(&tmp).await?;
        Ok(FsStore { inner: Arc::new(Paths { root, tmp }) })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        digest_of_key(key)?;
        Ok(self.inner.root.join(key))
    }

    /// Size of a committed object, or `None` when absent.
    pub async fn stat(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match tokio::fs::metadata(self.path_of(key)?).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Opens a committed object, optionally a byte range of it (already validated by the caller).
    pub async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<ObjectReader, StorageError> {
        let path = self.path_of(key)?;
        let opened = tokio::task::spawn_blocking(move || -> std::io::Result<Opened> {
            let file = std::fs::File::open(&path)?;
            let total = file.metadata()?.len();
            let range = range.unwrap_or(0..total);
            let len = range.end.saturating_sub(range.start);
            // A small object (a manifest, a config) is read in the same blocking call as the open.
            if len <= READ_CHUNK as u64 {
                return Ok(Opened::Whole(read_exact_at(&file, range.start, len as usize)?));
            }
            Ok(Opened::Streamed(Arc::new(file), range))
        })
        .await?;
        match opened {
            Ok(Opened::Whole(bytes)) => {
                let len = bytes.len() as u64;
                Ok(ObjectReader { len, stream: futures_util::stream::once(async move { Ok(bytes) }).boxed() })
            }
            Ok(Opened::Streamed(file, range)) => {
                let len = range.end - range.start;
                Ok(ObjectReader { len, stream: read_ahead(file, range.start, len) })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(StorageError::NotFound(key.to_owned()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes a committed object; absent objects are not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path_of(key)?).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
    }

    /// Removes staged data left by a crash. Call once at start-up, before serving.
    pub async fn remove_orphans(&self) -> Result<usize, StorageError> {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(&self.inner.tmp).await?;
        while let Some(entry) = entries.next_entry().await? {
            tokio::fs::remove_file(entry.path()).await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Starts a staged upload. Bytes become visible only through [`FsUpload::commit`].
    pub async fn begin_upload(&self, limit: u64) -> Result<FsUpload, StorageError> {
        let path = self.inner.tmp.join(uuid::Uuid::new_v4().to_string());
        let staged = path.clone();
        let (file, reader) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&staged)?;
            let reader = std::fs::File::open(&staged)?;
            Ok((file, reader))
        })
        .await??;
        let (chunks, receiver) = mpsc::channel::<Bytes>(WRITE_QUEUE_CHUNKS);
        let (progress_sender, progress) = watch::channel(0u64);
        let writer = tokio::task::spawn_blocking(move || write_loop(file, receiver, progress_sender, limit));
        Ok(FsUpload {
            store: self.clone(),
            path,
            chunks: Some(chunks),
            writer: Some(writer),
            reader: SpoolReader { file: Arc::new(reader), progress },
            limit,
            hasher: Sha256Hasher::new(),
        })
    }
}

/// What the writer thread hands back: the file (for fsync) and how many bytes it wrote.
type WriterOutcome = Result<(std::fs::File, u64), StorageError>;

fn write_loop(
    mut file: std::fs::File,
    mut chunks: mpsc::Receiver<Bytes>,
    progress: watch::Sender<u64>,
    limit: u64,
) -> WriterOutcome {
    let mut written = 0u64;
    let mut batch: Vec<Bytes> = Vec::with_capacity(WRITE_QUEUE_CHUNKS);
    while let Some(first) = chunks.blocking_recv() {
        // Take whatever else is queued: one write and one progress update per batch, not per
        // (often 16 KiB) upstream chunk.
        batch.push(first);
        while batch.len() < WRITE_QUEUE_CHUNKS {
            match chunks.try_recv() {
                Ok(chunk) => batch.push(chunk),
                Err(_) => break,
            }
        }
        let size: u64 = batch.iter().map(|chunk| chunk.len() as u64).sum();
        if written + size > limit {
            return Err(StorageError::TooLarge { limit });
        }
        write_all_vectored(&mut file, &batch)?;
        written += size;
        // Readers tailing the file may read up to here: the bytes are in the kernel's page cache.
        progress.send_replace(written);
        batch.clear();
    }
    Ok((file, written))
}

/// `write_all` for several buffers in as few syscalls as the kernel allows.
fn write_all_vectored(file: &mut std::fs::File, chunks: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        chunks.iter().map(|chunk| std::io::IoSlice::new(chunk)).collect();
    let mut remaining: &mut [std::io::IoSlice<'_>] = &mut slices;
    while !remaining.is_empty() {
        let written = file.write_vectored(remaining)?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut remaining, written);
    }
    Ok(())
}

/// A staged upload. Dropping it without committing removes the temp file.
pub struct FsUpload {
    store: FsStore,
    path: PathBuf,
    chunks: Option<mpsc::Sender<Bytes>>,
    writer: Option<tokio::task::JoinHandle<WriterOutcome>>,
    reader: SpoolReader,
    limit: u64,
    /// Hashes chunks as they are queued, on the caller's side, while the writer thread writes the
    /// previous ones: hashing and disk writes overlap instead of taking turns.
    hasher: Sha256Hasher,
}

impl FsUpload {
    /// A reader of the bytes written so far.
    pub fn spool_reader(&self) -> SpoolReader {
        self.reader.clone()
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Queues a chunk; waits only when the writer is [`WRITE_QUEUE_CHUNKS`] behind.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let Some(chunks) = &self.chunks else {
            return Err(StorageError::WriterGone);
        };
        self.hasher.update(&chunk);
        if chunks.send(chunk).await.is_ok() {
            return Ok(());
        }
        // The writer stopped early: surface its own error (limit, disk full).
        self.chunks = None;
        match self.join_writer().await {
            Err(error) => Err(error),
            Ok(_) => Err(StorageError::WriterGone),
        }
    }

    async fn join_writer(&mut self) -> WriterOutcome {
        let writer = self.writer.take().ok_or(StorageError::WriterGone)?;
        writer.await?
    }

    /// Waits for the writer and checks what it wrote against `expected`.
    async fn finish_and_verify(
        &mut self,
        expected: &Expectation,
    ) -> Result<(std::fs::File, Digest, u64), StorageError> {
        self.chunks = None;
        let (file, size) = self.join_writer().await?;
        let hasher = std::mem::take(&mut self.hasher);
        if hasher.len() != size {
            return Err(StorageError::WriteIncomplete { queued: hasher.len(), written: size });
        }
        let digest = hasher.finish();
        if let Some(expected_size) = expected.size
            && expected_size != size
        {
            return Err(StorageError::SizeMismatch { expected: expected_size, actual: size });
        }
        if let Some(expected_digest) = &expected.digest
            && expected_digest != &digest
        {
            return Err(StorageError::DigestMismatch { expected: expected_digest.clone(), actual: digest });
        }
        Ok((file, digest, size))
    }

    /// Verifies like [`Self::commit`] but leaves the staged file where it is, for the caller to
    /// copy elsewhere (object storage); the file goes when the returned value drops.
    pub async fn verify_and_keep(self, expected: &Expectation) -> Result<VerifiedSpool, StorageError> {
        Ok(self.verify(expected).await?.spool)
    }

    /// Verifies like [`Self::commit`] but keeps nothing: for streams served without caching.
    pub async fn verify_and_discard(mut self, expected: &Expectation) -> Result<Committed, StorageError> {
        let (_, digest, size) = self.finish_and_verify(expected).await?;
        Ok(Committed { key: storage_key(&digest), digest, size })
    }

    /// Finishes writing and checks the bytes against `expected`. The object is not durable or
    /// visible yet ([`FsVerified::persist`]); on a mismatch the staged data is removed.
    pub async fn verify(mut self, expected: &Expectation) -> Result<FsVerified, StorageError> {
        let (file, digest, size) = self.finish_and_verify(expected).await?;
        let path = std::mem::take(&mut self.path);
        Ok(FsVerified { store: self.store.clone(), file, spool: VerifiedSpool { path, digest, size } })
    }

    /// Verifies, then makes the object durable and visible. On any mismatch the staged data is
    /// removed and nothing becomes visible.
    pub async fn commit(self, expected: &Expectation) -> Result<Committed, StorageError> {
        self.verify(expected).await?.persist().await
    }

    /// Abandons the upload and removes its staged data.
    pub async fn abort(mut self) {
        self.chunks = None;
        let _ = self.join_writer().await;
        let _ = tokio::fs::remove_file(&self.path).await;
        self.path = PathBuf::new();
    }
}

/// A staged upload whose bytes checked out; dropping it removes the staged file.
pub struct FsVerified {
    store: FsStore,
    file: std::fs::File,
    spool: VerifiedSpool,
}

impl FsVerified {
    pub(crate) fn spool(&self) -> &VerifiedSpool {
        &self.spool
    }

    /// fsync, rename into place, fsync the directory: durable, then visible.
    pub async fn persist(mut self) -> Result<Committed, StorageError> {
        let key = storage_key(&self.spool.digest);
        let target = self.store.inner.root.join(&key);
        let staged = std::mem::take(&mut self.spool.path);
        let file = self.file;
        let result = tokio::task::spawn_blocking(move || -> Result<(), std::io::Error> {
            let outcome = (|| {
                file.sync_all()?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // Same content under the same name: an existing object is already correct, and
                // rename replaces it atomically either way.
                std::fs::rename(&staged, &target)?;
                if let Some(parent) = target.parent() {
                    std::fs::File::open(parent)?.sync_all()?;
                }
                Ok(())
            })();
            if outcome.is_err() {
                let _ = std::fs::remove_file(&staged);
            }
            outcome
        })
        .await?;
        result?;
        Ok(Committed { key, digest: self.spool.digest.clone(), size: self.spool.size })
    }
}

/// A verified staged file, removed when dropped.
#[derive(Debug)]
pub struct VerifiedSpool {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

impl Drop for VerifiedSpool {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for FsUpload {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            // Dropped mid-flight (task cancelled): the writer exits when the channel closes; the file
            // can go now. Unlinking an open file is fine on Unix.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// An opened object: small ones already read.
enum Opened {
    Whole(Bytes),
    Streamed(Arc<std::fs::File>, ByteRange),
}

/// Streams `len` bytes of `file` from `offset` as positioned reads of [`READ_CHUNK`], keeping
/// [`READ_AHEAD`] of them in flight. Each read is its own short blocking task, so a slow client
/// never holds a blocking thread while it is not reading.
pub(crate) fn read_ahead(file: Arc<std::fs::File>, offset: u64, len: u64) -> ByteStream {
    let end = offset + len;
    let starts = (offset..end).step_by(READ_CHUNK);
    futures_util::stream::iter(starts)
        .map(move |start| {
            let file = file.clone();
            let want = (end - start).min(READ_CHUNK as u64) as usize;
            async move {
                let read = tokio::task::spawn_blocking(move || read_exact_at(&file, start, want)).await;
                read.unwrap_or_else(|error| Err(std::io::Error::other(error)))
            }
        })
        .buffered(READ_AHEAD)
        .boxed()
}

fn read_exact_at(file: &std::fs::File, offset: u64, want: usize) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt as _;
    let mut buffer = bytes::BytesMut::zeroed(want);
    file.read_exact_at(&mut buffer, offset)?;
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(reader: ObjectReader) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stream = reader.stream;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    async fn tmp_entries(store: &FsStore) -> usize {
        std::fs::read_dir(store.root().join("tmp")).unwrap().count()
    }

    #[tokio::test]
    async fn verified_commit_is_readable_whole_and_ranged() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        let data = b"hello storage".to_vec();
        let mut upload = store.begin_upload(1024).await.unwrap();
        upload.write(Bytes::from_static(b"hello ")).await.unwrap();
        upload.write(Bytes::from_static(b"storage")).await.unwrap();
        let expected = Expectation { digest: Some(Digest::of(&data)), size: Some(data.len() as u64) };
        let committed = upload.commit(&expected).await.unwrap();
        assert_eq!(committed.key, storage_key(&Digest::of(&data)));
        assert_eq!(store.stat(&committed.key).await.unwrap(), Some(13));
        assert_eq!(collect(store.read(&committed.key, None).await.unwrap()).await, data);
        assert_eq!(collect(store.read(&committed.key, Some(6..13)).await.unwrap()).await, b"storage");
        assert_eq!(tmp_entries(&store).await, 0);
    }

    #[tokio::test]
    async fn mismatches_commit_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        for expected in [
            Expectation { digest: Some(Digest::of(b"other")), size: None },
            Expectation { digest: None, size: Some(3) },
        ] {
            let mut upload = store.begin_upload(1024).await.unwrap();
            upload.write(Bytes::from_static(b"data")).await.unwrap();
            let error = upload.commit(&expected).await.unwrap_err();
            assert!(error.is_content_error(), "{error}");
            assert_eq!(store.stat(&storage_key(&Digest::of(b"data"))).await.unwrap(), None);
            assert_eq!(tmp_entries(&store).await, 0);
        }
    }

    #[tokio::test]
    async fn limit_is_enforced_while_writing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        let mut upload = store.begin_upload(8).await.unwrap();
        let mut result = Ok(());
        for _ in 0..64 {
            result = upload.write(Bytes::from_static(b"0123456789")).await;
            if result.is_err() {
                break;
            }
        }
        let error = match result {
            Err(error) => error,
            Ok(()) => upload.commit(&Expectation::default()).await.unwrap_err(),
        };
        assert!(matches!(error, StorageError::TooLarge { limit: 8 }), "{error}");
    }

    #[tokio::test]
    async fn abort_drop_and_orphans_leave_no_temp_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        let mut upload = store.begin_upload(1024).await.unwrap();
        upload.write(Bytes::from_static(b"x")).await.unwrap();
        upload.abort().await;
        let dropped = store.begin_upload(1024).await.unwrap();
        drop(dropped);
        assert_eq!(tmp_entries(&store).await, 0);
        std::fs::write(store.root().join("tmp/leftover"), b"crash").unwrap();
        assert_eq!(store.remove_orphans().await.unwrap(), 1);
        assert_eq!(tmp_entries(&store).await, 0);
    }

    #[tokio::test]
    async fn spool_progress_reports_written_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        let mut upload = store.begin_upload(1024).await.unwrap();
        let reader = upload.spool_reader();
        let mut progress = reader.progress();
        upload.write(Bytes::from_static(b"abcd")).await.unwrap();
        progress.wait_for(|written| *written == 4).await.unwrap();
        assert_eq!(&reader.read_at(0, 16).await.unwrap()[..], b"abcd");
        assert_eq!(&reader.read_at(1, 2).await.unwrap()[..], b"bc");
        upload.abort().await;
        assert_eq!(&reader.read_at(2, 16).await.unwrap()[..], b"cd", "readable after the file is removed");
    }
}
