//! A request body under the body-read deadline (`[server] body_read_timeout`): from the moment
//! the handler first asks for the body, the client has that long to send all of it. A request
//! in flight keeps its connection busy (never idle), so without this a client that sends a head
//! announcing a body and then nothing would hold its connection for ever.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

/// Whether a request's body missed its deadline (the listener then answers `408` itself).
#[derive(Debug, Default)]
pub(crate) struct BodyDeadline {
    missed: AtomicBool,
}

impl BodyDeadline {
    pub(crate) fn missed(&self) -> bool {
        self.missed.load(Ordering::Acquire)
    }
}

/// The client did not send the request body within the body-read timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub(crate) struct BodyTimedOut(Duration);

/// `inner`, failing with [`BodyTimedOut`] when it is not complete `limit` after the first read.
pub(crate) struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    deadline: Arc<BodyDeadline>,
}

impl<B> DeadlineBody<B> {
    pub(crate) fn new(inner: B, limit: Duration, deadline: Arc<BodyDeadline>) -> Self {
        DeadlineBody { inner, limit, timer: None, deadline }
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, axum::BoxError>>> {
        let this = &mut *self;
        if this.deadline.missed() {
            return Poll::Ready(Some(Err(BodyTimedOut(this.limit).into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(Into::into))),
            Poll::Pending => {
                // The clock starts at the first read: a handler may look at the body late (and
                // an `Expect: 100-continue` client sends nothing before that).
                let limit = this.limit;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.deadline.missed.store(true, Ordering::Release);
                Poll::Ready(Some(Err(BodyTimedOut(limit).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tokio::time::Instant;

    use super::*;

    /// A body that sends `chunks` spaced by `gap`, then stalls for ever.
    fn trickle(chunks: usize, gap: Duration) -> axum::body::Body {
        let stream = futures_util::stream::unfold(0, move |sent| async move {
            if sent == chunks {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(gap).await;
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x")), sent + 1))
        });
        axum::body::Body::from_stream(stream)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_fails_at_the_deadline_and_says_so() {
        let deadline = Arc::new(BodyDeadline::default());
        let body =
            DeadlineBody::new(trickle(2, Duration::from_secs(1)), Duration::from_secs(30), deadline.clone());
        let started = Instant::now();
        let error = body.collect().await.unwrap_err();
        assert!(error.is::<BodyTimedOut>(), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(deadline.missed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_trickling_a_byte_at_a_time_is_cut_at_the_total_deadline() {
        let deadline = Arc::new(BodyDeadline::default());
        // One byte every 10 s for ever: each gap is short, the whole is not.
        let body = DeadlineBody::new(
            trickle(usize::MAX, Duration::from_secs(10)),
            Duration::from_secs(30),
            deadline.clone(),
        );
        let started = Instant::now();
        assert!(body.collect().await.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(deadline.missed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_sent_in_time_is_read_whole() {
        let deadline = Arc::new(BodyDeadline::default());
        let chunks = ["form=", "fields"].map(|chunk| Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)));
        let inner = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
        let body = DeadlineBody::new(inner, Duration::from_secs(30), deadline.clone());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "form=fields");
        assert!(!deadline.missed());
    }
}
