//! Where an upstream's traffic may go (SSRF): its own origin, public addresses over https, and
//! what its `redirect_allow` lists. Redirects and token realms are checked by URL; a DNS name is
//! checked again at connect time on the addresses it resolves to, so a name pointing at a private
//! address counts as private.

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
}

/// The rules for one upstream.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    origin: url::Url,
    allow: Vec<AllowEntry>,
}

impl EgressPolicy {
    pub fn new(origin: &url::Url, allow: Vec<AllowEntry>) -> Self {
        EgressPolicy { origin: origin.clone(), allow }
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

    /// Whether a token realm may be asked, `with_credentials` (Basic) or not: the upstream's own
    /// host, a listed one, or anywhere public — Basic credentials only over https there.
    pub fn check_realm(&self, realm: &url::Url, with_credentials: bool) -> Result<(), EgressRefusal> {
        if !matches!(realm.scheme(), "http" | "https") {
            return Err(EgressRefusal::Scheme);
        }
        if self.is_origin_host(realm) || self.listed(realm) {
            return Ok(());
        }
        if with_credentials && realm.scheme() != "https" {
            return Err(EgressRefusal::CredentialsInClear);
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

    /// Of the addresses `host` resolved to, those a connection may use: all of them for the
    /// upstream's own host or a listed one; otherwise public ones and listed networks.
    pub fn permitted_addresses(&self, host: &str, resolved: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let domain = url::Host::Domain(host);
        let trusted_name = self.origin.host().is_some_and(|origin| host_eq(&origin.to_owned(), &domain))
            || self.allow.iter().any(|entry| match entry {
                AllowEntry::Host { host: allowed, .. } => host_eq(allowed, &domain),
                AllowEntry::Network(_) => false,
            });
        if trusted_name {
            return resolved;
        }
        resolved
            .into_iter()
            .filter(|address| {
                let ip = address.ip();
                is_public(ip)
                    || self
                        .allow
                        .iter()
                        .any(|entry| matches!(entry, AllowEntry::Network(n) if n.contains(&ip)))
            })
            .collect()
    }
}

/// A resolver that applies an [`EgressPolicy`] to what names resolve to.
pub(crate) struct EgressResolver {
    pub policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted = policy.permitted_addresses(&host, resolved);
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

    fn policy(origin: &str, allow: &[&str]) -> EgressPolicy {
        EgressPolicy::new(&url(origin), allow.iter().map(|entry| AllowEntry::parse(entry).unwrap()).collect())
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
    fn realms_get_credentials_only_on_the_own_host_or_over_https() {
        let lab = policy("http://lab.example:5000", &["10.9.0.0/16"]);
        assert_eq!(lab.check_realm(&url("http://lab.example:5001/token"), true), Ok(()));
        assert_eq!(
            lab.check_realm(&url("http://auth.example/token"), true),
            Err(EgressRefusal::CredentialsInClear)
        );
        assert_eq!(lab.check_realm(&url("http://auth.example/token"), false), Ok(()));
        assert_eq!(lab.check_realm(&url("https://auth.example/token"), true), Ok(()));
        assert_eq!(
            lab.check_realm(&url("https://127.0.0.1/token"), true),
            Err(EgressRefusal::PrivateAddress)
        );
        assert_eq!(lab.check_realm(&url("http://10.9.1.1/token"), true), Ok(()));
        assert_eq!(lab.check_realm(&url("ftp://auth.example/"), false), Err(EgressRefusal::Scheme));
    }

    #[test]
    fn resolved_addresses_are_filtered_unless_the_name_is_trusted() {
        let lab = policy("http://lab.internal:5000", &["minio.internal", "10.1.0.0/16"]);
        let addresses: Vec<SocketAddr> =
            ["127.0.0.1:0", "10.1.2.3:0", "8.8.8.8:0"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(lab.permitted_addresses("lab.internal", addresses.clone()).len(), 3);
        assert_eq!(lab.permitted_addresses("MINIO.internal", addresses.clone()).len(), 3);
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
