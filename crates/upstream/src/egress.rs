//! Where an upstream's traffic may go (SSRF): its own origin, public addresses over https, and
//! what its `redirect_allow` lists; and where its credentials may go: its own host and what its
//! `realm_allow` lists. Redirects and token realms are checked by URL; a DNS name is checked
//! again on the addresses it resolves to — at connect time, or, through a forward proxy (which
//! resolves names itself), before the request is handed to the proxy — so a name pointing at a
//! private address counts as private.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Redirect hops followed at most.
pub const MAX_REDIRECTS: usize = 5;

/// One `redirect_allow` entry: a host (any port, or one port), or a network of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    Host { host: url::Host<String>, port: Option<u16> },
    Network(IpNet),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("redirect_allow entry {0:?} is neither host, host:port, an address nor a CIDR network")]
pub struct BadAllowEntry(pub String);

impl AllowEntry {
    /// `minio.internal`, `minio.internal:9000`, `10.1.2.3`, `[fd00::1]:9000` or `10.1.2.0/24`.
    pub fn parse(text: &str) -> Result<Self, BadAllowEntry> {
        let bad = || BadAllowEntry(text.to_owned());
        if let Ok(network) = text.parse::<IpNet>() {
            return Ok(AllowEntry::Network(network));
        }
        if let Ok(address) = text.parse::<IpAddr>() {
            return Ok(AllowEntry::Network(IpNet::from(address)));
        }
        // host[:port], with IPv6 in brackets: parse it the way a URL's authority is parsed.
        let url = url::Url::parse(&format!("http://{text}/")).map_err(|_| bad())?;
        let host = url.host().ok_or_else(bad)?.to_owned();
        let authority_only = url.username().is_empty() && url.password().is_none() && url.path() == "/";
        if !authority_only || text.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        Ok(AllowEntry::Host { host, port: url.port() })
    }

    fn allows_url(&self, host: &url::Host<&str>, port: Option<u16>) -> bool {
        match self {
            AllowEntry::Host { host: allowed, port: allowed_port } => {
                host_eq(allowed, host) && allowed_port.is_none_or(|allowed| Some(allowed) == port)
            }
            AllowEntry::Network(network) => {
                host_address(host).is_some_and(|address| network.contains(&address))
            }
        }
    }
}

fn host_eq(owned: &url::Host<String>, borrowed: &url::Host<&str>) -> bool {
    match (owned, borrowed) {
        (url::Host::Domain(a), url::Host::Domain(b)) => a.eq_ignore_ascii_case(b),
        (url::Host::Ipv4(a), url::Host::Ipv4(b)) => a == b,
        (url::Host::Ipv6(a), url::Host::Ipv6(b)) => a == b,
        _ => false,
    }
}

fn host_address(host: &url::Host<&str>) -> Option<IpAddr> {
    match host {
        url::Host::Domain(_) => None,
        url::Host::Ipv4(address) => Some(IpAddr::V4(*address)),
        url::Host::Ipv6(address) => Some(IpAddr::V6(*address)),
    }
}

/// Why a request to an upstream-supplied location was not made. Says nothing of the location:
/// the message reaches clients.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum EgressRefusal {
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("a redirect or realm with a scheme other than http or https")]
    Scheme,
    #[error("a redirect from https to plain http")]
    Downgrade,
    #[error("a location on another host over plain http")]
    PlainHttp,
    #[error("a location on a private, loopback or link-local address not in redirect_allow")]
    PrivateAddress,
    #[error("credentials would go to another host over plain http")]
    CredentialsInClear,
    #[error("credentials would go to a token realm on a host not in realm_allow")]
    UntrustedRealm,
    #[error("a location whose name does not resolve here, to be reached through the proxy")]
    Unresolvable,
}

impl EgressRefusal {
    /// The setting an operator would change to allow what was refused.
    pub fn remedy(self) -> &'static str {
        match self {
            EgressRefusal::UntrustedRealm => "realm_allow",
            EgressRefusal::TooManyRedirects
            | EgressRefusal::Scheme
            | EgressRefusal::Downgrade
            | EgressRefusal::PlainHttp
            | EgressRefusal::PrivateAddress
            | EgressRefusal::CredentialsInClear
            | EgressRefusal::Unresolvable => "redirect_allow",
        }
    }
}

