//! [`Gate`]: where a streaming response stops until the test lets it go on.

use std::sync::Arc;

use tokio::sync::watch;

/// A gate a streaming response waits at: the body sends `before` bytes, then waits until the test
/// calls [`Gate::open`].
#[derive(Clone, Debug)]
pub struct Gate {
    pub before: usize,
    open: Arc<watch::Sender<bool>>,
}

impl Gate {
    pub fn new(before: usize) -> Self {
        Gate { before, open: Arc::new(watch::channel(false).0) }
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    pub(crate) async fn wait(&self) {
        let mut receiver = self.open.subscribe();
        let _ = receiver.wait_for(|open| *open).await;
    }
}
