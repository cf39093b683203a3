//! Local-disk storage: a staged temp file per upload, hashed as bytes arrive and written by short
//! tasks of a bounded writer pool, fsynced and renamed into place only after verification.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use oci::Digest;
use tokio::sync::{Semaphore, watch};

use injector::{digest_of_key, storage_key};

use crate::ListedObject;
use crate::paced::{PacedReads, READ_AHEAD_BUDGET, ReadAheadBudget, read_exact_at};
use crate::{ByteRange, Committed, ContentHasher, Expectation, ObjectReader, SpoolReader, StorageError};

/// Blocking writes running at once across the uploads of a store: however many fills run, at most
/// this many threads write, and the rest of the blocking pool stays free for hits.
pub const WRITERS: usize = 8;
/// Spool reads (clients that fell behind a fill's recent chunks) running at once.
pub const SPOOL_READERS: usize = 8;
/// Bytes an upload collects while its previous write runs before it waits for it: bounds memory
/// per fill to about twice this.
const WRITE_BATCH: usize = 512 * 1024;
/// Fewer bytes than this wait for more before they are written: an upstream trickling a few
/// kilobytes at a time would otherwise cost a blocking-pool hop and a thread wake-up per chunk.
/// (Followers read them from the fill's recent chunks in memory meanwhile.)
const SMALLEST_WRITE: usize = 64 * 1024;
/// Objects up to this size are read whole, in the same blocking call as the open.
const READ_WHOLE: usize = 256 * 1024;

/// Objects under `<root>/blobs/…`, staged writes under `<root>/tmp/`.
#[derive(Debug, Clone)]
pub struct FsStore {
    inner: Arc<Paths>,
}

#[derive(Debug)]
struct Paths {
    root: PathBuf,
    tmp: PathBuf,
    /// The writer pool's permits.
    writers: Arc<Semaphore>,
    /// Spool reads' permits.
    spool_reads: Arc<Semaphore>,
    /// What the streams of hits may read ahead of their clients, together.
    read_ahead: Arc<ReadAheadBudget>,
}

/// Objects and spools: readable by the proxy's group (a backup agent), never by everyone, whatever
/// the umask. (The umask can only take bits away.)
pub(crate) const OBJECT_MODE: u32 = 0o640;
/// Directories the store creates.
pub(crate) const DIRECTORY_MODE: u32 = 0o750;

fn private_dir_builder() -> tokio::fs::DirBuilder {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true).mode(DIRECTORY_MODE);
    builder
}

