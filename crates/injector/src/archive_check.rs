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
