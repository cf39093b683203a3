//! The PyPI simple-repository format's knowledge, with no I/O: project names (PEP 503/508), the
//! request-path parser, reading a stored project page's file list (PEP 503 HTML, PEP 691 JSON,
//! PEP 658/714 metadata hashes), the project a file name belongs to, content negotiation and link
//! resolution. Used by the control plane (routing, validation) and the gateway (finalizing a page).

pub mod document;
pub mod filename;
pub mod media;
pub mod name;
pub mod path;

pub use document::{DocumentError, PublishedFile, html_files, json_files};
pub use filename::project_of_filename;
pub use media::{HTML_MEDIA_TYPE, JSON_MEDIA_TYPE, LEGACY_HTML_MEDIA_TYPE, resolve_href, wants_json};
pub use name::{MAX_NAME_LEN, NameError, ProjectName, normalize};
pub use path::{Endpoint, FILE_EXTENSIONS, PathError, parse_path};
