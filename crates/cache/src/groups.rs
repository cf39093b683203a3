//! Groups and how a request's address selects one (and the image name upstream knows).
//!
//! A group owns a cache namespace, its upstreams and its policies. The rules, in order:
//! 1. group form `/v2/<group>/dependency_proxy/containers/<image>` → that group;
//! 2. `?ns=<registry host>` (containerd) → the *mirror group* of the upstream whose URL has that
//!    host (`docker.io` means Docker Hub); an unconfigured host is refused, never proxied;
//! 3. `/v2/<prefix>/<image>` where `<prefix>` is the name of an upstream configured with
//!    `path_prefix = true` → that upstream's mirror group, image `<image>` (the prefix wins over a
//!    root image whose first component happens to be the same word);
//! 4. anything else `/v2/<image>` → the group `default`.
//!
//! An upstream's mirror group is the `default` group if that uses it, else the first configured
//! group that uses it, else an implicit group `upstream/<name>` with default policies — so root,
//! `?ns=` and prefix requests for the same registry share one cache. "Uses it" means as its only
//! upstream: `?ns=` and the prefix name one registry, and get that registry's content only, never
//! another upstream's that a group with several would ask first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oci::{GroupPath, ImageAddress, OciError, RepositoryName};
use upstream::UpstreamClient;

use crate::access_policy::AccessPolicy;
use crate::format::Format;
use crate::lifecycle::LifecyclePolicy;
use crate::pull_policy::{PolicyCell, PullPolicy};
use crate::upstreams::Upstreams;

/// The group mirror-mode requests go to.
pub const DEFAULT_GROUP: &str = "default";

/// Why a request's address names no group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no group {0:?} is configured on this proxy")]
    UnknownGroup(String),
    #[error("registry {0:?} is not configured as an upstream of this proxy")]
    UnknownRegistry(String),
    #[error("no group \"default\" is configured for mirror-mode requests")]
    NoDefaultGroup,
}

/// Why a set of groups cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error("upstream {upstream:?} cannot have an implicit mirror group: {reason}")]
    ImplicitGroup { upstream: String, reason: OciError },
}

/// One configured group.
#[derive(Clone)]
pub struct GroupSettings {
    pub path: GroupPath,
    /// The protocol its clients and its upstreams speak.
    pub format: Format,
    /// The upstreams it asks, in order (one in the single-upstream form).
    pub upstreams: Upstreams,
    /// How long a cached tag (or, in a package group, a document: `document_recheck`) is served
    /// without asking upstream.
    pub manifest_recheck: Duration,
    /// Who may pull through it.
    pub access: AccessPolicy,
    /// TTL, quota and pins.
    pub lifecycle: LifecyclePolicy,
    /// What may come through it and how upstream's answers are treated; replaced by a reload.
    pub policy: PolicyCell,
}

/// An upstream as the router sees it.
#[derive(Clone)]
pub struct UpstreamRoute {
    pub upstream: UpstreamClient,
    /// The protocol it speaks: only an OCI upstream is reached through mirror addresses.
    pub format: Format,
    /// Reachable as `/v2/<upstream name>/<image>`.
    pub path_prefix: bool,
    /// The policy of its implicit mirror group, when no configured group uses it.
    pub implicit_access: AccessPolicy,
}

struct Mirror {
    route: UpstreamRoute,
    group: Arc<GroupSettings>,
}

/// A request's group and the image name within it.
pub struct Resolved {
    pub group: Arc<GroupSettings>,
    pub image: RepositoryName,
}

/// All groups, by path, and the mirror group of every upstream.
#[derive(Default)]
pub struct Groups {
    by_path: BTreeMap<String, Arc<GroupSettings>>,
    mirrors: Vec<Mirror>,
}

impl Groups {
    /// `default_recheck`, `default_lifecycle` and `default_policy` apply to implicit mirror
    /// groups.
    pub fn new(
        groups: impl IntoIterator<Item = GroupSettings>,
        upstreams: impl IntoIterator<Item = UpstreamRoute>,
        default_recheck: Duration,
        default_lifecycle: LifecyclePolicy,
        default_policy: PullPolicy,
    ) -> Result<Self, GroupsError> {
        let ordered: Vec<Arc<GroupSettings>> = groups.into_iter().map(Arc::new).collect();
        let mut by_path: BTreeMap<String, Arc<GroupSettings>> =
            ordered.iter().map(|group| (group.path.as_str().to_owned(), group.clone())).collect();
        let mut mirrors = Vec::new();
        for route in upstreams.into_iter().filter(|route| route.format == Format::Oci) {
            let name = route.upstream.name().to_owned();
            let uses = |group: &&Arc<GroupSettings>| group.upstreams.is_only(&name);
            let group = match by_path.get(DEFAULT_GROUP).filter(|group| uses(group)) {
                Some(group) => group.clone(),
                None => match ordered.iter().find(uses) {
                    Some(group) => group.clone(),
                    None => {
                        let implicit = Arc::new(GroupSettings {
                            format: Format::Oci,
                            path: GroupPath::parse(&format!("upstream/{name}")).map_err(|reason| {
                                GroupsError::ImplicitGroup { upstream: name.clone(), reason }
                            })?,
                            upstreams: Upstreams::single(route.upstream.clone()),
                            manifest_recheck: default_recheck,
                            access: route.implicit_access.clone(),
                            lifecycle: default_lifecycle.clone(),
                            policy: PolicyCell::new(default_policy.clone()),
                        });
                        by_path.insert(implicit.path.as_str().to_owned(), implicit.clone());
                        implicit
                    }
                },
            };
            mirrors.push(Mirror { route, group });
        }
        Ok(Groups { by_path, mirrors })
    }

