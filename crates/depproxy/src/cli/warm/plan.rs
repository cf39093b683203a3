//! What to warm: the command's options, validated into a plan before any request is made.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use oci::{Digest, GroupPath, Reference, RepositoryName, Tag};

use super::package_args::{PackageArg, parse_package};

/// How many blobs (and manifests) are fetched at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// What to warm, and through which proxy.
#[derive(Clone)]
pub struct WarmOptions {
    /// Base URL of the proxy's public listener, e.g. `http://127.0.0.1:5000`.
    pub proxy: String,
    /// The group path (`default` for the mirror group).
    pub group: String,
    /// `IMAGE[:TAG|@DIGEST]`, tag `latest` when neither is given; for a package group
    /// `NAME[@VERSION]` (PyPI also `NAME==VERSION`).
    pub images: Vec<String>,
    /// An access token for groups with `access = "token"`.
    pub token: Option<String>,
    /// Objects fetched at once (at least 1).
    pub concurrency: usize,
    /// Where `proxy` came from (`--proxy`, `--listen`, a configuration's `listen`, the default),
    /// said when the proxy cannot be reached.
    pub proxy_origin: String,
    /// The configuration file given on the command line, for the `depproxy token create` hint.
    pub config: Option<std::path::PathBuf>,
}

impl fmt::Debug for WarmOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarmOptions")
            .field("proxy", &self.proxy)
            .field("group", &self.group)
            .field("images", &self.images)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("concurrency", &self.concurrency)
            .field("proxy_origin", &self.proxy_origin)
            .field("config", &self.config)
            .finish()
    }
}

/// The proxy URL a configuration's listener is reached at from this machine: an unspecified
/// address (`0.0.0.0`, `[::]`) is a bind-everything address, not one to connect to.
pub fn default_proxy_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// The arguments, validated before any request: a typo fails fast instead of after a long run.
pub(super) struct Plan {
    pub(super) images: Vec<ImageRef>,
}

pub(super) struct ImageRef {
    /// As given on the command line, for messages.
    pub(super) written: String,
    pub(super) name: RepositoryName,
    pub(super) reference: Reference,
}

impl Plan {
    /// The group the options name.
    pub(super) fn group(options: &WarmOptions) -> anyhow::Result<GroupPath> {
        GroupPath::parse(&options.group)
            .map_err(|error| anyhow::anyhow!("--group {:?}: {}", options.group, error.message))
    }

    /// The arguments as packages of a `format` group, every one valid (else none is warmed).
    pub(super) fn packages(options: &WarmOptions, format: cache::Format) -> anyhow::Result<Vec<PackageArg>> {
        let form = if format == cache::Format::Pypi { "NAME[==VERSION]" } else { "NAME[@VERSION]" };
        if options.images.is_empty() {
            anyhow::bail!("no package to warm: name at least one {form}");
        }
        let mut packages = Vec::new();
        let mut invalid = Vec::new();
        for written in &options.images {
            match parse_package(format, written) {
                Ok(package) => packages.push(package),
                Err(why) => invalid.push(format!("{written:?}: {why}")),
            }
        }
        if !invalid.is_empty() {
            anyhow::bail!(
                "invalid package(s) for {format} group {}, nothing was warmed (expected {form}):\n  {}",
                options.group,
                invalid.join("\n  ")
            );
        }
        Ok(packages)
    }

    pub(super) fn parse(options: &WarmOptions) -> anyhow::Result<Plan> {
        Self::group(options)?;
        if options.images.is_empty() {
            anyhow::bail!("no image to warm: name at least one IMAGE[:TAG|@DIGEST]");
        }
        let mut images = Vec::new();
        let mut invalid = Vec::new();
        for written in &options.images {
            match parse_image(written) {
                Ok(image) => images.push(image),
                Err(why) => invalid.push(format!("{written:?}: {why}")),
            }
        }
        if !invalid.is_empty() {
            anyhow::bail!("invalid image reference(s), nothing was warmed:\n  {}", invalid.join("\n  "));
        }
        Ok(Plan { images })
    }
}

impl Plan {
    /// Tags already known to be valid (scheduled warming's), each written `IMAGE:TAG`.
    pub(super) fn of_tags(tags: &[(RepositoryName, Tag)]) -> Plan {
        let images = tags
            .iter()
            .map(|(name, tag)| ImageRef {
                written: format!("{name}:{tag}"),
                name: name.clone(),
                reference: Reference::Tag(tag.clone()),
            })
            .collect();
        Plan { images }
    }
}

/// `IMAGE[:TAG|@DIGEST]`. With both a tag and a digest the digest decides, as docker does.
fn parse_image(written: &str) -> Result<ImageRef, String> {
    let (rest, digest) = match written.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (written, None),
    };
    // A ':' after the last '/' starts a tag; one before it would be a registry port, which an
    // image name on this proxy never has (the group decides the registry).
    let (name, tag) = match rest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (rest, None),
    };
    let name = RepositoryName::parse(name).map_err(|error| error.message)?;
    let tag = tag.map(Tag::parse).transpose().map_err(|error| error.message)?;
    let reference = match (digest, tag) {
        (Some(digest), _) => {
            Reference::Digest(digest.parse::<Digest>().map_err(|error| format!("digest: {error}"))?)
        }
        (None, Some(tag)) => Reference::Tag(tag),
        (None, None) => Reference::Tag(Tag::parse("latest").map_err(|error| error.message)?),
    };
    Ok(ImageRef { written: written.to_owned(), name, reference })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_default_to_latest_and_prefer_a_digest() {
        let digest = Digest::of(b"x");
        let cases = [
            ("alpine", "alpine", "latest".to_owned()),
            ("library/alpine:3.20", "library/alpine", "3.20".to_owned()),
            (&*format!("lab/multi@{digest}"), "lab/multi", digest.to_string()),
            (&*format!("lab/multi:v1@{digest}"), "lab/multi", digest.to_string()),
        ];
        for (written, name, reference) in cases {
            let image = parse_image(written).unwrap();
            assert_eq!((image.name.as_str(), image.reference.to_string()), (name, reference), "{written}");
        }
        for invalid in ["", "Alpine", "alpine:", "alpine:bad/tag", "alpine@sha256:short", "host:5000/x:y:z"] {
            assert!(parse_image(invalid).is_err(), "{invalid:?} should be refused");
        }
    }

    #[test]
    fn unspecified_listen_addresses_are_reached_on_loopback() {
        assert_eq!(default_proxy_url("0.0.0.0:5000".parse().unwrap()), "http://127.0.0.1:5000");
        assert_eq!(default_proxy_url("[::]:5000".parse().unwrap()), "http://[::1]:5000");
        assert_eq!(default_proxy_url("10.1.2.3:80".parse().unwrap()), "http://10.1.2.3:80");
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let options = WarmOptions {
            proxy: "http://127.0.0.1:5000".into(),
            group: "default".into(),
            images: vec!["alpine".into()],
            token: Some("dpp_secret".into()),
            concurrency: 4,
            proxy_origin: "--proxy".into(),
            config: None,
        };
        assert!(!format!("{options:?}").contains("dpp_secret"));
    }
}
