//! Cleanup of the multipart uploads a node left unfinished when it died: listing them (S3
//! `ListMultipartUploads`, which object_store does not offer) and aborting those old enough, so an
//! interrupted upload stops costing storage without depending on a bucket lifecycle rule.
//!
//! The listing request is presigned by object_store itself ([`Signer::signed_url_opts`]), so it
//! uses the very endpoint, region and credential chain (explicit keys, `AWS_*` environment,
//! instance or web-identity credentials) the store's other requests use; it is sent with reqwest.
//! The aborts go through object_store's [`MultipartStore::abort_multipart`].

use crate::s3_http::{S3Proxy, with_proxy};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use object_store::aws::AmazonS3;
use object_store::multipart::MultipartStore as _;
use object_store::path::Path as ObjectPath;
use object_store::signer::{SignedUrlOptions, Signer};
use serde::Deserialize;

use crate::StorageError;

/// A listing page is small (S3 returns at most 1000 uploads, well under 1 MiB), so a slow or
/// stalled bucket should fail the sweep quickly rather than hold it: the next sweep retries.
const LIST_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const LIST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The URL is used at once; the margin covers the request itself and some clock skew.
const LIST_URL_TTL: Duration = Duration::from_secs(300);
/// Far above any legitimate page, so a broken or hostile endpoint cannot make us buffer without end.
const MAX_LISTING_BYTES: usize = 8 << 20;
/// Enough of an error response for its `Code` and `Message`.
const MAX_ERROR_BYTES: usize = 16 << 10;
/// S3's own maximum per page; asking for it explicitly keeps servers with smaller defaults from
/// turning a sweep into many round trips.
const PAGE_SIZE: &str = "1000";
/// Ten million uploads: a server whose markers never run out must not keep a sweep going forever.
const MAX_PAGES: usize = 10_000;

/// Lists and aborts a bucket's incomplete multipart uploads (one per [`crate::S3Store`]).
#[derive(Debug, Clone)]
pub(crate) struct UploadSweeper {
    http: reqwest::Client,
    /// When this process first saw each upload. An upload counts as stale only once it is old by
    /// the bucket's `Initiated` *and* by this clock: some S3-compatible servers report a fixed or
    /// skewed `Initiated` (moto says 2010 for every upload), and aborting a live upload on another
    /// node would break its fill.
    first_seen: Arc<Mutex<HashMap<String, SystemTime>>>,
}

/// One in-progress multipart upload as the bucket reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingUpload {
    key: String,
    upload_id: String,
    initiated: SystemTime,
}

/// Where the next listing page starts (S3's `key-marker` / `upload-id-marker`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    key: String,
    upload_id: String,
}