    pub fn get(&self, path: &str) -> Option<&Arc<GroupSettings>> {
        self.by_path.get(path)
    }

    /// Every group, configured and implicit, by path.
    pub fn all(&self) -> impl Iterator<Item = &Arc<GroupSettings>> {
        self.by_path.values()
    }

    /// Puts `policy` in force for the configured group at `path` (a configuration reload); `false`
    /// when no such group runs (groups come and go with a restart only).
    pub fn replace_policy(&self, path: &str, policy: PullPolicy) -> bool {
        match self.by_path.get(path) {
            Some(group) => {
                group.policy.replace(policy);
                true
            }
            None => false,
        }
    }

    /// Whether `client` may pull from every group without credentials (then `GET /v2/` needs none).
    pub fn all_anonymous_for(&self, client: std::net::IpAddr) -> bool {
        self.by_path.values().all(|group| group.access.allows_anonymous(client))
    }

    /// The group that serves the request, and the image name within that group.
    /// The group `path` of a package format: it must have that format.
    pub fn package_group(&self, format: Format, path: &str) -> Result<Arc<GroupSettings>, ResolveError> {
        self.by_path
            .get(path)
            .filter(|group| group.format == format)
            .cloned()
            .ok_or_else(|| ResolveError::UnknownGroup(path.to_owned()))
    }

    pub fn resolve(&self, address: &ImageAddress, query: Option<&str>) -> Result<Resolved, ResolveError> {
        match address {
            ImageAddress::Group { group, image } => {
                let group = self
                    .by_path
                    .get(group.as_str())
                    .filter(|found| found.format == Format::Oci)
                    .cloned()
                    .ok_or_else(|| ResolveError::UnknownGroup(group.as_str().to_owned()))?;
                Ok(Resolved { group, image: image.clone() })
            }
            ImageAddress::Root { image } => {
                if let Some(namespace) = oci::registry::namespace_parameter(query) {
                    let mirror = self
                        .mirrors
                        .iter()
                        .find(|mirror| host_matches(&mirror.route.upstream, &namespace))
                        .ok_or(ResolveError::UnknownRegistry(namespace))?;
                    return Ok(Resolved { group: mirror.group.clone(), image: image.clone() });
                }
                if let Some((first, rest)) = image.strip_first_component()
                    && let Some(mirror) = self
                        .mirrors
                        .iter()
                        .find(|mirror| mirror.route.path_prefix && mirror.route.upstream.name() == first)
                {
                    return Ok(Resolved { group: mirror.group.clone(), image: rest });
                }
                let group = self
                    .by_path
                    .get(DEFAULT_GROUP)
                    .filter(|found| found.format == Format::Oci)
                    .cloned()
                    .ok_or(ResolveError::NoDefaultGroup)?;
                Ok(Resolved { group, image: image.clone() })
            }
        }
    }
}

