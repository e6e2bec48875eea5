//! Errors of the layer engine.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while building a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An entry path is not a clean, relative, slash-separated path.
    #[error(
        "invalid layer path {path:?}: {reason}; hint: paths are relative to / with no `..`, `.` or empty components"
    )]
    InvalidPath {
        /// The offending path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two entries of one layer have the same path.
    #[error(
        "duplicate layer path {path:?}; hint: every path may appear once per layer (remove the duplicate entry)"
    )]
    DuplicatePath {
        /// The duplicated path.
        path: String,
    },
    /// A non-directory entry is used as the parent of another entry.
    #[error(
        "layer path {parent:?} is not a directory but {child:?} is inside it; hint: make {parent:?} a directory or move the child"
    )]
    ParentNotDir {
        /// The non-directory parent.
        parent: String,
        /// The child entry.
        child: String,
    },
    /// A file could not be opened or read.
    #[error(
        "cannot read {path}: {source}; hint: check the file exists and is readable by this user"
    )]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A file's size differs from the size recorded when the layer was planned.
    #[error(
        "file {path} changed while the layer was being written (expected {expected} bytes, found {found}); hint: do not modify the project while cogpack builds, then retry"
    )]
    SizeChanged {
        /// The file.
        path: String,
        /// Size recorded in the entry.
        expected: u64,
        /// Size actually seen.
        found: u64,
    },
    /// A symlink or path points outside the tree being copied.
    #[error(
        "{path} escapes the project directory ({detail}); hint: replace it with a path inside the project or list it in .dockerignore"
    )]
    Escapes {
        /// The offending entry, relative to the project.
        path: String,
        /// Where it leads.
        detail: String,
    },
    /// A chain of symlinks does not resolve.
    #[error(
        "symlink loop at {path} (more than 40 links followed); hint: fix the links or list them in .dockerignore"
    )]
    SymlinkLoop {
        /// The first link of the loop.
        path: String,
    },
    /// A file type that cannot go into a layer (socket, device, fifo).
    #[error(
        "{path} is a {kind}, which cannot be copied into an image; hint: remove it or list it in .dockerignore"
    )]
    UnsupportedFileType {
        /// The file.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// A `.dockerignore` pattern is malformed.
    #[error("{file}:{line}: invalid pattern {pattern:?}: {reason}; hint: fix or remove the line")]
    BadPattern {
        /// The ignore file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The pattern text.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Writing the layer output failed (disk full, permissions, ...).
    #[error(
        "cannot write layer to {path}: {source}; hint: check free space and permissions of the store"
    )]
    Write {
        /// Where the output was going.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A fetched file does not have its pinned digest.
    #[error(
        "download of {url} has digest {actual}, expected {expected}; hint: the file changed upstream or the URL override points to a different file"
    )]
    FetchDigest {
        /// Where it came from.
        url: String,
        /// The pinned digest.
        expected: String,
        /// What was received.
        actual: String,
    },
    /// A download failed.
    #[error(
        "cannot download {url}: {detail}; hint: check the URL and network access (or override the URL)"
    )]
    Fetch {
        /// Where it came from.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] crate::oci::store::StoreError),
}