#[derive(Debug)]
struct ListingPage {
    uploads: Vec<PendingUpload>,
    /// `None` once the listing is complete.
    next: Option<Marker>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMultipartUploadsResult {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
    #[serde(default, rename = "Upload")]
    uploads: Vec<UploadEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadEntry {
    key: String,
    upload_id: String,
    initiated: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

fn storage_error(message: String) -> StorageError {
    StorageError::Io(std::io::Error::other(message))
}

/// reqwest puts the URL in its errors, and ours carries a live signature.
fn http_error(context: &str, error: reqwest::Error) -> StorageError {
    storage_error(format!("{context}: {}", error.without_url()))
}

impl UploadSweeper {
    pub(crate) fn new(proxy: Option<&S3Proxy>) -> Result<Self, StorageError> {
        let builder = reqwest::Client::builder()
            .connect_timeout(LIST_CONNECT_TIMEOUT)
            .timeout(LIST_REQUEST_TIMEOUT)
            // A redirect (e.g. S3's 301 for the wrong region) would lose the signature anyway;
            // the status is the more useful error.
            .redirect(reqwest::redirect::Policy::none());
        let http = with_proxy(builder, proxy)
            .and_then(reqwest::ClientBuilder::build)
            .map_err(|error| http_error("building the S3 listing client", error))?;
        Ok(UploadSweeper { http, first_seen: Arc::default() })
    }

    /// Aborts every multipart upload under `prefix` whose key is one this store writes and that
    /// was initiated at least `older_than` ago; returns how many it aborted. One failed abort does
    /// not stop the others: the sweep goes on and reports the failures at the end.
    pub(crate) async fn abort_stale(
        &self,
        store: &AmazonS3,
        prefix: &str,
        older_than: Duration,
    ) -> Result<usize, StorageError> {
        let mut marker: Option<Marker> = None;
        let mut listed = HashSet::new();
        let mut aborted = 0;
        let mut failed = 0;
        let mut first_failure: Option<StorageError> = None;
        for _ in 0..MAX_PAGES {
            let page = self.list_page(store, prefix, marker.as_ref()).await?;
            // Aborting as pages come keeps memory flat, and does not disturb the listing: the
            // markers are positions in key order, not cursors into server state.
            let now = SystemTime::now();
            for upload in page.uploads.iter().filter(|upload| is_ours(prefix, &upload.key)) {
                listed.insert(upload.upload_id.clone());
                let seen = *self
                    .first_seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(upload.upload_id.clone())
                    .or_insert(now);
                let seen_long_enough = now.duration_since(seen).unwrap_or(Duration::ZERO) >= older_than;
                if !is_stale(upload, now, older_than) || !seen_long_enough {
                    continue;
                }
                match abort(store, upload).await {
                    Ok(true) => aborted += 1,
                    Ok(false) => {}
                    Err(error) => {
                        failed += 1;
                        first_failure.get_or_insert(error);
                    }
                }
            }
            match page.next {
                None => {
                    // Forget uploads that are gone (completed or aborted).
                    self.first_seen
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .retain(|id, _| listed.contains(id));
                    return match first_failure {
                        None => Ok(aborted),
                        Some(error) => Err(storage_error(format!(
                            "aborted {aborted} stale multipart uploads, {failed} could not be aborted \
                             (first failure: {error})"
                        ))),
                    };
                }
                Some(next) if marker.as_ref() == Some(&next) => {
                    return Err(storage_error(format!(
                        "the multipart upload listing does not advance past {:?}",
                        next.key
                    )));
                }
                Some(next) => marker = Some(next),
            }
        }
        Err(storage_error(format!("the multipart upload listing goes on past {MAX_PAGES} pages")))
    }

    async fn list_page(
        &self,
        store: &AmazonS3,
        prefix: &str,
        marker: Option<&Marker>,
    ) -> Result<ListingPage, StorageError> {
        let mut query = vec![("uploads", ""), ("max-uploads", PAGE_SIZE)];
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if let Some(marker) = marker {
            query.push(("key-marker", &marker.key));
            if !marker.upload_id.is_empty() {
                query.push(("upload-id-marker", &marker.upload_id));
            }
        }
        // The bucket's own URL is the object URL of the empty path.
        let url = store
            .signed_url_opts(
                http::Method::GET,
                &ObjectPath::default(),
                LIST_URL_TTL,
                &SignedUrlOptions::default().with_query(query),
            )
            .await
            .map_err(|error| storage_error(format!("signing the multipart upload listing: {error}")))?;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| http_error("listing multipart uploads", error))?;
        let status = response.status();
        if !status.is_success() {
            let body = read_body(response, MAX_ERROR_BYTES, false).await.unwrap_or_default();
            return Err(storage_error(format!(
                "listing multipart uploads: HTTP {status}{}",
                describe_s3_error(&body)
            )));
        }
        let body = read_body(response, MAX_LISTING_BYTES, true).await?;
        parse_listing(&body)
    }
}

/// Only keys this store could have written (its prefix, then a content-addressed key): a bucket
/// or prefix shared with other software must not lose that software's uploads.
fn is_ours(prefix: &str, key: &str) -> bool {
    key.strip_prefix(prefix).is_some_and(|rest| injector::digest_of_key(rest).is_ok())
}

/// An upload dated in the future (clock skew) counts as brand new.
fn is_stale(upload: &PendingUpload, now: SystemTime, older_than: Duration) -> bool {
    now.duration_since(upload.initiated).unwrap_or(Duration::ZERO) >= older_than
}

/// `Ok(false)` when the upload was already gone (completed, or aborted by another node meanwhile).
async fn abort(store: &AmazonS3, upload: &PendingUpload) -> Result<bool, StorageError> {
    let path = ObjectPath::parse(&upload.key)
        .map_err(|error| storage_error(format!("multipart upload key {:?}: {error}", upload.key)))?;
    match store.abort_multipart(&path, &upload.upload_id).await {
        Ok(()) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(error) => Err(storage_error(format!("aborting the multipart upload of {}: {error}", upload.key))),
    }
}

/// Reads at most `cap` bytes of the body; past that, an error when `strict`, else what was read.
async fn read_body(
    mut response: reqwest::Response,
    cap: usize,
    strict: bool,
) -> Result<Vec<u8>, StorageError> {
    let too_large =
        || storage_error(format!("the multipart upload listing is larger than {cap} bytes, refused"));
    if strict && response.content_length().is_some_and(|len| len > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|error| http_error("reading the multipart upload listing", error))?
    {
        if body.len() + chunk.len() > cap {
            if strict {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk[..cap - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `: Code: Message` from an S3 error document, and nothing else of it (some error documents
/// echo the request's access key and string to sign).
fn describe_s3_error(body: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(body) else { return String::new() };
    match quick_xml::de::from_str::<S3ErrorBody>(text) {
        Ok(S3ErrorBody { code, message }) => {
            [code, message].into_iter().flatten().fold(String::new(), |out, part| format!("{out}: {part}"))
        }
        Err(_) => String::new(),
    }
}

fn parse_listing(body: &[u8]) -> Result<ListingPage, StorageError> {
    let bad = |detail: String| storage_error(format!("malformed multipart upload listing: {detail}"));
    let text = std::str::from_utf8(body).map_err(|error| bad(error.to_string()))?;
    let result: ListMultipartUploadsResult =
        quick_xml::de::from_str(text).map_err(|error| bad(error.to_string()))?;
    let uploads = result
        .uploads
        .into_iter()
        .map(|entry| {
            // S3 writes `2010-11-10T20:48:33.000Z`; an offset instead of `Z` is accepted too.
            let initiated = chrono::DateTime::parse_from_rfc3339(entry.initiated.trim())
                .map_err(|error| {
                    bad(format!("upload of {:?} initiated {:?}: {error}", entry.key, entry.initiated))
                })?
                .into();
            Ok(PendingUpload { key: entry.key, upload_id: entry.upload_id, initiated })
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    let next = if result.is_truncated {
        let key = result.next_key_marker.filter(|key| !key.is_empty());
        let upload_id = result.next_upload_id_marker.unwrap_or_default();
        // Some S3-compatible servers leave the Next* markers out: the last upload listed is
        // where the next page starts, by the same (key, upload id) order.
        let marker = match (key, uploads.last()) {
            (Some(key), _) => Marker { key, upload_id },
            (None, Some(last)) => Marker { key: last.key.clone(), upload_id: last.upload_id.clone() },
            (None, None) => {
                return Err(bad("truncated, but with neither a next marker nor an upload".into()));
            }
        };
        Some(marker)
    } else {
        None
    };
    Ok(ListingPage { uploads, next })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const KEY_A: &str =
        "depproxy/blobs/sha256/2c/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const KEY_B: &str =
        "depproxy/blobs/sha256/48/486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7";

    fn upload_xml(key: &str, id: &str, initiated: &str) -> String {
        format!(
            "<Upload><Key>{key}</Key><UploadId>{id}</UploadId><Initiator><ID>arn:aws:iam::1:user/u</ID>\
             <DisplayName>u</DisplayName></Initiator><Owner><ID>75aa</ID><DisplayName>webfile</DisplayName>\
             </Owner><StorageClass>STANDARD</StorageClass><Initiated>{initiated}</Initiated></Upload>"
        )
    }

    fn result_xml(inner: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult \
             xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>depproxy</Bucket>\
             <KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>depproxy/</Prefix>\
             <MaxUploads>2</MaxUploads>{inner}</ListMultipartUploadsResult>"
        )
    }

    fn at(rfc3339: &str) -> SystemTime {
        chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
    }

    #[test]
    fn a_truncated_page_continues_at_the_next_markers() {
        let xml = result_xml(&format!(
            "<NextKeyMarker>{KEY_B}</NextKeyMarker><NextUploadIdMarker>id-b</NextUploadIdMarker>\
             <IsTruncated>true</IsTruncated>{}{}",
            upload_xml(KEY_A, "id-a", "2010-11-10T20:48:33.000Z"),
            upload_xml(KEY_B, "id-b", "2026-01-02T03:04:05Z"),
        ));
        let page = parse_listing(xml.as_bytes()).unwrap();
        assert_eq!(
            page.uploads,
            vec![
                PendingUpload {
                    key: KEY_A.into(),
                    upload_id: "id-a".into(),
                    initiated: at("2010-11-10T20:48:33Z")
                },
                PendingUpload {
                    key: KEY_B.into(),
                    upload_id: "id-b".into(),
                    initiated: at("2026-01-02T03:04:05Z")
                },
            ]
        );
        assert_eq!(page.next, Some(Marker { key: KEY_B.into(), upload_id: "id-b".into() }));
    }

    #[test]
    fn a_truncated_page_without_next_markers_continues_after_its_last_upload() {
        let xml = result_xml(&format!(
            "<NextKeyMarker></NextKeyMarker><IsTruncated>true</IsTruncated>{}",
            upload_xml(KEY_A, "id-a", "2010-11-10T20:48:33.000Z"),
        ));
        let page = parse_listing(xml.as_bytes()).unwrap();
        assert_eq!(page.next, Some(Marker { key: KEY_A.into(), upload_id: "id-a".into() }));
    }

    #[test]
    fn the_last_page_has_no_next_marker() {
        let xml = result_xml(&format!(
            "<IsTruncated>false</IsTruncated>{}",
            upload_xml("a&amp;b", "id-a", "2010-11-10T20:48:33.000Z")
        ));
        let page = parse_listing(xml.as_bytes()).unwrap();
        assert_eq!(page.uploads.len(), 1);
        assert_eq!(page.uploads[0].key, "a&b", "entities are decoded");
        assert_eq!(page.next, None);
    }

    #[test]
    fn an_empty_listing_has_no_uploads_and_no_next_page() {
        for xml in [
            result_xml("<IsTruncated>false</IsTruncated>"),
            result_xml(""),
            "<ListMultipartUploadsResult/>".to_owned(),
        ] {
            let page = parse_listing(xml.as_bytes()).unwrap();
            assert!(page.uploads.is_empty(), "{xml}");
            assert_eq!(page.next, None, "{xml}");
        }
    }

    #[test]
    fn malformed_listings_are_errors() {
        let truncated_without_marker = result_xml("<IsTruncated>true</IsTruncated>");
        let bad_date = result_xml(&upload_xml(KEY_A, "id-a", "yesterday"));
        let no_date = result_xml(&format!("<Upload><Key>{KEY_A}</Key><UploadId>id</UploadId></Upload>"));
        for xml in [truncated_without_marker.as_str(), &bad_date, &no_date, "<ListMultipartUploadsResult>"] {
            assert!(parse_listing(xml.as_bytes()).is_err(), "{xml}");
        }
        assert!(parse_listing(b"\xff\xfe").is_err());
    }

    #[test]
    fn staleness_is_the_age_at_least_older_than() {
        let now = at("2026-01-01T12:00:00Z");
        let upload = |initiated| PendingUpload { key: KEY_A.into(), upload_id: "id".into(), initiated };
        let hour = Duration::from_secs(3600);
        assert!(is_stale(&upload(at("2026-01-01T10:00:00Z")), now, hour));
        assert!(is_stale(&upload(at("2026-01-01T11:00:00Z")), now, hour));
        assert!(!is_stale(&upload(at("2026-01-01T11:30:00Z")), now, hour));
        assert!(!is_stale(&upload(at("2026-01-01T13:00:00Z")), now, hour), "future dates are fresh");
        assert!(is_stale(&upload(at("2026-01-01T13:00:00Z")), now, Duration::ZERO));
        assert!(!is_stale(&upload(at("2010-11-10T20:48:33Z")), now, Duration::MAX));
    }

    #[test]
    fn only_content_addressed_keys_under_the_prefix_are_ours() {
        assert!(is_ours("depproxy/", KEY_A));
        assert!(is_ours("", KEY_A.trim_start_matches("depproxy/")));
        assert!(!is_ours("other/", KEY_A));
        assert!(!is_ours("", KEY_A), "the prefix is part of the key");
        assert!(!is_ours("depproxy/", "depproxy/backups/db.tar"));
        assert!(!is_ours(
            "depproxy/",
            "depproxy/blobs/sha256/00/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        ));
    }

    #[test]
    fn error_documents_give_code_and_message_only() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code>\
            <Message>The signature does not match</Message><AWSAccessKeyId>AKIA</AWSAccessKeyId>\
            <StringToSign>secret-ish</StringToSign></Error>";
        assert_eq!(describe_s3_error(body), ": SignatureDoesNotMatch: The signature does not match");
        assert_eq!(describe_s3_error(b"<html>gateway timeout"), "");
    }
}
