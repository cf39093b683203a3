//! The files a package document lists, read by a [`References`] rule: by the gateway from a
//! document it stored (reported at finalize), and by the control plane from one it read itself (a
//! file asked for before its document). The format crates parse; this turns their answer into
//! the contract's [`ListedFile`]s.

use serde::{Deserialize, Serialize};

use crate::checksum::{Checksum, ChecksumAlgorithm};

/// How the gateway reads what a stored document references, to report it at finalize (for pins
/// and purges, and a package document's files): the control plane never reads stored objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum References {
    /// An OCI image manifest or index (and the Docker formats): its config, layers, manifests,
    /// blobs and subject.
    OciManifest,
    /// An npm packument, full or abbreviated: each version's tarball and its `integrity` (or
    /// `shasum`), reported as [`ListedFile`]s.
    NpmPackument,
    /// A PyPI project page, HTML (PEP 503) or JSON (PEP 691): each file with its `sha256`, and
    /// its metadata file (PEP 658) when the page announces one.
    PypiProjectPage,
    /// A Cargo sparse index file: each version's `.crate` with its `cksum` (sha256), reported as
    /// the proxy's download path `api/v1/crates/{name}/{version}/download`.
    CargoIndexFile,
}

/// A file a stored package document lists, as the document writes it: its URL (relative ones
/// resolve against the document's), the version it belongs to (empty: not said), and the
/// checksum the upstream published for it (none: not published).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedFile {
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
}

/// The files `document` lists, by `rule`; none for a document that does not parse (its files
/// are then read by the control plane when one is asked for).
pub fn listed_files(rule: References, document: &[u8], media_type: &str) -> Vec<ListedFile> {
    match rule {
        References::OciManifest => Vec::new(),
        References::NpmPackument => npm::packument_files(document)
            .map(|files| files.into_iter().map(npm_file).collect())
            .unwrap_or_default(),
        References::PypiProjectPage => {
            let json = media_type.split(';').next().is_some_and(|essence| essence.trim().ends_with("json"));
            let files = if json { pypi::json_files(document) } else { pypi::html_files(document) };
            files.map(|files| files.into_iter().flat_map(pypi_files).collect()).unwrap_or_default()
        }
        References::CargoIndexFile => cargo_sparse::index_entries(document)
            .map(|entries| entries.into_iter().filter_map(cargo_file).collect())
            .unwrap_or_default(),
    }
}

/// Where the proxy serves a crate an index file lists (its `dl`, see `cargo_sparse::Endpoint`).
pub fn cargo_download_path(name: &str, version: &str) -> String {
    format!("api/v1/crates/{name}/{version}/download")
}

fn cargo_file(entry: cargo_sparse::PublishedCrate) -> Option<ListedFile> {
    let checksum = Checksum::from_hex(ChecksumAlgorithm::Sha256, &entry.cksum).ok()?;
    Some(ListedFile {
        url: cargo_download_path(&entry.name, &entry.version),
        version: entry.version,
        checksum: Some(checksum),
    })
}

fn npm_file(file: npm::PublishedFile) -> ListedFile {
    let checksum = file.checksum.and_then(|checksum| {
        let algorithm = match checksum.algorithm {
            npm::Algorithm::Sha512 => ChecksumAlgorithm::Sha512,
            npm::Algorithm::Sha256 => ChecksumAlgorithm::Sha256,
            npm::Algorithm::Sha1 => ChecksumAlgorithm::Sha1,
        };
        Checksum::from_hex(algorithm, &checksum.hex).ok()
    });
    ListedFile { url: file.url, version: file.version, checksum }
}

/// A PyPI file, and its metadata file (PEP 658) when the page gives that one's sha256.
fn pypi_files(file: pypi::PublishedFile) -> Vec<ListedFile> {
    let sha256 = |hex: &str| Checksum::from_hex(ChecksumAlgorithm::Sha256, hex).ok();
    let metadata = file.metadata_sha256.as_deref().map(|hex| ListedFile {
        url: format!("{}.metadata", file.url),
        version: String::new(),
        checksum: sha256(hex),
    });
    let listed = ListedFile {
        url: file.url.clone(),
        version: String::new(),
        checksum: file.sha256.as_deref().and_then(sha256),
    };
    std::iter::once(listed).chain(metadata).collect()
}
