//! Property tests: parse ∘ print is the identity for digests, tags, references, repository names,
//! group paths, `/v2/` paths and `WWW-Authenticate` challenges built from generated parts.

use std::collections::BTreeMap;

use oci::{
    Challenge, Digest, Endpoint, GroupPath, ImageAddress, Reference, RepositoryName, Tag, parse_challenges,
    parse_v2_path,
};
use proptest::prelude::*;

/// A repository name component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
const COMPONENT: &str = "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,3}";

fn repository_name() -> impl Strategy<Value = String> {
    prop::collection::vec(COMPONENT, 1..5).prop_map(|components| components.join("/"))
}

fn group_path() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9_.-]{1,10}".prop_filter("not . or ..", |s| s != "." && s != ".."), 1..4)
        .prop_map(|segments| segments.join("/"))
}

fn hex64() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}"
}

const TAG: &str = "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}";

proptest! {
    #[test]
    fn digest_parse_print(hex in hex64()) {
        let text = format!("sha256:{hex}");
        let digest: Digest = text.parse().unwrap();
        prop_assert_eq!(digest.to_string(), text.clone());
        prop_assert_eq!(digest.hex(), hex.as_str());
        prop_assert_eq!(digest.to_string().parse::<Digest>().unwrap(), digest.clone());
        let json = serde_json::to_string(&digest).unwrap();
        prop_assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
    }

    #[test]
    fn digest_of_bytes_prints_and_parses(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let digest = Digest::of(&bytes);
        prop_assert_eq!(digest.to_string().parse::<Digest>().unwrap(), digest);
    }

    #[test]
    fn digest_rejects_other_encodings(hex in "[0-9a-fA-F]{0,70}") {
        let text = format!("sha256:{hex}");
        let valid = hex.len() == 64 && !hex.bytes().any(|b| b.is_ascii_uppercase());
        prop_assert_eq!(text.parse::<Digest>().is_ok(), valid);
    }

    #[test]
    fn tag_parse_print(text in TAG) {
        let tag = Tag::parse(&text).unwrap();
        prop_assert_eq!(tag.as_str(), text.as_str());
        let reference = Reference::parse(&text).unwrap();
        prop_assert_eq!(&reference, &Reference::Tag(tag));
        prop_assert_eq!(reference.to_string(), text);
    }

    #[test]
    fn digest_reference_parse_print(hex in hex64()) {
        let text = format!("sha256:{hex}");
        let reference = Reference::parse(&text).unwrap();
        prop_assert_eq!(reference.as_digest().map(Digest::hex), Some(hex.as_str()));
        prop_assert_eq!(Reference::parse(&reference.to_string()).unwrap(), reference.clone());
        prop_assert_eq!(reference.to_string(), text);
    }

    #[test]
    fn repository_name_parse_print(text in repository_name()) {
        let name = RepositoryName::parse(&text).unwrap();
        prop_assert_eq!(name.as_str(), text.as_str());
        prop_assert_eq!(name.depth(), text.split('/').count());
        prop_assert_eq!(RepositoryName::parse(&name.to_string()).unwrap(), name.clone());
        let address = ImageAddress::parse(&text).unwrap();
        prop_assert_eq!(address.as_written(), text.clone());
        prop_assert_eq!(address, ImageAddress::Root { image: name });
    }

    #[test]
    fn repository_name_refuses_upper_case(text in repository_name(), at in any::<prop::sample::Index>()) {
        let mut bytes = text.into_bytes();
        let letters: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i].is_ascii_lowercase()).collect();
        prop_assume!(!letters.is_empty());
        let i = letters[at.index(letters.len())];
        bytes[i] = bytes[i].to_ascii_uppercase();
        let text = String::from_utf8(bytes).unwrap();
        prop_assert!(RepositoryName::parse(&text).is_err());
    }

    #[test]
    fn group_path_parse_print(text in group_path()) {
        let group = GroupPath::parse(&text).unwrap();
        prop_assert_eq!(group.as_str(), text.as_str());
        prop_assert_eq!(GroupPath::parse(&group.to_string()).unwrap(), group);
    }

    #[test]
    fn group_address_parse_print(group in group_path(), image in repository_name()) {
        let written = format!("{group}/dependency_proxy/containers/{image}");
        let address = ImageAddress::parse(&written).unwrap();
        prop_assert_eq!(address.as_written(), written);
        prop_assert_eq!(
            address,
            ImageAddress::Group { group: GroupPath::parse(&group).unwrap(), image: RepositoryName::parse(&image).unwrap() }
        );
    }

    #[test]
    fn v2_path_from_parts(
        group in prop::option::of(group_path()),
        image in repository_name(),
        kind in 0..5u8,
        tag in TAG,
        hex in hex64(),
    ) {
        let name = match &group {
            Some(group) => format!("{group}/dependency_proxy/containers/{image}"),
            None => image.clone(),
        };
        let digest: Digest = format!("sha256:{hex}").parse().unwrap();
        let (path, expected_reference) = match kind {
            0 => (format!("/v2/{name}/manifests/{tag}"), Some(Reference::Tag(Tag::parse(&tag).unwrap()))),
            1 => (format!("/v2/{name}/manifests/{digest}"), Some(Reference::Digest(digest.clone()))),
            2 => (format!("/v2/{name}/blobs/{digest}"), None),
            3 => (format!("/v2/{name}/referrers/{digest}"), None),
            _ => (format!("/v2/{name}/tags/list"), None),
        };
        let endpoint = parse_v2_path(&path).unwrap();
        let address = match &endpoint {
            Endpoint::Manifest { image, reference } => {
                prop_assert_eq!(Some(reference), expected_reference.as_ref());
                image
            }
            Endpoint::Blob { image, digest: parsed } => {
                prop_assert_eq!(kind, 2);
                prop_assert_eq!(parsed, &digest);
                image
            }
            Endpoint::Referrers { image, digest: parsed } => {
                prop_assert_eq!(kind, 3);
                prop_assert_eq!(parsed, &digest);
                image
            }
            Endpoint::TagsList { image } => {
                prop_assert_eq!(kind, 4);
                image
            }
            other => return Err(TestCaseError::fail(format!("{path}: {other:?}"))),
        };
        prop_assert_eq!(address.image().as_str(), image.as_str());
        prop_assert_eq!(address.as_written(), name);
        match (address, &group) {
            (ImageAddress::Group { group: parsed, .. }, Some(group)) => prop_assert_eq!(parsed.as_str(), group.as_str()),
            (ImageAddress::Root { .. }, None) => {}
            (address, group) => return Err(TestCaseError::fail(format!("{address:?} for group {group:?}"))),
        }
    }

    #[test]
    fn challenges_parse_print(
        challenges in prop::collection::vec(
            (
                "[A-Za-z][A-Za-z0-9_-]{0,8}",
                prop::collection::btree_map("[a-z][a-z_]{0,8}", (any::<bool>(), ".{0,20}", "[A-Za-z0-9/:._-]{1,20}"), 0..4),
            ),
            0..4,
        )
    ) {
        let mut header = Vec::new();
        let mut expected = Vec::new();
        for (scheme, params) in &challenges {
            let mut printed = Vec::new();
            let mut values = BTreeMap::new();
            for (key, (quoted, any_text, token)) in params {
                if *quoted {
                    let escaped = any_text.replace('\\', "\\\\").replace('"', "\\\"");
                    printed.push(format!("{key}=\"{escaped}\""));
                    values.insert(key.clone(), any_text.clone());
                } else {
                    printed.push(format!("{key}={token}"));
                    values.insert(key.clone(), token.clone());
                }
            }
            header.push(if printed.is_empty() { scheme.clone() } else { format!("{scheme} {}", printed.join(",")) });
            expected.push(Challenge { scheme: scheme.to_ascii_lowercase(), params: values });
        }
        let header = header.join(", ");
        prop_assert_eq!(parse_challenges(&header), expected, "{}", header);
    }
}
