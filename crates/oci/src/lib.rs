//! Protocol vocabulary of the OCI distribution pull API: digests, names, references, media types,
//! the referrers list and its filter, the error envelope, auth challenges, the request-path
//! parser, registry names and the headers that describe an object. No I/O lives here.

pub mod challenge;
pub mod digest;
pub mod error;
pub mod media;
pub mod name;
pub mod path;
pub mod referrers;
pub mod registry;
pub mod response;

pub use challenge::{Challenge, parse_challenges};
pub use digest::{Digest, DigestError, Sha256Hasher};
pub use error::{ErrorClass, ErrorCode, OciError};
pub use name::{GroupPath, Reference, RepositoryName, Tag};
pub use path::{Endpoint, ImageAddress, ObjectKind, parse_v2_path};

/// The response header every `/v2/` answer carries, as registries do.
pub const API_VERSION_HEADER: &str = "Docker-Distribution-API-Version";
/// Value of [`API_VERSION_HEADER`].
pub const API_VERSION: &str = "registry/2.0";
/// The header carrying a manifest's or blob's content digest.
pub const CONTENT_DIGEST_HEADER: &str = "Docker-Content-Digest";
