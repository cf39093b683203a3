//! Reading an object for a client at the client's pace: each read is about as large as what the
//! client takes in a few milliseconds, and reads go further ahead while the client waits for the
//! disk, fewer while the disk waits for the client — so a fast client streams at disk speed in
//! large reads and a slow one holds a small read at a time. Whatever each stream would like, the
//! streams of a store share one read-ahead budget: every stream always has its one small read,
//! anything larger or further ahead is taken from the budget, so 500 slow readers of a layer hold
//! a few megabytes, not one each.

use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use tokio::task::JoinHandle;

/// Smallest and largest read: a slow client holds a couple of small reads, a fast one gets large
/// reads (fewer blocking calls per byte).
pub(crate) const MIN_CHUNK: usize = 16 * 1024;
pub(crate) const MAX_CHUNK: usize = 256 * 1024;
/// A stream's first read, before its client's pace is known.
pub(crate) const FIRST_CHUNK: usize = 64 * 1024;
/// How much of the client's time one read covers: a client taking 1 MB/s gets 16 KiB reads, one
/// taking 16 MB/s or more the largest.
const PACE_WINDOW: Duration = Duration::from_millis(16);
/// How long the client's pace is measured over before the read size follows it: a socket drains
/// in bursts (the kernel wakes a writer once a good part of its buffer is free), and a burst says
/// nothing about how fast the client reads.
const PACE_MEASURED_OVER: Duration = Duration::from_millis(50);
/// Most reads in flight ahead of the client.
pub(crate) const MAX_DEPTH: usize = 4;

/// Bytes the streams of one store may read beyond each stream's own smallest read: room for
/// 32 clients streaming at disk speed (4 reads of 256 KiB each); past it, every further client
/// still streams, one small read at a time.
pub const READ_AHEAD_BUDGET: usize = 32 << 20;

/// The read-ahead shared by the streams of a store, in bytes.
#[derive(Debug)]
pub(crate) struct ReadAheadBudget {
    left: AtomicUsize,
}

impl ReadAheadBudget {
    pub(crate) fn new(bytes: usize) -> Arc<Self> {
        Arc::new(ReadAheadBudget { left: AtomicUsize::new(bytes) })
    }

    fn take(self: &Arc<Self>, bytes: usize) -> Option<Reserved> {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(bytes))
            .ok()
            .map(|_| Reserved { budget: self.clone(), bytes })
    }

    #[cfg(test)]
    fn left(&self) -> usize {
        self.left.load(Ordering::Acquire)
    }
}

/// Budget held by one read until the client takes its bytes.
struct Reserved {
    budget: Arc<ReadAheadBudget>,
    bytes: usize,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.budget.left.fetch_add(self.bytes, Ordering::AcqRel);
    }
}

/// Bytes read ahead, holding their budget until dropped.
struct Budgeted {
    bytes: Bytes,
    _reserved: Reserved,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A read in flight, and the budget it holds.
struct InFlight {
    read: JoinHandle<std::io::Result<Bytes>>,
    reserved: Option<Reserved>,
}

/// A positioned read: `want` bytes at an offset.
type ReadAt = dyn Fn(u64, usize) -> std::io::Result<Bytes> + Send + Sync;

/// A stream of positioned reads over `[next, end)`.
pub(crate) struct PacedReads {
    read_at: Arc<ReadAt>,
    next: u64,
    end: u64,
    in_flight: VecDeque<InFlight>,
    budget: Arc<ReadAheadBudget>,
    /// Reads kept in flight ahead of the one the client waits for.
    depth: usize,
    pace: Pace,
    /// Whether the client has been waiting for the front read (it found it not yet done).
    waited: bool,
    /// Nothing is read before the first request, so waiting for the first read says nothing
    /// about the client's pace.
    first: bool,
}

impl PacedReads {
    pub(crate) fn new(file: Arc<std::fs::File>, offset: u64, len: u64, budget: Arc<ReadAheadBudget>) -> Self {
        Self::over(Arc::new(move |start, want| read_exact_at(&file, start, want)), offset, len, budget)
    }

