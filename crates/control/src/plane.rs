//! [`ControlPlane`]: the cache's domain and the verifier of internal tokens, shared by all requests.

use std::sync::Arc;

use cache::Cache;
use injector::RequestVerifier;

pub struct ControlPlane {
    pub(crate) cache: Cache,
    pub(crate) verifier: RequestVerifier,
}

impl ControlPlane {
    pub fn new(cache: Cache, verifier: RequestVerifier) -> Arc<Self> {
        Arc::new(ControlPlane { cache, verifier })
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}
