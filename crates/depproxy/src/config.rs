//! The configuration: TOML file, then command-line flags and environment variables on top.
//! Unknown keys are errors, so a typo fails at start-up instead of being silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use cache::{
    AccessMode, AccessPolicy, AdmissionPolicy, CacheSettings, CatalogSettings, LifecyclePolicy, Limits,
    NameRules, OnTimeout, Pins, PullPolicy, TagPatterns, WarmSchedule,
};
use gateway::SmallObjectSettings;
use ipnet::IpNet;
use metadata::DatabaseUrl;
use secrecy::SecretString;
use serde::Deserialize;

use crate::defaults;

/// The TOML file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address the public listener binds (`serve`, `gateway`) or the control plane binds (`control`).
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database and objects on local disk.
    pub data_dir: Option<PathBuf>,
    /// `sqlite:…` or `postgres://…`; default: SQLite under `data_dir`.
    pub database_url: Option<String>,
    #[serde(default)]
    pub upstream: Vec<UpstreamEntry>,
    #[serde(default)]
    pub group: Vec<GroupEntry>,
    #[serde(default)]
    pub limits: LimitsEntry,
    #[serde(default)]
    pub timeouts: TimeoutsEntry,
    #[serde(default)]
    pub storage: StorageEntry,
    #[serde(default)]
    pub cluster: ClusterEntry,
    #[serde(default)]
    pub cache: CacheEntry,
    #[serde(default)]
    pub auth: AuthEntry,
    #[serde(default)]
    pub server: ServerEntry,
    #[serde(default)]
    pub egress: EgressEntry,
    /// The base URL clients reach the proxy at (the token realm is `<public_url>/v2/token`);
    /// needed behind a load balancer or TLS terminator. Default: `http://<Host of the request>`.
    pub public_url: Option<String>,
    /// Proxies (CIDR or single addresses) whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Address of the admin API (`serve`, `control`; default 127.0.0.1:5080), or `off`.
    pub admin_listen: Option<AdminListen>,
}

/// Where the admin API (and its status page) listens: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    At(SocketAddr),
    Off,
}

impl std::str::FromStr for AdminListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "off" {
            return Ok(AdminListen::Off);
        }
        text.parse()
            .map(AdminListen::At)
            .map_err(|_| format!("{text:?} is neither an address (like 127.0.0.1:5080) nor `off`"))
    }
}

impl<'de> Deserialize<'de> for AdminListen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `[cache]`: memory the cache keeps to answer hits without a database or storage round trip.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheEntry {
    /// Objects up to this size (manifests, configs) are kept in memory once read (default 256KiB).
    pub small_object_max_size: Option<ByteSize>,
    /// Memory for those objects, least recently used first out (default 32MiB).
    pub small_object_memory: Option<ByteSize>,
    /// Metadata rows kept in memory per kind (blob rows, manifest rows; default 100000).
    pub catalog_entries: Option<u64>,
    /// Longest a metadata row stays in memory (default 10m).
    #[serde(default, with = "humantime_serde")]
    pub catalog_ttl: Option<Duration>,
    /// Bytes the whole store may hold (each object once); none by default.
    pub max_size: Option<ByteSize>,
    /// Percent of a quota (this one and each group's `max_size`) past which eviction starts
    /// (default 90)…
    pub high_watermark: Option<u8>,
    /// …and down to which it evicts (default 80).
    pub low_watermark: Option<u8>,
    /// How often the sweeper runs (default 10m); it also runs at once when a quota is passed.
    #[serde(default, with = "humantime_serde")]
    pub sweep_interval: Option<Duration>,
    /// How often reads (`read_at`, hit counts, traffic) are written to the database (default 5s).
    #[serde(default, with = "humantime_serde")]
    pub access_flush_interval: Option<Duration>,
    /// Age before an object in storage that no row knows of is deleted (default 1h).
    #[serde(default, with = "humantime_serde")]
    pub orphan_grace: Option<Duration>,
    /// Age after which a spool or an S3 multipart upload counts as abandoned (default 24h).
    #[serde(default, with = "humantime_serde")]
    pub upload_grace: Option<Duration>,
}

/// `[storage]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageEntry {
    /// `filesystem` (default, under `data_dir`) or `s3`.
    pub kind: Option<String>,
    /// S3 endpoint URL (omit for AWS).
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    /// Default `us-east-1`.
    pub region: Option<String>,
    /// Path-style requests (default true: what S3-compatible servers expect).
    pub path_style: Option<bool>,
    /// Key prefix inside the bucket.
    pub prefix: Option<String>,
    /// Otherwise `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the environment.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    /// Answer blob hits with a 307 to a presigned URL instead of streaming them.
    #[serde(default)]
    pub redirect: bool,
    /// How long a presigned URL stays valid (default 10m).
    #[serde(default, with = "humantime_serde")]
    pub presigned_url_ttl: Option<Duration>,
    /// How long an evicted object stays in storage before it is deleted, for readers that started
    /// before (default 0 on disk, where an open file outlives its deletion; 15m on S3).
    #[serde(default, with = "humantime_serde")]
    pub delete_delay: Option<Duration>,
}

/// `[cluster]`: several gateways and control planes as one cache.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    /// How long a fill lease lasts without renewal (default 30s). A node that dies mid-fill
    /// blocks other nodes from caching that object for at most this long.
    #[serde(default, with = "humantime_serde")]
    pub lease_ttl: Option<Duration>,
    /// This node's name in fill leases (default `<hostname>:<absolute data_dir>`). It must be stable
    /// across restarts, so a restarted node takes its own leases back at once, and unique per node.
    pub node_id: Option<String>,
}

/// `[egress]`: how outbound traffic leaves. The environment's `HTTP_PROXY`, `HTTPS_PROXY` and
/// `ALL_PROXY` are never used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressEntry {
    /// Forward proxy for upstream and S3 traffic (`http://host:port`); the egress rules are
    /// checked on the target's name and addresses before the proxy is asked.
    pub proxy: Option<String>,
    /// Hosts reached without the proxy (`host`, `.domain`, addresses, CIDR networks).
    #[serde(default)]
    pub no_proxy: Vec<String>,
}

/// One `[[upstream]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntry {
    pub name: String,
    pub url: String,
    /// The protocol it speaks (default `oci`).
    pub format: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// PEM bundle of extra CA certificates trusted for this upstream.
    pub ca_file: Option<PathBuf>,
    /// Where this upstream's redirects and token realms may lead besides its own origin and
    /// public https addresses: `host`, `host:port`, addresses or CIDR networks.
    #[serde(default)]
    pub redirect_allow: Vec<String>,
    /// Hosts (`host` or `host:port`) whose token realms get this upstream's credentials besides
    /// its own host (Docker Hub's token service is built in for Docker Hub).
    #[serde(default)]
    pub realm_allow: Vec<String>,
    /// Lets credentials go to a plain `http://` upstream that is not on loopback, where anyone
    /// on the path can read them and rewrite the challenge.
    #[serde(default)]
    pub allow_insecure_credentials: bool,
    /// Also serve this upstream at `/v2/<name>/<image>` (the prefix wins over a root-mirror image
    /// whose first path component is the same word).
    #[serde(default)]
    pub path_prefix: bool,
    /// A PyPI upstream's file host: where its index's download URLs point, when not at `url`
    /// (fetched through the proxy, served to clients under `/pypi/<group>/files/`).
    pub files_url: Option<String>,
}

/// One `[[group]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub path: String,
    /// The upstream it caches (or `upstreams`).
    pub upstream: Option<String>,
    /// Upstreams it asks in order, the first that has the artifact serving it (or `upstream`).
    pub upstreams: Option<Vec<String>>,
    /// The protocol its clients speak (default: its upstream's); must be its upstream's.
    pub format: Option<String>,
    /// How long a cached tag is served without asking upstream (e.g. "5m").
    #[serde(default, with = "humantime_serde")]
    pub manifest_recheck: Option<Duration>,
    /// A package group's: how long a cached document (packument, project page) is served
    /// without asking upstream (default "5m").
    #[serde(default, with = "humantime_serde")]
    pub document_recheck: Option<Duration>,
    /// `token` (pulling needs an access token granted this group) or `anonymous`; default:
    /// `anonymous` when the upstream has no credentials, `token` when it has.
    pub access: Option<AccessModeEntry>,
    /// Client networks (CIDR or single addresses) that may pull anonymously anyway.
    #[serde(default)]
    pub anonymous_networks: Vec<String>,
    /// Lets an `anonymous` group pull through upstream credentials on a non-loopback listener.
    #[serde(default)]
    pub allow_anonymous_with_credentials: bool,
    /// Objects and tags not read for this long are removed (default "90d"; "never" keeps them).
    pub ttl: Option<String>,
    /// Bytes the group may hold; past it, least recently read objects go first.
    pub max_size: Option<ByteSize>,
    /// `IMAGE:TAG` patterns (`*`, `?`) that TTL and quota never evict; a package group's are
    /// `NAME` or `NAME@VERSION` (`lodash`, `@internal/*`, `requests@2.32.*`).
    #[serde(default)]
    pub pin: Vec<String>,
    /// Only what these patterns match may be pulled (`NAME`, or `NAME:TAG` for images); none:
    /// everything not denied.
    #[serde(default)]
    pub allow: Vec<String>,
    /// What these patterns match is refused (403), cached or not; deny wins over allow.
    #[serde(default)]
    pub deny: Vec<String>,
    /// How long an upstream 404 is answered from memory (default "1m"; "0s" turns it off).
    pub negative_ttl: Option<String>,
    /// Tag patterns (`v*.*.*`) whose cached tags are never revalidated, as digests are.
    #[serde(default)]
    pub immutable_tags: Vec<String>,
    /// Serve a cached tag (marked stale) when upstream now answers 404 for it (default false).
    #[serde(default)]
    pub stale_on_404: bool,
    /// A Go group's: verify each module `.zip` and `.mod` against the `h1:` hash the checksum
    /// database `sumdb` gives for it before recording it (default false: recorded as fetched).
    #[serde(default)]
    pub verify_sumdb: bool,
    /// The checksum database `verify_sumdb` asks (its name as `GOSUMDB` writes it), reached through
    /// the group's upstreams at `/sumdb/<name>/`.
    pub sumdb: Option<String>,
    /// An `http(s)://` URL POSTed a description of each new artifact before it is first served;
    /// its `{"allow": …, "reason": …}` decides (default: none, no hold).
    pub admission_hook: Option<String>,
    /// How long the hook may take to answer (default "30s").
    pub admission_timeout: Option<String>,
    /// `deny` (default) or `allow`: what a request gets when the hook does not answer in time.
    pub admission_on_timeout: Option<String>,
    /// Warming on a schedule: `[{ images = ["library/alpine:3.*"], every = "6h", keep = 3 }]`.
    #[serde(default)]
    pub warm: Vec<WarmEntry>,
}

/// One entry of a group's `warm`: what to keep warm, and how often.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmEntry {
    /// `NAME:TAG` of images, the tag exact or a glob over the upstream's tags (`3.*`).
    #[serde(default)]
    pub images: Vec<String>,
    /// `NAME@VERSION` of packages, for the groups of package formats.
    #[serde(default)]
    pub packages: Vec<String>,
    /// How often (at least `1m`), e.g. `"6h"`.
    pub every: Option<String>,
    /// How many tags each glob warms, newest first (default 3).
    pub keep: Option<usize>,
}

/// `access = "token" | "anonymous"`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessModeEntry {
    Token,
    Anonymous,
}

