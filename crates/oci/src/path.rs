//! The one parser from a request path to an [`Endpoint`]. Names, digests and references are
//! validated here, so nothing invalid reaches policy, the database or storage.
//!
//! Paths are taken raw (never percent-decoded): an encoded `/` or `.` is simply an invalid name.

use crate::digest::Digest;
use crate::error::{ErrorCode, OciError};
use crate::name::{GroupPath, Reference, RepositoryName};

/// The marker that separates a group path from an image name in GitLab's URL form.
pub const GROUP_MARKER: &str = "/dependency_proxy/containers/";

/// How a request names its image.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ImageAddress {
    /// `/v2/<group path>/dependency_proxy/containers/<image>/…`
    Group { group: GroupPath, image: RepositoryName },
    /// `/v2/<image>/…`: the mirror form. Which group serves it (root mirror, `?ns=`, upstream-name
    /// prefix) is a policy decision of the control plane.
    Root { image: RepositoryName },
}

impl ImageAddress {
    /// Parses a repository name as a client writes it after `/v2/` (group form or not), e.g. in a
    /// token scope.
    pub fn parse(name: &str) -> Result<ImageAddress, OciError> {
        parse_image(name)
    }

    /// The image name as written in the request.
    pub fn image(&self) -> &RepositoryName {
        match self {
            ImageAddress::Group { image, .. } | ImageAddress::Root { image } => image,
        }
    }

    /// The whole repository name as the client wrote it after `/v2/` (what a token scope names).
    pub fn as_written(&self) -> String {
        match self {
            ImageAddress::Group { group, image } => format!("{group}{GROUP_MARKER}{image}"),
            ImageAddress::Root { image } => image.to_string(),
        }
    }
}

/// Manifest or blob: the two kinds of cached object.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Manifest,
    Blob,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Manifest => "manifest",
            ObjectKind::Blob => "blob",
        }
    }
}

/// What a `/v2/…` request path asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// `/v2/`: API version check.
    Base,
    /// `/v2/token`: the token endpoint of the docker token flow (no image is named `token` alone:
    /// an image path always goes on with `/manifests/…`, `/blobs/…`, `/tags/list` or `/referrers/…`).
    Token,
    Manifest {
        image: ImageAddress,
        reference: Reference,
    },
    Blob {
        image: ImageAddress,
        digest: Digest,
    },
    TagsList {
        image: ImageAddress,
    },
    Referrers {
        image: ImageAddress,
        digest: Digest,
    },
}

impl Endpoint {
    /// A short stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Token => "token",
            Endpoint::Manifest { .. } => "manifest",
            Endpoint::Blob { .. } => "blob",
            Endpoint::TagsList { .. } => "tags_list",
            Endpoint::Referrers { .. } => "referrers",
        }
    }
}

fn not_found(path: &str) -> OciError {
    OciError::new(ErrorCode::Unsupported, format!("no such endpoint: {path}"))
        .with_status(http::StatusCode::NOT_FOUND)
}

