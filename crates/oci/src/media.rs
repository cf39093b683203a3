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

/// The media type a client is told an object has: upstream's `Content-Type` when it sent one; for a
/// blob without one, `application/octet-stream` (blobs are opaque bytes); for a manifest without
/// one, nothing (`""`): a manifest's type cannot be guessed, and finalize refuses a non-manifest type.
pub fn media_type_or_default(kind: crate::ObjectKind, content_type: Option<&str>) -> String {
    match (content_type, kind) {
        (Some(content_type), _) => content_type.to_owned(),
        (None, crate::ObjectKind::Blob) => OCTET_STREAM.to_owned(),
        (None, crate::ObjectKind::Manifest) => String::new(),
    }
}
