//! The command line of the `depproxy` binary: its subcommands and flags (clap), and how each
//! role's flags resolve to a [`Config`]. Each subcommand has only the flags it uses; the flag
//! tables of README.md and docs/ are rendered from these definitions (tests/it/cli_docs.rs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, FileConfig, Overrides};
use crate::defaults;

#[derive(Parser)]
#[command(name = "depproxy", version, about = "A pull-through cache for container registries")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: `text` for people, `json` (one object per line) for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DEPPROXY_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run gateway and control plane in one process (SQLite + local disk by default).
    Serve(ServeArgs),
    /// Run the control plane alone (split mode).
    Control {
        #[command(flatten)]
        common: ControlArgs,
        /// File holding the 32-byte secret shared with the gateways (base64 or hex;
        /// `depproxy gen-secret FILE` writes one).
        #[arg(long, env = "DEPPROXY_SECRET_FILE", value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// Run a gateway alone (split mode), deciding through the control plane at --control-url.
    Gateway {
        #[command(flatten)]
        common: GatewayArgs,
        /// Base URL of the control plane, e.g. http://127.0.0.1:5100 (https://… when it serves TLS).
        #[arg(long, env = "DEPPROXY_CONTROL_URL", value_name = "URL")]
        control_url: String,
        /// Trust only this CA (PEM) for the control plane's certificate; needs an https:// --control-url.
        #[arg(long, env = "DEPPROXY_CONTROL_CA", value_name = "PEM")]
        control_ca: Option<PathBuf>,
        /// File holding the 32-byte secret shared with the control plane (base64 or hex).
        #[arg(long, env = "DEPPROXY_SECRET_FILE", value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// Validate a configuration file without starting anything.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Write a new random 32-byte secret (the internal secret of split mode, or the
    /// registry-token signing key of `[auth] signing_key_file`).
    GenSecret {
        /// Where to write it (a new file, mode 0600; an existing one is never overwritten).
        file: PathBuf,
    },
    /// Manage access tokens (with the server running or not).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The cache's contents: purge, statistics, warming (with the server running or not).
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// A running proxy through its admin API: groups, upstreams, live fills, errors, purges.
    Admin {
        #[command(flatten)]
        target: AdminTarget,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// TLS on the main listener (`serve`, `gateway`: the registry API; `control`: the gateways'
/// channel).
#[derive(Args, Clone, Default)]
pub struct ListenerTls {
    /// Serve --listen over TLS (HTTP/2 and HTTP/1.1 by ALPN) with this certificate chain (PEM,
    /// leaf first); re-read with --tls-key on SIGHUP. For `control`, gateways then use an
    /// https:// --control-url (and --control-ca for a private CA).
    #[arg(long, env = "DEPPROXY_TLS_CERT", requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "DEPPROXY_TLS_KEY", requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

/// TLS on the admin API (`serve`, `control`).
#[derive(Args, Clone, Default)]
pub struct AdminTls {
    /// Serve the admin API over TLS with this certificate chain (PEM, leaf first); re-read with
    /// --admin-tls-key on SIGHUP. The status page's session cookie is then `Secure`.
    #[arg(long, env = "DEPPROXY_ADMIN_TLS_CERT", requires = "admin_tls_key", value_name = "PEM")]
    pub admin_tls_cert: Option<PathBuf>,
    /// The private key of --admin-tls-cert (PEM).
    #[arg(long, env = "DEPPROXY_ADMIN_TLS_KEY", requires = "admin_tls_cert", value_name = "PEM")]
    pub admin_tls_key: Option<PathBuf>,
}

/// `serve`: both roles, so every flag of both.
#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address of the registry API (the public listener); overrides `listen` [default:
    /// `127.0.0.1:5000`].
    #[arg(long, env = "DEPPROXY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the SQLite database, the cached objects and the registry-token signing key;
    /// overrides `data_dir` [default: `./depproxy-data`].
    #[arg(long, env = "DEPPROXY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Upstream registry URL (`http://` or `https://`): replaces the URL of the upstream the
    /// `default` group uses; with no upstream configured, that upstream is named after the URL's
    /// host [default: `https://registry-1.docker.io`, named `dockerhub`].
    #[arg(long, env = "DEPPROXY_UPSTREAM", value_name = "URL")]
    pub upstream: Option<String>,
    /// TOML configuration file; the flags above override its keys.
    #[arg(long, env = "DEPPROXY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the admin API and status page, or `off`; overrides `admin_listen` [default:
    /// `127.0.0.1:5080`; a taken address stops the start].
    #[arg(long, env = "DEPPROXY_ADMIN_LISTEN", value_name = "ADDR|off")]
    pub admin_listen: Option<config::AdminListen>,
    /// Serve Prometheus metrics at this address, and no longer at /metrics of the public
    /// listener (metrics name upstream hosts and groups: keep them off a listener every client
    /// reaches).
    #[arg(long, env = "DEPPROXY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub tls: ListenerTls,
    #[command(flatten)]
    pub admin_tls: AdminTls,
}

impl ServeArgs {
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            upstream: self.upstream.clone(),
        };
        resolve(self.config.as_deref(), &overrides, self.admin_listen)
    }
}

/// `control`: decides, keeps the database, deletes what the lifecycle evicts.
#[derive(Args, Clone)]
pub struct ControlArgs {
    /// Address the control plane answers gateways on; overrides `listen` [default:
    /// `127.0.0.1:5000`].
    #[arg(long, env = "DEPPROXY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the SQLite database (unless `database_url` names another) and of the objects
    /// on disk storage, which the sweeper deletes from; overrides `data_dir` [default:
    /// `./depproxy-data`].
    #[arg(long, env = "DEPPROXY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Upstream registry URL (`http://` or `https://`), as for `serve`; give the gateways the
    /// same [default: `https://registry-1.docker.io`, named `dockerhub`].
    #[arg(long, env = "DEPPROXY_UPSTREAM", value_name = "URL")]
    pub upstream: Option<String>,
    /// TOML configuration file; the flags above override its keys.
    #[arg(long, env = "DEPPROXY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the admin API and status page, or `off`; overrides `admin_listen` [default:
    /// `127.0.0.1:5080`; a taken address stops the start].
    #[arg(long, env = "DEPPROXY_ADMIN_LISTEN", value_name = "ADDR|off")]
    pub admin_listen: Option<config::AdminListen>,
    /// Serve Prometheus metrics at this address (the only place the control plane serves them:
    /// its main listener answers gateways only).
    #[arg(long, env = "DEPPROXY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub tls: ListenerTls,
    #[command(flatten)]
    pub admin_tls: AdminTls,
}

impl ControlArgs {
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            upstream: self.upstream.clone(),
        };
        resolve(self.config.as_deref(), &overrides, self.admin_listen)
    }
}

