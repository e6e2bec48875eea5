//! Layer engine: deterministic tar layers, compression and digests.
//!
//! Builders (python, source tree, generated files, sandbox) describe a layer
//! as a list of [`Entry`] values; the writer sorts them, adds missing parent
//! directories and streams tar → diff_id → compressor → digest in one pass.

pub mod build;
pub mod compress;
pub mod dockerignore;
mod error;
pub mod fetch;
pub mod lazy;
pub mod source;
pub mod tar;

pub use build::{BuiltLayer, LayerJob, LayerOptions, build_cached, build_layer, build_layers};
pub use compress::Compression;
pub use error::LayerError;

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

/// Opens a fresh reader over a file's content; called once per write.
pub type OpenFn = Arc<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// Where the bytes of a regular file come from.
#[derive(Clone)]
pub enum FileSource {
    /// A file on disk (read with mmap when large). The size recorded in the
    /// entry is checked against what is read.
    Path(PathBuf),
    /// Bytes held in memory (generated files).
    Bytes(Arc<[u8]>),
    /// Any other stream, e.g. a member of a wheel archive.
    Open(OpenFn),
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileSource::Path(p) => write!(f, "Path({})", p.display()),
            FileSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            FileSource::Open(_) => write!(f, "Open(..)"),
        }
    }
}

/// What kind of filesystem object an entry is.
#[derive(Clone, Debug)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes.
    File {
        /// Where the bytes come from.
        source: FileSource,
        /// Expected size in bytes.
        size: u64,
    },
    /// A symbolic link to `target` (kept verbatim).
    Symlink {
        /// Link target as stored in the tar header.
        target: String,
    },
    /// A hard link to another entry path in the same layer.
    Hardlink {
        /// Path (layer-relative, no leading `/`) of the linked entry.
        target: String,
    },
    /// An OCI whiteout marker for a deleted path (`.wh.<name>`), written as an
    /// empty regular file.
    Whiteout,
}

/// One filesystem object of a layer.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Path inside the image, relative to `/`, forward slashes, no leading `/`
    /// and no trailing `/` (e.g. `usr/local/bin/uv`).
    pub path: String,
    /// Object kind and content.
    pub kind: EntryKind,
    /// Permission bits (e.g. `0o755`), without file type bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
}

impl Entry {
    /// A root-owned directory.
    pub fn dir(path: impl Into<String>, mode: u32) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A root-owned regular file with in-memory content.
    pub fn file_bytes(path: impl Into<String>, mode: u32, bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes: Arc<[u8]> = bytes.into();
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                size: bytes.len() as u64,
                source: FileSource::Bytes(bytes),
            },
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A root-owned symlink.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::Symlink {
                target: target.into(),
            },
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }
}
