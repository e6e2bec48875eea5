//! `cogpack gc [--dry-run]`: removes store blobs that no recorded image
//! reaches, listing each one.

use super::CliError;
use super::args::GcArgs;
use super::env::Environment;
use crate::oci::store::Store;
use crate::oci::{Descriptor, Digest};
use std::collections::BTreeSet;

/// Runs `cogpack gc`.
pub fn run(args: &GcArgs, env: &Environment) -> Result<(), CliError> {
    let store = super::build::open_store(env)?;
    let unreferenced = unreferenced_blobs(&store)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut bytes = 0;
    for (digest, size) in &unreferenced {
        println!("{verb} {digest} ({size} bytes)");
        bytes += size;
    }
    if args.dry_run {
        println!(
            "Dry run: {} blob(s), {bytes} bytes would be freed",
            unreferenced.len()
        );
        return Ok(());
    }
    let report = store.gc().map_err(|e| CliError::plain(e.to_string()))?;
    println!(
        "Removed {} blob(s), freed {} bytes; kept {} blob(s) used by recorded images",
        report.removed_blobs, report.freed_bytes, report.kept_blobs
    );
    Ok(())
}

fn store_error(e: impl std::fmt::Display) -> CliError {
    CliError::new(
        format!("cannot read the local store: {e}"),
        "check the store directory (COGPACK_HOME) is intact",
    )
}

/// Blobs (digest, size) no recorded image reaches, sorted by digest.
fn unreferenced_blobs(store: &Store) -> Result<Vec<(Digest, u64)>, CliError> {
    let keep = referenced_blobs(store)?;
    let dir = store.root().join("blobs").join("sha256");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(store_error(format!("{}: {e}", dir.display()))),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(store_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
            continue;
        };
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        found.push((digest, size));
    }
    found.sort();
    Ok(found)
}

/// Hex digests reachable from the named images through manifests and indexes.
fn referenced_blobs(store: &Store) -> Result<BTreeSet<String>, CliError> {
    let mut keep = BTreeSet::new();
    let mut todo: Vec<Digest> = store
        .images()
        .map_err(store_error)?
        .into_values()
        .map(|d| d.digest)
        .collect();
    while let Some(digest) = todo.pop() {
        if !keep.insert(digest.hex().to_string()) {
            continue;
        }
        if let Ok(bytes) = store.read_blob(&digest) {
            todo.extend(children(&bytes));
        }
    }
    Ok(keep)
}

/// The digests a manifest or index names (config, layers, manifests).
fn children(bytes: &[u8]) -> Vec<Digest> {
    #[derive(serde::Deserialize)]
    struct Refs {
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    serde_json::from_slice::<Refs>(bytes)
        .map(|r| {
            r.config
                .into_iter()
                .chain(r.layers)
                .chain(r.manifests)
                .map(|d| d.digest)
                .collect()
        })
        .unwrap_or_default()
}
