//! Errors of the weights pipeline. Every message says what went wrong, where,
//! and ends with a hint.

use std::path::{Path, PathBuf};

/// An error of the weights pipeline.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A declaration or argument is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A source could not be listed or read.
    #[error("{0}")]
    Source(String),
    /// Content did not match its expected digest or size.
    #[error("{0}")]
    Integrity(String),
    /// The lockfile is malformed or incompatible.
    #[error("{0}")]
    Lockfile(String),
    /// A registry operation failed.
    #[error("{0}")]
    Registry(String),
    /// A filesystem operation failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl WeightsError {
    /// Wraps an I/O error with what was done and where.
    pub fn io(context: &'static str, path: &Path, source: std::io::Error) -> Self {
        WeightsError::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias of the weights module.
pub type Result<T, E = WeightsError> = std::result::Result<T, E>;
