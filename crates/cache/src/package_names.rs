//! Package names as a package group's rows hold them — npm's `@scope/name` as written (npm names
//! are lowercase), PyPI's PEP 503 normalized name, Maven's `groupId:artifactId`, a Go module path,
//! a crate name (lowercase) — for what operators name packages by: purges
//! (`--package`), pins, warming. And the version a stored file is of, when its document did not
//! say (PyPI's pages list files, not versions: the file name carries it).

use crate::format::Format;

/// A name that is not a package name of the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageNameError {
    /// The group proxies images: it has no packages.
    #[error("a {0} group holds images, not packages")]
    NotPackages(Format),
    #[error("{0}")]
    Invalid(String),
}

impl Format {
    /// `written` as this format's rows name the package: npm names as they are (validated), PyPI
    /// names normalized (`Requests` → `requests`, `zope.interface` → `zope-interface`).
    pub fn package_name(self, written: &str) -> Result<String, PackageNameError> {
        match self {
            Format::Oci => Err(PackageNameError::NotPackages(self)),
            Format::Npm => npm::PackageName::parse(written)
                .map(|name| name.as_str().to_owned())
                .map_err(|error| PackageNameError::Invalid(error.to_string())),
            Format::Pypi => pypi::ProjectName::parse(written)
                .map(|name| name.normalized().to_owned())
                .map_err(|error| PackageNameError::Invalid(error.to_string())),
            Format::Maven => maven_coordinates(written).map(str::to_owned),
            Format::Go => gomod::escape_path(written)
                .map(|_| written.to_owned())
                .map_err(|error| PackageNameError::Invalid(error.to_string())),
            // Cargo's names are case-insensitive: rows hold them lowercase.
            Format::Cargo => cargo_sparse::CrateName::parse(written)
                .map(|name| name.as_str().to_ascii_lowercase())
                .map_err(|error| PackageNameError::Invalid(error.to_string())),
        }
    }

    /// The version of a stored file at `path` whose document listed `listed` (empty when it did
    /// not say): PyPI's is read from the file name.
    pub fn file_version(self, listed: &str, path: &str) -> String {
        if !listed.is_empty() || self != Format::Pypi {
            return listed.to_owned();
        }
        let file = path.rsplit('/').next().unwrap_or(path);
        pypi::version_of_filename(file).unwrap_or_default()
    }
}

/// `groupId:artifactId`, each made of what Maven's coordinates are (letters, digits, `.-_`).
fn maven_coordinates(written: &str) -> Result<&str, PackageNameError> {
    let part = |text: &str| {
        !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    match written.split_once(':') {
        Some((group, artifact)) if part(group) && part(artifact) => Ok(written),
        _ => Err(PackageNameError::Invalid(format!(
            "{written:?} is not Maven coordinates: expected groupId:artifactId, e.g. \"org.example:app\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_held_as_each_format_holds_them() {
        assert_eq!(Format::Npm.package_name("@types/node").unwrap(), "@types/node");
        assert_eq!(Format::Pypi.package_name("Zope.Interface").unwrap(), "zope-interface");
        assert!(Format::Npm.package_name("Lodash").unwrap_err().to_string().contains("lowercase"));
        assert!(Format::Pypi.package_name("-x").is_err());
        assert_eq!(Format::Oci.package_name("x"), Err(PackageNameError::NotPackages(Format::Oci)));
        assert_eq!(Format::Maven.package_name("com.example:app").unwrap(), "com.example:app");
        for bad in ["com.example", ":app", "com.example:", "com/example:app", "a:b:c"] {
            assert!(Format::Maven.package_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Format::Go.package_name("example.com/dp/Beta").unwrap(), "example.com/dp/Beta");
        assert!(Format::Go.package_name("../x").is_err());
        assert_eq!(Format::Cargo.package_name("Dp-Mixed").unwrap(), "dp-mixed", "crate names are case-blind");
        assert!(Format::Cargo.package_name("1abc").is_err());
    }

    #[test]
    fn a_pypi_file_says_its_version_by_name() {
        assert_eq!(Format::Pypi.file_version("", "packages/ab/requests-2.32.3-py3-none-any.whl"), "2.32.3");
        assert_eq!(Format::Pypi.file_version("1.0", "x-2.0.tar.gz"), "1.0", "what the document said wins");
        assert_eq!(Format::Npm.file_version("", "x/-/x-1.0.0.tgz"), "");
    }
}
