//! The control plane's error type, its one mapping to the OCI envelope, and its HTTP answer.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use cache::{CacheError, ResolveError};
use http::StatusCode;
use injector::CONTRACT_VERSION;
use oci::{ErrorCode, OciError};

/// What a refusal by a group's admission hook names as its rule (`detail.rule`).
pub(crate) const ADMISSION_RULE: &str = "admission_hook";

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A client-facing answer decided by validation or policy.
    #[error("{0}")]
    Oci(#[from] OciError),
    /// The request's address names no configured group.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A pass-through call to the upstream failed.
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    /// The request did not carry a valid internal token.
    #[error("refused a request without a valid internal token: {0}")]
    Unauthenticated(#[source] injector::SignatureError),
    /// A gateway of another depproxy version: it would misread our injectors.
    #[error(
        "the gateway speaks contract version {gateway}, this control plane {CONTRACT_VERSION}: run the same \
         depproxy version on gateways and control planes"
    )]
    ContractVersion { gateway: String },
    /// Our own injector could not be encoded (a bug).
    #[error("cannot encode the injector: {0}")]
    Injector(#[from] injector::InjectorError),
    /// Our own answer to an upload call could not be encoded (a bug).
    #[error("cannot encode an upload answer: {0}")]
    EncodeAnswer(#[source] serde_json::Error),
    /// The gateway sent an upload call that does not fit the contract.
    #[error("bad upload call: {0}")]
    BadUploadCall(String),
    /// The request needs credentials it did not bring (or brought wrong): 401 with the challenge.
    #[error("authentication required")]
    Unauthorized { challenge: String },
    /// Authenticated, but not allowed.
    #[error("denied: {0}")]
    Denied(String),
    /// Refused by the group's `allow`/`deny` rules; `rule` names the one that refused.
    #[error("refused by policy: {message}")]
    PolicyRefused { message: String, rule: String },
    /// Credentials at the token endpoint were not accepted.
    #[error("login refused")]
    LoginRejected,
    /// Too many failed logins from the caller's address.
    #[error("too many failed logins; retry in {}", telemetry::retry_wait(*.0))]
    TooManyFailures(std::time::Duration),
    /// The token store could not be read.
    #[error("access tokens: {0}")]
    AccessStore(#[source] metadata::MetadataError),
    /// A registry token could not be signed (a bug).
    #[error("registry token: {0}")]
    Jwt(#[source] access::JwtError),
    /// A package file no document of its package lists.
    #[error("{0} is not a file the upstream publishes")]
    NotListed(String),
    /// The upstream has no such package document or file (404 or 410), or had none within the
    /// group's `negative_ttl` (`remembered`).
    #[error("{what} not found upstream{}", remembered.map(|window| format!(" (its 404 is remembered for {})", telemetry::HumanDuration(window))).unwrap_or_default())]
    PackageNotFound { what: String, remembered: Option<std::time::Duration> },
    /// A package request's path is not one its format serves (a bad name, an unknown endpoint).
    #[error("{0}")]
    BadPackageRequest(String),
    /// The error of a package format's request, answered in that format's own shape (npm's
    /// `{"error": …}`, PyPI's plain text) with the status and headers it has everywhere.
    #[error("{error}")]
    InFormat { format: cache::Format, error: Box<ControlError> },
}

impl ControlError {
    pub fn to_oci(&self) -> OciError {
        match self {
            ControlError::Oci(error) => error.clone(),
            ControlError::Resolve(error) => OciError::new(ErrorCode::NameUnknown, error.to_string()),
            ControlError::Cache(CacheError::Upstream(error)) | ControlError::Upstream(error) => {
                error.to_oci()
            }
            ControlError::Cache(error @ CacheError::NotFoundRemembered { kind, .. }) => {
                let code = match kind {
                    oci::ObjectKind::Manifest => ErrorCode::ManifestUnknown,
                    oci::ObjectKind::Blob => ErrorCode::BlobUnknown,
                };
                OciError::new(code, error.to_string())
            }
            // Worded with what was refused where the request is known (`admission::refused_request`);
            // this is the bare refusal.
            ControlError::Cache(CacheError::AdmissionRefused { reason, .. }) => {
                OciError::new(ErrorCode::Denied, format!("refused by the admission hook: {reason}"))
                    .with_detail(serde_json::json!({ "rule": ADMISSION_RULE }))
            }
            ControlError::Cache(CacheError::Metadata(_))
            | ControlError::Injector(_)
            | ControlError::EncodeAnswer(_)
            | ControlError::AccessStore(_)
            | ControlError::Jwt(_) => OciError::internal("internal error in the control plane"),
            ControlError::Unauthorized { challenge } => {
                OciError::new(ErrorCode::Unauthorized, "authentication required")
                    .with_header(http::header::WWW_AUTHENTICATE.as_str(), challenge.clone())
            }
            ControlError::Denied(message) => OciError::new(ErrorCode::Denied, message.clone()),
            ControlError::PolicyRefused { message, rule } => {
                OciError::new(ErrorCode::Denied, message.clone())
                    .with_detail(serde_json::json!({ "rule": rule }))
            }
            ControlError::LoginRejected => {
                OciError::new(ErrorCode::Unauthorized, "the access token was not accepted")
                    .with_header(http::header::WWW_AUTHENTICATE.as_str(), "Basic realm=\"depproxy\"")
            }
            ControlError::TooManyFailures(wait) => {
                OciError::new(ErrorCode::Toomanyrequests, "too many failed logins from this address")
                    .with_header(http::header::RETRY_AFTER.as_str(), wait.as_secs().max(1).to_string())
            }
            // Not the gateway's fault: too many requests this second to remember them all.
            ControlError::Unauthenticated(injector::SignatureError::ReplayCacheFull) => {
                OciError::new(ErrorCode::Unavailable, "the control plane is overloaded; retry shortly")
                    .with_status(StatusCode::SERVICE_UNAVAILABLE)
                    .with_header(http::header::RETRY_AFTER.as_str(), "1")
            }
            ControlError::Unauthenticated(_) => OciError::new(
                ErrorCode::Denied,
                "this is the control plane; requests must come from a gateway",
            )
            .with_status(StatusCode::FORBIDDEN),
            // The gateway relays this to its client: the operator sees what is wrong in both logs.
            ControlError::ContractVersion { .. } => {
                OciError::new(ErrorCode::Unsupported, self.to_string()).with_status(StatusCode::BAD_GATEWAY)
            }
            ControlError::BadUploadCall(message) => {
                OciError::new(ErrorCode::Unsupported, message.clone()).with_status(StatusCode::BAD_REQUEST)
            }
            ControlError::BadPackageRequest(message) => {
                OciError::new(ErrorCode::NameInvalid, message.clone()).with_status(StatusCode::BAD_REQUEST)
            }
            ControlError::NotListed(_) | ControlError::PackageNotFound { .. } => {
                OciError::new(ErrorCode::BlobUnknown, self.to_string())
            }
            ControlError::InFormat { error, .. } => error.to_oci(),
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let oci = self.to_oci();
        let mut response = oci.to_http_response().map(Body::from);
        let ControlError::InFormat { format, .. } = self else { return response };
        let (content_type, body) = match format {
            cache::Format::Oci => return response,
            cache::Format::Npm => ("application/json", npm::error_body(&oci.message)),
            cache::Format::Pypi | cache::Format::Maven | cache::Format::Go => {
                ("text/plain; charset=utf-8", format!("{}\n", oci.message))
            }
            cache::Format::Cargo => ("application/json", cargo_sparse::error_body(&oci.message)),
        };
        *response.body_mut() = Body::from(body);
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status() {
        let status = |error: ControlError| error.to_oci().status;
        assert_eq!(status(ResolveError::NoDefaultGroup.into()), StatusCode::NOT_FOUND);
        assert_eq!(status(ControlError::BadUploadCall("x".into())), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(ControlError::Unauthenticated(injector::SignatureError::Missing)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(injector::InjectorError::NotAHeaderValue.into()),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let timeout = upstream::UpstreamError::Timeout("t".into());
        assert_eq!(status(CacheError::Upstream(timeout.clone()).into()), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(status(timeout.into()), StatusCode::GATEWAY_TIMEOUT);
        let remembered = CacheError::NotFoundRemembered {
            kind: oci::ObjectKind::Manifest,
            window: std::time::Duration::from_secs(60),
        };
        let oci = ControlError::from(remembered).to_oci();
        assert_eq!((oci.status, oci.code), (StatusCode::NOT_FOUND, ErrorCode::ManifestUnknown));
        assert!(oci.message.contains("remembered for 1m"), "{}", oci.message);
        let response = ControlError::BadUploadCall("nope".into()).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[http::header::CONTENT_TYPE], "application/json");
    }
}
