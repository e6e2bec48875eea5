//! Pushing weight artifacts (§8.16): layers (skipped when present), config
//! blob, then the manifest under `cog-weight.<name>.<short>`. Layer bytes are
//! rebuilt from the store and verified while they stream.

use super::artifact::{WeightArtifact, weight_tag};
use super::error::{Result, WeightsError};
use super::layerio::{LayerFile, VerifyingReader, layer_reader};
use super::lockfile::{LockEntry, LockFile};
use super::pack::Compression;
use super::registry::{RegistryError, WeightRegistry};
use super::store::WeightStore;
use crate::oci::media::{COG_WEIGHT_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_MANIFEST};
use crate::oci::{Descriptor, Digest};
use std::io::Read;

/// The outcome of pushing one weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedWeight {
    /// Weight name.
    pub name: String,
    /// Tag written.
    pub tag: String,
    /// Manifest digest.
    pub digest: Digest,
    /// Layers uploaded (the rest were already present).
    pub layers_uploaded: usize,
}

/// cog's default upload parallelism (`COG_PUSH_CONCURRENCY`).
pub const DEFAULT_PUSH_CONCURRENCY: usize = 5;

/// Pushes the named weights (all when empty) of a lockfile, each with up to
/// `concurrency` layer uploads at once (cog: `COG_PUSH_CONCURRENCY`, default 5).
pub fn push_weights<R: WeightRegistry>(
    registry: &R,
    lock: &LockFile,
    store: &WeightStore,
    names: &[String],
    concurrency: usize,
) -> Result<Vec<PushedWeight>> {
    lock.weights
        .iter()
        .filter(|e| names.is_empty() || names.contains(&e.name))
        .map(|entry| push_entry(registry, entry, store, concurrency))
        .collect()
}

fn registry_error(entry: &LockEntry, what: &str, e: RegistryError) -> WeightsError {
    WeightsError::Registry(format!(
        "weight \"{}\": {what}: {e}; hint: check the registry is reachable and you are logged in, then retry",
        entry.name
    ))
}

/// The store files of a layer, in tar order (path-sorted within the layer).
pub fn layer_files(entry: &LockEntry, layer: &Digest) -> Vec<LayerFile> {
    entry
        .files
        .iter()
        .filter(|f| &f.layer == layer)
        .map(|f| (f.path.clone(), f.size, f.digest.clone()))
        .collect()
}

/// The compression that reproduces a recorded layer: raw, or gzip at the
/// level the packing plan uses for its file count and sizes.
pub fn layer_compression(
    entry: &LockEntry,
    media_type: &str,
    files: &[LayerFile],
) -> Result<Compression> {
    match media_type {
        OCI_LAYER_TAR => Ok(Compression::None),
        OCI_LAYER_GZIP => Ok(Compression::Gzip(super::pack::gzip_level(files.len()))),
        other => Err(WeightsError::Lockfile(format!(
            "weight \"{}\": unsupported layer media type {other:?} in weights.lock; hint: run 'cogpack weights import'",
            entry.name
        ))),
    }
}

fn push_entry<R: WeightRegistry>(
    registry: &R,
    entry: &LockEntry,
    store: &WeightStore,
    concurrency: usize,
) -> Result<PushedWeight> {
    check_store(entry, store)?;
    let artifact = WeightArtifact::of_entry(entry);
    if artifact.digest() != entry.digest {
        return Err(WeightsError::Lockfile(format!(
            "weight \"{}\": recorded digest {} does not match its manifest ({}); hint: run 'cogpack weights import'",
            entry.name,
            entry.digest,
            artifact.digest()
        )));
    }
    let uploaded: Vec<bool> = super::run_bounded(&entry.layers, concurrency, |layer| {
        push_layer(registry, entry, store, layer)
    })
    .into_iter()
    .collect::<Result<_>>()?;
    let config_desc = Descriptor::new(
        COG_WEIGHT_CONFIG,
        artifact.config.len() as u64,
        Digest::of_bytes(&artifact.config),
    );
    let config_bytes = artifact.config.clone();
    let open_config = move || -> std::io::Result<Box<dyn Read + Send + 'static>> {
        Ok(Box::new(std::io::Cursor::new(config_bytes.clone())))
    };
    registry
        .push_blob(&config_desc, &open_config)
        .map_err(|e| registry_error(entry, "uploading the config blob", e))?;
    let tag = weight_tag(&entry.name, Some(&entry.set_digest));
    registry
        .put_manifest(&tag, &artifact.manifest, OCI_MANIFEST)
        .map_err(|e| registry_error(entry, &format!("writing manifest {tag}"), e))?;
    Ok(PushedWeight {
        name: entry.name.clone(),
        tag,
        digest: entry.digest.clone(),
        layers_uploaded: uploaded.iter().filter(|u| **u).count(),
    })
}

/// Uploads one layer unless the registry has it; true if uploaded.
fn push_layer<R: WeightRegistry>(
    registry: &R,
    entry: &LockEntry,
    store: &WeightStore,
    layer: &super::lockfile::LayerRecord,
) -> Result<bool> {
    let present = registry
        .head_blob(&layer.digest)
        .map_err(|e| registry_error(entry, "checking a layer", e))?;
    if present == Some(layer.size) {
        return Ok(false);
    }
    let files = layer_files(entry, &layer.digest);
    let compression = layer_compression(entry, &layer.media_type, &files)?;
    let desc = Descriptor::new(layer.media_type.clone(), layer.size, layer.digest.clone());
    let open = || -> std::io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(VerifyingReader::new(
            layer_reader(&files, store, compression),
            layer.digest.clone(),
            layer.size,
        )))
    };
    registry
        .push_blob(&desc, &open)
        .map_err(|e| registry_error(entry, &format!("uploading layer {}", layer.digest), e))?;
    Ok(true)
}

/// Every file of an entry must be in the store with its size.
fn check_store(entry: &LockEntry, store: &WeightStore) -> Result<()> {
    let missing: Vec<&str> = entry
        .files
        .iter()
        .filter(|f| !store.contains(&f.digest, Some(f.size)))
        .map(|f| f.path.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(WeightsError::Integrity(format!(
        "weight \"{}\": {} file(s) missing from the local store {} (e.g. {}); hint: run 'cogpack weights import' or 'cogpack weights pull'",
        entry.name,
        missing.len(),
        store.root().display(),
        missing[0]
    )))
}