/// `[server]`: limits of the listeners, against slow, idle and abusive connections.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// Connections open at once (default 10000).
    pub max_connections: Option<usize>,
    /// Longest a client may take to send a request's headers (default 30s).
    #[serde(default, with = "humantime_serde")]
    pub header_read_timeout: Option<Duration>,
    /// A connection with no traffic for this long is closed (default 30s).
    #[serde(default, with = "humantime_serde")]
    pub keepalive_timeout: Option<Duration>,
    /// A response a client stops reading for this long is dropped (default 60s).
    #[serde(default, with = "humantime_serde")]
    pub write_idle_timeout: Option<Duration>,
    /// Largest request head, line and headers (default 64KiB).
    pub max_header_bytes: Option<ByteSize>,
    /// Connections one client address may have open (default a tenth of max_connections).
    pub max_connections_per_client: Option<usize>,
    /// Longest a client may take to send a request body (default 30s).
    #[serde(default, with = "humantime_serde")]
    pub body_read_timeout: Option<Duration>,
    /// Longest from a request's head to its response head, for what the proxy answers itself or
    /// from the control plane (default 60s).
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// HTTP/2 streams a connection may have open at once (default 64).
    pub max_concurrent_streams: Option<u32>,
    /// HTTP/2 without TLS (h2c) on listeners without TLS (default false).
    pub http2: Option<bool>,
    /// Names a listener on a loopback address answers besides loopback ones.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// `[auth]`: access tokens and the registry tokens (JWTs) issued for them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthEntry {
    /// Lifetime of a registry token (default 5m).
    #[serde(default, with = "humantime_serde")]
    pub token_ttl: Option<Duration>,
    /// Lifetime of a refresh token (`offline_token`), capped by its access token's expiry (default 90d).
    #[serde(default, with = "humantime_serde")]
    pub refresh_token_ttl: Option<Duration>,
    /// The key registry tokens are signed with (32 bytes, base64 or hex; `depproxy gen-secret`
    /// writes one). Every control plane of a cluster must share it. Default for `serve`:
    /// `<data_dir>/token-signing.key`, created on the first start with a group that uses tokens.
    pub signing_key_file: Option<PathBuf>,
    /// How often a control plane reloads the access tokens (a revocation takes effect within it;
    /// default 10s).
    #[serde(default, with = "humantime_serde")]
    pub token_check_interval: Option<Duration>,
    /// Failed logins allowed per client address and minute before it gets 429 (default 10).
    pub failed_logins_per_minute: Option<u32>,
}

/// `[limits]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsEntry {
    /// Largest blob that is cached (e.g. "10GiB" or a number of bytes).
    pub max_blob_size: Option<ByteSize>,
    /// Largest manifest accepted (e.g. "4MiB").
    pub max_manifest_size: Option<ByteSize>,
    /// Recent bytes a fill keeps in memory for clients following it (default 4MiB).
    pub fill_window: Option<ByteSize>,
    /// Recent bytes all fills keep in memory together (default 256MiB).
    pub fill_memory: Option<ByteSize>,
    /// Fills (upstream downloads) running at once on a gateway (default 256).
    pub max_concurrent_fills: Option<usize>,
    /// Fills one client address may have running at once (default a quarter of the above).
    pub max_fills_per_client: Option<usize>,
    /// Longest a miss waits for a free fill before it gets 503 with Retry-After (default 30s).
    #[serde(default, with = "humantime_serde")]
    pub fill_queue_timeout: Option<Duration>,
}

/// `[timeouts]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsEntry {
    /// TCP/TLS connect to an upstream.
    #[serde(default, with = "humantime_serde")]
    pub connect: Option<Duration>,
    /// Wait for upstream response headers.
    #[serde(default, with = "humantime_serde")]
    pub header: Option<Duration>,
    /// Longest silence between two chunks of an upstream body.
    #[serde(default, with = "humantime_serde")]
    pub idle: Option<Duration>,
    /// Longest wait for the HEAD revalidating a stale tag before the cached copy is served.
    #[serde(default, with = "humantime_serde")]
    pub recheck: Option<Duration>,
    /// A gateway's TCP connect to its control plane (split mode).
    #[serde(default, with = "humantime_serde")]
    pub control_connect: Option<Duration>,
    /// A gateway's whole request to its control plane, a decision with its upstream calls.
    #[serde(default, with = "humantime_serde")]
    pub control_request: Option<Duration>,
    /// On SIGTERM/SIGINT, how long running downloads and fills may finish before they are cancelled.
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
}

/// A byte count written as a number or with a unit (`512`, `"4MiB"`, `"10GB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(bytes) => Ok(ByteSize(bytes)),
            Raw::Text(text) => parse_byte_size(&text).map(ByteSize).map_err(serde::de::Error::custom),
        }
    }
}

pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("invalid size {text:?}"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    number.checked_mul(multiplier).ok_or_else(|| format!("size {text:?} is too large"))
}

/// Settings after defaults and overrides. Its `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub upstreams: Vec<ResolvedUpstream>,
    pub groups: Vec<ResolvedGroup>,
    pub limits: Limits,
    pub connect_timeout: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub recheck_timeout: Duration,
    pub control_connect_timeout: Duration,
    pub control_request_timeout: Duration,
    pub shutdown_grace: Duration,
    pub storage: StorageConfig,
    pub lease_ttl: Duration,
    pub node_id: String,
    pub small_objects: SmallObjectSettings,
    pub catalog: CatalogSettings,
    /// Recent bytes per fill and for all fills, in memory.
    pub fill_window: u64,
    pub fill_memory: u64,
    pub fill_limits: gateway::FillLimits,
    pub auth: AuthConfig,
    pub server: crate::server::ServerLimits,
    pub lifecycle: LifecycleConfig,
    pub public_url: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// The forward proxy for upstream and S3 traffic (`[egress]`).
    pub egress_proxy: Option<upstream::EgressProxy>,
    /// The admin API's address, or `off`.
    pub admin_listen: AdminListen,
}

/// A group with its access policy decided.
#[derive(Debug, Clone)]
pub struct ResolvedGroup {
    pub path: String,
    /// The upstreams it asks, in order (one in the single-upstream form).
    pub upstreams: Vec<String>,
    pub format: cache::Format,
    pub manifest_recheck: Option<Duration>,
    pub access: AccessPolicy,
    pub lifecycle: LifecyclePolicy,
    /// Allow and deny rules, remembered 404s, immutable tags, stale on 404: what a reload
    /// (SIGHUP) changes without a restart.
    pub policy: PullPolicy,
    /// Its `warm` entries (read at start).
    pub warm: Vec<WarmSchedule>,
}

/// `[auth]` after defaults.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub signing_key_file: Option<PathBuf>,
    pub token_check_interval: Duration,
    pub failed_logins_per_minute: u32,
}

impl Config {
    /// What start-up warns about: settings that work, but probably not as meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.trusted_proxies.is_empty() && self.public_url.is_none() {
            warnings.push(
                "trusted_proxies is set without public_url: the token realm is built from each request's \
                 Host (and a trusted proxy's X-Forwarded-Proto); set public_url to the address clients use"
                    .to_owned(),
            );
        }
        for group in &self.groups {
            for note in group.policy.names.shadowed() {
                warnings.push(format!("group {:?}: {note}", group.path));
            }
            for pattern in group.warm.iter().flat_map(|schedule| &schedule.patterns) {
                let Some(tag) = pattern.exact_tag() else { continue };
                if group.policy.names.check(pattern.name(), Some(tag)).is_err() {
                    warnings.push(format!(
                        "group {:?}: warm pattern {:?} is refused by the group's allow/deny rules: it is never warmed",
                        group.path,
                        pattern.as_str()
                    ));
                }
            }
        }
        warnings
    }

    /// Whether any group needs access tokens from some client (then registry tokens are issued,
    /// and every control plane must share the signing key).
    pub fn uses_tokens(&self) -> bool {
        !self.token_groups().is_empty()
    }

    /// The groups that need access tokens from some client: configured ones, and the implicit
    /// mirror group (`upstream/<name>`) of an upstream with credentials that no group uses.
    pub fn token_groups(&self) -> Vec<String> {
        let configured = self.groups.iter().filter(|group| group.access.mode == AccessMode::Token);
        let implicit = self.upstreams.iter().filter(|upstream| {
            !self.groups.iter().any(|group| group.upstreams == [upstream.name.as_str()])
                && Self::implicit_access(upstream).mode == AccessMode::Token
        });
        configured
            .map(|group| group.path.clone())
            .chain(implicit.map(|upstream| format!("upstream/{}", upstream.name)))
            .collect()
    }

    /// The lifecycle of implicit mirror groups: the default TTL, no quota, no pins.
    pub fn implicit_lifecycle(&self) -> LifecyclePolicy {
        LifecyclePolicy { ttl: Some(defaults::GROUP_TTL), ..LifecyclePolicy::default() }
    }

    /// The policy of the implicit mirror group of an upstream no configured group uses: open when
    /// the upstream has no credentials to protect.
    pub fn implicit_access(upstream: &ResolvedUpstream) -> AccessPolicy {
        if upstream.password.is_some() { AccessPolicy::token() } else { AccessPolicy::anonymous() }
    }
}

impl Config {
    /// The cache domain's settings.
    pub fn cache_settings(&self) -> CacheSettings {
        CacheSettings {
            limits: self.limits,
            recheck_timeout: self.recheck_timeout,
            lease_ttl: self.lease_ttl,
            catalog: self.catalog,
            not_found_entries: defaults::NOT_FOUND_ENTRIES,
        }
    }
}

/// Where objects live.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    Filesystem,
    S3(storage::S3Settings),
}

/// An upstream with its secrets read (never shown by `Debug`).
#[derive(Debug, Clone)]
pub struct ResolvedUpstream {
    pub name: String,
    pub url: url::Url,
    pub format: cache::Format,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub ca_pem: Option<Vec<u8>>,
    pub redirect_allow: Vec<upstream::AllowEntry>,
    pub realm_allow: Vec<upstream::AllowEntry>,
    pub path_prefix: bool,
    /// A PyPI upstream's file host (`files_url`).
    pub files_url: Option<url::Url>,
}

/// Flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub upstream: Option<String>,
}

pub fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