impl FsStore {
    /// Opens (creating when missing) a store rooted at `root`.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        let tmp = root.join("tmp");
        private_dir_builder().create(root.join("blobs/sha256")).await?;
        private_dir_builder().create(&tmp).await?;
        let writers = Arc::new(Semaphore::new(WRITERS));
        let spool_reads = Arc::new(Semaphore::new(SPOOL_READERS));
        let read_ahead = ReadAheadBudget::new(READ_AHEAD_BUDGET);
        Ok(FsStore { inner: Arc::new(Paths { root, tmp, writers, spool_reads, read_ahead }) })
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
            if len <= READ_WHOLE as u64 {
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
                Ok(ObjectReader {
                    len,
                    stream: PacedReads::new(file, range.start, len, self.inner.read_ahead.clone()).boxed(),
                })
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

    /// Removes staged writes not touched for `older_than`: fills that died without cleaning up
    /// (a running fill writes continuously, and one silent past the upstream idle timeout fails).
    pub async fn remove_stale_temp(&self, older_than: std::time::Duration) -> Result<usize, StorageError> {
        let tmp = self.inner.tmp.clone();
        let removed = tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
            let mut removed = 0;
            for entry in std::fs::read_dir(&tmp)? {
                let entry = entry?;
                let stale = entry
                    .metadata()
                    .and_then(|meta| meta.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .is_some_and(|age| age >= older_than);
                if stale && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await??;
        Ok(removed)
    }

    /// Every committed object, as a stream (the directory walk runs on a blocking thread, a
    /// bounded channel ahead of the consumer).
    pub fn list_objects(
        &self,
    ) -> futures_util::stream::BoxStream<'static, Result<ListedObject, StorageError>> {
        let root = self.inner.root.join("blobs/sha256");
        let (sender, receiver) = tokio::sync::mpsc::channel(256);
        tokio::task::spawn_blocking(move || {
            let send = |item| sender.blocking_send(item).is_ok();
            let prefixes = match std::fs::read_dir(&root) {
                Ok(prefixes) => prefixes,
                Err(error) => {
                    send(Err(error.into()));
                    return;
                }
            };
            for prefix in prefixes.flatten() {
                let Ok(objects) = std::fs::read_dir(prefix.path()) else { continue };
                let prefix_name = prefix.file_name().to_string_lossy().into_owned();
                for object in objects.flatten() {
                    let Ok(meta) = object.metadata() else { continue };
                    let key = format!("blobs/sha256/{prefix_name}/{}", object.file_name().to_string_lossy());
                    let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                    if !send(Ok(ListedObject { key, size: meta.len(), modified })) {
                        return;
                    }
                }
            }
        });
        tokio_stream_from(receiver)
    }

    /// Starts a staged upload, hashed in sha256 and `declared` (the algorithm it will be verified
    /// in, when another). Bytes become visible only through [`FsUpload::commit`].
    pub async fn begin_upload(
        &self,
        limit: u64,
        declared: Option<injector::ChecksumAlgorithm>,
    ) -> Result<FsUpload, StorageError> {
        let path = self.inner.tmp.join(uuid::Uuid::new_v4().to_string());
        let staged = path.clone();
        let (file, reader) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(OBJECT_MODE).open(&staged)?;
            let reader = std::fs::File::open(&staged)?;
            Ok((file, reader))
        })
        .await??;
        let (progress, readable) = watch::channel(0u64);
        let progress = Arc::new(progress);
        Ok(FsUpload {
            store: self.clone(),
            path,
            file: Some(file),
            in_flight: None,
            pending: Vec::new(),
            pending_len: 0,
            accepted: 0,
            written: 0,
            progress,
            reader: SpoolReader {
                file: Arc::new(reader),
                progress: readable,
                reads: self.inner.spool_reads.clone(),
            },
            limit,
            hasher: ContentHasher::new(declared),
        })
    }
}

/// A write running on the blocking pool: it hashes its batch, writes it, and hands the file and
/// the hasher back with how much it wrote. Hashing there, not on the fill's task, lets the fill
/// read the next chunk from upstream while this one is hashed (SHA-256 was 40 % of a cold
/// stream's CPU, in line between two socket reads), and keeps that CPU off the runtime's threads.
type WriteInFlight = tokio::task::JoinHandle<(std::fs::File, ContentHasher, std::io::Result<u64>)>;

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
///
/// Bytes are hashed as they are accepted and written by short tasks on the blocking pool — one
/// in flight per upload, at most [`WRITERS`] across the store — so a fill never holds a thread,
/// however long it runs: while one write runs, the next chunks are collected into the next write.
pub struct FsUpload {
    store: FsStore,
    path: PathBuf,
    /// `None` while a write has it.
    file: Option<std::fs::File>,
    in_flight: Option<WriteInFlight>,
    pending: Vec<Bytes>,
    pending_len: usize,
    /// Bytes given to [`FsUpload::write`] (hashed by the writes that carry them).
    accepted: u64,
    /// Bytes on disk, readable through the spool reader.
    written: u64,
    progress: Arc<watch::Sender<u64>>,
    reader: SpoolReader,
    limit: u64,
    hasher: ContentHasher,
}

