//! `weights status` (§8.15): pending / stale / ready / incomplete / orphaned,
//! checking layer blobs in the registry 8 at a time.

use super::drift::spec_differences;
use super::lockfile::{LockEntry, LockFile};
use super::registry::WeightRegistry;
use super::spec::{WeightSpec, normalize_uri};
use crate::oci::Digest;
use serde::Serialize;

/// How many registry HEADs run at once.
pub const STATUS_CONCURRENCY: usize = 8;

/// The state of one weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightState {
    /// Declared, never imported.
    Pending,
    /// Declared differently from the lockfile.
    Stale,
    /// Every layer is in the registry.
    Ready,
    /// Some layer is missing (or could not be checked).
    Incomplete,
    /// In the lockfile, not in cog.yaml.
    Orphaned,
}

/// The state of one layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerState {
    /// Present.
    Ready,
    /// Missing or unreachable.
    Missing,
}

/// One layer in the status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerStatus {
    /// Layer digest.
    pub digest: Digest,
    /// Blob size.
    pub size: u64,
    /// Registry state.
    pub status: LayerState,
}

/// The first source of a weight, as in cog's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    /// Normalised URI.
    pub uri: String,
    /// Recorded fingerprint.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
}

/// One weight in the status report (cog's JSON field order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightStatus {
    /// Weight name.
    pub name: String,
    /// Target directory.
    pub target: String,
    /// State.
    pub status: WeightState,
    /// Σ uncompressed bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Σ blob bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub size_compressed: u64,
    /// Number of layers.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub layer_count: usize,
    /// Number of files.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub file_count: usize,
    /// Manifest digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// First source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStatus>,
    /// Per-layer states (checked weights only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerStatus>,
    /// Why a weight is stale (not part of cog's JSON).
    #[serde(skip)]
    pub details: Vec<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// The JSON document of `weights status --json`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Config weights in order, then orphans in lockfile order.
    pub weights: Vec<WeightStatus>,
}

impl StatusReport {
    /// Compact Go-style JSON.
    pub fn to_json(&self) -> Vec<u8> {
        super::go_json(self)
    }

    /// Human lines: `<name>  <status>  <target>`.
    pub fn lines(&self) -> Vec<String> {
        self.weights
            .iter()
            .map(|w| {
                let mut line = format!("{:<20} {:<10} {}", w.name, state_label(w.status), w.target);
                let missing = w
                    .layers
                    .iter()
                    .filter(|l| l.status == LayerState::Missing)
                    .count();
                if missing > 0 {
                    line.push_str(&format!(
                        "  ({missing} of {} layers missing)",
                        w.layers.len()
                    ));
                }
                for d in &w.details {
                    line.push_str(&format!("\n    {d}"));
                }
                line
            })
            .collect()
    }

    /// True if every weight is ready.
    pub fn all_ready(&self) -> bool {
        self.weights.iter().all(|w| w.status == WeightState::Ready)
    }
}

fn state_label(s: WeightState) -> &'static str {
    match s {
        WeightState::Pending => "pending",
        WeightState::Stale => "stale",
        WeightState::Ready => "ready",
        WeightState::Incomplete => "incomplete",
        WeightState::Orphaned => "orphaned",
    }
}

fn from_entry(entry: &LockEntry, status: WeightState) -> WeightStatus {
    WeightStatus {
        name: entry.name.clone(),
        target: entry.target.clone(),
        status,
        size: entry.size,
        size_compressed: entry.size_compressed,
        layer_count: entry.layers.len(),
        file_count: entry.files.len(),
        digest: Some(entry.digest.clone()),
        source: entry.sources.first().map(|s| SourceStatus {
            uri: s.uri.clone(),
            fingerprint: s.fingerprint.clone(),
        }),
        layers: Vec::new(),
        details: Vec::new(),
    }
}

/// Computes the status of every declared weight plus orphans.
pub fn weights_status<R: WeightRegistry>(
    specs: &[WeightSpec],
    lock: Option<&LockFile>,
    registry: &R,
) -> StatusReport {
    let mut weights = Vec::new();
    for spec in specs {
        let Some(entry) = lock.and_then(|l| l.entry(&spec.name)) else {
            weights.push(WeightStatus {
                name: spec.name.clone(),
                target: spec.target.clone(),
                status: WeightState::Pending,
                size: 0,
                size_compressed: 0,
                layer_count: 0,
                file_count: 0,
                digest: None,
                source: spec.sources.first().map(|s| SourceStatus {
                    uri: s.uri.clone(),
                    fingerprint: String::new(),
                }),
                layers: Vec::new(),
                details: Vec::new(),
            });
            continue;
        };
        let mut details = spec_differences(spec, entry);
        details.extend(
            spec.sources
                .iter()
                .filter(|s| normalize_uri(&s.uri).is_err())
                .map(|s| format!("source {} cannot be normalised", s.uri)),
        );
        if !details.is_empty() {
            let mut st = from_entry(entry, WeightState::Stale);
            st.details = details;
            weights.push(st);
            continue;
        }
        let layers = check_layers(entry, registry);
        let complete = layers.iter().all(|l| l.status == LayerState::Ready);
        let mut st = from_entry(
            entry,
            if complete {
                WeightState::Ready
            } else {
                WeightState::Incomplete
            },
        );
        st.layers = layers;
        weights.push(st);
    }
    if let Some(lock) = lock {
        for entry in &lock.weights {
            if !specs.iter().any(|s| s.name == entry.name) {
                weights.push(from_entry(entry, WeightState::Orphaned));
            }
        }
    }
    StatusReport { weights }
}

/// HEADs every layer, [`STATUS_CONCURRENCY`] at a time; errors count as missing.
fn check_layers<R: WeightRegistry>(entry: &LockEntry, registry: &R) -> Vec<LayerStatus> {
    super::run_bounded(&entry.layers, STATUS_CONCURRENCY, |layer| LayerStatus {
        digest: layer.digest.clone(),
        size: layer.size,
        status: match registry.head_blob(&layer.digest) {
            Ok(Some(_)) => LayerState::Ready,
            _ => LayerState::Missing,
        },
    })
}
