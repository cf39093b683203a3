//! `hashbench FILE [CHUNK_BYTES] [STORE_DIR]`: throughput of depproxy's write path on one file.
//!
//! Prints one JSON object with GB/s (10^9 bytes per second) for:
//! - `read`: reading FILE in CHUNK_BYTES pieces (page cache → memory), the floor of the others;
//! - `hash`: read + `oci::Sha256Hasher::update` (what the writer thread hashes with);
//! - `write_path`: read + `storage::Upload::write` + `verify_and_discard` (queue to the writer
//!   thread, write to the temp file, hash, verify; no fsync);
//! - `commit`: the same with `Upload::commit` (adds fsync, rename, directory fsync).
//!
//! CHUNK_BYTES defaults to 65536; STORE_DIR (default: a directory next to FILE) is emptied.

use std::io::Read as _;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use storage::{BlobStore, Expectation, FsStore};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn read_chunks(path: &str, chunk: usize, mut each: impl FnMut(Bytes) -> Result<()>) -> Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut total = 0u64;
    loop {
        let mut buffer = BytesMut::zeroed(chunk);
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(total);
        }
        buffer.truncate(read);
        total += read as u64;
        each(buffer.freeze())?;
    }
}

fn gbps(bytes: u64, started: Instant) -> f64 {
    bytes as f64 / started.elapsed().as_secs_f64() / 1e9
}

async fn write_path(store: &BlobStore, path: &str, chunk: usize, commit: bool) -> Result<f64> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
    let reader_path = path.to_owned();
    let started = Instant::now();
    let reader = tokio::task::spawn_blocking(move || {
        read_chunks(&reader_path, chunk, |bytes| {
            sender.blocking_send(bytes).map_err(|_| "writer gone".into())
        })
    });
    let mut upload = store.begin_upload(u64::MAX).await?;
    while let Some(bytes) = receiver.recv().await {
        upload.write(bytes).await?;
    }
    let size = reader.await??;
    let expected = Expectation { digest: None, size: Some(size) };
    let done =
        if commit { upload.commit(&expected).await? } else { upload.verify_and_discard(&expected).await? };
    let rate = gbps(size, started);
    if commit {
        store.delete(&done.key).await?;
    }
    Ok(rate)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: hashbench FILE [CHUNK_BYTES] [STORE_DIR]")?;
    let chunk: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(65536);
    let store_dir = args.get(3).cloned().unwrap_or_else(|| format!("{path}.hashbench-store"));
    let _ = std::fs::remove_dir_all(&store_dir);
    let store = BlobStore::Filesystem(FsStore::open(&store_dir).await?);

    let started = Instant::now();
    let size = read_chunks(path, chunk, |_| Ok(()))?;
    let read = gbps(size, started);

    let started = Instant::now();
    let mut hasher = oci::Sha256Hasher::new();
    read_chunks(path, chunk, |bytes| {
        hasher.update(&bytes);
        Ok(())
    })?;
    let hash = gbps(size, started);
    let digest = hasher.finish();

    let write = write_path(&store, path, chunk, false).await?;
    let commit = write_path(&store, path, chunk, true).await?;
    std::fs::remove_dir_all(&store_dir)?;
    println!(
        "{{\"file\":\"{path}\",\"size\":{size},\"chunk\":{chunk},\"digest\":\"{digest}\",\
         \"read\":{read:.3},\"hash\":{hash:.3},\"write_path\":{write:.3},\"commit\":{commit:.3}}}"
    );
    Ok(())
}
