//! What a fill is verified against: the checksum an upstream published for a file (an OCI
//! digest, an npm `integrity`, a wheel's `#sha256=`, a jar's `.sha1`), as an algorithm and a
//! value. The gateway computes it while it stores the bytes under their sha256, so it needs no
//! format's knowledge to verify any of them.

use std::fmt;

use oci::Digest;
use sha1::Digest as _;

/// The algorithms upstreams publish checksums in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    Sha256,
    Sha512,
    /// Maven's `.sha1`, npm's legacy `shasum`: weak, but what those upstreams publish.
    Sha1,
}

impl ChecksumAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha512 => "sha512",
            ChecksumAlgorithm::Sha1 => "sha1",
        }
    }

    /// The algorithm named `name` (`sha256`, `sha512`, `sha1`), as [`Self::as_str`] writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        [ChecksumAlgorithm::Sha256, ChecksumAlgorithm::Sha512, ChecksumAlgorithm::Sha1]
            .into_iter()
            .find(|algorithm| algorithm.as_str() == name)
    }

    /// Length of the digest in bytes.
    pub fn digest_bytes(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha256 => 32,
            ChecksumAlgorithm::Sha512 => 64,
            ChecksumAlgorithm::Sha1 => 20,
        }
    }
}

/// Why a checksum value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("a {algorithm} checksum has {expected} hex digits, not {actual}")]
    Length { algorithm: &'static str, expected: usize, actual: usize },
    #[error("a checksum is lowercase hex")]
    NotHex,
}

/// A checksum: an algorithm and its value, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawChecksum", into = "RawChecksum")]
pub struct Checksum {
    algorithm: ChecksumAlgorithm,
    hex: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecksum {
    algorithm: ChecksumAlgorithm,
    value: String,
}

impl TryFrom<RawChecksum> for Checksum {
    type Error = ChecksumError;

    fn try_from(raw: RawChecksum) -> Result<Self, Self::Error> {
        Checksum::from_hex(raw.algorithm, &raw.value)
    }
}

impl From<Checksum> for RawChecksum {
    fn from(checksum: Checksum) -> Self {
        RawChecksum { algorithm: checksum.algorithm, value: checksum.hex }
    }
}

impl Checksum {
    /// A checksum from its hex value (upper or lower case; kept lowercase).
    pub fn from_hex(algorithm: ChecksumAlgorithm, value: &str) -> Result<Self, ChecksumError> {
        let expected = algorithm.digest_bytes() * 2;
        if value.len() != expected {
            return Err(ChecksumError::Length {
                algorithm: algorithm.as_str(),
                expected,
                actual: value.len(),
            });
        }
        if !value.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(ChecksumError::NotHex);
        }
        Ok(Checksum { algorithm, hex: value.to_ascii_lowercase() })
    }

    /// A checksum from its raw bytes (e.g. decoded from an SRI string's base64).
    pub fn from_bytes(algorithm: ChecksumAlgorithm, bytes: &[u8]) -> Result<Self, ChecksumError> {
        if bytes.len() != algorithm.digest_bytes() {
            return Err(ChecksumError::Length {
                algorithm: algorithm.as_str(),
                expected: algorithm.digest_bytes() * 2,
                actual: bytes.len() * 2,
            });
        }
        Ok(Checksum { algorithm, hex: hex_encode(bytes) })
    }

    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The sha256 digest this checksum is, when it is one: then the storage key is known before
    /// the bytes arrive.
    pub fn as_digest(&self) -> Option<Digest> {
        match self.algorithm {
            ChecksumAlgorithm::Sha256 => format!("sha256:{}", self.hex).parse().ok(),
            ChecksumAlgorithm::Sha512 | ChecksumAlgorithm::Sha1 => None,
        }
    }

    /// The checksum of `bytes` (for tests and small documents).
    pub fn of(algorithm: ChecksumAlgorithm, bytes: &[u8]) -> Self {
        let mut hasher = ChecksumHasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }
}

impl From<&Digest> for Checksum {
    fn from(digest: &Digest) -> Self {
        Checksum { algorithm: ChecksumAlgorithm::Sha256, hex: digest.hex().to_owned() }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Incremental hashing in one of [`ChecksumAlgorithm`]'s algorithms.
#[derive(Clone)]
pub enum ChecksumHasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Sha1(sha1::Sha1),
}

impl ChecksumHasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Sha256 => ChecksumHasher::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Sha512 => ChecksumHasher::Sha512(sha2::Sha512::new()),
            ChecksumAlgorithm::Sha1 => ChecksumHasher::Sha1(sha1::Sha1::new()),
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        match self {
            ChecksumHasher::Sha256(state) => state.update(chunk),
            ChecksumHasher::Sha512(state) => state.update(chunk),
            ChecksumHasher::Sha1(state) => state.update(chunk),
        }
    }

    pub fn finish(self) -> Checksum {
        let (algorithm, bytes) = match self {
            ChecksumHasher::Sha256(state) => (ChecksumAlgorithm::Sha256, state.finalize().to_vec()),
            ChecksumHasher::Sha512(state) => (ChecksumAlgorithm::Sha512, state.finalize().to_vec()),
            ChecksumHasher::Sha1(state) => (ChecksumAlgorithm::Sha1, state.finalize().to_vec()),
        };
        Checksum { algorithm, hex: hex_encode(&bytes) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_of_each_algorithm() {
        assert_eq!(
            Checksum::of(ChecksumAlgorithm::Sha1, b"abc").to_string(),
            "sha1:a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            Checksum::of(ChecksumAlgorithm::Sha256, b"abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Checksum::of(ChecksumAlgorithm::Sha512, b"abc").hex().starts_with("ddaf35a193617aba"));
        let digest = Digest::of(b"abc");
        assert_eq!(Checksum::of(ChecksumAlgorithm::Sha256, b"abc").as_digest(), Some(digest.clone()));
        assert_eq!(Checksum::from(&digest).as_digest(), Some(digest));
        assert_eq!(Checksum::of(ChecksumAlgorithm::Sha1, b"abc").as_digest(), None);
    }

    #[test]
    fn values_are_checked_and_kept_lowercase() {
        let upper = "A9993E364706816ABA3E25717850C26C9CD0D89D";
        let checksum = Checksum::from_hex(ChecksumAlgorithm::Sha1, upper).unwrap();
        assert_eq!(checksum.hex(), upper.to_ascii_lowercase());
        assert!(matches!(
            Checksum::from_hex(ChecksumAlgorithm::Sha512, upper),
            Err(ChecksumError::Length { expected: 128, actual: 40, .. })
        ));
        assert_eq!(Checksum::from_hex(ChecksumAlgorithm::Sha1, &"g".repeat(40)), Err(ChecksumError::NotHex));
        assert!(Checksum::from_bytes(ChecksumAlgorithm::Sha1, &[0; 19]).is_err());
    }

    #[test]
    fn serialises_as_algorithm_and_value_and_refuses_bad_values() {
        let checksum = Checksum::of(ChecksumAlgorithm::Sha1, b"abc");
        let json = serde_json::to_string(&checksum).unwrap();
        assert_eq!(json, r#"{"algorithm":"sha1","value":"a9993e364706816aba3e25717850c26c9cd0d89d"}"#);
        assert_eq!(serde_json::from_str::<Checksum>(&json).unwrap(), checksum);
        assert!(serde_json::from_str::<Checksum>(r#"{"algorithm":"sha1","value":"abc"}"#).is_err());
        assert!(serde_json::from_str::<Checksum>(r#"{"algorithm":"md5","value":"abc"}"#).is_err());
    }
}
