//! The source layer(s): `COPY . /src` of the project tree.
//!
//! The tree is filtered by the project's `.dockerignore` (Docker's rules),
//! `.cog/` is always left out, and so are caller-listed paths (managed-weight
//! directories, with a notice). Symlinks are kept as symlinks, permission bits
//! are kept, owners are 0:0. A symlink that leads outside the project, an
//! absolute symlink, a symlink loop or a special file is refused.
//!
//! Files of [`SourceOptions::large_file_threshold`] bytes or more go into
//! layers of their own (one per file, sorted by path, below the main source
//! layer), so editing a `.py` file never recompresses a checkpoint.

use super::dockerignore::DockerIgnore;
use super::{Entry, EntryKind, FileSource, LayerError};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Default size from which a file gets its own layer.
pub const DEFAULT_LARGE_FILE_THRESHOLD: u64 = 32 << 20;

/// How the project tree is turned into layers.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Destination directory in the image, relative to `/` (cog: `src`).
    pub dest: String,
    /// Files at least this large get their own layer.
    pub large_file_threshold: u64,
    /// Project-relative paths left out (managed-weight source directories).
    pub leave_out: Vec<String>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            dest: "src".into(),
            large_file_threshold: DEFAULT_LARGE_FILE_THRESHOLD,
            leave_out: Vec::new(),
        }
    }
}

/// One large file that gets a layer of its own.
#[derive(Clone, Debug)]
pub struct LargeFile {
    /// The single entry of the layer (parents are added by the writer).
    pub entry: Entry,
    /// Cache key fingerprint: path, size, mode and mtime/inode of the file.
    pub fingerprint: String,
}

/// The scanned project tree.
#[derive(Clone, Debug)]
pub struct SourceTree {
    /// Entries of the main source layer (directories, small files, links).
    pub main: Vec<Entry>,
    /// Fingerprint of the main layer's inputs, for the layer cache.
    pub main_fingerprint: String,
    /// Large files, sorted by path, one layer each.
    pub large: Vec<LargeFile>,
    /// Messages for the user (e.g. left-out weight directories).
    pub notices: Vec<String>,
}

impl SourceTree {
    /// The layer jobs of this tree, bottom first: one per large file (sorted
    /// by path), then the main source layer. Each carries a cache key built
    /// from the file metadata it depends on, so an unchanged part is not
    /// rebuilt.
    pub fn jobs(&self) -> Vec<super::LayerJob> {
        let mut jobs: Vec<super::LayerJob> = self
            .large
            .iter()
            .map(|l| super::LayerJob {
                entries: vec![l.entry.clone()],
                cache_key: Some(format!(
                    "source-large-v1\n{}\n{}",
                    l.entry.path, l.fingerprint
                )),
            })
            .collect();
        jobs.push(super::LayerJob {
            entries: self.main.clone(),
            cache_key: Some(format!("source-main-v1\n{}", self.main_fingerprint)),
        });
        jobs
    }
}

