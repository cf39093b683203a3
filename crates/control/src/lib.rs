//! The control plane: every request goes authenticate → the format its path is addressed to
//! (`formats`; OCI is the first) → resolve → authorize → decide → render (the internal token
//! first; then, for a group that needs one, the client's access token). It answers the gateway with an injector (`send-blob`
//! for a hit, `send-dependency` for a miss), a small direct answer (`/v2/`, HEAD of an uncached
//! object, tag lists, referrers lists) or an OCI error, and records fills at upload
//! authorize/finalize (and asks a group's admission hook whether a held fill's clients may have
//! its bytes). It never reads or writes object bytes, so no download can block it.
//!
//! Every route requires the gateway's signed internal token.

mod admission;
mod admission_hook;
mod authenticate;
mod authorize;
mod caller;
mod cargo_format;
mod error;
mod formats;
mod go_format;
mod maven_format;
mod npm_format;
mod oci_format;
mod packages;
mod passthrough;
mod plane;
mod pypi_format;
mod readiness;
mod referrers;
mod render;
mod routes;
mod sumdb;
mod token_endpoint;
mod upload;

pub use error::ControlError;
pub use formats::{describe_path, is_form_post};
pub use plane::{ControlParts, ControlPlane, FillReportSink};
pub use token_endpoint::{TokenRequest, parse_token_request};
