//! Package document fills this control plane decided and whose record has not come yet.

use oci::GroupPath;

/// Package documents whose fill this control plane decided and whose record has not come yet:
/// their files are listed when it comes, a moment after their clients got the bytes. A file asked
/// for in between waits for that record rather than reading the document from the upstream again.
#[derive(Default)]
pub(crate) struct FillingDocuments {
    started: std::sync::Mutex<std::collections::HashMap<(GroupPath, String), std::time::Instant>>,
    pub(crate) recorded: tokio::sync::Notify,
}

/// A document fill not recorded within this long is not waited for (it failed, or another node
/// records it).
const DOCUMENT_FILL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl FillingDocuments {
    pub(crate) fn started(&self, group: &GroupPath, package: &str) {
        let mut started = self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        started.retain(|_, at| at.elapsed() < DOCUMENT_FILL_WAIT);
        started.insert((group.clone(), package.to_owned()), std::time::Instant::now());
    }

    pub(crate) fn ended(&self, group: &GroupPath, package: &str) {
        let mut started = self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if started.remove(&(group.clone(), package.to_owned())).is_some() {
            self.recorded.notify_waiters();
        }
    }

    pub(crate) fn filling(&self, group: &GroupPath, package: &str) -> bool {
        let started = self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        started.get(&(group.clone(), package.to_owned())).is_some_and(|at| at.elapsed() < DOCUMENT_FILL_WAIT)
    }
}
