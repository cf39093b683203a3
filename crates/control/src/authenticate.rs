//! Who is asking: every control-plane request must carry the gateway's signed internal token, for
//! the right purpose — a forwarded client request, or an upload call the gateway makes on its own
//! behalf — so a forwarded client request can never be replayed as an upload call.

use http::HeaderMap;
use injector::{INTERNAL_TOKEN_HEADER, Purpose, RequestVerifier};

use crate::error::ControlError;

pub(crate) fn internal_request(
    verifier: &RequestVerifier,
    purpose: Purpose,
    headers: &HeaderMap,
) -> Result<(), ControlError> {
    let token = headers.get(INTERNAL_TOKEN_HEADER).and_then(|value| value.to_str().ok());
    verifier.verify(token, purpose).map_err(ControlError::Unauthenticated)
}
