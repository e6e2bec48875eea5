//! Local content-addressed store shared with cog (§8.8):
//! `<root>/files/sha256/<hex[0:2]>/<hex>`, written through a temp file that
//! is renamed only after its SHA-256 and size are verified.
//!
//! Durability: blobs are not fsynced (syncing every blob would make an
//! import disk-bound: ~10 s per 4 GiB on a 400 MB/s disk). The rename publishes a blob only once it is completely
//! written, but after a power loss a blob whose data had not reached the
//! disk may be missing, empty or shorter than its name says (ext4
//! `data=ordered` never shows a size beyond the data written), and the
//! store treats a blob of the wrong size as missing. A blob of the right
//! size with wrong content is caught where content leaves the store: push
//! streams every layer through a digest check, and pull can re-hash cached
//! files (`PullOptions::verify_cached`).

use super::error::{Result, WeightsError};
use crate::oci::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Resolves the store root from environment values the caller passes in:
/// `$COG_CACHE_DIR/weights`, else `$XDG_CACHE_HOME/cog/weights`, else
/// `$HOME/.cache/cog/weights`. Empty values count as unset.
pub fn resolve_store_root(
    cog_cache_dir: Option<&str>,
    xdg_cache_home: Option<&str>,
    home: Option<&str>,
) -> Option<PathBuf> {
    let set = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(cog_cache_dir) {
        return Some(dir.join("weights"));
    }
    if let Some(dir) = set(xdg_cache_home) {
        return Some(dir.join("cog").join("weights"));
    }
    set(home).map(|h| h.join(".cache").join("cog").join("weights"))
}

/// The weights file store.
#[derive(Debug, Clone)]
pub struct WeightStore {
    root: PathBuf,
}

impl WeightStore {
    /// A store rooted at an already resolved directory (created on demand).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        WeightStore { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("files").join("sha256")
    }

    /// Where a file with this digest lives.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(&digest.hex()[..2]).join(digest.hex())
    }

    /// True if a file with this digest (and size, when given) is present.
    pub fn contains(&self, digest: &Digest, size: Option<u64>) -> bool {
        match std::fs::metadata(self.path_of(digest)) {
            Ok(meta) => meta.is_file() && size.is_none_or(|s| s == meta.len()),
            Err(_) => false,
        }
    }

    /// Opens a stored file.
    pub fn open(&self, digest: &Digest) -> Result<File> {
        let path = self.path_of(digest);
        File::open(&path).map_err(|e| {
            WeightsError::io(
                "opening stored weight file (hint: run 'cogpack weights pull' or 'cogpack weights import')",
                &path,
                e,
            )
        })
    }

    /// Re-hashes a stored file; true if its content matches its name.
    pub fn verify(&self, digest: &Digest) -> Result<bool> {
        let mut file = self.open(digest)?;
        let mut hasher = HashingWriter::new(io::sink());
        io::copy(&mut file, &mut hasher)
            .map_err(|e| WeightsError::io("reading", &self.path_of(digest), e))?;
        Ok(&hasher.finish().0 == digest)
    }

    /// Removes a stored file (e.g. one found corrupt).
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let path = self.path_of(digest);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(WeightsError::io("removing", &path, e))
            }
            _ => Ok(()),
        }
    }

    /// Starts writing a file whose digest is not known yet.
    pub fn writer(&self) -> Result<StoreWriter> {
        Ok(StoreWriter {
            store: self.clone(),
            tmp: HashingWriter::new(io::BufWriter::with_capacity(1 << 20, self.temp_file()?)),
        })
    }

    /// Starts a file whose content the caller writes and hashes itself (for
    /// parallel ingest: the digest is computed from the same bytes on other
    /// threads); filed with [`StoreTemp::commit_as`].
    pub fn temp(&self) -> Result<StoreTemp> {
        Ok(StoreTemp {
            store: self.clone(),
            tmp: self.temp_file()?,
        })
    }

    /// A temporary file next to the blobs (same file system: the rename
    /// that files it is atomic).
    fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        let dir = self.blobs_dir();
        std::fs::create_dir_all(&dir).map_err(|e| WeightsError::io("creating", &dir, e))?;
        tempfile::Builder::new()
            .prefix("put-")
            .tempfile_in(&dir)
            .map_err(|e| WeightsError::io("creating a temporary file in", &dir, e))
    }

    /// Stores the bytes of `reader`, which must hash to `digest` (and have
    /// `size` bytes when given). Already present ⇒ the reader is drained.
    pub fn put(&self, digest: &Digest, size: Option<u64>, mut reader: impl Read) -> Result<()> {
        if self.contains(digest, size) {
            io::copy(&mut reader, &mut io::sink())
                .map_err(|e| WeightsError::Source(format!("reading {digest}: {e}")))?;
            return Ok(());
        }
        let mut writer = self.writer()?;
        io::copy(&mut reader, &mut writer)
            .map_err(|e| WeightsError::Source(format!("reading {digest}: {e}")))?;
        writer.commit_expecting(digest, size)
    }
}

