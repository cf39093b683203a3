//! The recent bytes of a fill, in memory: followers read them from here as they arrive — no disk
//! read, no blocking-pool hop, not even waiting for the disk write — and fall back to the spool
//! only when they lag behind the window. The window is bounded per fill and across fills (the
//! gateway's memory budget); when storage has failed (the fill streams on uncached) it also waits
//! for its slowest attached reader, since there is no spool to fall back to beyond what was written.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use tokio::sync::{Notify, watch};

/// Bytes of recent chunks all fills of a gateway keep together, beyond one chunk each.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    /// Fills keeping recent chunks in it.
    windows: AtomicUsize,
}

impl MemoryBudget {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryBudget { limit, used: AtomicUsize::new(0), windows: AtomicUsize::new(0) }
    }

    /// What one fill may keep when the budget is spent: an equal share.
    fn fair_share(&self) -> usize {
        self.limit / self.windows.load(Ordering::Relaxed).max(1)
    }

    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

struct Window {
    chunks: VecDeque<Bytes>,
    /// Offset of the first byte of `chunks`.
    start: u64,
    /// Bytes in `chunks`.
    len: usize,
    /// Positions of the attached readers.
    readers: Vec<Weak<AtomicU64>>,
    /// Bytes below this are readable from the spool (what was written before storage failed, or
    /// everything when it did not).
    spooled_floor: Option<u64>,
}

pub(crate) struct RecentChunks {
    window: Mutex<Window>,
    /// Bytes received so far (all of them hashed); followers may read below it.
    received: watch::Sender<u64>,
    /// Most bytes one fill keeps.
    per_fill: usize,
    budget: Arc<MemoryBudget>,
    /// Readers moved on: a fill waiting for room may go on.
    moved: Notify,
}

/// A reader's place in a fill; dropped with the reader, which then no longer holds the fill back.
pub(crate) struct ReaderPosition {
    offset: Arc<AtomicU64>,
    recent: Arc<RecentChunks>,
}

impl ReaderPosition {
    pub(crate) fn set(&self, offset: u64) {
        self.offset.store(offset, Ordering::Relaxed);
        self.recent.moved.notify_waiters();
    }
}

impl Drop for ReaderPosition {
    fn drop(&mut self) {
        self.recent.moved.notify_waiters();
    }
}

