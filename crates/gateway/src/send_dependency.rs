//! `send-dependency`: attach the client to the object's fill (starting it if needed) and answer.
//! Blobs stream as the bytes arrive; manifests are answered once verified, so the client gets the
//! digest header of what it receives (a tag's digest is only known at the end).

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use injector::SendDependency;
use oci::ObjectKind;
use tokio::sync::watch;

use crate::fill::{self, FillState, Finished, Tail};
use crate::respond::{oci_error, served_object_headers, with_headers};
use crate::state::Gateway;

pub(crate) async fn serve(gateway: &Arc<Gateway>, params: SendDependency, method: &Method) -> Response {
    if method == Method::HEAD {
        // The control plane answers HEAD misses itself; a HEAD never starts a fill.
        tracing::error!("control plane sent send-dependency for a HEAD request");
        return oci_error(&oci::OciError::internal("send-dependency for a HEAD request"));
    }
    let kind = params.kind;
    let expected = params.expected_digest.clone();
    let extra = params.response_headers.clone();
    let mut state = fill::join_or_start(gateway, params);
    let mut response = match (kind, fill::started(&mut state).await) {
        (_, FillState::Failed(error)) => return oci_error(&error.to_oci()),
        (_, FillState::Connecting) => return oci_error(&oci::OciError::internal("fill did not start")),
        // A manifest is answered once verified, with the digest of exactly these bytes.
        (ObjectKind::Manifest, _) => match fill::finished(&mut state).await {
            Err(error) => return oci_error(&error.to_oci()),
            Ok(finished) => finished_response(&finished, kind, state),
        },
        (ObjectKind::Blob, FillState::Verified(finished) | FillState::Committed(finished)) => {
            finished_response(&finished, kind, state)
        }
        (ObjectKind::Blob, FillState::Streaming(streaming)) => {
            let media_type = oci::media::media_type_or_default(kind, streaming.head.content_type.as_deref());
            let mut headers = served_object_headers(expected.as_ref(), &media_type);
            if let Some(length) = streaming.head.content_length {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
            let tail = Tail::new(streaming, state);
            with_headers(StatusCode::OK, headers, Body::from_stream(tail.into_stream()))
        }
    };
    injector::append_headers(response.headers_mut(), &extra);
    response
}

/// The answer from a verified fill: its size and digest are known.
fn finished_response(finished: &Finished, kind: ObjectKind, state: watch::Receiver<FillState>) -> Response {
    let media_type = oci::media::media_type_or_default(kind, finished.head.content_type.as_deref());
    let mut headers = served_object_headers(Some(&finished.digest), &media_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(finished.size));
    let tail = Tail::new(finished.streaming.clone(), state);
    with_headers(StatusCode::OK, headers, Body::from_stream(tail.into_stream()))
}
