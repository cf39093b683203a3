//! Which `Host` a listener on a loopback address answers. A web page can make a browser send
//! requests to `127.0.0.1` under a name the attacker controls (DNS rebinding: the name first
//! resolves to the attacker's server, then to `127.0.0.1`); the browser then treats the
//! answers as the attacker's own origin. Such a request carries the attacker's name in `Host`,
//! so a loopback listener answers only loopback names and addresses (`localhost`,
//! `*.localhost`, `127.0.0.0/8`, `[::1]`) and the names the operator lists in
//! `[server] allowed_hosts`.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// A `Host` value: a DNS name or an address (lower case, IPv6 without its brackets, without a
/// final dot) and the port, if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    name: String,
    port: Option<u16>,
}

/// Why a value is not a `host[:port]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a host[:port]: {0}")]
pub struct MalformedHost(&'static str);

/// Longest DNS name (RFC 1035), and so the longest name accepted.
const MAX_NAME: usize = 253;

impl Host {
    /// Parses `host[:port]` as it appears in `Host` or an HTTP/2 `:authority`: a DNS name (ASCII
    /// letters, digits, `-`, `_`, dots between non-empty labels, one final dot allowed), an IPv4
    /// address, or an IPv6 address in brackets; then an optional `:port` (1 to 5 digits).
    pub fn parse(value: &str) -> Result<Host, MalformedHost> {
        if let Some(rest) = value.strip_prefix('[') {
            let (inside, after) =
                rest.split_once(']').ok_or(MalformedHost("an IPv6 address without its ]"))?;
            let address: Ipv6Addr =
                inside.parse().map_err(|_| MalformedHost("not an IPv6 address in [ ]"))?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(after.strip_prefix(':').ok_or(MalformedHost("bytes after ]"))?)?),
            };
            return Ok(Host { name: address.to_string(), port });
        }
        let (name, port) = match value.rsplit_once(':') {
            Some((name, port)) => (name, Some(parse_port(port)?)),
            None => (value, None),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            return Err(MalformedHost("no host name"));
        }
        if name.len() > MAX_NAME {
            return Err(MalformedHost("a host name longer than 253 bytes"));
        }
        if !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')) {
            return Err(MalformedHost("a host name with a byte other than letters, digits, '-', '_', '.'"));
        }
        if name.split('.').any(str::is_empty) {
            return Err(MalformedHost("an empty label in a host name"));
        }
        Ok(Host { name: name.to_ascii_lowercase(), port })
    }

    /// The name or address, lower case (an IPv6 address without brackets).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether the name is a loopback one: `localhost` or a name under it (RFC 6761 reserves
    /// them for loopback), or a loopback address (IPv4-mapped IPv6 included).
    pub fn is_loopback(&self) -> bool {
        if self.name == "localhost" || self.name.ends_with(".localhost") {
            return true;
        }
        self.name.parse::<IpAddr>().is_ok_and(|address| address.to_canonical().is_loopback())
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.contains(':') {
            write!(f, "[{}]", self.name)?;
        } else {
            f.write_str(&self.name)?;
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

fn parse_port(text: &str) -> Result<u16, MalformedHost> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(MalformedHost("a port that is not 1 to 5 digits"));
    }
    text.parse().map_err(|_| MalformedHost("a port above 65535"))
}

/// The names a loopback listener answers besides loopback ones (`[server] allowed_hosts`, and
/// the host of `public_url`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    allowed: Arc<[Host]>,
}

/// Why a loopback listener does not answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostRefusal {
    /// No `Host` and no authority in the request line (HTTP/1.1 requires `Host`).
    Missing,
    /// Not a `host[:port]`, or two `Host` headers.
    Malformed,
    /// A name that is neither loopback nor allowed: what a DNS-rebinding page sends.
    NotAllowed,
}

impl HostPolicy {
    /// Allows these names besides loopback ones. An entry with a port allows that port only.
    pub fn new(allowed: Vec<Host>) -> Self {
        HostPolicy { allowed: allowed.into() }
    }

    /// Whether a loopback listener answers a request for `host`.
    pub fn allows(&self, host: &Host) -> bool {
        host.is_loopback()
            || self
                .allowed
                .iter()
                .any(|entry| entry.name == host.name && entry.port.is_none_or(|port| Some(port) == host.port))
    }

