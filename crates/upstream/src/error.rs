//! Upstream failures and how each one is answered to a client.

use http::StatusCode;
use oci::{ErrorCode, ObjectKind, OciError};
use telemetry::error_chain;

use crate::egress::{EgressRefusal, refusal_in};

/// Why a call to an upstream registry failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream has no such {kind}", kind = .0.as_str())]
    NotFound(ObjectKind),
    #[error("upstream refused access ({status}): {message}")]
    Refused { status: StatusCode, message: String },
    #[error("upstream rate limit hit (429)")]
    RateLimited { retry_after: Option<String> },
    #[error("upstream answered {status}")]
    Status { status: StatusCode },
    #[error("cannot connect to upstream: {0}")]
    Connect(String),
    #[error("upstream timed out: {0}")]
    Timeout(String),
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    #[error("upstream token endpoint failed: {0}")]
    Token(String),
    /// A redirect or token realm led somewhere upstream traffic may not go.
    #[error("refused to follow the upstream: {0}")]
    Egress(EgressRefusal),
}

impl UpstreamError {
    /// Maps a transport error from reqwest.
    pub fn from_transport(error: &reqwest::Error) -> Self {
        if let Some(refusal) = refusal_in(error) {
            return UpstreamError::Egress(refusal);
        }
        let text = error_chain(error);
        if error.is_timeout() {
            UpstreamError::Timeout(text)
        } else if error.is_connect() {
            UpstreamError::Connect(text)
        } else {
            UpstreamError::Protocol(text)
        }
    }

    /// Maps a non-success upstream status for an object of `kind`.
    pub fn from_status(
        status: StatusCode,
        kind: ObjectKind,
        retry_after: Option<String>,
        message: String,
    ) -> Self {
        match status {
            StatusCode::NOT_FOUND => UpstreamError::NotFound(kind),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UpstreamError::Refused { status, message },
            StatusCode::TOO_MANY_REQUESTS => UpstreamError::RateLimited { retry_after },
            _ => UpstreamError::Status { status },
        }
    }

    /// Whether the upstream is unavailable (as opposed to answering "no"): a cached copy may be
    /// served instead.
    pub fn is_outage(&self) -> bool {
        !matches!(self, UpstreamError::NotFound(_) | UpstreamError::Refused { .. })
    }

    /// The answer a client gets: what failed, in the client's terms. Never URLs, addresses or
    /// transport error chains (they may name internal hosts or presigned URLs): those are in the
    /// error's `Display`, for the log.
    pub fn to_oci(&self) -> OciError {
        match self {
            UpstreamError::NotFound(ObjectKind::Manifest) => {
                OciError::new(ErrorCode::ManifestUnknown, "manifest unknown to upstream registry")
            }
            UpstreamError::NotFound(ObjectKind::Blob) => {
                OciError::new(ErrorCode::BlobUnknown, "blob unknown to upstream registry")
            }
            UpstreamError::Refused { status, message } => OciError::new(
                ErrorCode::Denied,
                match message.as_str() {
                    "" => format!("the upstream registry refused access ({})", status.as_u16()),
                    _ => format!("the upstream registry refused access ({}): {message}", status.as_u16()),
                },
            )
            .with_detail(serde_json::json!({ "upstream_status": status.as_u16() })),
            UpstreamError::RateLimited { retry_after } => {
                let error =
                    OciError::new(ErrorCode::Toomanyrequests, "the upstream registry's rate limit was hit");
                match retry_after {
                    Some(value) => error.with_header("Retry-After", value.clone()),
                    None => error,
                }
            }
            UpstreamError::Status { status } => OciError::new(
                ErrorCode::Unavailable,
                format!("the upstream registry answered {}", status.as_u16()),
            )
            .with_status(StatusCode::BAD_GATEWAY),
            UpstreamError::Connect(_) => {
                OciError::new(ErrorCode::Unavailable, "upstream registry unreachable")
                    .with_status(StatusCode::BAD_GATEWAY)
            }
            UpstreamError::Protocol(_) => OciError::new(
                ErrorCode::Unavailable,
                "the upstream registry sent an answer that cannot be used",
            )
            .with_status(StatusCode::BAD_GATEWAY),
            UpstreamError::Token(_) => OciError::new(
                ErrorCode::Unavailable,
                "could not get a token from the upstream registry's token service",
            )
            .with_status(StatusCode::BAD_GATEWAY),
            UpstreamError::Timeout(_) => OciError::new(ErrorCode::Unavailable, "upstream registry timed out")
                .with_status(StatusCode::GATEWAY_TIMEOUT),
            UpstreamError::Egress(refusal) => OciError::new(
                ErrorCode::Unavailable,
                format!(
                    "the upstream registry sent depproxy where it may not go ({refusal}); \
                     an operator can allow it with {}",
                    refusal.remedy()
                ),
            )
            .with_status(StatusCode::BAD_GATEWAY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_client_answers() {
        let oci = |status: u16| {
            UpstreamError::from_status(
                StatusCode::from_u16(status).unwrap(),
                ObjectKind::Blob,
                Some("7".into()),
                "no".into(),
            )
            .to_oci()
        };
        assert_eq!(oci(404).status, StatusCode::NOT_FOUND);
        assert_eq!(oci(404).code, ErrorCode::BlobUnknown);
        assert_eq!(oci(401).code, ErrorCode::Denied);
        assert!(oci(403).message.contains("upstream registry refused"));
        assert_eq!(oci(429).status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(oci(429).headers, vec![("Retry-After".to_string(), "7".to_string())]);
        assert_eq!(oci(503).status, StatusCode::BAD_GATEWAY);
        assert_eq!(UpstreamError::Timeout("t".into()).to_oci().status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(UpstreamError::Connect("c".into()).to_oci().status, StatusCode::BAD_GATEWAY);
        assert!(UpstreamError::Status { status: StatusCode::BAD_GATEWAY }.is_outage());
        assert!(!UpstreamError::NotFound(ObjectKind::Blob).is_outage());
    }

    #[test]
    fn client_answers_name_no_url_address_or_error_chain() {
        let internal = "error sending request for url (http://10.0.0.7:9000/bucket/x?X-Amz-Signature=abc): \
                        tcp connect error: Connection refused (os error 111)";
        for error in [
            UpstreamError::Connect(internal.into()),
            UpstreamError::Protocol(internal.into()),
            UpstreamError::Token(internal.into()),
            UpstreamError::Timeout(internal.into()),
            UpstreamError::Egress(EgressRefusal::PrivateAddress),
        ] {
            let answer = error.to_oci();
            let body = String::from_utf8(answer.to_http_response().into_body()).unwrap();
            for secret in ["10.0.0.7", "http://", "X-Amz", "os error", "tcp connect"] {
                assert!(!body.contains(secret), "{error:?} answered {body}");
            }
            assert!(error.to_string().contains("10.0.0.7") || matches!(error, UpstreamError::Egress(_)));
        }
        assert!(UpstreamError::Egress(EgressRefusal::Downgrade).to_oci().message.contains("redirect_allow"));
    }
}
