//! `oci::parse_challenges`: any `WWW-Authenticate` value. Schemes and parameter names come out
//! lower-cased and non-empty; printing what was parsed in canonical form (quoted values) and
//! parsing it again gives the same challenges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci::{Challenge, parse_challenges};

fn print(challenges: &[Challenge]) -> String {
    let printed: Vec<String> = challenges
        .iter()
        .map(|challenge| {
            let params: Vec<String> = challenge
                .params
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            if params.is_empty() {
                challenge.scheme.clone()
            } else {
                format!("{} {}", challenge.scheme, params.join(","))
            }
        })
        .collect();
    printed.join(", ")
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else { return };
    let challenges = parse_challenges(header);
    for challenge in &challenges {
        let token_ok = |text: &str| {
            !text.is_empty()
                && !text.contains(|c: char| c.is_whitespace() || c == ',' || c == '=')
                && text.to_ascii_lowercase() == text
        };
        assert!(token_ok(&challenge.scheme), "{:?}", challenge.scheme);
        assert!(challenge.params.keys().all(|key| token_ok(key)), "{challenge:?}");
    }
    let printed = print(&challenges);
    assert_eq!(parse_challenges(&printed), challenges, "{printed:?}");
});
