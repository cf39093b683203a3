//! depproxy's integration tests, one binary (linking sqlx, aws-lc and axum once, not once per
//! area): a module per area, the shared harness in `support`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access;
mod admin_api;
mod admission;
mod cli;
mod cli_docs;
mod cli_hints;
mod concurrency;
mod contract;
mod control_tls;
mod crash;
mod deb_install;
mod degraded;
mod e2e_access;
mod e2e_admission;
mod e2e_cargo;
mod e2e_go;
mod e2e_lifecycle;
mod e2e_maven;
mod e2e_npm;
mod e2e_ordered_upstreams;
mod e2e_package_policy;
mod e2e_package_warm;
mod e2e_policy;
mod e2e_pypi;
mod e2e_referrers;
mod e2e_registry;
mod e2e_upstreams;
mod egress;
mod faults;
mod lifecycle;
mod limits;
mod multi_node;
mod ordered_upstreams;
mod package_lifecycle;
mod packages;
mod pull;
mod readme;
mod referrers;
mod removals;
mod s3_lifecycle;
mod s3_postgres;
mod s3_sweep;
mod shutdown;
mod status_page;
mod tls_listeners;
mod upstreams;
mod warm;
mod warm_schedule;
