//! Reading the files a stored project page lists, from either form of the simple API: HTML
//! (PEP 503, anchors) or JSON (PEP 691, `files[]`), with the sha256 each publishes for the file and
//! for its `.metadata` (PEP 658/714).

use std::cell::RefCell;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// A file a project page lists.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublishedFile {
    /// The href (or JSON `url`) as written, entities decoded, without the `#fragment`: relative or
    /// absolute; resolve it with [`crate::resolve_href`].
    pub url: String,
    /// The file name: the anchor text (or JSON `filename`), or the href's last path segment.
    pub filename: String,
    /// Lowercase hex, from `#sha256=` or JSON `hashes.sha256`; `None` when the page publishes no
    /// (well-formed) sha256.
    pub sha256: Option<String>,
    /// Lowercase hex of the `.metadata` file, from `data-core-metadata` / `data-dist-info-metadata`
    /// (`sha256=…`) or JSON `core-metadata` / `dist-info-metadata` (`{"sha256": …}`). `None` when
    /// the page says the metadata exists without a sha256 (`true`) or does not say.
    pub metadata_sha256: Option<String>,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("invalid simple index JSON page: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid simple index JSON page: not a JSON object")]
    NotAnObject,
    #[error("unreadable simple index HTML page: {0}")]
    Html(String),
}

/// Every file an HTML project page (PEP 503) lists: one per `<a href>`.
pub fn html_files(document: &[u8]) -> Result<Vec<PublishedFile>, DocumentError> {
    struct Anchor {
        href: String,
        text: String,
        core_metadata: Option<String>,
        dist_info_metadata: Option<String>,
    }
    let anchors: RefCell<Vec<Anchor>> = RefCell::new(Vec::new());
    {
        let settings = lol_html::Settings::new()
            .append_element_content_handler(lol_html::element!("a[href]", |element| {
                anchors.borrow_mut().push(Anchor {
                    href: element.get_attribute("href").unwrap_or_default(),
                    text: String::new(),
                    core_metadata: element.get_attribute("data-core-metadata"),
                    dist_info_metadata: element.get_attribute("data-dist-info-metadata"),
                });
                Ok(())
            }))
            // Anchors do not nest, so text inside `a[href]` belongs to the last one opened.
            .append_element_content_handler(lol_html::text!("a[href]", |chunk| {
                if let Some(anchor) = anchors.borrow_mut().last_mut() {
                    anchor.text.push_str(chunk.as_str());
                }
                Ok(())
            }));
        let mut rewriter = lol_html::HtmlRewriter::new(settings, |_: &[u8]| {});
        rewriter.write(document).map_err(|error| DocumentError::Html(error.to_string()))?;
        rewriter.end().map_err(|error| DocumentError::Html(error.to_string()))?;
    }
    let files = anchors
        .into_inner()
        .into_iter()
        .filter_map(|anchor| {
            // lol_html gives attribute values and text with their entities as written.
            let href = decode_entities(anchor.href.trim());
            let (url, fragment) = match href.split_once('#') {
                Some((url, fragment)) => (url.to_owned(), Some(fragment)),
                None => (href.clone(), None),
            };
            if url.is_empty() {
                return None;
            }
            let text = decode_entities(anchor.text.trim());
            let text = text.trim();
            let filename = if text.is_empty() { last_segment(&url) } else { text.to_owned() };
            let sha256 = fragment.and_then(sha256_of_pair);
            let metadata_sha256 = anchor
                .core_metadata
                .or(anchor.dist_info_metadata)
                .and_then(|value| sha256_of_pair(&decode_entities(value.trim())));
            Some(PublishedFile { url, filename, sha256, metadata_sha256 })
        })
        .collect();
    Ok(files)
}

