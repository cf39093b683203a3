//! The gateway's public HTTP surface: health, metrics, and every other request — forwarded to the
//! control plane, then answered by executing its injector or relaying its answer.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use http::Method;
use injector::Injector;
use oci::{ErrorCode, OciError};

use crate::access_log::{self, AccessEntry, ServedBy};
use crate::error::GatewayError;
use crate::forward::{ClientRequest, ControlAnswer, ask_control};
use crate::respond::oci_error;
use crate::state::Gateway;
use crate::{send_blob, send_dependency};

impl Gateway {
    /// The public HTTP surface, `/metrics` included.
    pub fn router(self: &Arc<Self>) -> Router {
        self.router_without_metrics().merge(self.metrics_router())
    }

    /// The public HTTP surface without `/metrics`, which is then served by
    /// [`Self::metrics_router`] on a listener of its own.
    pub fn router_without_metrics(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/readyz",
                axum::routing::get(|State(gateway): State<Arc<Gateway>>| async move {
                    crate::health::readyz(&gateway).await
                }),
            )
            .fallback(handle)
            .with_state(self.clone())
    }

    /// `/metrics` alone.
    pub fn metrics_router(self: &Arc<Self>) -> Router {
        Router::new().route("/metrics", axum::routing::get(metrics)).with_state(self.clone())
    }
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> http::Response<String> {
    telemetry::render_registry(gateway.observability.registry.as_deref())
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let method = request.method().clone();
    // A token endpoint takes the OAuth2 form by POST; everything else is a pull.
    let form = method == Method::POST && (gateway.settings.paths.form_posts)(request.uri().path());
    if method != Method::GET && method != Method::HEAD && !form {
        let error = OciError::new(
            ErrorCode::Unsupported,
            format!("{method} is not supported: depproxy is a pull-through cache (pull only)"),
        );
        return oci_error(&error);
    }
    let started = Instant::now();
    let path = request.uri().path().to_owned();
    let mut decided = Decided { decision: "relay", group: String::new(), upstream: String::new() };
    let mut client_address = None;
    let answer = match ClientRequest::read(request, form).await {
        Ok(client) => {
            client_address = Some(client.peer());
            answer(&gateway, &client, &method, client.received_headers(), &mut decided).await
        }
        Err(error) => Err(error),
    };
    let response = answer.unwrap_or_else(|error| {
        tracing::error!(%method, %path, %error, "gateway error");
        error.into_response()
    });
    if !access_log::enabled() {
        return response;
    }
    let status = response.status();
    let Decided { mut decision, group, mut upstream } = decided;
    if decision == "relay" && matches!(status.as_u16(), 401 | 403 | 429) {
        decision = "denied";
    }
    if let Some(ServedBy(source)) = response.extensions().get::<ServedBy>() {
        upstream.clone_from(source);
    }
    let (image, reference) = AccessEntry::describe_path(&path, gateway.settings.paths.describe);
    let entry = AccessEntry {
        client: client_address.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        method,
        image,
        reference,
        group,
        decision,
        upstream,
        status,
        started,
        head_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    access_log::logged(response, entry)
}

/// What the access log says of a request's answer, as far as the injector tells.
struct Decided {
    decision: &'static str,
    group: String,
    /// For a hit, the upstream recorded with the object (a miss's comes with its answer).
    upstream: String,
}

/// Asks the control plane and executes its answer. A hit whose object cannot be read from storage
/// is asked again as a refetch: the client gets the object from upstream instead of an error.
async fn answer(
    gateway: &Arc<Gateway>,
    client: &ClientRequest,
    method: &Method,
    client_headers: &http::HeaderMap,
    decided: &mut Decided,
) -> Result<Response, GatewayError> {
    let Decided { decision, group, upstream } = decided;
    let metrics = &gateway.observability.gateway;
    let asked_at = Instant::now();
    match ask_control(gateway, client, None).await? {
        ControlAnswer::Relay(response) => {
            metrics.decided("relay");
            Ok(response)
        }
        ControlAnswer::Execute(Injector::SendDependency(params)) => {
            *decision = "miss";
            group.clone_from(&params.group);
            metrics.decided("miss");
            client.answered_from_fill();
            // Boxed, here and below: a fill's future is large, and inline it would make every hit's
            // future as large — copied whole each time the router boxes it.
            let fill =
                send_dependency::serve(gateway, params, method, client_headers, client.peer(), asked_at);
            Ok(Box::pin(fill).await)
        }
        ControlAnswer::Execute(Injector::SendBlob(params)) => {
            group.clone_from(&params.group);
            match send_blob::serve(&gateway.store, &gateway.small_objects, &params, method, client_headers)
                .await
            {
                Ok(response) => {
                    *decision = "hit";
                    upstream.clone_from(&params.upstream);
                    metrics.decided("hit");
                    Ok(response)
                }
                Err(unreadable) => {
                    metrics.unreadable_hit();
                    if let Some(held_back) = UNREADABLE.admit() {
                        tracing::warn!(key = %params.key, error = %unreadable, held_back,
                            "cached object unreadable; fetching it from upstream");
                    }
                    // Not a hit: the client gets what the refetch brings (a miss, as a rule).
                    let (refetched, response) =
                        Box::pin(refetch(gateway, client, &params.digest, method, client_headers)).await?;
                    *decision = refetched;
                    metrics.decided(refetched);
                    Ok(response)
                }
            }
        }
    }
}

/// A hit whose stored object could not be read, asked again as a fetch from upstream; with the
/// decision the client's answer comes from.
async fn refetch(
    gateway: &Arc<Gateway>,
    client: &ClientRequest,
    digest: &oci::Digest,
    method: &Method,
    client_headers: &http::HeaderMap,
) -> Result<(&'static str, Response), GatewayError> {
    let asked_at = Instant::now();
    match ask_control(gateway, client, Some(digest)).await? {
        ControlAnswer::Execute(Injector::SendDependency(params)) => {
            client.answered_from_fill();
            let response =
                send_dependency::serve(gateway, params, method, client_headers, client.peer(), asked_at)
                    .await;
            Ok(("miss", response))
        }
        ControlAnswer::Relay(response) => Ok(("relay", response)),
        ControlAnswer::Execute(Injector::SendBlob(_)) => Ok((
            "relay",
            oci_error(
                &OciError::new(ErrorCode::Unavailable, "the cached object cannot be read; retry later")
                    .with_status(http::StatusCode::SERVICE_UNAVAILABLE)
                    .with_header("Retry-After", "5"),
            ),
        )),
    }
}

/// Reports unreadable cached objects once per interval.
static UNREADABLE: telemetry::Throttle = telemetry::Throttle::new(std::time::Duration::from_secs(30));
