//! Who is asking, and the signature on what we answer. Every control-plane request must carry the
//! gateway's one-time internal token, signed for this method, path, query and the headers acted
//! on ([`injector::SIGNED_HEADERS`]), for the right
//! purpose — a forwarded client request, or an upload call the gateway makes on its own behalf — and
//! never seen before. The injector we answer with is signed for that request, so the gateway can
//! tell it came from us and answers this very request. A request the gateway of the same process
//! hands over in memory ([`injector::InProcessCall`]) crossed no network: it needs neither.

use axum::extract::Request;
use axum::response::Response;
use http::HeaderValue;
use injector::{
    CONTRACT_VERSION, CONTRACT_VERSION_HEADER, INTERNAL_TOKEN_HEADER, InProcessCall, Injector, Purpose,
    RequestTarget, RequestVerifier, SEND_DATA_HEADER, SEND_DATA_SIGNATURE_HEADER, VerifiedRequest,
};

use crate::error::ControlError;

pub(crate) fn internal_request(
    verifier: &RequestVerifier,
    purpose: Purpose,
    request: &Request,
) -> Result<VerifiedRequest, ControlError> {
    if request.extensions().get::<InProcessCall>().is_some() {
        return Ok(VerifiedRequest::in_process());
    }
    let token = request.headers().get(INTERNAL_TOKEN_HEADER).and_then(|value| value.to_str().ok());
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let target = RequestTarget { method: request.method(), path_and_query, headers: request.headers() };
    let verified = verifier.verify(token, purpose, target).map_err(ControlError::Unauthenticated)?;
    // Checked once the request is known to come from a gateway: outsiders learn nothing of it.
    let version = request.headers().get(CONTRACT_VERSION_HEADER).map(HeaderValue::as_bytes);
    if version != Some(CONTRACT_VERSION.to_string().as_bytes()) {
        let gateway = version
            .map_or_else(|| "1 (or none)".to_owned(), |value| String::from_utf8_lossy(value).into_owned());
        return Err(ControlError::ContractVersion { gateway });
    }
    Ok(verified)
}

/// Puts the injector of `response`, if any, where the gateway reads it. A signed request came over
/// the network: the injector goes into the `Depproxy-Send-Data` header, signed for the request it
/// answers (a signature that cannot be a header value — it always can: base64url — leaves the
/// injector unsigned, which the gateway refuses: this fails closed). An in-process answer keeps
/// the typed injector in the response's extensions: nothing to encode, sign, decode or verify.
pub(crate) fn seal_answer(
    verifier: &RequestVerifier,
    request: &VerifiedRequest,
    response: &mut Response,
) -> Result<(), ControlError> {
    if request.id().is_none() {
        return Ok(());
    }
    let Some(injector) = response.extensions_mut().remove::<Injector>() else { return Ok(()) };
    let value = injector.to_header_value()?;
    let signature = verifier.sign_answer(request, value.as_bytes()).map(HeaderValue::try_from);
    response.headers_mut().insert(SEND_DATA_HEADER, value);
    if let Some(Ok(signature)) = signature {
        response.headers_mut().insert(SEND_DATA_SIGNATURE_HEADER, signature);
    }
    Ok(())
}
