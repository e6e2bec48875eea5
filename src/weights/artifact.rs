//! Weight artifact (§8.12): config blob, manifest v1 bytes, registry tag.

use super::lockfile::{FileRecord, LayerRecord, LockEntry};
use crate::oci::Digest;
use crate::oci::media::{COG_WEIGHT_ARTIFACT, COG_WEIGHT_CONFIG, OCI_MANIFEST};
use serde::Serialize;
use std::collections::BTreeMap;

/// Annotation: weight name.
pub const ANNOTATION_NAME: &str = "run.cog.weight.name";
/// Annotation: set digest.
pub const ANNOTATION_SET_DIGEST: &str = "run.cog.weight.set-digest";
/// Annotation: target directory.
pub const ANNOTATION_TARGET: &str = "run.cog.weight.target";
/// Annotation: uncompressed size (decimal).
pub const ANNOTATION_SIZE_UNCOMPRESSED: &str = "run.cog.weight.size.uncompressed";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigBlob<'a> {
    name: &'a str,
    target: &'a str,
    set_digest: &'a Digest,
    files: Vec<ConfigFile<'a>>,
}

#[derive(Serialize)]
struct ConfigFile<'a> {
    path: &'a str,
    layer: &'a Digest,
    size: u64,
    digest: &'a Digest,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson<'a> {
    schema_version: u32,
    media_type: &'a str,
    artifact_type: &'a str,
    config: DescriptorJson<'a>,
    layers: Vec<DescriptorJson<'a>>,
    annotations: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorJson<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'a str, String>>,
}

/// The config blob bytes: name, target, set digest and the path-sorted files.
pub fn config_blob(name: &str, target: &str, set_digest: &Digest, files: &[FileRecord]) -> Vec<u8> {
    let mut sorted: Vec<&FileRecord> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    super::go_json(&ConfigBlob {
        name,
        target,
        set_digest,
        files: sorted
            .into_iter()
            .map(|f| ConfigFile {
                path: &f.path,
                layer: &f.layer,
                size: f.size,
                digest: &f.digest,
            })
            .collect(),
    })
}

/// The manifest bytes of a weight artifact, given its config blob.
pub fn manifest_bytes(
    name: &str,
    target: &str,
    set_digest: &Digest,
    config: &[u8],
    layers: &[LayerRecord],
) -> Vec<u8> {
    let config_digest = Digest::of_bytes(config);
    let mut sorted: Vec<&LayerRecord> = layers.iter().collect();
    sorted.sort_by(|a, b| a.digest.cmp(&b.digest));
    let annotations = BTreeMap::from([
        (ANNOTATION_NAME, name.to_string()),
        (ANNOTATION_SET_DIGEST, set_digest.to_string()),
        (ANNOTATION_TARGET, target.to_string()),
    ]);
    super::go_json(&ManifestJson {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type: COG_WEIGHT_ARTIFACT,
        config: DescriptorJson {
            media_type: COG_WEIGHT_CONFIG,
            size: config.len() as u64,
            digest: &config_digest,
            annotations: None,
        },
        layers: sorted
            .into_iter()
            .map(|l| DescriptorJson {
                media_type: &l.media_type,
                size: l.size,
                digest: &l.digest,
                annotations: Some(BTreeMap::from([(
                    ANNOTATION_SIZE_UNCOMPRESSED,
                    l.size_uncompressed.to_string(),
                )])),
            })
            .collect(),
        annotations,
    })
}

/// The config blob and manifest bytes of a lockfile entry.
pub struct WeightArtifact {
    /// Config blob bytes.
    pub config: Vec<u8>,
    /// Manifest bytes.
    pub manifest: Vec<u8>,
}

impl WeightArtifact {
    /// Rebuilds the artifact recorded by a lockfile entry.
    pub fn of_entry(entry: &LockEntry) -> Self {
        let config = config_blob(&entry.name, &entry.target, &entry.set_digest, &entry.files);
        let manifest = manifest_bytes(
            &entry.name,
            &entry.target,
            &entry.set_digest,
            &config,
            &entry.layers,
        );
        WeightArtifact { config, manifest }
    }

    /// Digest of the manifest bytes.
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.manifest)
    }
}

/// cog's tag segment: chars outside `[A-Za-z0-9_-]` become `-`, runs of `-`
/// collapse, `-` trimmed, at most 104 chars, empty ⇒ `unnamed`.
pub fn tag_segment(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let mut seg = out.trim_matches('-').to_string();
    if seg.len() > 104 {
        seg.truncate(104);
        seg = seg.trim_matches('-').to_string();
    }
    if seg.is_empty() {
        "unnamed".into()
    } else {
        seg
    }
}

/// The registry tag of a weight: `cog-weight.<seg>.<first 12 hex of set digest>`,
/// or `cog-weight.<seg>` without a set digest.
pub fn weight_tag(name: &str, set_digest: Option<&Digest>) -> String {
    match set_digest {
        Some(d) => format!("cog-weight.{}.{}", tag_segment(name), &d.hex()[..12]),
        None => format!("cog-weight.{}", tag_segment(name)),
    }
}
