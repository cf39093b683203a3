//! `oci::parse_v2_path`: any request path. Whatever parses prints back to exactly the input (the
//! parser never normalises), and every name in it is valid on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci::{Digest, Endpoint, GroupPath, ImageAddress, Reference, RepositoryName, parse_v2_path};

fn check_image(image: &ImageAddress) -> String {
    match image {
        ImageAddress::Group { group, image } => {
            assert_eq!(GroupPath::parse(group.as_str()).ok().as_ref(), Some(group));
            assert_eq!(RepositoryName::parse(image.as_str()).ok().as_ref(), Some(image));
        }
        ImageAddress::Root { image } => {
            assert_eq!(RepositoryName::parse(image.as_str()).ok().as_ref(), Some(image));
        }
    }
    let written = image.as_written();
    assert_eq!(ImageAddress::parse(&written).ok().as_ref(), Some(image), "{written:?}");
    written
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let Ok(endpoint) = parse_v2_path(path) else { return };
    let printed = match &endpoint {
        Endpoint::Base => {
            assert!(path == "/v2" || path == "/v2/");
            return;
        }
        Endpoint::Token => {
            assert_eq!(path, "/v2/token");
            return;
        }
        Endpoint::Manifest { image, reference } => {
            assert_eq!(Reference::parse(&reference.to_string()).ok().as_ref(), Some(reference));
            format!("/v2/{}/manifests/{reference}", check_image(image))
        }
        Endpoint::Blob { image, digest } => {
            assert_eq!(digest.to_string().parse::<Digest>().ok().as_ref(), Some(digest));
            format!("/v2/{}/blobs/{digest}", check_image(image))
        }
        Endpoint::TagsList { image } => format!("/v2/{}/tags/list", check_image(image)),
        Endpoint::Referrers { image, digest } => format!("/v2/{}/referrers/{digest}", check_image(image)),
    };
    assert_eq!(printed, path);
    assert_eq!(parse_v2_path(&printed).as_ref().ok(), Some(&endpoint));
});
