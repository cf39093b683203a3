//! `send-dependency`: attach the client to the object's fill (starting it if needed) and answer
//! as the injector's `delivery` says: as the bytes arrive (a single `Range` as 206 with just those
//! bytes), or once verified, so the client gets the digest header of what it receives (a
//! document fetched by a mutable name has its digest known only at the end). A held fill answers
//! nothing before its admission verdict: then the verified bytes, or the refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::net::IpAddr;
use std::ops::Range;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method};
use injector::{Delivery, SendDependency};
use oci::Digest;
use tokio::sync::watch;

use crate::access_log::ServedBy;
use crate::fill::{self, Busy, FillState, Finished, Tail};
use crate::ranges;
use crate::respond::{error_in, served_object_headers, with_headers};
use crate::state::Gateway;

/// The listener's mark on a request (in its extensions): set once the answer comes from a fill —
/// the request waits for a fill slot in the queue, then for the fill's first bytes — which its own
/// timers bound (`fill_queue_timeout`, the upstream timeouts). The listener's request timeout, for
/// what the proxy answers itself or from the control plane, then no longer applies.
#[derive(Debug, Clone, Default)]
pub struct AnswerFromFill(Arc<AtomicBool>);

impl AnswerFromFill {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_marked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

pub(crate) async fn serve(
    gateway: &Arc<Gateway>,
    params: Box<SendDependency>,
    method: &Method,
    request: &HeaderMap,
    client: IpAddr,
    asked_at: std::time::Instant,
) -> Response {
    let shape = params.errors;
    let oci_error = |error: &oci::OciError| error_in(shape, error);
    if method == Method::HEAD {
        // The control plane answers HEAD misses itself; a HEAD never starts a fill.
        tracing::error!("control plane sent send-dependency for a HEAD request");
        return oci_error(&oci::OciError::internal("send-dependency for a HEAD request"));
    }
    let delivery = params.delivery;
    let held = params.hold.is_some();
    let expected = params.verify.as_ref().and_then(injector::Checksum::as_digest);
    if let Some(digest) = &expected {
        // Told to fill it: whatever memory holds under its key is no longer the cache's.
        gateway.small_objects.forget(&injector::storage_key(digest)).await;
    }
    let extra = params.response_headers.clone();
    let transform = params.transform.clone();
    let served = Served {
        digest_header: params.digest_header.clone(),
        default_media_type: params.default_media_type.clone(),
    };
    // A resumed layer download asks for a range: it joins (or starts) the one fill and gets just
    // those bytes, as soon as they are there — never a second full download. A rewritten
    // document has no known length, hence no range.
    let ranged = delivery == Delivery::Streamed && transform.is_empty() && ranges::has_range(request);
    // Fills are admitted per client: the address the control plane resolved through trusted
    // proxies, not the connection's peer (behind an ingress, every client's peer is the ingress).
    let client = params.client.unwrap_or(client);
    // What a fill of this key stored after this request was put to the control plane is what
    // the request would fetch: a document by a mutable name too (a fill committed before the
    // request was asked is not used: the control plane saw it and wants it fetched again).
    if !held && let Some(response) = Box::pin(just_stored(gateway, &params, method, request, asked_at)).await
    {
        return response;
    }
    let mut state = match fill::join_or_start(gateway, *params, client).await {
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
    // The answer, the digest of the bytes it serves when known, and the upstream they come from.
    let (mut response, digest, source) = match (delivery, fill::started(&mut state).await) {
        (_, FillState::Failed(error)) => return oci_error(&error.to_oci()),
        (_, FillState::Connecting) => return oci_error(&oci::OciError::internal("fill did not start")),
        (Delivery::Streamed, FillState::Streaming(streaming)) if !held => {
            // Without a known size a range cannot be checked: the whole object is sent.
            let size = streaming.head.content_length;
            let range = match size {
                Some(size) if ranged => match ranges::requested_range(request, size) {
                    Ok(range) => range,
                    Err(ranges::Unsatisfiable) => return oci_error(&ranges::not_satisfiable(size)),
                },
                _ => None,
            };
            let media_type = streaming.head.media_type(&served.default_media_type);
            let mut headers = served_object_headers(expected.as_ref(), &media_type, served.digest_header());
            let (status, _) = ranges::status_and_length(&mut headers, range.as_ref(), size);
            let source = streaming.source.clone();
            let tail = Tail::new(streaming, state, range);
            (with_headers(status, headers, Body::from_stream(tail.into_stream())), expected, source)
        }
        // Verified delivery, a held fill, or a fill that is verified already: the whole answer
        // from the verified bytes (a range of them, when asked for and honoured).
        (Delivery::Verified | Delivery::Streamed, _) => match fill::finished(&mut state).await {
            Err(error) => return oci_error(&error.to_oci()),
            Ok(finished) => {
                let range = if ranged { ranges::requested_range(request, finished.size) } else { Ok(None) };
                match range {
                    Ok(range) => (
                        finished_response(&finished, &served, state, range),
                        Some(finished.digest.clone()),
                        finished.streaming.source.clone(),
                    ),
                    Err(ranges::Unsatisfiable) => return oci_error(&ranges::not_satisfiable(finished.size)),
                }
            }
        },
    };
    injector::append_headers(response.headers_mut(), &extra);
    response.extensions_mut().insert(ServedBy(source));
    if transform.is_empty() { response } else { rewritten(response, &transform, digest.as_ref()) }
}

/// The object a fill of this key stored after this request was put to the control plane, served
/// from storage: the control plane answered "fetch" while that fill was finishing (it looked
/// before the record was there). A fill committed before the request was asked is not: the
/// control plane saw its record and wants it fetched again (rows removed elsewhere). `None`: the
/// request fills.
async fn just_stored(
    gateway: &Arc<Gateway>,
    params: &SendDependency,
    method: &Method,
    request: &HeaderMap,
    asked_at: std::time::Instant,
) -> Option<Response> {
    let committed = gateway.fills.committed_since(&params.fill_key, asked_at)?;
    let blob = injector::SendBlob {
        v: params.v,
        key: injector::storage_key(&committed.digest),
        digest: committed.digest,
        size: committed.size,
        media_type: committed.media_type,
        headers: params.response_headers.clone(),
        digest_header: params.digest_header.clone(),
        may_redirect: false,
        group: params.group.clone(),
        upstream: committed.source.clone(),
        transform: params.transform.clone(),
    };
    let mut response =
        crate::send_blob::serve(&gateway.store, &gateway.small_objects, &blob, method, request).await.ok()?;
    response.extensions_mut().insert(ServedBy(committed.source));
    Some(response)
}

/// The response with its body rewritten as it streams: its length is unknown until it is sent,
/// and its ETag — when the digest of the bytes is known — names the replacements too.
fn rewritten(response: Response, transform: &[injector::Replace], digest: Option<&Digest>) -> Response {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.remove(http::header::ACCEPT_RANGES);
    if let Some(digest) = digest {
        let etag = crate::rewrite::etag(digest, transform);
        if let Ok(value) = http::HeaderValue::try_from(format!("\"{etag}\"")) {
            parts.headers.insert(http::header::ETAG, value);
        }
    }
    match crate::rewrite::rewritten(body.into_data_stream(), transform) {
        Ok(stream) => Response::from_parts(parts, Body::from_stream(stream)),
        Err(error) => {
            crate::respond::oci_error(&oci::OciError::internal(format!("the injector's transform: {error}")))
        }
    }
}

/// What the injector says about the headers of what a fill serves.
struct Served {
    digest_header: Option<String>,
    default_media_type: String,
}

impl Served {
    fn digest_header(&self) -> Option<&str> {
        self.digest_header.as_deref()
    }
}

/// The answer from a verified fill: its size and digest are known.
fn finished_response(
    finished: &Finished,
    served: &Served,
    state: watch::Receiver<FillState>,
    range: Option<Range<u64>>,
) -> Response {
    let media_type = finished.head.media_type(&served.default_media_type);
    let mut headers = served_object_headers(Some(&finished.digest), &media_type, served.digest_header());
    let (status, _) = ranges::status_and_length(&mut headers, range.as_ref(), Some(finished.size));
    let tail = Tail::new(finished.streaming.clone(), state, range);
    with_headers(status, headers, Body::from_stream(tail.into_stream()))
}
