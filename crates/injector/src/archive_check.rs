//! Checks of a whole stored file that a streamed checksum cannot make, named by the control plane
//! and run by the gateway on the verified bytes before they are recorded: Go's `h1:` hashes,
//! which the checksum database publishes for a module's zip (a hash over the files in it, as
//! `go` computes it) and its `go.mod`. The gateway applies the check it is told; it knows no
//! format.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A check of a stored file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "check")]
pub enum ArchiveCheck {
    /// A Go module zip whose files hash to `h1` (the checksum database's `h1:…` for
    /// `module version`).
    GoModuleZip { h1: String },
    /// A `go.mod` that hashes to `h1` (the checksum database's `h1:…` for
    /// `module version/go.mod`).
    GoModFile { h1: String },
}

/// Why a stored file failed its check.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveCheckError {
    #[error("the checksum database gives {expected} for it; its content hashes to {actual}")]
    Mismatch { expected: String, actual: String },
    #[error("it is not a module zip: {0}")]
    Unreadable(String),
}

impl ArchiveCheck {
    /// Checks the file at `path` whose sha256 is `sha256_hex`. Reads the file: blocking.
    pub fn check(&self, path: &Path, sha256_hex: &str) -> Result<(), ArchiveCheckError> {
        let (expected, actual) = match self {
            ArchiveCheck::GoModuleZip { h1 } => {
                let file = std::fs::File::open(path)
                    .map_err(|error| ArchiveCheckError::Unreadable(error.to_string()))?;
                let actual = gomod::h1_of_zip(std::io::BufReader::new(file))
                    .map_err(|error| ArchiveCheckError::Unreadable(error.to_string()))?;
                (h1, actual)
            }
            ArchiveCheck::GoModFile { h1 } => (h1, gomod::h1_of_mod_sha256(sha256_hex)),
        };
        if *expected == actual {
            Ok(())
        } else {
            Err(ArchiveCheckError::Mismatch { expected: expected.clone(), actual })
        }
    }

    /// The checksum it checks against, as the checksum database writes it (`h1:…`).
    pub fn expected(&self) -> &str {
        match self {
            ArchiveCheck::GoModuleZip { h1 } | ArchiveCheck::GoModFile { h1 } => h1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module zip and go.mod made by golang.org/x/mod, with the hashes `go` wrote to go.sum
    /// (crates/gomod/tests/fixtures).
    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gomod/tests/fixtures").join(name)
    }

    #[test]
    fn a_module_zip_and_go_mod_pass_with_the_databases_hashes_and_fail_with_others() {
        let zip = ArchiveCheck::GoModuleZip { h1: "h1:vurNIcEQ2G3yrjjw2RsY1lWg/f11jjuTvsigGrClw9s=".into() };
        zip.check(&fixture("Hello-v1.0.0.zip"), "").unwrap();
        let go_mod = std::fs::read(fixture("Hello-v1.0.0.mod")).unwrap();
        let sha256 = crate::Checksum::of(crate::ChecksumAlgorithm::Sha256, &go_mod);
        let mod_check =
            ArchiveCheck::GoModFile { h1: "h1:k0oGS5Sf0aunmhKq0FE+XejFePUwV0M4e9lNYGbawyo=".into() };
        mod_check.check(&fixture("Hello-v1.0.0.mod"), sha256.hex()).unwrap();

        let other =
            ArchiveCheck::GoModuleZip { h1: "h1:AAAAIcEQ2G3yrjjw2RsY1lWg/f11jjuTvsigGrClw9s=".into() };
        assert!(matches!(
            other.check(&fixture("Hello-v1.0.0.zip"), ""),
            Err(ArchiveCheckError::Mismatch { .. })
        ));
        assert!(
            matches!(zip.check(&fixture("go.sum"), ""), Err(ArchiveCheckError::Unreadable(_))),
            "not a zip"
        );
        let wrong_mod = ArchiveCheck::GoModFile { h1: mod_check.expected().replace('k', "K") };
        assert!(wrong_mod.check(&fixture("Hello-v1.0.0.mod"), sha256.hex()).is_err());
    }
}
