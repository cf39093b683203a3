//! Upstream authentication: the scheme is discovered from the `WWW-Authenticate` challenge of
//! `GET /v2/` (never hard-coded), Bearer tokens are fetched from the challenge's realm per
//! repository scope and cached until shortly before they expire.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use telemetry::error_chain;
use tokio::time::Instant;

use crate::error::UpstreamError;
use crate::http::EgressClient;

/// Username and password for an upstream. The password never shows in `Debug` or logs.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, …)", self.username)
    }
}

impl Credentials {
    pub(crate) fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password.expose_secret());
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

/// How an upstream wants to be authenticated, as its challenge says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthScheme {
    /// `GET /v2/` answered 200: no auth.
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl AuthScheme {
    /// Picks the scheme from a 401's `WWW-Authenticate` value(s). Bearer wins over Basic.
    pub(crate) fn from_challenges(values: &[String]) -> Result<AuthScheme, UpstreamError> {
        let challenges: Vec<_> = values.iter().flat_map(|value| oci::parse_challenges(value)).collect();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer
                .param("realm")
                .ok_or_else(|| UpstreamError::Protocol("Bearer challenge without realm".into()))?;
            return Ok(AuthScheme::Bearer {
                realm: realm.to_owned(),
                service: bearer.param("service").map(str::to_owned),
            });
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return Ok(AuthScheme::Basic);
        }
        Err(UpstreamError::Protocol(format!("unsupported auth challenge: {values:?}")))
    }
}

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub header: String,
    pub refresh_at: Instant,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Tokens without `expires_in` last 60 s per the token spec.
const DEFAULT_TOKEN_LIFETIME: u64 = 60;
/// Refresh this long before expiry so a token never dies in flight.
const TOKEN_REFRESH_MARGIN: u64 = 10;
/// A token answer is a small JSON document; a realm that sends more is not a token service.
pub(crate) const MAX_TOKEN_RESPONSE: usize = 64 << 10;

/// Fetches a token for `scope` from the realm — if the upstream's egress rules let the realm be
/// asked (Basic credentials go only to the upstream's own host or a `realm_allow` host).
pub(crate) async fn fetch_token(
    http: &EgressClient,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    credentials: Option<&Credentials>,
    timeout: Duration,
) -> Result<Arc<CachedToken>, UpstreamError> {
    let mut url = url::Url::parse(realm)
        .map_err(|error| UpstreamError::Token(format!("bad realm {realm:?}: {error}")))?;
    http.policy().check_realm(&url, credentials.is_some()).map_err(UpstreamError::Egress)?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        query.append_pair("scope", scope);
    }
    let mut headers = http::HeaderMap::new();
    if let Some(credentials) = credentials {
        let value = http::HeaderValue::from_str(&credentials.basic_header())
            .map_err(|_| UpstreamError::Token("credentials are not a valid header value".into()))?;
        headers.insert(http::header::AUTHORIZATION, value);
    }
    let started = Instant::now();
    let response = tokio::time::timeout(timeout, http.send(http::Method::GET, url.as_str(), headers))
        .await
        .map_err(|_| UpstreamError::Token(format!("token endpoint timed out after {timeout:?}")))?
        .map_err(|error| match error {
            UpstreamError::Egress(refusal) => UpstreamError::Egress(refusal),
            other => UpstreamError::Token(other.to_string()),
        })?;
    let status = response.status();
    if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
        return Err(UpstreamError::Refused {
            status,
            message: "token endpoint refused the credentials".into(),
        });
    }
    if !status.is_success() {
        return Err(UpstreamError::Token(format!("token endpoint answered {status}")));
    }
    let body = tokio::time::timeout(timeout, read_capped(response, MAX_TOKEN_RESPONSE))
        .await
        .map_err(|_| UpstreamError::Token("token body timed out".into()))??;
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|error| UpstreamError::Token(format!("token response is not JSON: {error}")))?;
    let token = parsed
        .token
        .or(parsed.access_token)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| UpstreamError::Token("token response has no token".into()))?;
    let lifetime = parsed.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME);
    let usable = lifetime.saturating_sub(TOKEN_REFRESH_MARGIN).max(lifetime / 2);
    Ok(Arc::new(CachedToken {
        header: format!("Bearer {token}"),
        refresh_at: started + Duration::from_secs(usable),
    }))
}

/// The body, or an error once it grows past `limit` bytes.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, UpstreamError> {
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(UpstreamError::Token(format!("token response is larger than {limit} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|error| UpstreamError::Token(error_chain(&error)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(UpstreamError::Token(format!("token response is larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_hide_the_password() {
        let credentials = Credentials { username: "me".into(), password: "s3cret".into() };
        assert!(!format!("{credentials:?}").contains("s3cret"));
        assert_eq!(credentials.basic_header(), "Basic bWU6czNjcmV0");
    }

    #[test]
    fn scheme_from_challenges() {
        let bearer =
            AuthScheme::from_challenges(&[r#"Bearer realm="https://auth/token",service="reg""#.into()])
                .unwrap();
        assert_eq!(
            bearer,
            AuthScheme::Bearer { realm: "https://auth/token".into(), service: Some("reg".into()) }
        );
        assert_eq!(AuthScheme::from_challenges(&[r#"Basic realm="x""#.into()]).unwrap(), AuthScheme::Basic);
        assert!(AuthScheme::from_challenges(&["Negotiate".into()]).is_err());
        assert!(AuthScheme::from_challenges(&["Bearer service=x".into()]).is_err());
    }
}
