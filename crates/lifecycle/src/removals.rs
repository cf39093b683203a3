//! After a removal: this process forgets the rows at once, and deletes their objects only once
//! every other node had `removal_notice` to notice (see `metadata::sweep`).

use std::time::Instant;

use oci::Digest;

use crate::core::Lifecycle;

impl Lifecycle {
    /// Rows were removed (`objects`: the digests of the object rows among them): tells the
    /// observer, and dates the removal for [`Lifecycle::await_removal_notice`].
    pub(crate) async fn removed(&self, objects: &[Digest]) {
        *self.last_removal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        if let Some(observer) = self.removals.get() {
            observer.removed(objects).await;
        }
    }

    /// Waits until `removal_notice` has passed since this process last removed rows, so deletions
    /// queued by those removals are due (the database holds them back until then anyway).
    pub(crate) async fn await_removal_notice(&self) {
        let last = *self.last_removal.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(last) = last {
            tokio::time::sleep_until((last + self.settings.removal_notice).into()).await;
        }
    }
}
