//! `sweepseed DATABASE_URL DATA_DIR GROUP OBJECTS SIZE AGE_SECONDS`: fills a depproxy cache with
//! OBJECTS distinct blobs of SIZE bytes in GROUP, each last read AGE_SECONDS ago, for the sweep
//! benchmark (bench/run.sh BS). Rows go through depproxy's metadata API (`upsert_blob`, the row a
//! fill's commit writes); the object files are written straight into the filesystem store's layout
//! (`injector::storage_key`) without fsync, so seeding 100 000 objects takes seconds, not the
//! minutes of 100 000 durable commits. Prints one JSON object: objects, bytes, seconds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use metadata::{BlobRecord, DatabaseUrl, Metadata};
use oci::{Digest, GroupPath};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const WRITERS: usize = 16;

fn arg(args: &[String], index: usize, name: &str) -> Result<String> {
    args.get(index).cloned().ok_or_else(|| format!("missing {name}; usage: sweepseed DATABASE_URL DATA_DIR GROUP OBJECTS SIZE AGE_SECONDS").into())
}

/// The content of object `index`: its index, then a fixed pattern (distinct digests).
fn content(index: u64, size: usize) -> Vec<u8> {
    let mut bytes = vec![0x5a; size.max(8)];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let database = DatabaseUrl::new(arg(&args, 1, "DATABASE_URL")?);
    let root = PathBuf::from(arg(&args, 2, "DATA_DIR")?);
    let group = GroupPath::parse(&arg(&args, 3, "GROUP")?).map_err(|error| error.message)?;
    let objects: u64 = arg(&args, 4, "OBJECTS")?.parse()?;
    let size: usize = arg(&args, 5, "SIZE")?.parse()?;
    let age_ms = arg(&args, 6, "AGE_SECONDS")?.parse::<i64>()? * 1000;
    let read_at = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())? - age_ms;
    let metadata = Arc::new(Metadata::connect(&database).await?);
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS as u64 {
        let (metadata, root, group) = (metadata.clone(), root.clone(), group.clone());
        writers.spawn(async move {
            let mut index = writer;
            while index < objects {
                let bytes = content(index, size);
                let digest = Digest::of(&bytes);
                let path = root.join(injector::storage_key(&digest));
                let parent = path.parent().ok_or("storage key without a directory")?.to_owned();
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    std::fs::create_dir_all(parent)?;
                    std::fs::write(path, bytes)
                })
                .await??;
                let record =
                    BlobRecord { digest, size: size as u64, media_type: "application/octet-stream".into() };
                metadata.upsert_blob(&group, &record, read_at).await?;
                index += WRITERS as u64;
            }
            Result::Ok(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    println!(
        "{{\"objects\": {objects}, \"bytes\": {}, \"seconds\": {:.2}}}",
        objects * size as u64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
