//! The gateway (data plane): the public listener. It forwards every request to the control plane
//! and executes the injector it gets back — `send-blob` (serve a cached object) or
//! `send-dependency` (fetch from upstream once, stream to every waiting client while storing,
//! verify, finalize). It makes no policy decision of its own.

mod access_log;
mod control_channel;
mod error;
mod fill;
mod forward;
mod health;
mod metrics;
mod ranges;
mod readiness;
mod respond;
mod rewrite;
mod routes;
mod send_blob;
mod send_dependency;
mod small_objects;
mod state;

pub use control_channel::{ControlChannel, InProcessControl};
pub use error::GatewayError;
pub use fill::{FillLimits, Fills};
pub use metrics::{GatewayMetrics, Observability};
pub use ranges::{Unsatisfiable, requested_range};
pub use send_blob::ReadAtClientPace;
pub use send_dependency::AnswerFromFill;
pub use small_objects::SmallObjectSettings;
pub use state::{Gateway, GatewayParts, GatewaySettings, PathRules, UpstreamHttp};
