//! Scheduled warming's pulls (`lifecycle::Warming` decides what and when; for a package group it
//! reads each package's document through here first): through the gateway of
//! this process, in memory (`serve`), or through the gateways at `public_url` (`control`), as a
//! registry client would — with a registry token the control plane mints for the group, so a
//! group with `access = "token"` is warmed too.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use access::Access;
use lifecycle::{
    PackageTarget, PackageVersions, PullFailure, PullFuture, PullOutcome, VersionsFuture, WarmPuller,
    WarmTarget,
};
use oci::GroupPath;

use crate::cli::warm::{Client, Credential, Transport, WarmSummary, read_package, warm_files, warm_tags};

/// Objects a scheduled run fetches at once: a background job, kept well below the fill limits.
const CONCURRENCY: usize = 4;

/// Pulls through a gateway.
pub struct ProxyPuller {
    transport: Transport,
    access: Arc<Access>,
}

impl ProxyPuller {
    /// Through `gateway`'s router, in this process.
    pub fn in_process(router: axum::Router, access: Arc<Access>) -> Self {
        ProxyPuller { transport: Transport::InProcess { router }, access }
    }

    /// Through the gateways at `public_url`.
    pub fn over_http(public_url: &str, access: Arc<Access>) -> anyhow::Result<Self> {
        let user_agent = concat!("depproxy-scheduled-warm/", env!("CARGO_PKG_VERSION"));
        Ok(ProxyPuller { transport: Transport::http(public_url, "public_url", user_agent)?, access })
    }
}

impl ProxyPuller {
    /// A client of `group` with a registry token the control plane mints for each request.
    fn client(&self, group: &GroupPath) -> Client {
        let access = self.access.clone();
        let granted = group.clone();
        let mint = move || match access.warming_token(&granted) {
            Ok(token) => Some(token),
            Err(error) => {
                tracing::warn!(%error, group = %granted, "cannot make scheduled warming's registry token");
                None
            }
        };
        Client::with(self.transport.clone(), group.clone(), Credential::Minted(Arc::new(mint)))
    }
}

/// What a pull fetched, and its failures in the lifecycle's words.
fn outcome(summary: WarmSummary) -> PullOutcome {
    PullOutcome {
        manifests: summary.manifests,
        blobs: summary.blobs,
        bytes: summary.bytes,
        failures: summary
            .failures
            .into_iter()
            .map(|failure| PullFailure {
                message: match failure.status {
                    Some(status) => format!("{} {status} {}", failure.object, failure.message),
                    None => format!("{} {}", failure.object, failure.message),
                },
                target: failure.image,
            })
            .collect(),
    }
}

impl WarmPuller for ProxyPuller {
    fn pull<'a>(
        &'a self,
        group: &'a GroupPath,
        targets: &'a [WarmTarget],
        bytes: Arc<AtomicU64>,
    ) -> PullFuture<'a> {
        Box::pin(async move {
            let client = self.client(group);
            let tags: Vec<_> =
                targets.iter().map(|target| (target.image.clone(), target.tag.clone())).collect();
            let summary =
                warm_tags(&client, &tags, CONCURRENCY, bytes).await.map_err(|error| format!("{error:#}"))?;
            Ok(outcome(summary))
        })
    }

    fn package_versions<'a>(
        &'a self,
        group: &'a GroupPath,
        format: cache::Format,
        package: &'a str,
    ) -> VersionsFuture<'a> {
        Box::pin(async move {
            let listing = read_package(&self.client(group), format, package).await?;
            Ok(PackageVersions {
                versions: listing.versions,
                latest: listing.latest,
                files: listing.files.into_iter().map(|file| (file.version, file.path)).collect(),
                bytes: listing.bytes,
            })
        })
    }

    fn pull_packages<'a>(
        &'a self,
        group: &'a GroupPath,
        targets: &'a [PackageTarget],
        bytes: Arc<AtomicU64>,
    ) -> PullFuture<'a> {
        Box::pin(async move {
            let files: Vec<(String, Vec<String>)> =
                targets.iter().map(|target| (target.written(), target.files.clone())).collect();
            let summary = warm_files(&self.client(group), &files, CONCURRENCY, bytes)
                .await
                .map_err(|error| format!("{error:#}"))?;
            Ok(outcome(summary))
        })
    }
}
