//! A group's upstreams, in the order it asks them (`upstreams = ["internal", "hub"]`; one for the
//! single-upstream form): which to ask first — the configured order, or the upstream that served
//! a tag before — and asking them in turn until one answers. Every failure moves on to the next
//! upstream; an outage moves on and counts against the upstream's health (`upstream::Attempts`).

use std::future::Future;

use oci::RepositoryName;
use upstream::{Attempts, UpstreamClient, UpstreamError};

/// The most upstreams a group may have: each miss of an object none has asks every one.
pub const MAX_UPSTREAMS: usize = 8;

/// A group's upstreams, in order; never empty.
#[derive(Clone)]
pub struct Upstreams {
    list: Vec<UpstreamClient>,
}

/// Why a group's upstreams cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamsError {
    #[error("a group needs at least one upstream")]
    Empty,
    #[error("a group has at most {MAX_UPSTREAMS} upstreams, not {0}")]
    TooMany(usize),
    #[error("upstream {0:?} is listed twice")]
    Duplicate(String),
}

impl Upstreams {
    /// The upstreams in the order they are asked.
    pub fn new(list: Vec<UpstreamClient>) -> Result<Self, UpstreamsError> {
        if list.is_empty() {
            return Err(UpstreamsError::Empty);
        }
        if list.len() > MAX_UPSTREAMS {
            return Err(UpstreamsError::TooMany(list.len()));
        }
        for (index, upstream) in list.iter().enumerate() {
            if list[..index].iter().any(|earlier| earlier.name() == upstream.name()) {
                return Err(UpstreamsError::Duplicate(upstream.name().to_owned()));
            }
        }
        Ok(Upstreams { list })
    }

    /// The single-upstream form.
    pub fn single(upstream: UpstreamClient) -> Self {
        Upstreams { list: vec![upstream] }
    }

    /// The first upstream asked.
    pub fn first(&self) -> &UpstreamClient {
        // Never empty: `new` refuses an empty list.
        &self.list[0]
    }

    /// How many there are (at least one).
    pub fn count(&self) -> usize {
        self.list.len()
    }

    /// Whether the group has exactly this one upstream.
    pub fn is_only(&self, name: &str) -> bool {
        self.list.len() == 1 && self.first().name() == name
    }

    pub fn iter(&self) -> impl Iterator<Item = &UpstreamClient> {
        self.list.iter()
    }

    /// Their names, in order.
    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|upstream| upstream.name().to_owned()).collect()
    }

    /// The upstream named `name`, if the group has it.
    pub fn get(&self, name: &str) -> Option<&UpstreamClient> {
        self.list.iter().find(|upstream| upstream.name() == name)
    }

    /// The order to ask them in: `preferred` first (the upstream that served the object before,
    /// when the group still has it), then the others in the configured order.
    pub fn in_order(&self, preferred: Option<&str>) -> Vec<&UpstreamClient> {
        let preferred = preferred.and_then(|name| self.get(name));
        preferred
            .into_iter()
            .chain(
                self.list
                    .iter()
                    .filter(|upstream| preferred.is_none_or(|first| first.name() != upstream.name())),
            )
            .collect()
    }

    /// The name the group's rows use for an image: with `library/` added for a single-component
    /// name when one of its upstreams is Docker Hub (so `alpine` and `library/alpine` share one
    /// entry). Each upstream is asked for the image by its own rule
    /// ([`UpstreamClient::upstream_repository`]).
    pub fn repository(&self, image: &RepositoryName) -> RepositoryName {
        if self.list.iter().any(UpstreamClient::is_docker_hub) {
            image.with_library_prefix()
        } else {
            image.clone()
        }
    }
}

/// Asks `order`'s upstreams in turn with `call` until one answers; the answer and the upstream
/// that gave it. An upstream that fails is moved past — counted against its health when it is an
/// outage — and when all fail the answer is the first failure that was not a 404.
pub async fn first_answer<'a, T, F, Fut>(
    order: &[&'a UpstreamClient],
    call: F,
) -> Result<(T, &'a UpstreamClient), UpstreamError>
where
    F: Fn(&'a UpstreamClient) -> Fut,
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let mut attempts = Attempts::default();
    for (index, upstream) in order.iter().copied().enumerate() {
        match call(upstream).await {
            Ok(answer) => return Ok((answer, upstream)),
            Err(error) => {
                if index + 1 < order.len() {
                    moved_past(upstream, &error);
                }
                attempts.upstream_failed(error);
            }
        }
    }
    Err(attempts.into_error().unwrap_or_else(|| UpstreamError::Protocol("the group has no upstream".into())))
}

/// Notes that a request moved past `upstream` because of `error`.
pub(crate) fn moved_past(upstream: &UpstreamClient, error: &UpstreamError) {
    if error.counts_against_health() {
        upstream.failed_over();
        tracing::info!(upstream = upstream.name(), %error, "upstream failed; asking the group's next upstream");
    } else {
        tracing::debug!(upstream = upstream.name(), %error, "not at this upstream; asking the group's next upstream");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::named_upstream_client;

    #[test]
    fn a_group_asks_the_upstream_that_served_first_then_the_others_in_order() {
        let internal = named_upstream_client("internal", "http://127.0.0.1:9");
        let hub = named_upstream_client("hub", "https://registry-1.docker.io");
        let mirror = named_upstream_client("mirror", "http://127.0.0.1:10");
        let upstreams = Upstreams::new(vec![internal.clone(), hub.clone(), mirror.clone()]).unwrap();
        let names =
            |order: Vec<&UpstreamClient>| order.iter().map(|u| u.name().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(upstreams.in_order(None)), ["internal", "hub", "mirror"]);
        assert_eq!(names(upstreams.in_order(Some("mirror"))), ["mirror", "internal", "hub"]);
        assert_eq!(
            names(upstreams.in_order(Some("gone"))),
            ["internal", "hub", "mirror"],
            "no longer configured"
        );
        assert_eq!(names(upstreams.in_order(Some(""))), ["internal", "hub", "mirror"], "recorded before");
        let image = RepositoryName::parse("alpine").unwrap();
        assert_eq!(upstreams.repository(&image).as_str(), "library/alpine", "Docker Hub is one of them");
        let lab = Upstreams::new(vec![internal.clone(), mirror.clone()]).unwrap();
        assert_eq!(lab.repository(&image).as_str(), "alpine");
        assert!(Upstreams::single(internal.clone()).is_only("internal"));
        assert!(!lab.is_only("internal"));

        assert_eq!(Upstreams::new(Vec::new()).err(), Some(UpstreamsError::Empty));
        assert_eq!(
            Upstreams::new(vec![internal.clone(), hub, internal.clone()]).err(),
            Some(UpstreamsError::Duplicate("internal".into()))
        );
        let nine = (0..9).map(|i| named_upstream_client(&format!("u{i}"), "http://127.0.0.1:9")).collect();
        assert_eq!(Upstreams::new(nine).err(), Some(UpstreamsError::TooMany(9)));
    }
}
