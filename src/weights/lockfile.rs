//! `weights.lock` (§8.13): cog's exact field order and Go `MarshalIndent`
//! bytes, atomic writes, strict parsing.

use super::error::{Result, WeightsError};
use super::spec::{SourceSpec, WeightSpec, clean_abs};
use crate::oci::Digest;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// The only lockfile version.
pub const LOCKFILE_VERSION: u32 = 1;
/// The lockfile's name in the project root.
pub const LOCKFILE_NAME: &str = "weights.lock";

/// A whole lockfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockFile {
    /// Always 1.
    pub version: u32,
    /// Envelope digest of the packer that wrote the layer digests.
    pub envelope_format: String,
    /// Entries in cog.yaml order of first import.
    pub weights: Vec<LockEntry>,
}

/// One source as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSource {
    /// Normalised URI.
    pub uri: String,
    /// `sha256:…`, `commit:…` or `etag:…`.
    pub fingerprint: String,
    /// Sorted include patterns.
    #[serde(default)]
    pub include: Vec<String>,
    /// Sorted exclude patterns.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// One weight as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockEntry {
    /// Weight name.
    pub name: String,
    /// Target directory.
    pub target: String,
    /// Sources in declaration order.
    pub sources: Vec<LockSource>,
    /// UTC RFC 3339 time of the import that produced this content.
    pub imported_at: String,
    /// Manifest digest.
    pub digest: Digest,
    /// Set digest of the files (§8.7).
    pub set_digest: Digest,
    /// Σ uncompressed layer sizes.
    pub size: u64,
    /// Σ layer blob sizes.
    pub size_compressed: u64,
    /// Files sorted by path.
    #[serde(default)]
    pub files: Vec<FileRecord>,
    /// Layers sorted by digest.
    #[serde(default)]
    pub layers: Vec<LayerRecord>,
}

/// One file of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the target.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Content digest.
    pub digest: Digest,
    /// Digest of the layer that holds it.
    pub layer: Digest,
}

/// One layer of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRecord {
    /// Blob digest.
    pub digest: Digest,
    /// `…tar` or `…tar+gzip`.
    pub media_type: String,
    /// Blob size.
    pub size: u64,
    /// Σ sizes of its files (no tar overhead).
    pub size_uncompressed: u64,
}

impl LockEntry {
    /// The spec this entry was imported from.
    pub fn spec(&self) -> WeightSpec {
        WeightSpec {
            name: self.name.clone(),
            target: self.target.clone(),
            sources: self
                .sources
                .iter()
                .map(|s| SourceSpec {
                    uri: s.uri.clone(),
                    include: s.include.clone(),
                    exclude: s.exclude.clone(),
                })
                .collect(),
        }
    }

    /// True if equal to `other` ignoring `importedAt`.
    pub fn same_content(&self, other: &LockEntry) -> bool {
        let mut a = self.clone();
        a.imported_at = other.imported_at.clone();
        &a == other
    }
}

impl LockFile {
    /// An empty lockfile with the given envelope.
    pub fn new(envelope_format: String) -> Self {
        LockFile {
            version: LOCKFILE_VERSION,
            envelope_format,
            weights: Vec::new(),
        }
    }

    /// Parses lockfile bytes; `origin` names the file in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self> {
        let bad = |msg: String| {
            WeightsError::Lockfile(format!(
                "{origin}: {msg}; hint: run 'cogpack weights import' to regenerate it"
            ))
        };
        let probe: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        match probe.get("version").and_then(|v| v.as_u64()) {
            Some(1) => {}
            Some(v) => {
                return Err(WeightsError::Lockfile(format!(
                    "{origin}: unsupported lockfile version {v} (this cogpack reads version {LOCKFILE_VERSION}); hint: upgrade cogpack or re-import with 'cogpack weights import'"
                )));
            }
            None => return Err(bad("missing or non-integer \"version\"".into())),
        }
        let lock: LockFile = serde_json::from_value(probe).map_err(|e| bad(e.to_string()))?;
        lock.check_unique().map_err(bad)?;
        Ok(lock)
    }

    fn check_unique(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        let mut targets = std::collections::HashSet::new();
        for entry in &self.weights {
            if !names.insert(entry.name.as_str()) {
                return Err(format!("duplicate weight name {:?}", entry.name));
            }
            let clean = clean_abs(&entry.target).ok_or_else(|| {
                format!(
                    "weight {:?}: target {:?} is not absolute",
                    entry.name, entry.target
                )
            })?;
            if !targets.insert(clean) {
                return Err(format!("duplicate target {:?}", entry.target));
            }
        }
        Ok(())
    }

    /// Reads `<dir>/weights.lock`; `Ok(None)` if it does not exist.
    pub fn load(project_dir: &Path) -> Result<Option<Self>> {
        let path = project_dir.join(LOCKFILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(WeightsError::io("reading", &path, e)),
        }
    }

    /// The exact bytes cog writes (Go `MarshalIndent`, no trailing newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        super::go_json_indent(self)
    }

    /// Writes `<dir>/weights.lock` atomically (temp, fsync, 0644, rename).
    pub fn save(&self, project_dir: &Path) -> Result<()> {
        write_atomic(&project_dir.join(LOCKFILE_NAME), &self.to_bytes())
    }

    /// The entry of a weight.
    pub fn entry(&self, name: &str) -> Option<&LockEntry> {
        self.weights.iter().find(|e| e.name == name)
    }

    /// Replaces the entry with the same name, or appends.
    pub fn upsert(&mut self, entry: LockEntry) {
        match self.weights.iter_mut().find(|e| e.name == entry.name) {
            Some(slot) => *slot = entry,
            None => self.weights.push(entry),
        }
    }

    /// Removes entries whose names are not in `keep`; true if any was removed.
    pub fn prune(&mut self, keep: &[&str]) -> bool {
        let before = self.weights.len();
        self.weights.retain(|e| keep.contains(&e.name.as_str()));
        self.weights.len() != before
    }
}

/// Writes a file atomically: temp file in the same directory, fsync, mode
/// 0644, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".weights-")
        .suffix(".lock.tmp")
        .tempfile_in(dir)
        .map_err(|e| WeightsError::io("creating a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| WeightsError::io("writing", tmp.path(), e))?;
    set_mode_644(tmp.as_file()).map_err(|e| WeightsError::io("setting mode of", path, e))?;
    tmp.persist(path)
        .map_err(|e| WeightsError::io("replacing", path, e.error))?;
    Ok(())
}

#[cfg(unix)]
fn set_mode_644(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_mode_644(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}