impl Config {
    /// Applies defaults and overrides to a file (or to nothing: zero config), one section at a
    /// time.
    pub fn resolve(file: FileConfig, overrides: &Overrides) -> anyhow::Result<Config> {
        let listen = match overrides.listen.or(file.listen) {
            Some(listen) => listen,
            None => defaults::LISTEN.parse().context("default listen address")?,
        };
        let data_dir =
            overrides.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR));
        let database_url = DatabaseUrl::new(
            file.database_url.unwrap_or_else(|| format!("sqlite:{}", data_dir.join("depproxy.db").display())),
        );
        let (upstream_entries, group_entries) =
            with_upstream_flag(file.upstream, file.group, overrides.upstream.as_deref())?;
        let upstreams = resolve_upstreams(upstream_entries)?;
        let trusted_proxies = parse_networks(&file.trusted_proxies).context("trusted_proxies")?;
        let groups = resolve_groups(&group_entries, &upstreams, listen, !trusted_proxies.is_empty())?;
        let egress_proxy = resolve_egress(&file.egress)?;
        let delete_delay = file.storage.delete_delay;
        let storage = resolve_storage(file.storage, &data_dir, egress_proxy.as_ref())?;
        let lifecycle = resolve_lifecycle_settings(&file.cache, &storage, delete_delay)?;
        let cluster = resolve_cluster(file.cluster, &data_dir);
        let timeouts = resolve_timeouts(&file.timeouts);
        let limits = resolve_limits(&file.limits);
        let memory = resolve_cache_memory(&file.cache);
        let public_url = resolve_public_url(file.public_url)?;
        Ok(Config {
            listen,
            data_dir,
            database_url,
            upstreams,
            groups,
            limits: limits.objects,
            connect_timeout: timeouts.connect,
            header_timeout: timeouts.header,
            idle_timeout: timeouts.idle,
            recheck_timeout: timeouts.recheck,
            control_connect_timeout: timeouts.control_connect,
            control_request_timeout: timeouts.control_request,
            shutdown_grace: timeouts.shutdown_grace,
            storage,
            lease_ttl: cluster.lease_ttl,
            node_id: cluster.node_id,
            small_objects: memory.small_objects,
            catalog: memory.catalog,
            fill_window: limits.fill_window,
            fill_memory: limits.fill_memory,
            fill_limits: limits.fills,
            auth: resolve_auth(file.auth),
            server: resolve_server(&file.server, public_url.as_deref(), &trusted_proxies)?,
            lifecycle,
            public_url,
            trusted_proxies,
            egress_proxy,
            admin_listen: match file.admin_listen {
                Some(admin_listen) => admin_listen,
                None => AdminListen::At(defaults::ADMIN_LISTEN.parse().context("default admin address")?),
            },
        })
    }
}

/// The `[[upstream]]` and `[[group]]` tables with `--upstream` applied; with neither, and no
/// flag, the zero config: Docker Hub as the `default` group's upstream.
fn with_upstream_flag(
    mut upstreams: Vec<UpstreamEntry>,
    mut groups: Vec<GroupEntry>,
    flag: Option<&str>,
) -> anyhow::Result<(Vec<UpstreamEntry>, Vec<GroupEntry>)> {
    let zero_config = upstreams.is_empty() && groups.is_empty();
    if let Some(url) = flag {
        check_upstream_flag(url)?;
    }
    match flag {
        // `--upstream` with no upstream configured: it is the default group's upstream, named
        // after its host (what `admin status` shows), not after Docker Hub.
        Some(url) if zero_config => {
            let name = flag_upstream_name(url, &upstreams);
            add_default_group(&mut upstreams, &mut groups, name, url.to_owned());
        }
        // `--upstream` replaces the URL of the upstream the `default` group uses, keeping the
        // name the file gave it; without a `default` group it adds both.
        Some(url) => match groups.iter().find(|group| group.path == cache::DEFAULT_GROUP).cloned() {
            Some(group) => {
                let name = match group.upstream_names()?.as_slice() {
                    [name] => name.clone(),
                    names => bail!(
                        "--upstream replaces the URL of the default group's upstream, but group default \
                         asks several ({}): set their URLs in the file instead",
                        names.join(", ")
                    ),
                };
                match upstreams.iter_mut().find(|entry| entry.name == name) {
                    Some(entry) => entry.url = url.to_owned(),
                    None => bail!("group default names unknown upstream {name:?}"),
                }
            }
            None => {
                let name = flag_upstream_name(url, &upstreams);
                add_default_group(&mut upstreams, &mut groups, name, url.to_owned());
            }
        },
        None if zero_config => {
            add_default_group(
                &mut upstreams,
                &mut groups,
                defaults::UPSTREAM_NAME.into(),
                defaults::DOCKER_HUB_URL.into(),
            );
        }
        None => {}
    }
    Ok((upstreams, groups))
}

/// Adds the `default` group and its upstream.
fn add_default_group(
    upstreams: &mut Vec<UpstreamEntry>,
    groups: &mut Vec<GroupEntry>,
    name: String,
    url: String,
) {
    upstreams.push(UpstreamEntry { name: name.clone(), url, ..UpstreamEntry::default() });
    groups.push(GroupEntry {
        path: cache::DEFAULT_GROUP.into(),
        upstream: Some(name),
        ..GroupEntry::default()
    });
}

/// Every upstream, each name once.
fn resolve_upstreams(entries: Vec<UpstreamEntry>) -> anyhow::Result<Vec<ResolvedUpstream>> {
    let mut upstreams = Vec::new();
    for entry in entries {
        if upstreams.iter().any(|existing: &ResolvedUpstream| existing.name == entry.name) {
            bail!("upstream {:?} is defined twice", entry.name);
        }
        upstreams.push(resolve_upstream(entry)?);
    }
    Ok(upstreams)
}

/// Every group, each path once and valid, each naming known upstreams.
fn resolve_groups(
    entries: &[GroupEntry],
    upstreams: &[ResolvedUpstream],
    listen: SocketAddr,
    behind_proxies: bool,
) -> anyhow::Result<Vec<ResolvedGroup>> {
    let mut groups = Vec::new();
    for group in entries {
        oci::GroupPath::parse(&group.path)
            .map_err(|error| anyhow::anyhow!("group {:?}: {}", group.path, error.message))?;
        let mut named = Vec::new();
        for name in group.upstream_names()? {
            let Some(upstream) = upstreams.iter().find(|upstream| upstream.name == name) else {
                let known: Vec<&str> = upstreams.iter().map(|upstream| upstream.name.as_str()).collect();
                bail!(
                    "group {:?} names unknown upstream {name:?} (the [[upstream]] tables name: {})",
                    group.path,
                    known.join(", ")
                );
            };
            named.push(upstream);
        }
        if entries.iter().filter(|other| other.path == group.path).count() > 1 {
            bail!("group {:?} is defined twice", group.path);
        }
        groups.push(resolve_group(group, &named, listen, behind_proxies)?);
    }
    Ok(groups)
}

impl GroupEntry {
    /// The upstreams the group asks, in order: `upstream`, or `upstreams` (at most
    /// [`cache::MAX_UPSTREAMS`], each once) — one of the two.
    pub fn upstream_names(&self) -> anyhow::Result<Vec<String>> {
        let path = &self.path;
        let names = match (&self.upstream, &self.upstreams) {
            (Some(_), Some(_)) => bail!(
                "group {path:?} has both upstream and upstreams: give upstream = \"name\" for one upstream, \
                 or upstreams = [\"first\", \"second\"] to ask several in order"
            ),
            (None, None) => bail!(
                "group {path:?} needs an upstream: upstream = \"name\", or upstreams = [\"first\", \"second\"] \
                 to ask several in order"
            ),
            (Some(name), None) => return Ok(vec![name.clone()]),
            (None, Some(names)) => names,
        };
        if names.is_empty() {
            bail!("group {path:?}: upstreams = [] names no upstream");
        }
        if names.len() > cache::MAX_UPSTREAMS {
            bail!(
                "group {path:?} lists {} upstreams; a group asks at most {} (a miss of something none of \
                 them has asks every one)",
                names.len(),
                cache::MAX_UPSTREAMS
            );
        }
        for (index, name) in names.iter().enumerate() {
            if names[..index].contains(name) {
                bail!("group {path:?} lists upstream {name:?} twice in upstreams");
            }
        }
        Ok(names.clone())
    }
}

/// `[egress]`: the forward proxy, if any.
fn resolve_egress(entry: &EgressEntry) -> anyhow::Result<Option<upstream::EgressProxy>> {
    match &entry.proxy {
        Some(url) => Ok(Some(upstream::EgressProxy::parse(url, &entry.no_proxy).context("[egress] proxy")?)),
        None if !entry.no_proxy.is_empty() => bail!("[egress] no_proxy without a proxy"),
        None => Ok(None),
    }
}

/// `[cluster]` after defaults.
struct Cluster {
    node_id: String,
    lease_ttl: Duration,
}

fn resolve_cluster(entry: ClusterEntry, data_dir: &Path) -> Cluster {
    Cluster {
        node_id: entry.node_id.unwrap_or_else(|| default_node_id(data_dir)),
        lease_ttl: entry.lease_ttl.unwrap_or(defaults::LEASE_TTL),
    }
}

/// `[timeouts]` after defaults.
struct Timeouts {
    connect: Duration,
    header: Duration,
    idle: Duration,
    recheck: Duration,
    control_connect: Duration,
    control_request: Duration,
    shutdown_grace: Duration,
}

fn resolve_timeouts(entry: &TimeoutsEntry) -> Timeouts {
    Timeouts {
        connect: entry.connect.unwrap_or(defaults::CONNECT_TIMEOUT),
        header: entry.header.unwrap_or(defaults::HEADER_TIMEOUT),
        idle: entry.idle.unwrap_or(defaults::IDLE_TIMEOUT),
        recheck: entry.recheck.unwrap_or(defaults::RECHECK_TIMEOUT),
        control_connect: entry.control_connect.unwrap_or(defaults::CONTROL_CONNECT_TIMEOUT),
        control_request: entry.control_request.unwrap_or(defaults::CONTROL_REQUEST_TIMEOUT),
        shutdown_grace: entry.shutdown_grace.unwrap_or(defaults::SHUTDOWN_GRACE),
    }
}

/// `[limits]` after defaults.
struct ResolvedLimits {
    objects: Limits,
    fill_window: u64,
    fill_memory: u64,
    fills: gateway::FillLimits,
}

fn resolve_limits(entry: &LimitsEntry) -> ResolvedLimits {
    let max_fills = entry.max_concurrent_fills.unwrap_or(defaults::MAX_CONCURRENT_FILLS);
    ResolvedLimits {
        objects: Limits {
            max_blob_size: entry.max_blob_size.map_or(defaults::MAX_BLOB_SIZE, |size| size.0),
            max_manifest_size: entry.max_manifest_size.map_or(defaults::MAX_MANIFEST_SIZE, |size| size.0),
        },
        fill_window: entry.fill_window.map_or(defaults::FILL_WINDOW, |size| size.0),
        fill_memory: entry.fill_memory.map_or(defaults::FILL_MEMORY, |size| size.0),
        fills: gateway::FillLimits {
            max_fills,
            per_client: entry.max_fills_per_client.unwrap_or((max_fills / 4).max(1)),
            queue_timeout: entry.fill_queue_timeout.unwrap_or(defaults::FILL_QUEUE_TIMEOUT),
        },
    }
}

/// What `[cache]` keeps in memory: small objects and catalog rows.
struct CacheMemory {
    small_objects: SmallObjectSettings,
    catalog: CatalogSettings,
}

fn resolve_cache_memory(entry: &CacheEntry) -> CacheMemory {
    CacheMemory {
        small_objects: SmallObjectSettings {
            max_object_size: entry
                .small_object_max_size
                .map_or(defaults::SMALL_OBJECT_MAX_SIZE, |size| size.0),
            capacity: entry.small_object_memory.map_or(defaults::SMALL_OBJECT_MEMORY, |size| size.0),
        },
        catalog: CatalogSettings {
            capacity: entry.catalog_entries.unwrap_or(defaults::CATALOG_ENTRIES),
            ttl: entry.catalog_ttl.unwrap_or(defaults::CATALOG_TTL),
        },
    }
}

/// `[auth]` after defaults.
fn resolve_auth(entry: AuthEntry) -> AuthConfig {
    AuthConfig {
        token_ttl: entry.token_ttl.unwrap_or(defaults::TOKEN_TTL),
        refresh_token_ttl: entry.refresh_token_ttl.unwrap_or(defaults::REFRESH_TOKEN_TTL),
        signing_key_file: entry.signing_key_file,
        token_check_interval: entry.token_check_interval.unwrap_or(defaults::TOKEN_CHECK_INTERVAL),
        failed_logins_per_minute: entry
            .failed_logins_per_minute
            .unwrap_or(defaults::FAILED_LOGINS_PER_MINUTE),
    }
}

