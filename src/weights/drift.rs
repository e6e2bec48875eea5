//! Drift between cog.yaml and `weights.lock` (§8.15): the build/push gate and
//! the import plan statuses.

use super::error::{Result, WeightsError};
use super::lockfile::{LockEntry, LockFile};
use super::spec::WeightSpec;

/// How a weight differs from its lockfile entry (no source access).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Declared but never imported.
    Pending {
        /// Weight name.
        name: String,
    },
    /// Declared differently from what was imported.
    ConfigChanged {
        /// Weight name.
        name: String,
        /// What changed, e.g. `target: /old → /new`.
        details: Vec<String>,
    },
    /// Imported but no longer declared.
    Orphaned {
        /// Weight name.
        name: String,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Pending { name } => write!(f, "{name}: pending (not imported yet)"),
            Drift::Orphaned { name } => {
                write!(f, "{name}: orphaned (in weights.lock, not in cog.yaml)")
            }
            Drift::ConfigChanged { name, details } => {
                write!(f, "{name}: config changed ({})", details.join("; "))
            }
        }
    }
}

/// Differences between a spec and its entry, one line each.
pub fn spec_differences(spec: &WeightSpec, entry: &LockEntry) -> Vec<String> {
    let recorded = entry.spec();
    let mut out = Vec::new();
    if spec.target != recorded.target {
        out.push(format!("target: {} → {}", recorded.target, spec.target));
    }
    if spec.sources.len() != recorded.sources.len() {
        out.push(format!(
            "sources: {} → {}",
            recorded.sources.len(),
            spec.sources.len()
        ));
        return out;
    }
    for (i, (new, old)) in spec.sources.iter().zip(&recorded.sources).enumerate() {
        if new.uri != old.uri {
            out.push(format!("source[{i}].uri: {} → {}", old.uri, new.uri));
        }
        if new.include != old.include {
            out.push(format!(
                "source[{i}].include: {:?} → {:?}",
                old.include, new.include
            ));
        }
        if new.exclude != old.exclude {
            out.push(format!(
                "source[{i}].exclude: {:?} → {:?}",
                old.exclude, new.exclude
            ));
        }
    }
    out
}

/// Every drift between declared specs and the lockfile, config order first,
/// then orphans in lockfile order.
pub fn find_drift(specs: &[WeightSpec], lock: Option<&LockFile>) -> Vec<Drift> {
    let mut out = Vec::new();
    for spec in specs {
        match lock.and_then(|l| l.entry(&spec.name)) {
            None => out.push(Drift::Pending {
                name: spec.name.clone(),
            }),
            Some(entry) => {
                let details = spec_differences(spec, entry);
                if !details.is_empty() {
                    out.push(Drift::ConfigChanged {
                        name: spec.name.clone(),
                        details,
                    });
                }
            }
        }
    }
    if let Some(lock) = lock {
        for entry in &lock.weights {
            if !specs.iter().any(|s| s.name == entry.name) {
                out.push(Drift::Orphaned {
                    name: entry.name.clone(),
                });
            }
        }
    }
    out
}

/// The gate before build/push: an error listing every drifted weight.
pub fn check_drift(specs: &[WeightSpec], lock: Option<&LockFile>) -> Result<()> {
    if specs.is_empty() {
        return Ok(());
    }
    let drift = find_drift(specs, lock);
    if drift.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = drift.iter().map(|d| format!("  - {d}")).collect();
    Err(WeightsError::Lockfile(format!(
        "weights.lock is out of sync with cog.yaml:\n{}\nRun 'cogpack weights import' to update.",
        lines.join("\n")
    )))
}

/// Status of one weight in an import plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanStatus {
    /// No lockfile entry.
    New,
    /// The declaration changed.
    ConfigChanged,
    /// A source fingerprint changed.
    UpstreamChanged,
    /// Nothing changed.
    Unchanged,
}

impl PlanStatus {
    /// cog's icon: `+`, `~`, `~`, `=`.
    pub fn icon(self) -> char {
        match self {
            PlanStatus::New => '+',
            PlanStatus::ConfigChanged | PlanStatus::UpstreamChanged => '~',
            PlanStatus::Unchanged => '=',
        }
    }

    /// cog's label.
    pub fn label(self) -> &'static str {
        match self {
            PlanStatus::New => "new",
            PlanStatus::ConfigChanged => "config-changed",
            PlanStatus::UpstreamChanged => "upstream-changed",
            PlanStatus::Unchanged => "unchanged",
        }
    }

    /// Judges a spec with fresh fingerprints against its entry.
    pub fn of(spec: &WeightSpec, fingerprints: &[String], entry: Option<&LockEntry>) -> Self {
        let Some(entry) = entry else {
            return PlanStatus::New;
        };
        if spec != &entry.spec() {
            return PlanStatus::ConfigChanged;
        }
        if fingerprints.len() != entry.sources.len()
            || fingerprints
                .iter()
                .zip(&entry.sources)
                .any(|(f, s)| f != &s.fingerprint)
        {
            return PlanStatus::UpstreamChanged;
        }
        PlanStatus::Unchanged
    }
}
