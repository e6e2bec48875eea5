//! `file://` sources: a directory walked recursively.

use super::{Fetch, Fingerprint, ListedFile, Listing};
use crate::weights::error::{Result, WeightsError};
use std::path::Path;

/// Lists every regular file below `dir` (skipping directories named `.cog`);
/// symlinks, devices, sockets and FIFOs are errors.
pub fn list_dir(dir: &Path, uri: &str) -> Result<Listing> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        WeightsError::Source(format!(
            "source {uri}: directory {} is not readable: {e}; hint: create it or fix the path in cog.yaml",
            dir.display()
        ))
    })?;
    if !meta.is_dir() {
        return Err(WeightsError::Source(format!(
            "source {uri}: {} is not a directory; hint: a file source must name a directory",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && e.file_name() == ".cog" && e.depth() > 0));
    for entry in walker {
        let entry = entry.map_err(|e| {
            WeightsError::Source(format!("source {uri}: walking {}: {e}", dir.display()))
        })?;
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("walked paths are below the root");
        let rel_text = rel
            .to_str()
            .ok_or_else(|| {
                WeightsError::Source(format!(
                    "source {uri}: {} is not valid UTF-8; hint: rename the file",
                    entry.path().display()
                ))
            })?
            .replace(std::path::MAIN_SEPARATOR, "/");
        if !kind.is_file() {
            return Err(WeightsError::Source(format!(
                "source {uri}: {} is a {}, not a regular file; hint: weight sources may only contain regular files — replace it with the real file or move it out",
                entry.path().display(),
                describe(&kind)
            )));
        }
        let meta = entry.metadata().map_err(|e| {
            WeightsError::Source(format!("source {uri}: {}: {e}", entry.path().display()))
        })?;
        files.push(ListedFile {
            path: rel_text,
            size: meta.len(),
            digest: None,
            fetch: Fetch::Local {
                path: entry.path().to_path_buf(),
                modified: meta.modified().ok(),
            },
        });
    }
    Ok(Listing {
        files,
        fingerprint: Fingerprint::SetDigestOfAll,
    })
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_symlink() {
        "symbolic link"
    } else if kind.is_block_device() || kind.is_char_device() {
        "device"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}