    fn over(read_at: Arc<ReadAt>, offset: u64, len: u64, budget: Arc<ReadAheadBudget>) -> Self {
        PacedReads {
            read_at,
            next: offset,
            end: offset + len,
            in_flight: VecDeque::new(),
            budget,
            depth: 1,
            pace: Pace::new(Instant::now()),
            waited: false,
            first: true,
        }
    }

    /// Starts the next read, if there is one and the budget allows it.
    fn launch(&mut self) -> bool {
        let mut want = (self.end - self.next).min(self.pace.chunk as u64) as usize;
        if want == 0 {
            return false;
        }
        // The stream's one small read is its own; anything larger or further ahead is budgeted.
        let own = if self.in_flight.is_empty() { MIN_CHUNK.min(want) } else { 0 };
        let reserved = if want > own {
            match self.budget.take(want - own) {
                Some(reserved) => Some(reserved),
                None if own > 0 => {
                    want = own;
                    None
                }
                None => return false,
            }
        } else {
            None
        };
        let (read_at, start) = (self.read_at.clone(), self.next);
        self.next += want as u64;
        let read = tokio::task::spawn_blocking(move || read_at(start, want));
        self.in_flight.push_back(InFlight { read, reserved });
        true
    }

    fn top_up(&mut self, reads: usize) {
        while self.in_flight.len() < reads && self.launch() {}
    }

    /// The client waited for the disk: read further ahead.
    fn faster(&mut self) {
        self.depth = (self.depth + 1).min(MAX_DEPTH);
    }

    /// The read was done before the client asked for it: the client is the slower side.
    fn slower(&mut self) {
        self.depth = (self.depth - 1).max(1);
    }
}

/// How fast the client takes bytes, and the read size that follows from it.
#[derive(Debug)]
struct Pace {
    measured_since: Instant,
    handed_since: usize,
    chunk: usize,
}

impl Pace {
    fn new(now: Instant) -> Self {
        Pace { measured_since: now, handed_since: 0, chunk: FIRST_CHUNK }
    }

    /// `bytes` go to the client at `now`: the client has taken what it was handed before (it
    /// asks for more only then), and these bytes are what it takes next.
    fn handed(&mut self, bytes: usize, now: Instant) {
        let elapsed = now.saturating_duration_since(self.measured_since);
        if elapsed >= PACE_MEASURED_OVER {
            if self.handed_since > 0 {
                let per_window =
                    self.handed_since as u128 * PACE_WINDOW.as_nanos() / elapsed.as_nanos().max(1);
                let chunk = usize::try_from(per_window).unwrap_or(MAX_CHUNK).clamp(MIN_CHUNK, MAX_CHUNK);
                // A power of two: reads stay page-aligned and the sizes few.
                self.chunk = 1 << (usize::BITS - 1 - chunk.leading_zeros());
            }
            (self.measured_since, self.handed_since) = (now, 0);
        }
        self.handed_since += bytes;
    }
}

impl Stream for PacedReads {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.top_up(1);
        let Some(front) = this.in_flight.front_mut() else {
            return Poll::Ready(None);
        };
        // A finished read can still answer Pending when the task has spent its cooperative
        // budget; that is the runtime asking the task to yield, not the client waiting for disk.
        let on_disk = !front.read.is_finished();
        match Pin::new(&mut front.read).poll(cx) {
            Poll::Pending => {
                this.waited |= on_disk;
                Poll::Pending
            }
            Poll::Ready(read) => {
                let reserved = this.in_flight.pop_front().and_then(|done| done.reserved);
                if std::mem::take(&mut this.first) {
                    this.waited = false;
                } else if std::mem::take(&mut this.waited) {
                    this.faster();
                } else {
                    this.slower();
                }
                let read = read.unwrap_or_else(|error| Err(std::io::Error::other(error)));
                if let Ok(bytes) = &read {
                    this.pace.handed(bytes.len(), Instant::now());
                }
                this.top_up(this.depth);
                // Budgeted bytes stay budgeted until whoever holds them (the HTTP connection's
                // write buffer, for a client slower than its socket) lets them go.
                Poll::Ready(Some(read.map(|bytes| match reserved {
                    Some(reserved) => Bytes::from_owner(Budgeted { bytes, _reserved: reserved }),
                    None => bytes,
                })))
            }
        }
    }
}

