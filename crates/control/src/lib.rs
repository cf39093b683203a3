//! The control plane: decides every request from the metadata database and answers the gateway
//! with an injector (`send-blob` for a hit, `send-dependency` for a miss), a small direct answer
//! (`/v2/`, HEAD of an uncached object) or an OCI error. It records fills at upload
//! authorize/finalize. It never reads or writes object bytes, so no download can block it.
//!
//! Every route requires the gateway's signed internal token.

mod catalog;
mod clock;
mod decide;
mod error;
mod groups;
mod passthrough;
mod single_flight;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{Method, StatusCode};
use injector::{INTERNAL_TOKEN_HEADER, Purpose, RequestVerifier};
use metadata::Metadata;
use oci::{Endpoint, ErrorCode, OciError};

pub use clock::Clock;
pub use error::ControlError;
pub use groups::{DEFAULT_GROUP, GroupSettings, Groups, Resolved, UpstreamRoute};

/// Limits and timings of the control plane's decisions.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    pub max_blob_size: u64,
    pub max_manifest_size: u64,
    /// Longest wait for the HEAD that revalidates a stale tag; past it the cached copy is served.
    pub recheck_timeout: Duration,
    /// How long a fill lease lasts without renewal.
    pub lease_ttl: Duration,
    /// Whether other nodes may fill the same objects (a shared PostgreSQL): then fills are
    /// coordinated by leases. A single node (SQLite) coalesces in its gateway and needs none.
    pub coordinate_fills: bool,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            max_blob_size: 10 << 30,
            max_manifest_size: 4 << 20,
            recheck_timeout: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(30),
            coordinate_fills: false,
        }
    }
}

/// Key of a tag revalidation: group, upstream repository, tag.
type RecheckKey = (String, String, String);

/// Everything a decision needs; shared by all requests.
pub struct ControlPlane {
    catalog: catalog::Catalog,
    groups: Groups,
    settings: ControlSettings,
    verifier: RequestVerifier,
    clock: Clock,
    rechecks: single_flight::SingleFlight<RecheckKey, Result<upstream::ObjectHead, upstream::UpstreamError>>,
}

impl ControlPlane {
    pub fn new(
        metadata: Metadata,
        groups: Groups,
        settings: ControlSettings,
        verifier: RequestVerifier,
        clock: Clock,
    ) -> Arc<Self> {
        Arc::new(ControlPlane {
            catalog: catalog::Catalog::new(metadata),
            groups,
            settings,
            verifier,
            clock,
            rechecks: Default::default(),
        })
    }

    /// The control plane's HTTP surface: one handler, every path parsed by [`oci::parse_v2_path`].
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }
}

/// How long a stale recheck may be skipped by default.
pub const DEFAULT_MANIFEST_RECHECK: Duration = Duration::from_secs(300);

async fn handle(State(control): State<Arc<ControlPlane>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match dispatch(&control, request).await {
        Ok(response) => response,
        Err(error) => {
            let oci = error.to_oci();
            match oci.class() {
                oci::ErrorClass::Internal => tracing::error!(%method, %path, %error, "control plane error"),
                oci::ErrorClass::Upstream => tracing::warn!(%method, %path, %error, "upstream error"),
                oci::ErrorClass::Client => tracing::debug!(%method, %path, %error, "client error"),
            }
            oci_response(&oci)
        }
    }
}

async fn dispatch(control: &ControlPlane, request: Request) -> Result<Response, ControlError> {
    // Authenticate before anything else, so even unknown paths reveal nothing to an outsider.
    // Upload calls are the only POSTs, and the only requests a gateway makes on its own behalf.
    let purpose = if request.method() == Method::POST { Purpose::Upload } else { Purpose::Forward };
    let token = request.headers().get(INTERNAL_TOKEN_HEADER).and_then(|value| value.to_str().ok());
    if let Err(error) = control.verifier.verify(token, purpose) {
        tracing::warn!(%error, path = request.uri().path(), "refused unsigned control-plane request");
        return Err(OciError::new(
            ErrorCode::Denied,
            "this is the control plane; requests must come from a gateway",
        )
        .with_status(StatusCode::FORBIDDEN)
        .into());
    }
    let endpoint = oci::parse_v2_path(request.uri().path())?;
    let method = request.method().clone();
    let query = request.uri().query().map(str::to_owned);
    let head = method == Method::HEAD;
    match (endpoint, &method) {
        (Endpoint::Base, &Method::GET | &Method::HEAD) => Ok(base_response()),
        (Endpoint::Manifest { image, reference }, &Method::GET | &Method::HEAD) => {
            let resolved = control.groups.resolve(&image, query.as_deref())?;
            decide::manifest(control, &resolved, &reference, head, request.uri()).await
        }
        (Endpoint::Blob { image, digest }, &Method::GET | &Method::HEAD) => {
            let resolved = control.groups.resolve(&image, query.as_deref())?;
            decide::blob(control, &resolved, &digest, head, request.uri()).await
        }
        (Endpoint::Upload { image, kind, reference, stage }, &Method::POST) => {
            let resolved = control.groups.resolve(&image, query.as_deref())?;
            upload::handle(control, &resolved, kind, &reference, stage, request.into_body()).await
        }
        (Endpoint::TagsList { image }, &Method::GET | &Method::HEAD) => {
            let resolved = control.groups.resolve(&image, query.as_deref())?;
            passthrough::tags_list(control, &resolved, request.uri()).await
        }
        (Endpoint::Referrers { image, digest }, &Method::GET | &Method::HEAD) => {
            let resolved = control.groups.resolve(&image, query.as_deref())?;
            passthrough::referrers(control, &resolved, &digest, request.uri()).await
        }
        _ => Err(OciError::new(
            ErrorCode::Unsupported,
            format!("{method} is not supported here: depproxy is a pull-through cache"),
        )
        .into()),
    }
}

fn base_response() -> Response {
    let mut response = Response::new(Body::from("{}"));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(oci::API_VERSION_HEADER, http::HeaderValue::from_static(oci::API_VERSION));
    response
}

/// Renders an OCI error as an axum response.
pub fn oci_response(error: &OciError) -> Response {
    error.to_http_response().map(Body::from)
}
