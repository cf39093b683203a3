//! The Maven 2 repository layout's knowledge, with no I/O: the request-path parser (metadata
//! documents, files in version directories, snapshot files that change and those that do not) and
//! the checksum sidecars published beside every file. Used by the control plane (routing,
//! validation) and the gateway (checking a file against its sidecar).

pub mod metadata;
pub mod path;
pub mod sidecar;

pub use metadata::{ArtifactVersions, MetadataError, artifact_versions};
pub use path::{ARCHETYPE_CATALOG_FILE, ArtifactFile, Endpoint, METADATA_FILE, PathError, parse_path};
pub use sidecar::{Sidecar, sidecar_checksum};
