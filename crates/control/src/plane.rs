//! [`ControlPlane`]: the cache's domain, access control and the verifier of internal tokens,
//! shared by all requests.

use std::sync::Arc;

use access::{Access, TrustedProxies};
use cache::Cache;
use injector::RequestVerifier;

use crate::readiness::Readiness;

pub struct ControlPlane {
    pub(crate) cache: Arc<Cache>,
    pub(crate) verifier: RequestVerifier,
    pub(crate) access: Arc<Access>,
    /// The base URL clients reach the proxy at (token realm); from the request's `Host` when unset.
    pub(crate) public_url: Option<String>,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) fill_reports: Option<FillReportSink>,
    /// The last readiness check, reused for a second.
    pub(crate) readiness: Readiness,
}

/// What a control plane is built from.
pub struct ControlParts {
    pub cache: Arc<Cache>,
    pub verifier: RequestVerifier,
    pub access: Arc<Access>,
    pub public_url: Option<String>,
    pub trusted_proxies: TrustedProxies,
    /// Takes the fill reports gateways send (the JSON body), for the admin API.
    pub fill_reports: Option<FillReportSink>,
}

/// What takes a gateway's fill report.
pub type FillReportSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

impl ControlPlane {
    pub fn new(parts: ControlParts) -> Arc<Self> {
        // Groups may gain a hook on a reload: the client is there for them from the start.
        match crate::admission_hook::HttpHook::new() {
            Ok(hook) => parts.cache.use_admission_hook(Arc::new(hook)),
            Err(error) => tracing::error!(%error,
                "cannot build the admission hooks' HTTP client; groups with admission_hook get no verdict"),
        }
        Arc::new(ControlPlane {
            cache: parts.cache,
            verifier: parts.verifier,
            access: parts.access,
            public_url: parts.public_url.map(|url| url.trim_end_matches('/').to_owned()),
            trusted_proxies: parts.trusted_proxies,
            fill_reports: parts.fill_reports,
            readiness: Readiness::default(),
        })
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}
