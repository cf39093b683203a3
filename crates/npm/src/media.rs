//! Content negotiation (the abbreviated packument) and the error body npm clients print.

use serde::Serialize;

/// The media type of the abbreviated ("corgi") packument that install clients ask for.
pub const ABBREVIATED_MEDIA_TYPE: &str = "application/vnd.npm.install-v1+json";

/// The media type of the full packument and of every other JSON answer.
pub const JSON_MEDIA_TYPE: &str = "application/json";

/// True when an `Accept` header lists the abbreviated packument type. q-values are otherwise
/// ignored (clients that list it always prefer it), except that `q=0` means "not this".
pub fn wants_abbreviated(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media_type = parts.next().unwrap_or("").trim();
        media_type.eq_ignore_ascii_case(ABBREVIATED_MEDIA_TYPE) && !parts.any(param_is_q_zero)
    })
}

fn param_is_q_zero(param: &str) -> bool {
    let Some((key, value)) = param.split_once('=') else { return false };
    key.trim().eq_ignore_ascii_case("q") && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
}

/// The JSON error body npm clients read and show: `{"error":"…"}`.
pub fn error_body(message: &str) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
    }
    // Serializing one string field cannot fail; the fallback keeps the shape anyway.
    serde_json::to_string(&Body { error: message }).unwrap_or_else(|_| r#"{"error":"error"}"#.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviated_negotiation() {
        // What npm 10 sends.
        let npm = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";
        assert!(wants_abbreviated(Some(npm)));
        assert!(wants_abbreviated(Some("application/vnd.npm.install-v1+json")));
        assert!(wants_abbreviated(Some("Application/Vnd.Npm.Install-V1+Json;q=0.1")));
        assert!(!wants_abbreviated(Some("application/vnd.npm.install-v1+json;q=0")));
        assert!(!wants_abbreviated(Some("application/vnd.npm.install-v1+json; q=0.000, application/json")));
        assert!(!wants_abbreviated(Some("application/json")));
        assert!(!wants_abbreviated(Some("*/*")));
        assert!(!wants_abbreviated(Some("")));
        assert!(!wants_abbreviated(None));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(error_body("not found"), r#"{"error":"not found"}"#);
        let message = r#"invalid package name "Foo": npm package names are lowercase"#;
        let body: serde_json::Value = serde_json::from_str(&error_body(message)).unwrap();
        assert_eq!(body["error"], message);
        assert_eq!(error_body("a\nb\\"), r#"{"error":"a\nb\\"}"#);
    }
}