/// `gateway`: moves bytes; no database, no admin API.
#[derive(Args, Clone)]
pub struct GatewayArgs {
    /// Address of the registry API (the public listener); overrides `listen` [default:
    /// `127.0.0.1:5000`].
    #[arg(long, env = "DEPPROXY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the cached objects on disk storage and of fill spools (a gateway has no
    /// database); overrides `data_dir` [default: `./depproxy-data`].
    #[arg(long, env = "DEPPROXY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The --upstream the control plane was given: a gateway fetches through its own client for
    /// each upstream (by name, with its CA and redirect rules), so both need the same upstreams
    /// [default: `https://registry-1.docker.io`, named `dockerhub`].
    #[arg(long, env = "DEPPROXY_UPSTREAM", value_name = "URL")]
    pub upstream: Option<String>,
    /// TOML configuration file (the same as the control plane's); the flags above override its keys.
    #[arg(long, env = "DEPPROXY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics at this address, and no longer at /metrics of the public
    /// listener (metrics name upstream hosts and groups: keep them off a listener every client
    /// reaches).
    #[arg(long, env = "DEPPROXY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub tls: ListenerTls,
}

impl GatewayArgs {
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            upstream: self.upstream.clone(),
        };
        resolve(self.config.as_deref(), &overrides, None)
    }
}

fn resolve(
    file: Option<&Path>,
    overrides: &Overrides,
    admin_listen: Option<config::AdminListen>,
) -> anyhow::Result<Config> {
    let file = match file {
        Some(path) => config::read_file(path)?,
        None => FileConfig::default(),
    };
    let mut config = Config::resolve(file, overrides)?;
    if let Some(admin_listen) = admin_listen {
        config.admin_listen = admin_listen;
    }
    Ok(config)
}

