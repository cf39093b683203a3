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

/// Every manifest and index format a stored manifest may have: what clients want, and the
/// legacy signed schema 1 still found on old tags.
pub const MANIFEST_TYPES: &[&str] =
    &[OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, DOCKER_MANIFEST_V1_SIGNED];

/// Whether `content_type` (parameters ignored) names a manifest or index format.
pub fn is_manifest_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    MANIFEST_TYPES.contains(&essence)
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

#[derive(serde::Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(serde::Deserialize)]
struct V1Layer {
    #[serde(rename = "blobSum")]
    blob_sum: String,
}

/// The descriptors of any manifest format, as far as they reference other objects.
#[derive(serde::Deserialize)]
struct References {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    blobs: Vec<Descriptor>,
    subject: Option<Descriptor>,
    #[serde(default, rename = "fsLayers")]
    fs_layers: Vec<V1Layer>,
}

/// The digests a manifest references: an index's manifests, an image's config and layers (and
/// an artifact's blobs, a referrer's subject). Unparseable input or entries reference nothing:
/// this feeds bookkeeping (pins, purges by image), never a client answer.
pub fn manifest_references(manifest: &[u8]) -> Vec<crate::Digest> {
    let Ok(parsed) = serde_json::from_slice::<References>(manifest) else {
        return Vec::new();
    };
    let descriptors =
        parsed.manifests.into_iter().chain(parsed.config).chain(parsed.layers).chain(parsed.blobs);
    let mut digests: Vec<crate::Digest> = descriptors
        .chain(parsed.subject)
        .map(|descriptor| descriptor.digest)
        .chain(parsed.fs_layers.into_iter().map(|layer| layer.blob_sum))
        .filter_map(|text| text.parse().ok())
        .collect();
    digests.sort_by_key(|digest| digest.to_string());
    digests.dedup();
    digests
}

#[cfg(test)]
mod reference_tests {
    use super::*;

    #[test]
    fn every_format_yields_its_references() {
        let a = crate::Digest::of(b"a");
        let b = crate::Digest::of(b"b");
        let index =
            format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{a}","size":1}},{{"digest":"{b}"}}]}}"#);
        assert_eq!(manifest_references(index.as_bytes()).len(), 2);
        let image =
            format!(r#"{{"config":{{"digest":"{a}"}},"layers":[{{"digest":"{b}"}},{{"digest":"{b}"}}]}}"#);
        assert_eq!(manifest_references(image.as_bytes()).len(), 2, "duplicates once");
        let v1 = format!(r#"{{"fsLayers":[{{"blobSum":"{a}"}}]}}"#);
        assert_eq!(manifest_references(v1.as_bytes()), vec![a.clone()]);
        assert!(manifest_references(b"not json").is_empty());
        let bad = r#"{"layers":[{"digest":"sha256:nothex"}]}"#;
        assert!(manifest_references(bad.as_bytes()).is_empty());
    }
}
