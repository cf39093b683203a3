//! `send-dependency`: attach the client to the object's fill (starting it if needed) and answer.
//! Blobs stream as the bytes arrive (a single `Range` as 206 with just those bytes); manifests are
//! answered once verified, so the client gets the digest header of what it receives (a tag's
//! digest is only known at the end).

use std::sync::Arc;

use std::net::IpAddr;
use std::ops::Range;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method};
use injector::SendDependency;
use oci::ObjectKind;
use tokio::sync::watch;

use crate::fill::{self, Busy, FillState, Finished, Tail};
use crate::ranges;
use crate::respond::{oci_error, served_object_headers, with_headers};
use crate::state::Gateway;

pub(crate) async fn serve(
    gateway: &Arc<Gateway>,
    params: SendDependency,
    method: &Method,
    request: &HeaderMap,
    client: IpAddr,
) -> Response {
    if method == Method::HEAD {
        // The control plane answers HEAD misses itself; a HEAD never starts a fill.
        tracing::error!("control plane sent send-dependency for a HEAD request");
        return oci_error(&oci::OciError::internal("send-dependency for a HEAD request"));
    }
    let kind = params.kind;
    let expected = params.expected_digest.clone();
    if let Some(digest) = &expected {
        // Told to fill it: whatever memory holds under its key is no longer the cache's.
        gateway.small_objects.forget(&injector::storage_key(digest)).await;
    }
    let extra = params.response_headers.clone();
    // A resumed layer download asks for a range: it joins (or starts) the one fill and gets just
    // those bytes, as soon as they are there — never a second full download.
    let ranged = kind == ObjectKind::Blob && ranges::has_range(request);
    let mut state = match fill::join_or_start(gateway, params, client).await {
        Ok(state) => state,
        Err(Busy { retry_after }) => {
            gateway.observability.gateway.fill_refused();
            return oci_error(
                &oci::OciError::new(oci::ErrorCode::Unavailable, "too many downloads running; retry shortly")
                    .with_status(http::StatusCode::SERVICE_UNAVAILABLE)
                    .with_header("Retry-After", retry_after.as_secs().to_string()),
            );
        }
    };
    let mut response = match (kind, fill::started(&mut state).await) {
        (_, FillState::Failed(error)) => return oci_error(&error.to_oci()),
        (_, FillState::Connecting) => return oci_error(&oci::OciError::internal("fill did not start")),
        // A manifest is answered once verified, with the digest of exactly these bytes.
        (ObjectKind::Manifest, _) => match fill::finished(&mut state).await {
            Err(error) => return oci_error(&error.to_oci()),
            Ok(finished) => finished_response(&finished, kind, state, None),
        },
        (ObjectKind::Blob, FillState::Verified(finished) | FillState::Committed(finished)) => {
            let range = if ranged { ranges::requested_range(request, finished.size) } else { Ok(None) };
            match range {
                Ok(range) => finished_response(&finished, kind, state, range),
                Err(ranges::Unsatisfiable) => return oci_error(&ranges::not_satisfiable(finished.size)),
            }
        }
        (ObjectKind::Blob, FillState::Streaming(streaming)) => {
            // Without a known size a range cannot be checked: the whole object is sent.
            let size = streaming.head.content_length;
            let range = match size {
                Some(size) if ranged => match ranges::requested_range(request, size) {
                    Ok(range) => range,
                    Err(ranges::Unsatisfiable) => return oci_error(&ranges::not_satisfiable(size)),
                },
                _ => None,
            };
            let media_type = oci::media::media_type_or_default(kind, streaming.head.content_type.as_deref());
            let mut headers = served_object_headers(expected.as_ref(), &media_type);
            let (status, _) = ranges::status_and_length(&mut headers, range.as_ref(), size);
            let tail = Tail::new(streaming, state, range);
            with_headers(status, headers, Body::from_stream(tail.into_stream()))
        }
    };
    injector::append_headers(response.headers_mut(), &extra);
    response
}

/// The answer from a verified fill: its size and digest are known.
fn finished_response(
    finished: &Finished,
    kind: ObjectKind,
    state: watch::Receiver<FillState>,
    range: Option<Range<u64>>,
) -> Response {
    let media_type = oci::media::media_type_or_default(kind, finished.head.content_type.as_deref());
    let mut headers = served_object_headers(Some(&finished.digest), &media_type);
    let (status, _) = ranges::status_and_length(&mut headers, range.as_ref(), Some(finished.size));
    let tail = Tail::new(finished.streaming.clone(), state, range);
    with_headers(status, headers, Body::from_stream(tail.into_stream()))
}