/// Every file a JSON project page (PEP 691) lists.
pub fn json_files(document: &[u8]) -> Result<Vec<PublishedFile>, DocumentError> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        files: Vec<FileEntry>,
    }
    #[derive(Deserialize)]
    struct FileEntry {
        filename: String,
        url: String,
        #[serde(default)]
        hashes: Hashes,
        #[serde(default, rename = "core-metadata")]
        core_metadata: MetadataHashes,
        #[serde(default, rename = "dist-info-metadata")]
        dist_info_metadata: MetadataHashes,
    }
    match document.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        _ => return Err(DocumentError::NotAnObject),
    }
    let page: Page = serde_json::from_slice(document)?;
    Ok(page
        .files
        .into_iter()
        .map(|entry| {
            let (url, fragment) = match entry.url.split_once('#') {
                Some((url, fragment)) => (url.to_owned(), Some(fragment.to_owned())),
                None => (entry.url, None),
            };
            let sha256 = entry
                .hashes
                .sha256
                .as_deref()
                .and_then(valid_sha256)
                .or_else(|| fragment.as_deref().and_then(sha256_of_pair));
            let metadata_sha256 = entry.core_metadata.0.or(entry.dist_info_metadata.0);
            PublishedFile { url, filename: entry.filename, sha256, metadata_sha256 }
        })
        .collect())
}

/// The `hashes` dictionary; only sha256 is read.
#[derive(Deserialize, Default)]
struct Hashes {
    #[serde(default)]
    sha256: Option<String>,
}

/// `core-metadata` / `dist-info-metadata`: `true`, `false`, or a hashes dictionary. Read straight
/// from the stream (no buffering of an untagged enum); holds the well-formed sha256 if any.
#[derive(Default)]
struct MetadataHashes(Option<String>);

impl<'de> Deserialize<'de> for MetadataHashes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetadataVisitor;

        impl<'de> Visitor<'de> for MetadataVisitor {
            type Value = MetadataHashes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean or a dictionary of hashes")
            }

            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<MetadataHashes, E> {
                Ok(MetadataHashes(None))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<MetadataHashes, E> {
                Ok(MetadataHashes(None))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetadataHashes, A::Error> {
                let mut sha256 = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "sha256" {
                        let value: String = map.next_value()?;
                        sha256 = valid_sha256(&value);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(MetadataHashes(sha256))
            }
        }

        deserializer.deserialize_any(MetadataVisitor)
    }
}

/// `sha256=HEX` (a fragment or a metadata attribute) → lowercase hex; any other algorithm, or a
/// malformed value, → `None`.
fn sha256_of_pair(pair: &str) -> Option<String> {
    let (algorithm, value) = pair.split_once('=')?;
    if algorithm.trim().eq_ignore_ascii_case("sha256") { valid_sha256(value.trim()) } else { None }
}

fn valid_sha256(hex: &str) -> Option<String> {
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_ascii_lowercase())
}

