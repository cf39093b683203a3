//! Groups and how a request's image address selects one.
//!
//! A group owns a cache namespace, an upstream and its policies. Group-mode URLs name the group;
//! mirror-mode URLs (`/v2/<image>`) are served by the group `default`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oci::{ErrorCode, GroupPath, ImageAddress, OciError};
use upstream::UpstreamClient;

/// The group mirror-mode requests go to.
pub const DEFAULT_GROUP: &str = "default";

/// One configured group.
#[derive(Clone)]
pub struct GroupSettings {
    pub path: GroupPath,
    pub upstream: UpstreamClient,
    /// How long a cached tag is served without asking upstream.
    pub manifest_recheck: Duration,
}

/// All configured groups, by path.
#[derive(Clone, Default)]
pub struct Groups {
    by_path: BTreeMap<String, Arc<GroupSettings>>,
}

impl Groups {
    pub fn new(groups: impl IntoIterator<Item = GroupSettings>) -> Self {
        Groups {
            by_path: groups
                .into_iter()
                .map(|group| (group.path.as_str().to_owned(), Arc::new(group)))
                .collect(),
        }
    }

    pub fn get(&self, path: &str) -> Option<&Arc<GroupSettings>> {
        self.by_path.get(path)
    }

    /// The group that serves `image` as the request addressed it.
    pub fn resolve(
        &self,
        image: &ImageAddress,
        _query: Option<&str>,
    ) -> Result<Arc<GroupSettings>, OciError> {
        let path = match image {
            ImageAddress::Group { group, .. } => group.as_str(),
            ImageAddress::Root { .. } => DEFAULT_GROUP,
        };
        self.by_path.get(path).cloned().ok_or_else(|| {
            OciError::new(
                ErrorCode::NameUnknown,
                format!("no group {path:?} is configured on this proxy"),
            )
        })
    }
}
