//! The OCI index of a bundle push (§8.19, §9.3): the image manifest plus one
//! weight manifest per lockfile entry, all in the model repository.

use super::artifact::{ANNOTATION_NAME, ANNOTATION_SET_DIGEST, ANNOTATION_SIZE_UNCOMPRESSED};
use super::error::{Result, WeightsError};
use super::lockfile::{LockEntry, LockFile};
use super::registry::WeightRegistry;
use crate::oci::media::{COG_WEIGHT_ARTIFACT, OCI_INDEX};
use crate::oci::{Descriptor, Digest, Platform};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: &'a [Descriptor],
}

/// The index descriptor of a weight: its manifest's HEAD descriptor plus
/// artifact type, platform unknown/unknown and cog's annotations.
pub fn weight_descriptor(entry: &LockEntry, head: &Descriptor) -> Descriptor {
    let mut annotations = BTreeMap::from([
        (ANNOTATION_NAME.to_string(), entry.name.clone()),
        (
            ANNOTATION_SET_DIGEST.to_string(),
            entry.set_digest.to_string(),
        ),
    ]);
    if entry.size > 0 {
        annotations.insert(
            ANNOTATION_SIZE_UNCOMPRESSED.to_string(),
            entry.size.to_string(),
        );
    }
    Descriptor {
        media_type: head.media_type.clone(),
        size: head.size,
        digest: head.digest.clone(),
        annotations: Some(annotations),
        platform: Some(Platform {
            architecture: "unknown".into(),
            os: "unknown".into(),
            variant: None,
        }),
        artifact_type: Some(COG_WEIGHT_ARTIFACT.into()),
    }
}

/// The index bytes: image (platform linux/amd64) first, then the weights.
pub fn build_bundle_index(image: &Descriptor, weights: &[Descriptor]) -> Vec<u8> {
    let mut image = image.clone();
    image.platform = Some(Platform::linux_amd64());
    let mut manifests = vec![image];
    manifests.extend(weights.iter().cloned());
    super::go_json(&IndexJson {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests: &manifests,
    })
}

/// Step 1 of a bundle push: every weight manifest must already be in the
/// registry under its recorded digest. Returns the index descriptors.
pub fn verify_weights_pushed<R: WeightRegistry>(
    registry: &R,
    lock: &LockFile,
) -> Result<Vec<Descriptor>> {
    lock.weights
        .iter()
        .map(|entry| {
            let not_found = |why: String| {
                WeightsError::Registry(format!(
                    "weight \"{}\" not found in registry ({}): {why}; hint: run 'cogpack weights import' to push weights first",
                    entry.name, entry.digest
                ))
            };
            let head = registry
                .head_manifest(&entry.digest.to_string())
                .map_err(|e| not_found(e.to_string()))?
                .ok_or_else(|| not_found("manifest unknown".into()))?;
            if head.digest != entry.digest {
                return Err(WeightsError::Registry(format!(
                    "weight \"{}\": registry returned digest {} for {}; hint: check the registry",
                    entry.name, head.digest, entry.digest
                )));
            }
            Ok(weight_descriptor(entry, &head))
        })
        .collect()
}

/// Steps 4–6 of a bundle push: HEAD the pushed image tag, build the index
/// and PUT it at the model tag. Returns the index digest.
pub fn push_bundle_index<R: WeightRegistry>(
    registry: &R,
    model_tag: &str,
    image_tag: &str,
    weights: &[Descriptor],
) -> Result<Digest> {
    let image = registry
        .head_manifest(image_tag)
        .map_err(|e| WeightsError::Registry(format!("checking image {image_tag}: {e}")))?
        .ok_or_else(|| {
            WeightsError::Registry(format!(
                "image {image_tag} not found after pushing it; hint: retry the push"
            ))
        })?;
    let bytes = build_bundle_index(&image, weights);
    registry
        .put_manifest(model_tag, &bytes, OCI_INDEX)
        .map_err(|e| WeightsError::Registry(format!("writing index {model_tag}: {e}")))?;
    Ok(Digest::of_bytes(&bytes))
}
