//! Reading an artifact-level `maven-metadata.xml`: the versions a repository has of an artifact,
//! and the ones it calls `latest` and `release` — what warming picks versions from.

use serde::Deserialize;

/// What an artifact's metadata lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactVersions {
    /// Every version listed, in the document's order.
    pub versions: Vec<String>,
    /// The newest release, when the repository says.
    pub release: Option<String>,
    /// The newest version, snapshots included, when the repository says.
    pub latest: Option<String>,
}

/// Why a metadata document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a maven-metadata.xml: {0}")]
pub struct MetadataError(String);

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    versioning: Option<Versioning>,
}

#[derive(Deserialize)]
struct Versioning {
    latest: Option<String>,
    release: Option<String>,
    #[serde(default)]
    versions: Option<Versions>,
}

#[derive(Deserialize)]
struct Versions {
    #[serde(default)]
    version: Vec<String>,
}

/// The versions an artifact-level `maven-metadata.xml` lists.
pub fn artifact_versions(body: &[u8]) -> Result<ArtifactVersions, MetadataError> {
    let text = std::str::from_utf8(body).map_err(|error| MetadataError(error.to_string()))?;
    let metadata: Metadata =
        quick_xml::de::from_str(text).map_err(|error| MetadataError(error.to_string()))?;
    let Some(versioning) = metadata.versioning else { return Ok(ArtifactVersions::default()) };
    let trimmed =
        |text: Option<String>| text.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty());
    Ok(ArtifactVersions {
        versions: versioning
            .versions
            .map(|versions| versions.version.into_iter().map(|version| version.trim().to_owned()).collect())
            .unwrap_or_default(),
        release: trimmed(versioning.release),
        latest: trimmed(versioning.latest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_mvn_deploy_writes() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<metadata>
  <groupId>com.example.dp</groupId>
  <artifactId>dp-core</artifactId>
  <versioning>
    <latest>1.1</latest>
    <release>1.1</release>
    <versions>
      <version>1.0</version>
      <version>1.1</version>
    </versions>
    <lastUpdated>20261207180000</lastUpdated>
  </versioning>
</metadata>"#;
        let versions = artifact_versions(body).unwrap();
        assert_eq!(versions.versions, ["1.0", "1.1"]);
        assert_eq!(versions.release.as_deref(), Some("1.1"));
        assert_eq!(versions.latest.as_deref(), Some("1.1"));
        assert_eq!(artifact_versions(b"<metadata/>").unwrap(), ArtifactVersions::default());
        assert!(artifact_versions(b"{\"not\": \"xml\"}").is_err());
    }
}
