//! [`Access`]: checks what clients present and issues registry tokens.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use metadata::MetadataError;
use secrecy::ExposeSecret as _;

use crate::credentials::Credentials;
use crate::jwt::{JwtError, JwtKeys, ResourceActions, TokenKind};
use crate::limiter::FailureLimiter;
use crate::tokens::{TokenInfo, TokenRegistry};

/// How tokens are issued and failures limited.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// Lifetime of a registry JWT.
    pub token_ttl: Duration,
    /// Lifetime of a refresh token (offline token), capped by the access token's own expiry.
    pub refresh_token_ttl: Duration,
    /// Failed authentications allowed per client address and minute.
    pub failed_logins_per_minute: u32,
}

/// Who a request is from.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No credentials of ours (or an anonymous registry token).
    Anonymous,
    Token(Arc<TokenInfo>),
}

impl Identity {
    pub fn name(&self) -> &str {
        match self {
            Identity::Anonymous => "anonymous",
            Identity::Token(token) => &token.name,
        }
    }
}

/// Why credentials were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not ours, wrong, revoked or expired: a failed login.
    #[error("credentials not accepted")]
    Rejected,
    /// A registry token of ours past its lifetime: the client fetches a new one (not a failure).
    #[error("registry token expired")]
    Expired,
    /// Too many failed logins from this address.
    #[error("too many failed logins from this address; retry in {}", telemetry::retry_wait(*.0))]
    RateLimited(Duration),
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
}

/// A token endpoint's answer.
#[derive(Debug, Clone)]
pub struct Grant {
    pub token: String,
    pub expires_in: u64,
    /// RFC 3339.
    pub issued_at: String,
    pub refresh_token: Option<String>,
}

pub struct Access {
    tokens: TokenRegistry,
    keys: JwtKeys,
    limiter: FailureLimiter,
    settings: AccessSettings,
    /// Registry tokens already verified, by their text: a client sends the same JWT on every
    /// request of a pull, and checking its signature and claims each time cost a fifth of a hit.
    /// Revocation is still checked on every use (by token id); the lifetime by its `exp`. Hashed
    /// with foldhash's keyed quality hasher: SipHash of a ~400-byte token was a tenth of a hit,
    /// and only tokens that verified are ever stored.
    verified: moka::sync::Cache<String, VerifiedJwt, foldhash::quality::RandomState>,
}

/// What a verified registry token says.
#[derive(Clone)]
struct VerifiedJwt {
    token_id: Option<String>,
    expires_at: u64,
}

impl Access {
    pub fn new(tokens: TokenRegistry, keys: JwtKeys, settings: AccessSettings) -> Self {
        let limiter = FailureLimiter::new(settings.failed_logins_per_minute);
        let verified = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(settings.token_ttl.max(Duration::from_secs(1)))
            .build_with_hasher(foldhash::quality::RandomState::default());
        Access { tokens, keys, limiter, settings, verified }
    }

    pub fn tokens(&self) -> &TokenRegistry {
        &self.tokens
    }

    pub fn limiter(&self) -> &FailureLimiter {
        &self.limiter
    }

    /// Checks credentials from `client`. Past the failure quota, nothing is checked.
    pub async fn authenticate(
        &self,
        credentials: &Credentials,
        client: IpAddr,
    ) -> Result<Identity, AuthError> {
        if let Some(wait) = self.limiter.blocked_for(client) {
            return Err(AuthError::RateLimited(wait));
        }
        let outcome = match credentials {
            Credentials::Basic { password, .. } => {
                match self.tokens.by_secret(password.expose_secret()).await? {
                    Some(token) => Ok(Identity::Token(token)),
                    None => Err(AuthError::Rejected),
                }
            }
            Credentials::Bearer(jwt) => self.identity_of(jwt.expose_secret(), TokenKind::Access).await,
        };
        match outcome {
            Ok(Identity::Token(token)) => {
                self.tokens.note_use_of(&token);
                Ok(Identity::Token(token))
            }
            Err(AuthError::Rejected) => match self.limiter.failed(client) {
                Some(wait) => Err(AuthError::RateLimited(wait)),
                None => Err(AuthError::Rejected),
            },
            other => other,
        }
    }

    /// The identity a refresh token stands for (its access token must still be active).
    pub async fn authenticate_refresh(
        &self,
        refresh_token: &str,
        client: IpAddr,
    ) -> Result<Identity, AuthError> {
        if let Some(wait) = self.limiter.blocked_for(client) {
            return Err(AuthError::RateLimited(wait));
        }
        match self.identity_of(refresh_token, TokenKind::Refresh).await {
            Ok(identity) => Ok(identity),
            Err(AuthError::Rejected | AuthError::Expired) => match self.limiter.failed(client) {
                Some(wait) => Err(AuthError::RateLimited(wait)),
                None => Err(AuthError::Rejected),
            },
            Err(other) => Err(other),
        }
    }

    async fn identity_of(&self, jwt: &str, kind: TokenKind) -> Result<Identity, AuthError> {
        let token_id = match (kind, self.verified.get(jwt)) {
            (TokenKind::Access, Some(verified)) if crate::jwt::unix_now() < verified.expires_at => {
                verified.token_id
            }
            (TokenKind::Access, Some(_)) => return Err(AuthError::Expired),
            _ => {
                let claims = match self.keys.verify(jwt, kind) {
                    Ok(claims) => claims,
                    Err(JwtError::Expired) => return Err(AuthError::Expired),
                    Err(JwtError::Invalid(_) | JwtError::Signing(_)) => return Err(AuthError::Rejected),
                };
                if kind == TokenKind::Access {
                    let verified = VerifiedJwt { token_id: claims.tid.clone(), expires_at: claims.exp };
                    self.verified.insert(jwt.to_owned(), verified);
                }
                claims.tid
            }
        };
        match token_id {
            None => Ok(Identity::Anonymous),
            Some(id) => match self.tokens.active(&id).await? {
                Some(token) => Ok(Identity::Token(token)),
                None => Err(AuthError::Rejected),
            },
        }
    }

    /// A registry token for `identity` with the scopes it was granted; with a refresh token when
    /// asked for (`offline`) and the identity is a token.
    pub fn issue(
        &self,
        identity: &Identity,
        access: Vec<ResourceActions>,
        offline: bool,
    ) -> Result<Grant, JwtError> {
        let token_id = match identity {
            Identity::Anonymous => None,
            Identity::Token(token) => Some(token.id.as_str()),
        };
        let (token, issued) =
            self.keys.sign(TokenKind::Access, identity.name(), token_id, access, self.settings.token_ttl)?;
        let refresh_token = match (identity, offline) {
            (Identity::Token(info), true) => {
                let mut lifetime = self.settings.refresh_token_ttl;
                if let Some(expires_at) = info.expires_at {
                    let left_ms =
                        expires_at.saturating_sub(i64::try_from(issued).unwrap_or(0).saturating_mul(1000));
                    lifetime = lifetime.min(Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)));
                }
                let (refresh, _) =
                    self.keys.sign(TokenKind::Refresh, &info.name, token_id, Vec::new(), lifetime)?;
                Some(refresh)
            }
            _ => None,
        };
        Ok(Grant {
            token,
            expires_in: self.settings.token_ttl.as_secs(),
            issued_at: format_rfc3339(issued),
            refresh_token,
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds.
pub fn format_rfc3339(unix: u64) -> String {
    let (year, month, day) = telemetry::text_log::civil_from_days(unix / 86_400);
    let seconds = unix % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_796_000_000), "2026-11-30T00:53:20Z");
    }
}
