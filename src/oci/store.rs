//! Local content-addressed store (`$COGPACK_HOME`, default XDG cache dir).
//!
//! Layout under the root directory (the caller passes it in):
//! - `blobs/sha256/<hex>`: content, written to `tmp/` first and renamed into
//!   place only after its digest was verified;
//! - `images.json`: built images by name → manifest descriptor;
//! - `cache/layers/<key hash>.json`: layer results by caller-supplied input key;
//! - `recipes/<hex>.json`: blobs kept as the recipe that regenerates them
//!   instead of their bytes (uncompressed layers of files on disk: the build
//!   only hashes them; the bytes are written when first read, verified
//!   against the digest; see [`Store::with_regenerator`]);
//! - `pins/<hex>`: blobs kept by gc although no image names them (downloads
//!   pinned by digest, e.g. tini), each file holding why;
//! - `tmp/`: temporary files (removed by [`Store::gc`]);
//! - `gc.lock`: shared by [`StoreSession`]s (builds), exclusive for gc;
//! - `index.lock`: exclusive while `images.json` or the cache is updated.

use super::{Descriptor, Digest, Layer};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error(
        "store {op} failed at {path}: {source}; hint: check free space and permissions of the cogpack store (COGPACK_HOME)"
    )]
    Io {
        /// What was being done.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Content did not have the digest it was stored under.
    #[error(
        "content for {expected} has digest {actual} ({size} bytes); nothing was stored; hint: the source is corrupt or changed, fetch it again"
    )]
    DigestMismatch {
        /// Digest the caller expected.
        expected: Digest,
        /// Digest of what was received.
        actual: Digest,
        /// Bytes received.
        size: u64,
    },
    /// A blob is not present.
    #[error(
        "blob {digest} is not in the local store {root}; hint: rebuild the image or pull its base again"
    )]
    MissingBlob {
        /// The missing digest.
        digest: Digest,
        /// The store root.
        root: PathBuf,
    },
    /// A recipe-backed blob could not be written back.
    #[error(
        "cannot write layer {digest} from the files it was built from: {detail}; hint: run the build again (cogpack build; add --no-cache if files were put back with their old times)"
    )]
    Regenerate {
        /// The blob.
        digest: Digest,
        /// What failed.
        detail: String,
    },
    /// A metadata file is unreadable.
    #[error(
        "store file {path} is corrupt: {detail}; hint: delete it (the store rebuilds caches) or run `cogpack gc`"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// No image of that name.
    #[error(
        "no image named {name:?} in the local store; hint: build it with `cogpack build -t {name}`"
    )]
    UnknownImage {
        /// The requested name.
        name: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The result of building one layer, as kept in the layer cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the stored (compressed) blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the stored blob.
    pub size: u64,
    /// Media type of the stored blob.
    pub media_type: String,
}

impl LayerRecord {
    /// The manifest descriptor of this layer.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.size, self.digest.clone())
    }
}

/// Writes the bytes a recipe describes (the layer engine provides it; the
/// store only keeps recipes and verifies what comes out).
pub type Regenerator =
    std::sync::Arc<dyn Fn(&[u8], &mut dyn Write) -> io::Result<()> + Send + Sync>;

/// A local store rooted at a directory.
#[derive(Clone)]
pub struct Store {
    root: PathBuf,
    regenerator: Option<Regenerator>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .field("regenerates", &self.regenerator.is_some())
            .finish()
    }
}

/// What [`Store::put_recipe`] keeps next to the recipe.
#[derive(Serialize, Deserialize)]
struct RecipeFile {
    size: u64,
    recipe: serde_json::Value,
}

/// Held while a build uses the store; [`Store::gc`] waits for it.
pub struct StoreSession {
    _lock: File,
}

struct ExclusiveLock {
    file: File,
}

