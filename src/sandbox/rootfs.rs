//! Layer blobs unpacked once into directories of the store, keyed by diff_id,
//! with OCI whiteouts converted to the overlayfs form so the directories can
//! be stacked as overlay lower dirs.
//!
//! A caller that is not root unpacks as itself into a directory of its own
//! (`rootfs-userns-<mapping>`): owners it cannot set on the host are set
//! afterwards inside the user namespace (as namespace ids, so the overlay
//! shows them as in the image), and opaque directories are marked with the
//! `user.overlay.opaque` xattr that an overlay mounted in a user namespace
//! reads.

use super::SandboxError;
use super::userns::{self, UserNs};
use crate::oci::store::Store;
use crate::oci::{Descriptor, Digest};
use sha2::{Digest as _, Sha256};
use std::ffi::CString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// OCI whiteout prefix of a deleted name.
const WHITEOUT_PREFIX: &str = ".wh.";
/// OCI marker of an opaque directory.
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Where a layer blob's bytes come from when it is not unpacked yet.
pub trait BlobSource: Send + Sync {
    /// Opens a reader over the blob's (compressed) bytes. The reader must
    /// fail instead of ending normally when the bytes do not match the
    /// descriptor's digest.
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SandboxError>;
}

/// Blobs already in the local store (OCI-layout bases, layers built by this
/// engine). The store verified them when they were written.
pub struct StoreBlobs(pub Store);

impl BlobSource for StoreBlobs {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SandboxError> {
        let file = self
            .0
            .open_blob(&descriptor.digest)
            .map_err(|e| SandboxError::Fetch {
                digest: descriptor.digest.to_string(),
                detail: e.to_string(),
            })?;
        Ok(Box::new(file))
    }
}

/// One layer to make available as a directory: its blob and its diff_id.
#[derive(Debug, Clone)]
pub struct LayerRef {
    /// The (compressed) blob.
    pub descriptor: Descriptor,
    /// SHA-256 of the uncompressed tar.
    pub diff_id: Digest,
}

/// The directory holding unpacked layers inside the store root: one per
/// id mapping, since a user namespace stores owners as shifted host ids.
pub fn rootfs_root(store: &Store) -> PathBuf {
    match userns::host_userns() {
        None => store.root().join("rootfs"),
        Some(ns) => {
            let key = hex::encode(&Sha256::digest(ns.describe().as_bytes())[..6]);
            store.root().join(format!("rootfs-userns-{key}"))
        }
    }
}

/// The directory of one unpacked layer (which may not exist yet).
pub fn layer_dir(store: &Store, diff_id: &Digest) -> PathBuf {
    rootfs_root(store).join(diff_id.hex())
}

/// Makes sure every layer is unpacked (bottom first), fetching only missing
/// ones from `source`; returns their directories in the same order. Returns
/// the number of layers that had to be unpacked as the second value.
pub fn ensure_layers(
    store: &Store,
    layers: &[LayerRef],
    source: &dyn BlobSource,
    progress: &dyn Fn(&str),
) -> Result<(Vec<PathBuf>, usize), SandboxError> {
    let mut dirs = Vec::with_capacity(layers.len());
    let mut unpacked = 0;
    for layer in layers {
        let dir = layer_dir(store, &layer.diff_id);
        if !dir.is_dir() {
            progress(&format!(
                "Unpacking layer {} ({} bytes)",
                layer.diff_id, layer.descriptor.size
            ));
            let reader = source.open(&layer.descriptor)?;
            unpack_layer(store, reader, &layer.diff_id)?;
            unpacked += 1;
        }
        dirs.push(dir);
    }
    Ok((dirs, unpacked))
}