/// A file being written into the store; hashes as it writes.
pub struct StoreWriter {
    store: WeightStore,
    tmp: HashingWriter<io::BufWriter<tempfile::NamedTempFile>>,
}

impl Write for StoreWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

impl StoreWriter {
    /// Finishes and files the content under its own digest; returns it and
    /// the size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let (digest, size, buffered) = self.tmp.finish();
        let tmp = buffered
            .into_inner()
            .map_err(|e| WeightsError::Source(format!("writing into the weights store: {e}")))?;
        file_under(&self.store, tmp, &digest, size)?;
        Ok((digest, size))
    }

    /// Like [`commit`](Self::commit) but fails (storing nothing) if the
    /// content does not hash to `expected` or has another size.
    pub fn commit_expecting(self, expected: &Digest, size: Option<u64>) -> Result<()> {
        let (digest, actual) = (self.tmp.digest_so_far(), self.tmp.written);
        if &digest != expected || size.is_some_and(|s| s != actual) {
            return Err(WeightsError::Integrity(format!(
                "content hash mismatch: expected {expected} ({} bytes), got {digest} ({actual} bytes); the source changed or the download was corrupted; hint: run the command again, and re-import if the source changed",
                size.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
            )));
        }
        self.commit().map(|_| ())
    }
}

/// Renames a finished temporary file to the blob path of `digest` (not
/// fsynced; see the module documentation on durability).
fn file_under(
    store: &WeightStore,
    tmp: tempfile::NamedTempFile,
    digest: &Digest,
    size: u64,
) -> Result<()> {
    let path = store.path_of(digest);
    let dir = path.parent().expect("blob paths have a parent");
    std::fs::create_dir_all(dir).map_err(|e| WeightsError::io("creating", dir, e))?;
    set_read_only(tmp.as_file()).map_err(|e| WeightsError::io("setting mode of", &path, e))?;
    if store.contains(digest, Some(size)) {
        return Ok(());
    }
    tmp.persist(&path)
        .map_err(|e| WeightsError::io("storing", &path, e.error))?;
    Ok(())
}

/// A temporary store file written by the caller (see [`WeightStore::temp`]).
pub struct StoreTemp {
    store: WeightStore,
    tmp: tempfile::NamedTempFile,
}

impl StoreTemp {
    /// The open temporary file, for positioned writes or `copy_file_range`.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Files the content under `digest`, which the caller computed from the
    /// very bytes it wrote; fails (storing nothing) if the file does not hold
    /// exactly `size` bytes.
    pub fn commit_as(self, digest: &Digest, size: u64) -> Result<()> {
        let written = self
            .tmp
            .as_file()
            .metadata()
            .map_err(|e| WeightsError::io("reading metadata of", self.tmp.path(), e))?
            .len();
        if written != size {
            return Err(WeightsError::Integrity(format!(
                "store copy of {digest} holds {written} bytes, expected {size}; the source changed while it was copied; hint: run the command again"
            )));
        }
        file_under(&self.store, self.tmp, digest, size)
    }
}

/// A writer that hashes and counts what passes through.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps a writer.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Digest of what was written so far.
    pub fn digest_so_far(&self) -> Digest {
        Digest::from_sha256(self.hasher.clone().finalize().into())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Digest, byte count and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (
            Digest::from_sha256(self.hasher.finalize().into()),
            self.written,
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(unix)]
fn set_read_only(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o444))
}

#[cfg(not(unix))]
fn set_read_only(_file: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_roots_in_cogs_order() {
        assert_eq!(
            resolve_store_root(Some("/c"), Some("/x"), Some("/h")),
            Some(PathBuf::from("/c/weights"))
        );
        assert_eq!(
            resolve_store_root(Some(""), Some("/x"), Some("/h")),
            Some(PathBuf::from("/x/cog/weights"))
        );
        assert_eq!(
            resolve_store_root(None, None, Some("/h")),
            Some(PathBuf::from("/h/.cache/cog/weights"))
        );
        assert_eq!(resolve_store_root(None, None, None), None);
    }

    #[test]
    fn put_verifies_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = WeightStore::new(dir.path());
        let digest = Digest::of_bytes(b"hello");
        store.put(&digest, Some(5), &b"hello"[..]).unwrap();
        assert!(store.contains(&digest, Some(5)));
        assert_eq!(
            store.path_of(&digest),
            dir.path()
                .join("files/sha256")
                .join(&digest.hex()[..2])
                .join(digest.hex())
        );
        store.put(&digest, Some(5), &b"hello"[..]).unwrap();
        let other = Digest::of_bytes(b"other");
        assert!(store.put(&other, None, &b"hello!"[..]).is_err());
        assert!(!store.contains(&other, None));
    }
}
