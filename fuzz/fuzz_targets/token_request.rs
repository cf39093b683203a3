//! The token endpoint's parsing of its query string and form body
//! (`control::parse_token_request`). Input: one byte for the method (even: GET, odd: POST), then
//! the query string, a NUL byte, and the form body. Beyond "no panic": at most 32 scope items are
//! taken (more is a 400, whatever the method), a GET with fewer always parses.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let method = if selector % 2 == 0 { Method::GET } else { Method::POST };
    let (query, body) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(query) = std::str::from_utf8(query) else { return };
    let result = control::parse_token_request(&method, query, body);
    if let Ok(request) = &result {
        assert!(request.scopes.len() <= access::MAX_SCOPES, "{} scopes", request.scopes.len());
    }
    if method == Method::GET {
        // A GET parses unless it names more than 32 scope items (400); its credentials come
        // from the Authorization header, not from here.
        let request = match result {
            Ok(request) => request,
            Err(error) => {
                assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
                assert!(scope_items(query) > access::MAX_SCOPES, "a GET of few scopes refused: {error:?}");
                return;
            }
        };
        assert!(scope_items(query) <= access::MAX_SCOPES);
        assert!(request.credentials.is_none() && request.refresh_token.is_none());
        for scope in &request.scopes {
            assert!(!scope.resource_type.is_empty() && !scope.name.is_empty());
            assert!(!scope.name.contains(char::is_whitespace));
        }
        return;
    }
    match result {
        Ok(request) => {
            assert!(std::str::from_utf8(body).is_ok());
            assert!(request.refresh_token.is_some() != request.credentials.is_some());
            if request.refresh_token.is_some() {
                assert!(request.offline);
            }
            for scope in &request.scopes {
                assert!(!scope.resource_type.is_empty() && !scope.name.is_empty());
            }
        }
        Err(error) => assert_eq!(error.status, http::StatusCode::BAD_REQUEST),
    }
});

/// The whitespace-separated items of a query's `scope` parameters.
fn scope_items(query: &str) -> usize {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.split_whitespace().count())
        .sum()
}
