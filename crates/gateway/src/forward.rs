//! Asking the control plane: the client's request (headers only) goes to the control plane,
//! signed; its answer is either an injector to execute or a response to relay as is.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use injector::{
    CLIENT_ADDRESS_HEADER, INTERNAL_TOKEN_HEADER, Injector, Purpose, REFETCH_HEADER, SEND_DATA_HEADER,
};
use oci::Digest;

use crate::error::GatewayError;
use crate::state::Gateway;

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the control plane decided about a client request.
pub(crate) enum ControlAnswer {
    /// Its own answer, for the client as is.
    Relay(Response),
    Execute(Injector),
}

/// The token endpoint's forms are small; nothing else has a body.
const MAX_FORWARDED_BODY: usize = 64 * 1024;

/// A client request as the control plane sees it: method, path, the headers it may see, the
/// client's address, and the body of a token request. Kept, so the gateway can ask again.
pub(crate) struct ClientRequest {
    peer: Option<std::net::IpAddr>,
    method: http::Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
}

impl ClientRequest {
    /// Reads a request; only a token request (`POST /v2/token`) has its body kept.
    pub(crate) async fn read(request: Request, keep_body: bool) -> Result<ClientRequest, GatewayError> {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        let (parts, body) = request.into_parts();
        let body = if keep_body {
            axum::body::to_bytes(body, MAX_FORWARDED_BODY)
                .await
                .map_err(|error| GatewayError::ClientBody(error.to_string()))?
        } else {
            axum::body::Bytes::new()
        };
        let mut headers = forwardable_headers(&parts.headers);
        if let Some(peer) = peer
            && let Ok(value) = HeaderValue::try_from(peer.to_string())
        {
            headers.insert(CLIENT_ADDRESS_HEADER, value);
        }
        Ok(ClientRequest { peer, method: parts.method, uri: parts.uri, headers, body })
    }

    /// The connection's address (unspecified when unknown, e.g. a test calling the router).
    pub(crate) fn peer(&self) -> std::net::IpAddr {
        self.peer.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }
}

/// Asks the control plane about a client request; with `refetch`, asks it to fetch again the
/// object with that digest, which the gateway could not read from storage.
pub(crate) async fn ask_control(
    gateway: &Gateway,
    client: &ClientRequest,
    refetch: Option<&Digest>,
) -> Result<ControlAnswer, GatewayError> {
    let mut forwarded = Request::new(Body::from(client.body.clone()));
    *forwarded.method_mut() = client.method.clone();
    *forwarded.uri_mut() = client.uri.clone();
    *forwarded.headers_mut() = client.headers.clone();
    if let Some(digest) = refetch
        && let Ok(value) = HeaderValue::try_from(digest.to_string())
    {
        forwarded.headers_mut().insert(REFETCH_HEADER, value);
    }
    let token = HeaderValue::try_from(gateway.signer.sign(Purpose::Forward)?)
        .map_err(|_| GatewayError::InvalidHeader(INTERNAL_TOKEN_HEADER))?;
    forwarded.headers_mut().insert(INTERNAL_TOKEN_HEADER, token);
    let mut response = gateway.control.call(forwarded).await?;
    // The header is acted on only when the control plane sent it on a 200, and never reaches a client.
    let send_data = response.headers_mut().remove(SEND_DATA_HEADER);
    match send_data {
        Some(value) if response.status() == StatusCode::OK => {
            Ok(ControlAnswer::Execute(Injector::from_header_value(&value)?))
        }
        _ => Ok(ControlAnswer::Relay(response)),
    }
}

/// The client's headers minus hop-by-hop ones and anything in our internal namespace.
fn forwardable_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if is_forwardable(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

fn is_forwardable(name: &HeaderName) -> bool {
    let name = name.as_str();
    !HOP_BY_HOP.contains(&name) && !name.starts_with("depproxy-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_hop_by_hop_headers_are_not_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/json"));
        headers.insert("connection", HeaderValue::from_static("close"));
        headers.insert("depproxy-send-data", HeaderValue::from_static("send-blob:e30="));
        headers.insert("depproxy-internal-token", HeaderValue::from_static("forged"));
        let kept = forwardable_headers(&headers);
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key("accept"));
    }
}
