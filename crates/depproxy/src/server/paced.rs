//! Response bodies read from storage, handed to the connection one chunk at a time.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// A response body handed to the connection one chunk at a time: the next chunk is taken only once
/// the connection has let the previous one go (written it to the socket). hyper keeps taking
/// chunks while its write buffer has room; for a client reading slowly, that buffer stays full,
/// and a chunk or two per connection (up to 128 KiB) would sit in memory waiting for it.
pub(crate) struct OneChunkHeld<B> {
    inner: B,
    hand_off: Arc<HandOff>,
}

/// Whether a chunk handed on is still held, and who waits for it to be let go.
#[derive(Default)]
struct HandOff {
    held: AtomicBool,
    waiting: AtomicWaker,
}

/// A chunk's bytes; dropping them (the connection has written them) lets the next chunk go.
struct HeldChunk {
    bytes: bytes::Bytes,
    hand_off: Arc<HandOff>,
}

impl AsRef<[u8]> for HeldChunk {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for HeldChunk {
    fn drop(&mut self) {
        self.hand_off.held.store(false, Ordering::Release);
        self.hand_off.waiting.wake();
    }
}

impl<B> OneChunkHeld<B> {
    pub(crate) fn new(inner: B) -> Self {
        OneChunkHeld { inner, hand_off: Arc::default() }
    }
}

impl<B> http_body::Body for OneChunkHeld<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
        let this = &mut *self;
        if this.hand_off.held.load(Ordering::Acquire) {
            this.hand_off.waiting.register(cx.waker());
            // Let go between the first look and the registration: its wake-up may be lost.
            if this.hand_off.held.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        Poll::Ready(frame.map(|frame| {
            frame.map(|frame| match frame.into_data() {
                Ok(bytes) if !bytes.is_empty() => {
                    this.hand_off.held.store(true, Ordering::Release);
                    let held = HeldChunk { bytes, hand_off: this.hand_off.clone() };
                    http_body::Frame::data(bytes::Bytes::from_owner(held))
                }
                Ok(bytes) => http_body::Frame::data(bytes),
                Err(frame) => frame,
            })
        }))
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
    use super::*;

    #[tokio::test]
    async fn a_paced_body_hands_on_its_next_chunk_only_once_the_previous_is_let_go() {
        use http_body_util::BodyExt as _;
        let chunks = ["one", "two", "three"].map(|chunk| Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)));
        let mut body = OneChunkHeld::new(axum::body::Body::from_stream(futures_util::stream::iter(chunks)));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "one");
        let mut next = body.frame();
        assert!(futures_util::poll!(&mut next).is_pending(), "the first chunk is still held");
        let kept = first.clone();
        drop(first);
        assert!(futures_util::poll!(&mut next).is_pending(), "a clone holds the chunk too");
        drop(kept);
        let second = next.await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "two");
        drop(second);
        let third = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(third, "three");
        drop(third);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn letting_a_held_chunk_go_wakes_the_connection_waiting_for_the_next() {
        use http_body_util::BodyExt as _;
        let chunks = ["one", "two"].map(|chunk| Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)));
        let mut body = OneChunkHeld::new(axum::body::Body::from_stream(futures_util::stream::iter(chunks)));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        // The connection's task waits for the next chunk; another task writes the first out.
        let writer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            drop(first);
        });
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "two");
        writer.await.unwrap();
    }
}
