//! `send-blob`: serve a cached object with HEAD, a single `Range` (206/416) and `If-None-Match`
//! (the ETag is the digest: content-addressed, hence strong). A stored object that cannot be read
//! (missing, damaged, storage down) is reported before any byte goes out, so the caller can fetch
//! it again from upstream instead of failing the client.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use injector::SendBlob;
use storage::{BlobStore, StorageError};

use crate::ranges;
use crate::respond::{oci_error, served_object_headers, with_headers};
use crate::small_objects::{LoadError, SmallObjects};

/// Marks a response whose body is read from storage as fast as the client takes it. Its server
/// should hand the connection one chunk at a time: an HTTP/1 connection otherwise keeps taking
/// chunks until its write buffer is full, which for a client reading slowly is memory held for
/// nothing (500 slow readers of a layer: tens of megabytes).
#[derive(Debug, Clone, Copy)]
pub struct ReadAtClientPace;

/// Why a stored object could not be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unreadable {
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Damaged(String),
}

pub(crate) async fn serve(
    store: &BlobStore,
    small_objects: &SmallObjects,
    params: &SendBlob,
    method: &Method,
    request: &HeaderMap,
) -> Result<Response, Unreadable> {
    if !params.transform.is_empty() {
        return Box::pin(serve_rewritten(store, small_objects, params, method, request)).await;
    }
    let mut headers =
        served_object_headers(Some(&params.digest), &params.media_type, params.digest_header.as_deref());
    injector::append_headers(&mut headers, &params.headers);
    if request.contains_key(header::IF_NONE_MATCH) && if_none_match_hits(request, &params.digest.to_string())
        || not_modified_since(request, &headers)
    {
        return Ok(with_headers(StatusCode::NOT_MODIFIED, headers, Body::empty()));
    }
    let range = match ranges::requested_range(request, params.size) {
        Ok(range) => range,
        Err(ranges::Unsatisfiable) => return Ok(oci_error(&ranges::not_satisfiable(params.size))),
    };
    let (status, _) = ranges::status_and_length(&mut headers, range.as_ref(), Some(params.size));
    if method == Method::HEAD {
        return Ok(with_headers(status, headers, Body::empty()));
    }
    // Object storage may serve the bytes itself, when the control plane allows it: what must come
    // with our headers (a manifest) never does.
    if params.may_redirect {
        match store.redirect_url(&params.key).await {
            Ok(Some(url)) => return Ok(redirect(&url)),
            Ok(None) => {}
            Err(error) => tracing::warn!(key = %params.key, %error, "cannot presign; streaming instead"),
        }
    }
    if small_objects.holds(params.size) {
        let bytes =
            small_objects.get(store, &params.key, &params.digest, params.size).await.map_err(|error| {
                match &*error {
                    LoadError::Storage(error) => {
                        Unreadable::Storage(StorageError::Io(std::io::Error::other(error.to_string())))
                    }
                    LoadError::Damaged { .. } => Unreadable::Damaged(error.to_string()),
                }
            })?;
        let body = match range {
            // Validated against `params.size`, which the loaded bytes match.
            Some(range) => bytes.slice(range.start as usize..range.end as usize),
            None => bytes,
        };
        return Ok(with_headers(status, headers, Body::from(body)));
    }
    let reader = store.read(&params.key, range).await?;
    let mut response = with_headers(status, headers, Body::from_stream(reader.stream));
    response.extensions_mut().insert(ReadAtClientPace);
    Ok(response)
}

/// A document served rewritten: its length is not known before it is sent (no `Content-Length`,
/// no `Range`), and its ETag names the replacements as well as the stored bytes.
async fn serve_rewritten(
    store: &BlobStore,
    small_objects: &SmallObjects,
    params: &SendBlob,
    method: &Method,
    request: &HeaderMap,
) -> Result<Response, Unreadable> {
    let etag = crate::rewrite::etag(&params.digest, &params.transform);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::try_from(format!("\"{etag}\"")) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::try_from(params.media_type.as_str()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    injector::append_headers(&mut headers, &params.headers);
    if if_none_match_hits(request, &etag) || not_modified_since(request, &headers) {
        return Ok(with_headers(StatusCode::NOT_MODIFIED, headers, Body::empty()));
    }
    if method == Method::HEAD {
        return Ok(with_headers(StatusCode::OK, headers, Body::empty()));
    }
    let stream: storage::ByteStream = if small_objects.holds(params.size) {
        let bytes = small_objects
            .get(store, &params.key, &params.digest, params.size)
            .await
            .map_err(|error| Unreadable::Damaged(error.to_string()))?;
        Box::pin(futures_util::stream::once(async move { Ok(bytes) }))
    } else {
        store.read(&params.key, None).await?.stream
    };
    let body = crate::rewrite::rewritten(stream, &params.transform)
        .map_err(|error| Unreadable::Damaged(format!("the injector's transform: {error}")))?;
    Ok(with_headers(StatusCode::OK, headers, Body::from_stream(body)))
}

fn redirect(url: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(location) = HeaderValue::try_from(url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Whether the client's `If-Modified-Since` is at or after the `Last-Modified` the control plane
/// gave the object (a package document: when its content last changed). `If-None-Match`, when
/// sent, decides instead (RFC 9110 §13.1.3).
fn not_modified_since(request: &HeaderMap, response: &HeaderMap) -> bool {
    if request.contains_key(header::IF_NONE_MATCH) {
        return false;
    }
    let date = |headers: &HeaderMap, name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok())
    };
    match (date(request, header::IF_MODIFIED_SINCE), date(response, header::LAST_MODIFIED)) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// Whether the client's `If-None-Match` names `etag` (or `*`).
fn if_none_match_hits(request: &HeaderMap, etag: &str) -> bool {
    request.get_all(header::IF_NONE_MATCH).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || tag.trim_matches('"') == etag
        })
    })
}

