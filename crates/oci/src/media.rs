//! Media types the pull path deals with, and the manifest `Accept` list sent upstream.

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Every manifest type a client may want. Sent upstream on manifest requests so the upstream never
/// down-converts a multi-arch index (the proxy stores what upstream has, clients pick their type).
pub const MANIFEST_ACCEPT: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2];

/// [`MANIFEST_ACCEPT`] joined as one header value.
pub fn manifest_accept_header() -> String {
    MANIFEST_ACCEPT.join(", ")
}

/// Whether `content_type` (parameters ignored) names a manifest or index format.
pub fn is_manifest_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    MANIFEST_ACCEPT.contains(&essence) || essence == DOCKER_MANIFEST_V1_SIGNED
}
