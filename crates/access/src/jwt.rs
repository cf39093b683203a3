//! Registry tokens (the docker token flow's JWTs) and refresh tokens: HS256 with a key of their
//! own, shared by every control plane. A JWT names the access token by id (`tid`), never carries
//! its secret, and is checked against the token's current state on every use, so a revocation
//! also ends the JWTs issued before it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// `iss` of every token.
pub const ISSUER: &str = "depproxy";
/// The `service` of our challenges and the `aud` of our tokens.
pub const SERVICE: &str = "depproxy";
/// The name scheduled warming pulls under (in logs and audit lines).
pub const WARMING_SUBJECT: &str = "scheduled-warm";
/// The longest registry token we issue or read: a bearer value longer than this is not ours (it
/// is refused unread), and a token request whose grant would make a longer token is refused.
pub const MAX_JWT_LENGTH: usize = 8 * 1024;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Sent as `Authorization: Bearer` on registry requests.
    Access,
    /// Exchanged at the token endpoint for a new access JWT (`grant_type=refresh_token`).
    Refresh,
}

/// One granted scope, as the token spec's `access` claim lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    pub aud: String,
    /// The access token's name, or `anonymous`.
    pub sub: String,
    /// The access token's id; absent for anonymous tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    pub kind: TokenKind,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<ResourceActions>,
    /// The group a token of scheduled warming may pull from (it names no access token): minted
    /// by a control plane for its own pulls through a gateway, never issued to a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<String>,
}

/// Why a presented JWT is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Ours, but past its `exp`: the client should fetch a new one (not a failed login).
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("cannot sign a token: {0}")]
    Signing(String),
    /// The grant would make a token longer than [`MAX_JWT_LENGTH`].
    #[error(
        "the scopes asked for make a token of {0} bytes, longer than the 8 KiB accepted; ask for fewer or shorter names"
    )]
    TooLong(usize),
}

/// The signing key, shared by every control plane (a file, like the internal secret).
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_secs()).unwrap_or(0)
}

impl JwtKeys {
    pub fn new(key: &injector::Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[SERVICE]);
        validation.set_required_spec_claims(&["iss", "aud", "exp", "nbf"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        JwtKeys {
            encoding: EncodingKey::from_secret(key.expose_bytes()),
            decoding: DecodingKey::from_secret(key.expose_bytes()),
            validation,
        }
    }

    pub(crate) fn sign(
        &self,
        kind: TokenKind,
        subject: &str,
        token_id: Option<&str>,
        access: Vec<ResourceActions>,
        lifetime: Duration,
        not_after: Option<u64>,
    ) -> Result<(String, u64), JwtError> {
        let now = unix_now();
        let expires_at = (now + lifetime.as_secs().max(1)).min(not_after.unwrap_or(u64::MAX));
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: SERVICE.to_owned(),
            sub: subject.to_owned(),
            tid: token_id.map(str::to_owned),
            kind,
            iat: now,
            nbf: now,
            exp: expires_at,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            access,
            warm: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| JwtError::Signing(error.to_string()))?;
        Ok((token, now))
    }

    /// A registry token of scheduled warming for `group` (see [`Claims::warm`]).
    pub(crate) fn sign_warming(&self, group: &str, lifetime: Duration) -> Result<String, JwtError> {
        let now = unix_now();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: SERVICE.to_owned(),
            sub: WARMING_SUBJECT.to_owned(),
            tid: None,
            kind: TokenKind::Access,
            iat: now,
            nbf: now,
            exp: now + lifetime.as_secs().max(1),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            access: Vec::new(),
            warm: Some(group.to_owned()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| JwtError::Signing(error.to_string()))
    }

    pub(crate) fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, JwtError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid(error.to_string()),
            })?
            .claims;
        if claims.kind != kind {
            return Err(JwtError::Invalid(format!(
                "a {:?} token where a {kind:?} token belongs",
                claims.kind
            )));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> JwtKeys {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        JwtKeys::new(&injector::Secret::from_bytes([byte; 32]))
    }

    #[test]
    fn tokens_verify_with_their_key_and_kind_only() {
        let keys = keys(1);
        let access = vec![ResourceActions {
            resource_type: "repository".into(),
            name: "a/b".into(),
            actions: vec!["pull".into()],
        }];
        let (token, _) = keys
            .sign(TokenKind::Access, "ci", Some("0123"), access.clone(), Duration::from_secs(60), None)
            .unwrap();
        let claims = keys.verify(&token, TokenKind::Access).unwrap();
        assert_eq!((claims.sub.as_str(), claims.tid.as_deref()), ("ci", Some("0123")));
        assert_eq!(claims.access, access);
        assert!(!token.contains("dpp_"), "no secret in a JWT");
        assert!(matches!(keys.verify(&token, TokenKind::Refresh), Err(JwtError::Invalid(_))));
        assert!(matches!(
            crate::jwt::tests::keys(2).verify(&token, TokenKind::Access),
            Err(JwtError::Invalid(_))
        ));
        assert!(matches!(keys.verify("not.a.jwt", TokenKind::Access), Err(JwtError::Invalid(_))));
    }

    #[test]
    fn an_expired_token_is_told_apart() {
        let keys = keys(3);
        let claims = Claims {
            iss: ISSUER.into(),
            aud: SERVICE.into(),
            sub: "ci".into(),
            tid: None,
            kind: TokenKind::Access,
            iat: 1,
            nbf: 1,
            exp: 2,
            jti: "j".into(),
            access: Vec::new(),
            warm: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(matches!(keys.verify(&token, TokenKind::Access), Err(JwtError::Expired)));
    }
}