pub(crate) fn read_exact_at(file: &std::fs::File, offset: u64, want: usize) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt as _;
    let mut buffer = bytes::BytesMut::zeroed(want);
    file.read_exact_at(&mut buffer, offset)?;
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use futures_util::StreamExt as _;

    use super::*;

    fn file_of(bytes: &[u8]) -> Arc<std::fs::File> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        Arc::new(file)
    }

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn budget() -> Arc<ReadAheadBudget> {
        ReadAheadBudget::new(READ_AHEAD_BUDGET)
    }

    /// Waits until every read in flight has finished (the client arrives late).
    async fn reads_done(reads: &PacedReads) {
        while reads.in_flight.iter().any(|in_flight| !in_flight.read.is_finished()) {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn every_range_comes_back_whole() {
        let bytes = content(3 * MAX_CHUNK + 123);
        let file = file_of(&bytes);
        for (offset, len) in
            [(0, bytes.len()), (1, bytes.len() - 1), (FIRST_CHUNK + 5, 2 * MAX_CHUNK), (7, 0)]
        {
            let mut reads = PacedReads::new(file.clone(), offset as u64, len as u64, budget());
            let mut got = Vec::new();
            while let Some(chunk) = reads.next().await {
                got.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(got, bytes[offset..offset + len], "offset {offset} len {len}");
        }
    }

    /// A client taking `bytes_per_second`: the time it needs for `bytes` passes on the stream's
    /// clock before it asks for more.
    fn client_took(reads: &mut PacedReads, bytes: usize, bytes_per_second: f64) {
        reads.pace.measured_since -= Duration::from_secs_f64(bytes as f64 / bytes_per_second);
    }

    #[tokio::test]
    async fn a_slow_client_keeps_one_small_read_ahead() {
        let bytes = content(4 * 1024 * 1024);
        let mut reads = PacedReads::new(file_of(&bytes), 0, bytes.len() as u64, budget());
        let (mut got, mut sizes) = (Vec::new(), Vec::new());
        while let Some(chunk) = {
            reads_done(&reads).await;
            reads.next().await
        } {
            let chunk = chunk.unwrap();
            assert!(reads.in_flight.len() <= 1, "one read ahead of a slow client");
            client_took(&mut reads, chunk.len(), 1_000_000.0);
            sizes.push(chunk.len());
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, bytes);
        assert_eq!(sizes[0], FIRST_CHUNK, "the first read, before the pace is known");
        assert!(
            sizes[4..].iter().all(|&size| size == MIN_CHUNK),
            "a client taking 1 MB/s gets 16 KiB reads once its pace is known: {sizes:?}"
        );
    }

    #[test]
    fn the_read_size_follows_the_client_not_the_bursts_of_its_socket() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut pace = Pace::new(start);
        pace.handed(FIRST_CHUNK, at(0));
        assert_eq!(pace.chunk, FIRST_CHUNK, "nothing measured yet");
        // 64 KiB taken in 4 ms (16 MB/s), the next in 56 ms.
        pace.handed(FIRST_CHUNK, at(4));
        pace.handed(FIRST_CHUNK, at(60));
        assert_eq!(pace.chunk, 32 * 1024, "128 KiB over 60 ms: ~2 MB/s, not the burst's 16 MB/s");
        // A socket draining 256 KiB bursts once a second: ~256 KB/s, whatever the burst's speed.
        for second in 1..=3 {
            for chunk in 0..4 {
                pace.handed(FIRST_CHUNK, at(60 + second * 1000 + chunk));
            }
        }
        assert_eq!(pace.chunk, MIN_CHUNK);
        // A client at disk speed: 256 KiB every 100 µs.
        let mut now = at(5000);
        for _ in 0..1000 {
            now += Duration::from_micros(100);
            pace.handed(MAX_CHUNK, now);
        }
        assert_eq!(pace.chunk, MAX_CHUNK);
    }

    #[tokio::test]
    async fn streams_share_one_read_ahead_budget_and_give_it_back() {
        let bytes = content(2 * MAX_CHUNK + 99);
        let file = file_of(&bytes);
        let shared = ReadAheadBudget::new(MAX_CHUNK);
        let grown = |reads: &mut PacedReads| {
            (reads.depth, reads.pace.chunk) = (MAX_DEPTH, MAX_CHUNK);
            reads.top_up(MAX_DEPTH);
        };
        let mut first = PacedReads::new(file.clone(), 0, bytes.len() as u64, shared.clone());
        grown(&mut first);
        assert_eq!(first.in_flight.len(), 1, "a second large read would overdraw the budget");
        assert_eq!(shared.left(), MIN_CHUNK, "a large read takes all but the stream's own small read");
        let mut second = PacedReads::new(file.clone(), 0, bytes.len() as u64, shared.clone());
        grown(&mut second);
        assert_eq!(second.in_flight.len(), 1, "with the budget spent, a stream keeps its own read");
        assert_eq!(shared.left(), MIN_CHUNK, "the stream's own read takes nothing from the budget");
        let large = first.next().await.unwrap().unwrap();
        assert_eq!(large.len(), MAX_CHUNK);
        assert!(shared.left() < MIN_CHUNK * 2, "a chunk handed on keeps its budget while it is held");
        let mut kept = vec![large];
        for reads in [&mut first, &mut second] {
            let mut got = Vec::new();
            while let Some(chunk) = reads.next().await {
                kept.push(chunk.unwrap());
            }
            got.extend(kept.drain(..).flat_map(|chunk| chunk.to_vec()));
            assert_eq!(got, bytes);
        }
        drop((first, second));
        assert_eq!(
            shared.left(),
            MAX_CHUNK,
            "every byte of the budget comes back once the chunks are dropped"
        );
    }

    #[tokio::test]
    async fn a_client_that_waits_for_the_disk_gets_deeper_larger_reads() {
        // A disk that reads below an offset only once the test allows it: the client always
        // asks first.
        let gate = Arc::new((std::sync::Mutex::new(0u64), std::sync::Condvar::new()));
        let disk_gate = gate.clone();
        let disk = move |start: u64, want: usize| {
            let (allowed_below, changed) = &*disk_gate;
            let mut allowed = allowed_below.lock().unwrap();
            while *allowed <= start {
                allowed = changed.wait(allowed).unwrap();
            }
            Ok(Bytes::from(vec![1u8; want]))
        };
        let allow_read_at = |offset: u64| {
            *gate.0.lock().unwrap() = offset + 1;
            gate.1.notify_all();
        };
        let total = 4 * 1024 * 1024;
        let mut reads = PacedReads::over(Arc::new(disk), 0, total, budget());
        let mut received = 0;
        loop {
            let mut next = reads.next();
            let waited = futures_util::poll!(&mut next);
            if received == total {
                assert!(matches!(waited, std::task::Poll::Ready(None)));
                break;
            }
            assert!(waited.is_pending(), "the client asks before the disk has read");
            allow_read_at(received);
            match next.await {
                Some(chunk) => received += chunk.unwrap().len() as u64,
                None => break,
            }
            if received > total / 2 {
                assert_eq!(reads.depth, MAX_DEPTH, "reading as far ahead as a stream may");
            }
        }
        assert_eq!(received, total);
    }
}
