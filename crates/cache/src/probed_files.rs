//! Files no document lists (Maven's artifacts, Go's `.info`/`.mod`/`.zip`, checksum-database
//! tiles): the first time one is asked for, where it is and what it is verified against is found
//! here — by asking the group's upstreams in order for its checksum sidecars (Maven), or taking
//! the checksum the caller read elsewhere (Go's checksum database), or none — and recorded as a
//! listing, so it is decided from then on as any listed file: stored → served; else fetched from
//! the upstream that has it and verified before it is recorded.
//!
//! A file the upstreams publish no checksum for is recorded under the sha256 it arrives with and
//! counted as unverified (`algorithm` empty in its listing).

use injector::{Checksum, ChecksumAlgorithm};
use metadata::{DocumentKey, FileListing, FileRecord};
use oci::ObjectKind;
use upstream::{UpstreamClient, UpstreamError};

use crate::error::CacheError;
use crate::groups::GroupSettings;
use crate::not_found::PackageMissing;
use crate::state::Cache;
use crate::upstreams::moved_past;

/// How a file no document lists is verified.
#[derive(Debug, Clone)]
pub enum Probe {
    /// Maven: the checksum in the first of these sidecars (`<path>.sha1`, …) the upstream that
    /// has the file publishes; `sidecars[0]` is asked first (the upstreams that publish any
    /// publish it), the rest only when it is missing and the file is there.
    Sidecars(&'static [ChecksumAlgorithm]),
    /// Verified against this checksum, wherever it is fetched from: Go's `h1:` hashes from its
    /// checksum database (`algorithm` names the check the gateway makes, `value` is as published).
    Known { algorithm: &'static str, value: String },
    /// Nothing is published to verify it against: recorded as fetched (from the first upstream
    /// that has it).
    Unverified,
}

/// A file no document lists: its path under the group (also its path on every upstream), the
/// package and version it is of.
#[derive(Debug, Clone)]
pub struct UnlistedFile<'a> {
    pub path: &'a str,
    pub package: &'a str,
    pub version: &'a str,
}

/// The checksum a probe insists on (a checksum database's), if any: a file listed otherwise is
/// probed again.
fn wanted_algorithm(probe: &Probe) -> Option<&'static str> {
    match probe {
        Probe::Known { algorithm, .. } => Some(algorithm),
        Probe::Sidecars(_) | Probe::Unverified => None,
    }
}

/// A sidecar is a checksum and maybe a file name: never more than this.
const MAX_SIDECAR: usize = 1024;

impl Cache {
    /// The listing of a file no document lists, found (once however many ask) and recorded when
    /// it is not yet: see the module's description.
    pub async fn probed_file(
        &self,
        group: &GroupSettings,
        file: UnlistedFile<'_>,
        probe: &Probe,
    ) -> Result<FileRecord, CacheError> {
        if let Some(record) = self.package_file(group, file.path).await {
            // A checksum learnt since it was listed unverified (a group that now verifies) wins.
            if wanted_algorithm(probe).is_none_or(|algorithm| algorithm == record.listing.algorithm) {
                return Ok(record);
            }
        }
        let missing = PackageMissing { group: group.path.clone(), what: format!("file {}", file.path) };
        self.answer_remembered_package_404(group, &missing)?;
        if let Probe::Unverified = probe {
            // Nothing to find out first: the first upstream that has it serves it, and its fill
            // records it (a path no upstream has leaves no row behind).
            let listing = FileListing {
                path: file.path.to_owned(),
                version: file.version.to_owned(),
                algorithm: String::new(),
                checksum: String::new(),
                url: group.upstreams.first().package_url(file.path),
            };
            let package = file.package.to_owned();
            return Ok(FileRecord { package, listing, upstream: String::new(), stored: None });
        }
        let key = DocumentKey {
            group: group.path.clone(),
            package: file.path.to_owned(),
            variant: "probe".to_owned(),
        };
        let found = self.document_reads.run(key, || async {
            // A probe that ended while this one was on its way here listed it already.
            if let Ok(Some(record)) = self.catalog.metadata().find_package_file(&group.path, file.path).await
                && wanted_algorithm(probe).is_none_or(|algorithm| algorithm == record.listing.algorithm)
            {
                return Ok(());
            }
            let (upstream, algorithm, checksum) = match probe {
                Probe::Sidecars(algorithms) => {
                    match self.read_sidecars(group, file.path, algorithms).await? {
                        (upstream, Some(checksum)) => {
                            (upstream, checksum.algorithm().as_str().to_owned(), checksum.hex().to_owned())
                        }
                        (upstream, None) => (upstream, String::new(), String::new()),
                    }
                }
                Probe::Known { algorithm, value } => (String::new(), (*algorithm).to_owned(), value.clone()),
                // Answered above, before any upstream is asked.
                Probe::Unverified => (String::new(), String::new(), String::new()),
            };
            let at = group.upstreams.get(&upstream).unwrap_or_else(|| group.upstreams.first());
            let listing = FileListing {
                path: file.path.to_owned(),
                version: file.version.to_owned(),
                algorithm,
                checksum,
                url: at.package_url(file.path),
            };
            let now = self.clock.now_ms();
            self.catalog
                .metadata()
                .list_package_files(&group.path, file.package, &upstream, &[listing], now)
                .await
                .map_err(|error| UpstreamError::Protocol(format!("recording the file failed: {error}")))
        });
        match found.await {
            Ok(()) => {}
            Err(UpstreamError::NotFound(kind)) => {
                let window = group.policy.with(|policy| policy.negative_ttl);
                self.package_not_found.remember(missing, self.clock.now_ms(), window);
                return Err(UpstreamError::NotFound(kind).into());
            }
            Err(error) => return Err(error.into()),
        }
        self.package_file(group, file.path).await.ok_or_else(|| {
            UpstreamError::Protocol(format!("{} was listed but cannot be read", file.path)).into()
        })
    }

