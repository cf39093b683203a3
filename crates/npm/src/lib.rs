//! The npm registry format's knowledge, with no I/O: package names, the request-path parser, the
//! checksums documents publish, reading a stored packument's file list, content negotiation and the
//! error body. Used by the control plane (routing, validation) and the gateway (finalizing a
//! document).

pub mod document;
pub mod integrity;
pub mod media;
pub mod name;
pub mod path;

pub use document::{DocumentError, PublishedFile, packument_files, version_file};
pub use integrity::{Algorithm, PublishedChecksum, parse_integrity, parse_shasum};
pub use media::{ABBREVIATED_MEDIA_TYPE, JSON_MEDIA_TYPE, error_body, wants_abbreviated};
pub use name::{MAX_NAME_LEN, NameError, NameErrorReason, PackageName};
pub use path::{Endpoint, PathError, parse_path, tarball_version};