impl FsUpload {
    /// A reader of the bytes written so far.
    pub fn spool_reader(&self) -> SpoolReader {
        self.reader.clone()
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes a chunk: hashed and written with the next write (once [`SMALLEST_WRITE`] bytes are
    /// waiting and none is running; a running one is waited for only when [`WRITE_BATCH`] bytes
    /// are waiting).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let len = chunk.len() as u64;
        if self.accepted + len > self.limit {
            return Err(StorageError::TooLarge { limit: self.limit });
        }
        self.accepted += len;
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        let busy = self.in_flight.as_ref().is_some_and(|write| !write.is_finished());
        if self.pending_len < SMALLEST_WRITE || (busy && self.pending_len < WRITE_BATCH) {
            return Ok(());
        }
        self.collect().await?;
        self.submit().await
    }

    /// Waits for the write in flight, if any, and publishes what it wrote.
    async fn collect(&mut self) -> Result<(), StorageError> {
        let Some(write) = self.in_flight.take() else { return Ok(()) };
        let (file, hasher, outcome) = write.await?;
        self.file = Some(file);
        self.hasher = hasher;
        self.written += outcome?;
        Ok(())
    }

    /// Starts writing what is pending.
    async fn submit(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let len = std::mem::take(&mut self.pending_len) as u64;
        let mut file = self.file.take().ok_or(StorageError::WriterGone)?;
        let permit =
            self.store.inner.writers.clone().acquire_owned().await.map_err(|_| StorageError::WriterGone)?;
        let progress = self.progress.clone();
        let mut hasher = std::mem::take(&mut self.hasher);
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            for chunk in &batch {
                hasher.update(chunk);
            }
            let outcome = write_all_vectored(&mut file, &batch).map(|()| len);
            if outcome.is_ok() {
                // Readers tailing the spool may read up to here, as soon as it is written: the bytes
                // are in the kernel's page cache.
                progress.send_modify(|written| *written += len);
            }
            (file, hasher, outcome)
        }));
        Ok(())
    }

    /// Writes everything accepted and checks it against `expected`.
    async fn finish_and_verify(
        &mut self,
        expected: &Expectation,
    ) -> Result<(std::fs::File, Digest, u64), StorageError> {
        self.collect().await?;
        self.submit().await?;
        self.collect().await?;
        let file = self.file.take().ok_or(StorageError::WriterGone)?;
        let size = self.written;
        let hasher = std::mem::take(&mut self.hasher);
        if hasher.len() != size {
            return Err(StorageError::WriteIncomplete { queued: hasher.len(), written: size });
        }
        let hashed = hasher.verify(expected)?;
        Ok((file, hashed.digest, size))
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
        if let Some(write) = self.in_flight.take() {
            let _ = write.await;
        }
        let _ = tokio::fs::remove_file(&self.path).await;
        self.path = PathBuf::new();
    }

    /// Gives up storing (storage failed) but keeps the hash of every byte accepted so far, so the
    /// caller can go on streaming and still verify what it streams. The staged data is removed;
    /// readers keep what was written (an open file outlives its name).
    pub async fn abandon(self) -> ContentHasher {
        let mut upload = self;
        // The write in flight has hashed its batch whether or not it could write it. (A writer
        // that panicked takes its hash with it: the pass-through's digest check then fails the
        // stream rather than passing unverified bytes.)
        if let Some(write) = upload.in_flight.take()
            && let Ok((_, hasher, _)) = write.await
        {
            upload.hasher = hasher;
        }
        let mut hasher = std::mem::take(&mut upload.hasher);
        for chunk in upload.pending.drain(..) {
            hasher.update(&chunk);
        }
        upload.abort().await;
        hasher
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
                    std::fs::DirBuilder::new().recursive(true).mode(DIRECTORY_MODE).create(parent)?;
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

/// A receiver as a stream.
pub(crate) fn tokio_stream_from<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> futures_util::stream::BoxStream<'static, T> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}

/// An opened object: small ones already read.
enum Opened {
    Whole(Bytes),
    Streamed(Arc<std::fs::File>, ByteRange),
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
        let mut upload = store.begin_upload(1024, None).await.unwrap();
        upload.write(Bytes::from_static(b"hello ")).await.unwrap();
        upload.write(Bytes::from_static(b"storage")).await.unwrap();
        let expected = Expectation::digest(&Digest::of(&data), Some(data.len() as u64));
        let committed = upload.commit(&expected).await.unwrap();
        assert_eq!(committed.key, storage_key(&Digest::of(&data)));
        assert_eq!(store.stat(&committed.key).await.unwrap(), Some(13));
        assert_eq!(collect(store.read(&committed.key, None).await.unwrap()).await, data);
        assert_eq!(collect(store.read(&committed.key, Some(6..13)).await.unwrap()).await, b"storage");
        assert_eq!(tmp_entries(&store).await, 0);
    }

    #[tokio::test]
    async fn objects_spools_and_directories_are_not_world_readable() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let store = FsStore::open(&root).await.unwrap();
        let mut upload = store.begin_upload(1024, None).await.unwrap();
        upload.write(Bytes::from_static(b"private layer")).await.unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let spool = std::fs::read_dir(root.join("tmp")).unwrap().next().unwrap().unwrap().path();
        assert_eq!(mode(&spool), OBJECT_MODE, "the spool");
        let committed = upload.commit(&Expectation::default()).await.unwrap();
        let object = root.join(&committed.key);
        assert_eq!(mode(&object), OBJECT_MODE, "the object keeps its spool's mode");
        for directory in
            [root.clone(), root.join("tmp"), root.join("blobs/sha256"), object.parent().unwrap().to_owned()]
        {
            assert_eq!(mode(&directory) & 0o007, 0, "{} is open to everyone", directory.display());
        }
    }

    #[tokio::test]
    async fn listing_finds_committed_objects_and_stale_temp_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        let mut keys = Vec::new();
        for data in [&b"one"[..], b"two"] {
            let mut upload = store.begin_upload(1024, None).await.unwrap();
            upload.write(Bytes::copy_from_slice(data)).await.unwrap();
            keys.push(upload.commit(&Expectation::default()).await.unwrap().key);
        }
        let running = store.begin_upload(1024, None).await.unwrap();
        let mut listed: Vec<(String, u64)> = store
            .list_objects()
            .map(|object| object.map(|object| (object.key, object.size)))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        listed.sort();
        keys.sort();
        assert_eq!(listed, keys.into_iter().map(|key| (key, 3)).collect::<Vec<_>>());
        assert_eq!(store.remove_stale_temp(std::time::Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(tmp_entries(&store).await, 1, "a running upload's spool stays");
        assert_eq!(store.remove_stale_temp(std::time::Duration::ZERO).await.unwrap(), 1);
        drop(running);
        assert_eq!(tmp_entries(&store).await, 0);
    }

    #[tokio::test]
    async fn mismatches_commit_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        for expected in
            [Expectation::digest(&Digest::of(b"other"), None), Expectation { checksum: None, size: Some(3) }]
        {
            let mut upload = store.begin_upload(1024, None).await.unwrap();
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
        let mut upload = store.begin_upload(8, None).await.unwrap();
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
        let mut upload = store.begin_upload(1024, None).await.unwrap();
        upload.write(Bytes::from_static(b"x")).await.unwrap();
        upload.abort().await;
        let dropped = store.begin_upload(1024, None).await.unwrap();
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
        let mut upload = store.begin_upload(1 << 20, None).await.unwrap();
        let reader = upload.spool_reader();
        let mut progress = reader.progress();
        upload.write(Bytes::from_static(b"ab")).await.unwrap();
        tokio::task::yield_now().await;
        assert_eq!(*progress.borrow(), 0, "a few bytes wait for more before they are written");
        let mut rest = vec![b'.'; SMALLEST_WRITE - 2];
        rest[..2].copy_from_slice(b"cd");
        upload.write(Bytes::from(rest)).await.unwrap();
        progress.wait_for(|written| *written == SMALLEST_WRITE as u64).await.unwrap();
        assert_eq!(&reader.read_at(0, 6).await.unwrap()[..], b"abcd..");
        assert_eq!(&reader.read_at(1, 2).await.unwrap()[..], b"bc");
        upload.abort().await;
        assert_eq!(&reader.read_at(2, 4).await.unwrap()[..], b"cd..", "readable after the file is removed");
    }
}
