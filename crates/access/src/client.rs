//! Which address a request comes from: the connection's peer, or — when the peer is a trusted
//! proxy — the last address in `X-Forwarded-For` that is not itself a trusted proxy.

use std::net::IpAddr;

use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies(networks)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address: `peer` unless a chain of trusted proxies forwarded the request.
    /// Values of `X-Forwarded-For` that do not parse end the chain.
    pub fn client_address<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(address) => {
                    client = address;
                    if !self.trusts(address) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
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
}