/// Reads `.dockerignore` at the project root (empty if absent).
pub fn read_dockerignore(root: &Path) -> Result<DockerIgnore, LayerError> {
    let path = root.join(".dockerignore");
    match fs::read_to_string(&path) {
        Ok(text) => DockerIgnore::parse(&text, ".dockerignore"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerIgnore::default()),
        Err(source) => Err(LayerError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Scans the project at `root` into source layer entries.
pub fn scan_source_tree(root: &Path, opts: &SourceOptions) -> Result<SourceTree, LayerError> {
    let ignore = read_dockerignore(root)?;
    let leave_out: BTreeSet<String> = opts
        .leave_out
        .iter()
        .map(|p| super::dockerignore::clean(p))
        .collect();
    let mut scan = Scan {
        root,
        opts,
        ignore: &ignore,
        leave_out: &leave_out,
        tree: SourceTree {
            main: vec![dir_entry(
                &opts.dest,
                &fs::symlink_metadata(root).map_err(read_err(root))?,
            )],
            main_fingerprint: String::new(),
            large: Vec::new(),
            notices: Vec::new(),
        },
        fingerprint: Vec::new(),
    };
    let root_meta = fs::metadata(root).map_err(read_err(root))?;
    scan.fingerprint.push(format!(
        "root {} {:o}",
        opts.dest,
        root_meta.mode() & 0o7777
    ));
    scan.walk(Path::new(""))?;
    for p in &leave_out {
        if root.join(p).exists() {
            scan.tree.notices.push(format!(
                "left {p}/ out of /{}: it holds managed weights, which ship as weight artifacts",
                opts.dest
            ));
        }
    }
    scan.tree.main_fingerprint = scan.fingerprint.join("\n");
    Ok(scan.tree)
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> LayerError + '_ {
    move |source| LayerError::Read {
        path: path.display().to_string(),
        source,
    }
}

fn dir_entry(path: &str, meta: &fs::Metadata) -> Entry {
    Entry::dir(path, meta.permissions().mode() & 0o7777)
}

struct Scan<'a> {
    root: &'a Path,
    opts: &'a SourceOptions,
    ignore: &'a DockerIgnore,
    leave_out: &'a BTreeSet<String>,
    tree: SourceTree,
    fingerprint: Vec<String>,
}

impl Scan<'_> {
    /// Walks directory `rel` (project-relative); returns whether anything
    /// inside it was included.
    fn walk(&mut self, rel: &Path) -> Result<bool, LayerError> {
        let dir = self.root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(read_err(&dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err(&dir))?;
        names.sort();
        let mut any = false;
        for name in names {
            let child = rel.join(&name);
            let rel_str = child.to_string_lossy().to_string();
            if rel_str == ".cog" || self.leave_out.contains(&rel_str) {
                continue;
            }
            any |= self.visit(&child, &rel_str)?;
        }
        Ok(any)
    }

    fn visit(&mut self, rel: &Path, rel_str: &str) -> Result<bool, LayerError> {
        let abs = self.root.join(rel);
        let meta = fs::symlink_metadata(&abs).map_err(read_err(&abs))?;
        let excluded = self.ignore.is_excluded(rel_str);
        let ft = meta.file_type();
        let dest = format!("{}/{}", self.opts.dest, rel_str);
        if ft.is_dir() {
            if excluded && !self.ignore.has_reincludes() {
                return Ok(false);
            }
            let index = self.tree.main.len();
            self.tree.main.push(dir_entry(&dest, &meta));
            let inner = self.walk(rel)?;
            if excluded && !inner {
                self.tree.main.remove(index);
                return Ok(false);
            }
            self.fingerprint
                .push(format!("d {rel_str} {:o}", meta.mode() & 0o7777));
            return Ok(true);
        }
        if excluded {
            return Ok(false);
        }
        if ft.is_symlink() {
            let target = fs::read_link(&abs).map_err(read_err(&abs))?;
            check_link_stays_inside(self.root, rel, rel_str)?;
            let target = target.to_string_lossy().to_string();
            self.fingerprint.push(format!("l {rel_str} {target}"));
            self.tree.main.push(Entry::symlink(dest, target));
            return Ok(true);
        }
        if !ft.is_file() {
            return Err(LayerError::UnsupportedFileType {
                path: rel_str.to_string(),
                kind: special_kind(&ft),
            });
        }
        self.add_file(abs, dest, rel_str, &meta);
        Ok(true)
    }

    fn add_file(&mut self, abs: PathBuf, dest: String, rel_str: &str, meta: &fs::Metadata) {
        let mode = meta.permissions().mode() & 0o7777;
        let fingerprint = format!(
            "f {rel_str} {mode:o} {} {}.{} {} {}",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino(),
            meta.ctime()
        );
        let entry = Entry {
            path: dest,
            kind: EntryKind::File {
                source: FileSource::Path(abs),
                size: meta.len(),
            },
            mode,
            uid: 0,
            gid: 0,
        };
        if meta.len() >= self.opts.large_file_threshold {
            self.tree.large.push(LargeFile { entry, fingerprint });
        } else {
            self.fingerprint.push(fingerprint);
            self.tree.main.push(entry);
        }
    }
}

fn special_kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "named pipe (fifo)"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// Resolves the symlink at `link` (project-relative) lexically, following
/// further links inside the project; fails if it leaves the project, is
/// absolute, or loops.
pub fn check_link_stays_inside(root: &Path, link: &Path, shown: &str) -> Result<(), LayerError> {
    let escapes = |detail: String| LayerError::Escapes {
        path: shown.to_string(),
        detail,
    };
    let mut resolved: Vec<std::ffi::OsString> = link
        .parent()
        .map(|p| p.iter().map(|c| c.to_os_string()).collect())
        .unwrap_or_default();
    let first = fs::read_link(root.join(link)).map_err(read_err(link))?;
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    push_target(&first, &mut pending)
        .map_err(|_| escapes(format!("absolute link to {}", first.display())))?;
    let mut hops = 1;
    while let Some(part) = pending.pop() {
        match part.to_str() {
            Some(".") => continue,
            Some("..") => {
                if resolved.pop().is_none() {
                    return Err(escapes(format!("link to {}", first.display())));
                }
                continue;
            }
            _ => {}
        }
        resolved.push(part);
        let here: PathBuf = resolved.iter().collect();
        let is_link =
            fs::symlink_metadata(root.join(&here)).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            continue;
        }
        hops += 1;
        if hops > 40 {
            return Err(LayerError::SymlinkLoop {
                path: shown.to_string(),
            });
        }
        resolved.pop();
        let next = fs::read_link(root.join(&here)).map_err(read_err(&here))?;
        push_target(&next, &mut pending).map_err(|_| {
            escapes(format!(
                "via {} to absolute {}",
                here.display(),
                next.display()
            ))
        })?;
    }
    Ok(())
}

/// Pushes the components of a relative link target onto the stack
/// (reversed, so the first component pops first); absolute targets fail.
fn push_target(target: &Path, pending: &mut Vec<std::ffi::OsString>) -> Result<(), ()> {
    let mut parts = Vec::new();
    for c in target.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return Err(()),
            Component::CurDir => parts.push(".".into()),
            Component::ParentDir => parts.push("..".into()),
            Component::Normal(n) => parts.push(n.to_os_string()),
        }
    }
    pending.extend(parts.into_iter().rev());
    Ok(())
}
