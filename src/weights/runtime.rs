//! `/src/.cog/weights.json` (§8.14).

use super::error::{Result, WeightsError};
use super::lockfile::LockFile;
use crate::oci::Digest;
use serde::Serialize;

#[derive(Serialize)]
struct RuntimeManifest<'a> {
    weights: Vec<RuntimeWeight<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeWeight<'a> {
    name: &'a str,
    target: &'a str,
    set_digest: &'a Digest,
}

/// The bytes of `/src/.cog/weights.json` for a lockfile (lockfile order).
pub fn runtime_manifest_bytes(lock: &LockFile) -> Vec<u8> {
    super::go_json_indent(&RuntimeManifest {
        weights: lock
            .weights
            .iter()
            .map(|e| RuntimeWeight {
                name: &e.name,
                target: &e.target,
                set_digest: &e.set_digest,
            })
            .collect(),
    })
}

/// The runtime manifest for a build: an error when weights are configured but
/// no lockfile exists.
pub fn runtime_manifest_for_build(lock: Option<&LockFile>) -> Result<Vec<u8>> {
    match lock {
        Some(lock) => Ok(runtime_manifest_bytes(lock)),
        None => Err(WeightsError::Lockfile(
            "managed weights configured but no lockfile found (weights.lock); hint: run 'cogpack weights import' first".into(),
        )),
    }
}
