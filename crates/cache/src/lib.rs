//! The cache's domain, with no HTTP in it: the formats ([`Format`]), groups and how a request's
//! address resolves to one, a group's upstreams and the order it asks them in ([`Upstreams`]), the catalog of what each group has cached (the metadata database with
//! positive answers kept in memory), document freshness and its coalesced revalidation, fill
//! leases across nodes, and the hit/miss [`Decision`] the control plane renders into an injector.
//! Each format's decisions live in a module of their own (`oci_decisions`, and `referrers` for the
//! OCI referrers lists, cached as documents); the rest is shared —
//! each group's pull policy too (`allow`/`deny` rules, remembered 404s, immutable tags, serving
//! what upstream deleted, the admission hook that holds new artifacts back until it allows them),
//! reloadable without a restart — and what scheduled warming needs: its patterns and which tags
//! they pick (`warm_rules`), tag listings and whether a tag moved (`warm_tags`).

mod access_policy;
mod admission;
mod admission_checks;
mod catalog;
mod decision;
mod error;
mod filling_documents;
mod fills;
mod format;
mod freshness;
mod gone_upstream;
mod groups;
mod lifecycle;
mod limits;
mod metrics;
mod name_rules;
mod not_found;
mod oci_decisions;
mod package_names;
mod packages;
mod probed_files;
mod pull_checks;
mod pull_policy;
mod reads;
mod referrers;
mod single_flight;
mod state;
mod upstreams;
mod warm_rules;
mod warm_tags;

pub use access_policy::{AccessMode, AccessPolicy};
pub use admission::{
    Admission, AdmissionHook, AdmissionPolicy, AdmissionQuestion, AdmittedBy, HookVerdict, NO_ANSWER_MEMORY,
    OnTimeout,
};
pub use admission_checks::PackageSubject;
pub use catalog::CatalogSettings;
pub use decision::{Decision, Fetch, FetchSource, Stale, StoredObject};
pub use error::CacheError;
pub use fills::{FillPermit, Lease};
pub use format::{Format, UnknownFormat};
pub use gone_upstream::GoneEntry;
pub use groups::{DEFAULT_GROUP, GroupSettings, Groups, GroupsError, ResolveError, Resolved, UpstreamRoute};
pub use lifecycle::{LifecyclePolicy, PinError, Pins};
pub use limits::Limits;
pub use metadata::Clock;
pub use metrics::CacheMetrics;
pub use name_rules::{NameRules, Refusal, RuleError, TagPatterns};
pub use package_names::PackageNameError;
pub use packages::{DocumentRequest, ListFiles, PackageNotFound};
pub use probed_files::{Probe, UnlistedFile, sidecar_checksum};
pub use pull_policy::{PolicyCell, PullPolicy};
pub use referrers::Referrers;
pub use single_flight::SingleFlight;
pub use state::{Cache, CacheSettings, CommitObserver};
pub use upstreams::{MAX_UPSTREAMS, Upstreams, UpstreamsError, first_answer};
pub use warm_rules::{MIN_WARM_EVERY, WarmPattern, WarmRuleError, WarmSchedule, newest_first};
pub use warm_tags::{ListedTags, TagCheck};

#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod referrers_tests;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstreams_tests;
