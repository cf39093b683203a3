//! `depproxy cache warm`: pulls every platform of images through a running proxy, as a client, so
//! that later pulls are cache hits; for a package group (npm, PyPI), a package's document and the
//! files of a version (`packages`).
//!
//! It only speaks the registry API to the proxy's public listener, so it works the same against
//! `serve` and against a gateway of a split deployment, and it leaves every decision (what is
//! cached, what is fetched upstream, who may pull) to the proxy. Objects are addressed in the group
//! form (`/v2/<group>/dependency_proxy/containers/<image>/…`) even for `default`: that form names
//! exactly one group, while the mirror form `/v2/<image>` is taken by an upstream's path prefix
//! when the image's first component happens to be that upstream's name.
//!
//! Scheduled warming (`app::warming`) pulls with the same client ([`Client`], [`warm_tags`]),
//! in memory through the gateway of its own process in `serve`.

mod bounded;
mod client;
mod manifest;
mod package_args;
mod packages;
mod plan;
mod progress;
mod report;
mod run;

pub use client::{Client, Credential, TOKEN_USERNAME, Transport};
pub use packages::{
    ListedFile, NPM_ACCEPT, PYPI_ACCEPT, PackageArg, PackageListing, parse_package, read_package, warm_files,
};
pub use plan::{DEFAULT_CONCURRENCY, WarmOptions, default_proxy_url};
pub use report::{WarmFailed, WarmFailure, WarmKind, WarmSummary};
pub use run::{warm, warm_tags};
