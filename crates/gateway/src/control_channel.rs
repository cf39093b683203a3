//! How the gateway reaches the control plane: in process (a `tower::Service`, no socket) in
//! `depproxy serve`, or over HTTP(S) in split mode. The requests and answers are the same either
//! way. Over HTTP every call is signed here, just before it leaves, for the method, path, query
//! and headers the control plane will see and for its body; in process the request is marked
//! [`InProcessCall`] instead — it crosses no network, and a hit should not pay four MACs and a
//! replay-cache insert for nothing (~2 µs, several per cent of a hit at 60 000 req/s).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http::{HeaderValue, Request, Response};
use injector::{
    CONTRACT_VERSION_HEADER, INTERNAL_TOKEN_HEADER, InProcessCall, Purpose, RequestId, RequestSigner,
    RequestTarget,
};
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use crate::error::GatewayError;

/// The control plane's router, called without a socket.
pub type InProcessControl = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// A connection to the control plane.
#[derive(Clone)]
pub enum ControlChannel {
    InProcess(InProcessControl),
    Http {
        client: reqwest::Client,
        base_url: String,
        /// The longest a call may take (the client's default; a call may be given longer).
        request_timeout: Duration,
    },
}

impl ControlChannel {
    /// A channel to a control plane at `base_url` (e.g. `http://10.0.0.5:5100`, or `https://…`).
    /// With `ca_pem`, the control plane's certificate must chain to one of these CA certificates
    /// and to nothing else, and the URL must be `https://`. `request_timeout` bounds a whole
    /// decision, which may include an upstream token fetch and a HEAD.
    pub fn http(
        base_url: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, GatewayError> {
        // Straight to the control plane: an `HTTP_PROXY` in the environment would otherwise see
        // (and, without TLS, read) every decision and the credentials in injectors.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true);
        if let Some(pem) = ca_pem {
            if !base_url.starts_with("https://") {
                return Err(GatewayError::ControlTls(format!(
                    "a control-plane CA is given but {base_url} is not an https:// URL"
                )));
            }
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|error| GatewayError::ControlTls(format!("control-plane CA: {error}")))?;
            if certificates.is_empty() {
                return Err(GatewayError::ControlTls("control-plane CA: no certificate in the file".into()));
            }
            builder = builder.tls_certs_only(certificates).https_only(true);
        }
        let client = builder.build().map_err(|error| GatewayError::ControlUnreachable(error.to_string()))?;
        Ok(ControlChannel::Http {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            request_timeout,
        })
    }

    /// Sends `request` for `purpose` (signed, over HTTP); returns the answer and, over HTTP, the
    /// id of the request, which the answer's injector signature must be bound to. In process
    /// there is no id, and the answer carries no signature.
    pub(crate) async fn call(
        &self,
        signer: &RequestSigner,
        purpose: Purpose,
        request: Request<Bytes>,
    ) -> Result<(Response<Body>, Option<RequestId>), GatewayError> {
        self.call_allowing(signer, purpose, request, Duration::ZERO).await
    }

    /// [`ControlChannel::call`] for a call the control plane may take `longer` to answer than its
    /// request timeout allows (an admission verdict waits for a hook).
    pub(crate) async fn call_allowing(
        &self,
        signer: &RequestSigner,
        purpose: Purpose,
        request: Request<Bytes>,
        longer: Duration,
    ) -> Result<(Response<Body>, Option<RequestId>), GatewayError> {
        let (mut parts, body) = request.into_parts();
        match self {
            ControlChannel::InProcess(service) => {
                parts.extensions.insert(InProcessCall);
                let request = Request::from_parts(parts, Body::from(body));
                let Ok(response) = service.clone().oneshot(request).await;
                Ok((response, None))
            }
            ControlChannel::Http { client, base_url, request_timeout } => {
                let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
                // Signed as the URL will be sent: parsing may normalise the path (e.g. `..`).
                let url = reqwest::Url::parse(&format!("{base_url}{path}"))
                    .map_err(|error| GatewayError::InvalidControlUrl(format!("{base_url}{path}: {error}")))?;
                let sent = match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_owned(),
                };
                let id = sign(signer, purpose, &mut parts, &sent, &body)?;
                parts.headers.insert(CONTRACT_VERSION_HEADER, HeaderValue::from(injector::CONTRACT_VERSION));
                let response = client
                    .request(parts.method, url)
                    .timeout(request_timeout.saturating_add(longer))
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|error| GatewayError::ControlUnreachable(error.to_string()))?;
                let mut relayed = Response::builder().status(response.status());
                if let Some(headers) = relayed.headers_mut() {
                    *headers = response.headers().clone();
                }
                let body = Body::from_stream(response.bytes_stream().map_err(std::io::Error::other));
                let response = relayed
                    .body(body)
                    .map_err(|error| GatewayError::ControlAnswerUnreadable(error.to_string()))?;
                Ok((response, Some(id)))
            }
        }
    }
}

/// Puts a one-time token for this method, path, headers and body on the request.
fn sign(
    signer: &RequestSigner,
    purpose: Purpose,
    parts: &mut http::request::Parts,
    path_and_query: &str,
    body: &[u8],
) -> Result<RequestId, GatewayError> {
    // reqwest sends `Accept: */*` when a request has none: signed as it will be sent.
    if !parts.headers.contains_key(http::header::ACCEPT) {
        parts.headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    }
    let target = RequestTarget { method: &parts.method, path_and_query, headers: &parts.headers };
    let signed = signer.sign(purpose, target, body);
    let token = HeaderValue::try_from(signed.token)
        .map_err(|_| GatewayError::InvalidHeader(INTERNAL_TOKEN_HEADER))?;
    parts.headers.insert(INTERNAL_TOKEN_HEADER, token);
    Ok(signed.id)
}
