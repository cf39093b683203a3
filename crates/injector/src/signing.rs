//! The shared secret and the short-lived HMAC token (HS256 JWT: issuer, issued-at, purpose) that
//! every gateway→control request carries. The control plane refuses any request without a valid one.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Issuer claim of every token.
pub const ISSUER: &str = "depproxy-gateway";
/// Tokens older than this are refused.
pub const MAX_TOKEN_AGE_SECONDS: u64 = 90;
/// Tolerated clock skew between nodes for tokens issued "in the future".
const CLOCK_SKEW_SECONDS: u64 = 5;

/// The 32-byte secret shared by gateways and control planes.
#[derive(Clone)]
pub struct Secret([u8; 32]);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret must be 32 bytes, given as base64 or 64 hex characters (got {0} bytes after decoding)")]
    WrongLength(usize),
    #[error("secret file content is neither base64 nor hex")]
    Encoding,
}

impl Secret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Secret(bytes)
    }

    /// Parses a secret file's content: base64 (standard or URL-safe) or hex of exactly 32 bytes.
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, SecretError> {
        let text = std::str::from_utf8(contents).map_err(|_| SecretError::Encoding)?.trim();
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| SecretError::Encoding)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
                .map_err(|_| SecretError::Encoding)?
        };
        let bytes: [u8; 32] =
            decoded.as_slice().try_into().map_err(|_| SecretError::WrongLength(decoded.len()))?;
        Ok(Secret(bytes))
    }

    /// The raw key, for building a signing key from it. Never log or print it.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The secret as base64, for writing a secret file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// What a token allows, so a forwarded client request can never be replayed as an upload call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// A client request the gateway forwards for a decision.
    Forward = 0,
    /// An upload authorize/finalize call the gateway makes itself.
    Upload = 1,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    iat: u64,
    exp: u64,
    purpose: Purpose,
}

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("missing internal token")]
    Missing,
    #[error("invalid internal token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("internal token is older than {MAX_TOKEN_AGE_SECONDS} s or issued in the future")]
    Stale,
    #[error("internal token is for {0:?} requests")]
    WrongPurpose(Purpose),
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A token is reused for this long (a third of its validity), so a busy gateway signs about once
/// every half minute instead of on every request.
const TOKEN_REUSE_SECONDS: u64 = MAX_TOKEN_AGE_SECONDS / 3;

/// Signs gateway→control requests.
#[derive(Clone)]
pub struct RequestSigner {
    key: EncodingKey,
    /// The current token per purpose, with its issued-at.
    current: std::sync::Arc<std::sync::Mutex<[Option<IssuedToken>; 2]>>,
}

/// A token and its issued-at (unix seconds).
type IssuedToken = (u64, String);

impl RequestSigner {
    pub fn new(secret: &Secret) -> Self {
        RequestSigner { key: EncodingKey::from_secret(&secret.0), current: Default::default() }
    }

    /// A token for `purpose`, fresh enough to be accepted for at least another minute.
    pub fn sign(&self, purpose: Purpose) -> Result<String, SignatureError> {
        let now = unix_now();
        let slot = purpose as usize;
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((issued, token)) = &current[slot]
            && now.saturating_sub(*issued) < TOKEN_REUSE_SECONDS
        {
            return Ok(token.clone());
        }
        let token = self.sign_at(purpose, now)?;
        current[slot] = Some((now, token.clone()));
        Ok(token)
    }

    fn sign_at(&self, purpose: Purpose, iat: u64) -> Result<String, SignatureError> {
        let claims = Claims { iss: ISSUER.to_owned(), iat, exp: iat + MAX_TOKEN_AGE_SECONDS, purpose };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)?)
    }
}

/// Checks tokens on the control plane.
#[derive(Clone)]
pub struct RequestVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl RequestVerifier {
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["iss", "exp"]);
        validation.leeway = 0;
        RequestVerifier { key: DecodingKey::from_secret(&secret.0), validation }
    }

    /// Verifies `token` and that it was issued for `purpose`.
    pub fn verify(&self, token: Option<&str>, purpose: Purpose) -> Result<(), SignatureError> {
        let token = token.ok_or(SignatureError::Missing)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)?.claims;
        let now = unix_now();
        if claims.iat + MAX_TOKEN_AGE_SECONDS < now || claims.iat > now + CLOCK_SKEW_SECONDS {
            return Err(SignatureError::Stale);
        }
        if claims.purpose != purpose {
            return Err(SignatureError::WrongPurpose(claims.purpose));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install_provider() {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    }

    #[test]
    fn signed_tokens_verify_and_others_do_not() {
        install_provider();
        let secret = Secret::from_bytes([7; 32]);
        let signer = RequestSigner::new(&secret);
        let verifier = RequestVerifier::new(&secret);
        let token = signer.sign(Purpose::Forward).unwrap();
        verifier.verify(Some(&token), Purpose::Forward).unwrap();
        assert!(matches!(
            verifier.verify(Some(&token), Purpose::Upload),
            Err(SignatureError::WrongPurpose(_))
        ));
        assert!(matches!(verifier.verify(None, Purpose::Forward), Err(SignatureError::Missing)));
        let other = RequestSigner::new(&Secret::from_bytes([8; 32])).sign(Purpose::Forward).unwrap();
        assert!(matches!(verifier.verify(Some(&other), Purpose::Forward), Err(SignatureError::Invalid(_))));
        let old = signer.sign_at(Purpose::Forward, unix_now() - 91).unwrap();
        assert!(verifier.verify(Some(&old), Purpose::Forward).is_err());
        let future = signer.sign_at(Purpose::Forward, unix_now() + 60).unwrap();
        assert!(matches!(verifier.verify(Some(&future), Purpose::Forward), Err(SignatureError::Stale)));
    }

    #[test]
    fn secret_file_formats() {
        let secret = Secret::from_bytes([1; 32]);
        let parsed = Secret::from_file_contents(format!("{}\n", secret.to_base64()).as_bytes()).unwrap();
        assert_eq!(parsed.0, [1; 32]);
        assert_eq!(Secret::from_file_contents("01".repeat(32).as_bytes()).unwrap().0, [1; 32]);
        assert!(matches!(Secret::from_file_contents(b"c2hvcnQ="), Err(SecretError::WrongLength(5))));
        assert!(Secret::from_file_contents(b"***").is_err());
    }
}
