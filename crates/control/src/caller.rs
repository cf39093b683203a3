//! Who sent a client request: its address (the gateway's `Depproxy-Client-Address`, through
//! trusted proxies' `X-Forwarded-For`; canonical, so `::ffff:a.b.c.d` is `a.b.c.d`), its
//! credentials, and the base URL it reached us at (the gateway's `Depproxy-Forwarded-Host`: the
//! request's own `Host` names the control plane in split mode, and the gateway does not forward
//! the client's; `https` when a trusted proxy's `X-Forwarded-Proto` says so).

use std::net::{IpAddr, Ipv4Addr};

use access::{Credentials, ForwardedProto, TrustedProxies};
use http::HeaderMap;

pub(crate) struct Caller {
    pub address: IpAddr,
    pub credentials: Option<Credentials>,
    /// `<host>[:port]`: where the client reached the gateway, for the token realm when no
    /// `public_url` is set (see [`Caller::base_url`]).
    forwarded_host: Option<http::HeaderValue>,
    /// The scheme a trusted TLS terminator says the client used.
    forwarded_proto: Option<ForwardedProto>,
    /// The gateway could not read this stored object: fetch it again.
    pub refetch: Option<oci::Digest>,
}

impl Caller {
    pub(crate) fn from_headers(headers: &HeaderMap, trusted: &TrustedProxies) -> Caller {
        // Set by the gateway from the connection; a request without it (it never reaches a client
        // listener) is from nowhere, so no anonymous network matches it.
        let peer = headers
            .get(injector::CLIENT_ADDRESS_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<IpAddr>().ok())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok());
        let address = trusted.client_address(peer, forwarded);
        let forwarded_proto = trusted.forwarded_proto(
            peer,
            headers.get_all("x-forwarded-proto").iter().filter_map(|value| value.to_str().ok()),
        );
        let credentials = headers.get(http::header::AUTHORIZATION).and_then(Credentials::from_header);
        // Kept as the header value (a reference count, no copy): only a challenge needs the URL.
        let forwarded_host = headers
            .get(injector::FORWARDED_HOST_HEADER)
            .filter(|value| {
                let host = value.as_bytes();
                !host.is_empty() && host.iter().all(|&b| b.is_ascii_graphic() && b != b'"')
            })
            .cloned();
        let refetch = headers
            .get(injector::REFETCH_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse().ok());
        Caller { address, credentials, forwarded_host, forwarded_proto, refetch }
    }

    /// `http://<host>` (or `https://` behind a trusted TLS terminator): where the client reached
    /// the gateway, for the token realm when no `public_url` is set.
    pub(crate) fn base_url(&self) -> Option<String> {
        let host = self.forwarded_host.as_ref()?.to_str().ok()?;
        let scheme = self.forwarded_proto.unwrap_or(ForwardedProto::Http).as_str();
        Some(format!("{scheme}://{host}"))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn the_base_url_is_the_host_the_gateway_passes_never_the_requests_own() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_static("10.0.1.10:5100"));
        let caller = Caller::from_headers(&headers, &TrustedProxies::default());
        assert_eq!(caller.base_url(), None, "Host names the control plane in split mode");
        headers.insert(injector::FORWARDED_HOST_HEADER, HeaderValue::from_static("proxy.example:5000"));
        let caller = Caller::from_headers(&headers, &TrustedProxies::default());
        assert_eq!(caller.base_url().as_deref(), Some("http://proxy.example:5000"));
        headers.insert(injector::FORWARDED_HOST_HEADER, HeaderValue::from_static("a\"b"));
        assert_eq!(Caller::from_headers(&headers, &TrustedProxies::default()).base_url(), None);
    }

    #[test]
    fn the_scheme_is_https_only_when_a_trusted_proxy_says_so() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let mut headers = HeaderMap::new();
        headers.insert(injector::FORWARDED_HOST_HEADER, HeaderValue::from_static("proxy.example"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert(injector::CLIENT_ADDRESS_HEADER, HeaderValue::from_static("10.0.0.2"));
        assert_eq!(
            Caller::from_headers(&headers, &trusted).base_url().as_deref(),
            Some("https://proxy.example")
        );
        headers.insert(injector::CLIENT_ADDRESS_HEADER, HeaderValue::from_static("::ffff:10.0.0.2"));
        assert_eq!(
            Caller::from_headers(&headers, &trusted).base_url().as_deref(),
            Some("https://proxy.example")
        );
        headers.insert(injector::CLIENT_ADDRESS_HEADER, HeaderValue::from_static("192.0.2.9"));
        assert_eq!(
            Caller::from_headers(&headers, &trusted).base_url().as_deref(),
            Some("http://proxy.example"),
            "not from a trusted proxy"
        );
        headers.insert(injector::CLIENT_ADDRESS_HEADER, HeaderValue::from_static("10.0.0.2"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("gopher"));
        assert_eq!(
            Caller::from_headers(&headers, &trusted).base_url().as_deref(),
            Some("http://proxy.example")
        );
    }

    #[test]
    fn an_ipv4_mapped_client_address_is_its_ipv4_address() {
        let mut headers = HeaderMap::new();
        headers.insert(injector::CLIENT_ADDRESS_HEADER, HeaderValue::from_static("::ffff:192.0.2.7"));
        let caller = Caller::from_headers(&headers, &TrustedProxies::default());
        assert_eq!(caller.address, "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
