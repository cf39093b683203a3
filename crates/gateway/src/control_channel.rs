//! How the gateway reaches the control plane: in process (a `tower::Service`, no socket) in
//! `depproxy serve`, or over HTTP in split mode. The contract is the same either way.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use futures_util::TryStreamExt as _;
use http::{Request, Response};
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use crate::error::GatewayError;

/// The control plane's router, called without a socket.
pub type InProcessControl = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// A connection to the control plane.
#[derive(Clone)]
pub enum ControlChannel {
    InProcess(InProcessControl),
    Http { client: reqwest::Client, base_url: String },
}

impl ControlChannel {
    /// A channel to a control plane at `base_url` (e.g. `http://10.0.0.5:5100`). `request_timeout`
    /// bounds a whole decision, which may include an upstream token fetch and a HEAD.
    pub fn http(
        base_url: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, GatewayError> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .build()
            .map_err(|error| GatewayError::ControlUnreachable(error.to_string()))?;
        Ok(ControlChannel::Http { client, base_url: base_url.trim_end_matches('/').to_owned() })
    }

    pub async fn call(&self, request: Request<Body>) -> Result<Response<Body>, GatewayError> {
        match self {
            ControlChannel::InProcess(service) => {
                let Ok(response) = service.clone().oneshot(request).await;
                Ok(response)
            }
            ControlChannel::Http { client, base_url } => {
                let (parts, body) = request.into_parts();
                let path = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
                let url = format!("{base_url}{path}");
                let response = client
                    .request(parts.method, url)
                    .headers(parts.headers)
                    .body(reqwest::Body::wrap_stream(body.into_data_stream()))
                    .send()
                    .await
                    .map_err(|error| GatewayError::ControlUnreachable(error.to_string()))?;
                let mut relayed = Response::builder().status(response.status());
                if let Some(headers) = relayed.headers_mut() {
                    *headers = response.headers().clone();
                }
                let body = Body::from_stream(response.bytes_stream().map_err(std::io::Error::other));
                relayed.body(body).map_err(|error| GatewayError::ControlAnswerUnreadable(error.to_string()))
            }
        }
    }
}
