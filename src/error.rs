//! One error type for the whole crate. Each variant maps to a stable C status code
//! (see `ffi::status`), so the Rust API and the C ABI report the same kinds of failure.

use std::path::PathBuf;

/// Result alias used throughout sdrt.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sdrt.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller-supplied value is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file (or directory) the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A model file is missing, corrupt, or does not have the expected signature.
    #[error("invalid model: {}: {reason}", path.display())]
    InvalidModel {
        /// The file or model folder at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The model directory holds a family sdrt does not run (yet).
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),

    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("ONNX Runtime unavailable: {0}")]
    RuntimeUnavailable(String),

    /// A requested execution provider is not available and the policy forbids falling back.
    #[error("execution provider unavailable: {0}")]
    ProviderUnavailable(String),

    /// ONNX Runtime failed while running a graph.
    #[error("inference failed: {0}")]
    Inference(String),

    /// The caller cancelled the operation (progress callback or cancel function).
    #[error("cancelled")]
    Cancelled,

    /// The call would wait for work this thread is itself doing (it was made from inside one
    /// of the pipeline's callbacks), or the object is in a state that does not allow it yet.
    #[error("busy: {0}")]
    Busy(String),

    /// A bug in sdrt, caught before it could take the host process down.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The text of a caught panic (what `panic!` was given), for the error that reports it.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    text.unwrap_or_else(|| "unknown panic".into())
}

impl Error {
    pub(crate) fn invalid_model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidModel { path: path.into(), reason: reason.into() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
