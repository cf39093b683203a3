//! Forgetting admission verdicts on an operator's request (`DELETE /api/v1/verdicts/{digest}`):
//! the next request for the object asks its group's hook again.

use oci::Digest;

use crate::core::Lifecycle;
use crate::error::LifecycleError;

impl Lifecycle {
    /// Forgets every group's verdict on `digest`; says how many there were. This process's
    /// control plane forgets what it remembers at once, every other within the removal check
    /// (the database announces it like a removal). A refused object is fetched again on its next
    /// request (it was never stored) and held for the new verdict; an allowed one that is cached
    /// is judged again on its next hit.
    pub async fn forget_verdicts(&self, digest: &Digest) -> Result<u64, LifecycleError> {
        let forgotten = self.metadata.forget_verdicts(digest).await?;
        if forgotten > 0
            && let Some(observer) = self.removals.get()
        {
            // No object left storage: nothing for the gateway to drop.
            observer.removed(&[]).await;
        }
        Ok(forgotten)
    }
}
