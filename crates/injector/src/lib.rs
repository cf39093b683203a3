//! The contract between the gateway (data plane) and the control plane: injector parameters carried
//! in the `Depproxy-Send-Data` response header (signed by the control plane), the upload
//! authorize/finalize messages, and the one-time HMAC-signed token on every gateway→control request.
//!
//! Both sides depend on this crate and nothing else of each other, so the wire format lives here
//! only — with the rules both sides must agree on: the storage key of a digest and the internal
//! upload routes. Every message carries a version `v`; an unknown kind or version is an error,
//! never a guess.

pub mod archive_check;
pub mod checksum;
pub mod fills;
pub mod headers;
pub mod keys;
pub mod listing;
pub mod replay;
pub mod routes;
pub mod signing;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use oci::{Digest, ObjectKind};
use serde::{Deserialize, Serialize};

pub use archive_check::{ArchiveCheck, ArchiveCheckError};
pub use checksum::{Checksum, ChecksumAlgorithm, ChecksumError, ChecksumHasher};
pub use fills::{FillReport, FillsReport};
pub use headers::{HeaderList, append_headers, header_list, header_map};
pub use keys::{KeyError, digest_of_key, storage_key};
pub use listing::{ListedFile, References, cargo_download_path, listed_files};
pub use replay::ReplayCache;
pub use routes::{UploadRoutes, UploadStage, split_upload_path};
pub use signing::{
    InProcessCall, MAX_TOKEN_AGE_SECONDS, Purpose, RequestId, RequestSigner, RequestTarget, RequestVerifier,
    SIGNED_HEADERS, Secret, SecretError, SignatureError, SignedRequest, VerifiedRequest,
};

/// The control-plane response header that tells the gateway what to do.
pub const SEND_DATA_HEADER: &str = "Depproxy-Send-Data";
/// The control-plane response header carrying its signature of `Depproxy-Send-Data`, bound to the
/// request it answers; the gateway acts on no injector without a valid one.
pub const SEND_DATA_SIGNATURE_HEADER: &str = "Depproxy-Send-Data-Signature";
/// The gateway→control request header carrying the signed token.
pub const INTERNAL_TOKEN_HEADER: &str = "Depproxy-Internal-Token";
/// The control plane's readiness (its database answers), asked by a gateway's `/readyz`.
pub const READY_PATH: &str = "/_depproxy/ready";
/// Where a gateway in split mode POSTs the list of its live fills (JSON, every second), for the
/// control plane's admin API.
pub const FILLS_REPORT_PATH: &str = "/_depproxy/fills";
/// The largest fill report a control plane reads (larger: 413).
pub const MAX_FILL_REPORT_BYTES: usize = 1 << 20;
/// The most fills one report lists (a gateway sends its oldest; a control plane keeps no more).
pub const MAX_REPORTED_FILLS: usize = 10_000;
/// The gateway→control request header carrying the `Host` the client reached the gateway at
/// (validated by the gateway), for the token realm when no `public_url` is set. The control plane
/// never reads `Host` itself: in split mode that names the control plane.
pub const FORWARDED_HOST_HEADER: &str = "Depproxy-Forwarded-Host";
/// The gateway→control request header carrying the client connection's address (the gateway
/// strips any `Depproxy-*` header a client sends, so only the gateway sets it).
pub const CLIENT_ADDRESS_HEADER: &str = "Depproxy-Client-Address";
/// The gateway→control request header asking to fetch again an object the gateway could not read
/// from storage (its value: the object's digest); the control plane answers `send-dependency`.
pub const REFETCH_HEADER: &str = "Depproxy-Refetch";
/// Content type of authorize/finalize bodies and answers.
pub const CONTRACT_CONTENT_TYPE: &str = "application/vnd.depproxy.contract.v1+json";
/// The only contract version this build speaks. 2: `send-dependency` names what to verify as an
/// algorithm and value (`verify`), not a sha256 digest. 3: `send-dependency` carries an ordered
/// list of `sources` (a group's upstreams, asked in turn) instead of one upstream and URL;
/// finalize names the source that served, and `send-blob` the upstream recorded with the object.
/// 4: `send-dependency` may hold its clients until the control plane's admission verdict on the
/// verified bytes (`hold`), asked at a fourth upload route (`upload.verdict`, [`VerdictRequest`]
/// answered by [`Verdict`]); a gateway that ignored the hold would serve what a scanner refuses.
/// 5: a package document's fill reads the files it lists (`references`: `npm-packument`,
/// `pypi-project-page`) and reports them at finalize (`files`); an older control plane would
/// refuse the field, an older gateway would leave the files unknown.
/// 6: `send-dependency` may name a check of the whole verified file (`archive_check`: Go's `h1:`
/// hashes) and the errors Cargo reads (`errors: json-errors`); an older gateway would store a
/// module zip the checksum database does not vouch for.
pub const CONTRACT_VERSION: u32 = 6;
/// The gateway→control request header naming the contract version the gateway speaks: a control
/// plane refuses a gateway of another version with an error that says so, rather than answering
/// injectors it would misread.
pub const CONTRACT_VERSION_HEADER: &str = "Depproxy-Contract-Version";

