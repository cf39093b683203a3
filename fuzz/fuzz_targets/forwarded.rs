//! What a trusted proxy says about the client (`access::TrustedProxies`): its address from
//! `X-Forwarded-For` and its scheme from `X-Forwarded-Proto` (`access::parse_forwarded_proto`).
//! Input: one byte choosing the peer (a trusted proxy, IPv4-mapped or not, or a stranger), then
//! the `X-Forwarded-For` value, a NUL byte, and the `X-Forwarded-Proto` value.
#![no_main]

use std::net::IpAddr;

use access::{ForwardedProto, TrustedProxies, canonical, parse_forwarded_proto};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (forwarded_for, forwarded_proto) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let (Ok(forwarded_for), Ok(forwarded_proto)) =
        (std::str::from_utf8(forwarded_for), std::str::from_utf8(forwarded_proto))
    else {
        return;
    };
    let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()]);
    let peers: [IpAddr; 4] = [
        "10.0.0.2".parse().unwrap(),
        "::ffff:10.0.0.2".parse().unwrap(),
        "2001:db8::7".parse().unwrap(),
        "192.0.2.9".parse().unwrap(),
    ];
    let peer = peers[usize::from(selector) % peers.len()];
    let stranger = peer == peers[3];

    let client = trusted.client_address(peer, [forwarded_for].into_iter());
    assert_eq!(client, canonical(client), "the client address is canonical");
    if stranger {
        assert_eq!(client, peer, "a stranger's header is ignored");
    } else {
        // The peer, or one of the hops it forwarded, canonical.
        let hops: Vec<IpAddr> = forwarded_for
            .split(',')
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        assert!(client == canonical(peer) || hops.contains(&client), "{client} is from nowhere");
    }

    let parsed = parse_forwarded_proto(forwarded_proto);
    let last = forwarded_proto.rsplit(',').next().unwrap_or("").trim().to_ascii_lowercase();
    match parsed {
        Some(scheme) => assert_eq!(scheme.as_str(), last),
        None => assert!(last != "http" && last != "https", "{last:?} not recognised"),
    }
    let believed = trusted.forwarded_proto(peer, [forwarded_proto].into_iter());
    if stranger {
        assert_eq!(believed, None);
    } else {
        assert_eq!(believed, parsed);
    }
    let _: Option<ForwardedProto> = believed;
});
