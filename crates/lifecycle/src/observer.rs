//! [`RemovalObserver`]: what the process that removes rows tells at once (its own control plane's
//! remembered rows, its gateway's small objects), before other nodes notice through the database.

use std::future::Future;
use std::pin::Pin;

use oci::Digest;

/// Told of every removal this process makes, right after its transaction commits. `objects` are
/// the digests of the object rows removed (empty when only tags went).
pub trait RemovalObserver: Send + Sync {
    fn removed<'a>(&'a self, objects: &'a [Digest]) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}