/// One literal replacement the gateway applies to a document while it streams it to the client
/// (the stored copy stays the upstream's bytes): a package index names its files on the
/// upstream's host, and served through the proxy it must name the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    pub from: String,
    pub to: String,
}

/// How the gateway words the errors it answers itself for a request (a fill that failed, was
/// refused or could not start): in the OCI JSON envelope, or — for package clients — in their
/// own shape. The gateway applies the shape it is told; it knows no format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorShape {
    /// `{"errors": [{"code", "message", "detail"}]}`.
    #[default]
    Oci,
    /// `{"error": "<message>"}` (npm's registry API).
    JsonError,
    /// The message as plain text (PyPI's simple API, Maven, GOPROXY).
    Text,
    /// `{"errors": [{"detail": "<message>"}]}` (Cargo's registry API).
    JsonErrors,
}

impl ErrorShape {
    pub fn is_oci(&self) -> bool {
        *self == ErrorShape::Oci
    }
}

/// How the gateway answers the clients of a fill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// As the bytes arrive, a single `Range` honoured (an artifact named by its checksum).
    #[default]
    Streamed,
    /// Once the bytes are verified, so the digest header names exactly what the client gets (a
    /// document fetched by a mutable name, whose digest is only known at the end).
    Verified,
}

/// The content types an upstream answer must declare to be taken for what was asked: a
/// document fetched without a checksum has nothing else to tell it from an error page or an
/// internal page a redirect led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// Media types (compared without parameters).
    pub types: Vec<String>,
    /// What they make the answer, for the client's error (e.g. `a manifest`).
    pub what: String,
}

impl Accept {
    /// Whether `content_type` (parameters ignored) is one of the accepted types.
    pub fn accepts(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        self.types.iter().any(|accepted| accepted == essence)
    }
}

/// Serve a cached object from storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBlob {
    pub v: u32,
    /// Storage key of the object (content-addressed).
    pub key: String,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// Extra response headers for the client (e.g. the format's API version, `Warning` on a
    /// stale tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: HeaderList,
    /// The response header naming the object's sha256 digest (`Docker-Content-Digest`); none:
    /// no such header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_header: Option<String>,
    /// Whether object storage may serve the bytes itself (a redirect to a presigned URL); not
    /// for what must come with the proxy's own headers.
    #[serde(default)]
    pub may_redirect: bool,
    /// The group the request resolved to, for the access log.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The upstream recorded with the object (the one that served it), for the access log; empty
    /// when not known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream: String,
    /// Replacements applied while the object streams to the client (a document whose URLs must
    /// name the proxy); none for everything else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transform: Vec<Replace>,
}

