//! The files a package document lists, read by a [`References`] rule: by the gateway from a
//! document it stored (reported at finalize), and by the control plane from one it read itself (a
//! file asked for before its document). The format crates parse; this turns their answer into
//! the contract's [`ListedFile`]s.

use crate::{Checksum, ChecksumAlgorithm, ListedFile, References};

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
    }
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
