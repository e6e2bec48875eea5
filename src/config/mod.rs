//! cog.yaml: discovery, parsing, validation with cog's messages, completion
//! (CUDA/cuDNN resolution, requirements), and the effective-config JSON.
//!
//! Public contract used by the plan, the CLI and the builders:
//! - [`find_project_dir`] walks up from a directory to the one holding the
//!   config file;
//! - [`load`] parses, validates (collecting every error) and completes;
//! - [`Project`] is the completed result;
//! - [`catalog`] holds the compatibility matrices and base-image facts, and
//!   base selection; [`requirements`] reading and rewriting.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One `build.run` item: a shell command plus optional mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunItem {
    /// The shell command.
    pub command: String,
    /// Mounts (only `type: secret` ones are used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<RunMount>,
}

/// A mount of a `build.run` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunMount {
    /// Mount type; only `secret` is emitted.
    #[serde(rename = "type")]
    pub kind: String,
    /// Secret id (matched against `--secret id=...`).
    pub id: String,
    /// Where the secret appears during the step.
    pub target: String,
}

/// The `build` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Build {
    /// `build.gpu`.
    pub gpu: bool,
    /// `build.python_version` as text (unquoted `3.10` reads as "3.10").
    pub python_version: String,
    /// `build.python_requirements`, a path relative to the project.
    pub python_requirements: Option<String>,
    /// Deprecated `build.python_packages`.
    pub python_packages: Vec<String>,
    /// `build.run` items.
    pub run: Vec<RunItem>,
    /// `build.system_packages`.
    pub system_packages: Vec<String>,
    /// Deprecated `build.pre_install`.
    pub pre_install: Vec<String>,
    /// `build.cuda` (resolved after completion when `gpu`).
    pub cuda: Option<String>,
    /// `build.cudnn` (resolved after completion when `gpu`).
    pub cudnn: Option<String>,
    /// `build.sdk_version`.
    pub sdk_version: Option<String>,
}

/// One managed-weight source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WeightSource {
    /// Source URI as written (`file://`, relative dir, `hf://`, `https://`).
    pub uri: String,
    /// Include patterns.
    pub include: Vec<String>,
    /// Exclude patterns.
    pub exclude: Vec<String>,
}

/// One `weights:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WeightDecl {
    /// Weight name.
    pub name: String,
    /// Absolute target directory in the container.
    pub target: String,
    /// One or more sources, in declaration order.
    pub sources: Vec<WeightSource>,
    /// True when cog.yaml wrote `source:` as a list (serialisation keeps the form).
    pub source_is_list: bool,
}

/// A parsed cog.yaml (after completion: CUDA/cuDNN filled in when `gpu`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The `build` section, if present.
    pub build: Option<Build>,
    /// `image`.
    pub image: Option<String>,
    /// `model`.
    pub model: Option<String>,
    /// `run` / `predict` (stored as predict, like cog).
    pub predict: Option<String>,
    /// `train`.
    pub train: Option<String>,
    /// `concurrency.max`.
    pub concurrency_max: Option<i64>,
    /// `environment` entries as written (`KEY=VALUE`).
    pub environment: Vec<String>,
    /// `weights`.
    pub weights: Vec<WeightDecl>,
}

/// A requirement line that names a local file artifact (§1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalArtifact {
    /// The line as written in the requirements file.
    pub line: String,
    /// Resolved absolute path of the file (inside the project).
    pub path: PathBuf,
    /// Path relative to the project root, forward slashes.
    pub project_relative: String,
}

/// A loaded, validated and completed project.
#[derive(Debug, Clone)]
pub struct Project {
    /// Directory that holds the config file.
    pub dir: PathBuf,
    /// Config file name (`cog.yaml` unless `-f`).
    pub file_name: String,
    /// The completed config.
    pub config: Config,
    /// Requirement lines (from the requirements file or `python_packages`).
    pub requirements: Vec<String>,
    /// Local artifact lines among the requirements.
    pub local_artifacts: Vec<LocalArtifact>,
    /// Parsed environment, in the order written.
    pub environment: Vec<(String, String)>,
    /// Warnings to print (deprecations, unknown keys, notices).
    pub warnings: Vec<String>,
}