/// Fetch an object from upstream, stream it to the client, verify and store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendDependency {
    pub v: u32,
    pub kind: ObjectKind,
    /// Identifies the fill for single-flight: requests with the same key share one upstream fetch.
    /// The control plane scopes it (per group and object) so a group is never served bytes its own
    /// upstream did not send.
    pub fill_key: String,
    /// Where to fetch the object, in order: the fill opens the first; when that fails before any
    /// byte went to a client (404, 401/403, 5xx, 429, timeout, no connection, an answer of a type
    /// not accepted) it opens the next. Never empty.
    pub sources: Vec<Source>,
    /// The group the request resolved to, for the access log.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// What the bytes must hash to: the checksum the upstream published (a digest, an npm
    /// `integrity`, a `.sha1`), in its own algorithm. `None` when nothing is known up front (a
    /// manifest by tag, a document): the computed sha256 is what gets recorded.
    pub verify: Option<Checksum>,
    /// Largest object the gateway may accept.
    pub max_size: u64,
    pub upload: UploadRoutes,
    /// Extra response headers for the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: HeaderList,
    /// The response header naming the sha256 digest of the bytes served, when known (up front
    /// from `verify`, else once verified); none: no such header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_header: Option<String>,
    /// When the clients get their answer.
    #[serde(default)]
    pub delivery: Delivery,
    /// The content types the upstream's answer must declare; none: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Accept>,
    /// The media type served and recorded when upstream declares none (empty: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_media_type: String,
    /// How to read what the stored object references, reported at finalize; none: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<References>,
    /// What the fill fetches as operators see it (e.g. `library/alpine:3.20`), for the
    /// running-fill report.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object: String,
    /// Replacements applied while the object streams to the client; what is stored is what the
    /// upstream sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transform: Vec<Replace>,
    /// The client's address as the control plane resolved it (through `trusted_proxies`): the
    /// address fill admission counts, so clients behind one ingress do not share one client's
    /// share of the fills. Absent (an older control plane): the gateway counts the connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<std::net::IpAddr>,
    /// Clients get nothing of the fill — not even a status line — until the control plane's
    /// admission verdict on the verified bytes allows them (asked at `upload.verdict`); refused,
    /// they get 403 and nothing is stored. None: the clients are answered as `delivery` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// How the gateway words the errors it answers itself for this request.
    #[serde(default, skip_serializing_if = "ErrorShape::is_oci")]
    pub errors: ErrorShape,
    /// A check of the whole verified file before it is recorded (Go's `h1:` hashes); none: the
    /// streamed checksum (`verify`) is all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_check: Option<ArchiveCheck>,
}

/// How a held fill waits for its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// The longest the control plane takes to decide (its hook's timeout, in milliseconds): the
    /// gateway waits for the verdict call that long beyond its usual control-plane timeout.
    pub decides_within_ms: u64,
}

impl Hold {
    pub fn decides_within(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.decides_within_ms)
    }
}

/// One upstream a fill may fetch the object from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Name of the configured upstream: the gateway uses that upstream's own HTTP client (the
    /// CA it trusts, where its redirects may go), and names it at finalize when it served.
    pub upstream: String,
    /// Absolute upstream URL of the object.
    pub url: String,
    /// The complete upstream request header set (e.g. `Authorization`, `Accept`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: HeaderList,
}

impl SendDependency {
    /// The first source's URL, naming the fill in logs before a source answered.
    pub fn first_url(&self) -> &str {
        self.sources.first().map_or("", |source| source.url.as_str())
    }
}

/// An instruction from the control plane. A miss's parameters are boxed: they are much larger
/// than a hit's, and every hit would carry their size.
#[derive(Debug, Clone, PartialEq)]
pub enum Injector {
    SendBlob(SendBlob),
    SendDependency(Box<SendDependency>),
}

/// Why an injector header could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum InjectorError {
    #[error("injector header has no kind prefix")]
    MissingKind,
    #[error("injector header is not visible ASCII")]
    NotText,
    #[error("injector is not a valid header value")]
    NotAHeaderValue,
    #[error("unknown injector kind {0:?}")]
    UnknownKind(String),
    #[error("injector params are not valid base64url: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("injector params are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "injector contract version {0} is not supported (this build speaks {CONTRACT_VERSION}): run the same depproxy version on gateways and control planes"
    )]
    Version(u32),
    #[error("send-dependency names no source to fetch from")]
    NoSource,
}

