//! One client's position in a running fill. Yields bytes as they arrive — from the fill's recent
//! chunks in memory, or from the spool when the client lags behind them — and withholds the last
//! byte received until the fill is verified, so a client never sees a complete response (nor every
//! byte of an object it knows the size of) for content that then fails its check.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use super::recent::ReaderPosition;
use super::state::{FillError, FillState, Streaming};

/// Largest read a tailing client makes at once.
const TAIL_CHUNK: usize = 1024 * 1024;

pub(crate) struct Tail {
    streaming: Arc<Streaming>,
    received: watch::Receiver<u64>,
    spooled: Option<watch::Receiver<u64>>,
    state: watch::Receiver<FillState>,
    offset: u64,
    /// Where to stop: the end of the requested range, or never (the whole object).
    end: u64,
    /// Tells the fill how far this reader is (it waits for readers when it cannot spool).
    position: ReaderPosition,
    done: bool,
}

impl Tail {
    /// A reader of the whole object, or of `range` of it.
    pub fn new(
        streaming: Arc<Streaming>,
        state: watch::Receiver<FillState>,
        range: Option<Range<u64>>,
    ) -> Self {
        let (offset, end) = range.map_or((0, u64::MAX), |range| (range.start, range.end));
        let received = streaming.recent.received();
        let spooled = streaming.spool.as_ref().map(|spool| spool.progress());
        let position = streaming.recent.attach(offset);
        Tail { streaming, received, spooled, state, offset, end, position, done: false }
    }

    /// The next chunk, `None` at the verified end (or the end of the range), an error when the
    /// fill failed.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.done {
            return None;
        }
        loop {
            if self.offset >= self.end {
                self.done = true;
                return None;
            }
            let terminal = match &*self.state.borrow() {
                FillState::Verified(finished) | FillState::Committed(finished) => Some(Ok(finished.size)),
                FillState::Failed(error) => Some(Err(error.to_string())),
                FillState::Connecting | FillState::Streaming(_) => None,
            };
            let readable = match terminal {
                Some(Err(message)) => return self.fail(message),
                Some(Ok(size)) => {
                    if self.offset >= size {
                        self.done = true;
                        return None;
                    }
                    size.min(self.end)
                }
                // Until the fill is verified the last byte received stays back, with or without a
                // Content-Length: a client that stops at the size it expects (or a chunked body
                // that happens to be whole) never holds a complete body that then fails. A range
                // that ends earlier gets its bytes as they come.
                None => self.received.borrow().saturating_sub(1).min(self.end),
            };
            if self.offset < readable {
                let want = (readable - self.offset).min(TAIL_CHUNK as u64) as usize;
                if let Some(chunk) = self.streaming.recent.read(self.offset, want) {
                    return Some(Ok(self.advance(chunk)));
                }
                // Behind the recent bytes: from the spool, as far as it was written.
                let Some(spool) = &self.streaming.spool else {
                    return self.fail(FillError::FellBehind.to_string());
                };
                let written = self.spooled.as_ref().map_or(0, |spooled| *spooled.borrow());
                if self.offset < written {
                    let want = want.min((written - self.offset) as usize);
                    return Some(spool.read_at(self.offset, want).await.map(|chunk| self.advance(chunk)));
                }
                if self.spooled.as_ref().is_none_or(|spooled| spooled.has_changed().is_err()) {
                    // The spool ended below us (storage failed) and memory no longer has the bytes.
                    return self.fail(FillError::FellBehind.to_string());
                }
            }
            // The recent chunks outlive this reader (it holds them), so `received` never closes.
            let spooled = &mut self.spooled;
            let spool_progress = async move {
                match spooled {
                    Some(spooled) => spooled.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let mut spool_open = true;
            let mut fill_gone = false;
            tokio::select! {
                _ = self.received.changed() => {}
                open = spool_progress => spool_open = open,
                changed = self.state.changed() => {
                    fill_gone = changed.is_err() && !self.state.borrow().is_terminal();
                }
            }
            if !spool_open {
                self.spooled = None;
            }
            if fill_gone {
                return self.fail(FillError::Vanished.to_string());
            }
        }
    }

    fn advance(&mut self, chunk: Bytes) -> Bytes {
        self.offset += chunk.len() as u64;
        self.position.set(self.offset);
        chunk
    }

    fn fail(&mut self, message: String) -> Option<Result<Bytes, std::io::Error>> {
        self.done = true;
        Some(Err(std::io::Error::other(message)))
    }

    /// The tail as a response body stream.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold(self, |mut tail| async move {
            tail.next_chunk().await.map(|item| (item, tail))
        })
    }
}
