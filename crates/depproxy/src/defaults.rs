//! Every default of depproxy's configuration, in one place. docs/configuration.md lists the same
//! values; `config.rs` applies them.

use std::time::Duration;

/// Where `serve` and `gateway` listen.
pub const LISTEN: &str = "127.0.0.1:5000";
/// The admin API: loopback only unless configured otherwise.
pub const ADMIN_LISTEN: &str = "127.0.0.1:5080";
/// SQLite database and objects on disk.
pub const DATA_DIR: &str = "./depproxy-data";
/// The upstream of zero-config `serve`.
pub const DOCKER_HUB_URL: &str = "https://registry-1.docker.io";
/// Its name (`--upstream` names the upstream it replaces it with after that upstream's host).
pub const UPSTREAM_NAME: &str = "dockerhub";
/// How often a gateway in split mode reports its live fills to the control plane.
pub const FILL_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// The name `--upstream` gives the upstream it adds for the `default` group when its host is not
/// a valid upstream name (an IPv6 address) or is taken; otherwise the upstream is named after its host.
pub const FLAG_UPSTREAM_NAME: &str = "upstream";

/// `[limits]`
pub const MAX_BLOB_SIZE: u64 = 10 << 30;
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
pub const FILL_WINDOW: u64 = 4 << 20;
pub const FILL_MEMORY: u64 = 64 << 20;
pub const MAX_CONCURRENT_FILLS: usize = 256;
pub const FILL_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// `[timeouts]`
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const RECHECK_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONTROL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONTROL_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// `[[group]] manifest_recheck`: how long a cached tag is served without asking upstream.
pub const MANIFEST_RECHECK: Duration = Duration::from_secs(300);
/// `[[group]] negative_ttl`: how long an upstream's 404 is answered from memory.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// How long a package group's cached document is served without asking upstream.
pub const DOCUMENT_RECHECK: Duration = Duration::from_secs(300);
/// `[[group]] admission_timeout`: how long a group's admission hook may take to answer.
pub const ADMISSION_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `admission_timeout` accepted: a new artifact's clients wait that long.
pub const MAX_ADMISSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// `[[group]] warm` entries' `keep`: the newest tags of each glob a run warms.
pub const WARM_KEEP: usize = 3;
/// Upstream 404s a control plane remembers at once (all groups together).
pub const NOT_FOUND_ENTRIES: u64 = 100_000;

/// `[cache]`
pub const SMALL_OBJECT_MAX_SIZE: u64 = 256 << 10;
pub const SMALL_OBJECT_MEMORY: u64 = 32 << 20;
pub const CATALOG_ENTRIES: u64 = 100_000;
pub const CATALOG_TTL: Duration = Duration::from_secs(600);

/// `[storage]`
pub const S3_REGION: &str = "us-east-1";
pub const PRESIGNED_URL_TTL: Duration = Duration::from_secs(600);

/// `[cluster]`
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// `[server]`
pub const MAX_CONNECTIONS: usize = 10_000;
/// `max_connections_per_client` is this fraction of `max_connections` unless set.
pub const CONNECTIONS_PER_CLIENT_DIVISOR: usize = 10;
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_CONCURRENT_STREAMS: u32 = 64;
/// HTTP/2 without TLS (h2c) is off: no registry client needs it (see docs/security.md).
pub const HTTP2_CLEARTEXT: bool = false;

// Lifecycle
/// A group's objects and tags not read for this long are removed (the seed's default).
pub const GROUP_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
pub const HIGH_WATERMARK: u8 = 90;
pub const LOW_WATERMARK: u8 = 80;
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);
pub const ACCESS_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// How often a control plane checks the database for rows another process removed (on PostgreSQL
/// it also hears of each removal at once).
pub const REMOVAL_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long an object stays in storage at least after its last row went: every control plane has
/// checked for removals since (with room for decisions already on their way to a gateway).
pub const REMOVAL_NOTICE: Duration = Duration::from_secs(2);
/// Quotas never evict an object recorded less than this long ago.
pub const KEEP_RECENT: Duration = Duration::from_secs(60);
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);
pub const UPLOAD_GRACE: Duration = Duration::from_secs(24 * 3600);
/// S3 has no open-file semantics: an evicted object stays this long for readers already streaming it.
pub const S3_DELETE_DELAY: Duration = Duration::from_secs(15 * 60);
/// Threads for blocking file work (object reads, fill writes, spool reads, renames). Fill writes
/// and spool reads have their own smaller bounds inside it, so hits always find a thread; each
/// read is a short positioned read, so a few dozen threads serve thousands of streams.
pub const BLOCKING_THREADS: usize = 32;
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(30);
pub const WRITE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_HEADER_BYTES: u64 = 64 << 10;

/// `[auth]`
pub const TOKEN_TTL: Duration = Duration::from_secs(300);
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
pub const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(10);
pub const FAILED_LOGINS_PER_MINUTE: u32 = 10;
/// Where `serve` keeps its registry-token signing key when `[auth] signing_key_file` is not set.
pub const SIGNING_KEY_FILE: &str = "token-signing.key";
