//! Module paths and versions as the GOPROXY protocol writes them: the `!`-case encoding that
//! keeps paths unambiguous on case-insensitive file systems, and the validity rules of
//! golang.org/x/mod/module (`CheckPath`, `EscapePath`, `UnescapePath`, `EscapeVersion`,
//! `UnescapeVersion`).
//!
//! One leniency: module paths under `gopkg.in/` are not checked for their `.vN` suffix (Go's
//! `SplitPathVersion` rule for them); every other rule of `CheckPath` applies.

use crate::error::PathError;

/// Longest module path or version accepted: far beyond any real one, short enough for a file name.
const MAX_LEN: usize = 512;

/// Windows device names, refused as a path element's base name (before its first dot).
const BAD_WINDOWS_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
    "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An element of a module path.
    Module,
    /// A file name (versions are checked as file names).
    File,
}

/// Checks a module path as golang.org/x/mod/module.CheckPath does (see the module doc for the one
/// leniency).
pub fn check_path(path: &str) -> Result<(), PathError> {
    let refuse = |reason| Err(PathError::ModulePath { input: path.to_owned(), reason });
    if path.len() > MAX_LEN {
        return refuse("too long");
    }
    if let Err(reason) = check_elements(path, Kind::Module) {
        return refuse(reason);
    }
    let first = path.split('/').next().unwrap_or(path);
    if !first.contains('.') {
        return refuse("missing dot in first path element");
    }
    if first.starts_with('-') {
        return refuse("leading dash in first path element");
    }
    if !first.bytes().all(|b| matches!(b, b'-' | b'.' | b'0'..=b'9' | b'a'..=b'z')) {
        return refuse("the first path element has only lowercase letters, digits, '.' and '-'");
    }
    if !path.starts_with("gopkg.in/") && !major_suffix_is_valid(path) {
        return refuse("invalid major version suffix");
    }
    Ok(())
}

/// Checks a version as golang.org/x/mod/module checks one in `EscapeVersion`: a valid file name
/// element.
pub fn check_version(version: &str) -> Result<(), PathError> {
    let refuse = |reason| Err(PathError::Version { input: version.to_owned(), reason });
    if version.len() > MAX_LEN {
        return refuse("too long");
    }
    if let Err(reason) = check_element(version, Kind::File) {
        return refuse(reason);
    }
    Ok(())
}

/// `Example.com/Foo` → `example.com/!foo`. The path is checked first.
pub fn escape_path(module: &str) -> Result<String, PathError> {
    check_path(module)?;
    Ok(escape_string(module))
}

/// `example.com/!foo` → `example.com/Foo`, checked.
pub fn unescape_path(escaped: &str) -> Result<String, PathError> {
    let path = unescape_string(escaped)
        .ok_or_else(|| PathError::ModulePath { input: escaped.to_owned(), reason: "bad !-case escaping" })?;
    check_path(&path)?;
    Ok(path)
}

/// `v1.0.0-RC1` → `v1.0.0-!r!c1`. A `!` in a version cannot be escaped.
pub fn escape_version(version: &str) -> Result<String, PathError> {
    check_version(version)?;
    if version.contains('!') || !version.is_ascii() {
        return Err(PathError::Version {
            input: version.to_owned(),
            reason: "a version to escape has no '!' and no non-ASCII character",
        });
    }
    Ok(escape_string(version))
}

/// `v1.0.0-!r!c1` → `v1.0.0-RC1`, checked.
pub fn unescape_version(escaped: &str) -> Result<String, PathError> {
    let version = unescape_string(escaped)
        .ok_or_else(|| PathError::Version { input: escaped.to_owned(), reason: "bad !-case escaping" })?;
    check_version(&version)?;
    Ok(version)
}

/// Callers have checked there is no `!` and nothing non-ASCII (paths by `check_path`).
fn escape_string(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + 4);
    for c in input.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `None` when a `!` is not followed by a lowercase letter, an uppercase letter is not escaped, or
/// a character is not ASCII.
fn unescape_string(escaped: &str) -> Option<String> {
    let mut out = String::with_capacity(escaped.len());
    let mut bang = false;
    for c in escaped.chars() {
        if !c.is_ascii() {
            return None;
        }
        if bang {
            bang = false;
            if !c.is_ascii_lowercase() {
                return None;
            }
            out.push(c.to_ascii_uppercase());
        } else if c == '!' {
            bang = true;
        } else if c.is_ascii_uppercase() {
            return None;
        } else {
            out.push(c);
        }
    }
    if bang { None } else { Some(out) }
}

/// golang.org/x/mod/module.checkPath: the whole path, then each element.
fn check_elements(path: &str, kind: Kind) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty string");
    }
    if path.starts_with('-') && kind != Kind::File {
        return Err("leading dash");
    }
    if path.starts_with('/') {
        return Err("leading slash");
    }
    if path.contains("//") {
        return Err("double slash");
    }
    if path.ends_with('/') {
        return Err("trailing slash");
    }
    path.split('/').try_for_each(|element| check_element(element, kind))
}

/// golang.org/x/mod/module.checkElem.
fn check_element(element: &str, kind: Kind) -> Result<(), &'static str> {
    if element.is_empty() {
        return Err("empty path element");
    }
    if element.chars().all(|c| c == '.') {
        return Err("a path element of dots only");
    }
    if element.starts_with('.') && kind == Kind::Module {
        return Err("leading dot in path element");
    }
    if element.ends_with('.') {
        return Err("trailing dot in path element");
    }
    let char_ok = match kind {
        Kind::Module => module_char_ok,
        Kind::File => file_char_ok,
    };
    if !element.chars().all(char_ok) {
        return Err("invalid character in path element");
    }
    let short = element.split('.').next().unwrap_or(element);
    if BAD_WINDOWS_NAMES.iter().any(|bad| bad.eq_ignore_ascii_case(short)) {
        return Err("disallowed path element (a Windows device name)");
    }
    if kind == Kind::Module
        && let Some((_, suffix)) = short.rsplit_once('~')
        && !suffix.is_empty()
        && suffix.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("trailing tilde and digits in path element (a Windows short name)");
    }
    Ok(())
}

