//! Names, tags, references, digests and group paths: what parses prints back to the input, and
//! satisfies the grammar the parser promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci::{Digest, GroupPath, ImageAddress, Reference, RepositoryName, Tag};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };

    if let Ok(digest) = input.parse::<Digest>() {
        assert_eq!(digest.to_string(), input);
        assert_eq!(digest.hex().len(), 64);
        assert!(digest.hex().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
    }

    let tag = Tag::parse(input);
    if let Ok(tag) = &tag {
        assert_eq!(tag.as_str(), input);
        assert!(!input.is_empty() && input.len() <= 128 && !input.contains(':'));
    }

    match Reference::parse(input) {
        Ok(Reference::Tag(parsed)) => assert_eq!(Some(&parsed), tag.as_ref().ok()),
        Ok(Reference::Digest(digest)) => assert_eq!(digest.to_string(), input),
        Err(_) => assert!(tag.is_err()),
    }
    if let Ok(reference) = Reference::parse(input) {
        assert_eq!(reference.to_string(), input);
        assert_eq!(Reference::parse(&reference.to_string()).unwrap(), reference);
    }

    if let Ok(name) = RepositoryName::parse(input) {
        assert_eq!(name.as_str(), input);
        assert!(input.len() <= oci::name::MAX_NAME_LEN);
        assert!(
            input.bytes().all(|b| b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'_' | b'-' | b'/'))
        );
        assert!(!input.split('/').any(|component| component.is_empty() || component == ".."));
        assert_eq!(name.depth(), input.split('/').count());
        let prefixed = name.with_library_prefix();
        assert!(prefixed.depth() >= 2);
        if let Some((first, rest)) = name.strip_first_component() {
            assert_eq!(format!("{first}/{rest}"), input);
            assert!(RepositoryName::parse(rest.as_str()).is_ok());
        }
    }

    if let Ok(group) = GroupPath::parse(input) {
        assert_eq!(group.as_str(), input);
        assert!(!input.split('/').any(|segment| segment.is_empty() || segment == "." || segment == ".."));
    }

    if let Ok(address) = ImageAddress::parse(input) {
        assert_eq!(address.as_written(), input);
        assert_eq!(ImageAddress::parse(&address.as_written()).unwrap(), address);
    }
});