/// The last path segment of a URL (no query), percent-decoding left as written.
fn last_segment(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

/// Decodes the character references an index page puts in attributes and anchor text: numeric
/// ones and the named ones that occur in URLs and file names. Unknown references stay as written.
pub(crate) fn decode_entities(input: &str) -> String {
    if !input.contains('&') {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let decoded = rest.find(';').filter(|&end| end <= 32).and_then(|end| {
            let character = match &rest[1..end] {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                "equals" => Some('='),
                "num" => Some('#'),
                "sol" => Some('/'),
                "percnt" => Some('%'),
                "plus" => Some('+'),
                name => {
                    let number = name.strip_prefix('#')?;
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => number.parse::<u32>().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((character, end))
        });
        match decoded {
            Some((character, end)) => {
                out.push(character);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHA_A: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    const SHA_B: &str = "0f3d2cfa0d4a5e7bd8b46b47b4b9f4d5e0d1c2b3a4958677685a4b3c2d1e0f9a";

    /// A project page as pypiserver 2.x renders it (`/simple/foo/`): relative links up to
    /// `/packages/`, sha256 fragments.
    fn pypiserver_page() -> String {
        format!(
            r#"<!DOCTYPE html>
<html>
    <head>
        <title>Links for foo</title>
    </head>
    <body>
        <h1>Links for foo</h1>
             <a href="../../packages/foo-1.0.tar.gz#sha256={SHA_A}">foo-1.0.tar.gz</a><br>
             <a href="../../packages/foo-1.0-py3-none-any.whl#sha256={upper}" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256={SHA_B}" data-core-metadata="sha256={SHA_B}">foo-1.0-py3-none-any.whl</a><br>
             <a href="../../packages/foo-0.9.zip#md5=0123456789abcdef0123456789abcdef">foo-0.9.zip</a><br>
             <a href="../../packages/foo-0.8.tar.gz">foo-0.8.tar.gz</a><br>
    </body>
</html>
"#,
            upper = SHA_A.to_uppercase()
        )
    }

    #[test]
    fn pypiserver_html() {
        let files = html_files(pypiserver_page().as_bytes()).unwrap();
        assert_eq!(files.len(), 4);
        assert_eq!(
            files[0],
            PublishedFile {
                url: "../../packages/foo-1.0.tar.gz".into(),
                filename: "foo-1.0.tar.gz".into(),
                sha256: Some(SHA_A.into()),
                metadata_sha256: None,
            }
        );
        assert_eq!(files[1].filename, "foo-1.0-py3-none-any.whl");
        assert_eq!(files[1].sha256.as_deref(), Some(SHA_A));
        assert_eq!(files[1].metadata_sha256.as_deref(), Some(SHA_B));
        assert_eq!(files[2].url, "../../packages/foo-0.9.zip");
        assert_eq!(files[2].sha256, None);
        assert_eq!(files[3].sha256, None);
    }

    /// A devpi-server page: absolute links with `+f` paths, yanked and requires-python attributes,
    /// entities in attributes, a file name that differs from the link's last segment.
    #[test]
    fn devpi_html() {
        let page = format!(
            r#"<!DOCTYPE html><html><head><title>root/pypi/: links for requests</title></head><body><h1>root/pypi/: links for requests</h1>
<a href="https://files.example.com/root/pypi/+f/a1b/2c3d4e5f60718/requests-2.32.3-py3-none-any.whl#sha256={SHA_A}" data-requires-python="&gt;=3.8" data-yanked="">requests-2.32.3-py3-none-any.whl</a><br/>
<a href="https://files.example.com/root/pypi/+f/b2c/3d4e5f6071829/requests-2.32.3.tar.gz?source=mirror&amp;x=1#sha256={SHA_B}" data-core-metadata="true">requests-2.32.3.tar.gz</a><br/>
<a href="https://files.example.com/root/pypi/+f/c3d/4e5f607182930/requests-2.31.0.tar.gz#sha256={SHA_A}" data-yanked="broken &amp; insecure" data-dist-info-metadata="sha256={SHA_B}"> <span>requests-2.31.0.tar.gz</span> </a>
<a name="no-href">not a link</a>
<a href="">empty</a>
</body></html>"#
        );
        let files = html_files(page.as_bytes()).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(
            files[0].url,
            "https://files.example.com/root/pypi/+f/a1b/2c3d4e5f60718/requests-2.32.3-py3-none-any.whl"
        );
        assert_eq!(
            files[1].url,
            "https://files.example.com/root/pypi/+f/b2c/3d4e5f6071829/requests-2.32.3.tar.gz?source=mirror&x=1"
        );
        assert_eq!(files[1].sha256.as_deref(), Some(SHA_B));
        assert_eq!(files[1].metadata_sha256, None);
        assert_eq!(files[2].filename, "requests-2.31.0.tar.gz");
        assert_eq!(files[2].metadata_sha256.as_deref(), Some(SHA_B));
    }

    #[test]
    fn html_edge_cases() {
        let page = format!(
            "<html><body>\
             <A HREF='/packages/bar-2.0.tar.gz#SHA256={SHA_A}'></A>\
             <a href=\"bar-1.0.tar.gz#sha256=&#x{first:x};{rest}\">bar-1.0.tar.gz</a>\
             <a href=\"bar-0.1.tar.gz#sha256=tooshort\">bar-0.1.tar.gz</a>\
             <a href=\"bar-0.2.tar.gz#sha512=abc\">bar-0.2.tar.gz</a>\
             <a href=\"https://files.example.com/p/bar%2B1-0.3.tar.gz\">bar&amp;co-0.3.tar.gz</a>\
             </body></html>",
            first = SHA_A.as_bytes()[0],
            rest = &SHA_A[1..],
        );
        let files = html_files(page.as_bytes()).unwrap();
        assert_eq!(files.len(), 5);
        assert_eq!(files[0].filename, "bar-2.0.tar.gz");
        assert_eq!(files[0].sha256.as_deref(), Some(SHA_A));
        assert_eq!(files[1].sha256.as_deref(), Some(SHA_A));
        assert_eq!(files[2].sha256, None);
        assert_eq!(files[3].sha256, None);
        assert_eq!(files[4].filename, "bar&co-0.3.tar.gz");
        assert_eq!(files[4].url, "https://files.example.com/p/bar%2B1-0.3.tar.gz");
    }

    #[test]
    fn html_without_anchors() {
        assert!(html_files(b"").unwrap().is_empty());
        assert!(html_files(b"<html><body><h1>No files</h1></body></html>").unwrap().is_empty());
        assert!(html_files(b"not html at all \xff\xfe").unwrap().is_empty());
    }

    /// A PEP 691 page as pypiserver/devpi/warehouse-style servers render it.
    fn json_page() -> String {
        format!(
            r#"{{
  "meta": {{"api-version": "1.1", "_last-serial": 24076543}},
  "name": "foo",
  "versions": ["0.9", "1.0"],
  "files": [
    {{"filename": "foo-1.0-py3-none-any.whl", "url": "https://files.example.com/packages/ab/cd/foo-1.0-py3-none-any.whl",
      "hashes": {{"sha256": "{upper}", "blake2b_256": "abcd"}}, "requires-python": ">=3.8",
      "core-metadata": {{"sha256": "{SHA_B}"}}, "dist-info-metadata": {{"sha256": "{SHA_B}"}},
      "size": 12345, "upload-time": "2024-05-01T10:00:00.000000Z", "yanked": false}},
    {{"filename": "foo-1.0.tar.gz", "url": "../../packages/foo-1.0.tar.gz#sha256={SHA_A}", "hashes": {{}},
      "core-metadata": false, "yanked": "broken build"}},
    {{"filename": "foo-0.9.zip", "url": "https://files.example.com/packages/foo-0.9.zip", "hashes": {{"md5": "0123"}},
      "dist-info-metadata": true}},
    {{"filename": "foo-0.8.tar.gz", "url": "https://files.example.com/packages/foo-0.8.tar.gz", "hashes": {{"sha256": "bad"}},
      "core-metadata": {{"md5": "0123"}}}}
  ]
}}"#,
            upper = SHA_A.to_uppercase()
        )
    }

    #[test]
    fn pep691_json() {
        let files = json_files(json_page().as_bytes()).unwrap();
        assert_eq!(files.len(), 4);
        assert_eq!(
            files[0],
            PublishedFile {
                url: "https://files.example.com/packages/ab/cd/foo-1.0-py3-none-any.whl".into(),
                filename: "foo-1.0-py3-none-any.whl".into(),
                sha256: Some(SHA_A.into()),
                metadata_sha256: Some(SHA_B.into()),
            }
        );
        assert_eq!(files[1].url, "../../packages/foo-1.0.tar.gz");
        assert_eq!(files[1].sha256.as_deref(), Some(SHA_A));
        assert_eq!(files[1].metadata_sha256, None);
        assert_eq!(files[2].sha256, None);
        assert_eq!(files[2].metadata_sha256, None);
        assert_eq!(files[3].sha256, None);
        assert_eq!(files[3].metadata_sha256, None);
    }

    #[test]
    fn json_errors_and_empty_pages() {
        assert!(json_files(br#"{"meta":{"api-version":"1.0"},"name":"x","files":[]}"#).unwrap().is_empty());
        assert!(json_files(br#"{"meta":{"api-version":"1.0"},"name":"x"}"#).unwrap().is_empty());
        for bad in [
            &b""[..],
            b"[]",
            b"<html></html>",
            br#"{"files":{}}"#,
            br#"{"files":[{"filename":"a.whl"}]}"#,
            br#"{"files":[{"filename":"a.whl","url":"a.whl","core-metadata":"yes"}]}"#,
        ] {
            assert!(json_files(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn entities() {
        assert_eq!(decode_entities("a&amp;b&lt;&gt;&quot;&#39;&#x41;&#X42;"), "a&b<>\"'AB");
        assert_eq!(decode_entities("a & b &unknown; &#xZZ; &"), "a & b &unknown; &#xZZ; &");
        assert_eq!(decode_entities("no entities"), "no entities");
        assert_eq!(decode_entities("&#1114112;"), "&#1114112;");
    }

    proptest! {
        #[test]
        fn html_never_panics(page in "[<>a-z =\"'#&;/.0-9]{0,200}") {
            let _ = html_files(page.as_bytes());
        }

        #[test]
        fn entities_never_panic(input in "\\PC{0,60}") {
            let _ = decode_entities(&input);
        }
    }
}
