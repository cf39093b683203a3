//! `/v2/token`: the token endpoint of the docker token flow. `GET` with HTTP Basic (any username,
//! an access token as the password; `scope` repeated or space-separated; `offline_token`,
//! `client_id` accepted) as docker, skopeo and podman send it, and the OAuth2 `POST` form
//! (`grant_type=password` or `refresh_token`) as containerd sends it. Without credentials it
//! issues an anonymous token. Scopes the caller may not have are left out of the grant, not an
//! error; a registry token presented here grants at most its own scopes. A wrong secret is a 401,
//! counted against the caller's address and the token it names; credentials not ours (docker's
//! Docker Hub login) are a 401 that is not counted. At most [`access::MAX_SCOPES`] scopes a
//! request, and a token that would be longer than [`access::MAX_JWT_LENGTH`] is not issued
//! (400 for either). Scope names resolve as the pull they are for: with the `ns` parameter our
//! challenge puts in the realm for containerd's mirror form.

use std::collections::HashMap;

use access::{AuthError, Credentials, Grant, Identity, JwtError, ResourceActions, Scope, TooManyScopes};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, Uri};
use oci::{ErrorCode, ImageAddress, OciError};
use secrecy::SecretString;
use serde::Serialize;

use crate::authorize::auth_failure;
use crate::caller::Caller;
use crate::error::ControlError;
use crate::plane::ControlPlane;

/// Token requests are small forms.
pub(crate) const MAX_FORM: usize = 64 * 1024;

/// What the client asked for.
pub struct TokenRequest {
    pub scopes: Vec<Scope>,
    pub offline: bool,
    /// `grant_type=refresh_token`
    pub refresh_token: Option<String>,
    pub credentials: Option<Credentials>,
}

#[derive(Serialize)]
struct TokenAnswer<'a> {
    token: &'a str,
    access_token: &'a str,
    expires_in: u64,
    issued_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

fn pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

fn parse_request(
    method: &Method,
    uri: &Uri,
    body: &[u8],
    caller: Caller,
) -> Result<TokenRequest, ControlError> {
    let mut request = parse_token_request(method, uri.query().unwrap_or(""), body)?;
    if method == Method::GET {
        request.credentials = caller.credentials;
    }
    Ok(request)
}

