//! Asking the control plane: the client's request goes to the control plane (signed, in split
//! mode) with only the headers it needs (an allow-list) and the client's address and host in
//! internal headers; its answer is either an injector to execute — in split mode only if the
//! control plane's signature on it verifies for this request, in process typed, never encoded —
//! or a response to relay as is.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use injector::{
    CLIENT_ADDRESS_HEADER, FORWARDED_HOST_HEADER, Injector, Purpose, REFETCH_HEADER, SEND_DATA_HEADER,
    SEND_DATA_SIGNATURE_HEADER,
};
use oci::Digest;

use crate::error::GatewayError;
use crate::send_dependency::AnswerFromFill;
use crate::state::Gateway;

/// The client headers the control plane sees: what it decides on (`Authorization`), what the
/// upstream calls it makes on the client's behalf may need (`Accept`, `Range`, `If-None-Match`,
/// `User-Agent`), and `X-Forwarded-For` and `X-Forwarded-Proto`, which the control plane believes
/// only when the connection comes from one of its `trusted_proxies` (the gateway passes the
/// connection's address, so it cannot be fooled by a client sending the headers itself). Nothing else: not `Host` (the gateway
/// passes it validated in `Depproxy-Forwarded-Host`), not `Content-Length` (the channel sets its
/// own), no cookies, no hop-by-hop headers.
static FORWARDED: [HeaderName; 7] = [
    http::header::ACCEPT,
    http::header::RANGE,
    http::header::IF_NONE_MATCH,
    http::header::AUTHORIZATION,
    http::header::USER_AGENT,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
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
    /// Every header the client sent: what the gateway itself answers by (Range, If-None-Match, …).
    received: HeaderMap,
    body: Bytes,
    /// The listener's mark, set when the answer is handed to a fill.
    answer_from_fill: Option<AnswerFromFill>,
}

impl ClientRequest {
    /// Reads a request; only a form posted to a token endpoint has its body kept.
    pub(crate) async fn read(request: Request, keep_body: bool) -> Result<ClientRequest, GatewayError> {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        let answer_from_fill = request.extensions().get::<AnswerFromFill>().cloned();
        let (parts, body) = request.into_parts();
        let body = if keep_body {
            axum::body::to_bytes(body, MAX_FORWARDED_BODY)
                .await
                .map_err(|error| GatewayError::ClientBody(error.to_string()))?
        } else {
            Bytes::new()
        };
        let mut headers = forwardable_headers(&parts.headers);
        if let Some(peer) = peer
            && let Ok(value) = HeaderValue::try_from(peer.to_string())
        {
            headers.insert(CLIENT_ADDRESS_HEADER, value);
        }
        if let Some(host) = client_host(&parts) {
            headers.insert(FORWARDED_HOST_HEADER, host);
        }
        Ok(ClientRequest {
            peer,
            method: parts.method,
            uri: parts.uri,
            headers,
            received: parts.headers,
            body,
            answer_from_fill,
        })
    }

    /// Every header the client sent.
    pub(crate) fn received_headers(&self) -> &HeaderMap {
        &self.received
    }

