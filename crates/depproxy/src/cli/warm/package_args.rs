//! The packages `cache warm` is given, as the command line names them.

use cache::Format;

/// A package to warm, as the command names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageArg {
    /// As given, for messages.
    pub written: String,
    /// As the group's rows name it (PyPI: normalized).
    pub name: String,
    /// `None`: npm's `latest` dist-tag, PyPI's newest final release.
    pub version: Option<String>,
}

/// `NAME[@VERSION]` (npm; a scope's `@` starts the name), `NAME[==VERSION|@VERSION]` (PyPI).
pub fn parse_package(format: Format, written: &str) -> Result<PackageArg, String> {
    let (name, version) = match written.split_once("==") {
        Some((name, version)) if format == Format::Pypi => (name, Some(version)),
        _ => match written.char_indices().skip(1).filter(|(_, c)| *c == '@').last() {
            Some((at, _)) => (&written[..at], Some(&written[at + 1..])),
            None => (written, None),
        },
    };
    if version.is_some_and(|version| version.is_empty() || version.contains(['/', ' ', '@', '='])) {
        let form = if format == Format::Pypi { "NAME[==VERSION]" } else { "NAME[@VERSION]" };
        return Err(format!("not {form}: the version is empty or not one"));
    }
    let name = format.package_name(name).map_err(|error| error.to_string())?;
    Ok(PackageArg { written: written.to_owned(), name, version: version.map(str::to_owned) })
}
