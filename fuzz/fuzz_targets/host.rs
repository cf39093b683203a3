//! `depproxy::server::Host::parse` and `HostPolicy::allows`: the `Host` check of a loopback
//! listener (DNS rebinding). What parses is canonical (lower case, no brackets, no final dot,
//! non-empty), prints to a value that parses back to it, and is loopback exactly when it is
//! `localhost`, a name under it, or a loopback address; a policy with no names allows exactly the
//! loopback hosts, and a policy naming a host allows it.
#![no_main]

use std::net::IpAddr;

use depproxy::server::{Host, HostPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(host) = Host::parse(text) else { return };
    let name = host.name();
    assert!(!name.is_empty() && !name.ends_with('.') && !name.contains(['[', ']']), "{text:?} -> {host:?}");
    assert_eq!(name, name.to_ascii_lowercase(), "{text:?}");
    let printed = host.to_string();
    assert_eq!(Host::parse(&printed).as_ref(), Ok(&host), "{text:?} printed as {printed:?}");
    let loopback = match name.parse::<IpAddr>() {
        Ok(address) => address.to_canonical().is_loopback(),
        Err(_) => name == "localhost" || name.ends_with(".localhost"),
    };
    assert_eq!(host.is_loopback(), loopback, "{text:?}");
    assert_eq!(HostPolicy::default().allows(&host), loopback, "{text:?}");
    assert!(HostPolicy::new(vec![host.clone()]).allows(&host), "{text:?}");
});