/// The rules for one upstream.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    origin: url::Url,
    allow: Vec<AllowEntry>,
    /// Hosts whose token realms get the upstream's credentials besides its own (`realm_allow`,
    /// and Docker Hub's token service for an upstream on Docker Hub's registry host).
    realms: Vec<AllowEntry>,
}

impl EgressPolicy {
    /// The rules of the upstream at `origin`: redirects may also go to `allow` (`redirect_allow`),
    /// credentials also to token realms on `realm_allow`.
    pub fn new(origin: &url::Url, allow: Vec<AllowEntry>, realm_allow: Vec<AllowEntry>) -> Self {
        let mut realms = realm_allow;
        if origin.host_str().is_some_and(oci::registry::is_docker_hub_host) {
            realms.push(AllowEntry::Host {
                host: url::Host::Domain(oci::registry::DOCKER_HUB_TOKEN_HOST.to_owned()),
                port: None,
            });
        }
        EgressPolicy { origin: origin.clone(), allow, realms }
    }

    fn is_origin(&self, url: &url::Url) -> bool {
        url.origin() == self.origin.origin()
    }

    fn is_origin_host(&self, url: &url::Url) -> bool {
        match (url.host(), self.origin.host()) {
            (Some(a), Some(b)) => host_eq(&b.to_owned(), &a),
            _ => false,
        }
    }

    fn listed(&self, url: &url::Url) -> bool {
        let Some(host) = url.host() else { return false };
        let port = url.port_or_known_default();
        self.allow.iter().any(|entry| entry.allows_url(&host, port))
    }

    fn trusted_realm(&self, url: &url::Url) -> bool {
        let Some(host) = url.host() else { return false };
        let port = url.port_or_known_default();
        self.is_origin_host(url) || self.realms.iter().any(|entry| entry.allows_url(&host, port))
    }

    /// Whether a redirect to `next` may be followed; `previous` holds the URLs before it (the
    /// first request's included).
    pub fn check_redirect(&self, previous: &[url::Url], next: &url::Url) -> Result<(), EgressRefusal> {
        if previous.len() > MAX_REDIRECTS {
            return Err(EgressRefusal::TooManyRedirects);
        }
        if !matches!(next.scheme(), "http" | "https") {
            return Err(EgressRefusal::Scheme);
        }
        if previous.last().is_some_and(|last| last.scheme() == "https") && next.scheme() == "http" {
            return Err(EgressRefusal::Downgrade);
        }
        if self.is_origin(next) || self.listed(next) {
            return Ok(());
        }
        if next.scheme() != "https" {
            return Err(EgressRefusal::PlainHttp);
        }
        self.check_literal_address(next)
    }

    /// Whether a token realm may be asked, `with_credentials` (Basic) or not. Credentials go only
    /// where the operator said: the upstream's own host or a `realm_allow` host — over https,
    /// unless the upstream itself is plain http (which `check-config` lets carry credentials only
    /// on loopback or when told to). Without credentials a realm is asked where a redirect could
    /// lead: there is nothing to leak, only where the request goes is checked.
    pub fn check_realm(&self, realm: &url::Url, with_credentials: bool) -> Result<(), EgressRefusal> {
        if !matches!(realm.scheme(), "http" | "https") {
            return Err(EgressRefusal::Scheme);
        }
        let trusted = self.trusted_realm(realm);
        if with_credentials {
            if !trusted {
                return Err(EgressRefusal::UntrustedRealm);
            }
            if realm.scheme() == "http" && self.origin.scheme() == "https" {
                return Err(EgressRefusal::CredentialsInClear);
            }
            return Ok(());
        }
        if trusted || self.listed(realm) {
            return Ok(());
        }
        self.check_literal_address(realm)
    }

    /// An address written into the URL is checked here: no resolver ever sees it.
    fn check_literal_address(&self, url: &url::Url) -> Result<(), EgressRefusal> {
        match url.host().as_ref().and_then(host_address) {
            Some(address) if !is_public(address) => Err(EgressRefusal::PrivateAddress),
            _ => Ok(()),
        }
    }

    /// Whether `host` is a name the operator trusts with any address: the upstream's own, or
    /// one listed in `redirect_allow` or `realm_allow`.
    fn trusted_name(&self, host: &str) -> bool {
        let domain = url::Host::Domain(host);
        self.origin.host().is_some_and(|origin| host_eq(&origin.to_owned(), &domain))
            || self.allow.iter().chain(&self.realms).any(|entry| match entry {
                AllowEntry::Host { host: allowed, .. } => host_eq(allowed, &domain),
                AllowEntry::Network(_) => false,
            })
    }