/// Unpacks one layer blob into its store directory: into a temp dir first,
/// renamed into place only after the diff_id is verified.
pub fn unpack_layer(
    store: &Store,
    blob: Box<dyn Read + Send>,
    diff_id: &Digest,
) -> Result<PathBuf, SandboxError> {
    let root = rootfs_root(store);
    fs::create_dir_all(&root).map_err(SandboxError::io("create", &root))?;
    let dest = layer_dir(store, diff_id);
    let temp = tempfile::Builder::new()
        .prefix("unpack-")
        .tempdir_in(&root)
        .map_err(SandboxError::io("create temp dir in", &root))?;
    let tar = decompress(blob).map_err(SandboxError::io("read layer", &dest))?;
    let mut hashing = HashingReader::new(tar);
    let ns = userns::host_userns();
    let deferred = unpack_tar(&mut hashing, temp.path(), ns)?;
    io::copy(&mut hashing, &mut io::sink()).map_err(SandboxError::io("read layer", &dest))?;
    let actual = Digest::from_sha256(hashing.finish());
    if &actual != diff_id {
        return Err(SandboxError::Fetch {
            digest: diff_id.to_string(),
            detail: format!("the uncompressed layer hashes to {actual}"),
        });
    }
    if let Some(ns) = ns
        && let Err(error) = deferred.apply(ns, temp.path())
    {
        remove_tree(&temp.keep());
        return Err(error);
    }
    let temp = temp.keep();
    match fs::rename(&temp, &dest) {
        Ok(()) => Ok(dest),
        Err(_) if dest.is_dir() => {
            // Another process unpacked the same layer first.
            remove_tree(&temp);
            Ok(dest)
        }
        Err(e) => {
            remove_tree(&temp);
            Err(SandboxError::io("rename into", &dest)(e))
        }
    }
}

/// Removes a directory tree, making read-only directories writable first;
/// what the caller cannot remove (files of subordinate ids) is removed
/// inside the user namespace.
pub fn remove_tree(path: &Path) {
    remove_own_tree(path);
    if let Some(ns) = userns::host_userns()
        && fs::symlink_metadata(path).is_ok()
        && !ns.single_id()
    {
        let _ = userns::remove_tree(ns, path);
    }
}

/// [`remove_tree`] with the caller's own rights.
fn remove_own_tree(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
    {
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o755));
        }
    }
    let _ = fs::remove_dir_all(path);
}

/// Wraps a blob reader in the decompressor its first bytes call for
/// (gzip, zstd or plain tar).
fn decompress(blob: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut buffered = BufReader::with_capacity(1 << 20, blob);
    let head = buffered.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
    } else {
        Box::new(buffered)
    })
}

/// What an unpack as a normal user leaves for afterwards: owners the
/// caller cannot set on the host and modes of directories it kept
/// writable while unpacking into them.
#[derive(Default)]
struct Deferred {
    /// Entries owned by someone other than root.
    owners: Vec<userns::PathOwner>,
    /// Directories unpacked with more rights than their mode, and the mode.
    dir_modes: Vec<(PathBuf, u32)>,
}

impl Deferred {
    /// Notes the owner and (for directories) mode of an unpacked entry.
    fn record(&mut self, dir: &Path, path: &Path, header: &tar::Header) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let uid = header.uid()? as u32;
        let gid = header.gid()? as u32;
        let mode = header.mode()? & 0o7777;
        let kind = header.entry_type();
        if (uid, gid) != (0, 0) {
            self.owners.push(userns::PathOwner {
                path: path.to_path_buf(),
                uid,
                gid,
                mode,
                symlink: kind.is_symlink(),
            });
        }
        if kind.is_dir() && mode & 0o700 != 0o700 {
            let full = dir.join(path);
            fs::set_permissions(&full, fs::Permissions::from_mode(mode | 0o700))?;
            self.dir_modes.push((full, mode));
        }
        Ok(())
    }

    /// Restores directory modes (deepest first) and sets the recorded
    /// owners inside the namespace (when it maps more than one id).
    fn apply(self, ns: &UserNs, dir: &Path) -> Result<(), SandboxError> {
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in self.dir_modes.iter().rev() {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                .map_err(SandboxError::io("chmod", path))?;
        }
        if ns.single_id() || self.owners.is_empty() {
            return Ok(());
        }
        userns::set_owners(ns, dir, &self.owners)
    }
}

