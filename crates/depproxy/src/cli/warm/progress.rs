//! What a warm run shows while it runs: a bar on a terminal, a line per object elsewhere; or,
//! for scheduled warming, nothing but the bytes received (its job shows them).

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar on a terminal; one line per object otherwise (CI logs, files), where a bar would be noise.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    /// Silent: nothing shown, the bytes received counted here.
    received: Option<Arc<AtomicU64>>,
    blobs_total: AtomicUsize,
    blobs_done: AtomicUsize,
    manifests_done: AtomicUsize,
}

impl Progress {
    pub(super) fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} resolving manifests: {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            received: None,
            blobs_total: AtomicUsize::new(0),
            blobs_done: AtomicUsize::new(0),
            manifests_done: AtomicUsize::new(0),
        }
    }

    /// Shows nothing; counts the bytes received into `received`.
    pub(super) fn silent(received: Arc<AtomicU64>) -> Progress {
        Progress {
            bar: None,
            received: Some(received),
            blobs_total: AtomicUsize::new(0),
            blobs_done: AtomicUsize::new(0),
            manifests_done: AtomicUsize::new(0),
        }
    }

    /// A line for someone watching, where a bar would be noise; nothing when silent.
    fn line(&self, line: &str) {
        if self.received.is_none() {
            eprintln!("{line}");
        }
    }

    pub(super) fn manifest(&self, line: &str) {
        let done = self.manifests_done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => bar.set_message(format!("{done} fetched")),
            None => self.line(line),
        }
    }

    pub(super) fn start_blobs(&self, count: usize, total_bytes: u64) {
        self.blobs_total.store(count, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => {
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                ) {
                    bar.set_style(style);
                }
                bar.set_length(total_bytes);
                bar.set_position(0);
                bar.set_message(format!("0/{count} blobs"));
            }
            None => self.line(&format!("fetching {count} blob(s), {}", HumanBytes(total_bytes))),
        }
    }

    pub(super) fn bytes(&self, received: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(received);
        }
        if let Some(counter) = &self.received {
            counter.fetch_add(received, Ordering::Relaxed);
        }
    }

    pub(super) fn blob(&self, line: &str) {
        let done = self.blobs_done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{done}/{} blobs", self.blobs_total.load(Ordering::Relaxed)))
            }
            None => self.line(line),
        }
    }

    pub(super) fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => self.line(line),
        }
    }

    pub(super) fn failure(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("failed: {line}")),
            None => self.line(&format!("failed: {line}")),
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