/// `--upstream` is a URL with its scheme: `registry.example.com` alone would otherwise fail as
/// "relative URL without a base".
fn check_upstream_flag(url: &str) -> anyhow::Result<()> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(());
    }
    // The value is echoed only when it cannot hold a password (user:password@host).
    if url.contains('@') {
        bail!("--upstream needs a URL starting with http:// or https://");
    }
    bail!(
        "--upstream {url:?} needs a URL starting with http:// or https://, e.g. https://{url} (or http://{url} \
         for a registry without TLS)"
    )
}

/// The name of an upstream made by `--upstream`: its host (`registry.example.com`, `127.0.0.1`),
/// or [`defaults::FLAG_UPSTREAM_NAME`] when the host is not a valid name or already taken.
fn flag_upstream_name(url: &str, taken: &[UpstreamEntry]) -> String {
    let host = url::Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_ascii_lowercase));
    host.filter(|host| valid_upstream_name(host) && !taken.iter().any(|entry| &entry.name == host))
        .unwrap_or_else(|| defaults::FLAG_UPSTREAM_NAME.to_owned())
}

fn valid_upstream_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
}

/// `[server]` after defaults. A loopback listener answers `allowed_hosts` and the host of
/// `public_url` besides loopback names.
fn resolve_server(
    entry: &ServerEntry,
    public_url: Option<&str>,
    trusted_proxies: &[IpNet],
) -> anyhow::Result<crate::server::ServerLimits> {
    use crate::server::{Host, HostPolicy};
    let mut allowed = entry
        .allowed_hosts
        .iter()
        .map(|text| {
            Host::parse(text).with_context(|| {
                format!(
                    "[server] allowed_hosts: {text:?} is not a host name or address (with an optional :port)"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(host) = public_url.and_then(|url| url::Url::parse(url).ok()?.host_str().map(str::to_owned)) {
        allowed.push(Host::parse(&host).with_context(|| format!("public_url: host {host:?}"))?);
    }
    let max_connections = entry.max_connections.unwrap_or(defaults::MAX_CONNECTIONS);
    Ok(crate::server::ServerLimits {
        max_connections,
        max_connections_per_client: entry
            .max_connections_per_client
            .unwrap_or((max_connections / defaults::CONNECTIONS_PER_CLIENT_DIVISOR).max(1)),
        header_read_timeout: entry.header_read_timeout.unwrap_or(defaults::HEADER_READ_TIMEOUT),
        body_read_timeout: entry.body_read_timeout.unwrap_or(defaults::BODY_READ_TIMEOUT),
        request_timeout: entry.request_timeout.unwrap_or(defaults::REQUEST_TIMEOUT),
        keepalive_timeout: entry.keepalive_timeout.unwrap_or(defaults::KEEPALIVE_TIMEOUT),
        write_idle_timeout: entry.write_idle_timeout.unwrap_or(defaults::WRITE_IDLE_TIMEOUT),
        max_header_bytes: usize::try_from(
            entry.max_header_bytes.map_or(defaults::MAX_HEADER_BYTES, |size| size.0),
        )
        .unwrap_or(usize::MAX),
        max_concurrent_streams: entry.max_concurrent_streams.unwrap_or(defaults::MAX_CONCURRENT_STREAMS),
        http2: entry.http2.unwrap_or(defaults::HTTP2_CLEARTEXT),
        allowed_hosts: HostPolicy::new(allowed),
        trusted_proxies: trusted_proxies.into(),
    })
}

/// A node is its host and its data directory: stable across restarts (even on another port), and
/// distinct for several nodes on one host, which each need their own data directory for spools.
fn default_node_id(data_dir: &Path) -> String {
    let directory = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    format!("{}:{}", hostname(), directory.display())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "node".into())
}

fn resolve_storage(
    entry: StorageEntry,
    data_dir: &Path,
    proxy: Option<&upstream::EgressProxy>,
) -> anyhow::Result<StorageConfig> {
    match entry.kind.as_deref().unwrap_or("filesystem") {
        "filesystem" => {
            if entry.bucket.is_some() || entry.endpoint.is_some() {
                bail!("[storage] bucket/endpoint are for kind = \"s3\"");
            }
            Ok(StorageConfig::Filesystem)
        }
        "s3" => {
            let bucket = entry.bucket.context("[storage] kind = \"s3\" needs a bucket")?;
            let secret_access_key = match (entry.secret_access_key, entry.secret_access_key_file) {
                (Some(secret), None) => Some(SecretString::from(secret)),
                (None, Some(file)) => Some(SecretString::from(
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read secret_access_key_file {}", file.display()))?
                        .trim()
                        .to_owned(),
                )),
                (None, None) => None,
                (Some(_), Some(_)) => {
                    bail!("[storage] give secret_access_key or secret_access_key_file, not both")
                }
            };
            if entry.access_key_id.is_some() != secret_access_key.is_some() {
                bail!("[storage] access_key_id and secret_access_key go together");
            }
            Ok(StorageConfig::S3(storage::S3Settings {
                endpoint: entry.endpoint,
                bucket,
                region: entry.region.unwrap_or_else(|| defaults::S3_REGION.into()),
                path_style: entry.path_style.unwrap_or(true),
                access_key_id: entry.access_key_id,
                secret_access_key,
                prefix: entry.prefix.unwrap_or_default(),
                redirect: entry.redirect,
                presigned_url_ttl: entry.presigned_url_ttl.unwrap_or(defaults::PRESIGNED_URL_TTL),
                spool_dir: data_dir.join("spool"),
                proxy: proxy.map(|proxy| {
                    Box::new(storage::S3Proxy { url: proxy.url.to_string(), no_proxy: proxy.no_proxy_list() })
                }),
            }))
        }
        other => bail!("[storage] kind {other:?} is unknown (filesystem or s3)"),
    }
}

/// `10.0.0.0/8` or a single address (`10.1.2.3` = `10.1.2.3/32`).
fn parse_networks(texts: &[String]) -> anyhow::Result<Vec<IpNet>> {
    texts
        .iter()
        .map(|text| {
            text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(
                |_| anyhow::anyhow!("{text:?} is not a network (CIDR like 10.0.0.0/8) or an address"),
            )
        })
        .collect()
}

fn resolve_public_url(text: Option<String>) -> anyhow::Result<Option<String>> {
    let Some(text) = text else { return Ok(None) };
    let url = url::Url::parse(&text).with_context(|| format!("public_url {text:?} is not a URL"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        bail!("public_url must be http:// or https://");
    }
    if url.query().is_some() || !url.username().is_empty() {
        bail!("public_url is a base URL: no query, no user");
    }
    Ok(Some(text.trim_end_matches('/').to_owned()))
}

/// A group's access policy, refusing to open credentials to everyone by default. A loopback
/// listener is only local when no proxy forwards to it: with `trusted_proxies` set, clients from
/// anywhere reach it through them.
fn resolve_group(
    entry: &GroupEntry,
    upstreams: &[&ResolvedUpstream],
    listen: SocketAddr,
    behind_proxies: bool,
) -> anyhow::Result<ResolvedGroup> {
    let Some(first) = upstreams.first() else { bail!("group {:?} names no upstream", entry.path) };
    let with_credentials = upstreams.iter().find(|upstream| upstream.password.is_some());
    let credentials = with_credentials.is_some();
    let mode = match entry.access {
        Some(AccessModeEntry::Token) => AccessMode::Token,
        Some(AccessModeEntry::Anonymous) => AccessMode::Anonymous,
        None if credentials => AccessMode::Token,
        None => AccessMode::Anonymous,
    };
    if mode == AccessMode::Anonymous
        && credentials
        && (behind_proxies || !listen.ip().is_loopback())
        && !entry.allow_anonymous_with_credentials
    {
        let place = if behind_proxies {
            format!("behind trusted_proxies (which forward clients from anywhere to {listen})")
        } else {
            format!("on {listen} (not loopback)")
        };
        bail!(
            "group {:?}: access = \"anonymous\" with upstream {:?}, which has credentials, {place} would let \
             anyone who reaches the proxy pull through that account: its private images and its pull \
             quota. Use access = \"token\" (with anonymous_networks for mirror clients on your network), \
             or set allow_anonymous_with_credentials = true if that is intended.",
            entry.path,
            with_credentials.map_or(first.name.as_str(), |upstream| upstream.name.as_str())
        );
    }
    let anonymous_networks = parse_networks(&entry.anonymous_networks)
        .with_context(|| format!("group {:?}: anonymous_networks", entry.path))?;
    let format = match &entry.format {
        Some(text) => text.parse().with_context(|| format!("group {:?}: format", entry.path))?,
        None => first.format,
    };
    if let Some(upstream) = upstreams.iter().find(|upstream| upstream.format != format) {
        bail!(
            "group {:?} has format {:?} but its upstream {:?} has format {:?}: a group proxies \
             its upstreams' protocol (set the same format on the group and each of its upstreams)",
            entry.path,
            format.as_str(),
            upstream.name,
            upstream.format.as_str()
        );
    }
    let recheck = match (format.is_package(), entry.manifest_recheck, entry.document_recheck) {
        (true, Some(_), _) => bail!(
            "group {:?} proxies {} packages: their documents' freshness is document_recheck, not manifest_recheck",
            entry.path,
            format.as_str()
        ),
        (false, _, Some(_)) => bail!(
            "group {:?} proxies images: a tag's freshness is manifest_recheck (document_recheck is for \
             package groups)",
            entry.path
        ),
        (true, None, recheck) => Some(recheck.unwrap_or(defaults::DOCUMENT_RECHECK)),
        (false, recheck, None) => recheck,
    };
    Ok(ResolvedGroup {
        path: entry.path.clone(),
        upstreams: upstreams.iter().map(|upstream| upstream.name.clone()).collect(),
        format,
        manifest_recheck: recheck,
        access: AccessPolicy { mode, anonymous_networks },
        lifecycle: resolve_lifecycle(entry, format)?,
        policy: resolve_pull_policy(entry, format)?,
        warm: resolve_warm(entry, format)?,
    })
}

/// The group's `warm` entries: the list its format names (`images`, or `packages`), a duration
/// of at least [`cache::MIN_WARM_EVERY`], `keep` at least 1, patterns whose names are exact.
fn resolve_warm(entry: &GroupEntry, format: cache::Format) -> anyhow::Result<Vec<WarmSchedule>> {
    let path = &entry.path;
    let mut schedules = Vec::new();
    for (index, warm) in entry.warm.iter().enumerate() {
        let which = format!("group {path:?}: warm entry {}", index + 1);
        let patterns = match format {
            cache::Format::Oci => {
                if !warm.packages.is_empty() {
                    bail!(
                        "{which}: packages = [...] is for package formats; group {path:?} proxies images \
                         (format oci): name them in images = [\"NAME:TAG\"]"
                    );
                }
                &warm.images
            }
            cache::Format::Npm
            | cache::Format::Pypi
            | cache::Format::Maven
            | cache::Format::Go
            | cache::Format::Cargo => {
                if !warm.images.is_empty() {
                    bail!(
                        "{which}: images = [...] is for image groups; group {path:?} proxies {} packages: \
                         name them in packages = [\"NAME@VERSION\"]",
                        format.as_str()
                    );
                }
                &warm.packages
            }
        };
        let every = match warm.every.as_deref().map(str::trim) {
            None => bail!("{which} needs every = \"6h\" (how often it is warmed, at least 1m)"),
            Some(text) => humantime::parse_duration(text).map_err(|error| {
                anyhow::anyhow!("{which}: every {text:?} is not a duration ({error}): e.g. \"6h\" or \"30m\"")
            })?,
        };
        let keep = warm.keep.unwrap_or(defaults::WARM_KEEP);
        schedules.push(WarmSchedule::new(patterns, every, keep, format).with_context(|| which.clone())?);
    }
    Ok(schedules)
}

/// The group's pull policy: its patterns compiled (a bad one names its list and what is wrong),
/// its durations read.
fn resolve_pull_policy(entry: &GroupEntry, format: cache::Format) -> anyhow::Result<PullPolicy> {
    let separator = format.version_separator();
    let names = NameRules::new(&entry.allow, &entry.deny, separator)
        .with_context(|| format!("group {:?}", entry.path))?;
    let immutable_tags = TagPatterns::new(&entry.immutable_tags, separator)
        .with_context(|| format!("group {:?}", entry.path))?;
    let negative_ttl = match entry.negative_ttl.as_deref().map(str::trim) {
        None => defaults::NEGATIVE_TTL,
        Some(text) if text.starts_with('-') => bail!(
            "group {:?}: negative_ttl {text:?} is negative: give how long an upstream 404 is remembered, \
             e.g. \"1m\", or \"0s\" to remember none",
            entry.path
        ),
        Some(text) => humantime::parse_duration(text).map_err(|error| {
            anyhow::anyhow!(
                "group {:?}: negative_ttl {text:?} is not a duration ({error}): e.g. \"1m\", \"30s\", \
                 or \"0s\" to remember no 404",
                entry.path
            )
        })?,
    };
    let admission = resolve_admission(entry)?.map(std::sync::Arc::new);
    let verify_sumdb = match (entry.verify_sumdb, entry.sumdb.as_deref().map(str::trim)) {
        (_, Some(_)) | (true, _) if format != cache::Format::Go => bail!(
            "group {:?}: verify_sumdb and sumdb are for Go groups (format = \"go\"); this one has format {:?}",
            entry.path,
            format.as_str()
        ),
        (true, None | Some("")) => bail!(
            "group {:?}: verify_sumdb = true needs sumdb = \"<name>\": the checksum database's name as \
             GOSUMDB names it, e.g. sumdb = \"sum.example.com\" (reached through the group's upstreams at \
             /sumdb/<name>/)",
            entry.path
        ),
        (true, Some(name)) => {
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                || name.starts_with('.')
            {
                bail!("group {:?}: sumdb {name:?} is not a checksum database name (a host name)", entry.path);
            }
            Some(name.to_owned())
        }
        (false, _) => None,
    };
    Ok(PullPolicy {
        names,
        negative_ttl,
        immutable_tags,
        stale_on_404: entry.stale_on_404,
        admission,
        verify_sumdb,
    })
}

/// The group's admission hook: its URL checked, its timeout read and bounded, what silence means.
fn resolve_admission(entry: &GroupEntry) -> anyhow::Result<Option<AdmissionPolicy>> {
    let path = &entry.path;
    let Some(hook) = entry.admission_hook.as_deref().map(str::trim) else {
        for (key, set) in [
            ("admission_timeout", entry.admission_timeout.is_some()),
            ("admission_on_timeout", entry.admission_on_timeout.is_some()),
        ] {
            if set {
                bail!(
                    "group {path:?}: {key} is set but admission_hook is not: set the hook's URL too, or remove {key}"
                );
            }
        }
        return Ok(None);
    };
    let example = "e.g. \"http://scanner.internal:8080/verdict\"";
    let url = url::Url::parse(hook).map_err(|error| {
        anyhow::anyhow!("group {path:?}: admission_hook {hook:?} is not a URL ({error}): {example}")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        bail!(
            "group {path:?}: admission_hook {hook:?} is not an http:// or https:// URL with a host: {example}"
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!(
            "group {path:?}: admission_hook {hook:?} has credentials in it, which would be logged: let the \
             hook trust the proxy by network (or put it behind a local adapter)"
        );
    }
    let timeout = match entry.admission_timeout.as_deref().map(str::trim) {
        None => defaults::ADMISSION_TIMEOUT,
        Some(text) => {
            let timeout = humantime::parse_duration(text).map_err(|error| {
                anyhow::anyhow!("group {path:?}: admission_timeout {text:?} is not a duration ({error}): e.g. \"30s\", \"2m\"")
            })?;
            if timeout.is_zero() || timeout > defaults::MAX_ADMISSION_TIMEOUT {
                bail!(
                    "group {path:?}: admission_timeout {text:?} is out of range: give how long the hook may take, \
                     above 0s and at most {} (the clients of a new artifact wait that long)",
                    humantime::format_duration(defaults::MAX_ADMISSION_TIMEOUT)
                );
            }
            timeout
        }
    };
    let on_timeout = match entry.admission_on_timeout.as_deref().map(str::trim) {
        None => OnTimeout::default(),
        Some("deny") => OnTimeout::Deny,
        Some("allow") => OnTimeout::Allow,
        Some(other) => bail!(
            "group {path:?}: admission_on_timeout {other:?} is neither \"deny\" (refuse what the hook did not \
             judge in time; the default) nor \"allow\" (serve it)"
        ),
    };
    Ok(Some(AdmissionPolicy { hook: hook.to_owned(), timeout, on_timeout }))
}

/// The group's TTL, quota and pins (`IMAGE:TAG` patterns, or a package group's `NAME[@VERSION]`).
fn resolve_lifecycle(entry: &GroupEntry, format: cache::Format) -> anyhow::Result<LifecyclePolicy> {
    let ttl = match entry.ttl.as_deref().map(str::trim) {
        None => Some(defaults::GROUP_TTL),
        Some("never") => None,
        Some(text) => {
            let ttl = humantime::parse_duration(text).with_context(|| {
                format!("group {:?}: ttl {text:?} (e.g. \"90d\", or \"never\")", entry.path)
            })?;
            (!ttl.is_zero()).then_some(ttl)
        }
    };
    let pins =
        Pins::for_format(&entry.pin, format).with_context(|| format!("group {:?}: pin", entry.path))?;
    Ok(LifecyclePolicy { ttl, max_size: entry.max_size.map(|size| size.0), pins })
}

/// The store-wide lifecycle settings, after defaults.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub max_size: Option<u64>,
    pub high_watermark: u8,
    pub low_watermark: u8,
    pub sweep_interval: Duration,
    pub access_flush_interval: Duration,
    pub orphan_grace: Duration,
    pub upload_grace: Duration,
    pub delete_delay: Duration,
}

fn resolve_lifecycle_settings(
    cache: &CacheEntry,
    storage: &StorageConfig,
    delete_delay: Option<Duration>,
) -> anyhow::Result<LifecycleConfig> {
    let high = cache.high_watermark.unwrap_or(defaults::HIGH_WATERMARK);
    let low = cache.low_watermark.unwrap_or(defaults::LOW_WATERMARK);
    if high == 0 || high > 100 || low >= high {
        bail!("[cache] needs 0 < low_watermark ({low}) < high_watermark ({high}) <= 100");
    }
    let default_delay = match storage {
        StorageConfig::Filesystem => Duration::ZERO,
        StorageConfig::S3(_) => defaults::S3_DELETE_DELAY,
    };
    Ok(LifecycleConfig {
        max_size: cache.max_size.map(|size| size.0),
        high_watermark: high,
        low_watermark: low,
        sweep_interval: cache.sweep_interval.unwrap_or(defaults::SWEEP_INTERVAL).max(Duration::from_secs(1)),
        access_flush_interval: cache
            .access_flush_interval
            .unwrap_or(defaults::ACCESS_FLUSH_INTERVAL)
            .max(Duration::from_millis(100)),
        orphan_grace: cache.orphan_grace.unwrap_or(defaults::ORPHAN_GRACE),
        upload_grace: cache.upload_grace.unwrap_or(defaults::UPLOAD_GRACE),
        delete_delay: delete_delay.unwrap_or(default_delay),
    })
}

fn resolve_upstream(entry: UpstreamEntry) -> anyhow::Result<ResolvedUpstream> {
    if !valid_upstream_name(&entry.name) {
        bail!("upstream name {:?} must be lowercase letters, digits, '-', '_' or '.'", entry.name);
    }
    if entry.path_prefix && oci::RepositoryName::parse(&entry.name).is_err() {
        bail!("upstream {:?}: path_prefix needs a name that is a valid image path component", entry.name);
    }
    // The URL is not echoed in the error: it may hold a password.
    let format = match &entry.format {
        Some(text) => text.parse().with_context(|| format!("upstream {:?}: format", entry.name))?,
        None => cache::Format::default(),
    };
    let url =
        url::Url::parse(&entry.url).with_context(|| format!("upstream {:?}: invalid url", entry.name))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        bail!("upstream {:?}: url must be http:// or https://", entry.name);
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!(
            "upstream {:?}: the url holds credentials (user:password@); put them in username and \
             password_file (or password_env) instead, where they stay out of logs",
            entry.name
        );
    }
    let password = match (&entry.password, &entry.password_file, &entry.password_env) {
        (Some(password), None, None) => Some(SecretString::from(password.clone())),
        (None, Some(file), None) => Some(SecretString::from(
            std::fs::read_to_string(file)
                .with_context(|| format!("upstream {:?}: cannot read password_file", entry.name))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        )),
        (None, None, Some(variable)) => {
            Some(SecretString::from(std::env::var(variable).with_context(|| {
                format!("upstream {:?}: environment variable {variable} is not set", entry.name)
            })?))
        }
        (None, None, None) => None,
        _ => bail!("upstream {:?}: give only one of password, password_file, password_env", entry.name),
    };
    if password.is_some() != entry.username.is_some() {
        bail!("upstream {:?}: username and password go together", entry.name);
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    if password.is_some() && url.scheme() == "http" && !loopback && !entry.allow_insecure_credentials {
        bail!(
            "upstream {:?}: credentials on a plain http:// upstream that is not on loopback go in clear, \
             and anyone on the path can read them or rewrite the token challenge. Use https://, or set \
             allow_insecure_credentials = true if that network is yours.",
            entry.name
        );
    }
    let ca_pem = match &entry.ca_file {
        Some(path) => Some(
            std::fs::read(path).with_context(|| format!("upstream {:?}: cannot read ca_file", entry.name))?,
        ),
        None => None,
    };
    let mut redirect_allow = entry
        .redirect_allow
        .iter()
        .map(|text| upstream::AllowEntry::parse(text))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("upstream {:?}: redirect_allow", entry.name))?;
    let files_url = match entry.files_url.as_deref() {
        None => None,
        Some(_) if format != cache::Format::Pypi => bail!(
            "upstream {:?}: files_url is for PyPI upstreams (format = \"pypi\"); this one has format {:?}",
            entry.name,
            format.as_str()
        ),
        Some(text) => {
            let files = url::Url::parse(text)
                .with_context(|| format!("upstream {:?}: invalid files_url", entry.name))?;
            if files.scheme() != "http" && files.scheme() != "https" {
                bail!("upstream {:?}: files_url must be http:// or https://", entry.name);
            }
            // The index's download URLs point there: the upstream's client may fetch from it.
            let host = files
                .host()
                .ok_or_else(|| anyhow::anyhow!("upstream {:?}: files_url has no host", entry.name))?;
            redirect_allow.push(upstream::AllowEntry::Host { host: host.to_owned(), port: files.port() });
            Some(files)
        }
    };
    let mut realm_allow = Vec::new();
    for text in &entry.realm_allow {
        match upstream::AllowEntry::parse(text) {
            Ok(host @ upstream::AllowEntry::Host { .. }) => realm_allow.push(host),
            // A single address is a host; a network is not where an operator names a token service.
            Ok(upstream::AllowEntry::Network(network))
                if network.prefix_len() == network.max_prefix_len() =>
            {
                let host = match network.addr() {
                    std::net::IpAddr::V4(address) => url::Host::Ipv4(address),
                    std::net::IpAddr::V6(address) => url::Host::Ipv6(address),
                };
                realm_allow.push(upstream::AllowEntry::Host { host, port: None });
            }
            Ok(upstream::AllowEntry::Network(_)) | Err(_) => {
                bail!("upstream {:?}: realm_allow entry {text:?} is not a host or host:port", entry.name)
            }
        }
    }
    Ok(ResolvedUpstream {
        name: entry.name,
        url,
        format,
        username: entry.username,
        password,
        ca_pem,
        redirect_allow,
        realm_allow,
        path_prefix: entry.path_prefix,
        files_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package_config(group_extra: &str, upstream_extra: &str) -> anyhow::Result<Config> {
        let text = format!(
            "[[upstream]]\nname = \"pypi\"\nformat = \"pypi\"\nurl = \"http://127.0.0.1:3141\"\n{upstream_extra}\n\
             [[group]]\npath = \"python\"\nupstream = \"pypi\"\nformat = \"pypi\"\n{group_extra}\n"
        );
        Config::resolve(toml::from_str(&text).unwrap(), &Overrides::default())
    }

    #[test]
    fn package_groups_take_their_own_keys_and_refuse_the_image_ones() {
        let config = package_config("", "files_url = \"http://127.0.0.1:3142\"").unwrap();
        assert_eq!(config.groups[0].manifest_recheck, Some(defaults::DOCUMENT_RECHECK));
        let files = config.upstreams[0].files_url.clone().unwrap();
        assert_eq!(files.as_str(), "http://127.0.0.1:3142/");
        assert!(
            config.upstreams[0]
                .redirect_allow
                .iter()
                .any(|allowed| matches!(allowed, upstream::AllowEntry::Host { port: Some(3142), .. })),
            "files_url may be fetched through the upstream's client"
        );
        let recheck = package_config("document_recheck = \"30s\"", "").unwrap();
        assert_eq!(recheck.groups[0].manifest_recheck, Some(Duration::from_secs(30)));
        let error =
            |group: &str, upstream: &str| format!("{:#}", package_config(group, upstream).unwrap_err());
        assert!(error("manifest_recheck = \"1m\"", "").contains("document_recheck"));
        assert!(package_config("admission_hook = \"http://127.0.0.1:9/\"", "").is_ok());
        assert!(error("", "files_url = \"ftp://x\"").contains("files_url must be http"));
        let npm = "[[upstream]]\nname = \"n\"\nformat = \"npm\"\nurl = \"http://127.0.0.1:4873\"\nfiles_url = \"http://x\"\n\
                   [[group]]\npath = \"js\"\nupstream = \"n\"\nformat = \"npm\"\n";
        let npm = Config::resolve(toml::from_str(npm).unwrap(), &Overrides::default()).unwrap_err();
        assert!(format!("{npm:#}").contains("files_url is for PyPI upstreams"), "{npm:#}");
        let mixed = "[[upstream]]\nname = \"n\"\nformat = \"npm\"\nurl = \"http://127.0.0.1:4873\"\n\
                     [[group]]\npath = \"js\"\nupstream = \"n\"\nformat = \"pypi\"\n";
        let mixed = Config::resolve(toml::from_str(mixed).unwrap(), &Overrides::default()).unwrap_err();
        assert!(format!("{mixed:#}").contains("has format \"pypi\" but its upstream"), "{mixed:#}");
    }

    #[test]
    fn zero_config_is_docker_hub_on_port_5000() {
        let config = Config::resolve(FileConfig::default(), &Overrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(config.database_url.expose(), "sqlite:./depproxy-data/depproxy.db");
        assert_eq!(config.upstreams.len(), 1);
        assert_eq!(config.upstreams[0].url.as_str(), "https://registry-1.docker.io/");
        assert_eq!(config.groups[0].path, "default");
    }

    #[test]
    fn the_admin_listener_is_an_address_or_off() {
        let zero = Config::resolve(FileConfig::default(), &Overrides::default()).unwrap();
        assert_eq!(zero.admin_listen, AdminListen::At("127.0.0.1:5080".parse().unwrap()));
        let resolve = |text: &str| Config::resolve(toml::from_str(text)?, &Overrides::default());
        assert_eq!(resolve("admin_listen = \"off\"").unwrap().admin_listen, AdminListen::Off);
        assert_eq!(
            resolve("admin_listen = \"0.0.0.0:6000\"").unwrap().admin_listen,
            AdminListen::At("0.0.0.0:6000".parse().unwrap())
        );
        let error = resolve("admin_listen = \"5080\"").unwrap_err().to_string();
        assert!(error.contains("nor `off`"), "{error}");
    }

    #[test]
    fn a_group_takes_its_upstreams_format_and_may_not_differ_from_it() {
        let text = "[[upstream]]\nname = \"lab\"\nurl = \"http://127.0.0.1:5001\"\n\n\
                    [[group]]\npath = \"acme\"\nupstream = \"lab\"\n";
        let config = Config::resolve(toml::from_str(text).unwrap(), &Overrides::default()).unwrap();
        assert_eq!(config.groups[0].format, cache::Format::Oci);
        assert_eq!(config.upstreams[0].format, cache::Format::Oci);
        let unknown = format!("{text}format = \"maven2\"\n");
        let error = Config::resolve(toml::from_str(&unknown).unwrap(), &Overrides::default()).unwrap_err();
        assert!(format!("{error:#}").contains("known formats: oci"), "{error:#}");
    }

    #[test]
    fn pins_are_checked_for_their_groups_format() {
        let group = |format: &str, pins: &str| {
            format!(
                "[[upstream]]\nname = \"up\"\nformat = \"{format}\"\nurl = \"http://127.0.0.1:5001\"\n\n\
                 [[group]]\npath = \"g\"\nupstream = \"up\"\npin = [{pins}]\n"
            )
        };
        let resolve = |text: &str| Config::resolve(toml::from_str(text)?, &Overrides::default());
        let npm = resolve(&group("npm", "\"lodash\", \"@internal/*\", \"react@18.*\"")).unwrap();
        assert!(npm.groups[0].lifecycle.pins.keeps_version("react", "18.3.1"));
        let pypi = resolve(&group("pypi", "\"Requests@2.32.*\"")).unwrap();
        assert!(pypi.groups[0].lifecycle.pins.keeps_version("requests", "2.32.3"));
        for (format, pins, why) in [
            ("npm", "\"library/alpine:3.*\"", "pins packages, not image tags"),
            ("npm", "\"Lodash\"", "lowercase"),
            ("pypi", "\"-bad\"", "start and end"),
            ("oci", "\"lodash\"", "IMAGE:TAG"),
        ] {
            let error = format!("{:#}", resolve(&group(format, pins)).unwrap_err());
            assert!(error.contains("group \"g\": pin") && error.contains(why), "{format} {pins}: {error}");
        }
    }

    #[test]
    fn upstream_flag_replaces_the_default_upstream() {
        let overrides = Overrides { upstream: Some("http://127.0.0.1:5001".into()), ..Overrides::default() };
        let config = Config::resolve(FileConfig::default(), &overrides).unwrap();
        assert_eq!(config.upstreams.len(), 1);
        assert_eq!(config.upstreams[0].url.as_str(), "http://127.0.0.1:5001/");
    }

    #[test]
    fn the_upstream_of_the_upstream_flag_is_named_after_its_host() {
        let flag = |url: &str| Overrides { upstream: Some(url.into()), ..Overrides::default() };
        let config = Config::resolve(FileConfig::default(), &flag("http://127.0.0.1:5001")).unwrap();
        assert_eq!(config.upstreams[0].name, "127.0.0.1", "not dockerhub: it is not Docker Hub");
        assert_eq!(config.groups[0].upstreams, ["127.0.0.1"]);
        let config = Config::resolve(FileConfig::default(), &flag("https://Registry.Example.com")).unwrap();
        assert_eq!(config.upstreams[0].name, "registry.example.com");
        let config = Config::resolve(FileConfig::default(), &flag("http://[::1]:5001")).unwrap();
        assert_eq!(config.upstreams[0].name, defaults::FLAG_UPSTREAM_NAME);
        // A file's default group keeps the name the file gave its upstream.
        let file: FileConfig = toml::from_str(
            "[[upstream]]\nname = \"hub\"\nurl = \"https://registry-1.docker.io\"\n[[group]]\npath = \"default\"\nupstream = \"hub\"",
        )
        .unwrap();
        let config = Config::resolve(file, &flag("http://127.0.0.1:5001")).unwrap();
        assert_eq!(
            (config.upstreams[0].name.as_str(), config.upstreams[0].url.as_str()),
            ("hub", "http://127.0.0.1:5001/")
        );
    }

    #[test]
    fn an_upstream_flag_without_a_scheme_says_which_scheme_it_needs() {
        for value in ["registry.example.com", "127.0.0.1:5001", "localhost:5001"] {
            let overrides = Overrides { upstream: Some(value.into()), ..Overrides::default() };
            let error = format!("{:#}", Config::resolve(FileConfig::default(), &overrides).unwrap_err());
            assert!(error.contains("http:// or https://"), "{value}: {error}");
            assert!(error.contains(&format!("https://{value}")), "{value}: {error}");
            assert!(!error.contains("relative URL"), "{value}: {error}");
        }
        let overrides =
            Overrides { upstream: Some("me:s3cret@registry.example.com".into()), ..Overrides::default() };
        let error = format!("{:#}", Config::resolve(FileConfig::default(), &overrides).unwrap_err());
        assert!(error.contains("http:// or https://") && !error.contains("s3cret"), "{error}");
    }

    #[test]
    fn issue_example_parses_and_unknown_keys_fail() {
        let text = r#"
            listen = "127.0.0.1:5000"
            data_dir = "./depproxy-data"
            [[upstream]]
            name = "dockerhub"
            url = "https://registry-1.docker.io"
            [[upstream]]
            name = "lab"
            url = "http://127.0.0.1:5001"
            [[group]]
            path = "default"
            upstream = "dockerhub"
            [[group]]
            path = "acme/platform"
            upstream = "lab"
            manifest_recheck = "10m"
            [limits]
            max_blob_size = "1GiB"
        "#;
        let file: FileConfig = toml::from_str(text).unwrap();
        let config = Config::resolve(file, &Overrides::default()).unwrap();
        assert_eq!(config.groups[1].manifest_recheck, Some(Duration::from_secs(600)));
        assert_eq!(config.limits.max_blob_size, 1 << 30);
        let error = toml::from_str::<FileConfig>("lisen = \"x\"").unwrap_err().to_string();
        assert!(error.contains("unknown field `lisen`"), "{error}");
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        let file: FileConfig = toml::from_str("[[group]]\npath = \"default\"\nupstream = \"nope\"").unwrap();
        let error = Config::resolve(file, &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("unknown upstream"), "{error}");
    }

    #[test]
    fn a_group_may_ask_several_upstreams_in_order_and_check_config_explains_mistakes() {
        let upstreams = (1..=9)
            .map(|i| format!("[[upstream]]\nname = \"u{i}\"\nurl = \"http://127.0.0.1:50{i:02}\"\n"))
            .collect::<String>();
        let resolve = |group: &str| {
            let text = format!("{upstreams}[[group]]\npath = \"default\"\n{group}\n");
            Config::resolve(toml::from_str(&text).unwrap(), &Overrides::default())
                .map_err(|error| format!("{error:#}"))
        };
        let config = resolve("upstreams = [\"u2\", \"u1\"]").unwrap();
        assert_eq!(config.groups[0].upstreams, ["u2", "u1"], "in the order given");
        assert_eq!(resolve("upstream = \"u3\"").unwrap().groups[0].upstreams, ["u3"], "the single form");
        let eight = (1..=8).map(|i| format!("\"u{i}\"")).collect::<Vec<_>>().join(", ");
        assert_eq!(resolve(&format!("upstreams = [{eight}]")).unwrap().groups[0].upstreams.len(), 8);
        for (group, says) in [
            ("upstream = \"u1\"\nupstreams = [\"u2\"]", "both upstream and upstreams"),
            ("manifest_recheck = \"1m\"", "needs an upstream"),
            ("upstreams = []", "names no upstream"),
            (
                "upstreams = [\"u1\", \"u2\", \"u3\", \"u4\", \"u5\", \"u6\", \"u7\", \"u8\", \"u9\"]",
                "at most 8",
            ),
            ("upstreams = [\"u1\", \"u2\", \"u1\"]", "\"u1\" twice"),
            (
                "upstreams = [\"u1\", \"nope\"]",
                "unknown upstream \"nope\" (the [[upstream]] tables name: u1, u2",
            ),
        ] {
            let error = resolve(group).unwrap_err();
            assert!(error.contains(says), "{group}: {error}");
        }
        // `--upstream` replaces one upstream's URL: with several it cannot tell which.
        let text = format!("{upstreams}[[group]]\npath = \"default\"\nupstreams = [\"u1\", \"u2\"]\n");
        let flag = Overrides { upstream: Some("http://127.0.0.1:6000".into()), ..Overrides::default() };
        let error = format!("{:#}", Config::resolve(toml::from_str(&text).unwrap(), &flag).unwrap_err());
        assert!(error.contains("asks several (u1, u2)"), "{error}");
    }

    #[test]
    fn an_upstream_only_used_with_others_gets_its_own_mirror_group() {
        let text = "[[upstream]]\nname = \"internal\"\nurl = \"http://127.0.0.1:5001\"\nusername = \"u\"\npassword = \"p\"\n\
                    [[upstream]]\nname = \"hub\"\nurl = \"http://127.0.0.1:5002\"\n\
                    [[group]]\npath = \"default\"\nupstreams = [\"internal\", \"hub\"]\n";
        let config = Config::resolve(toml::from_str(text).unwrap(), &Overrides::default()).unwrap();
        assert_eq!(config.groups[0].access.mode, AccessMode::Token, "one of its upstreams has credentials");
        // `?ns=` and the path prefix reach `internal` through its implicit group, which guards its
        // credentials with tokens too.
        assert_eq!(config.token_groups(), ["default", "upstream/internal"]);
    }

    #[test]
    fn no_secret_shows_in_debug_or_errors() {
        let dir = tempfile::tempdir().unwrap();
        let password_file = dir.path().join("hub");
        std::fs::write(&password_file, "hub-s3cret\n").unwrap();
        let text = format!(
            r#"
            database_url = "postgres://depproxy:db-s3cret@db.internal/depproxy"
            [[upstream]]
            name = "hub"
            url = "https://registry-1.docker.io"
            username = "me"
            password_file = "{}"
            [[group]]
            path = "default"
            upstream = "hub"
            [storage]
            kind = "s3"
            bucket = "b"
            access_key_id = "AKIA"
            secret_access_key = "s3-s3cret"
            "#,
            password_file.display()
        );
        let config = Config::resolve(toml::from_str(&text).unwrap(), &Overrides::default()).unwrap();
        let shown = format!("{config:?} {}", config.database_url);
        for secret in ["hub-s3cret", "db-s3cret", "s3-s3cret"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("db.internal"));

        let with_userinfo = r#"
            [[upstream]]
            name = "hub"
            url = "https://me:url-s3cret@registry.example"
            [[group]]
            path = "default"
            upstream = "hub"
        "#;
        let error =
            Config::resolve(toml::from_str(with_userinfo).unwrap(), &Overrides::default()).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("password_file"), "{message}");
        assert!(!message.contains("url-s3cret"), "{message}");
    }

    fn with_upstream(upstream: &str) -> anyhow::Result<Config> {
        let text = format!(
            "[[upstream]]\nname = \"lab\"\n{upstream}\n[[group]]\npath = \"default\"\nupstream = \"lab\"\n"
        );
        Config::resolve(toml::from_str(&text).unwrap(), &Overrides::default())
    }

    #[test]
    fn credentials_on_plain_http_need_loopback_or_an_explicit_yes() {
        let credentials = "username = \"ci\"\npassword = \"s3cret\"";
        let error =
            with_upstream(&format!("url = \"http://registry.internal:5000\"\n{credentials}")).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("allow_insecure_credentials") && message.contains("https://"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        for loopback in [
            "http://127.0.0.1:5000",
            "http://localhost:5000",
            "http://[::1]:5000",
            "https://registry.example",
        ] {
            with_upstream(&format!("url = \"{loopback}\"\n{credentials}")).unwrap();
        }
        with_upstream(&format!(
            "url = \"http://registry.internal:5000\"\n{credentials}\nallow_insecure_credentials = true"
        ))
        .unwrap();
        with_upstream("url = \"http://registry.internal:5000\"").unwrap();
    }

    #[test]
    fn realm_allow_names_hosts_and_egress_names_one_proxy() {
        let config = with_upstream(
            "url = \"https://registry.example.com\"\nrealm_allow = [\"auth.example.com\", \"auth2.example.com:8443\", \"10.0.0.5\"]",
        )
        .unwrap();
        assert_eq!(config.upstreams[0].realm_allow.len(), 3);
        assert!(config.egress_proxy.is_none());
        let error = with_upstream("url = \"https://registry.example.com\"\nrealm_allow = [\"10.0.0.0/8\"]")
            .unwrap_err();
        assert!(format!("{error:#}").contains("realm_allow"), "{error:#}");

        let text = "[egress]\nproxy = \"http://proxy.internal:3128\"\nno_proxy = [\"minio.internal\", \"10.0.0.0/8\"]\n[storage]\nkind = \"s3\"\nbucket = \"b\"\n";
        let config = Config::resolve(toml::from_str(text).unwrap(), &Overrides::default()).unwrap();
        let proxy = config.egress_proxy.clone().unwrap();
        assert_eq!(proxy.url.as_str(), "http://proxy.internal:3128/");
        match &config.storage {
            StorageConfig::S3(settings) => assert_eq!(
                settings.proxy,
                Some(Box::new(storage::S3Proxy {
                    url: "http://proxy.internal:3128/".into(),
                    no_proxy: "minio.internal,10.0.0.0/8".into()
                }))
            ),
            StorageConfig::Filesystem => panic!("s3 expected"),
        }
        for bad in [
            "[egress]\nproxy = \"http://user:pw@proxy.internal:3128\"\n",
            "[egress]\nproxy = \"socks5://proxy.internal:1080\"\n",
            "[egress]\nno_proxy = [\"minio.internal\"]\n",
        ] {
            let error = Config::resolve(toml::from_str(bad).unwrap(), &Overrides::default()).unwrap_err();
            let message = format!("{error:#}");
            assert!(message.contains("[egress]") && !message.contains("pw@"), "{bad}: {message}");
        }
    }

    #[test]
    fn operator_sizes_are_keys_with_defaults() {
        let config = Config::resolve(FileConfig::default(), &Overrides::default()).unwrap();
        assert_eq!(config.small_objects.max_object_size, defaults::SMALL_OBJECT_MAX_SIZE);
        assert_eq!(config.catalog.capacity, defaults::CATALOG_ENTRIES);
        assert_eq!(config.shutdown_grace, defaults::SHUTDOWN_GRACE);
        let text = r#"
            [cache]
            small_object_max_size = "64KiB"
            small_object_memory = "8MiB"
            catalog_entries = 500
            catalog_ttl = "1m"
            [storage]
            kind = "s3"
            bucket = "b"
            presigned_url_ttl = "2m"
            [timeouts]
            control_connect = "2s"
            control_request = "30s"
            shutdown_grace = "10s"
        "#;
        let config = Config::resolve(toml::from_str(text).unwrap(), &Overrides::default()).unwrap();
        assert_eq!(
            config.small_objects,
            SmallObjectSettings { max_object_size: 64 << 10, capacity: 8 << 20 }
        );
        assert_eq!(config.catalog, CatalogSettings { capacity: 500, ttl: Duration::from_secs(60) });
        assert_eq!(config.control_connect_timeout, Duration::from_secs(2));
        assert_eq!(config.control_request_timeout, Duration::from_secs(30));
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        match &config.storage {
            StorageConfig::S3(settings) => assert_eq!(settings.presigned_url_ttl, Duration::from_secs(120)),
            StorageConfig::Filesystem => panic!("s3 expected"),
        }
    }

    fn with_credentials(listen: &str, group_extra: &str) -> anyhow::Result<Config> {
        with_credentials_and_top(listen, "", group_extra)
    }

    fn with_credentials_and_top(listen: &str, top: &str, group_extra: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret").unwrap();
        let text = format!(
            "listen = \"{listen}\"\n{top}\n[[upstream]]\nname = \"private\"\nurl = \"https://registry.example\"\nusername = \"ci\"\npassword_file = \"{}\"\n[[upstream]]\nname = \"public\"\nurl = \"https://public.example\"\n[[group]]\npath = \"private\"\nupstream = \"private\"\n{group_extra}\n[[group]]\npath = \"default\"\nupstream = \"public\"\n",
            password.display()
        );
        Config::resolve(toml::from_str(&text).unwrap(), &Overrides::default())
    }

    #[test]
    fn access_defaults_follow_the_upstreams_credentials() {
        let config = with_credentials("0.0.0.0:5000", "").unwrap();
        let access =
            |path: &str| config.groups.iter().find(|group| group.path == path).unwrap().access.clone();
        assert_eq!(access("private"), AccessPolicy::token());
        assert_eq!(access("default"), AccessPolicy::anonymous());
        assert!(config.uses_tokens());
        assert_eq!(config.token_groups(), ["private"]);
        let zero = Config::resolve(FileConfig::default(), &Overrides::default()).unwrap();
        assert!(!zero.uses_tokens(), "zero-config serve stays anonymous");
        assert_eq!(zero.groups[0].access, AccessPolicy::anonymous());
    }

    #[test]
    fn the_implicit_group_of_an_upstream_with_credentials_needs_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret").unwrap();
        let text = format!(
            "[[upstream]]\nname = \"private\"\nurl = \"https://registry.example\"\nusername = \"ci\"\npassword_file = \"{}\"\n[[upstream]]\nname = \"public\"\nurl = \"https://public.example\"\n[[group]]\npath = \"default\"\nupstream = \"public\"\n",
            password.display()
        );
        let config = Config::resolve(toml::from_str(&text).unwrap(), &Overrides::default()).unwrap();
        assert_eq!(config.token_groups(), ["upstream/private"]);
        assert!(config.uses_tokens());
    }

    #[test]
    fn anonymous_pulls_through_credentials_need_loopback_or_an_explicit_yes() {
        let error = with_credentials("0.0.0.0:5000", "access = \"anonymous\"").unwrap_err().to_string();
        assert!(
            error.contains("would let anyone who reaches the proxy pull through that account"),
            "{error}"
        );
        assert!(error.contains("allow_anonymous_with_credentials"), "{error}");
        assert!(with_credentials("127.0.0.1:5000", "access = \"anonymous\"").is_ok(), "loopback is fine");
        let behind_proxies = with_credentials_and_top(
            "127.0.0.1:5000",
            "trusted_proxies = [\"10.0.0.0/8\"]",
            "access = \"anonymous\"",
        )
        .unwrap_err()
        .to_string();
        assert!(
            behind_proxies.contains("behind trusted_proxies"),
            "loopback behind a proxy is not local: {behind_proxies}"
        );
        let allowed = with_credentials(
            "0.0.0.0:5000",
            "access = \"anonymous\"\nallow_anonymous_with_credentials = true",
        );
        assert!(allowed.is_ok());
        let networks =
            with_credentials("0.0.0.0:5000", "anonymous_networks = [\"10.0.0.0/8\", \"192.0.2.7\"]").unwrap();
        let private = networks.groups.iter().find(|group| group.path == "private").unwrap();
        assert_eq!(private.access.mode, AccessMode::Token);
        assert!(private.access.allows_anonymous("10.2.3.4".parse().unwrap()));
        assert!(private.access.allows_anonymous("192.0.2.7".parse().unwrap()));
        assert!(!private.access.allows_anonymous("192.0.2.8".parse().unwrap()));
        let bad = with_credentials("0.0.0.0:5000", "anonymous_networks = [\"10.0.0.0/33\"]").unwrap_err();
        assert!(format!("{bad:#}").contains("10.0.0.0/33"), "{bad:#}");
    }

    #[test]
    fn public_url_trusted_proxies_and_auth_keys() {
        let text = r#"
            public_url = "https://proxy.example.com/"
            trusted_proxies = ["10.0.0.0/8", "192.0.2.1"]
            [auth]
            token_ttl = "10m"
            token_check_interval = "2s"
            failed_logins_per_minute = 20
            signing_key_file = "/etc/depproxy/token.key"
        "#;
        let config = Config::resolve(toml::from_str(text).unwrap(), &Overrides::default()).unwrap();
        assert_eq!(config.public_url.as_deref(), Some("https://proxy.example.com"));
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.auth.token_ttl, Duration::from_secs(600));
        assert_eq!(config.auth.token_check_interval, Duration::from_secs(2));
        assert_eq!(config.auth.failed_logins_per_minute, 20);
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
        let defaults = Config::resolve(FileConfig::default(), &Overrides::default()).unwrap();
        assert!(defaults.warnings().is_empty());
        let no_public_url = Config::resolve(
            toml::from_str("trusted_proxies = [\"10.0.0.0/8\"]").unwrap(),
            &Overrides::default(),
        )
        .unwrap();
        assert!(
            no_public_url
                .warnings()
                .iter()
                .any(|warning| warning.contains("trusted_proxies is set without public_url")),
            "{:?}",
            no_public_url.warnings()
        );
        assert_eq!(defaults.auth.token_ttl, Duration::from_secs(300));
        assert_eq!(defaults.auth.failed_logins_per_minute, 10);
        for bad in
            ["public_url = \"ftp://x\"", "public_url = \"https://u:p@x\"", "trusted_proxies = [\"nope\"]"]
        {
            assert!(Config::resolve(toml::from_str(bad).unwrap(), &Overrides::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_keys_have_defaults_and_allowed_hosts_are_checked() {
        use crate::server::Host;
        let defaults = Config::resolve(FileConfig::default(), &Overrides::default()).unwrap().server;
        assert_eq!(defaults.max_connections_per_client, 1000, "a tenth of max_connections");
        assert_eq!(defaults.body_read_timeout, Duration::from_secs(30));
        assert_eq!(defaults.request_timeout, Duration::from_secs(60));
        assert_eq!(defaults.max_concurrent_streams, 64);
        assert!(!defaults.http2, "h2c is off by default");
        assert!(!defaults.allowed_hosts.allows(&Host::parse("registry.example.com").unwrap()));
        let text = r#"
            public_url = "https://proxy.example.com:8443"
            trusted_proxies = ["10.0.0.0/8"]
            [server]
            max_connections = 50
            body_read_timeout = "5s"
            request_timeout = "10s"
            max_concurrent_streams = 16
            http2 = true
            allowed_hosts = ["registry.internal", "mirror.internal:5000"]
        "#;
        let server = Config::resolve(toml::from_str(text).unwrap(), &Overrides::default()).unwrap().server;
        assert_eq!(server.max_connections_per_client, 5);
        assert_eq!(
            (server.body_read_timeout, server.request_timeout),
            (Duration::from_secs(5), Duration::from_secs(10))
        );
        assert_eq!(server.max_concurrent_streams, 16);
        assert!(server.http2);
        assert_eq!(server.trusted_proxies.len(), 1);
        for allowed in ["registry.internal:5000", "mirror.internal:5000", "proxy.example.com"] {
            assert!(server.allowed_hosts.allows(&Host::parse(allowed).unwrap()), "{allowed}");
        }
        assert!(!server.allowed_hosts.allows(&Host::parse("mirror.internal:80").unwrap()));
        let bad = toml::from_str("[server]\nallowed_hosts = [\"user@host\"]").unwrap();
        let error = format!("{:#}", Config::resolve(bad, &Overrides::default()).unwrap_err());
        assert!(error.contains("allowed_hosts") && error.contains("user@host"), "{error}");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_byte_size("10 GB"), Ok(10_000_000_000));
        assert_eq!(parse_byte_size("512"), Ok(512));
        assert!(parse_byte_size("12 parsecs").is_err());
    }

    #[test]
    fn pull_policy_keys_have_defaults_and_mistakes_are_explained() {
        let group = |keys: &str| {
            format!(
                "[[upstream]]\nname = \"lab\"\nurl = \"http://127.0.0.1:5001\"\n\n\
                 [[group]]\npath = \"default\"\nupstream = \"lab\"\n{keys}\n"
            )
        };
        let resolve = |keys: &str| Config::resolve(toml::from_str(&group(keys))?, &Overrides::default());
        let defaults = resolve("").unwrap();
        let policy = &defaults.groups[0].policy;
        assert!(policy.names.is_empty() && policy.immutable_tags.is_empty() && !policy.stale_on_404);
        assert_eq!(policy.negative_ttl, defaults::NEGATIVE_TTL);

        let config = resolve(
            "allow = [\"library/*\"]\ndeny = [\"library/old:*\"]\nnegative_ttl = \"0s\"\n\
             immutable_tags = [\"v*.*.*\"]\nstale_on_404 = true",
        )
        .unwrap();
        let policy = &config.groups[0].policy;
        assert_eq!(policy.negative_ttl, Duration::ZERO);
        assert!(policy.stale_on_404 && policy.immutable_tags.matches("library/app", "v1.2.3"));
        assert!(policy.names.check("library/old", Some("1")).is_err());
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());

        let error = |keys: &str| format!("{:#}", resolve(keys).unwrap_err());
        let bad_glob = error("deny = [\"library/[abc\"]");
        assert!(
            bad_glob.contains("group \"default\"") && bad_glob.contains("deny pattern \"library/[abc\""),
            "{bad_glob}"
        );
        let negative = error("negative_ttl = \"-5m\"");
        assert!(negative.contains("negative_ttl \"-5m\" is negative"), "{negative}");
        let garbage = error("negative_ttl = \"soon\"");
        assert!(garbage.contains("negative_ttl \"soon\" is not a duration"), "{garbage}");
        let immutable = error("immutable_tags = [\"\"]");
        assert!(immutable.contains("immutable_tags pattern \"\": empty"), "{immutable}");
        assert!(error("alow = [\"x\"]").contains("unknown field `alow`"));

        let shadowed =
            resolve("allow = [\"bitnami/redis\", \"library/*\", \"library/*\"]\ndeny = [\"bitnami/*\"]")
                .unwrap();
        let warnings = shadowed.warnings();
        assert!(
            warnings.iter().any(|warning| warning
                == "group \"default\": allow pattern \"bitnami/redis\" allows nothing: deny pattern \"bitnami/*\" \
                    refuses everything it matches (deny wins)"),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|warning| warning.contains("\"library/*\" is listed twice")),
            "{warnings:?}"
        );
    }

    #[test]
    fn admission_hook_keys_have_defaults_and_check_config_explains_mistakes() {
        let group = |keys: &str| {
            format!(
                "[[upstream]]\nname = \"lab\"\nurl = \"http://127.0.0.1:5001\"\n\n\
                 [[group]]\npath = \"default\"\nupstream = \"lab\"\n{keys}\n"
            )
        };
        let resolve = |keys: &str| Config::resolve(toml::from_str(&group(keys))?, &Overrides::default());
        assert!(resolve("").unwrap().groups[0].policy.admission.is_none(), "no hook: no hold");
        let config = resolve("admission_hook = \"http://scanner.internal:8080/verdict\"").unwrap();
        let admission = config.groups[0].policy.admission.clone().unwrap();
        assert_eq!(admission.hook, "http://scanner.internal:8080/verdict");
        assert_eq!((admission.timeout, admission.on_timeout), (defaults::ADMISSION_TIMEOUT, OnTimeout::Deny));
        let config = resolve(
            "admission_hook = \"https://scanner.example.com/verdict\"\nadmission_timeout = \"2m\"\n\
             admission_on_timeout = \"allow\"",
        )
        .unwrap();
        let admission = config.groups[0].policy.admission.clone().unwrap();
        assert_eq!((admission.timeout, admission.on_timeout), (Duration::from_secs(120), OnTimeout::Allow));

        let error = |keys: &str| format!("{:#}", resolve(keys).unwrap_err());
        let hook = "admission_hook = \"http://scanner.internal/verdict\"\n";
        for (keys, says) in [
            (
                "admission_hook = \"scanner.internal/verdict\"",
                "admission_hook \"scanner.internal/verdict\" is not a URL",
            ),
            ("admission_hook = \"ftp://scanner.internal/verdict\"", "is not an http:// or https:// URL"),
            ("admission_hook = \"http://ops:s3cret@scanner.internal/\"", "has credentials in it"),
            (&format!("{hook}admission_timeout = \"soon\""), "admission_timeout \"soon\" is not a duration"),
            (&format!("{hook}admission_timeout = \"0s\""), "admission_timeout \"0s\" is out of range"),
            (&format!("{hook}admission_timeout = \"2h\""), "at most 30m"),
            (&format!("{hook}admission_on_timeout = \"maybe\""), "admission_on_timeout \"maybe\" is neither"),
            ("admission_timeout = \"10s\"", "admission_timeout is set but admission_hook is not"),
            ("admission_on_timeout = \"allow\"", "admission_on_timeout is set but admission_hook is not"),
        ] {
            let error = error(keys);
            assert!(error.contains("group \"default\"") && error.contains(says), "{keys}: {error}");
        }
    }
}
