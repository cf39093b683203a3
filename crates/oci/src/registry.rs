//! How registries are named: Docker Hub's hosts, and containerd's `?ns=<registry host>` parameter
//! that says which registry a mirror request is for.

/// Hosts that serve Docker Hub's registry API or name it (`docker.io` in image references,
/// `index.docker.io` in older clients, `registry.hub.docker.com` in docs and scripts).
pub const DOCKER_HUB_HOSTS: &[&str] =
    &["registry-1.docker.io", "index.docker.io", "docker.io", "registry.hub.docker.com"];

/// The host of Docker Hub's token service, which its registry's challenges name as their realm:
/// trusted with an upstream's credentials when the upstream is on one of [`DOCKER_HUB_HOSTS`].
pub const DOCKER_HUB_TOKEN_HOST: &str = "auth.docker.io";

/// Whether `host` (any case) names Docker Hub.
pub fn is_docker_hub_host(host: &str) -> bool {
    DOCKER_HUB_HOSTS.iter().any(|known| known.eq_ignore_ascii_case(host))
}

/// The `ns` query parameter containerd adds to mirror requests, decoded.
pub fn namespace_parameter(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "ns")
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_aliases() {
        for host in
            ["docker.io", "Docker.IO", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]
        {
            assert!(is_docker_hub_host(host), "{host}");
        }
        assert!(!is_docker_hub_host("ghcr.io"));
        assert!(!is_docker_hub_host("docker.io.evil.example"));
    }

    #[test]
    fn namespace_from_query() {
        assert_eq!(namespace_parameter(Some("ns=docker.io")), Some("docker.io".into()));
        assert_eq!(namespace_parameter(Some("n=1&ns=127.0.0.1%3A5001")), Some("127.0.0.1:5001".into()));
        assert_eq!(namespace_parameter(Some("n=1")), None);
        assert_eq!(namespace_parameter(None), None);
    }
}
