//! Reading a manifest the proxy sent: the child manifests of an index (with their platforms), or
//! the config and layer blobs of an image.

use std::collections::HashMap;

use oci::Digest;

use super::report::ObjectError;

/// A manifest as far as warming cares: what it points at.
pub(super) struct Fetched {
    pub(super) bytes: u64,
    /// `Docker-Content-Digest` of the answer (the digest a tag resolved to).
    pub(super) digest: Option<Digest>,
    /// `index`, `image` (for the progress line).
    pub(super) kind: String,
    pub(super) children: Vec<Child>,
    pub(super) blobs: Vec<BlobRef>,
}

pub(super) struct Child {
    pub(super) digest: Digest,
    pub(super) label: String,
}

pub(super) struct BlobRef {
    pub(super) digest: Digest,
    pub(super) size: u64,
    pub(super) foreign: bool,
}

#[derive(serde::Deserialize)]
struct ManifestDocument {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    /// The OCI 1.1 draft's artifact manifest lists `blobs` instead of layers.
    #[serde(default)]
    blobs: Option<Vec<Descriptor>>,
    /// Docker schema 1: never asked for, but an upstream may still send one.
    #[serde(default, rename = "fsLayers")]
    fs_layers: Option<Vec<FsLayer>>,
}

#[derive(serde::Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(serde::Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(serde::Deserialize)]
struct FsLayer {
    #[serde(rename = "blobSum")]
    blob_sum: String,
}

pub(super) fn parse_manifest(body: &[u8], digest: Option<Digest>) -> Result<Fetched, ObjectError> {
    let document: ManifestDocument = serde_json::from_slice(body).map_err(|error| {
        ObjectError::other(format!("the proxy sent a manifest that is not JSON: {error}"))
    })?;
    let parse_digest = |text: &str| {
        text.parse::<Digest>().map_err(|error| {
            ObjectError::other(format!("manifest names an invalid digest {text:?}: {error}"))
        })
    };
    let bytes = body.len() as u64;
    if let Some(manifests) = document.manifests {
        let children = manifests
            .iter()
            .map(|descriptor| {
                Ok(Child { digest: parse_digest(&descriptor.digest)?, label: platform_label(descriptor) })
            })
            .collect::<Result<_, ObjectError>>()?;
        return Ok(Fetched { bytes, digest, kind: "index".into(), children, blobs: Vec::new() });
    }
    let mut blobs = Vec::new();
    if document.config.is_some() || document.layers.is_some() || document.blobs.is_some() {
        let layers = document.layers.iter().flatten().chain(document.blobs.iter().flatten());
        for descriptor in document.config.iter().chain(layers) {
            blobs.push(BlobRef {
                digest: parse_digest(&descriptor.digest)?,
                size: descriptor.size,
                foreign: !descriptor.urls.is_empty(),
            });
        }
    } else if let Some(layers) = document.fs_layers {
        for layer in layers {
            blobs.push(BlobRef { digest: parse_digest(&layer.blob_sum)?, size: 0, foreign: false });
        }
    } else {
        return Err(ObjectError::other("the proxy sent a manifest with neither manifests nor layers"));
    }
    Ok(Fetched { bytes, digest, kind: "image".into(), children: Vec::new(), blobs })
}

fn platform_label(descriptor: &Descriptor) -> String {
    if descriptor.annotations.get("vnd.docker.reference.type").map(String::as_str)
        == Some("attestation-manifest")
    {
        return "attestation".into();
    }
    match &descriptor.platform {
        Some(platform) => {
            let mut label = format!("{}/{}", platform.os, platform.architecture);
            if let Some(variant) = &platform.variant {
                label.push('/');
                label.push_str(variant);
            }
            label
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_yield_children_or_blobs_and_skip_foreign_layers() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let index = format!(
            r#"{{"manifests":[{{"digest":"{a}","platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
                {{"digest":"{b}","platform":{{"os":"unknown","architecture":"unknown"}},
                  "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#
        );
        let fetched = parse_manifest(index.as_bytes(), None).unwrap();
        let labels: Vec<_> = fetched.children.iter().map(|child| child.label.as_str()).collect();
        assert_eq!(labels, ["linux/arm64/v8", "attestation"]);
        let image = format!(
            r#"{{"config":{{"digest":"{a}","size":3}},"layers":[{{"digest":"{b}","size":5,"urls":["https://x"]}}]}}"#
        );
        let fetched = parse_manifest(image.as_bytes(), None).unwrap();
        let blobs: Vec<_> = fetched.blobs.iter().map(|blob| (blob.size, blob.foreign)).collect();
        assert_eq!(blobs, [(3, false), (5, true)]);
        assert!(parse_manifest(b"{}", None).is_err());
    }
}
