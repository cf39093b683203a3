//! Who may call the admin API: a request with an active admin access token, as
//! `Authorization: Bearer <secret>`. Failures count against the same per-address limit as
//! registry logins.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use access::Access;
use axum::extract::ConnectInfo;
use http::request::Parts;

use crate::error::AdminError;

/// An authenticated admin (the token's name, for the audit log).
pub(crate) struct Admin {
    pub name: String,
}

pub(crate) async fn admin(access: &Access, parts: &Parts) -> Result<Admin, AdminError> {
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| peer.ip());
    if let Some(wait) = access.limiter().blocked_for(client) {
        return Err(AdminError::RateLimited(wait));
    }
    // Logged in on the status page (its session cookie, checked by `page::with_page`).
    if let Some(session) = parts.extensions.get::<crate::page::SessionAdmin>() {
        return Ok(Admin { name: session.name.clone() });
    }
    let secret = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .ok_or(AdminError::Unauthenticated)?;
    let token =
        access.tokens().by_secret(secret).await.map_err(|error| AdminError::Internal(error.to_string()))?;
    let Some(token) = token else {
        let (error, reason) = match access.limiter().failed(client) {
            Some(wait) => (AdminError::RateLimited(wait), AdminError::RateLimited(wait).to_string()),
            None => (AdminError::Unauthenticated, "not an active access token".to_owned()),
        };
        tracing::warn!(target: "depproxy::audit", event = "login_refused", %client, reason,
            "admin API login refused");
        return Err(error);
    };
    if !token.admin {
        tracing::warn!(target: "depproxy::audit", token = %token.name, %client, "admin API refused: not an admin token");
        return Err(AdminError::NotAdmin);
    }
    access.tokens().note_use(&token.id);
    Ok(Admin { name: token.name.clone() })
}
