//! Access token secrets: `dpp_<id>_<random>`. The `dpp_` prefix lets secret scanners find leaked
//! ones; the id (not secret: it is also in every JWT issued for the token) finds the record; the
//! whole secret is checked against the stored SHA-256 in constant time. Secrets are 256-bit random,
//! so a fast hash is enough (nothing to brute-force).

use base64::Engine as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

/// What every secret starts with.
pub const SECRET_PREFIX: &str = "dpp_";

/// A new token's id and secret.
pub struct NewSecret {
    pub id: String,
    pub secret: String,
}

impl NewSecret {
    pub fn generate() -> Self {
        let id = hex::encode(rand::random::<[u8; 8]>());
        let random = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        NewSecret { secret: format!("{SECRET_PREFIX}{id}_{random}"), id }
    }
}

/// The hex SHA-256 stored for a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// The token id a secret names, if it has our shape.
pub fn id_of_secret(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(SECRET_PREFIX)?;
    let (id, random) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !random.is_empty()).then_some(id)
}

/// The stored hex SHA-256 as bytes (`None`: not a hash we wrote, which no secret matches).
pub fn stored_digest(stored: &str) -> Option<[u8; 32]> {
    hex::decode(stored).ok()?.try_into().ok()
}

/// Whether `secret` hashes to the stored hash (decoded once, so no hex text on the hit path),
/// compared in constant time.
pub fn secret_matches_digest(secret: &str, stored: &Option<[u8; 32]>) -> bool {
    match stored {
        Some(stored) => sha2::Sha256::digest(secret.as_bytes()).as_slice().ct_eq(stored.as_slice()).into(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_a_findable_shape_and_verify_by_hash() {
        let new = NewSecret::generate();
        assert!(new.secret.starts_with("dpp_"));
        assert_eq!(id_of_secret(&new.secret), Some(new.id.as_str()));
        let stored = hash_secret(&new.secret);
        let digest = stored_digest(&stored);
        assert!(secret_matches_digest(&new.secret, &digest));
        assert!(!secret_matches_digest(&format!("{}x", new.secret), &digest));
        assert!(!secret_matches_digest(&new.secret, &stored_digest("not hex")));
        assert_ne!(NewSecret::generate().secret, new.secret);
        for foreign in ["hunter2", "dpp_", "dpp_nothex0000000000_x", "dpp_0123456789abcdef_", "ghp_abc"] {
            assert_eq!(id_of_secret(foreign), None, "{foreign}");
        }
    }
}
