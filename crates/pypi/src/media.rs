//! Content negotiation between the two forms of the simple API (PEP 691) and resolving the file
//! links of a page.

/// The JSON form of the simple API (PEP 691), version 1.
pub const JSON_MEDIA_TYPE: &str = "application/vnd.pypi.simple.v1+json";
/// The HTML form of the simple API, version 1 (PEP 691's name for PEP 503 pages).
pub const HTML_MEDIA_TYPE: &str = "application/vnd.pypi.simple.v1+html";
/// The legacy name of the HTML form.
pub const LEGACY_HTML_MEDIA_TYPE: &str = "text/html";

/// True when the `Accept` header prefers the JSON form: its q-value is above zero and at least as
/// high as that of any HTML form (`…v1+html`, `…latest+html`, `text/html`, `*/*`). pip sends
/// `application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html;
/// q=0.01` and gets JSON; a missing header, `*/*` or `text/html` alone get HTML (what PEP 503
/// clients understand). On a tie JSON wins: it is the richer form and every client that names it
/// reads it.
pub fn wants_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let mut json_q: f32 = 0.0;
    let mut html_q: f32 = 0.0;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|param| param.split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, value)| value.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0));
        match media_type.as_str() {
            JSON_MEDIA_TYPE | "application/vnd.pypi.simple.latest+json" => json_q = json_q.max(q),
            HTML_MEDIA_TYPE | "application/vnd.pypi.simple.latest+html" | LEGACY_HTML_MEDIA_TYPE | "*/*" => {
                html_q = html_q.max(q)
            }
            _ => {}
        }
    }
    json_q > 0.0 && json_q >= html_q
}

/// Resolves a file link of a page against the page's absolute URL: `../../packages/foo-1.0.tar.gz`
/// on `https://pypi.example.com/simple/foo/` is `https://pypi.example.com/packages/foo-1.0.tar.gz`.
/// The fragment is kept as the href wrote it. `None` when the page URL is not absolute or the result is
/// not an http(s) URL (a `javascript:` or `file:` link names nothing to fetch).
pub fn resolve_href(document_url: &str, href: &str) -> Option<String> {
    let base = url::Url::parse(document_url).ok()?;
    let resolved = base.join(href.trim()).ok()?;
    matches!(resolved.scheme(), "http" | "https").then(|| resolved.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert!(wants_json(Some(pip)));
        let uv = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
        assert!(wants_json(Some(uv)));
        assert!(wants_json(Some(JSON_MEDIA_TYPE)));
        assert!(wants_json(Some("application/vnd.pypi.simple.latest+json")));
        assert!(wants_json(Some("Application/Vnd.Pypi.Simple.V1+Json")));
        // Equal preference: JSON.
        assert!(wants_json(Some("application/vnd.pypi.simple.v1+json, text/html")));
        assert!(!wants_json(Some("application/vnd.pypi.simple.v1+json;q=0.5, text/html")));
        assert!(!wants_json(Some("application/vnd.pypi.simple.v1+json;q=0, */*")));
        assert!(!wants_json(Some("application/vnd.pypi.simple.v1+json;q=0")));
        assert!(!wants_json(Some("application/vnd.pypi.simple.v1+json;q=bogus")));
        assert!(!wants_json(Some("text/html")));
        assert!(!wants_json(Some("*/*")));
        assert!(!wants_json(Some("")));
        assert!(!wants_json(None));
    }

    #[test]
    fn hrefs() {
        let page = "https://pypi.example.com/simple/foo/";
        assert_eq!(
            resolve_href(page, "../../packages/foo-1.0.tar.gz#sha256=abc").as_deref(),
            Some("https://pypi.example.com/packages/foo-1.0.tar.gz#sha256=abc")
        );
        assert_eq!(
            resolve_href(page, "foo-1.0.tar.gz").as_deref(),
            Some("https://pypi.example.com/simple/foo/foo-1.0.tar.gz")
        );
        assert_eq!(
            resolve_href(page, "/packages/foo-1.0.tar.gz").as_deref(),
            Some("https://pypi.example.com/packages/foo-1.0.tar.gz")
        );
        assert_eq!(
            resolve_href(page, "https://files.example.com/packages/ab/cd/foo-1.0.whl").as_deref(),
            Some("https://files.example.com/packages/ab/cd/foo-1.0.whl")
        );
        assert_eq!(
            resolve_href(page, "//files.example.com/p/foo-1.0.whl").as_deref(),
            Some("https://files.example.com/p/foo-1.0.whl")
        );
        // Without the trailing slash the last segment is a file and `..` climbs one less.
        assert_eq!(
            resolve_href("http://pypi.example.com:8080/simple/foo", "../packages/foo-1.0.zip").as_deref(),
            Some("http://pypi.example.com:8080/packages/foo-1.0.zip")
        );
        assert_eq!(resolve_href(page, "javascript:alert(1)"), None);
        assert_eq!(resolve_href(page, "file:///etc/passwd"), None);
        assert_eq!(resolve_href("/simple/foo/", "foo-1.0.zip"), None);
    }
}
