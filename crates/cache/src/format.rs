//! The formats depproxy proxies, in one list. A format owns how a request path maps to what it
//! asks for (an artifact: an immutable file named by the checksum its upstream published; or a
//! document: a mutable file with a freshness rule), how the upstream is asked, and what a cached
//! document is served as. Everything else — groups, access policy, the catalog, fill leases,
//! lifecycle, admin, metrics — is shared by every format and knows none of that.

use std::fmt;

/// A registry protocol. `oci` is the default of every group and upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Container images: the OCI distribution API (`docker`, `podman`, `containerd`, `skopeo`).
    #[default]
    Oci,
    /// npm packages: the npm registry API (`npm`, `yarn`, `pnpm`), at `/npm/<group path>/`.
    Npm,
    /// Python packages: the simple repository API (`pip`, `uv`, `poetry`), at `/pypi/<group path>/`.
    Pypi,
    /// Maven repositories: the Maven 2 layout (`mvn`, Gradle), at `/maven/<group path>/`.
    Maven,
    /// Go modules: the GOPROXY protocol and checksum-database proxying (`go`), at `/go/<group path>/`.
    Go,
    /// Cargo sparse registries (`cargo`), at `/cargo/<group path>/`.
    Cargo,
}

impl Format {
    /// Every format, in the order documentation lists them.
    pub const ALL: &'static [Format] =
        &[Format::Oci, Format::Npm, Format::Pypi, Format::Maven, Format::Go, Format::Cargo];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Oci => "oci",
            Format::Npm => "npm",
            Format::Pypi => "pypi",
            Format::Maven => "maven",
            Format::Go => "go",
            Format::Cargo => "cargo",
        }
    }

    /// What separates an artifact's name from its tag or version in allow, deny and
    /// `immutable_tags` patterns (and in messages): `library/alpine:3.20` for images; package
    /// formats write `lodash@4.17.21`.
    pub fn version_separator(self) -> char {
        match self {
            Format::Oci => ':',
            Format::Npm | Format::Pypi | Format::Maven | Format::Go | Format::Cargo => '@',
        }
    }

    /// The format a request path is addressed to: `/v2/…` is OCI (its clients know no other
    /// prefix); a package format's groups are reached at `/<format>/<group path>/…`.
    pub fn of_path(path: &str) -> Option<Format> {
        Format::ALL.iter().copied().find(|format| match format {
            Format::Oci => path == "/v2" || path.starts_with("/v2/"),
            _ => format.package_path(path).is_some(),
        })
    }

    /// Whether it is a package format: its groups are reached at `/<format>/<group path>/`, its
    /// artifacts are files named by path and its documents are the indexes that list them.
    pub fn is_package(self) -> bool {
        self != Format::Oci
    }

    /// For a package format, the group path and the rest of a request path addressed to it:
    /// `/npm/js/@types%2fnode` → `("js", "@types%2fnode")`. A group path is one segment.
    pub fn package_path(self, path: &str) -> Option<(&str, &str)> {
        if !self.is_package() {
            return None;
        }
        let rest = path.strip_prefix('/')?.strip_prefix(self.as_str())?.strip_prefix('/')?;
        let (group, rest) = rest.split_once('/').unwrap_or((rest, ""));
        (!group.is_empty()).then_some((group, rest))
    }

    /// The known formats, for messages: `oci, npm, …`.
    pub fn known() -> String {
        Format::ALL.iter().map(|format| format.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .iter()
            .copied()
            .find(|format| format.as_str() == text)
            .ok_or_else(|| UnknownFormat(text.to_owned()))
    }
}

/// A format name no format has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?} (known formats: {known})", known = Format::known())]
pub struct UnknownFormat(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_print_and_pick_their_paths() {
        for format in Format::ALL {
            assert_eq!(format.as_str().parse::<Format>(), Ok(*format));
        }
        assert_eq!(Format::of_path("/v2/"), Some(Format::Oci));
        assert_eq!(Format::of_path("/v2/library/alpine/manifests/3"), Some(Format::Oci));
        assert_eq!(Format::of_path("/v2x"), None);
        assert_eq!(Format::of_path("/elsewhere"), None);
        assert_eq!(Format::of_path("/npm/js/lodash"), Some(Format::Npm));
        assert_eq!(Format::of_path("/pypi/python/simple/"), Some(Format::Pypi));
        assert_eq!(Format::of_path("/npmx/js"), None);
        assert_eq!(Format::of_path("/npm/"), None);
        assert_eq!(Format::Npm.package_path("/npm/js/@a%2fb"), Some(("js", "@a%2fb")));
        assert_eq!(Format::Npm.package_path("/npm/js"), Some(("js", "")));
        assert_eq!(Format::Pypi.package_path("/pypi/python/simple/x/"), Some(("python", "simple/x/")));
        assert_eq!(Format::Oci.package_path("/v2/x"), None);
        let error = "npmx".parse::<Format>().unwrap_err();
        assert!(error.to_string().contains("known formats: oci"), "{error}");
    }
}