impl Injector {
    pub fn kind(&self) -> &'static str {
        match self {
            Injector::SendBlob(_) => "send-blob",
            Injector::SendDependency(_) => "send-dependency",
        }
    }

    /// The `Depproxy-Send-Data` header value: `<kind>:<base64url(JSON)>`.
    pub fn encode(&self) -> Result<String, InjectorError> {
        let json = match self {
            Injector::SendBlob(params) => serde_json::to_vec(params)?,
            Injector::SendDependency(params) => serde_json::to_vec(params)?,
        };
        Ok(format!("{}:{}", self.kind(), URL_SAFE.encode(json)))
    }

    /// The header value ready to send.
    pub fn to_header_value(&self) -> Result<http::HeaderValue, InjectorError> {
        http::HeaderValue::try_from(self.encode()?).map_err(|_| InjectorError::NotAHeaderValue)
    }

    /// Decodes a header value as received.
    pub fn from_header_value(value: &http::HeaderValue) -> Result<Injector, InjectorError> {
        Injector::decode(value.to_str().map_err(|_| InjectorError::NotText)?)
    }

    pub fn decode(header: &str) -> Result<Injector, InjectorError> {
        let (kind, payload) = header.split_once(':').ok_or(InjectorError::MissingKind)?;
        if !matches!(kind, "send-blob" | "send-dependency") {
            return Err(InjectorError::UnknownKind(kind.to_owned()));
        }
        let json = URL_SAFE.decode(payload)?;
        // The version before the fields: another version's fields are not this one's, and
        // "unknown field" would hide what is really wrong.
        let Version { v } = serde_json::from_slice(&json)?;
        if v != CONTRACT_VERSION {
            return Err(InjectorError::Version(v));
        }
        Ok(match kind {
            "send-dependency" => {
                let params: SendDependency = serde_json::from_slice(&json)?;
                if params.sources.is_empty() {
                    return Err(InjectorError::NoSource);
                }
                Injector::SendDependency(Box::new(params))
            }
            _ => Injector::SendBlob(serde_json::from_slice(&json)?),
        })
    }
}

/// The version of any contract message, read before the rest.
#[derive(Deserialize)]
struct Version {
    v: u32,
}

/// Gateway → control: may I store this object?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    pub v: u32,
    pub kind: ObjectKind,
    /// The digest being filled, when known before the body (blobs, manifests by digest).
    pub digest: Option<Digest>,
    /// Upstream `Content-Length`, when sent.
    pub size: Option<u64>,
    /// Identifies the gateway node asking (lease holder).
    pub node: String,
    /// Renews this lease instead of asking for a new one (sent periodically while a fill runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew: Option<String>,
}

/// Control → gateway: the answer to [`AuthorizeRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    pub v: u32,
    pub decision: UploadDecision,
    /// Largest object that may be stored.
    pub max_size: u64,
    /// Lease on the object's fill, to be passed back at finalize and renewed while filling.
    pub lease_id: Option<String>,
    /// How long the lease lasts without renewal, in seconds.
    pub lease_seconds: Option<u64>,
}

/// Whether the gateway stores what it streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UploadDecision {
    /// Store it, then finalize.
    Store,
    /// Stream it to the client without storing (e.g. another node holds the fill lease).
    Passthrough { reason: String },
}

/// Gateway → control: the upstream answered 404 for the object (its fill found nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotFoundReport {
    pub v: u32,
    pub kind: ObjectKind,
}

/// Gateway → control: may the clients of a held fill have these bytes? Asked once the checksum
/// is verified — or, when the digest is known up front, while the bytes still arrive, so a "yes"
/// serves at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictRequest {
    pub v: u32,
    pub kind: ObjectKind,
    /// The sha256 digest of the bytes (computed, or the one they are verified against).
    pub digest: Digest,
    pub size: u64,
    /// As upstream declared it (or the injector's default).
    pub media_type: String,
    /// The source that serves the bytes (its upstream's name).
    pub upstream: String,
}

