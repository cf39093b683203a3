//! What a group's pins keep: for an image group, the tags matching its patterns, the manifests
//! they point at, and everything those reference (an index's platform manifests, their configs
//! and layers); for a package group, the documents of the packages its patterns name and their
//! stored files of the versions they name.

use std::collections::HashSet;

use metadata::Metadata;

use crate::settings::GroupPolicy;

/// A group's pinned tags and objects.
#[derive(Debug, Default)]
pub(crate) struct Pinned {
    pub tags: HashSet<(String, String)>,
    pub digests: HashSet<String>,
}

/// Index → manifest → config/layers.
const DEPTH: usize = 3;

pub(crate) async fn pinned(
    metadata: &Metadata,
    group: &GroupPolicy,
) -> Result<Pinned, metadata::MetadataError> {
    let mut pinned = Pinned::default();
    if group.policy.pins.is_empty() {
        return Ok(pinned);
    }
    if group.format.is_package() {
        for object in metadata.package_objects(&group.path).await? {
            let kept = match &object.file {
                None => group.policy.pins.keeps_package(&object.package),
                Some((listed, path)) => {
                    let version = group.format.file_version(listed, path);
                    group.policy.pins.keeps_version(&object.package, &version)
                }
            };
            if kept {
                pinned.digests.insert(object.digest);
            }
        }
        return Ok(pinned);
    }
    let mut frontier = Vec::new();
    for tag in metadata.tags_of_group(&group.path).await? {
        if group.policy.pins.matches(&tag.image, &tag.tag) {
            if pinned.digests.insert(tag.digest.clone()) {
                frontier.push(tag.digest);
            }
            pinned.tags.insert((tag.image, tag.tag));
        }
    }
    for _ in 0..DEPTH {
        if frontier.is_empty() {
            break;
        }
        let children = metadata.manifest_children(&group.path, &frontier).await?;
        frontier = children.into_iter().filter(|child| pinned.digests.insert(child.clone())).collect();
    }
    Ok(pinned)
}
