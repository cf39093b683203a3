//! Real storage and database back-ends for tests: an S3-compatible server (`moto`, started per test
//! on a free port) and databases on the PostgreSQL server the test script provides
//! (`DEPPROXY_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432`).

use std::process::Command;

use super::processes::{Process, free_port, run, wait_http_ok};

/// curl arguments that sign requests for the test credentials (moto refuses anonymous reads).
const SIGNED: &[&str] = &["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "test:test"];

/// A moto S3 server with one bucket.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl S3Server {
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let process = Process::spawn(
            "moto",
            Command::new("python3").args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]),
            &dir.path().join("moto.log"),
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_http_ok(&format!("{endpoint}/moto-api/"), "moto S3 server");
        let bucket = "depproxy".to_owned();
        run(Command::new("curl").args(SIGNED).args(["-sf", "-X", "PUT", &format!("{endpoint}/{bucket}")]));
        S3Server { endpoint, bucket, _process: process, _dir: dir }
    }

    /// The `[storage]` table for this server.
    pub fn storage_toml(&self) -> String {
        format!(
            "[storage]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            self.endpoint, self.bucket
        )
    }

    /// The bucket through the same client depproxy uses.
    pub async fn store(&self) -> storage::S3Store {
        self.store_with_prefix("").await
    }

    /// The bucket through the same client depproxy uses, with its keys under `prefix`.
    pub async fn store_with_prefix(&self, prefix: &str) -> storage::S3Store {
        storage::S3Store::open(storage::S3Settings {
            endpoint: Some(self.endpoint.clone()),
            bucket: self.bucket.clone(),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            prefix: prefix.to_owned(),
            redirect: false,
            presigned_url_ttl: std::time::Duration::from_secs(600),
            spool_dir: self._dir.path().join("spool"),
            proxy: None,
        })
        .await
        .unwrap()
    }

    /// An object's bytes, or `None` when absent.
    pub async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.store().await;
        let reader = match store.read(key, None).await {
            Ok(reader) => reader,
            Err(storage::StorageError::NotFound(_)) => return None,
            Err(error) => panic!("GET {key}: {error}"),
        };
        let mut bytes = Vec::new();
        let mut stream = reader.stream;
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        Some(bytes)
    }

    /// Keys of every object in the bucket.
    pub fn keys(&self) -> Vec<String> {
        let listing = run(
            Command::new("curl").args(["-sf", &format!("{}/{}?list-type=2", self.endpoint, self.bucket)])
        );
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|part| part.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    /// Asserts every object hashes to its key's digest; returns how many there are.
    pub async fn assert_objects_hash_to_their_names(&self) -> usize {
        let keys = self.keys();
        for key in &keys {
            let bytes =
                self.object(key).await.unwrap_or_else(|| panic!("listed object {key} cannot be read"));
            let name = key.rsplit('/').next().unwrap();
            assert_eq!(oci::Digest::of(&bytes).hex(), name, "object {key} does not hash to its name");
        }
        keys.len()
    }
}

/// A fresh database URL on the test PostgreSQL server (created on first connect).
pub fn postgres_url() -> String {
    let server = std::env::var("DEPPROXY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    // Process ids and ports are reused between runs: the time makes the name new each time, so no
    // earlier run's rows are found.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let unique = format!("{}_{}_{nanos}", std::process::id(), free_port());
    format!("{}/depproxy_test_{unique}", server.trim_end_matches('/'))
}
