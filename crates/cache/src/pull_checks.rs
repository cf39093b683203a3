//! A group's pull policy applied to requests: the `allow`/`deny` rules (before anything is looked
//! up or asked), the upstream 404s remembered for `negative_ttl`, and the list of tags served
//! although upstream lost them (`stale_on_404`).

use oci::{GroupPath, ObjectKind, Reference};
use upstream::UpstreamError;

use crate::error::CacheError;
use crate::gone_upstream::GoneEntry;
use crate::groups::{GroupSettings, Resolved};
use crate::name_rules::Refusal;
use crate::not_found::Missing;
use crate::state::Cache;

impl Cache {
    /// Whether the request's artifact may be pulled through its group: the image as upstream
    /// names it, with `tag` (`None`: by digest, or a listing of the name). A refusal is counted.
    pub fn check_pull(&self, resolved: &Resolved, tag: Option<&str>) -> Result<(), Refusal> {
        let group = &resolved.group;
        let checked = group.policy.with(|policy| {
            if policy.names.is_empty() {
                return Ok(());
            }
            let name = group.upstreams.repository(&resolved.image);
            policy.names.check(name.as_str(), tag)
        });
        if checked.is_err() {
            self.metrics.policy_refused(&group.path);
        }
        checked
    }

    /// Answers 404 from memory when upstream answered 404 for `missing` within the group's
    /// `negative_ttl` (counted), so upstream is not asked again.
    pub(crate) fn answer_remembered_404(
        &self,
        group: &GroupSettings,
        missing: &Missing,
    ) -> Result<(), CacheError> {
        let window = group.policy.with(|policy| policy.negative_ttl);
        if self.not_found.is_remembered(missing, self.clock.now_ms(), window) {
            self.metrics.not_found_remembered(&group.path);
            return Err(CacheError::NotFoundRemembered { kind: missing.kind, window });
        }
        Ok(())
    }

    /// Passes an upstream answer on, remembering a 404 for the group's `negative_ttl`.
    pub(crate) fn noting_404<T>(
        &self,
        group: &GroupSettings,
        missing: impl FnOnce() -> Missing,
        answer: Result<T, UpstreamError>,
    ) -> Result<T, UpstreamError> {
        if let Err(UpstreamError::NotFound(_)) = &answer {
            let window = group.policy.with(|policy| policy.negative_ttl);
            self.not_found.remember(missing(), self.clock.now_ms(), window);
        }
        answer
    }

    /// A gateway's fill of this object got 404 from upstream: the next requests within the
    /// group's `negative_ttl` are answered 404 without asking.
    pub fn fill_not_found(&self, resolved: &Resolved, kind: ObjectKind, reference: &Reference) {
        let group = &resolved.group;
        let window = group.policy.with(|policy| policy.negative_ttl);
        let missing = Missing {
            group: group.path.clone(),
            kind,
            repository: group.upstreams.repository(&resolved.image),
            reference: reference.clone(),
        };
        self.not_found.remember(missing, self.clock.now_ms(), window);
    }

    /// An object was stored after all: whatever 404 was remembered for it is forgotten.
    pub(crate) fn found(&self, missing: &Missing) {
        self.not_found.forget(missing);
    }

    /// The tags of `group` served although upstream answers 404 for them (`stale_on_404`), most
    /// recently served first: what this node has served so, since it started.
    pub fn gone_upstream(&self, group: &GroupPath) -> Vec<GoneEntry> {
        self.gone.of_group(group)
    }
}
