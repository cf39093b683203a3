//! Who sent a client request: its address (the gateway's `Depproxy-Client-Address`, through
//! trusted proxies' `X-Forwarded-For`), its credentials, and the base URL it reached us at.

use std::net::{IpAddr, Ipv4Addr};

use access::{Credentials, TrustedProxies};
use http::HeaderMap;

pub(crate) struct Caller {
    pub address: IpAddr,
    pub credentials: Option<Credentials>,
    /// `http://<Host>`: where the client reached us, for the token realm when no `public_url` is set.
    pub base_url: Option<String>,
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
        let credentials = headers.get(http::header::AUTHORIZATION).and_then(Credentials::from_header);
        let base_url = headers
            .get(http::header::HOST)
            .and_then(|value| value.to_str().ok())
            .filter(|host| !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic() && b != b'"'))
            .map(|host| format!("http://{host}"));
        let refetch = headers
            .get(injector::REFETCH_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse().ok());
        Caller { address, credentials, base_url, refetch }
    }
}
