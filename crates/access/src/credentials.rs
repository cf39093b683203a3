//! What a client presents in `Authorization`: Basic (a username, ignored, and a password that may
//! be an access token) or Bearer (a registry JWT we issued, or — from package clients such as npm —
//! an access token itself); or, as cargo sends a registry token (RFC 3139), the bare access token
//! with no scheme. Never logged.

use base64::Engine as _;
use secrecy::SecretString;

/// Credentials from an `Authorization` header.
#[derive(Debug)]
pub enum Credentials {
    Basic { username: String, password: SecretString },
    Bearer(SecretString),
}

impl Credentials {
    /// Parses an `Authorization` value; `None` for a scheme or encoding we do not take.
    pub fn from_header(value: &http::HeaderValue) -> Option<Credentials> {
        let text = value.to_str().ok()?.trim();
        if text.starts_with(crate::secret::SECRET_PREFIX) && !text.contains(' ') {
            // cargo sends the token as it was given, with no scheme.
            return Some(Credentials::Bearer(SecretString::from(text.to_owned())));
        }
        let (scheme, rest) = text.split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
            let pair = String::from_utf8(decoded).ok()?;
            let (username, password) = pair.split_once(':')?;
            return Some(Credentials::Basic {
                username: username.to_owned(),
                password: SecretString::from(password.to_owned()),
            });
        }
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            return Some(Credentials::Bearer(SecretString::from(rest.to_owned())));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn parse(value: &str) -> Option<Credentials> {
        Credentials::from_header(&http::HeaderValue::from_str(value).unwrap())
    }

    #[test]
    fn basic_and_bearer() {
        match parse("Basic Y2k6ZHBwX3NlY3JldA==") {
            Some(Credentials::Basic { username, password }) => {
                assert_eq!(username, "ci");
                assert_eq!(password.expose_secret(), "dpp_secret");
            }
            other => panic!("{other:?}"),
        }
        match parse("bearer eyJ.x.y") {
            Some(Credentials::Bearer(token)) => assert_eq!(token.expose_secret(), "eyJ.x.y"),
            other => panic!("{other:?}"),
        }
        assert!(parse("Basic !!!").is_none());
        assert!(parse("Basic bm9jb2xvbg==").is_none(), "no colon");
        assert!(parse("Negotiate abc").is_none());
        assert!(parse("Bearer").is_none());
        match parse("dpp_secret") {
            Some(Credentials::Bearer(token)) => assert_eq!(token.expose_secret(), "dpp_secret"),
            other => panic!("cargo's bare token: {other:?}"),
        }
        assert!(parse("eyJ.x.y").is_none(), "only an access token goes bare");
        assert!(!format!("{:?}", parse("Basic Y2k6ZHBwX3NlY3JldA==")).contains("dpp_secret"));
    }
}
