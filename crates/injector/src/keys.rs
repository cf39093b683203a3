//! Storage keys: where an object with a given digest lives. Content-addressed, so every group
//! shares one copy; the control plane names keys, storage writes and reads them, and both agree
//! because this is the only place that says what a key looks like.

use oci::Digest;

/// Why a string is not a storage key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage key {0:?} is not a content-addressed key")]
pub struct KeyError(pub String);

/// `blobs/sha256/<first 2 hex>/<64 hex>`: manifests and blobs alike.
pub fn storage_key(digest: &Digest) -> String {
    // Built by hand, not with `format!`: this runs on every hit.
    let hex = digest.hex();
    let mut key = String::with_capacity(16 + hex.len());
    key.push_str("blobs/sha256/");
    key.push_str(&hex[..2]);
    key.push('/');
    key.push_str(hex);
    key
}

/// Parses a key produced by [`storage_key`] back into its digest, refusing anything else (so a key
/// can never name a path outside the object tree).
pub fn digest_of_key(key: &str) -> Result<Digest, KeyError> {
    let bad = || KeyError(key.to_owned());
    let rest = key.strip_prefix("blobs/sha256/").ok_or_else(bad)?;
    let (prefix, hex) = rest.split_once('/').ok_or_else(bad)?;
    let digest: Digest = format!("sha256:{hex}").parse().map_err(|_| bad())?;
    if prefix != &digest.hex()[..2] {
        return Err(bad());
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_traversal() {
        let digest = Digest::of(b"abc");
        let key = storage_key(&digest);
        assert!(key.starts_with(&format!("blobs/sha256/{}/", &digest.hex()[..2])));
        assert_eq!(digest_of_key(&key).unwrap(), digest);
        assert!(digest_of_key("blobs/sha256/../../etc/passwd").is_err());
        assert!(digest_of_key(&key.replace("blobs/sha256/", "blobs/sha256/zz")).is_err());
        assert!(digest_of_key(&format!("{key}/x")).is_err());
    }
}