    /// Checks a request's `Host` header and the authority of its target (HTTP/2's `:authority`,
    /// or an absolute-form HTTP/1.1 target): each that is present must be allowed.
    pub(crate) fn check<B>(&self, request: &http::Request<B>) -> Result<(), HostRefusal> {
        let mut headers = request.headers().get_all(http::header::HOST).iter();
        let header = headers.next();
        if headers.next().is_some() {
            return Err(HostRefusal::Malformed);
        }
        let authority = request.uri().authority().map(http::uri::Authority::as_str);
        let header = match header {
            Some(value) => Some(value.to_str().map_err(|_| HostRefusal::Malformed)?),
            None => None,
        };
        if header.is_none() && authority.is_none() {
            return Err(HostRefusal::Missing);
        }
        for value in header.into_iter().chain(authority) {
            let host = Host::parse(value).map_err(|_| HostRefusal::Malformed)?;
            if !self.allows(&host) {
                return Err(HostRefusal::NotAllowed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> Host {
        Host::parse(value).unwrap()
    }

    #[test]
    fn hosts_parse_into_a_canonical_name_and_port() {
        assert_eq!(host("LocalHost:5000"), Host { name: "localhost".into(), port: Some(5000) });
        assert_eq!(host("registry.example.com."), Host { name: "registry.example.com".into(), port: None });
        assert_eq!(host("[::1]:5000"), Host { name: "::1".into(), port: Some(5000) });
        assert_eq!(host("[0:0:0:0:0:0:0:1]"), Host { name: "::1".into(), port: None });
        assert_eq!(host("127.0.0.1:80").to_string(), "127.0.0.1:80");
        assert_eq!(host("[::1]:80").to_string(), "[::1]:80");
        for bad in [
            "",
            ":5000",
            "user@localhost",
            "local host",
            "localhost:",
            "localhost:123456",
            "localhost:65536",
            "a..b",
            ".a",
            "[::1",
            "[nope]",
            "[::1]x",
            "::1",
            "localhost:80:80",
            "évil.example",
            "a/b",
            "localhost..",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_names_and_addresses_are_loopback_and_nothing_else_is() {
        for loopback in [
            "localhost",
            "LOCALHOST:5000",
            "localhost.",
            "registry.localhost",
            "127.0.0.1",
            "127.1.2.3:9",
            "[::1]",
            "[::ffff:127.0.0.1]:5000",
        ] {
            assert!(host(loopback).is_loopback(), "{loopback}");
        }
        for other in [
            "evil.example",
            "localhost.evil.example",
            "0.0.0.0",
            "10.0.0.1",
            "[::]",
            "127.1",
            "2130706433",
            "notlocalhost",
            "[::ffff:10.0.0.1]",
        ] {
            assert!(!host(other).is_loopback(), "{other}");
        }
    }

    #[test]
    fn allowed_names_are_answered_on_their_port_if_they_name_one() {
        let policy = HostPolicy::new(vec![host("registry.internal"), host("mirror.internal:8443")]);
        assert!(policy.allows(&host("registry.internal:5000")));
        assert!(policy.allows(&host("REGISTRY.INTERNAL")));
        assert!(policy.allows(&host("mirror.internal:8443")));
        assert!(!policy.allows(&host("mirror.internal:5000")));
        assert!(!policy.allows(&host("evil.example")));
        assert!(policy.allows(&host("localhost:5000")), "loopback names always");
    }

    /// The invariants of the fuzz target `host` (fuzz/fuzz_targets/host.rs), for one input.
    fn check_invariants(text: &str) {
        let Ok(host) = Host::parse(text) else { return };
        let name = host.name();
        assert!(!name.is_empty() && !name.ends_with('.') && !name.contains(['[', ']']), "{text:?}");
        assert_eq!(name, name.to_ascii_lowercase(), "{text:?}");
        assert_eq!(Host::parse(&host.to_string()).as_ref(), Ok(&host), "{text:?}");
        let loopback = match name.parse::<IpAddr>() {
            Ok(address) => address.to_canonical().is_loopback(),
            Err(_) => name == "localhost" || name.ends_with(".localhost"),
        };
        assert_eq!(host.is_loopback(), loopback, "{text:?}");
        assert_eq!(HostPolicy::default().allows(&host), loopback, "{text:?}");
        assert!(HostPolicy::new(vec![host.clone()]).allows(&host), "{text:?}");
    }

    #[test]
    fn every_short_input_keeps_the_fuzz_targets_invariants() {
        // Every string of up to 4 characters over the characters that matter to the grammar.
        let alphabet: Vec<char> = "aL1.:[]-_0f7 @".chars().collect();
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = inputs
                .iter()
                .filter(|input| input.len() == inputs.last().map_or(0, String::len))
                .flat_map(|input| alphabet.iter().map(move |c| format!("{input}{c}")))
                .collect();
            inputs.extend(longer);
        }
        assert!(inputs.len() > 40_000);
        for input in &inputs {
            check_invariants(input);
        }
        for seed in
            ["[::ffff:127.0.0.1]:80", "registry.localhost:65535", "LOCALHOST.", "[0::1]", "127.255.0.1:0"]
        {
            check_invariants(seed);
        }
    }

    #[test]
    fn a_request_is_checked_by_its_host_header_and_its_authority() {
        let policy = HostPolicy::default();
        let request = |host: Option<&str>, uri: &str| {
            let mut builder = http::Request::builder().uri(uri);
            if let Some(host) = host {
                builder = builder.header("host", host);
            }
            builder.body(()).unwrap()
        };
        assert_eq!(policy.check(&request(Some("127.0.0.1:5000"), "/v2/")), Ok(()));
        assert_eq!(policy.check(&request(None, "http://localhost:5000/v2/")), Ok(()), "HTTP/2 :authority");
        assert_eq!(
            policy.check(&request(Some("rebound.evil.example"), "/v2/")),
            Err(HostRefusal::NotAllowed)
        );
        assert_eq!(
            policy.check(&request(Some("localhost"), "http://rebound.evil.example/v2/")),
            Err(HostRefusal::NotAllowed),
            "both must be allowed"
        );
        assert_eq!(policy.check(&request(None, "/v2/")), Err(HostRefusal::Missing));
        assert_eq!(policy.check(&request(Some("a b"), "/v2/")), Err(HostRefusal::Malformed));
        let mut twice = request(Some("localhost"), "/v2/");
        twice.headers_mut().append("host", http::HeaderValue::from_static("evil.example"));
        assert_eq!(policy.check(&twice), Err(HostRefusal::Malformed));
    }
}
