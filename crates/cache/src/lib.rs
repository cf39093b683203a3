//! The cache's domain, with no HTTP in it: groups and how a request's address resolves to one, the
//! catalog of what each group has cached (the metadata database with positive answers kept in
//! memory), tag freshness and its coalesced revalidation, fill leases across nodes, and the
//! hit/miss [`Decision`] the control plane renders into an injector.

mod access_policy;
mod catalog;
mod decide;
mod error;
mod fills;
mod freshness;
mod groups;
mod lifecycle;
mod limits;
mod metrics;
mod reads;
mod single_flight;
mod state;

pub use access_policy::{AccessMode, AccessPolicy};
pub use catalog::CatalogSettings;
pub use decide::{Decision, Fetch, StoredObject};
pub use error::CacheError;
pub use fills::{FillPermit, Lease};
pub use groups::{DEFAULT_GROUP, GroupSettings, Groups, GroupsError, ResolveError, Resolved, UpstreamRoute};
pub use lifecycle::{LifecyclePolicy, PinError, Pins};
pub use limits::Limits;
pub use metadata::Clock;
pub use metrics::CacheMetrics;
pub use single_flight::SingleFlight;
pub use state::{Cache, CacheSettings, CommitObserver};

#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tests;