fn module_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// golang.org/x/mod/module.fileNameOK: ASCII letters, digits and `!#$%&()+,-.=@[]^_{}~ `, or any
/// non-ASCII letter.
fn file_char_ok(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&()+,-.=@[]^_{}~ ".contains(c)
    } else {
        c.is_alphabetic()
    }
}

/// golang.org/x/mod/module.SplitPathVersion's check of a trailing `/vN`: N ≥ 2, no leading zero,
/// no dot.
fn major_suffix_is_valid(path: &str) -> bool {
    let digits_and_dots = path.bytes().rev().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let stem = &path[..path.len() - digits_and_dots];
    if digits_and_dots == 0 || !stem.ends_with("/v") || stem.len() < 2 {
        return true;
    }
    let major = &path[path.len() - digits_and_dots..];
    !major.contains('.') && !major.starts_with('0') && major != "1"
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths() {
        for (module, escaped) in [
            ("github.com/Azure/azure-sdk-for-go", "github.com/!azure/azure-sdk-for-go"),
            ("example.com/dp/Hello", "example.com/dp/!hello"),
            ("example.com/ABC", "example.com/!a!b!c"),
            ("example.com/x/v2", "example.com/x/v2"),
            ("gopkg.in/yaml.v3", "gopkg.in/yaml.v3"),
            ("example.com/a_b~c.d-e", "example.com/a_b~c.d-e"),
        ] {
            assert_eq!(escape_path(module).as_deref(), Ok(escaped), "{module}");
            assert_eq!(unescape_path(escaped).as_deref(), Ok(module), "{escaped}");
        }
    }

    #[test]
    fn bad_paths() {
        for bad in [
            "",
            "example",
            "/example.com/x",
            "example.com//x",
            "example.com/x/",
            "example.com/../x",
            "example.com/./x",
            "example.com/.x",
            "example.com/x.",
            "-example.com/x",
            "Example.com/x",
            "ex_ample.com/x",
            "example.com/a b",
            "example.com/a%2fb",
            "example.com/a\\b",
            "example.com/a@b",
            "example.com/a!b",
            "example.com/caf\u{e9}",
            "example.com/x/v1",
            "example.com/x/v0",
            "example.com/x/v02",
            "example.com/x/v2.1",
            "example.com/con",
            "example.com/aux.go",
            "example.com/abcdef~1",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
            assert!(escape_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path(&format!("example.com/{}", "a".repeat(MAX_LEN))).is_err());
        // Unescaping refuses what Go refuses, and then checks the path.
        for bad in
            ["example.com/Azure", "example.com/!", "example.com/!!a", "example.com/!1", "!example.com/a"]
        {
            assert!(unescape_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            unescape_path("example.com/A").unwrap_err().to_string(),
            r#"invalid Go module path "example.com/A": bad !-case escaping"#
        );
    }

    #[test]
    fn versions() {
        for (version, escaped) in [
            ("v1.0.0", "v1.0.0"),
            ("v1.0.0-RC1", "v1.0.0-!r!c1"),
            ("v2.0.0+incompatible", "v2.0.0+incompatible"),
            ("v0.0.0-20240101120000-abcdef123456", "v0.0.0-20240101120000-abcdef123456"),
            ("master", "master"),
        ] {
            assert_eq!(escape_version(version).as_deref(), Ok(escaped), "{version}");
            assert_eq!(unescape_version(escaped).as_deref(), Ok(version), "{escaped}");
        }
        for bad in ["", ".", "..", "v1/2", "v1.", "v1\\2", "v1\n", "v1!a", "con"] {
            assert!(escape_version(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "..", "v1.0.0-RC1", "v1.0.0-!", "v1.0.0-!1", "a/b", "v\u{e9}"] {
            assert!(unescape_version(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn paths_round_trip(
            host in "[a-z0-9][a-z0-9-]{0,8}\\.[a-z]{2,5}",
            rest in proptest::collection::vec("[a-zA-Z0-9_~-][a-zA-Z0-9._~-]{0,10}[a-zA-Z0-9_-]", 0..4),
        ) {
            let module = std::iter::once(host).chain(rest).collect::<Vec<_>>().join("/");
            prop_assume!(check_path(&module).is_ok());
            let escaped = escape_path(&module).unwrap();
            prop_assert!(!escaped.bytes().any(|b| b.is_ascii_uppercase()));
            prop_assert_eq!(unescape_path(&escaped).unwrap(), module);
        }

        #[test]
        fn versions_round_trip(version in "v[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-zA-Z0-9.]{0,10}[a-zA-Z0-9])?(\\+[a-z]{1,8})?") {
            let escaped = escape_version(&version).unwrap();
            prop_assert_eq!(unescape_version(&escaped).unwrap(), version);
        }

        #[test]
        fn unescape_never_panics(input in "[!a-zA-Z0-9./_~-]{0,30}") {
            if let Ok(path) = unescape_path(&input) {
                prop_assert_eq!(escape_path(&path).unwrap(), input.clone());
            }
            if let Ok(version) = unescape_version(&input) {
                prop_assert_eq!(escape_version(&version).unwrap(), input);
            }
        }
    }
}
