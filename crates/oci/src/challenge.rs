//! Parsing of `WWW-Authenticate` challenges (`Bearer realm="…",service="…",scope="…"`, `Basic …`).

use std::collections::BTreeMap;

/// One authentication challenge: a scheme (lower-cased) and its parameters (keys lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses every challenge in a `WWW-Authenticate` value. Unparseable trailing input is ignored, so
/// a sloppy upstream still yields the challenges that make sense.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut challenges: Vec<Challenge> = Vec::new();
    let mut rest = header.trim_start();
    while !rest.is_empty() {
        let token_len = rest.find(|c: char| c.is_whitespace() || c == ',' || c == '=').unwrap_or(rest.len());
        if token_len == 0 {
            rest = rest[1..].trim_start();
            continue;
        }
        let token = &rest[..token_len];
        let after = rest[token_len..].trim_start();
        if let Some(value_part) = after.strip_prefix('=').filter(|_| !challenges.is_empty()) {
            let (value, remaining) = parse_value(value_part.trim_start());
            if let Some(current) = challenges.last_mut() {
                current.params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining.trim_start().trim_start_matches(',').trim_start();
        } else {
            challenges.push(Challenge { scheme: token.to_ascii_lowercase(), params: BTreeMap::new() });
            rest = after.trim_start_matches(',').trim_start();
        }
    }
    challenges
}

fn parse_value(input: &str) -> (String, &str) {
    if let Some(quoted) = input.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &quoted[index + 1..]),
                _ => value.push(c),
            }
        }
        (value, "")
    } else {
        let end = input.find(|c: char| c == ',' || c.is_whitespace()).unwrap_or(input.len());
        (input[..end].to_owned(), &input[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer() {
        let parsed = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].scheme, "bearer");
        assert_eq!(parsed[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(parsed[0].param("service"), Some("registry.docker.io"));
        assert_eq!(parsed[0].param("scope"), Some("repository:library/alpine:pull"));
    }

    #[test]
    fn basic_and_multiple() {
        let parsed =
            parse_challenges(r#"Basic realm="Registry Realm", Bearer realm=https://x/token,service=x"#);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].scheme, "basic");
        assert_eq!(parsed[0].param("realm"), Some("Registry Realm"));
        assert_eq!(parsed[1].param("realm"), Some("https://x/token"));
        assert_eq!(parsed[1].param("service"), Some("x"));
    }

    #[test]
    fn escapes_and_garbage() {
        let parsed = parse_challenges(r#"Bearer realm="a\"b""#);
        assert_eq!(parsed[0].param("realm"), Some("a\"b"));
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges(",,,Bearer")[0].scheme, "bearer");
    }
}