/// Parses a token request from its query string (without `?`) and, unless `method` is `GET`, its
/// form body. Pure (no I/O), so the fuzz target in `fuzz/` drives it. A `GET` carries its
/// credentials in the `Authorization` header, which the caller adds: here they are `None`.
pub fn parse_token_request(method: &Method, query: &str, body: &[u8]) -> Result<TokenRequest, OciError> {
    let query = pairs(query);
    let truthy = |value: &str| matches!(value, "true" | "1" | "yes");
    let too_many = |error: TooManyScopes| {
        OciError::new(ErrorCode::Unsupported, error.to_string()).with_status(http::StatusCode::BAD_REQUEST)
    };
    if method == Method::GET {
        return Ok(TokenRequest {
            scopes: Scope::parse_all(
                query.iter().filter(|(key, _)| key == "scope").map(|(_, value)| value.as_str()),
            )
            .map_err(too_many)?,
            offline: query.iter().any(|(key, value)| key == "offline_token" && truthy(value)),
            refresh_token: None,
            credentials: None,
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| {
        OciError::new(ErrorCode::Unsupported, "the token form is not UTF-8")
            .with_status(http::StatusCode::BAD_REQUEST)
    })?;
    let form = pairs(text);
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let scopes = Scope::parse_all(
        form.iter().chain(query.iter()).filter(|(key, _)| key == "scope").map(|(_, value)| value.as_str()),
    )
    .map_err(too_many)?;
    let offline = field("access_type").as_deref() == Some("offline");
    match field("grant_type").as_deref() {
        Some("password") => Ok(TokenRequest {
            scopes,
            offline,
            refresh_token: None,
            credentials: Some(Credentials::Basic {
                username: field("username").unwrap_or_default(),
                password: SecretString::from(field("password").unwrap_or_default()),
            }),
        }),
        Some("refresh_token") => Ok(TokenRequest {
            scopes,
            offline: true,
            refresh_token: Some(field("refresh_token").unwrap_or_default()),
            credentials: None,
        }),
        other => Err(OciError::new(
            ErrorCode::Unsupported,
            format!("grant_type {:?} is not supported (password or refresh_token)", other.unwrap_or("")),
        )
        .with_status(http::StatusCode::BAD_REQUEST)),
    }
}

pub(crate) async fn handle(
    control: &ControlPlane,
    method: &Method,
    uri: &Uri,
    body: &[u8],
    caller: Caller,
) -> Result<Response, ControlError> {
    if method != Method::GET && method != Method::POST {
        return Err(OciError::new(ErrorCode::Unsupported, "the token endpoint answers GET and POST").into());
    }
    let address = caller.address;
    let request = parse_request(method, uri, body, caller)?;
    let rejected = || ControlError::LoginRejected;
    // Every refusal reaches the admin API's events; the log gets one line per address and minute.
    let refused = |error: AuthError| {
        if !matches!(error, AuthError::Expired) {
            match control.access.log_denial(address) {
                Some(held_back) => tracing::warn!(target: "depproxy::audit", event = "login_refused",
                    client = %address, reason = %error, held_back, "failed login"),
                None => {
                    tracing::warn!(target: telemetry::events::AUDIT_HELD_BACK_TARGET, event = "login_refused",
                    client = %address, reason = %error, "failed login")
                }
            }
        }
        auth_failure(error, rejected())
    };
    let (identity, refresh_until) = match (&request.refresh_token, &request.credentials) {
        (Some(refresh), _) => {
            let refresh = control.access.authenticate_refresh(refresh, address).await.map_err(refused)?;
            (refresh.identity, Some(refresh.expires_at))
        }
        (None, Some(credentials)) => {
            (control.access.authenticate(credentials, address).await.map_err(refused)?, None)
        }
        (None, None) => (Identity::Anonymous, None),
    };
    let granted = grants(control, &identity, &request.scopes, uri.query(), address);
    let (granted_count, refused_count) = (granted.len(), request.scopes.len() - granted.len());
    let grant = control.access.issue(&identity, granted, request.offline, refresh_until).map_err(
        |error| match error {
            JwtError::TooLong(_) => ControlError::Oci(
                OciError::new(ErrorCode::Unsupported, error.to_string())
                    .with_status(http::StatusCode::BAD_REQUEST),
            ),
            JwtError::Expired | JwtError::Invalid(_) | JwtError::Signing(_) => ControlError::Jwt(error),
        },
    )?;
    // How many scopes, not which: a request may name 32, and the names are the client's to choose.
    tracing::info!(target: "depproxy::audit", event = "token_issued", token = identity.name(), granted = granted_count,
        refused = refused_count, client = %address);
    answer(&grant)
}

/// The scopes `identity` may have from `client`: pulls of repositories whose group lets it pull
/// (resolved with the request's `query`, which carries `ns` for the mirror form), and — for a
/// registry token — that it reaches.
fn grants(
    control: &ControlPlane,
    identity: &Identity,
    scopes: &[Scope],
    query: Option<&str>,
    client: std::net::IpAddr,
) -> Vec<ResourceActions> {
    let mut granted: HashMap<&str, ResourceActions> = HashMap::new();
    for scope in scopes.iter().filter(|scope| scope.is_repository_pull()) {
        let Ok(address) = ImageAddress::parse(&scope.name) else { continue };
        let Ok(resolved) = control.cache.resolve(&address, query) else { continue };
        let group = &resolved.group;
        let allowed = group.access.allows_anonymous(client)
            || matches!(identity, Identity::Token { token, reach }
                if token.may_pull(&group.path) && reach.includes_name(&scope.name));
        if allowed {
            granted.entry(scope.name.as_str()).or_insert_with(|| ResourceActions {
                resource_type: "repository".to_owned(),
                name: scope.name.clone(),
                actions: vec!["pull".to_owned()],
            });
        }
    }
    let mut granted: Vec<ResourceActions> = granted.into_values().collect();
    granted.sort_by(|a, b| a.name.cmp(&b.name));
    granted
}

fn answer(grant: &Grant) -> Result<Response, ControlError> {
    let body = serde_json::to_vec(&TokenAnswer {
        token: &grant.token,
        access_token: &grant.token,
        expires_in: grant.expires_in,
        issued_at: &grant.issued_at,
        refresh_token: grant.refresh_token.as_deref(),
    })
    .map_err(ControlError::EncodeAnswer)?;
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // A token is a credential: never stored by a cache on the way.
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
