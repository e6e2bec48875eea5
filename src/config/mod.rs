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

pub mod base;
pub mod catalog;
mod effective;
mod error;
mod load;
mod parse;
pub mod requirements;
pub mod version;

pub use effective::go_json_string;
pub use error::{ConfigError, Problem};
pub use load::{find_project_dir, load, load_str, validate_sdk_version};

/// Maximum number of directories [`find_project_dir`] looks at.
pub const MAX_SEARCH_DEPTH: usize = 100;

/// The image name cog uses when neither `-t`, `image` nor `model` names one
/// (§1.8): `cog-` + the project directory's base name, lower-cased, spaces
/// turned into `-`, other characters outside `[a-z0-9-]` removed, at most 30
/// characters.
pub fn default_image_name(project_dir: &std::path::Path) -> String {
    const PREFIX: &str = "cog-";
    let base = project_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| project_dir.to_string_lossy().to_string());
    let mut name: String = base
        .to_lowercase()
        .replace(' ', "-")
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    name.truncate(30 - PREFIX.len());
    if name.starts_with(PREFIX) {
        name
    } else {
        format!("{PREFIX}{name}")
    }
}

impl Build {
    /// Python `major.minor` of `python_version` (patch dropped), or the text
    /// unchanged when it does not parse.
    pub fn python_minor(&self) -> String {
        version::strip_patch(&self.python_version)
    }
}

impl Config {
    /// The `run.cog.config` label value (§1.9): Go JSON of the effective
    /// config with cog's key order. `decorator_concurrency` is the
    /// `@cog.concurrent(max=...)` value found in the predictor; it is used
    /// when cog.yaml has no `concurrency.max`.
    pub fn effective_json(&self, decorator_concurrency: Option<i64>) -> String {
        effective::effective_json(self, decorator_concurrency)
    }

    /// The effective concurrency: `concurrency.max`, else the decorator's value.
    pub fn effective_concurrency(&self, decorator_concurrency: Option<i64>) -> Option<i64> {
        self.concurrency_max.or(decorator_concurrency)
    }

    /// `build.gpu`, false without a build section.
    pub fn gpu(&self) -> bool {
        self.build.as_ref().is_some_and(|b| b.gpu)
    }

    /// `build.python_version`, empty without a build section.
    pub fn python_version(&self) -> &str {
        self.build
            .as_ref()
            .map(|b| b.python_version.as_str())
            .unwrap_or("")
    }
}

impl Project {
    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(&self.file_name)
    }

    /// The first version of the first `torch` requirement (§2.5), `Some("")`
    /// when torch is listed without a version, `None` when not listed.
    pub fn torch_version(&self) -> Option<String> {
        requirements::package_version(&self.requirements, "torch")
    }

    /// The first version of the first `tensorflow` requirement.
    pub fn tensorflow_version(&self) -> Option<String> {
        requirements::package_version(&self.requirements, "tensorflow")
    }

    /// `nvidia/cuda:<tag>` for the resolved CUDA/cuDNN (GPU projects).
    pub fn cuda_base_image_tag(&self) -> Result<String, ConfigError> {
        let build = self.config.build.clone().unwrap_or_default();
        let cuda = build.cuda.unwrap_or_default();
        let cudnn = build.cudnn.unwrap_or_default();
        catalog::cuda_base_image_tag(&cuda, &cudnn).map_err(|message| {
            ConfigError::single(
                self.config_path(),
                Problem::new(
                    "build.cuda",
                    message,
                    "set build.cuda and build.cudnn to a pair listed in base-images/cuda.toml",
                ),
            )
        })
    }
}
