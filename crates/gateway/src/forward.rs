//! The request path: forward to the control plane, then execute its injector or relay its answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use injector::{INTERNAL_TOKEN_HEADER, Injector, Purpose, SEND_DATA_HEADER};
use oci::{ErrorCode, OciError};

use crate::Gateway;
use crate::error::GatewayError;

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

pub(crate) async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let error = OciError::new(
            ErrorCode::Unsupported,
            format!("{method} is not supported: depproxy is a pull-through cache (pull only)"),
        );
        return oci_response(&error);
    }
    let client_headers = request.headers().clone();
    let path = request.uri().path().to_owned();
    let metrics = &gateway.observability.gateway;
    match decide(&gateway, request).await {
        Ok(Decision::Relay(response)) => {
            metrics.decided("relay");
            response
        }
        Ok(Decision::Execute(Injector::SendBlob(params))) => {
            metrics.decided("hit");
            crate::send_blob::serve(&gateway.store, &gateway.small_objects, &params, &method, &client_headers)
                .await
        }
        Ok(Decision::Execute(Injector::SendDependency(params))) => {
            metrics.decided("miss");
            crate::send_dependency::serve(&gateway, params, &method).await
        }
        Err(error) => {
            tracing::error!(%method, %path, %error, "gateway error");
            oci_response(&error.to_oci())
        }
    }
}

enum Decision {
    Relay(Response),
    Execute(Injector),
}

/// Asks the control plane about a client request.
async fn decide(gateway: &Gateway, request: Request) -> Result<Decision, GatewayError> {
    let (parts, _) = request.into_parts();
    let mut forwarded = Request::new(Body::empty());
    *forwarded.method_mut() = parts.method;
    *forwarded.uri_mut() = parts.uri;
    *forwarded.headers_mut() = forwardable_headers(&parts.headers);
    let token = HeaderValue::try_from(gateway.signer.sign(Purpose::Forward)?)
        .map_err(|_| GatewayError::ControlUnreachable("token is not a header value".into()))?;
    forwarded.headers_mut().insert(INTERNAL_TOKEN_HEADER, token);
    let mut response = gateway.control.call(forwarded).await?;
    // The header is acted on only when the control plane sent it on a 200, and never reaches a client.
    let send_data = response.headers_mut().remove(SEND_DATA_HEADER);
    match send_data {
        Some(value) if response.status() == StatusCode::OK => {
            let text = value.to_str().map_err(|_| injector::InjectorError::MissingKind)?;
            Ok(Decision::Execute(Injector::decode(text)?))
        }
        _ => Ok(Decision::Relay(response)),
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

pub(crate) fn oci_response(error: &OciError) -> Response {
    error.to_http_response().map(Body::from)
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
