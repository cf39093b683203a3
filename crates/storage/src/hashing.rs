//! What an upload is checked against and how its bytes are hashed: always sha256 (the storage
//! key), and the algorithm of the checksum the upstream declared when that is another one. The
//! one place where the size and the checksum of a stream are compared with what was expected.

use injector::{Checksum, ChecksumAlgorithm, ChecksumHasher};
use oci::{Digest, Sha256Hasher};

use crate::StorageError;

/// What a commit must match. `checksum: None` means "record whatever digest the bytes have" (a
/// manifest fetched by tag, a document).
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    pub checksum: Option<Checksum>,
    pub size: Option<u64>,
}

impl Expectation {
    /// An expected sha256 digest (and size, when known).
    pub fn digest(digest: &Digest, size: Option<u64>) -> Self {
        Expectation { checksum: Some(Checksum::from(digest)), size }
    }

    /// The algorithm an upload must hash in besides sha256 to check this expectation.
    pub fn declared_algorithm(&self) -> Option<ChecksumAlgorithm> {
        self.checksum.as_ref().map(Checksum::algorithm)
    }
}

/// A stream's hashes: sha256, and the declared algorithm's when it is not sha256.
#[derive(Clone, Default)]
pub struct ContentHasher {
    sha256: Sha256Hasher,
    declared: Option<ChecksumHasher>,
}

/// What a stream hashed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub digest: Digest,
    pub size: u64,
    /// In the declared algorithm, when that is not sha256.
    pub declared: Option<Checksum>,
}

impl ContentHasher {
    /// Hashes sha256, and `declared` too when it is another algorithm.
    pub fn new(declared: Option<ChecksumAlgorithm>) -> Self {
        ContentHasher {
            sha256: Sha256Hasher::new(),
            declared: declared
                .filter(|algorithm| *algorithm != ChecksumAlgorithm::Sha256)
                .map(ChecksumHasher::new),
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        if let Some(declared) = &mut self.declared {
            declared.update(chunk);
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.sha256.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty()
    }

    pub fn finish(self) -> Hashed {
        let size = self.sha256.len();
        Hashed { digest: self.sha256.finish(), size, declared: self.declared.map(ChecksumHasher::finish) }
    }

    /// Finishes and checks the result against `expected`.
    pub fn verify(self, expected: &Expectation) -> Result<Hashed, StorageError> {
        let hashed = self.finish();
        hashed.check(expected)?;
        Ok(hashed)
    }
}

impl Hashed {
    /// Whether these bytes are what was expected: the size when known, then the checksum in its
    /// own algorithm.
    pub fn check(&self, expected: &Expectation) -> Result<(), StorageError> {
        if let Some(expected_size) = expected.size
            && expected_size != self.size
        {
            return Err(StorageError::SizeMismatch { expected: expected_size, actual: self.size });
        }
        let Some(checksum) = &expected.checksum else { return Ok(()) };
        let actual = match checksum.algorithm() {
            ChecksumAlgorithm::Sha256 => Checksum::from(&self.digest),
            ChecksumAlgorithm::Sha512 | ChecksumAlgorithm::Sha1 => match &self.declared {
                Some(declared) if declared.algorithm() == checksum.algorithm() => declared.clone(),
                // Hashed without the declared algorithm: a caller's bug, never a pass.
                _ => return Err(StorageError::NotHashedIn(checksum.algorithm().as_str())),
            },
        };
        if &actual != checksum {
            return Err(StorageError::DigestMismatch { expected: checksum.clone(), actual });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_algorithm_is_checked_in_its_own_terms() {
        for algorithm in [ChecksumAlgorithm::Sha256, ChecksumAlgorithm::Sha512, ChecksumAlgorithm::Sha1] {
            let right = Expectation { checksum: Some(Checksum::of(algorithm, b"bytes")), size: Some(5) };
            let mut hasher = ContentHasher::new(Some(algorithm));
            hasher.update(b"by");
            hasher.update(b"tes");
            let hashed = hasher.clone().verify(&right).unwrap();
            assert_eq!(hashed.digest, Digest::of(b"bytes"), "the storage key is sha256 whatever is declared");
            let wrong = Expectation { checksum: Some(Checksum::of(algorithm, b"other")), size: None };
            assert!(matches!(hasher.clone().verify(&wrong), Err(StorageError::DigestMismatch { .. })));
            let short = Expectation { checksum: None, size: Some(4) };
            assert!(matches!(
                hasher.verify(&short),
                Err(StorageError::SizeMismatch { expected: 4, actual: 5 })
            ));
        }
    }

    #[test]
    fn a_stream_not_hashed_in_the_declared_algorithm_never_passes() {
        let mut hasher = ContentHasher::new(None);
        hasher.update(b"bytes");
        let sha1 =
            Expectation { checksum: Some(Checksum::of(ChecksumAlgorithm::Sha1, b"bytes")), size: None };
        assert!(matches!(hasher.verify(&sha1), Err(StorageError::NotHashedIn("sha1"))));
    }
}