impl RecentChunks {
    pub(crate) fn new(per_fill: usize, budget: Arc<MemoryBudget>) -> Self {
        budget.windows.fetch_add(1, Ordering::Relaxed);
        RecentChunks {
            window: Mutex::new(Window {
                chunks: VecDeque::new(),
                start: 0,
                len: 0,
                readers: Vec::new(),
                spooled_floor: None,
            }),
            received: watch::channel(0).0,
            per_fill,
            budget,
            moved: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn received(&self) -> watch::Receiver<u64> {
        self.received.subscribe()
    }

    /// Registers a reader starting at `offset`.
    pub(crate) fn attach(self: &Arc<Self>, offset: u64) -> ReaderPosition {
        let position = Arc::new(AtomicU64::new(offset));
        let mut window = self.lock();
        window.readers.retain(|reader| reader.strong_count() > 0);
        window.readers.push(Arc::downgrade(&position));
        ReaderPosition { offset: position, recent: self.clone() }
    }

    /// How many readers are attached.
    pub(crate) fn attached(&self) -> usize {
        let mut window = self.lock();
        window.readers.retain(|reader| reader.strong_count() > 0);
        window.readers.len()
    }

    /// From now on there is no spool beyond `written`: chunks past it are kept until every
    /// attached reader has them.
    pub(crate) fn spool_ends_at(&self, written: u64) {
        self.lock().spooled_floor = Some(written);
    }

    /// Adds a chunk (already hashed). When the spool has ended, waits while the window is full
    /// of bytes some attached reader still needs.
    pub(crate) async fn push(&self, chunk: Bytes) {
        loop {
            let moved = self.moved.notified();
            if self.has_room() {
                break;
            }
            moved.await;
        }
        let end = {
            let mut window = self.lock();
            window.len += chunk.len();
            self.budget.used.fetch_add(chunk.len(), Ordering::Relaxed);
            window.chunks.push_back(chunk);
            self.evict(&mut window);
            window.start + window.len as u64
        };
        self.received.send_replace(end);
    }

    /// Whether a chunk may be added now: always, unless the spool ended and the window is full of
    /// bytes an attached reader has not read yet.
    fn has_room(&self) -> bool {
        let mut window = self.lock();
        let Some(floor) = window.spooled_floor else { return true };
        if window.len < self.per_fill {
            return true;
        }
        let slowest = Self::slowest(&mut window);
        slowest.is_none_or(|slowest| slowest.max(floor) > window.start)
    }

    fn slowest(window: &mut Window) -> Option<u64> {
        window.readers.retain(|reader| reader.strong_count() > 0);
        window.readers.iter().filter_map(Weak::upgrade).map(|position| position.load(Ordering::Relaxed)).min()
    }

    /// Drops the oldest chunks beyond the window's size — never the newest, and, once the spool has
    /// ended, never one an attached reader still needs. When the fills together are over budget,
    /// each keeps its equal share: the fills that started first do not take all the memory and
    /// leave the followers of later ones to read every chunk back from the spool.
    fn evict(&self, window: &mut Window) {
        let over_budget = self.budget.used() > self.budget.limit;
        let keep = if over_budget { self.per_fill.min(self.budget.fair_share()) } else { self.per_fill };
        let needed_from = match window.spooled_floor {
            Some(floor) => Self::slowest(window).map_or(u64::MAX, |slowest| slowest.max(floor)),
            None => u64::MAX,
        };
        while window.chunks.len() > 1 && window.len > keep {
            let Some(front) = window.chunks.front() else { break };
            let front_end = window.start + front.len() as u64;
            if front_end > needed_from {
                break;
            }
            let front_len = front.len();
            window.chunks.pop_front();
            window.start = front_end;
            window.len -= front_len;
            self.budget.used.fetch_sub(front_len, Ordering::Relaxed);
        }
    }

    /// Up to `max` bytes at `offset`, when they are still in memory.
    pub(crate) fn read(&self, offset: u64, max: usize) -> Option<Bytes> {
        let window = self.lock();
        if offset < window.start || offset >= window.start + window.len as u64 {
            return None;
        }
        let mut chunk_start = window.start;
        for chunk in &window.chunks {
            let chunk_end = chunk_start + chunk.len() as u64;
            if offset < chunk_end {
                let from = (offset - chunk_start) as usize;
                let to = chunk.len().min(from + max);
                return Some(chunk.slice(from..to));
            }
            chunk_start = chunk_end;
        }
        None
    }
}

impl Drop for RecentChunks {
    fn drop(&mut self) {
        let window = self.window.get_mut().unwrap_or_else(PoisonError::into_inner);
        self.budget.used.fetch_sub(window.len, Ordering::Relaxed);
        self.budget.windows.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[tokio::test]
    async fn a_window_of_recent_bytes_bounded_per_fill_and_overall() {
        let budget = Arc::new(MemoryBudget::new(10_000));
        let recent = RecentChunks::new(1_000, budget.clone());
        for byte in 0..5u8 {
            recent.push(chunk(byte, 400)).await;
        }
        assert_eq!(*recent.received().borrow(), 2_000);
        assert!(budget.used() <= 1_400, "about one window: {}", budget.used());
        assert_eq!(recent.read(1_999, 10).unwrap().as_ref(), &[4]);
        assert_eq!(recent.read(1_200, 10).unwrap().as_ref(), &[3; 10]);
        assert!(recent.read(100, 10).is_none(), "old bytes are on the spool only");
        drop(recent);
        assert_eq!(budget.used(), 0, "the budget gets everything back");
    }

    #[tokio::test]
    async fn over_budget_every_fill_keeps_its_equal_share() {
        let budget = Arc::new(MemoryBudget::new(4_000));
        let early = RecentChunks::new(4_000, budget.clone());
        for byte in 0..10u8 {
            early.push(chunk(byte, 400)).await;
        }
        assert_eq!(budget.used(), 4_000, "alone, the first fill keeps its whole window");
        let late = RecentChunks::new(4_000, budget.clone());
        for byte in 0..5u8 {
            late.push(chunk(byte, 400)).await;
            early.push(chunk(byte, 400)).await;
        }
        assert!(late.read(0, 1).is_some(), "the later fill keeps what it received, within its half");
        assert!(budget.used() <= 4_400, "the fills together stay about the budget: {}", budget.used());
        drop(early);
        assert_eq!(budget.fair_share(), 4_000, "a fill gone, its share goes to the others");
    }

    #[tokio::test]
    async fn with_no_spool_a_fill_waits_for_its_slowest_reader() {
        let budget = Arc::new(MemoryBudget::new(1 << 20));
        let recent = Arc::new(RecentChunks::new(1_000, budget));
        let reader = recent.attach(0);
        recent.spool_ends_at(0);
        for byte in 0..3u8 {
            recent.push(chunk(byte, 400)).await;
        }
        // The window is full of bytes the reader has not read: the next push waits.
        let pusher = tokio::spawn({
            let recent = recent.clone();
            async move { recent.push(chunk(9, 400)).await }
        });
        tokio::task::yield_now().await;
        assert!(!pusher.is_finished());
        assert_eq!(recent.read(0, 5).unwrap().as_ref(), &[0; 5], "nothing the reader needs was dropped");
        reader.set(800);
        pusher.await.unwrap();
        assert_eq!(*recent.received().borrow(), 1_600);
        assert!(recent.read(0, 1).is_none(), "read bytes may go");
        assert_eq!(recent.read(800, 1).unwrap().as_ref(), &[2]);
        drop(reader);
        assert_eq!(recent.attached(), 0);
    }
}