    fn permitted_address(&self, ip: IpAddr) -> bool {
        is_public(ip)
            || self.allow.iter().any(|entry| matches!(entry, AllowEntry::Network(n) if n.contains(&ip)))
    }

    /// Of the addresses `host` resolved to, those a connection may use: all of them for the
    /// upstream's own host or a listed one; otherwise public ones and listed networks.
    pub fn permitted_addresses(&self, host: &str, resolved: Vec<SocketAddr>) -> Vec<SocketAddr> {
        if self.trusted_name(host) {
            return resolved;
        }
        resolved.into_iter().filter(|address| self.permitted_address(address.ip())).collect()
    }

    /// Whether a request to `url` may be handed to a forward proxy, which will resolve the name
    /// itself: the upstream's own host, a listed one, or a name all of whose addresses here are
    /// permitted (the proxy may pick any of them). A name that does not resolve here is refused:
    /// nothing says where the proxy would take it.
    pub async fn check_through_proxy(&self, url: &url::Url) -> Result<(), EgressRefusal> {
        let host = match url.host() {
            None => return Err(EgressRefusal::Scheme),
            Some(url::Host::Domain(name)) => name,
            Some(literal) => {
                let address = host_address(&literal).ok_or(EgressRefusal::Scheme)?;
                return match self.is_origin(url) || self.listed(url) || self.permitted_address(address) {
                    true => Ok(()),
                    false => Err(EgressRefusal::PrivateAddress),
                };
            }
        };
        if self.trusted_name(host) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let resolved: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
            Ok(addresses) => addresses.collect(),
            Err(_) => return Err(EgressRefusal::Unresolvable),
        };
        if resolved.is_empty() {
            return Err(EgressRefusal::Unresolvable);
        }
        if resolved.iter().all(|address| self.permitted_address(address.ip())) {
            Ok(())
        } else {
            Err(EgressRefusal::PrivateAddress)
        }
    }
}

/// A resolver that applies an [`EgressPolicy`] to what names resolve to. The forward proxy's own
/// name, if any, resolves freely: the operator configured it, and it is asked for nothing but
/// what [`EgressPolicy::check_through_proxy`] let through.
pub(crate) struct EgressResolver {
    pub policy: Arc<EgressPolicy>,
    pub proxy_host: Option<String>,
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        let proxy = self.proxy_host.as_deref().is_some_and(|proxy| proxy.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted = if proxy { resolved } else { policy.permitted_addresses(&host, resolved) };
            if permitted.is_empty() {
                return Err(
                    Box::new(EgressRefusal::PrivateAddress) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            let addresses: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addresses)
        })
    }
}

/// The refusal somewhere in an error's source chain, if any.
pub(crate) fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<EgressRefusal> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refusal) = error.downcast_ref::<EgressRefusal>() {
            return Some(*refusal);
        }
        current = error.source();
    }
    None
}

