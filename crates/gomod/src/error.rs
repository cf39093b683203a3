//! The one error of every parser in this crate: a request path, module path or version that names
//! nothing a Go client asks for.

/// Why a path or version is refused. The message names the input and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A module path golang.org/x/mod/module would refuse (or a bad `!`-case escape of one).
    #[error("invalid Go module path {input:?}: {reason}")]
    ModulePath { input: String, reason: &'static str },
    /// A version golang.org/x/mod/module would refuse (or a bad `!`-case escape of one).
    #[error("invalid Go module version {input:?}: {reason}")]
    Version { input: String, reason: &'static str },
    /// A request path of the wrong shape.
    #[error("invalid GOPROXY request path /{path}: {reason}")]
    Invalid { path: String, reason: &'static str },
}
