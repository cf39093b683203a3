//! Who may call the admin API: a request with an active admin access token, as
//! `Authorization: Bearer <secret>`. Failures count against the admin listener's own limit (per
//! address and token, like registry logins, but apart from them: a flood of wrong registry logins
//! does not lock operators out, nor the other way round).

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
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| access::canonical(peer.ip()));
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
    let token = match access.authenticate_admin(secret, client).await {
        Ok(token) => token,
        Err(error) => {
            let error = AdminError::from(error);
            if !matches!(error, AdminError::Internal(_)) {
                tracing::warn!(target: "depproxy::audit", event = "login_refused", %client, reason = %error,
                    "admin API login refused");
            }
            return Err(error);
        }
    };
    if !token.admin {
        match access.log_denial(client) {
            Some(held_back) => {
                tracing::warn!(target: "depproxy::audit", token = %token.name, %client, held_back,
                "admin API refused: not an admin token")
            }
            None => {
                tracing::warn!(target: telemetry::events::AUDIT_HELD_BACK_TARGET, token = %token.name, %client,
                "admin API refused: not an admin token")
            }
        }
        return Err(AdminError::NotAdmin);
    }
    Ok(Admin { name: token.name.clone() })
}
