//! Reading a sparse index file: one JSON object per line, one line per published version. Only
//! the fields the proxy needs are read (name, version, checksum, yanked).

use serde::Deserialize;

/// A version an index file lists.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublishedCrate {
    pub name: String,
    pub version: String,
    /// The `.crate`'s sha256, lowercase hex.
    pub cksum: String,
    pub yanked: bool,
}

/// Why an index file or `config.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("invalid Cargo registry document: not UTF-8")]
    NotUtf8(#[from] std::str::Utf8Error),
    #[error("invalid Cargo registry document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid Cargo registry document: not a JSON object")]
    NotAnObject,
}

#[derive(Deserialize)]
struct IndexLine {
    name: String,
    vers: String,
    cksum: String,
    // Some registries write `null` for "not yanked".
    #[serde(default)]
    yanked: Option<bool>,
}

/// Every version an index file lists. A line that does not parse, or whose `cksum` is not a sha256
/// in hex, is skipped (a registry may add line formats cargo also skips); a file that is not UTF-8
/// is an error.
pub fn index_entries(body: &[u8]) -> Result<Vec<PublishedCrate>, IndexError> {
    let text = std::str::from_utf8(body)?;
    Ok(text.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &str) -> Option<PublishedCrate> {
    let line = line.trim();
    // serde's derived structs also take a JSON array (fields by position).
    if !line.starts_with('{') {
        return None;
    }
    let entry: IndexLine = serde_json::from_str(line).ok()?;
    if entry.cksum.len() != 64 || !entry.cksum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(PublishedCrate {
        name: entry.name,
        version: entry.vers,
        cksum: entry.cksum.to_ascii_lowercase(),
        yanked: entry.yanked.unwrap_or(false),
    })
}

/// Refuses a document that is not a JSON object before serde could read an array as a struct.
pub(crate) fn require_object(document: &[u8]) -> Result<(), IndexError> {
    match document.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(IndexError::NotAnObject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUM_A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const SUM_B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn reads_every_version() {
        let body = format!(
            concat!(
                r#"{{"name":"demo","vers":"1.0.0","deps":[],"cksum":"{a}","features":{{}},"yanked":false}}"#,
                "\n",
                r#"{{"name":"demo","vers":"1.1.0","deps":[{{"name":"x","req":"^1"}}],"cksum":"{b}","features":{{}},"yanked":true,"v":2,"features2":{{}}}}"#,
                "\n",
                r#"{{"name":"demo","vers":"1.2.0","cksum":"{b_upper}","yanked":null}}"#,
                "\n"
            ),
            a = SUM_A,
            b = SUM_B,
            b_upper = SUM_B.to_uppercase()
        );
        let entries = index_entries(body.as_bytes()).unwrap();
        assert_eq!(
            entries,
            vec![
                PublishedCrate {
                    name: "demo".into(),
                    version: "1.0.0".into(),
                    cksum: SUM_A.into(),
                    yanked: false
                },
                PublishedCrate {
                    name: "demo".into(),
                    version: "1.1.0".into(),
                    cksum: SUM_B.into(),
                    yanked: true
                },
                PublishedCrate {
                    name: "demo".into(),
                    version: "1.2.0".into(),
                    cksum: SUM_B.into(),
                    yanked: false
                },
            ]
        );
    }

    #[test]
    fn skips_what_does_not_parse() {
        let body = format!(
            "\n{{\"name\":\"demo\",\"vers\":\"1.0.0\",\"cksum\":\"{SUM_A}\"}}\r\nnot json\n[\"demo\",\"2.0.0\",\"{SUM_A}\"]\n\
             {{\"name\":\"demo\",\"vers\":\"3.0.0\",\"cksum\":\"abc\"}}\n{{\"name\":\"demo\",\"cksum\":\"{SUM_A}\"}}\n"
        );
        let entries = index_entries(body.as_bytes()).unwrap();
        assert_eq!(entries.iter().map(|e| e.version.as_str()).collect::<Vec<_>>(), ["1.0.0"]);
        assert!(index_entries(b"").unwrap().is_empty());
        assert!(matches!(index_entries(&[0xff, b'\n']), Err(IndexError::NotUtf8(_))));
    }
}