/// Control → gateway: the answer to [`VerdictRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub v: u32,
    /// Whether the clients may have the bytes (and the object be stored).
    pub allow: bool,
    /// Why, for the refused clients' error (empty when there is nothing to say).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Gateway → control: the object is stored and verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeRequest {
    pub v: u32,
    pub kind: ObjectKind,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub key: String,
    pub lease_id: Option<String>,
    /// For a manifest: the digests it references (an index's manifests, an image's config and
    /// layers), so pins and purges by image can follow them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Digest>,
    /// The source that served the bytes (its upstream's name), recorded with the object.
    pub upstream: String,
    /// For a package document: the files it lists (read by the injector's `references` rule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ListedFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_the_control_plane_acts_on_are_signed() {
        for name in
            [CLIENT_ADDRESS_HEADER, FORWARDED_HOST_HEADER, REFETCH_HEADER, "Authorization", "X-Forwarded-For"]
        {
            assert!(SIGNED_HEADERS.contains(&name.to_ascii_lowercase().as_str()), "{name}");
        }
    }

    fn digest() -> Digest {
        Digest::of(b"x")
    }

    #[test]
    fn round_trips_both_kinds() {
        let blob = Injector::SendBlob(SendBlob {
            v: CONTRACT_VERSION,
            key: "blobs/sha256/aa/aa".into(),
            digest: digest(),
            size: 1,
            media_type: "application/octet-stream".into(),
            headers: vec![("Warning".into(), "110 - stale".into())],
            digest_header: Some("Docker-Content-Digest".into()),
            may_redirect: true,
            group: "default".into(),
            upstream: "hub".into(),
            transform: vec![Replace {
                from: "https://up.example/".into(),
                to: "http://proxy/npm/js/".into(),
            }],
        });
        let dependency = Injector::SendDependency(Box::new(SendDependency {
            v: CONTRACT_VERSION,
            kind: ObjectKind::Manifest,
            fill_key: "default/manifest/a:v1".into(),
            sources: vec![
                Source {
                    upstream: "internal".into(),
                    url: "https://internal.example/v2/a/manifests/v1".into(),
                    headers: Vec::new(),
                },
                Source {
                    upstream: "lab".into(),
                    url: "https://registry.example/v2/a/manifests/v1".into(),
                    headers: vec![("Authorization".into(), "Bearer t".into())],
                },
            ],
            group: "default".into(),
            verify: Some(Checksum::of(ChecksumAlgorithm::Sha512, b"manifest")),
            max_size: 4 << 20,
            upload: UploadRoutes {
                authorize: "/a/upload/authorize".into(),
                finalize: "/a/upload".into(),
                not_found: "/a/upload/not-found".into(),
                verdict: "/a/upload/verdict".into(),
            },
            response_headers: Vec::new(),
            digest_header: Some("Docker-Content-Digest".into()),
            delivery: Delivery::Verified,
            accept: Some(Accept {
                types: vec!["application/vnd.oci.image.index.v1+json".into()],
                what: "a manifest".into(),
            }),
            default_media_type: String::new(),
            references: Some(References::OciManifest),
            object: "a:v1".into(),
            transform: Vec::new(),
            client: Some("10.1.2.3".parse().unwrap()),
            hold: Some(Hold { decides_within_ms: 30_000 }),
            errors: Default::default(),
            archive_check: None,
        }));
        for injector in [blob, dependency] {
            let header = injector.encode().unwrap();
            assert!(header.starts_with(injector.kind()));
            assert_eq!(Injector::decode(&header).unwrap(), injector);
            let value = injector.to_header_value().unwrap();
            assert_eq!(Injector::from_header_value(&value).unwrap(), injector);
        }
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert!(matches!(Injector::decode("send-url:e30="), Err(InjectorError::UnknownKind(_))));
        assert!(matches!(Injector::decode("nocolon"), Err(InjectorError::MissingKind)));
        assert!(matches!(Injector::decode("send-blob:!!"), Err(InjectorError::Base64(_))));
        assert!(matches!(Injector::decode("send-blob:e30="), Err(InjectorError::Json(_))));
        let binary = http::HeaderValue::from_bytes(b"send-blob:\xff").unwrap();
        assert!(matches!(Injector::from_header_value(&binary), Err(InjectorError::NotText)));
        let future = SendBlob {
            v: CONTRACT_VERSION + 1,
            key: "k".into(),
            digest: digest(),
            size: 0,
            media_type: "x".into(),
            headers: vec![],
            digest_header: None,
            may_redirect: false,
            group: String::new(),
            upstream: String::new(),
            transform: Vec::new(),
        };
        let header = Injector::SendBlob(future).encode().unwrap();
        assert!(
            matches!(Injector::decode(&header), Err(InjectorError::Version(v)) if v == CONTRACT_VERSION + 1)
        );
        // A gateway of version 1 meeting this control plane, or the reverse: the version is what
        // the error names, whatever fields the other version has.
        let old = format!("send-dependency:{}", URL_SAFE.encode(br#"{"v":1,"expected_digest":null}"#));
        let error = Injector::decode(&old).unwrap_err();
        assert!(matches!(error, InjectorError::Version(1)));
        assert!(error.to_string().contains("same depproxy version"), "{error}");
        let extra = format!("send-blob:{}", URL_SAFE.encode(br#"{"v":6,"key":"k","digest":"sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","size":1,"media_type":"x","bogus":1}"#));
        assert!(matches!(Injector::decode(&extra), Err(InjectorError::Json(_))));
        // A gateway of version 2 meeting a control plane of version 3 (which names several
        // sources): refused by version, not by the field it does not know.
        let ordered = format!(
            "send-dependency:{}",
            URL_SAFE.encode(br#"{"v":6,"kind":"blob","fill_key":"k","sources":[],"verify":null,"max_size":1,"upload":{"authorize":"/a","finalize":"/f"}}"#)
        );
        assert!(matches!(Injector::decode(&ordered), Err(InjectorError::NoSource)), "never empty");
        let single = format!(
            "send-dependency:{}",
            URL_SAFE.encode(br#"{"v":2,"kind":"blob","fill_key":"k","upstream":"u","url":"https://up.example/x","verify":null,"max_size":1,"upload":{"authorize":"/a","finalize":"/f"}}"#)
        );
        assert!(matches!(Injector::decode(&single), Err(InjectorError::Version(2))));
        // A gateway of version 3 (which knows no hold, and would serve a held fill at once)
        // meeting a control plane of version 4: refused by version.
        let unheld = format!(
            "send-dependency:{}",
            URL_SAFE.encode(br#"{"v":3,"kind":"manifest","fill_key":"k","sources":[{"upstream":"u","url":"https://up.example/x"}],"verify":null,"max_size":1,"upload":{"authorize":"/a","finalize":"/f"}}"#)
        );
        assert!(matches!(Injector::decode(&unheld), Err(InjectorError::Version(3))));
    }

    #[test]
    fn what_a_fill_is_told_about_serving_reads_as_declared() {
        let accept =
            Accept { types: vec!["application/vnd.oci.image.index.v1+json".into()], what: "x".into() };
        assert!(accept.accepts("application/vnd.oci.image.index.v1+json; charset=utf-8"));
        assert!(!accept.accepts("application/json"));
        assert_eq!(serde_json::to_string(&Delivery::Verified).unwrap(), r#""verified""#);
        assert_eq!(serde_json::to_string(&References::OciManifest).unwrap(), r#""oci-manifest""#);
        // Left out, they mean: stream as the bytes arrive, any type, no digest header.
        let json = br#"{"v":6,"kind":"blob","fill_key":"k","sources":[{"upstream":"u","url":"https://up.example/x"}],
            "verify":null,"max_size":1,"upload":{"authorize":"/a","finalize":"/f"}}"#;
        let params: SendDependency = serde_json::from_slice(json).unwrap();
        assert_eq!((params.delivery, params.accept, params.digest_header), (Delivery::Streamed, None, None));
        assert_eq!((params.hold, params.upload.verdict.as_str()), (None, ""), "no hold: served as it comes");
    }

    #[test]
    fn a_verdict_says_allow_and_why() {
        let refused =
            Verdict { v: CONTRACT_VERSION, allow: false, reason: "CVE-2024-0001 (critical)".into() };
        let text = serde_json::to_string(&refused).unwrap();
        assert_eq!(text, r#"{"v":6,"allow":false,"reason":"CVE-2024-0001 (critical)"}"#);
        assert_eq!(serde_json::from_str::<Verdict>(&text).unwrap(), refused);
        let allowed: Verdict = serde_json::from_str(r#"{"v":6,"allow":true}"#).unwrap();
        assert!(allowed.allow && allowed.reason.is_empty());
        assert_eq!(Hold { decides_within_ms: 1500 }.decides_within(), std::time::Duration::from_millis(1500));
    }

    #[test]
    fn decisions_serialise_with_a_kind_tag() {
        let text =
            serde_json::to_string(&UploadDecision::Passthrough { reason: "lease held".into() }).unwrap();
        assert_eq!(text, r#"{"kind":"passthrough","reason":"lease held"}"#);
    }
}
