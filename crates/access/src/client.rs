//! Which address a request comes from: the connection's peer, or — when the peer is a trusted
//! proxy — the last address in `X-Forwarded-For` that is not itself a trusted proxy; and, from a
//! trusted proxy only, the scheme the client used (`X-Forwarded-Proto`, for the token realm behind
//! a TLS terminator). Addresses are canonical: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a
//! dual-stack socket reports an IPv4 client) is its IPv4 address, so networks written as IPv4
//! match it.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// An address as policy sees it: `::ffff:a.b.c.d` is `a.b.c.d`.
pub fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

/// What a per-client limit counts as one client: an IPv4 address, or an IPv6 address's /64 (one
/// host is commonly given a whole /64, so its addresses are free to rotate through).
pub fn network_of(address: IpAddr) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The scheme a client reached a TLS terminator with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedProto {
    Http,
    Https,
}

impl ForwardedProto {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardedProto::Http => "http",
            ForwardedProto::Https => "https",
        }
    }
}

/// Parses one `X-Forwarded-Proto` value: `http` or `https` (any case), or — when proxies appended
/// to each other's value — the last of a comma-separated list, the one the proxy next to us set.
/// Anything else is `None` (then the realm keeps its default scheme).
pub fn parse_forwarded_proto(value: &str) -> Option<ForwardedProto> {
    let last = value.rsplit(',').next()?.trim();
    if last.eq_ignore_ascii_case("https") {
        Some(ForwardedProto::Https)
    } else if last.eq_ignore_ascii_case("http") {
        Some(ForwardedProto::Http)
    } else {
        None
    }
}

/// The networks whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies(networks)
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address, canonical: `peer` unless a chain of trusted proxies forwarded the
    /// request. Values of `X-Forwarded-For` that do not parse end the chain.
    pub fn client_address<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(address) => {
                    client = canonical(address);
                    if !self.trusts(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }

    /// The scheme the client used, when `peer` is a trusted proxy that says so (the last
    /// `X-Forwarded-Proto` header); `None` from anyone else, or for a value that is not a scheme.
    pub fn forwarded_proto<'a>(
        &self,
        peer: IpAddr,
        mut forwarded_proto: impl DoubleEndedIterator<Item = &'a str>,
    ) -> Option<ForwardedProto> {
        if !self.trusts(canonical(peer)) {
            return None;
        }
        parse_forwarded_proto(forwarded_proto.next_back()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let chain = ["203.0.113.7, 10.1.1.1"];
        assert_eq!(trusted.client_address(ip("10.0.0.2"), chain.into_iter()), ip("203.0.113.7"));
        assert_eq!(
            trusted.client_address(ip("192.0.2.9"), chain.into_iter()),
            ip("192.0.2.9"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.2"), ["198.51.100.1, 203.0.113.7"].into_iter()),
            ip("203.0.113.7"),
            "a client cannot prepend its own choice"
        );
        assert_eq!(trusted.client_address(ip("10.0.0.2"), ["garbage"].into_iter()), ip("10.0.0.2"));
        assert_eq!(
            TrustedProxies::default().client_address(ip("10.0.0.2"), chain.into_iter()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        // A dual-stack listener reports an IPv4 proxy as ::ffff:10.0.0.2: still trusted.
        assert_eq!(
            trusted.client_address(ip("::ffff:10.0.0.2"), ["203.0.113.7"].into_iter()),
            ip("203.0.113.7")
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.2"), ["::ffff:203.0.113.7, ::ffff:10.1.1.1"].into_iter()),
            ip("203.0.113.7"),
            "mapped hops are canonical, and a mapped trusted hop is still trusted"
        );
        assert_eq!(
            TrustedProxies::default().client_address(ip("::ffff:192.0.2.9"), [].into_iter()),
            ip("192.0.2.9")
        );
        assert_eq!(network_of(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(network_of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), ip("2001:db8:1:2::"));
        assert_eq!(network_of(ip("192.0.2.9")), ip("192.0.2.9"));
    }

    #[test]
    fn forwarded_proto_is_believed_only_from_trusted_proxies() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let https = Some(ForwardedProto::Https);
        assert_eq!(trusted.forwarded_proto(ip("10.0.0.2"), ["https"].into_iter()), https);
        assert_eq!(trusted.forwarded_proto(ip("::ffff:10.0.0.2"), ["HTTPS"].into_iter()), https);
        assert_eq!(trusted.forwarded_proto(ip("192.0.2.9"), ["https"].into_iter()), None, "untrusted peer");
        assert_eq!(
            trusted.forwarded_proto(ip("10.0.0.2"), ["http", "https"].into_iter()),
            https,
            "last header"
        );
        assert_eq!(parse_forwarded_proto("http, https"), https, "the value the nearest proxy appended");
        assert_eq!(parse_forwarded_proto(" http "), Some(ForwardedProto::Http));
        for bad in ["", "ftp", "https;", "javascript", "https://x", ","] {
            assert_eq!(parse_forwarded_proto(bad), None, "{bad:?}");
        }
        assert_eq!(trusted.forwarded_proto(ip("10.0.0.2"), [].into_iter()), None);
    }
}
