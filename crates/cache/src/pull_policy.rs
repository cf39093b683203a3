//! A group's pull policy: what may come through it (`allow`, `deny`), how long an upstream's 404
//! is remembered (`negative_ttl`), which tags never move (`immutable_tags`), and whether a tag
//! upstream deleted is still served (`stale_on_404`), and which hook must allow an object before
//! anyone gets it (`admission_hook`). Held in a [`PolicyCell`], so a configuration
//! reload (SIGHUP) replaces it for the requests that follow, without a restart.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::admission::AdmissionPolicy;
use crate::name_rules::{NameRules, TagPatterns};

/// What a group lets through and how it treats upstream's answers.
#[derive(Debug, Clone)]
pub struct PullPolicy {
    pub names: NameRules,
    /// How long an upstream's 404 is answered from memory; zero: never remembered.
    pub negative_ttl: Duration,
    /// Tags served without revalidation once cached, as digests are.
    pub immutable_tags: TagPatterns,
    /// Serve a cached tag (marked stale) when upstream now answers 404 for it.
    pub stale_on_404: bool,
    /// The hook that must allow an object before it is first served; none: no hold.
    pub admission: Option<Arc<AdmissionPolicy>>,
    /// A Go group's: the checksum database (its name, as in `GOSUMDB`) whose `h1:` hashes a
    /// module's `.zip` and `.mod` must match before they are recorded (`verify_sumdb`); none:
    /// recorded as fetched.
    pub verify_sumdb: Option<String>,
}

impl PullPolicy {
    /// No rules, and a 404 remembered for `negative_ttl`: the policy of a group that sets none.
    pub fn open(negative_ttl: Duration) -> Self {
        PullPolicy {
            names: NameRules::default(),
            negative_ttl,
            immutable_tags: TagPatterns::default(),
            stale_on_404: false,
            admission: None,
            verify_sumdb: None,
        }
    }
}

/// A group's current policy, replaced as a whole by a reload. Cloning shares the cell.
#[derive(Debug, Clone)]
pub struct PolicyCell(Arc<RwLock<Arc<PullPolicy>>>);

impl PolicyCell {
    pub fn new(policy: PullPolicy) -> Self {
        PolicyCell(Arc::new(RwLock::new(Arc::new(policy))))
    }

    /// The policy now in force.
    pub fn current(&self) -> Arc<PullPolicy> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Answers `read` under the policy now in force, without taking a reference to it (the hit
    /// path's check: a read lock, no reference count).
    pub fn with<T>(&self, read: impl FnOnce(&PullPolicy) -> T) -> T {
        read(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `policy` in force for every request that reads it from now on.
    pub fn replace(&self, policy: PullPolicy) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_policy_is_what_every_clone_reads() {
        let cell = PolicyCell::new(PullPolicy::open(Duration::from_secs(60)));
        let shared = cell.clone();
        let before = cell.current();
        let mut stricter = PullPolicy::open(Duration::ZERO);
        stricter.names = NameRules::new(&[], &["evil/*".to_owned()], ':').unwrap();
        shared.replace(stricter);
        assert_eq!(cell.current().negative_ttl, Duration::ZERO);
        assert!(cell.with(|policy| policy.names.check("evil/app", None).is_err()));
        assert_eq!(before.negative_ttl, Duration::from_secs(60), "a reader keeps what it took");
    }
}
