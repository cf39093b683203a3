//! Where a `.crate` is downloaded from: cargo's expansion of the `dl` template in `config.json`.

const TEMPLATE_MARKERS: [&str; 5] =
    ["{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}"];

/// cargo's `make_dep_prefix`: the directories of a name's index file, in the name's own case:
/// `1`, `2`, `3/{first char}`, `{chars 1-2}/{chars 3-4}`.
pub fn dep_prefix(name: &str) -> String {
    let chars: Vec<char> = name.chars().take(4).collect();
    match name.chars().count() {
        0 => String::new(),
        1 => "1".to_owned(),
        2 => "2".to_owned(),
        3 => format!("3/{}", chars[0]),
        _ => format!(
            "{}/{}",
            chars.iter().take(2).collect::<String>(),
            chars.iter().skip(2).collect::<String>()
        ),
    }
}

/// The URL of a `.crate` under a `dl` template, as cargo computes it: the markers `{crate}`,
/// `{version}`, `{prefix}`, `{lowerprefix}` and `{sha256-checksum}` are replaced; a `dl` with none
/// of them gets `/{crate}/{version}/download` appended. As in cargo, `{prefix}` keeps the name's
/// case and `{lowerprefix}` is lower case.
pub fn download_url(dl: &str, name: &str, version: &str, cksum: &str) -> String {
    if !TEMPLATE_MARKERS.iter().any(|marker| dl.contains(marker)) {
        return format!("{dl}/{name}/{version}/download");
    }
    let prefix = dep_prefix(name);
    dl.replace("{crate}", name)
        .replace("{version}", version)
        .replace("{prefix}", &prefix)
        .replace("{lowerprefix}", &prefix.to_ascii_lowercase())
        .replace("{sha256-checksum}", cksum)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CKSUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn prefixes() {
        for (name, prefix) in
            [("a", "1"), ("ab", "2"), ("Abc", "3/A"), ("Serde", "Se/rd"), ("abcd", "ab/cd"), ("", "")]
        {
            assert_eq!(dep_prefix(name), prefix, "{name:?}");
        }
    }

    #[test]
    fn without_markers() {
        assert_eq!(
            download_url("https://dl.example.com/api/v1/crates", "serde", "1.0.0", CKSUM),
            "https://dl.example.com/api/v1/crates/serde/1.0.0/download"
        );
    }

    #[test]
    fn with_markers() {
        assert_eq!(
            download_url(
                "https://dl.example.com/{prefix}/{lowerprefix}/{crate}/{crate}-{version}.crate",
                "Inflector",
                "0.11.4",
                CKSUM
            ),
            "https://dl.example.com/In/fl/in/fl/Inflector/Inflector-0.11.4.crate"
        );
        assert_eq!(
            download_url("https://dl.example.com/by-sum/{sha256-checksum}", "abc", "1.0.0+meta", CKSUM),
            format!("https://dl.example.com/by-sum/{CKSUM}")
        );
        assert_eq!(
            download_url("https://dl.example.com/{lowerprefix}/{crate}/{version}", "abc", "1.0.0", CKSUM),
            "https://dl.example.com/3/a/abc/1.0.0"
        );
    }
}
