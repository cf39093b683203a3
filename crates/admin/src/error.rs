//! The admin API's errors, answered as JSON in the OCI error envelope like every other error.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use crate::api::{ErrorEnvelope, ErrorView};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("an admin access token is required (Authorization: Bearer <token>)")]
    Unauthenticated,
    #[error("this token may not use the admin API")]
    NotAdmin,
    #[error("too many failed logins from this address; retry in {}", telemetry::retry_wait(*.0))]
    RateLimited(std::time::Duration),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The request names something that cannot do what is asked (a group without warm schedules).
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<lifecycle::LifecycleError> for AdminError {
    fn from(error: lifecycle::LifecycleError) -> Self {
        match error {
            lifecycle::LifecycleError::UnknownGroup(group) => {
                AdminError::NotFound(format!("no group {group:?}"))
            }
            lifecycle::LifecycleError::Invalid(message) => AdminError::BadRequest(message),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<lifecycle::WarmError> for AdminError {
    fn from(error: lifecycle::WarmError) -> Self {
        match error {
            lifecycle::WarmError::UnknownGroup(_) => AdminError::NotFound(error.to_string()),
            lifecycle::WarmError::NoSchedule(_) => AdminError::Conflict(error.to_string()),
            lifecycle::WarmError::Metadata(error) => AdminError::Internal(error.to_string()),
        }
    }
}

impl From<access::AuthError> for AdminError {
    fn from(error: access::AuthError) -> Self {
        match error {
            access::AuthError::RateLimited(wait) => AdminError::RateLimited(wait),
            access::AuthError::Metadata(error) => AdminError::Internal(error.to_string()),
            access::AuthError::Rejected | access::AuthError::NotOurs | access::AuthError::Expired => {
                AdminError::Unauthenticated
            }
        }
    }
}

impl AdminError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            AdminError::NotAdmin => (StatusCode::FORBIDDEN, "DENIED"),
            AdminError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
            AdminError::BadRequest(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
            AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            AdminError::Conflict(_) => (StatusCode::CONFLICT, "UNSUPPORTED"),
            AdminError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "admin API error");
        }
        // Internal details stay in the log.
        let message = match &self {
            AdminError::Internal(_) => "internal error (see the server log)".to_owned(),
            other => other.to_string(),
        };
        let body = ErrorEnvelope { errors: vec![ErrorView { code: code.to_owned(), message, detail: None }] };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"depproxy-admin\""),
            );
        }
        if let AdminError::RateLimited(wait) = self
            && let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(http::header::RETRY_AFTER, value);
        }
        response
    }
}
