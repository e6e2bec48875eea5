//! An overlay upper dir turned into layer entries: overlay whiteouts become
//! `.wh.<name>`, opaque directories get `.wh..wh..opq`, and what the sandbox
//! mounted (proc, dev, tmp, run, host files, secrets) is left out.
//!
//! After a run in a user namespace the upper dir belongs to the caller and
//! the namespace owners and modes come from the listing the run wrote next
//! to it ([`super::run::OWNERS_FILE`]), so the layer matches a run as root.

use super::SandboxError;
use super::rootfs::{OPAQUE_XATTR, USER_OPAQUE_XATTR, c_path};
use super::run::{HOST_FILES, MOUNTED_DIRS, OWNERS_FILE};
use crate::layer::{Entry, EntryKind, FileSource};
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The entries of a layer holding what a run changed.
#[derive(Debug, Default)]
pub struct UpperDiff {
    /// Layer entries (any order; the layer writer sorts them).
    pub entries: Vec<Entry>,
    /// Objects that a layer cannot hold (sockets, fifos, devices), skipped.
    pub skipped: Vec<String>,
}

/// Reads `upper` into layer entries. `secret_targets` are the paths the
/// step bound secrets (and cache directories) at; `lower_dirs` tell which
/// of their parent directories the sandbox created.
pub fn upper_entries(
    upper: &Path,
    secret_targets: &[String],
    lower_dirs: &[PathBuf],
) -> Result<UpperDiff, SandboxError> {
    let excluded = excluded_paths(upper, secret_targets, lower_dirs);
    let owners = namespace_owners(upper)?;
    let mut diff = UpperDiff::default();
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut walker = walkdir::WalkDir::new(upper)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(item) = walker.next() {
        let item = item.map_err(|e| SandboxError::Setup {
            what: format!("cannot read the run's changes in {}: {e}", upper.display()),
        })?;
        let rel = relative(upper, item.path());
        if excluded.iter().any(|x| x == &rel) {
            if item.file_type().is_dir() {
                walker.skip_current_dir();
            }
            continue;
        }
        let meta = item
            .path()
            .symlink_metadata()
            .map_err(SandboxError::io("stat", item.path()))?;
        let (uid, gid, mode) = match &owners {
            None => (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            Some(owners) => owners.get(&rel).copied().unwrap_or_else(|| {
                let ns = super::userns::host_userns();
                let uid = ns.map_or(meta.uid(), |ns| ns.uid_inside(meta.uid()));
                let gid = ns.map_or(meta.gid(), |ns| ns.gid_inside(meta.gid()));
                (uid, gid, meta.mode() & 0o7777)
            }),
        };
        let entry = |kind| Entry {
            path: rel.clone(),
            kind,
            mode,
            uid,
            gid,
        };
        let file_type = meta.file_type();
        if file_type.is_dir() {
            diff.entries.push(entry(EntryKind::Dir));
            if is_opaque(item.path()) {
                diff.entries.push(Entry {
                    path: format!("{rel}/.wh..wh..opq"),
                    ..entry(EntryKind::Whiteout)
                });
            }
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(item.path())
                .map_err(SandboxError::io("read link", item.path()))?;
            diff.entries.push(entry(EntryKind::Symlink {
                target: target.to_string_lossy().into_owned(),
            }));
        } else if file_type.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1
                && let Some(first) = links.get(&key)
            {
                diff.entries.push(entry(EntryKind::Hardlink {
                    target: first.clone(),
                }));
                continue;
            }
            if meta.nlink() > 1 {
                links.insert(key, rel.clone());
            }
            diff.entries.push(entry(EntryKind::File {
                source: FileSource::Path(item.path().to_path_buf()),
                size: meta.len(),
            }));
        } else if file_type.is_char_device() && meta.rdev() == 0 {
            diff.entries.push(entry(EntryKind::Whiteout));
        } else {
            diff.skipped.push(format!("/{rel}"));
        }
    }
    Ok(diff)
}

/// `path` relative to `root` with forward slashes.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The namespace owners and modes of a user-namespace run's upper dir,
/// `None` after a run as root.
fn namespace_owners(upper: &Path) -> Result<Option<super::userns::Owners>, SandboxError> {
    let Some(file) = upper.parent().map(|run| run.join(OWNERS_FILE)) else {
        return Ok(None);
    };
    match std::fs::read(&file) {
        Ok(listing) => Ok(Some(super::userns::parse_listing(&listing))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SandboxError::io("read", &file)(e)),
    }
}

/// True when overlayfs marked the directory opaque (with either the
/// trusted or, in a user namespace, the user xattr).
fn is_opaque(dir: &Path) -> bool {
    [OPAQUE_XATTR, USER_OPAQUE_XATTR]
        .iter()
        .any(|name| has_opaque_xattr(dir, name))
}

fn has_opaque_xattr(dir: &Path, name: &str) -> bool {
    let (Ok(path), Ok(name)) = (c_path(dir), std::ffi::CString::new(name)) else {
        return false;
    };
    let mut value = [0u8; 4];
    // SAFETY: valid C strings; the buffer pointer/length describe `value`.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// Paths left out of the layer: the sandbox's mount points, secret targets
/// and the parent directories created only to hold a secret.
fn excluded_paths(upper: &Path, secret_targets: &[String], lower_dirs: &[PathBuf]) -> Vec<String> {
    let mut excluded: Vec<String> = MOUNTED_DIRS
        .iter()
        .chain(HOST_FILES)
        .map(|s| s.to_string())
        .collect();
    for target in secret_targets {
        let target = target.trim_start_matches('/');
        excluded.push(target.to_string());
        let mut parent = Path::new(target).parent();
        while let Some(dir) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let in_lower = lower_dirs.iter().any(|l| l.join(dir).exists());
            if in_lower || !only_holds(&upper.join(dir), &excluded, upper) {
                break;
            }
            excluded.push(dir.to_string_lossy().into_owned());
            parent = dir.parent();
        }
    }
    excluded
}

/// True when every child of `dir` is already excluded.
fn only_holds(dir: &Path, excluded: &[String], upper: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|children| {
            children
                .filter_map(Result::ok)
                .all(|c| excluded.contains(&relative(upper, &c.path())))
        })
        .unwrap_or(false)
}
