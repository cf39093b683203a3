//! Rendering: a [`Decision`] (or a small direct answer) becomes the HTTP response the gateway
//! receives. A hit or miss is an injector on an empty 200, typed in the response's extensions
//! (`routes` encodes and signs it into the `Depproxy-Send-Data` header when the answer leaves the
//! process). What the gateway is told about serving the object — its headers, when a fill's
//! clients get their answer, which content types a document may have — is the format's
//! [`Serving`]: the gateway knows no format.

use std::net::IpAddr;

use axum::body::Body;
use axum::response::Response;
use cache::{Decision, Fetch, Stale, StoredObject};
use http::{HeaderValue, StatusCode, Uri};
use injector::{
    Accept, CONTRACT_CONTENT_TYPE, CONTRACT_VERSION, Delivery, HeaderList, Hold, Injector, References,
    Replace, SendBlob, SendDependency, Source, UploadRoutes,
};
use oci::Digest;
use upstream::ObjectHead;

use crate::error::ControlError;

/// The `Warning` a client gets with a tag served stale because upstream is unreachable.
const STALE_WARNING: &str = "110 depproxy \"Response is Stale: upstream unreachable\"";
/// The `Warning` a client gets with a tag served although upstream answers 404 for it.
const GONE_WARNING: &str = "110 depproxy \"Response is Stale: gone from upstream\"";

/// The `Warning` a client gets with a document upstream did not confirm.
pub(crate) fn stale_warning(stale: Stale) -> &'static str {
    match stale {
        Stale::UpstreamUnreachable => STALE_WARNING,
        Stale::GoneUpstream => GONE_WARNING,
    }
}

/// How a format's objects are served, as the gateway is told in each injector.
pub(crate) struct Serving {
    /// For a stored object.
    pub hit: fn(&StoredObject) -> HitRules,
    /// For an object fetched from upstream.
    pub fill: fn(&Fetch) -> FillRules,
}

/// What the gateway is told about serving a stored object.
pub(crate) struct HitRules {
    /// Headers of the answer (the format's API version).
    pub headers: HeaderList,
    /// The header naming the object's sha256 digest.
    pub digest_header: Option<&'static str>,
    /// Whether object storage may serve the bytes itself.
    pub may_redirect: bool,
}

/// What the gateway is told about serving a fill.
pub(crate) struct FillRules {
    /// Headers of the answer (the format's API version).
    pub headers: HeaderList,
    /// The header naming the sha256 digest of the bytes served.
    pub digest_header: Option<&'static str>,
    pub delivery: Delivery,
    /// The content types upstream's answer must declare (a document fetched without a checksum).
    pub accept: Option<Accept>,
    /// The media type when upstream declares none.
    pub default_media_type: &'static str,
    /// How the stored object's references are read, for finalize.
    pub references: Option<References>,
    /// What the fill fetches, for the running-fill report.
    pub object: String,
}

/// The answer to a request for an object at `uri`.
pub(crate) fn decision(
    decision: Decision,
    serving: &Serving,
    uri: &Uri,
    group: &str,
    client: IpAddr,
) -> Response {
    rewritten(decision, serving, uri, group, client, Vec::new())
}

/// The answer to a request for an object at `uri`, streamed through `transform` (a document
/// whose URLs must name the proxy).
pub(crate) fn rewritten(
    decision: Decision,
    serving: &Serving,
    uri: &Uri,
    group: &str,
    client: IpAddr,
    transform: Vec<Replace>,
) -> Response {
    match decision {
        Decision::Serve { object, stale } => send_blob(object, serving, stale, group, transform),
        Decision::Fetch(fetch) => send_dependency(fetch, serving, uri, group, client, transform),
        Decision::UpstreamHead { head, requested } => upstream_head(&head, requested.as_ref()),
    }
}

fn send_blob(
    object: StoredObject,
    serving: &Serving,
    stale: Option<Stale>,
    group: &str,
    transform: Vec<Replace>,
) -> Response {
    let HitRules { mut headers, digest_header, may_redirect } = (serving.hit)(&object);
    if let Some(stale) = stale {
        headers.push(("Warning".to_owned(), stale_warning(stale).to_owned()));
    }
    injector(Injector::SendBlob(SendBlob {
        v: CONTRACT_VERSION,
        key: injector::storage_key(&object.digest),
        digest: object.digest,
        size: object.size,
        media_type: object.media_type,
        headers,
        digest_header: digest_header.map(str::to_owned),
        may_redirect,
        group: group.to_owned(),
        upstream: object.upstream,
        transform,
    }))
}

fn send_dependency(
    fetch: Fetch,
    serving: &Serving,
    uri: &Uri,
    group: &str,
    client: IpAddr,
    transform: Vec<Replace>,
) -> Response {
    let rules = (serving.fill)(&fetch);
    injector(Injector::SendDependency(Box::new(SendDependency {
        v: CONTRACT_VERSION,
        kind: fetch.kind,
        fill_key: fetch.fill_key,
        sources: fetch
            .sources
            .into_iter()
            .map(|source| Source {
                upstream: source.upstream,
                url: source.url,
                headers: injector::header_list(&source.headers),
            })
            .collect(),
        group: group.to_owned(),
        verify: fetch.verify,
        max_size: fetch.max_size,
        upload: UploadRoutes::for_object(uri.path(), uri.query()),
        response_headers: rules.headers,
        digest_header: rules.digest_header.map(str::to_owned),
        delivery: rules.delivery,
        accept: rules.accept,
        default_media_type: rules.default_media_type.to_owned(),
        references: rules.references,
        object: rules.object,
        transform,
        client: Some(client),
        hold: fetch
            .hold
            .map(|within| Hold { decides_within_ms: u64::try_from(within.as_millis()).unwrap_or(u64::MAX) }),
        errors: Default::default(),
        archive_check: None,
    })))
}

