//! The Go module proxy protocol's knowledge, with no I/O: the request-path parser (GOPROXY and
//! checksum-database proxy paths), the `!`-case escaping of module paths and versions, reading a
//! checksum database lookup, and the `h1:` hashes of module zips and go.mod files. Used by the
//! control plane (routing, validation) and the gateway (checking what it fetched).

pub mod dirhash;
pub mod error;
pub mod escape;
pub mod path;
pub mod sumdb;

pub use dirhash::{ZipHashError, h1_of_mod_sha256, h1_of_zip};
pub use error::PathError;
pub use escape::{check_path, check_version, escape_path, escape_version, unescape_path, unescape_version};
pub use path::{Endpoint, is_canonical_version, parse_path};
pub use sumdb::lookup_hashes;