#[derive(Args)]
pub struct AdminTarget {
    /// The admin API's base URL (`admin_listen` of the server).
    #[arg(
        long,
        env = "DEPPROXY_ADMIN_URL",
        default_value = "http://127.0.0.1:5080",
        global = true,
        value_name = "URL"
    )]
    pub admin_url: String,
    /// An admin access token (`depproxy token create --name ops --admin` makes one).
    #[arg(long, env = "DEPPROXY_ADMIN_TOKEN", hide_env_values = true, global = true, value_name = "SECRET")]
    pub token: Option<String>,
    /// The API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Groups (size, quota, hit ratio, bytes saved) and upstreams (reachable, rate-limit budget).
    Status,
    /// Groups: policy, size vs quota, objects, traffic.
    Groups,
    /// Upstreams: reachable, latency, rate-limit budget, last error.
    Upstreams,
    /// Live fills on every node, with their progress.
    Fills,
    /// Recent errors and warnings, then recent denials, newest first (repeats on one row).
    Events {
        /// How many to show (the server keeps the last 500).
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// Purge a group's cache (or one image or package of it), following the job with a progress
    /// bar.
    Purge {
        /// The group, e.g. `default` or `acme/platform`.
        #[arg(long, value_name = "PATH")]
        group: String,
        /// Only this image (as the upstream names it, e.g. library/alpine) and the blobs no other
        /// image of the group uses (image groups).
        #[arg(long, value_name = "NAME", conflicts_with = "package")]
        image: Option<String>,
        /// Only this package (e.g. lodash, @types/node, requests): its documents and files
        /// (npm and PyPI groups).
        #[arg(long, value_name = "NAME")]
        package: Option<String>,
        /// Only what was not read for this long, e.g. 30d.
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Remove a group's cached objects and tags (pinned ones too), or one image's or package's;
    /// the next pull fetches them again.
    Purge {
        /// The group, e.g. `default` or `acme/platform`.
        #[arg(long, value_name = "PATH")]
        group: String,
        /// Only this image (as the upstream names it, e.g. library/alpine) and the blobs no other
        /// image of the group uses (image groups).
        #[arg(long, value_name = "NAME", conflicts_with = "package")]
        image: Option<String>,
        /// Only this package (e.g. lodash, @types/node, requests): its documents and files
        /// (npm and PyPI groups).
        #[arg(long, value_name = "NAME")]
        package: Option<String>,
        /// Only what was not read for this long, e.g. 30d.
        #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration, value_name = "DURATION")]
        older_than: Option<std::time::Duration>,
        #[command(flatten)]
        store: CacheStoreArgs,
    },
    /// Per group: size, quota, pinned bytes, objects, manifests, tags, traffic over 24 h, which
    /// upstream served how many objects; the store's size.
    Stats {
        /// Only this group.
        #[arg(long, value_name = "PATH")]
        group: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: CacheStoreArgs,
    },
    /// Pull every platform of images into the cache ahead of time, through the running proxy; or,
    /// with --now, run the group's `warm` schedule at once (through the admin API).
    Warm {
        /// The group to warm (`default` is the mirror group).
        #[arg(long, value_name = "PATH")]
        group: String,
        /// The images to warm, as pulled (tag `latest` when neither a tag nor a digest is given);
        /// on a package group the packages, `NAME[@VERSION]` (PyPI also `NAME==VERSION`; Maven's
        /// NAME is `groupId:artifactId`, Go's a module path; no version: npm's `latest` dist-tag,
        /// Maven's `release`, else the newest release listed); required unless --now.
        #[arg(required_unless_present = "now", conflicts_with = "now", value_name = "IMAGE[:TAG|@DIGEST]")]
        images: Vec<String>,
        /// Run the group's `warm` schedule now, on the server, and print what it fetched (follows
        /// the job; fails when a tag could not be warmed).
        #[arg(long)]
        now: bool,
        /// With --now: the admin API's base URL (`admin_listen` of the server).
        #[arg(long, env = "DEPPROXY_ADMIN_URL", default_value = "http://127.0.0.1:5080", value_name = "URL")]
        admin_url: String,
        /// With --now: an admin access token (`depproxy token create --name ops --admin`).
        #[arg(long, env = "DEPPROXY_ADMIN_TOKEN", hide_env_values = true, value_name = "SECRET")]
        admin_token: Option<String>,
        /// With --now: the job as the admin API answers it (JSON) instead of the report.
        #[arg(long, requires = "now")]
        json: bool,
        /// Base URL of the proxy's public listener [default: `http://` and the address of
        /// --listen].
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
        /// The address the proxy listens on, as serve (or the gateway) was given it; `0.0.0.0` is
        /// reached at `127.0.0.1` [default: `listen` of the configuration, else `127.0.0.1:5000`].
        #[arg(long, env = "DEPPROXY_LISTEN", value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Configuration file, read for its `listen` only [default: `/etc/depproxy/depproxy.toml`
        /// when it exists].
        #[arg(long, env = "DEPPROXY_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Access token, for a group with access = "token".
        #[arg(long, env = "DEPPROXY_TOKEN", hide_env_values = true, value_name = "SECRET")]
        token: Option<String>,
        /// Objects fetched at once.
        #[arg(long, default_value_t = super::warm::DEFAULT_CONCURRENCY, value_name = "N")]
        concurrency: usize,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (once) on stdout; what to do with it goes to stderr.
    Create {
        /// A name to list and revoke it by (unique among active tokens).
        #[arg(long)]
        name: String,
        /// A group it may pull from (repeat for several).
        #[arg(long = "group", value_name = "PATH")]
        groups: Vec<String>,
        /// May use the admin API (pulls nothing unless given groups too).
        #[arg(long)]
        admin: bool,
        /// Lifetime, e.g. 90d or 12h [default: it never expires].
        #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration, value_name = "DURATION")]
        expires: Option<std::time::Duration>,
        /// Print only the secret: nothing on stderr.
        #[arg(long, short, conflicts_with = "json")]
        quiet: bool,
        /// Print `{name, secret, groups, admin, expires}` as JSON instead of the secret alone.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: TokenStoreArgs,
    },
    /// List tokens: name, groups, created, expires, last used, status.
    List {
        #[command(flatten)]
        store: TokenStoreArgs,
    },
    /// Revoke a token: every control plane refuses it, and the registry tokens issued for it,
    /// within [auth] token_check_interval.
    Revoke {
        /// The token's name, as `token list` shows it.
        name: String,
        #[command(flatten)]
        store: TokenStoreArgs,
    },
}

/// Where the tokens are: the server's database.
#[derive(Args, Clone)]
pub struct TokenStoreArgs {
    /// The server's configuration file (its database_url, data_dir and groups) [default:
    /// `/etc/depproxy/depproxy.toml` when it exists and --data-dir is not given].
    #[arg(long, env = "DEPPROXY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The server's data directory, holding its SQLite database depproxy.db (never created here);
    /// overrides the configuration's `data_dir`.
    #[arg(long, env = "DEPPROXY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl TokenStoreArgs {
    pub fn resolve(&self) -> anyhow::Result<Config> {
        resolve_server_config(self.config.as_deref(), self.data_dir.as_deref())
    }
}

/// Where the cache is: the server's database and object storage.
#[derive(Args, Clone)]
pub struct CacheStoreArgs {
    /// The server's configuration file (its database_url, data_dir, storage and groups)
    /// [default: `/etc/depproxy/depproxy.toml` when it exists and --data-dir is not given].
    #[arg(long, env = "DEPPROXY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The server's data directory, holding its SQLite database depproxy.db (never created here)
    /// and the objects on disk; overrides the configuration's `data_dir`.
    #[arg(long, env = "DEPPROXY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl CacheStoreArgs {
    pub fn resolve(&self) -> anyhow::Result<Config> {
        resolve_server_config(self.config.as_deref(), self.data_dir.as_deref())
    }
}

/// The configuration the Debian package installs, which the service runs with.
pub const PACKAGED_CONFIG: &str = "/etc/depproxy/depproxy.toml";
/// Names another file in place of [`PACKAGED_CONFIG`] (for tests, which cannot write /etc).
const PACKAGED_CONFIG_ENV: &str = "DEPPROXY_PACKAGED_CONFIG";

/// The packaged configuration, when it exists.
pub fn packaged_config() -> Option<PathBuf> {
    let path =
        std::env::var_os(PACKAGED_CONFIG_ENV).map_or_else(|| PathBuf::from(PACKAGED_CONFIG), PathBuf::from);
    path.is_file().then_some(path)
}

/// The configuration of a server for a command that works on its database: the file given, else
/// the packaged one (unless a data directory is given), else the defaults.
fn resolve_server_config(file: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<Config> {
    let packaged = if file.is_none() && data_dir.is_none() { packaged_config() } else { None };
    let overrides = Overrides { data_dir: data_dir.map(Path::to_owned), ..Overrides::default() };
    resolve(file.or(packaged.as_deref()), &overrides, None)
}

/// Where `cache warm` finds the proxy: `--listen`, else `listen` of the configuration (given, or
/// the packaged one), else the default; with a description of where it came from. Only the
/// file's `listen` is read: a CI client may not have the server's secrets.
pub fn warm_listen(listen: Option<SocketAddr>, file: Option<&Path>) -> anyhow::Result<(SocketAddr, String)> {
    if let Some(listen) = listen {
        return Ok((listen, "--listen".to_owned()));
    }
    let packaged = if file.is_none() { packaged_config() } else { None };
    if let Some(path) = file.or(packaged.as_deref())
        && let Some(listen) = config::read_file(path)?.listen
    {
        return Ok((listen, format!("listen of {}", path.display())));
    }
    match defaults::LISTEN.parse() {
        Ok(listen) => Ok((listen, "the default listen address".to_owned())),
        Err(_) => bail!("the default listen address {:?} is not an address", defaults::LISTEN),
    }
}