    /// Tells the listener the answer now comes from a fill (see [`AnswerFromFill`]).
    pub(crate) fn answered_from_fill(&self) {
        if let Some(mark) = &self.answer_from_fill {
            mark.mark();
        }
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
    let mut forwarded = http::Request::new(client.body.clone());
    *forwarded.method_mut() = client.method.clone();
    *forwarded.uri_mut() = client.uri.clone();
    *forwarded.headers_mut() = client.headers.clone();
    if let Some(digest) = refetch
        && let Ok(value) = HeaderValue::try_from(digest.to_string())
    {
        forwarded.headers_mut().insert(REFETCH_HEADER, value);
    }
    let (mut response, id) = gateway.control.call(&gateway.signer, Purpose::Forward, forwarded).await?;
    // An injector is acted on only when the control plane sent it on a 200: over HTTP in the
    // header, signed for this request; in process typed, in the response's extensions (it never
    // left memory). The header never reaches a client.
    let send_data = response.headers_mut().remove(SEND_DATA_HEADER);
    let signature = response.headers_mut().remove(SEND_DATA_SIGNATURE_HEADER);
    let typed = response.extensions_mut().remove::<Injector>();
    if response.status() != StatusCode::OK {
        return Ok(ControlAnswer::Relay(response));
    }
    match (id, typed, send_data) {
        (None, Some(injector), _) => Ok(ControlAnswer::Execute(injector)),
        (Some(id), _, Some(value)) => {
            // An injector names upstream URLs and credentials and storage keys: one we did not
            // get from our control plane, for this request, would be SSRF.
            gateway
                .signer
                .verify_answer(&id, value.as_bytes(), signature.as_ref().map(HeaderValue::as_bytes))
                .map_err(GatewayError::ForgedInjector)?;
            Ok(ControlAnswer::Execute(Injector::from_header_value(&value)?))
        }
        _ => Ok(ControlAnswer::Relay(response)),
    }
}

/// The allowed client headers ([`FORWARDED`]), every value of each.
fn forwardable_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(FORWARDED.len());
    for name in &FORWARDED {
        for value in headers.get_all(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// The host the client reached us at (`Host`, or the authority of an HTTP/2 request), if it is
/// a plain `host[:port]`: it ends up in the token realm of a `WWW-Authenticate` header.
fn client_host(parts: &http::request::Parts) -> Option<HeaderValue> {
    let host = match parts.headers.get(http::header::HOST) {
        Some(value) => value.to_str().ok()?,
        None => parts.uri.authority()?.as_str(),
    };
    let authority: http::uri::Authority = host.parse().ok()?;
    let plain = !host.is_empty()
        && !host.contains('@')
        && host.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if !plain || authority.as_str() != host {
        return None;
    }
    HeaderValue::try_from(host).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_headers_are_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/json"));
        headers.append("accept", HeaderValue::from_static("application/vnd.oci.image.index.v1+json"));
        headers.insert("range", HeaderValue::from_static("bytes=0-1"));
        headers.insert("if-none-match", HeaderValue::from_static("\"sha256:00\""));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("user-agent", HeaderValue::from_static("containerd/2.0"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.9"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert("host", HeaderValue::from_static("proxy.example:5000"));
        headers.insert("content-length", HeaderValue::from_static("12"));
        headers.insert("cookie", HeaderValue::from_static("session=1"));
        headers.insert("connection", HeaderValue::from_static("close"));
        headers.insert("depproxy-send-data", HeaderValue::from_static("send-blob:e30="));
        headers.insert("depproxy-internal-token", HeaderValue::from_static("forged"));
        headers.insert("depproxy-forwarded-host", HeaderValue::from_static("evil.example"));
        let kept = forwardable_headers(&headers);
        let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "authorization",
                "if-none-match",
                "range",
                "user-agent",
                "x-forwarded-for",
                "x-forwarded-proto"
            ]
        );
        assert_eq!(kept.get_all("accept").iter().count(), 2, "every value of an allowed header");
    }

    #[test]
    fn the_client_host_is_passed_only_when_it_is_a_plain_authority() {
        let host = |value: &'static str| {
            let request = http::Request::builder().header("host", value).body(()).unwrap();
            client_host(&request.into_parts().0).map(|value| value.to_str().unwrap().to_owned())
        };
        assert_eq!(host("proxy.example:5000").as_deref(), Some("proxy.example:5000"));
        assert_eq!(host("[::1]:5000").as_deref(), Some("[::1]:5000"));
        for bad in ["user@proxy.example", "a\"b", "proxy.example/path", ""] {
            assert_eq!(host(bad), None, "{bad:?}");
        }
        let http2 = http::Request::builder().uri("https://mirror.example/v2/").body(()).unwrap();
        assert_eq!(
            client_host(&http2.into_parts().0).map(|value| value.to_str().unwrap().to_owned()).as_deref(),
            Some("mirror.example")
        );
    }
}