impl Drop for ExclusiveLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Summary of a garbage collection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// The deleted blobs and their sizes, by digest.
    pub removed: Vec<(Digest, u64)>,
    /// Blobs deleted.
    pub removed_blobs: usize,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Blobs kept because an image references them.
    pub kept_blobs: usize,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in ["blobs/sha256", "tmp", "cache/layers", "pins", "recipes"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).map_err(io_err("create directory", &p))?;
        }
        Ok(Store {
            root,
            regenerator: None,
        })
    }

    /// This store, able to keep blobs as recipes that `regenerator` turns
    /// back into bytes on first read.
    pub fn with_regenerator(mut self, regenerator: Regenerator) -> Self {
        self.regenerator = Some(regenerator);
        self
    }

    /// True if blobs may be kept as recipes (see [`Store::put_recipe`]).
    pub fn can_regenerate(&self) -> bool {
        self.regenerator.is_some()
    }

    fn recipe_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("recipes")
            .join(format!("{}.json", digest.hex()))
    }

    /// Records that blob `digest` (`size` bytes) is what the regenerator
    /// writes for `recipe`, instead of storing the bytes. The caller has
    /// hashed exactly those bytes. Reading the blob later writes it into the
    /// store, verified against `digest`.
    pub fn put_recipe(
        &self,
        digest: &Digest,
        size: u64,
        recipe: serde_json::Value,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&RecipeFile { size, recipe })
            .map_err(|e| io_err("encode recipe", &self.recipe_path(digest))(io::Error::other(e)))?;
        self.write_atomic(&self.recipe_path(digest), &bytes)
    }

    fn read_recipe(&self, digest: &Digest) -> Result<Option<RecipeFile>, StoreError> {
        let path = self.recipe_path(digest);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        path: path.clone(),
                        detail: e.to_string(),
                    })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Writes the bytes of a recipe-backed blob into the store, verified
    /// against its digest (a source file changed since the build fails here,
    /// and nothing is stored). `Ok(false)` if there is no recipe.
    fn materialize(&self, digest: &Digest) -> Result<bool, StoreError> {
        let Some(file) = self.read_recipe(digest)? else {
            return Ok(false);
        };
        let Some(regenerate) = &self.regenerator else {
            return Ok(false);
        };
        let recipe = serde_json::to_vec(&file.recipe)
            .map_err(|e| io_err("encode recipe", &self.recipe_path(digest))(io::Error::other(e)))?;
        let temp = self.temp_file()?;
        let temp_path = temp.path().to_path_buf();
        let mut sink = HashCount {
            inner: BufWriter::with_capacity(1 << 20, temp),
            hasher: Sha256::new(),
            count: 0,
        };
        regenerate(&recipe, &mut sink).map_err(|e| StoreError::Regenerate {
            digest: digest.clone(),
            detail: e.to_string(),
        })?;
        let actual = Digest::from_sha256(sink.hasher.finalize().into());
        if actual != *digest || sink.count != file.size {
            return Err(StoreError::Regenerate {
                digest: digest.clone(),
                detail: format!(
                    "its files changed since it was built (now {actual}, {} bytes)",
                    sink.count
                ),
            });
        }
        let temp = sink
            .inner
            .into_inner()
            .map_err(|e| io_err("write", &temp_path)(e.into_error()))?;
        self.commit_temp(temp, digest)?;
        Ok(true)
    }

    /// The default store location: `$XDG_CACHE_HOME/cogpack` or
    /// `$HOME/.cache/cogpack` (the CLI checks `COGPACK_HOME` first and passes
    /// the values in; this function never reads the environment).
    pub fn default_root(xdg_cache_home: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
        match (xdg_cache_home, home) {
            (Some(x), _) if x.is_absolute() => Some(x.join("cogpack")),
            (_, Some(h)) => Some(h.join(".cache").join("cogpack")),
            _ => None,
        }
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory for temporary files of this store (same filesystem as blobs).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Path of a blob (which may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// True if the blob is present, as bytes or as a recipe this store can
    /// regenerate.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
            || (self.can_regenerate() && self.recipe_path(digest).is_file())
    }

    /// Size of a present blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let p = self.blob_path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.read_recipe(digest)? {
                Some(file) if self.can_regenerate() => Ok(file.size),
                _ => Err(self.missing(digest)),
            },
            Err(e) => Err(io_err("stat", &p)(e)),
        }
    }

    fn missing(&self, digest: &Digest) -> StoreError {
        StoreError::MissingBlob {
            digest: digest.clone(),
            root: self.root.clone(),
        }
    }

    /// Opens a blob for reading; a recipe-backed blob is written first.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(digest);
        match File::open(&p) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.materialize(digest)? {
                    File::open(&p).map_err(io_err("open blob", &p))
                } else {
                    Err(self.missing(digest))
                }
            }
            Err(e) => Err(io_err("open blob", &p)(e)),
        }
    }

    /// Reads a whole blob into memory (configs, manifests).
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut f = self.open_blob(digest)?;
        let mut v = Vec::new();
        f.read_to_end(&mut v)
            .map_err(io_err("read blob", &self.blob_path(digest)))?;
        Ok(v)
    }

    /// Creates a temporary file in the store's tmp dir.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.tmp_dir();
        tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&dir)
            .map_err(io_err("create temp file", &dir))
    }

    /// Moves a finished temp file into place as blob `digest`. The caller
    /// has computed `digest` over exactly the bytes in the file.
    pub fn commit_temp(
        &self,
        temp: tempfile::NamedTempFile,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        temp.as_file()
            .sync_data()
            .map_err(io_err("sync", temp.path()))?;
        if dest.is_file() {
            return Ok(());
        }
        temp.persist(&dest)
            .map_err(|e| io_err("rename into place", &dest)(e.error))?;
        Ok(())
    }

    /// Stores bytes and returns their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of_bytes(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut temp = self.temp_file()?;
        let path = temp.path().to_path_buf();
        temp.write_all(bytes).map_err(io_err("write", &path))?;
        self.commit_temp(temp, &digest)?;
        Ok(digest)
    }

    /// Streams `reader` into the store, verifying it has digest `expected`;
    /// on mismatch nothing is stored.
    pub fn put_verified(&self, reader: impl Read, expected: &Digest) -> Result<u64, StoreError> {
        if let Ok(size) = self.blob_size(expected) {
            return Ok(size);
        }
        let temp = self.temp_file()?;
        let path = temp.path().to_path_buf();
        let (actual, size, temp) = hash_copy(reader, temp).map_err(io_err("write", &path))?;
        if &actual != expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
                size,
            });
        }
        self.commit_temp(temp, expected)?;
        Ok(size)
    }

    /// Takes the shared build lock; gc waits until every session is dropped.
    pub fn session(&self) -> Result<StoreSession, StoreError> {
        let file = self.lock_file("gc.lock")?;
        let p = self.root.join("gc.lock");
        file.lock_shared().map_err(io_err("lock", &p))?;
        Ok(StoreSession { _lock: file })
    }

    fn lock_file(&self, name: &str) -> Result<File, StoreError> {
        let p = self.root.join(name);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_err("open lock", &p))
    }

    fn exclusive(&self, name: &str) -> Result<ExclusiveLock, StoreError> {
        let file = self.lock_file(name)?;
        let p = self.root.join(name);
        file.lock().map_err(io_err("lock", &p))?;
        Ok(ExclusiveLock { file })
    }

    /// Writes `bytes` to `path` atomically (temp file in the store + rename).
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let mut temp = self.temp_file()?;
        let tp = temp.path().to_path_buf();
        temp.write_all(bytes).map_err(io_err("write", &tp))?;
        temp.as_file().sync_data().map_err(io_err("sync", &tp))?;
        temp.persist(path)
            .map_err(|e| io_err("rename into place", path)(e.error))?;
        Ok(())
    }

    // ---- layer cache ----

    fn cache_path(&self, key: &str) -> PathBuf {
        let h = hex::encode(Sha256::digest(key.as_bytes()));
        self.root
            .join("cache")
            .join("layers")
            .join(format!("{h}.json"))
    }

    /// The cached layer for `key`, if recorded and its blob is still present.
    pub fn cached_layer(&self, key: &str) -> Result<Option<LayerRecord>, StoreError> {
        let p = self.cache_path(key);
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read cache", &p)(e)),
        };
        let entry: CacheEntry =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: p.clone(),
                detail: e.to_string(),
            })?;
        if entry.key != key || !self.has_blob(&entry.layer.digest) {
            return Ok(None);
        }
        Ok(Some(entry.layer))
    }

    /// Records the layer built for `key`.
    pub fn record_layer(&self, key: &str, layer: &LayerRecord) -> Result<(), StoreError> {
        let entry = CacheEntry {
            key: key.to_string(),
            layer: layer.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&entry).expect("cache entry serialises");
        self.write_atomic(&self.cache_path(key), &bytes)
    }

    // ---- image index ----

    fn images_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    /// All named images (name → manifest descriptor), sorted by name.
    pub fn images(&self) -> Result<BTreeMap<String, Descriptor>, StoreError> {
        let p = self.images_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt {
                path: p,
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_err("read", &p)(e)),
        }
    }

    /// Records `name` → manifest `descriptor` (replacing an older one).
    pub fn tag_image(&self, name: &str, descriptor: &Descriptor) -> Result<(), StoreError> {
        let _guard = self.exclusive("index.lock")?;
        let mut images = self.images()?;
        images.insert(name.to_string(), descriptor.clone());
        let bytes = serde_json::to_vec_pretty(&images).expect("index serialises");
        self.write_atomic(&self.images_path(), &bytes)
    }

    /// The manifest descriptor recorded for `name`.
    pub fn image(&self, name: &str) -> Result<Descriptor, StoreError> {
        self.images()?
            .remove(name)
            .ok_or_else(|| StoreError::UnknownImage { name: name.into() })
    }

    // ---- gc ----

    /// Deletes blobs no named image references or pin keeps, stale cache
    /// entries and temp files. Waits for running builds (sessions) to finish.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _gc = self.exclusive("gc.lock")?;
        let _index = self.exclusive("index.lock")?;
        let keep = self.kept_blobs()?;
        let mut report = GcReport::default();
        let (removable, kept) = self.partition_blobs(&keep)?;
        for (digest, size) in removable {
            let path = self.blob_path(&digest);
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
            report.removed_blobs += 1;
            report.freed_bytes += size;
            report.removed.push((digest, size));
        }
        report.kept_blobs = kept;
        self.prune_dir_entries("cache/layers", |p| {
            fs::read(p)
                .ok()
                .and_then(|b| serde_json::from_slice::<CacheEntry>(&b).ok())
                .is_some_and(|e| keep.contains(e.layer.digest.hex()))
        })?;
        self.prune_dir_entries("recipes", |p| {
            p.file_stem()
                .is_some_and(|hex| keep.contains(hex.to_string_lossy().as_ref()))
        })?;
        self.prune_dir_entries("tmp", |_| false)?;
        Ok(report)
    }

    /// The blobs [`Store::gc`] would delete now, with their sizes, by digest.
    pub fn unreferenced_blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        Ok(self.partition_blobs(&self.kept_blobs()?)?.0)
    }

    /// Keeps `digest` through gc although no image names it; `why` is
    /// recorded next to the pin (e.g. "tini v0.19.0 download").
    pub fn pin_blob(&self, digest: &Digest, why: &str) -> Result<(), StoreError> {
        let path = self.root.join("pins").join(digest.hex());
        if path.is_file() {
            return Ok(());
        }
        self.write_atomic(&path, why.as_bytes())
    }

    /// Stored blobs whose hex digest is not in `keep` (sorted by digest),
    /// and how many stored blobs are in it.
    fn partition_blobs(
        &self,
        keep: &BTreeSet<String>,
    ) -> Result<(Vec<(Digest, u64)>, usize), StoreError> {
        let dir = self.root.join("blobs").join("sha256");
        let mut found = Vec::new();
        let mut kept = 0;
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if keep.contains(&name) {
                kept += 1;
                continue;
            }
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            found.push((digest, entry.metadata().map(|m| m.len()).unwrap_or(0)));
        }
        found.sort();
        Ok((found, kept))
    }

    /// Hex digests gc keeps: reachable from a named image, or pinned.
    fn kept_blobs(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut keep = self.referenced_blobs()?;
        let pins = self.root.join("pins");
        for entry in fs::read_dir(&pins).map_err(io_err("list", &pins))? {
            let name = entry.map_err(io_err("list", &pins))?.file_name();
            keep.insert(name.to_string_lossy().to_string());
        }
        Ok(keep)
    }

    fn prune_dir_entries(&self, sub: &str, keep: impl Fn(&Path) -> bool) -> Result<(), StoreError> {
        let dir = self.root.join(sub);
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let path = entry.map_err(io_err("list", &dir))?.path();
            if !keep(&path) {
                let _ = fs::remove_file(&path).or_else(|_| fs::remove_dir_all(&path));
            }
        }
        Ok(())
    }

    /// Hex digests reachable from the named images.
    fn referenced_blobs(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut keep = BTreeSet::new();
        let mut todo: Vec<Digest> = self.images()?.into_values().map(|d| d.digest).collect();
        while let Some(d) = todo.pop() {
            if !keep.insert(d.hex().to_string()) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&d) else {
                continue;
            };
            todo.extend(referenced_by_manifest(&bytes));
        }
        Ok(keep)
    }
}

