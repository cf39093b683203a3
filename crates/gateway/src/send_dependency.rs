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
use crate::fill::{self, FillState, Tail};
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
        (ObjectKind::Manifest, _) => match fill::finished(&mut state).await {
            Err(error) => return oci_response(&error.to_oci()),
            Ok(finished) => {
                let media_type = finished.head.content_type.clone().unwrap_or_default();
                let mut headers = object_headers(&finished.digest, &media_type);
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(finished.size));
                let tail = Tail::new(finished.streaming.clone(), state);
                with_headers(StatusCode::OK, headers, Body::from_stream(tail.into_stream()))
            }
        },
        (ObjectKind::Blob, FillState::Streaming(streaming)) => {
            let media_type =
                streaming.head.content_type.clone().unwrap_or_else(|| oci::media::OCTET_STREAM.to_owned());
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
        (ObjectKind::Blob, FillState::Committed(finished)) => {
            let media_type =
                finished.head.content_type.clone().unwrap_or_else(|| oci::media::OCTET_STREAM.to_owned());
            let mut headers = object_headers(&finished.digest, &media_type);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(finished.size));
            let tail = Tail::new(finished.streaming.clone(), state);
            with_headers(StatusCode::OK, headers, Body::from_stream(tail.into_stream()))
        }
        (ObjectKind::Blob, FillState::Connecting) => {
            return oci_response(&oci::OciError::internal("fill did not start"));
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
