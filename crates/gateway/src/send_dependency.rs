//! `send-dependency`: attach the client to the object's fill (starting it if needed) and answer.
//! Blobs stream as the bytes arrive; manifests are answered once verified, so the client gets the
//! digest header of what it receives (a tag's digest is only known at the end).

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use injector::SendDependency;
use oci::ObjectKind;

use crate::Gateway;
use tokio::sync::watch;

use crate::fill::{self, FillState, Finished, Tail, UpstreamHead};
use crate::forward::oci_response;
use crate::send_blob::{object_headers, with_headers};

pub(crate) async fn serve(gateway: &Arc<Gateway>, params: SendDependency, method: &Method) -> Response {
    if method == Method::HEAD {
        // The control plane answers HEAD misses itself; a HEAD never starts a fill.
        let error = oci::OciError::internal("send-dependency for a HEAD request");
        tracing::error!("control plane sent send-dependency for a HEAD request");
        return oci_response(&error);
    }
    let kind = params.kind;
    let expected = params.expected_digest.clone();
    let extra = params.response_headers.clone();
    let mut state = fill::join_or_start(gateway, params);
    let response = match (kind, fill::started(&mut state).await) {
        (_, FillState::Failed(error)) => return oci_response(&error.to_oci()),
        (_, FillState::Connecting) => return oci_response(&oci::OciError::internal("fill did not start")),
        // A manifest is answered once verified, with the digest of exactly these bytes.
        (ObjectKind::Manifest, _) => match fill::finished(&mut state).await {
            Err(error) => return oci_response(&error.to_oci()),
            Ok(finished) => finished_response(&finished, kind, state),
        },
        (ObjectKind::Blob, FillState::Verified(finished) | FillState::Committed(finished)) => {
            finished_response(&finished, kind, state)
        }
        (ObjectKind::Blob, FillState::Streaming(streaming)) => {
            let media_type = media_type(&streaming.head, kind);
            let mut headers = match &expected {
                Some(digest) => object_headers(digest, &media_type),
                None => http::HeaderMap::new(),
            };
            if let Some(length) = streaming.head.content_length {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
            let tail = Tail::new(streaming, state);
            with_headers(StatusCode::OK, headers, Body::from_stream(tail.into_stream()))
        }
    };
    let mut response = response;
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) =
            (header::HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// What the client is told the object is: upstream's type, or the generic one for blobs.
fn media_type(head: &UpstreamHead, kind: ObjectKind) -> String {
    match (&head.content_type, kind) {
        (Some(content_type), _) => content_type.clone(),
        (None, ObjectKind::Blob) => oci::media::OCTET_STREAM.to_owned(),
        (None, ObjectKind::Manifest) => String::new(),
    }
}

/// The answer from a verified fill: its size and digest are known.
fn finished_response(finished: &Finished, kind: ObjectKind, state: watch::Receiver<FillState>) -> Response {
    let mut headers = object_headers(&finished.digest, &media_type(&finished.head, kind));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(finished.size));
    let tail = Tail::new(finished.streaming.clone(), state);
    with_headers(StatusCode::OK, headers, Body::from_stream(tail.into_stream()))
}
