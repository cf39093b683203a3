//! What a warm run tells: its summary, the objects that failed, and why one object failed.

use std::fmt;

use indicatif::HumanBytes;

/// What one object's fetch ended with, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmFailure {
    /// The image (package) argument as given.
    pub image: String,
    /// `manifest <ref>` or `blob <digest>`; `document <name>` or `file <path>`.
    pub object: String,
    /// The proxy's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The OCI error message(s) of the answer, or why there was none.
    pub message: String,
}

impl fmt::Display for WarmFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.image, self.object)?;
        if let Some(status) = self.status {
            write!(f, "{status} ")?;
        }
        f.write_str(&self.message)
    }
}

/// What a run warmed: images (manifests and blobs) or packages (documents and files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WarmKind {
    #[default]
    Images,
    Packages,
}

/// What a warm run did. Whether an object was already cached is the proxy's secret (a hit and a
/// miss look the same to a client), so only what was fetched through the proxy is counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmSummary {
    /// Images, or packages (whose documents and files are counted as `manifests` and `blobs`).
    pub kind: WarmKind,
    /// Images (packages) asked for.
    pub images: usize,
    /// Images (packages) with at least one object that could not be fetched.
    pub images_failed: usize,
    /// Manifests (indexes included) fetched; a package's documents.
    pub manifests: usize,
    /// Config and layer blobs fetched; a package's files.
    pub blobs: usize,
    /// Bytes of manifests and blobs received.
    pub bytes: u64,
    /// Layers with `urls` (Windows "foreign" layers): not distributed by registries, so not fetched.
    pub foreign_layers: usize,
    pub failures: Vec<WarmFailure>,
}

impl WarmSummary {
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for WarmSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, documents, files) = match self.kind {
            WarmKind::Images => ("image", "manifest", "blob"),
            WarmKind::Packages => ("package", "document", "file"),
        };
        write!(
            f,
            "warmed {} of {} {what}(s): {} {documents}(s), {} {files}(s), {} fetched through the proxy",
            self.images - self.images_failed,
            self.images,
            self.manifests,
            self.blobs,
            HumanBytes(self.bytes)
        )?;
        if self.foreign_layers > 0 {
            write!(f, "; {} foreign layer(s) skipped", self.foreign_layers)?;
        }
        if !self.failures.is_empty() {
            write!(f, "; {} object(s) failed:", self.failures.len())?;
            for failure in &self.failures {
                write!(f, "\n  {failure}")?;
            }
        }
        Ok(())
    }
}

/// The run finished but some objects could not be fetched: the command must fail. Carries the
/// summary (`anyhow::Error::downcast_ref::<WarmFailed>()`).
#[derive(Debug)]
pub struct WarmFailed {
    pub summary: WarmSummary,
}

impl fmt::Display for WarmFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.summary.fmt(f)
    }
}

impl std::error::Error for WarmFailed {}

/// Why one object could not be fetched.
#[derive(Debug)]
pub(super) struct ObjectError {
    pub(super) status: Option<u16>,
    pub(super) message: String,
}

impl ObjectError {
    pub(super) fn other(message: impl Into<String>) -> Self {
        ObjectError { status: None, message: message.into() }
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.status {
            write!(f, "{status} ")?;
        }
        f.write_str(&self.message)
    }
}