/// Whether an address is reachable on the public internet (`IpAddr::is_global` is unstable):
/// not loopback, private, shared (CGNAT), link-local (cloud metadata), unspecified, multicast,
/// broadcast, documentation, benchmarking or reserved; IPv6 forms of IPv4 are judged as IPv4.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_multicast()
        || address.is_broadcast()
        || address.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    if let Some(v4) = address.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = address.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., high, low] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
    }
    // 6to4 (2002::/16) carries an IPv4 address in bits 16..48: a relay delivers to it.
    if segments[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from((u32::from(segments[1]) << 16) | u32::from(segments[2])));
    }
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        // Site-local (fec0::/10): deprecated, but still routed inside some networks.
        || (segments[0] & 0xffc0) == 0xfec0
        // Local-use NAT64 (64:ff9b:1::/48, RFC 8215): translates to private networks.
        || segments[..3] == [0x64, 0xff9b, 1]
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        || segments[..6] == [0, 0, 0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    fn entries(list: &[&str]) -> Vec<AllowEntry> {
        list.iter().map(|entry| AllowEntry::parse(entry).unwrap()).collect()
    }

    fn policy(origin: &str, allow: &[&str]) -> EgressPolicy {
        EgressPolicy::new(&url(origin), entries(allow), Vec::new())
    }

    #[test]
    fn ipv6_forms_of_private_networks_are_not_public() {
        for private in [
            "fec0::1",
            "feff::1",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::1",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["2002:808:808::1", "2a00:1450:4001::1", "64:ff9b::808:808"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn addresses_that_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "52.1.2.3", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn allow_entries_parse() {
        assert!(matches!(AllowEntry::parse("10.1.2.0/24"), Ok(AllowEntry::Network(_))));
        assert!(matches!(AllowEntry::parse("10.1.2.3"), Ok(AllowEntry::Network(_))));
        assert_eq!(
            AllowEntry::parse("MinIO.internal:9000"),
            Ok(AllowEntry::Host { host: url::Host::Domain("minio.internal".into()), port: Some(9000) })
        );
        assert!(matches!(AllowEntry::parse("[fd00::1]:9000"), Ok(AllowEntry::Host { port: Some(9000), .. })));
        for bad in ["", "http://x", "a/b", "user@host", "host:notaport", "10.0.0.0/99"] {
            assert!(AllowEntry::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirects_go_to_the_origin_public_https_or_listed_places() {
        let lab = policy("https://registry.example:5000", &["minio.internal:9000", "10.1.2.0/24"]);
        let start = [url("https://registry.example:5000/v2/a/blobs/sha256:1")];
        let check = |next: &str| lab.check_redirect(&start, &url(next));
        assert_eq!(check("https://registry.example:5000/other"), Ok(()));
        assert_eq!(check("https://cdn.example.com/blob?sig=1"), Ok(()));
        assert_eq!(check("http://minio.internal:9000/bucket/x"), Err(EgressRefusal::Downgrade));
        let from_http =
            lab.check_redirect(&[url("http://registry.example:5000/")], &url("http://minio.internal:9000/b"));
        assert_eq!(from_http, Ok(()));
        assert_eq!(
            check("https://minio.internal:9001/b"),
            Ok(()),
            "https to a name: checked at connect time"
        );
        assert_eq!(check("https://10.1.2.7/b"), Ok(()));
        assert_eq!(check("https://169.254.169.254/latest/meta-data"), Err(EgressRefusal::PrivateAddress));
        assert_eq!(check("https://127.0.0.1:5000/"), Err(EgressRefusal::PrivateAddress));
        assert_eq!(check("https://[::ffff:10.0.0.1]/"), Err(EgressRefusal::PrivateAddress));
        assert_eq!(check("http://cdn.example.com/"), Err(EgressRefusal::Downgrade));
        assert_eq!(check("file:///etc/passwd"), Err(EgressRefusal::Scheme));
        let plain = policy("http://lab:5000", &[]);
        assert_eq!(
            plain.check_redirect(&[url("http://lab:5000/")], &url("http://elsewhere.example/")),
            Err(EgressRefusal::PlainHttp)
        );
        assert_eq!(plain.check_redirect(&[url("http://lab:5000/")], &url("http://lab:5000/x")), Ok(()));
        let hops: Vec<url::Url> = (0..=MAX_REDIRECTS).map(|_| url("http://lab:5000/")).collect();
        assert_eq!(
            plain.check_redirect(&hops, &url("http://lab:5000/x")),
            Err(EgressRefusal::TooManyRedirects)
        );
        assert_eq!(plain.check_redirect(&hops[1..], &url("http://lab:5000/x")), Ok(()));
    }

    #[test]
    fn credentials_go_only_to_realms_on_the_own_host_or_realm_allow() {
        let lab = EgressPolicy::new(
            &url("https://lab.example:5000"),
            entries(&["10.9.0.0/16", "cdn.example"]),
            entries(&["auth.example.com"]),
        );
        let check = |realm: &str, credentials: bool| lab.check_realm(&url(realm), credentials);
        // Credentials: the upstream's own host (any port) or realm_allow, over https.
        assert_eq!(check("https://lab.example:5001/token", true), Ok(()));
        assert_eq!(check("https://auth.example.com/token", true), Ok(()));
        assert_eq!(check("https://AUTH.example.com:8443/token", true), Ok(()));
        for elsewhere in [
            "https://auth.example/token",
            "https://cdn.example/token",
            "https://10.9.1.1/token",
            "https://8.8.8.8/",
        ] {
            assert_eq!(check(elsewhere, true), Err(EgressRefusal::UntrustedRealm), "{elsewhere}");
        }
        assert_eq!(check("http://auth.example.com/token", true), Err(EgressRefusal::CredentialsInClear));
        assert_eq!(check("http://lab.example/token", true), Err(EgressRefusal::CredentialsInClear));
        // Without credentials: where a redirect could go.
        assert_eq!(check("https://auth.example/token", false), Ok(()));
        assert_eq!(check("http://auth.example/token", false), Ok(()));
        assert_eq!(check("https://10.9.1.1/token", false), Ok(()));
        assert_eq!(check("https://127.0.0.1/token", false), Err(EgressRefusal::PrivateAddress));
        assert_eq!(check("ftp://auth.example.com/", false), Err(EgressRefusal::Scheme));
        // A plain-http upstream (check-config decides whether it may have credentials at all)
        // may send them to its own realm over http.
        let plain = policy("http://lab.example:5000", &[]);
        assert_eq!(plain.check_realm(&url("http://lab.example:5001/token"), true), Ok(()));
        assert_eq!(
            plain.check_realm(&url("https://auth.example/token"), true),
            Err(EgressRefusal::UntrustedRealm)
        );
    }

    #[test]
    fn docker_hubs_token_service_is_trusted_for_docker_hub_only() {
        let realm = url(&format!("https://{}/token", oci::registry::DOCKER_HUB_TOKEN_HOST));
        for hub in oci::registry::DOCKER_HUB_HOSTS {
            assert_eq!(policy(&format!("https://{hub}"), &[]).check_realm(&realm, true), Ok(()), "{hub}");
        }
        assert_eq!(
            policy("https://registry.example.com", &[]).check_realm(&realm, true),
            Err(EgressRefusal::UntrustedRealm)
        );
    }

    #[tokio::test]
    async fn through_a_proxy_names_are_checked_on_what_they_resolve_to_before_the_request() {
        let lab = policy("http://lab.internal:5000", &["minio.internal", "10.1.0.0/16"]);
        let check = |target: &str| {
            let target = url(target);
            let lab = lab.clone();
            async move { lab.check_through_proxy(&target).await }
        };
        // Trusted names are not resolved (the proxy may be the only one that can).
        assert_eq!(check("http://lab.internal:5000/v2/").await, Ok(()));
        assert_eq!(check("http://minio.internal:9000/b").await, Ok(()));
        // Names resolving to loopback, or not at all here: refused.
        assert_eq!(check("https://localhost/x").await, Err(EgressRefusal::PrivateAddress));
        assert_eq!(check("https://internal.test/x").await, Err(EgressRefusal::Unresolvable));
        // Literal addresses: public or listed.
        assert_eq!(check("https://8.8.8.8/x").await, Ok(()));
        assert_eq!(check("https://10.1.2.3/x").await, Ok(()));
        assert_eq!(check("https://169.254.169.254/x").await, Err(EgressRefusal::PrivateAddress));
        assert_eq!(check("https://[::1]/x").await, Err(EgressRefusal::PrivateAddress));
    }

    #[test]
    fn resolved_addresses_are_filtered_unless_the_name_is_trusted() {
        let lab = policy("http://lab.internal:5000", &["minio.internal", "10.1.0.0/16"]);
        let addresses: Vec<SocketAddr> =
            ["127.0.0.1:0", "10.1.2.3:0", "8.8.8.8:0"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(lab.permitted_addresses("lab.internal", addresses.clone()).len(), 3);
        assert_eq!(lab.permitted_addresses("MINIO.internal", addresses.clone()).len(), 3);
        let realms =
            EgressPolicy::new(&url("http://lab.internal:5000"), Vec::new(), entries(&["auth.internal"]));
        assert_eq!(realms.permitted_addresses("auth.internal", addresses.clone()).len(), 3);
        let other = lab.permitted_addresses("cdn.example", addresses);
        assert_eq!(other, vec!["10.1.2.3:0".parse().unwrap(), "8.8.8.8:0".parse().unwrap()]);
    }

    #[test]
    fn refusals_are_found_in_error_chains() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] EgressRefusal);
        assert_eq!(refusal_in(&Outer(EgressRefusal::PrivateAddress)), Some(EgressRefusal::PrivateAddress));
        assert_eq!(refusal_in(&std::io::Error::other("x")), None);
    }
}
