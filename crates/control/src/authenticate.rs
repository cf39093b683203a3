//! Who is asking: every control-plane request must carry the gateway's signed internal token, for
//! the right purpose. Upload calls are the only POSTs, and the only requests a gateway makes on its
//! own behalf, so a forwarded client request can never be replayed as one.

use http::{HeaderMap, Method};
use injector::{INTERNAL_TOKEN_HEADER, Purpose, RequestVerifier};

use crate::error::ControlError;

pub(crate) fn internal_request(
    verifier: &RequestVerifier,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ControlError> {
    let purpose = if method == Method::POST { Purpose::Upload } else { Purpose::Forward };
    let token = headers.get(INTERNAL_TOKEN_HEADER).and_then(|value| value.to_str().ok());
    verifier.verify(token, purpose).map_err(ControlError::Unauthenticated)
}