/// Unpacks a tar stream into `dir`, keeping owners, modes and xattrs, and
/// turning OCI whiteouts into overlay whiteouts. In a user namespace
/// (`ns`) owners and extended attributes are not set here (the caller may
/// not; owners are returned for [`Deferred::apply`]) and device nodes are
/// left out.
fn unpack_tar(
    reader: &mut dyn Read,
    dir: &Path,
    ns: Option<&UserNs>,
) -> Result<Deferred, SandboxError> {
    let bad = |e: io::Error| SandboxError::io("unpack layer into", dir)(e);
    let mut deferred = Deferred::default();
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(ns.is_none());
    archive.set_unpack_xattrs(ns.is_none());
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(deleted) = name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = safe_join(dir, path.parent().unwrap_or(Path::new("")))?;
            fs::create_dir_all(&parent).map_err(SandboxError::io("create", &parent))?;
            if name == OPAQUE_MARKER {
                set_opaque(&parent, ns.is_some())?;
            } else {
                make_overlay_whiteout(&parent.join(deleted))?;
            }
            continue;
        }
        let kind = entry.header().entry_type();
        if ns.is_some() && (kind.is_character_special() || kind.is_block_special()) {
            // Only root may create device nodes; the sandbox mounts its own
            // /dev and no layer is written from a lower dir.
            continue;
        }
        let unpacked = entry.unpack_in(dir).map_err(bad)?;
        if unpacked && ns.is_some() {
            deferred.record(dir, &path, entry.header()).map_err(bad)?;
        }
    }
    Ok(deferred)
}

/// `dir/rel`, refusing `..` components and absolute paths.
fn safe_join(dir: &Path, rel: &Path) -> Result<PathBuf, SandboxError> {
    let mut out = dir.to_path_buf();
    for component in rel.components() {
        match component {
            std::path::Component::Normal(part) => out.push(part),
            std::path::Component::CurDir => {}
            _ => {
                return Err(SandboxError::Fetch {
                    digest: String::new(),
                    detail: format!("layer entry {} escapes the layer root", rel.display()),
                });
            }
        }
    }
    Ok(out)
}

/// The overlay whiteout xattr name of opaque directories.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The same for an overlay mounted in a user namespace (`userxattr`).
pub const USER_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// Marks a directory opaque for overlayfs (for one mounted in a user
/// namespace when `user_ns`).
fn set_opaque(dir: &Path, user_ns: bool) -> Result<(), SandboxError> {
    let c_path = c_path(dir)?;
    let name = if user_ns {
        USER_OPAQUE_XATTR
    } else {
        OPAQUE_XATTR
    };
    let name = CString::new(name).expect("static name");
    // SAFETY: both strings are valid NUL-terminated C strings and the value
    // pointer/length describe a live byte slice.
    let rc = unsafe { libc::lsetxattr(c_path.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if rc != 0 {
        return Err(SandboxError::io("set opaque xattr on", dir)(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Creates an overlay whiteout (character device 0/0) at `path`.
fn make_overlay_whiteout(path: &Path) -> Result<(), SandboxError> {
    if fs::symlink_metadata(path).is_ok() {
        remove_any(path);
    }
    let c_path = c_path(path)?;
    // SAFETY: c_path is a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) };
    if rc != 0 {
        return Err(SandboxError::io("create whiteout", path)(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Removes a file or directory tree, ignoring errors.
fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_tree(path),
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// A path as a C string.
pub(crate) fn c_path(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| SandboxError::Setup {
        what: format!("path {} contains a NUL byte", path.display()),
    })
}

/// A reader that hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