/// Parses a request path (without query) into an endpoint.
pub fn parse_v2_path(path: &str) -> Result<Endpoint, OciError> {
    let rest = match path {
        "/v2" | "/v2/" => return Ok(Endpoint::Base),
        "/v2/token" => return Ok(Endpoint::Token),
        _ => path.strip_prefix("/v2/").ok_or_else(|| not_found(path))?,
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let count = segments.len();
    if count >= 3 && segments[count - 2] == "tags" && segments[count - 1] == "list" {
        let image = parse_image(&segments[..count - 2].join("/"))?;
        return Ok(Endpoint::TagsList { image });
    }
    if count >= 3 {
        let (keyword, last) = (segments[count - 2], segments[count - 1]);
        let name = || segments[..count - 2].join("/");
        match keyword {
            "manifests" => {
                let image = parse_image(&name())?;
                return Ok(Endpoint::Manifest { image, reference: parse_reference(last)? });
            }
            "blobs" => {
                let image = parse_image(&name())?;
                return Ok(Endpoint::Blob { image, digest: parse_digest(last)? });
            }
            "referrers" => {
                let image = parse_image(&name())?;
                return Ok(Endpoint::Referrers { image, digest: parse_digest(last)? });
            }
            _ => {}
        }
    }
    Err(not_found(path))
}

/// A manifest reference. A malformed tag names no manifest that could exist, and the distribution
/// spec says a manifest that is not found MUST be 404 (`TAG_INVALID` is a push error).
fn parse_reference(input: &str) -> Result<Reference, OciError> {
    Reference::parse(input).map_err(|error| match error.code {
        ErrorCode::TagInvalid => OciError::new(ErrorCode::ManifestUnknown, format!("no manifest {input:?}")),
        _ => error,
    })
}

fn parse_digest(input: &str) -> Result<Digest, OciError> {
    input.parse::<Digest>().map_err(|error| {
        OciError::new(ErrorCode::DigestInvalid, error.to_string())
            .with_detail(serde_json::json!({ "digest": input }))
    })
}

fn parse_image(name: &str) -> Result<ImageAddress, OciError> {
    // The marker is two whole path segments; found segment by segment, without a copy of the
    // name or a substring searcher (this runs on every request).
    let mut previous: Option<(usize, &str)> = None;
    let mut start = 0;
    for segment in name.split('/') {
        if segment == "containers"
            && let Some((marker_start, "dependency_proxy")) = previous
        {
            if marker_start == 0 {
                return Err(OciError::new(
                    ErrorCode::NameInvalid,
                    "empty group path before /dependency_proxy/containers/",
                ));
            }
            let group = &name[..marker_start - 1];
            // Empty when the name ends with the marker (`acme/dependency_proxy/containers`); the
            // empty image is refused below.
            let image = name.get(start + segment.len() + 1..).unwrap_or("");
            return Ok(ImageAddress::Group {
                group: GroupPath::parse(group)?,
                image: RepositoryName::parse(image)?,
            });
        }
        previous = Some((start, segment));
        start += segment.len() + 1;
    }
    Ok(ImageAddress::Root { image: RepositoryName::parse(name)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::Tag;

    fn digest() -> String {
        format!("sha256:{}", "ab".repeat(32))
    }

    #[test]
    fn base() {
        assert_eq!(parse_v2_path("/v2/").unwrap(), Endpoint::Base);
        assert_eq!(parse_v2_path("/v2").unwrap(), Endpoint::Base);
        assert_eq!(parse_v2_path("/v2/token").unwrap(), Endpoint::Token);
        assert!(matches!(parse_v2_path("/v2/token/manifests/v1").unwrap(), Endpoint::Manifest { .. }));
    }

    #[test]
    fn the_group_marker_is_two_whole_segments() {
        let group = |name: &str| match ImageAddress::parse(name) {
            Ok(ImageAddress::Group { group, image }) => {
                Some((group.as_str().to_owned(), image.as_str().to_owned()))
            }
            Ok(ImageAddress::Root { .. }) => None,
            Err(error) => panic!("{name}: {error:?}"),
        };
        assert_eq!(group("a/b/dependency_proxy/containers/c/d"), Some(("a/b".into(), "c/d".into())));
        assert_eq!(group("a/dependency_proxy/containers/dependency_proxy/containers/x").unwrap().0, "a");
        assert_eq!(group("a/xdependency_proxy/containers/b"), None);
        assert_eq!(group("a/dependency_proxy/containersx/b"), None);
        assert_eq!(group("a/dependency_proxy/b/containers/c"), None);
        for refused in [
            "dependency_proxy/containers/x",
            "a/dependency_proxy/containers",
            "a//dependency_proxy/containers/b",
        ] {
            assert!(ImageAddress::parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn names_as_written() {
        for name in ["library/alpine", "acme/platform/dependency_proxy/containers/foo/bar"] {
            assert_eq!(ImageAddress::parse(name).unwrap().as_written(), name);
        }
        assert!(ImageAddress::parse("Bad").is_err());
    }

    #[test]
    fn mirror_and_group_forms() {
        let endpoint = parse_v2_path("/v2/library/alpine/manifests/3.20").unwrap();
        assert_eq!(
            endpoint,
            Endpoint::Manifest {
                image: ImageAddress::Root { image: RepositoryName::parse("library/alpine").unwrap() },
                reference: Reference::Tag(Tag::parse("3.20").unwrap()),
            }
        );
        let path = format!("/v2/acme/platform/dependency_proxy/containers/foo/bar/blobs/{}", digest());
        match parse_v2_path(&path).unwrap() {
            Endpoint::Blob { image: ImageAddress::Group { group, image }, digest: d } => {
                assert_eq!(group.as_str(), "acme/platform");
                assert_eq!(image.as_str(), "foo/bar");
                assert_eq!(d.to_string(), digest());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_that_look_like_keywords() {
        match parse_v2_path("/v2/foo/manifests/manifests/latest").unwrap() {
            Endpoint::Manifest { image, .. } => assert_eq!(image.image().as_str(), "foo/manifests"),
            other => panic!("{other:?}"),
        }
        match parse_v2_path("/v2/foo/manifests/upload").unwrap() {
            Endpoint::Manifest { reference, .. } => assert_eq!(reference.to_string(), "upload"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tags_and_referrers() {
        assert!(matches!(parse_v2_path("/v2/a/b/tags/list").unwrap(), Endpoint::TagsList { .. }));
        assert!(matches!(
            parse_v2_path(&format!("/v2/a/referrers/{}", digest())).unwrap(),
            Endpoint::Referrers { .. }
        ));
    }

    #[test]
    fn invalid_input_gets_the_right_code() {
        let code = |path: &str| parse_v2_path(path).unwrap_err().code;
        assert_eq!(code("/v2/Alpine/manifests/latest"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a/../b/manifests/latest"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a/blobs/sha256:%2f%2e%2e"), ErrorCode::DigestInvalid);
        assert_eq!(code("/v2/a/blobs/latest"), ErrorCode::DigestInvalid);
        assert_eq!(code("/v2/a/manifests/sha256:12"), ErrorCode::DigestInvalid);
        assert_eq!(code("/v2/a/manifests/-bad"), ErrorCode::ManifestUnknown);
        assert_eq!(code("/v2/a/manifests/.INVALID_MANIFEST_NAME"), ErrorCode::ManifestUnknown);
        assert_eq!(parse_v2_path("/v2/a/manifests/-v1").unwrap_err().status, http::StatusCode::NOT_FOUND);
        assert_eq!(code("/v2/dependency_proxy/containers/a/manifests/v1"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a/unknown/x"), ErrorCode::Unsupported);
        assert_eq!(parse_v2_path("/v3/").unwrap_err().status, http::StatusCode::NOT_FOUND);
        assert_eq!(code("/v2/g%2f/dependency_proxy/containers/a/manifests/v1"), ErrorCode::NameInvalid);
    }

    /// Found by the `v2_path` and `names` fuzz targets: a name ending with the group marker and no
    /// image after it sliced past the end of the string (a panic).
    #[test]
    fn group_marker_without_image() {
        let code = |path: &str| parse_v2_path(path).unwrap_err().code;
        assert_eq!(code("/v2/acme/dependency_proxy/containers/manifests/latest"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a/b/dependency_proxy/containers/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(
            code(&format!("/v2/acme/dependency_proxy/containers/blobs/{}", digest())),
            ErrorCode::NameInvalid
        );
        assert_eq!(
            ImageAddress::parse("acme/dependency_proxy/containers").unwrap_err().code,
            ErrorCode::NameInvalid
        );
        assert_eq!(
            ImageAddress::parse("dependency_proxy/containers").unwrap_err().code,
            ErrorCode::NameInvalid
        );
        // The fuzzers' inputs as they crashed.
        let path = concat!(
            "/v2/depe_dency_pro\0\0/containersv2e/depndency_proxy/containers/a/manifests/a/platform",
            "/dependency_proxy/containers/manifests/v1"
        );
        assert_eq!(code(path), ErrorCode::NameInvalid);
        let name = format!("lb/{}latform/dependency_proxy/containers", "\0".repeat(82));
        assert_eq!(ImageAddress::parse(&name).unwrap_err().code, ErrorCode::NameInvalid);
    }
}
