//! The Cargo sparse registry format's knowledge (RFC 2789), with no I/O: crate names and their
//! index paths, the request-path parser, reading index files and `config.json`, and where a
//! `.crate` is downloaded from under a `dl` template. Used by the control plane (routing,
//! validation) and the gateway (finalizing an index file, fetching a crate).

pub mod config;
pub mod download;
pub mod index;
pub mod name;
pub mod path;

pub use config::{RegistryConfig, config_json, error_body, parse_config};
pub use download::{dep_prefix, download_url};
pub use index::{IndexError, PublishedCrate, index_entries};
pub use name::{CrateName, MAX_NAME_LEN, NameError};
pub use path::{Endpoint, PathError, parse_path};
