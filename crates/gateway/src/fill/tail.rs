//! One client's position in a running fill. Yields bytes as they land in the spool; withholds
//! the last byte written until the fill is verified, so a client never sees a complete response
//! (nor every byte of an object it knows the size of) for content that then fails its check.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use super::state::{FillError, FillState, Streaming};

/// Largest read a tailing client makes at once.
const TAIL_CHUNK: usize = 1024 * 1024;

pub(crate) struct Tail {
    streaming: Arc<Streaming>,
    progress: watch::Receiver<u64>,
    state: watch::Receiver<FillState>,
    offset: u64,
    /// Where to stop: the end of the requested range, or never (the whole object).
    end: u64,
    progress_open: bool,
    done: bool,
}

impl Tail {
    /// A reader of the whole object, or of `range` of it.
    pub fn new(
        streaming: Arc<Streaming>,
        state: watch::Receiver<FillState>,
        range: Option<Range<u64>>,
    ) -> Self {
        let progress = streaming.spool.progress();
        let (offset, end) = range.map_or((0, u64::MAX), |range| (range.start, range.end));
        Tail { streaming, progress, state, offset, end, progress_open: true, done: false }
    }

    /// The next chunk, `None` at the verified end, an error when the fill failed.
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
                Some(Err(message)) => {
                    self.done = true;
                    return Some(Err(std::io::Error::other(message)));
                }
                Some(Ok(size)) => {
                    if self.offset >= size {
                        self.done = true;
                        return None;
                    }
                    size.min(self.end)
                }
                // Until the fill is verified the last byte written stays back, with or without a
                // Content-Length: a client that stops at the size it expects (or a chunked body
                // that happens to be whole) never holds a complete body that then fails. A range
                // that ends earlier gets its bytes as they come.
                None => self.progress.borrow().saturating_sub(1).min(self.end),
            };
            if self.offset < readable {
                let length = (readable - self.offset).min(TAIL_CHUNK as u64) as usize;
                let chunk = self.streaming.spool.read_at(self.offset, length).await;
                if let Ok(chunk) = &chunk {
                    self.offset += chunk.len() as u64;
                }
                return Some(chunk);
            }
            tokio::select! {
                changed = self.progress.changed(), if self.progress_open => {
                    if changed.is_err() {
                        self.progress_open = false;
                    }
                }
                changed = self.state.changed() => {
                    if changed.is_err() && !self.state.borrow().is_terminal() {
                        self.done = true;
                        return Some(Err(std::io::Error::other(FillError::Vanished.to_string())));
                    }
                }
            }
        }
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
