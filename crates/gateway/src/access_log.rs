//! One access-log line per request (target `depproxy::access`), written when the response body
//! ends or the client goes away: client address, group, image, reference or digest, decision,
//! the upstream the object came from, status, bytes sent, duration and time to the response head.
//! No header value, so no secret. Turned off with `RUST_LOG=…,depproxy::access=off`.

use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};

/// The log target.
pub const TARGET: &str = "depproxy::access";

/// What is known of a request once its response head is ready.
pub(crate) struct AccessEntry {
    pub client: IpAddr,
    pub method: http::Method,
    /// The image and reference (or digest) from the path; the path itself when it names none.
    /// Cut by the path's shape, not parsed again: the control plane has validated the names of
    /// hits and misses, and anything else is client text, logged cut short.
    pub image: String,
    pub reference: String,
    /// The group the control plane resolved (empty when it did not get that far).
    pub group: String,
    /// `hit`, `miss`, `relay` or `denied` (the control plane refused: 401, 403, 429).
    pub decision: &'static str,
    /// The upstream the object came from: for a miss, the one that served the fill; for a hit,
    /// the one recorded with the object. Empty when none (or not known).
    pub upstream: String,
    pub status: http::StatusCode,
    pub started: Instant,
    /// Time to the response head, in ms.
    pub head_ms: f64,
}

impl AccessEntry {
    /// The image and reference `path` names, by the formats' `describe`; the path itself when it
    /// names none. Both cut short.
    pub(crate) fn describe_path(
        path: &str,
        describe: fn(&str) -> Option<(&str, String)>,
    ) -> (String, String) {
        match describe(path) {
            Some((image, reference)) => (truncated(image), truncated(&reference)),
            None => (truncated(path), String::new()),
        }
    }

    fn write(&self, bytes: u64, complete: bool) {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: TARGET,
            client = %self.client,
            method = %self.method,
            group = %self.group,
            image = %self.image,
            reference = %self.reference,
            decision = self.decision,
            upstream = %self.upstream,
            status = self.status.as_u16(),
            bytes,
            complete,
            duration_ms = (duration_ms * 10.0).round() / 10.0,
            head_ms = (self.head_ms * 10.0).round() / 10.0,
        );
    }
}

/// The mark a fill's answer carries (in its extensions): the upstream that served it, by its
/// configured name — known only once a source answered.
#[derive(Debug, Clone)]
pub(crate) struct ServedBy(pub String);

/// Paths and names are logged cut short: they may be client text of any length.
fn truncated(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// Whether access lines would be written at all (so a request pays nothing when they are off).
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// `response` with a body that writes `entry` once it ends (or is dropped unfinished).
pub(crate) fn logged(response: Response, entry: AccessEntry) -> Response {
    let (parts, body) = response.into_parts();
    // What the client is owed: hyper stops polling a body once it has sent Content-Length bytes.
    let bodyless = entry.method == http::Method::HEAD || matches!(entry.status.as_u16(), 204 | 304);
    let expected = if bodyless {
        Some(0)
    } else {
        parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse().ok())
    };
    let body = LoggedBody { inner: body, bytes: 0, expected, entry: Some(entry) };
    Response::from_parts(parts, Body::new(body))
}

struct LoggedBody {
    inner: Body,
    bytes: u64,
    expected: Option<u64>,
    entry: Option<AccessEntry>,
}

impl LoggedBody {
    fn finish(&mut self, complete: bool) {
        if let Some(entry) = self.entry.take() {
            entry.write(self.bytes, complete);
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(context);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // An empty body (HEAD, 304) is never polled, and a body of known length is dropped once
        // that length is sent.
        let complete =
            self.inner.is_end_stream() || self.expected.is_some_and(|expected| self.bytes >= expected);
        self.finish(complete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names the last segment of a path under `/v2/x/`, as a format would.
    fn describe(path: &str) -> Option<(&str, String)> {
        path.strip_prefix("/v2/x/").map(|reference| ("x", reference.to_owned()))
    }

    #[test]
    fn paths_are_described_as_the_formats_say_and_cut_short() {
        assert_eq!(AccessEntry::describe_path("/v2/x/3.20", describe), ("x".to_owned(), "3.20".to_owned()));
        let (image, reference) = AccessEntry::describe_path(&format!("/{}", "x".repeat(500)), describe);
        assert_eq!((image.len(), reference.as_str()), (200, ""));
        let (image, reference) = AccessEntry::describe_path(&format!("/v2/x/{}", "é".repeat(300)), describe);
        assert_eq!((image.as_str(), reference.chars().count()), ("x", 200), "cut on a character boundary");
    }
}