    /// The upstream (in the group's order) that has `path`, and the checksum its sidecars give.
    async fn read_sidecars(
        &self,
        group: &GroupSettings,
        path: &str,
        algorithms: &[ChecksumAlgorithm],
    ) -> Result<(String, Option<Checksum>), UpstreamError> {
        let mut last = UpstreamError::NotFound(ObjectKind::Blob);
        for upstream in group.upstreams.in_order(None) {
            let Some((first, rest)) = algorithms.split_first() else { break };
            match sidecar(upstream, path, *first).await {
                Ok(Some(checksum)) => return Ok((upstream.name().to_owned(), Some(checksum))),
                Ok(None) => {}
                Err(error) => {
                    moved_past(upstream, &error);
                    last = error;
                    continue;
                }
            }
            // No first sidecar: is the file itself there?
            let url = upstream.package_url(path);
            match upstream.probe_document(&url, upstream.package_headers(None)).await {
                Ok(()) => {}
                Err(error) => {
                    moved_past(upstream, &error);
                    last = error;
                    continue;
                }
            }
            for algorithm in rest {
                if let Ok(Some(checksum)) = sidecar(upstream, path, *algorithm).await {
                    return Ok((upstream.name().to_owned(), Some(checksum)));
                }
            }
            return Ok((upstream.name().to_owned(), None));
        }
        Err(last)
    }
}

/// The checksum `upstream` publishes for `path` in its `algorithm` sidecar: `None` when it has
/// none (404) or it does not read as one.
async fn sidecar(
    upstream: &UpstreamClient,
    path: &str,
    algorithm: ChecksumAlgorithm,
) -> Result<Option<Checksum>, UpstreamError> {
    let url = upstream.package_url(&format!("{path}.{}", algorithm.as_str()));
    match upstream.get_document(&url, upstream.package_headers(None), MAX_SIDECAR).await {
        Ok(document) => Ok(sidecar_checksum(&document.body, algorithm)),
        Err(UpstreamError::NotFound(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// A sidecar's checksum: its first word (`hex` or `hex  file-name`), when that is one.
pub fn sidecar_checksum(body: &[u8], algorithm: ChecksumAlgorithm) -> Option<Checksum> {
    let text = std::str::from_utf8(body).ok()?;
    let word = text.split_whitespace().next()?;
    Checksum::from_hex(algorithm, word).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_is_its_first_word_when_that_is_a_checksum() {
        let hex = "a9993e364706816aba3e25717850c26c9cd0d89d";
        for body in [hex.to_owned(), format!("{hex}\n"), format!("{hex}  app-1.0.jar\n"), hex.to_uppercase()]
        {
            assert_eq!(
                sidecar_checksum(body.as_bytes(), ChecksumAlgorithm::Sha1)
                    .map(|checksum| checksum.hex().to_owned()),
                Some(hex.to_owned()),
                "{body:?}"
            );
        }
        assert_eq!(sidecar_checksum(b"", ChecksumAlgorithm::Sha1), None);
        assert_eq!(sidecar_checksum(b"<html>not found</html>", ChecksumAlgorithm::Sha1), None);
        assert_eq!(sidecar_checksum(hex.as_bytes(), ChecksumAlgorithm::Sha256), None, "wrong length");
    }
}
