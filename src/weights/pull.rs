//! `weights pull` (§8.17): restore missing (or corrupt) store files from the
//! layer blobs of each weight's manifest, every file hash-verified.

use super::error::{Result, WeightsError};
use super::lockfile::{LockEntry, LockFile};
use super::registry::WeightRegistry;
use super::store::WeightStore;
use crate::oci::Digest;
use crate::oci::media::{OCI_LAYER_GZIP, OCI_LAYER_TAR};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

/// Options of a pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Weights to pull; empty means all.
    pub names: Vec<String>,
    /// Re-hash files already in the store and replace corrupt ones.
    pub verify_cached: bool,
}

/// The outcome for one weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledWeight {
    /// Weight name.
    pub name: String,
    /// Files that were already cached (and verified, if asked).
    pub cached_files: usize,
    /// Files restored from the registry.
    pub restored_files: usize,
    /// Stored files found corrupt and replaced.
    pub corrupt_files: Vec<String>,
    /// Layers downloaded.
    pub layers_fetched: usize,
}

/// Pulls the selected weights of a lockfile into the store.
pub fn pull_weights<R: WeightRegistry>(
    registry: &R,
    lock: &LockFile,
    store: &WeightStore,
    opts: &PullOptions,
) -> Result<Vec<PulledWeight>> {
    let unknown: Vec<&String> = opts
        .names
        .iter()
        .filter(|n| lock.entry(n).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(WeightsError::Invalid(format!(
            "unknown weight name(s) {unknown:?} (not in weights.lock); hint: run 'cogpack weights status' to list weights"
        )));
    }
    lock.weights
        .iter()
        .filter(|e| opts.names.is_empty() || opts.names.contains(&e.name))
        .map(|e| pull_entry(registry, e, store, opts.verify_cached))
        .collect()
}

fn pull_entry<R: WeightRegistry>(
    registry: &R,
    entry: &LockEntry,
    store: &WeightStore,
    verify: bool,
) -> Result<PulledWeight> {
    let mut corrupt = Vec::new();
    let mut needed: BTreeMap<&Digest, BTreeSet<&str>> = BTreeMap::new();
    let mut cached = 0;
    for f in &entry.files {
        let present = store.contains(&f.digest, Some(f.size));
        let sound = present && (!verify || store.verify(&f.digest)?);
        if present && !sound {
            corrupt.push(f.path.clone());
            store.remove(&f.digest)?;
        }
        if sound {
            cached += 1;
        } else {
            needed.entry(&f.layer).or_default().insert(&f.path);
        }
    }
    let mut outcome = PulledWeight {
        name: entry.name.clone(),
        cached_files: cached,
        restored_files: 0,
        corrupt_files: corrupt,
        layers_fetched: 0,
    };
    if needed.is_empty() {
        return Ok(outcome);
    }
    check_manifest(registry, entry)?;
    let expected: HashMap<&str, &super::lockfile::FileRecord> =
        entry.files.iter().map(|f| (f.path.as_str(), f)).collect();
    for (layer, paths) in needed {
        let record = entry
            .layers
            .iter()
            .find(|l| &l.digest == layer)
            .ok_or_else(|| {
                WeightsError::Lockfile(format!(
                    "weight \"{}\": file layer {layer} is not among its layers; hint: run 'cogpack weights import'",
                    entry.name
                ))
            })?;
        let restored = restore_layer(
            registry,
            entry,
            &record.media_type,
            layer,
            &expected,
            &paths,
            store,
        )?;
        outcome.restored_files += restored;
        outcome.layers_fetched += 1;
    }
    Ok(outcome)
}

fn check_manifest<R: WeightRegistry>(registry: &R, entry: &LockEntry) -> Result<()> {
    let (bytes, _) = registry
        .get_manifest(&entry.digest.to_string())
        .map_err(|e| {
            WeightsError::Registry(format!(
                "weight \"{}\": fetching manifest {}: {e}; hint: run 'cogpack weights import' to push it",
                entry.name, entry.digest
            ))
        })?;
    if Digest::of_bytes(&bytes) != entry.digest {
        return Err(WeightsError::Integrity(format!(
            "weight \"{}\": the registry returned a manifest that does not hash to {}; hint: check the registry",
            entry.name, entry.digest
        )));
    }
    Ok(())
}

fn restore_layer<R: WeightRegistry>(
    registry: &R,
    entry: &LockEntry,
    media_type: &str,
    layer: &Digest,
    expected: &HashMap<&str, &super::lockfile::FileRecord>,
    wanted: &BTreeSet<&str>,
    store: &WeightStore,
) -> Result<usize> {
    let blob = registry.get_blob(layer).map_err(|e| {
        WeightsError::Registry(format!(
            "weight \"{}\": fetching layer {layer}: {e}; hint: the registry copy is incomplete — run 'cogpack weights import' to push it again",
            entry.name
        ))
    })?;
    let tar_stream: Box<dyn Read> = match media_type {
        OCI_LAYER_TAR => blob,
        OCI_LAYER_GZIP => Box::new(flate2::read::GzDecoder::new(blob)),
        other => {
            return Err(WeightsError::Registry(format!(
                "weight \"{}\": layer {layer} has unsupported media type {other:?}",
                entry.name
            )));
        }
    };
    let bad = |e: std::io::Error| {
        WeightsError::Registry(format!(
            "weight \"{}\": reading layer {layer}: {e}; hint: retry, or re-push with 'cogpack weights import'",
            entry.name
        ))
    };
    let mut archive = tar::Archive::new(tar_stream);
    let mut seen = BTreeSet::new();
    for item in archive.entries().map_err(bad)? {
        let item = item.map_err(bad)?;
        if !item.header().entry_type().is_file() {
            continue;
        }
        let path = item.path().map_err(bad)?.to_string_lossy().into_owned();
        let record = expected.get(path.as_str()).ok_or_else(|| {
            WeightsError::Integrity(format!(
                "weight \"{}\": layer {layer} holds {path:?}, which weights.lock does not list; hint: re-import and push the weight",
                entry.name
            ))
        })?;
        store
            .put(&record.digest, Some(record.size), item)
            .map_err(|e| {
                WeightsError::Integrity(format!(
                    "weight \"{}\": {path} from layer {layer}: {e}",
                    entry.name
                ))
            })?;
        seen.insert(path);
    }
    let missing: Vec<&&str> = wanted.iter().filter(|p| !seen.contains(**p)).collect();
    if !missing.is_empty() {
        return Err(WeightsError::Integrity(format!(
            "weight \"{}\": layer {layer} lacks {missing:?}; hint: re-import and push the weight",
            entry.name
        )));
    }
    Ok(wanted.len())
}
