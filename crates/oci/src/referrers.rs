//! The referrers API's answer (`GET /v2/<name>/referrers/<digest>`): an image index of the
//! manifests whose `subject` is the digest, each descriptor with its `artifactType`; and the
//! `artifactType` filter a client may ask for (distribution spec 1.1). Fields we do not read
//! (annotations, sizes, anything newer) are kept as they were.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The query parameter naming the artifact type a client wants.
pub const ARTIFACT_TYPE_PARAMETER: &str = "artifactType";
/// The response header saying which filters the answer applied.
pub const FILTERS_APPLIED_HEADER: &str = "OCI-Filters-Applied";

/// Why a document is not a referrers list.
#[derive(Debug, thiserror::Error)]
#[error("not a referrers list (an image index): {0}")]
pub struct NotAReferrersList(#[from] serde_json::Error);

#[derive(Serialize, Deserialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    manifests: Vec<Referrer>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct Referrer {
    #[serde(rename = "artifactType", default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// How many referrers `list` names, when it is a referrers list.
pub fn referrers_count(list: &[u8]) -> Result<usize, NotAReferrersList> {
    Ok(serde_json::from_slice::<Index>(list)?.manifests.len())
}

/// `list` with only the referrers whose `artifactType` is one of `artifact_types` (a descriptor
/// without one matches none).
pub fn filter_referrers(list: &[u8], artifact_types: &[&str]) -> Result<Vec<u8>, NotAReferrersList> {
    let mut index: Index = serde_json::from_slice(list)?;
    index.manifests.retain(|referrer| {
        referrer.artifact_type.as_deref().is_some_and(|artifact_type| artifact_types.contains(&artifact_type))
    });
    Ok(serde_json::to_vec(&index)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":10,
         "artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","annotations":{"k":"v"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":20,
         "artifactType":"application/spdx+json"},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","size":30}]}"#;

    #[test]
    fn the_filter_keeps_the_asked_types_and_every_other_field() {
        assert_eq!(referrers_count(LIST.as_bytes()).unwrap(), 3);
        let filtered =
            filter_referrers(LIST.as_bytes(), &["application/vnd.dev.cosign.artifact.sig.v1+json"]).unwrap();
        let value: Value = serde_json::from_slice(&filtered).unwrap();
        assert_eq!(value["schemaVersion"], 2);
        assert_eq!(value["mediaType"], crate::media::OCI_INDEX);
        assert_eq!(value["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(value["manifests"][0]["digest"], "sha256:aa");
        assert_eq!(value["manifests"][0]["size"], 10);
        assert_eq!(value["manifests"][0]["annotations"]["k"], "v");
        let both = filter_referrers(
            LIST.as_bytes(),
            &["application/spdx+json", "application/vnd.dev.cosign.artifact.sig.v1+json"],
        )
        .unwrap();
        assert_eq!(referrers_count(&both).unwrap(), 2);
        let none = filter_referrers(LIST.as_bytes(), &["application/other"]).unwrap();
        assert_eq!(referrers_count(&none).unwrap(), 0, "an empty list, still an index");
    }

    #[test]
    fn what_is_no_image_index_is_refused() {
        for bad in [&b"not json"[..], br#"{"schemaVersion":2}"#, br#"{"manifests":[]}"#, b"[]"] {
            assert!(referrers_count(bad).is_err(), "{}", String::from_utf8_lossy(bad));
            assert!(filter_referrers(bad, &["x"]).is_err());
        }
    }
}
