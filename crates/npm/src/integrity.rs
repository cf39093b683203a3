//! The checksums a packument publishes for a tarball: `dist.integrity` (Subresource Integrity,
//! `sha512-<base64>`) and the older `dist.shasum` (sha1 hex), turned into one algorithm + hex pair a
//! download can be verified against.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A hash algorithm npm documents publish. sha384 (valid SRI) is not listed: npm never writes it,
/// and an SRI string that only has algorithms we do not know yields no checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name as SRI writes it (`sha512`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    fn from_sri(name: &str) -> Option<Algorithm> {
        match name {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// A checksum a document publishes for a file.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct PublishedChecksum {
    pub algorithm: Algorithm,
    /// Lowercase hex.
    pub hex: String,
}

impl PublishedChecksum {
    /// The checksum of a `dist` object: the strongest usable `integrity` entry, else `shasum`.
    pub fn from_dist(integrity: Option<&str>, shasum: Option<&str>) -> Option<PublishedChecksum> {
        integrity.and_then(parse_integrity).or_else(|| shasum.and_then(parse_shasum))
    }

    /// The SRI form (`sha512-<base64>`).
    pub fn to_sri(&self) -> Option<String> {
        let bytes = hex::decode(&self.hex).ok()?;
        Some(format!(
            "{}-{}",
            self.algorithm.as_str(),
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
    }
}

/// Parses an SRI string (`sha512-<base64>`, possibly several space-separated entries, each possibly
/// with `?options`) and keeps the strongest entry we support (sha512 > sha256 > sha1). Entries that
/// are malformed or of another algorithm are skipped, as SRI says.
pub fn parse_integrity(sri: &str) -> Option<PublishedChecksum> {
    sri.split_ascii_whitespace()
        .filter_map(|entry| {
            let (algorithm, rest) = entry.split_once('-')?;
            let algorithm = Algorithm::from_sri(algorithm)?;
            let encoded = rest.split_once('?').map_or(rest, |(value, _options)| value);
            let bytes = decode_base64(encoded)?;
            (bytes.len() == algorithm.digest_len())
                .then(|| PublishedChecksum { algorithm, hex: hex::encode(bytes) })
        })
        .max_by_key(|checksum| checksum.algorithm)
}

/// Standard base64 as SRI writes it; url-safe and unpadded forms are accepted too, since some
/// registries write them.
fn decode_base64(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())
}

/// Parses `dist.shasum`: 40 hex digits of sha1, any case.
pub fn parse_shasum(shasum: &str) -> Option<PublishedChecksum> {
    let shasum = shasum.trim();
    (shasum.len() == 40 && shasum.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| PublishedChecksum { algorithm: Algorithm::Sha1, hex: shasum.to_ascii_lowercase() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // sha512 and sha1 of the bytes "hello\n".
    const SHA512_B64: &str =
        "58IrmUxZ2c8rSOVJseJGZmNgRZMNPafBrLKZ0cO3+TH5Sq5B7dosKyB6NuEPi8uNRSI+VIePWzFufOO2vAGWKQ==";
    const SHA512_HEX: &str = "e7c22b994c59d9cf2b48e549b1e24666636045930d3da7c1acb299d1c3b7f931f94aae41edda2c2b207a36e10f8bcb8d45223e54878f5b316e7ce3b6bc019629";
    const SHA1_HEX: &str = "f572d396fae9206628714fb2ce00f72e94f2258f";

    #[test]
    fn sri_sha512() {
        let checksum = parse_integrity(&format!("sha512-{SHA512_B64}")).unwrap();
        assert_eq!(checksum.algorithm, Algorithm::Sha512);
        assert_eq!(checksum.hex.len(), 128);
        assert_eq!(checksum.to_sri().unwrap(), format!("sha512-{SHA512_B64}"));
    }

    #[test]
    fn strongest_supported_entry_wins() {
        let sha1_b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(SHA1_HEX).unwrap());
        let sha256_b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let sri = format!("sha1-{sha1_b64} sha384-AAAA sha512-{SHA512_B64}?opt sha256-{sha256_b64}");
        assert_eq!(parse_integrity(&sri).unwrap().algorithm, Algorithm::Sha512);
        let sri = format!("sha1-{sha1_b64}  sha256-{sha256_b64}");
        let checksum = parse_integrity(&sri).unwrap();
        assert_eq!(checksum, PublishedChecksum { algorithm: Algorithm::Sha256, hex: "07".repeat(32) });
        let checksum = parse_integrity(&format!("sha1-{sha1_b64}")).unwrap();
        assert_eq!(checksum.hex, SHA1_HEX);
    }

    #[test]
    fn malformed_entries_are_skipped() {
        assert_eq!(parse_integrity(""), None);
        assert_eq!(parse_integrity("sha384-abcd"), None);
        assert_eq!(parse_integrity("sha512-not*base64"), None);
        // Wrong length for the algorithm.
        assert_eq!(parse_integrity("sha512-AAAA"), None);
        assert_eq!(parse_integrity("md5-AAAAAAAAAAAAAAAAAAAAAA=="), None);
        assert_eq!(parse_integrity("sha512"), None);
    }

    #[test]
    fn shasum_and_fallback() {
        assert_eq!(
            parse_shasum(&SHA1_HEX.to_uppercase()).unwrap(),
            PublishedChecksum { algorithm: Algorithm::Sha1, hex: SHA1_HEX.into() }
        );
        assert_eq!(parse_shasum("abc"), None);
        assert_eq!(parse_shasum(&"g".repeat(40)), None);
        let from_dist = PublishedChecksum::from_dist(Some("sha512-AAAA"), Some(SHA1_HEX)).unwrap();
        assert_eq!(from_dist.algorithm, Algorithm::Sha1);
        let from_dist =
            PublishedChecksum::from_dist(Some(&format!("sha512-{SHA512_B64}")), Some(SHA1_HEX)).unwrap();
        assert_eq!(from_dist.hex, SHA512_HEX);
        assert_eq!(PublishedChecksum::from_dist(None, None), None);
    }

    proptest! {
        #[test]
        fn sri_round_trips(bytes in proptest::collection::vec(any::<u8>(), 64)) {
            let sri = format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(&bytes));
            let checksum = parse_integrity(&sri).unwrap();
            prop_assert_eq!(&checksum.hex, &hex::encode(&bytes));
            prop_assert_eq!(checksum.to_sri(), Some(sri));
        }

        #[test]
        fn never_panics(input in "\\PC{0,100}") {
            let _ = parse_integrity(&input);
            let _ = parse_shasum(&input);
        }
    }
}
