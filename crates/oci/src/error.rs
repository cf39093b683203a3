//! The OCI error envelope (`{"errors":[{"code","message","detail"}]}`) and its status codes.
//!
//! Every non-2xx answer depproxy gives a client goes through [`OciError`], so clients that parse
//! the envelope (docker, containerd) always can.

use http::StatusCode;
use serde::Serialize;

/// Error codes of the distribution spec, plus the few non-spec codes registries commonly send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    BlobUnknown,
    DigestInvalid,
    ManifestUnknown,
    ManifestInvalid,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    Toomanyrequests,
    /// Non-spec (distribution's): the reference is not a valid tag.
    TagInvalid,
    /// Non-spec: a `Range` header that cannot be satisfied.
    RangeInvalid,
    /// Non-spec (distribution's): upstream or a dependency is unavailable.
    Unavailable,
    /// Non-spec (distribution's): an internal error.
    Unknown,
}

impl ErrorCode {
    /// The status a registry answers with for this code when nothing more specific applies.
    pub fn default_status(self) -> StatusCode {
        match self {
            ErrorCode::BlobUnknown | ErrorCode::ManifestUnknown | ErrorCode::NameUnknown => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::DigestInvalid
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::TagInvalid => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Toomanyrequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Who caused an error: drives the status class, logging level and metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The client sent something invalid or asked for something that does not exist.
    Client,
    /// The upstream registry failed or refused.
    Upstream,
    /// A fault of ours (storage, database, bug).
    Internal,
}

/// One error as a client sees it: status, spec code, message, optional detail and headers.
#[derive(Debug, Clone, PartialEq)]
pub struct OciError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// Extra response headers (e.g. `Retry-After` from an upstream 429).
    pub headers: Vec<(String, String)>,
}

impl OciError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OciError {
            status: code.default_status(),
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn class(&self) -> ErrorClass {
        match self.status.as_u16() {
            502..=504 => ErrorClass::Upstream,
            500..=599 => ErrorClass::Internal,
            _ if self.code == ErrorCode::Toomanyrequests => ErrorClass::Upstream,
            _ => ErrorClass::Client,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        OciError::new(ErrorCode::Unknown, message)
    }

    /// The JSON body of the envelope.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Entry<'a> {
            code: ErrorCode,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: Option<&'a serde_json::Value>,
        }
        #[derive(Serialize)]
        struct Envelope<'a> {
            errors: [Entry<'a>; 1],
        }
        let envelope = Envelope {
            errors: [Entry { code: self.code, message: &self.message, detail: self.detail.as_ref() }],
        };
        // Serialising plain strings and an already-valid JSON value cannot fail.
        serde_json::to_vec(&envelope).unwrap_or_else(|_| b"{\"errors\":[]}".to_vec())
    }
}

impl OciError {
    /// The complete HTTP answer: status, JSON envelope, content type, extra headers.
    pub fn to_http_response(&self) -> http::Response<Vec<u8>> {
        let mut response = http::Response::new(self.body());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        headers.insert(crate::API_VERSION_HEADER, http::HeaderValue::from_static(crate::API_VERSION));
        crate::response::append_header_pairs(headers, &self.headers);
        response
    }
}

impl std::fmt::Display for OciError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for OciError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_spec_shape() {
        let error = OciError::new(ErrorCode::BlobUnknown, "blob unknown to registry")
            .with_detail(serde_json::json!({"digest": "sha256:00"}));
        let body: serde_json::Value = serde_json::from_slice(&error.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry", "detail": {"digest": "sha256:00"}}]})
        );
        assert_eq!(error.status, StatusCode::NOT_FOUND);
        assert_eq!(error.class(), ErrorClass::Client);
    }

    #[test]
    fn classes_follow_status() {
        assert_eq!(
            OciError::new(ErrorCode::Unavailable, "x").with_status(StatusCode::BAD_GATEWAY).class(),
            ErrorClass::Upstream
        );
        assert_eq!(OciError::internal("x").class(), ErrorClass::Internal);
        assert_eq!(OciError::new(ErrorCode::Toomanyrequests, "x").class(), ErrorClass::Upstream);
    }
}
