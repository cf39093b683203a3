//! Reading a checksum database's lookup answer: the `h1:` hashes it records for a module version,
//! which the gateway checks a fetched `.zip` and `.mod` against.

/// The `h1:` hashes a lookup answer gives for `module@version`: (zip hash, go.mod hash).
///
/// A lookup body is a record id line, then `module version h1:…` and `module version/go.mod h1:…`
/// lines, a blank line, then the signed tree head note. Only the record's lines are read (the
/// note's lines never count); both hashes must be there. `module` and `version` are unescaped, as
/// the record writes them.
pub fn lookup_hashes(body: &str, module: &str, version: &str) -> Option<(String, String)> {
    let mut lines = body.lines();
    let id = lines.next()?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let go_mod_version = format!("{version}/go.mod");
    let (mut zip_hash, mut mod_hash) = (None, None);
    for line in lines.take_while(|line| !line.is_empty()) {
        let mut fields = line.split(' ');
        let (Some(line_module), Some(line_version), Some(hash), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if line_module != module || !hash.starts_with("h1:") {
            continue;
        }
        if line_version == version {
            zip_hash = Some(hash.to_owned());
        } else if line_version == go_mod_version {
            mod_hash = Some(hash.to_owned());
        }
    }
    Some((zip_hash?, mod_hash?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "\
12345
example.com/dp/Hello v1.0.0 h1:vurNIcEQ2G3yrjjw2RsY1lWg/f11jjuTvsigGrClw9s=
example.com/dp/Hello v1.0.0/go.mod h1:k0oGS5Sf0aunmhKq0FE+XejFePUwV0M4e9lNYGbawyo=

go.sum database tree
67890
abcdefABCDEF0123456789abcdefABCDEF0123456=

\u{2014} sum.example.com Az3grnmrQ5+
";

    #[test]
    fn reads_the_record() {
        assert_eq!(
            lookup_hashes(BODY, "example.com/dp/Hello", "v1.0.0"),
            Some((
                "h1:vurNIcEQ2G3yrjjw2RsY1lWg/f11jjuTvsigGrClw9s=".to_owned(),
                "h1:k0oGS5Sf0aunmhKq0FE+XejFePUwV0M4e9lNYGbawyo=".to_owned()
            ))
        );
        let crlf = BODY.replace('\n', "\r\n");
        assert!(lookup_hashes(&crlf, "example.com/dp/Hello", "v1.0.0").is_some());
    }

    #[test]
    fn refuses_what_does_not_match() {
        assert_eq!(lookup_hashes(BODY, "example.com/dp/hello", "v1.0.0"), None);
        assert_eq!(lookup_hashes(BODY, "example.com/dp/Hello", "v1.0.1"), None);
        assert_eq!(lookup_hashes("", "example.com/dp/Hello", "v1.0.0"), None);
        let no_id = BODY.replacen("12345\n", "", 1);
        assert_eq!(lookup_hashes(&no_id, "example.com/dp/Hello", "v1.0.0"), None);
        let no_mod = BODY.replace("example.com/dp/Hello v1.0.0/go.mod", "example.com/dp/Other v1.0.0/go.mod");
        assert_eq!(lookup_hashes(&no_mod, "example.com/dp/Hello", "v1.0.0"), None);
        // Lines after the blank line are the note, not the record.
        let late = "1\nexample.com/m v1.0.0 h1:a=\n\nexample.com/m v1.0.0/go.mod h1:b=\n";
        assert_eq!(lookup_hashes(late, "example.com/m", "v1.0.0"), None);
        let not_h1 = "1\nexample.com/m v1.0.0 h2:a=\nexample.com/m v1.0.0/go.mod h1:b=\n";
        assert_eq!(lookup_hashes(not_h1, "example.com/m", "v1.0.0"), None);
    }
}
