//! The weights lockfile as the build and push commands use it: the drift
//! gate, `/src/.cog/weights.json`, and the weights a bundle push verifies.

use super::CliError;
use crate::config::Project;
use crate::registry::BundleWeight;
use crate::weights::drift::check_drift;
use crate::weights::lockfile::{LOCKFILE_NAME, LockFile};
use crate::weights::runtime::runtime_manifest_for_build;
use crate::weights::spec::WeightSpec;
use std::path::Path;

/// Reads `weights.lock` from the project, if present.
fn read_lockfile(project_dir: &Path) -> Result<Option<LockFile>, CliError> {
    let path = project_dir.join(LOCKFILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => LockFile::parse(&bytes, &path.display().to_string())
            .map(Some)
            .map_err(|e| CliError::plain(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::plain(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The drift gate, then the bytes of `/src/.cog/weights.json`; `None` for
/// models without managed weights.
pub fn runtime_manifest(project: &Project) -> Result<Option<String>, CliError> {
    if project.config.weights.is_empty() {
        return Ok(None);
    }
    let specs = WeightSpec::from_decls(&project.config.weights)
        .map_err(|e| CliError::plain(e.to_string()))?;
    let lock = read_lockfile(&project.dir)?;
    check_drift(&specs, lock.as_ref()).map_err(|e| CliError::plain(e.to_string()))?;
    let bytes =
        runtime_manifest_for_build(lock.as_ref()).map_err(|e| CliError::plain(e.to_string()))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The lockfile's weights for a bundle push (empty without a lockfile).
pub fn bundle_weights(project_dir: &Path) -> Result<Vec<BundleWeight>, CliError> {
    Ok(read_lockfile(project_dir)?
        .map(|lock| {
            lock.weights
                .iter()
                .map(|entry| BundleWeight {
                    name: entry.name.clone(),
                    manifest_digest: entry.digest.clone(),
                    set_digest: entry.set_digest.to_string(),
                    size_uncompressed: entry.size,
                })
                .collect()
        })
        .unwrap_or_default())
}