/// Whether containerd's `ns` names this upstream (`docker.io` and its aliases name Docker Hub).
fn host_matches(upstream: &UpstreamClient, namespace: &str) -> bool {
    (upstream.is_docker_hub() && oci::registry::is_docker_hub_host(namespace))
        || upstream.host_port().eq_ignore_ascii_case(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(name: &str, url: &str) -> UpstreamClient {
        UpstreamClient::new(upstream::UpstreamConfig {
            name: name.into(),
            url: url.parse().unwrap(),
            credentials: None,
            http: upstream::HttpOptions {
                connect_timeout: Duration::from_secs(5),
                header_timeout: Duration::from_secs(30),
                extra_ca_pem: Vec::new(),
                redirect_allow: Vec::new(),
                realm_allow: Vec::new(),
                proxy: None,
            },
            metrics: upstream::UpstreamMetrics::default(),
            files_url: None,
        })
        .unwrap()
    }

    fn group(path: &str, upstream: &UpstreamClient) -> GroupSettings {
        group_of(path, &[upstream])
    }

    fn group_of(path: &str, upstreams: &[&UpstreamClient]) -> GroupSettings {
        GroupSettings {
            path: GroupPath::parse(path).unwrap(),
            format: Format::Oci,
            upstreams: Upstreams::new(upstreams.iter().map(|upstream| (*upstream).clone()).collect())
                .unwrap(),
            manifest_recheck: Duration::from_secs(1),
            access: AccessPolicy::anonymous(),
            lifecycle: LifecyclePolicy::default(),
            policy: PolicyCell::new(PullPolicy::open(Duration::from_secs(60))),
        }
    }

    fn root(image: &str) -> ImageAddress {
        ImageAddress::Root { image: RepositoryName::parse(image).unwrap() }
    }

    fn groups() -> Groups {
        let hub = upstream("dockerhub", "https://registry-1.docker.io");
        let lab = upstream("lab", "http://127.0.0.1:5001");
        let ghcr = upstream("ghcr", "https://ghcr.io");
        Groups::new(
            [group("default", &hub), group("acme/platform", &lab)],
            [
                UpstreamRoute {
                    format: Format::Oci,
                    upstream: hub,
                    path_prefix: false,
                    implicit_access: AccessPolicy::anonymous(),
                },
                UpstreamRoute {
                    format: Format::Oci,
                    upstream: lab,
                    path_prefix: true,
                    implicit_access: AccessPolicy::anonymous(),
                },
                UpstreamRoute {
                    format: Format::Oci,
                    upstream: ghcr,
                    path_prefix: true,
                    implicit_access: AccessPolicy::token(),
                },
            ],
            Duration::from_secs(300),
            LifecyclePolicy::default(),
            PullPolicy::open(Duration::from_secs(60)),
        )
        .unwrap()
    }

    fn resolve(groups: &Groups, image: &str, query: Option<&str>) -> (String, String) {
        let resolved = groups.resolve(&root(image), query).unwrap();
        (resolved.group.path.to_string(), resolved.image.to_string())
    }

    #[test]
    fn root_ns_and_prefix_forms() {
        let groups = groups();
        assert_eq!(resolve(&groups, "library/alpine", None), ("default".into(), "library/alpine".into()));
        assert_eq!(
            resolve(&groups, "library/alpine", Some("ns=docker.io")),
            ("default".into(), "library/alpine".into())
        );
        for alias in ["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "Docker.IO"] {
            assert_eq!(
                resolve(&groups, "library/alpine", Some(&format!("ns={alias}"))),
                ("default".into(), "library/alpine".into()),
                "{alias}"
            );
        }
        assert_eq!(
            resolve(&groups, "lab/tiny", Some("ns=127.0.0.1:5001")),
            ("acme/platform".into(), "lab/tiny".into())
        );
        assert_eq!(
            resolve(&groups, "lab/tiny", None),
            ("acme/platform".into(), "tiny".into()),
            "prefix wins"
        );
        assert_eq!(resolve(&groups, "ghcr/owner/app", None), ("upstream/ghcr".into(), "owner/app".into()));
        assert_eq!(
            resolve(&groups, "owner/app", Some("ns=ghcr.io")),
            ("upstream/ghcr".into(), "owner/app".into())
        );
        assert_eq!(
            resolve(&groups, "dockerhub/alpine", None),
            ("default".into(), "dockerhub/alpine".into()),
            "prefix off"
        );
    }

    #[test]
    fn a_group_with_several_upstreams_is_no_upstreams_mirror_group() {
        let hub = upstream("hub", "https://registry-1.docker.io");
        let internal = upstream("internal", "http://127.0.0.1:5001");
        let route = |upstream: &UpstreamClient| UpstreamRoute {
            format: Format::Oci,
            upstream: upstream.clone(),
            path_prefix: true,
            implicit_access: AccessPolicy::anonymous(),
        };
        let groups = Groups::new(
            [group_of("default", &[&internal, &hub])],
            [route(&internal), route(&hub)],
            Duration::from_secs(300),
            LifecyclePolicy::default(),
            PullPolicy::open(Duration::from_secs(60)),
        )
        .unwrap();
        assert_eq!(resolve(&groups, "library/alpine", None), ("default".into(), "library/alpine".into()));
        assert_eq!(
            resolve(&groups, "library/alpine", Some("ns=docker.io")),
            ("upstream/hub".into(), "library/alpine".into()),
            "?ns= names one registry"
        );
        assert_eq!(resolve(&groups, "internal/app", None), ("upstream/internal".into(), "app".into()));
        assert_eq!(groups.get("default").unwrap().upstreams.names(), ["internal", "hub"]);
    }

    #[test]
    fn unknown_registries_and_groups_are_refused() {
        let groups = groups();
        let refused = |result: Result<Resolved, ResolveError>| match result {
            Err(error) => error,
            Ok(resolved) => panic!("resolved to {}", resolved.group.path),
        };
        let error = refused(groups.resolve(&root("x/y"), Some("ns=evil.example.com")));
        assert_eq!(error, ResolveError::UnknownRegistry("evil.example.com".into()));
        assert!(error.to_string().contains("evil.example.com"));
        let address = ImageAddress::Group {
            group: GroupPath::parse("nope").unwrap(),
            image: RepositoryName::parse("x").unwrap(),
        };
        assert_eq!(refused(groups.resolve(&address, None)), ResolveError::UnknownGroup("nope".into()));
    }
}
