//! Who is asking, and the signature on what we answer. Every control-plane request must carry the
//! gateway's one-time internal token, signed for this method, path and query, for the right
//! purpose — a forwarded client request, or an upload call the gateway makes on its own behalf — and
//! never seen before. The injector we answer with is signed for that request, so the gateway can
//! tell it came from us and answers this very request.

use axum::extract::Request;
use axum::response::Response;
use http::HeaderValue;
use injector::{
    INTERNAL_TOKEN_HEADER, Purpose, RequestTarget, RequestVerifier, SEND_DATA_HEADER,
    SEND_DATA_SIGNATURE_HEADER, VerifiedRequest,
};

use crate::error::ControlError;

pub(crate) fn internal_request(
    verifier: &RequestVerifier,
    purpose: Purpose,
    request: &Request,
) -> Result<VerifiedRequest, ControlError> {
    let token = request.headers().get(INTERNAL_TOKEN_HEADER).and_then(|value| value.to_str().ok());
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let target = RequestTarget { method: request.method(), path_and_query };
    verifier.verify(token, purpose, target).map_err(ControlError::Unauthenticated)
}

/// Signs the injector in `response`, if any, for the request it answers. A signature that cannot
/// be a header value (it always can: base64url) leaves the injector unsigned, which the gateway
/// refuses: this fails closed.
pub(crate) fn sign_answer(verifier: &RequestVerifier, request: &VerifiedRequest, response: &mut Response) {
    let Some(value) = response.headers().get(SEND_DATA_HEADER) else { return };
    let signature = verifier.sign_answer(request, value.as_bytes());
    if let Ok(signature) = HeaderValue::try_from(signature) {
        response.headers_mut().insert(SEND_DATA_SIGNATURE_HEADER, signature);
    }
}
