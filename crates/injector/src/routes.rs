//! The internal upload routes: for a client request for `<object path>` (a `…/manifests/<ref>` or
//! `…/blobs/<digest>` path), the gateway calls `<object path>/upload/authorize` and
//! `<object path>/upload` on the control plane — `<object path>/upload/not-found` when the
//! upstream answered 404, and `<object path>/upload/verdict` for the admission verdict on a held
//! fill — with the client's query (`?ns=`) kept so the call resolves to the same group as the
//! request it is for.

use serde::{Deserialize, Serialize};

const AUTHORIZE_SUFFIX: &str = "/upload/authorize";
const FINALIZE_SUFFIX: &str = "/upload";
const NOT_FOUND_SUFFIX: &str = "/upload/not-found";
const VERDICT_SUFFIX: &str = "/upload/verdict";

/// Which upload call a path is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UploadStage {
    /// `…/upload/authorize`: may this gateway store the object, and how?
    Authorize,
    /// `…/upload`: the object is stored and verified; record it.
    Finalize,
    /// `…/upload/not-found`: the upstream answered 404 for the object; remember it.
    NotFound,
    /// `…/upload/verdict`: may the fill's clients have these bytes (the group's admission hook)?
    Verdict,
}

/// Where the gateway reports a fill to the control plane: paths (with query) on the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRoutes {
    pub authorize: String,
    pub finalize: String,
    /// Where to report an upstream 404 (the control plane remembers it for the group's
    /// `negative_ttl`); empty from a control plane that remembers none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub not_found: String,
    /// Where a held fill asks for its admission verdict (`SendDependency::hold`); empty from a
    /// control plane that holds no fill.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verdict: String,
}

impl UploadRoutes {
    /// The routes for the object a client asked for at `path` (`query` without its `?`).
    pub fn for_object(path: &str, query: Option<&str>) -> Self {
        let query = query.map(|query| format!("?{query}")).unwrap_or_default();
        UploadRoutes {
            authorize: format!("{path}{AUTHORIZE_SUFFIX}{query}"),
            finalize: format!("{path}{FINALIZE_SUFFIX}{query}"),
            not_found: format!("{path}{NOT_FOUND_SUFFIX}{query}"),
            verdict: format!("{path}{VERDICT_SUFFIX}{query}"),
        }
    }
}

/// Splits an upload call's path (no query) into the object path it is for and its stage; `None`
/// for any other path.
pub fn split_upload_path(path: &str) -> Option<(&str, UploadStage)> {
    if let Some(object) = path.strip_suffix(AUTHORIZE_SUFFIX) {
        return Some((object, UploadStage::Authorize));
    }
    if let Some(object) = path.strip_suffix(NOT_FOUND_SUFFIX) {
        return Some((object, UploadStage::NotFound));
    }
    if let Some(object) = path.strip_suffix(VERDICT_SUFFIX) {
        return Some((object, UploadStage::Verdict));
    }
    path.strip_suffix(FINALIZE_SUFFIX).map(|object| (object, UploadStage::Finalize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip() {
        let object = "/v2/g/dependency_proxy/containers/img/blobs/sha256:00";
        let routes = UploadRoutes::for_object(object, Some("ns=docker.io"));
        assert_eq!(routes.authorize, format!("{object}/upload/authorize?ns=docker.io"));
        assert_eq!(routes.finalize, format!("{object}/upload?ns=docker.io"));
        let without_query = |route: &str| route.split('?').next().unwrap().to_owned();
        assert_eq!(
            split_upload_path(&without_query(&routes.authorize)),
            Some((object, UploadStage::Authorize))
        );
        assert_eq!(
            split_upload_path(&without_query(&routes.finalize)),
            Some((object, UploadStage::Finalize))
        );
        assert_eq!(routes.not_found, format!("{object}/upload/not-found?ns=docker.io"));
        assert_eq!(
            split_upload_path(&without_query(&routes.not_found)),
            Some((object, UploadStage::NotFound))
        );
        assert_eq!(routes.verdict, format!("{object}/upload/verdict?ns=docker.io"));
        assert_eq!(split_upload_path(&without_query(&routes.verdict)), Some((object, UploadStage::Verdict)));
        assert_eq!(
            UploadRoutes::for_object("/v2/a/manifests/v1", None).finalize,
            "/v2/a/manifests/v1/upload"
        );
        assert_eq!(split_upload_path("/v2/a/manifests/v1"), None);
    }
}