fn injector(injector: Injector) -> Response {
    let mut response = Response::new(Body::empty());
    response.extensions_mut().insert(injector);
    response
}

/// The answer to a HEAD of an uncached object, from upstream's HEAD.
fn upstream_head(answer: &ObjectHead, requested: Option<&Digest>) -> Response {
    let media_type = answer.media_type.as_deref().unwrap_or(oci::media::OCTET_STREAM);
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = oci::response::object_headers(answer.digest.as_ref().or(requested), media_type);
    if let Some(size) = answer.size {
        response.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    response
}

/// `GET /v2/`: the API version check.
pub(crate) fn base() -> Response {
    let mut response = Response::new(Body::from("{}"));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(oci::API_VERSION_HEADER, HeaderValue::from_static(oci::API_VERSION));
    response
}

/// A contract message answering an upload call.
pub(crate) fn contract_message<T: serde::Serialize>(value: &T) -> Result<Response, ControlError> {
    let body = serde_json::to_vec(value).map_err(ControlError::EncodeAnswer)?;
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTRACT_CONTENT_TYPE));
    Ok(response)
}

pub(crate) fn no_content() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> StoredObject {
        StoredObject {
            digest: Digest::of(b"m"),
            size: 1,
            media_type: oci::media::OCI_MANIFEST.into(),
            upstream: "hub".into(),
        }
    }

    fn client() -> IpAddr {
        IpAddr::from([10, 1, 2, 3])
    }

    fn decoded(response: &Response) -> Injector {
        response.extensions().get::<Injector>().cloned().unwrap()
    }

    /// A format that tells the gateway nothing beyond the object.
    const PLAIN: Serving = Serving { hit: plain_hit, fill: plain_fill };

    fn plain_hit(_: &StoredObject) -> HitRules {
        HitRules { headers: Vec::new(), digest_header: None, may_redirect: true }
    }

    fn plain_fill(_: &Fetch) -> FillRules {
        FillRules {
            headers: Vec::new(),
            digest_header: None,
            delivery: Delivery::Streamed,
            accept: None,
            default_media_type: "",
            references: None,
            object: String::new(),
        }
    }

    #[test]
    fn a_hit_is_a_send_blob_with_the_content_address() {
        let response = decision(
            Decision::Serve { object: object(), stale: Some(Stale::UpstreamUnreachable) },
            &PLAIN,
            &"/v2/a/manifests/v1".parse().unwrap(),
            "default",
            client(),
        );
        match decoded(&response) {
            Injector::SendBlob(params) => {
                assert_eq!(params.key, injector::storage_key(&object().digest));
                assert_eq!(params.upstream, "hub", "the access log names where it came from");
                assert_eq!(params.headers, vec![("Warning".to_owned(), STALE_WARNING.to_owned())]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_miss_carries_upload_routes_for_the_same_request() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let fetch = Fetch {
            kind: oci::ObjectKind::Blob,
            sources: vec![
                cache::FetchSource {
                    upstream: "internal".into(),
                    url: "https://internal.example/v2/a/blobs/x".into(),
                    headers: http::HeaderMap::new(),
                },
                cache::FetchSource {
                    upstream: "lab".into(),
                    url: "https://up.example/v2/a/blobs/x".into(),
                    headers,
                },
            ],
            verify: Some(injector::Checksum::from(&Digest::of(b"b"))),
            max_size: 10,
            fill_key: "g|d".into(),
            hold: Some(std::time::Duration::from_secs(30)),
        };
        let uri: Uri = "/v2/a/blobs/sha256:00?ns=up.example".parse().unwrap();
        match decoded(&decision(Decision::Fetch(fetch), &PLAIN, &uri, "default", client())) {
            Injector::SendDependency(params) => {
                assert_eq!(params.client, Some(client()), "fill admission counts the resolved client");
                assert_eq!(params.upload.authorize, "/v2/a/blobs/sha256:00/upload/authorize?ns=up.example");
                assert_eq!(params.upload.finalize, "/v2/a/blobs/sha256:00/upload?ns=up.example");
                let upstreams: Vec<&str> =
                    params.sources.iter().map(|source| source.upstream.as_str()).collect();
                assert_eq!(upstreams, ["internal", "lab"], "in the order the group asks them");
                assert!(params.sources[0].headers.is_empty());
                assert_eq!(
                    params.sources[1].headers,
                    vec![("authorization".to_owned(), "Bearer t".to_owned())]
                );
                assert_eq!(params.max_size, 10);
                assert_eq!(params.hold, Some(Hold { decides_within_ms: 30_000 }), "held for the hook");
                assert_eq!(params.upload.verdict, "/v2/a/blobs/sha256:00/upload/verdict?ns=up.example");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_upstream_head_is_answered_directly() {
        let head = ObjectHead { digest: None, media_type: None, size: Some(7) };
        let requested = Digest::of(b"b");
        let response = decision(
            Decision::UpstreamHead { head, requested: Some(requested.clone()) },
            &PLAIN,
            &"/v2/a/blobs/x".parse().unwrap(),
            "default",
            client(),
        );
        assert!(response.extensions().get::<Injector>().is_none());
        assert_eq!(response.headers()[oci::CONTENT_DIGEST_HEADER], requested.to_string().as_str());
        assert_eq!(response.headers()[http::header::CONTENT_TYPE], oci::media::OCTET_STREAM);
        assert_eq!(response.headers()[http::header::CONTENT_LENGTH], "7");
    }
}
