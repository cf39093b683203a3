//! Verifying Go modules against a checksum database (a Go group's `verify_sumdb`): a module's
//! `.zip` and `.mod` listed with the `h1:` hashes the database's lookup gives for them, and the
//! whole-file check the gateway makes on those fills. Shared by `go_format` (which names the
//! files) and `packages` (which lists and serves them).

use cache::{GroupSettings, Probe, UnlistedFile};
use injector::ArchiveCheck;
use metadata::{FileListing, FileRecord};
use upstream::UpstreamError;

use crate::error::ControlError;
use crate::plane::ControlPlane;

/// How a file's listing names the `h1:` check it passes (the listing's `algorithm`).
const ZIP_HASH: &str = "go-h1-zip";
const MOD_HASH: &str = "go-h1-mod";

/// A lookup answer is a few lines and a signed note.
const MAX_LOOKUP: usize = 64 * 1024;

/// Which of a module version's files the checksum database's hash is wanted for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hashed {
    Zip,
    Mod,
}

/// A module version's file, to be verified against the group's checksum database.
pub(crate) struct SumDbLookup {
    pub sumdb: String,
    pub module: String,
    pub version: String,
    pub hashed: Hashed,
}

/// The record of a module's `.zip` or `.mod` in a group that verifies them: listed with the
/// `h1:` hash the group's checksum database gives (read through the group's upstreams, in
/// order), once. A module version the database does not know is refused: the group promises
/// nothing it has not checked.
pub(crate) async fn probed_by_sumdb(
    control: &ControlPlane,
    group: &GroupSettings,
    file: UnlistedFile<'_>,
    lookup: &SumDbLookup,
) -> Result<FileRecord, ControlError> {
    let algorithm = match lookup.hashed {
        Hashed::Zip => ZIP_HASH,
        Hashed::Mod => MOD_HASH,
    };
    if let Some(record) = control.cache.package_file(group, file.path).await
        && record.listing.algorithm == algorithm
    {
        return Ok(record);
    }
    let (zip, go_mod) = read_hashes(group, lookup).await?;
    let value = match lookup.hashed {
        Hashed::Zip => zip,
        Hashed::Mod => go_mod,
    };
    Ok(control.cache.probed_file(group, file, &Probe::Known { algorithm, value }).await?)
}

/// The `h1:` hashes (zip, go.mod) the checksum database gives for the module version.
async fn read_hashes(group: &GroupSettings, lookup: &SumDbLookup) -> Result<(String, String), ControlError> {
    let escaped = gomod::escape_path(&lookup.module).map_err(bad_module)?;
    let version = gomod::escape_version(&lookup.version).map_err(bad_module)?;
    let path = format!("sumdb/{}/lookup/{escaped}@{version}", lookup.sumdb);
    let mut last = None;
    for upstream in group.upstreams.in_order(None) {
        let url = upstream.package_url(&path);
        match upstream.get_document(&url, upstream.package_headers(None), MAX_LOOKUP).await {
            Ok(answer) => {
                let text = String::from_utf8_lossy(&answer.body);
                if let Some(hashes) = gomod::lookup_hashes(&text, &lookup.module, &lookup.version) {
                    return Ok(hashes);
                }
            }
            Err(UpstreamError::NotFound(_)) => {}
            Err(error) => last = Some(error),
        }
    }
    match last {
        // The database could not be asked: the upstream's trouble, not a refusal.
        Some(error) => Err(error.into()),
        None => Err(ControlError::PolicyRefused {
            message: format!(
                "{}@{} is not in checksum database {} (verify_sumdb): refused",
                lookup.module, lookup.version, lookup.sumdb
            ),
            rule: "verify_sumdb".to_owned(),
        }),
    }
}

/// The check of the whole file its listing names (a module zip's or go.mod's `h1:`).
pub(crate) fn archive_check(listing: &FileListing) -> Option<ArchiveCheck> {
    match listing.algorithm.as_str() {
        ZIP_HASH => Some(ArchiveCheck::GoModuleZip { h1: listing.checksum.clone() }),
        MOD_HASH => Some(ArchiveCheck::GoModFile { h1: listing.checksum.clone() }),
        _ => None,
    }
}

fn bad_module(error: gomod::PathError) -> ControlError {
    ControlError::BadPackageRequest(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_name_their_checks() {
        let listing = |algorithm: &str| FileListing {
            path: "x".into(),
            version: String::new(),
            algorithm: algorithm.into(),
            checksum: "h1:abc=".into(),
            url: String::new(),
        };
        assert_eq!(
            archive_check(&listing(ZIP_HASH)),
            Some(ArchiveCheck::GoModuleZip { h1: "h1:abc=".into() })
        );
        assert_eq!(archive_check(&listing(MOD_HASH)), Some(ArchiveCheck::GoModFile { h1: "h1:abc=".into() }));
        assert_eq!(archive_check(&listing("sha1")), None);
        assert_eq!(archive_check(&listing("")), None);
    }
}