#[cfg(test)]
mod tests {
    use oci::Digest;

    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    #[tokio::test]
    async fn objects_streamed_from_storage_go_at_the_client_pace_and_small_ones_from_memory_do_not() {
        use crate::small_objects::tests::{SETTINGS, store_with};
        for (size, paced) in [(1000, false), (300_000, true)] {
            let dir = tempfile::tempdir().unwrap();
            let (store, key, digest) = store_with(dir.path(), &vec![7u8; size]).await;
            let params = SendBlob {
                v: injector::CONTRACT_VERSION,
                key,
                digest,
                size: size as u64,
                media_type: "application/octet-stream".into(),
                headers: Vec::new(),
                digest_header: None,
                may_redirect: true,
                group: String::new(),
                upstream: String::new(),
                transform: Vec::new(),
            };
            let response =
                serve(&store, &SmallObjects::new(SETTINGS), &params, &Method::GET, &HeaderMap::new())
                    .await
                    .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.extensions().get::<ReadAtClientPace>().is_some(), paced, "{size} bytes");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            assert_eq!(body.len(), size);
        }
    }

    #[tokio::test]
    async fn a_document_is_served_rewritten_with_an_etag_of_its_own_and_stored_as_it_came() {
        use crate::small_objects::tests::{SETTINGS, store_with};
        let original = b"{\"tarball\":\"https://up.example/a/-/a-1.tgz\"}";
        for size in [original.len(), 300_000] {
            let mut document = original.to_vec();
            document.resize(size, b' ');
            let dir = tempfile::tempdir().unwrap();
            let (store, key, digest) = store_with(dir.path(), &document).await;
            let transform = vec![injector::Replace {
                from: "https://up.example/".into(),
                to: "http://proxy:5000/npm/js/".into(),
            }];
            let params = SendBlob {
                v: injector::CONTRACT_VERSION,
                key,
                digest: digest.clone(),
                size: size as u64,
                media_type: "application/json".into(),
                headers: Vec::new(),
                digest_header: None,
                may_redirect: false,
                group: String::new(),
                upstream: String::new(),
                transform: transform.clone(),
            };
            let small = SmallObjects::new(SETTINGS);
            let response = serve(&store, &small, &params, &Method::GET, &HeaderMap::new()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.headers().get(header::CONTENT_LENGTH).is_none(), "the length changes");
            let etag = response.headers()[header::ETAG].to_str().unwrap().to_owned();
            assert_eq!(etag, format!("\"{}\"", crate::rewrite::etag(&digest, &transform)));
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            assert!(body.starts_with(b"{\"tarball\":\"http://proxy:5000/npm/js/a/-/a-1.tgz\"}"), "{size}");
            let again = serve(&store, &small, &params, &Method::GET, &headers(header::IF_NONE_MATCH, &etag))
                .await
                .unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
            let plain = headers(header::IF_NONE_MATCH, &format!("\"{digest}\""));
            let other = serve(&store, &small, &params, &Method::GET, &plain).await.unwrap();
            assert_eq!(other.status(), StatusCode::OK, "the stored bytes' ETag is not the rewritten one's");
        }
    }

    #[test]
    fn if_modified_since_answers_from_last_modified_unless_if_none_match_is_sent() {
        let mut served = HeaderMap::new();
        served.insert(header::LAST_MODIFIED, HeaderValue::from_static("Mon, 07 Dec 2026 19:47:19 GMT"));
        let asked = |name, value| headers(name, value);
        assert!(not_modified_since(
            &asked(header::IF_MODIFIED_SINCE, "Mon, 07 Dec 2026 19:47:19 GMT"),
            &served
        ));
        assert!(not_modified_since(
            &asked(header::IF_MODIFIED_SINCE, "Tue, 08 Dec 2026 00:00:00 GMT"),
            &served
        ));
        assert!(!not_modified_since(
            &asked(header::IF_MODIFIED_SINCE, "Mon, 07 Dec 2026 19:47:18 GMT"),
            &served
        ));
        assert!(!not_modified_since(&asked(header::IF_MODIFIED_SINCE, "yesterday"), &served));
        assert!(!not_modified_since(
            &asked(header::IF_MODIFIED_SINCE, "Tue, 08 Dec 2026 00:00:00 GMT"),
            &HeaderMap::new()
        ));
        let mut both = asked(header::IF_MODIFIED_SINCE, "Tue, 08 Dec 2026 00:00:00 GMT");
        both.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified_since(&both, &served), "If-None-Match decides when sent");
    }

    #[test]
    fn etags() {
        let digest = Digest::of(b"x").to_string();
        assert!(if_none_match_hits(&headers(header::IF_NONE_MATCH, &format!("\"{digest}\"")), &digest));
        assert!(if_none_match_hits(
            &headers(header::IF_NONE_MATCH, &format!("\"a\", W/\"{digest}\"")),
            &digest
        ));
        assert!(if_none_match_hits(&headers(header::IF_NONE_MATCH, "*"), &digest));
        assert!(!if_none_match_hits(&headers(header::IF_NONE_MATCH, "\"sha256:00\""), &digest));
    }
}