/// Digests a manifest or index names (config, layers, manifests).
fn referenced_by_manifest(bytes: &[u8]) -> Vec<Digest> {
    #[derive(Deserialize)]
    struct Refs {
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    match serde_json::from_slice::<Refs>(bytes) {
        Ok(r) => r
            .config
            .into_iter()
            .chain(r.layers)
            .chain(r.manifests)
            .map(|d| d.digest)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    key: String,
    layer: LayerRecord,
}

/// Copies `reader` into `temp` while hashing; returns digest, size and file.
/// A writer that hashes and counts what it passes on.
struct HashCount<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashCount<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hash_copy(
    mut reader: impl Read,
    temp: tempfile::NamedTempFile,
) -> io::Result<(Digest, u64, tempfile::NamedTempFile)> {
    let mut hasher = Sha256::new();
    let mut out = BufWriter::with_capacity(1 << 20, temp);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
    let temp = out.into_inner().map_err(|e| e.into_error())?;
    Ok((Digest::from_sha256(hasher.finalize().into()), size, temp))
}

/// A layer whose blob lives in the store.
#[derive(Clone, Debug)]
pub struct StoreLayer {
    store: Store,
    record: LayerRecord,
}

impl StoreLayer {
    /// Wraps a layer record of `store`.
    pub fn new(store: Store, record: LayerRecord) -> Self {
        StoreLayer { store, record }
    }

    /// The layer's record.
    pub fn record(&self) -> &LayerRecord {
        &self.record
    }
}

impl super::Blob for StoreLayer {
    fn digest(&self) -> &Digest {
        &self.record.digest
    }
    fn size(&self) -> u64 {
        self.record.size
    }
    fn media_type(&self) -> &str {
        &self.record.media_type
    }
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let f = self
            .store
            .open_blob(&self.record.digest)
            .map_err(io::Error::other)?;
        Ok(Box::new(f))
    }
}

impl Layer for StoreLayer {
    fn diff_id(&self) -> &Digest {
        &self.record.diff_id
    }
}
