//! Base image selection (§3): cog-base (path C) when a candidate exists,
//! else `nvidia/cuda` (path B) for GPU models, else `python:<py>-slim` (path A).

use super::{ConfigError, Problem, Project, catalog, version};
use serde::Serialize;

/// The registry host of cog-base images unless `COG_REGISTRY_HOST` / `--registry` say otherwise.
pub const DEFAULT_REGISTRY_HOST: &str = "r8.im";

/// The tri-state base flags of `cog build` (§3.1); `None` = not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BaseFlags {
    /// `--use-cog-base-image[=true|false]`.
    pub use_cog_base_image: Option<bool>,
    /// `--use-cuda-base-image` (`auto`/`true` ⇒ `Some(true)`, `false` ⇒ `Some(false)`).
    pub use_cuda_base_image: Option<bool>,
}

/// A flag of the mutual-exclusion rule, named as on the command line.
pub const FLAG_USE_COG_BASE_IMAGE: &str = "--use-cog-base-image";
/// See [`FLAG_USE_COG_BASE_IMAGE`].
pub const FLAG_USE_CUDA_BASE_IMAGE: &str = "--use-cuda-base-image";
/// See [`FLAG_USE_COG_BASE_IMAGE`].
pub const FLAG_DOCKERFILE: &str = "--dockerfile";

/// cog's check that at most one of `--use-cog-base-image`,
/// `--use-cuda-base-image` and `--dockerfile` is explicitly set, with cog's
/// message `The flags --a and --b are mutually exclusive: you can only set one of them.`
pub fn check_flag_exclusivity(explicitly_set: &[&str]) -> Result<(), String> {
    if explicitly_set.len() > 1 {
        return Err(format!(
            "The flags {} are mutually exclusive: you can only set one of them.",
            explicitly_set.join(" and ")
        ));
    }
    Ok(())
}

impl BaseFlags {
    /// [`check_flag_exclusivity`] for these flags plus whether `--dockerfile` was given.
    pub fn check_exclusive(&self, dockerfile_given: bool) -> Result<(), String> {
        let mut set = Vec::new();
        if self.use_cog_base_image.is_some() {
            set.push(FLAG_USE_COG_BASE_IMAGE);
        }
        if self.use_cuda_base_image.is_some() {
            set.push(FLAG_USE_CUDA_BASE_IMAGE);
        }
        if dockerfile_given {
            set.push(FLAG_DOCKERFILE);
        }
        check_flag_exclusivity(&set)
    }
}

/// Answers whether an image reference exists in its registry. `Ok(false)`
/// means "not found" (MANIFEST_UNKNOWN / NAME_UNKNOWN); `Err` any other failure.
pub trait BaseImageExists {
    /// Whether `reference` exists.
    fn exists(&self, reference: &str) -> Result<bool, String>;
}

/// The offline answer used by `cogpack plan`: every §3.3 candidate exists.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssumeCandidatesExist;

impl BaseImageExists for AssumeCandidatesExist {
    fn exists(&self, _reference: &str) -> Result<bool, String> {
        Ok(true)
    }
}

/// Which of cog's three base paths was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BasePath {
    /// A: `python:<py>-slim`.
    PythonSlim,
    /// B: `nvidia/cuda:<tag>`.
    NvidiaCuda,
    /// C: `<registry>/cog-base:<tag>`.
    CogBase,
}

/// The outcome of base selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseSelection {
    /// The `FROM` reference.
    pub reference: String,
    /// Which path it is.
    pub path: BasePath,
    /// Whether a cog-base image was looked for.
    pub cog_base_attempted: bool,
    /// The cog-base reference that was looked for (even when it fell back).
    pub cog_base_candidate: Option<String>,
    /// Warnings to print (cog's texts).
    pub warnings: Vec<String>,
}

/// The cog-base components after cog's normalisation (§3.2): (cuda, python, torch).
pub fn normalise_components(cuda: &str, python: &str, torch: &str) -> (String, String, String) {
    let mut best = String::new();
    for conf in catalog::base_image_configurations() {
        if !compatible(&conf.cuda, cuda)
            || !compatible(&conf.python, python)
            || !compatible(&conf.torch, torch)
        {
            continue;
        }
        if best.is_empty() || version::greater(&conf.torch, &best) {
            best = version::strip_modifier(&conf.torch).to_string();
        }
    }
    (cuda.to_string(), python.to_string(), best)
}

fn compatible(configured: &str, requested: &str) -> bool {
    if configured.is_empty() || requested.is_empty() {
        return configured == requested;
    }
    version::matches(requested, configured)
}

/// `<registry>/cog-base:<tag>` for already-normalised components.
pub fn cog_base_reference(registry_host: &str, cuda: &str, python: &str, torch: &str) -> String {
    let mut parts = Vec::new();
    if !cuda.is_empty() {
        parts.push(format!("cuda{}", version::strip_patch(cuda)));
    }
    if !python.is_empty() {
        parts.push(format!("python{}", version::strip_patch(python)));
    }
    if !torch.is_empty() {
        parts.push(format!("torch{}", version::strip_modifier(torch)));
    }
    let tag = if parts.is_empty() {
        "latest".to_string()
    } else {
        parts.join("-")
    };
    format!("{registry_host}/cog-base:{tag}")
}

/// Whether normalised components are one of the §3.3 candidates.
pub fn is_candidate(cuda: &str, python: &str, torch: &str) -> bool {
    catalog::base_image_configurations().iter().any(|conf| {
        compatible(&conf.cuda, cuda)
            && compatible(&conf.python, python)
            && compatible(&conf.torch, torch)
    })
}

fn none_if_empty(text: &str) -> &str {
    if text.is_empty() { "(none)" } else { text }
}

/// Finds the cog-base image for the project (§3.2–3.4): `Ok(reference)` or
/// cog's error text.
fn determine_cog_base(
    project: &Project,
    registry_host: &str,
    exists: &dyn BaseImageExists,
    warnings: &mut Vec<String>,
) -> (Option<String>, Result<String, String>) {
    let build = project.config.build.clone().unwrap_or_default();
    let cuda = build.cuda.clone().unwrap_or_default();
    let python = match strip_python_patch(&build.python_version) {
        Ok(p) => p,
        Err(e) => return (None, Err(e)),
    };
    if python != build.python_version {
        warnings.push(format!(
            "Stripping patch version from Python version {} to {python}",
            build.python_version
        ));
    }
    let torch = project.torch_version().unwrap_or_default();
    let (cuda, python, torch) = normalise_components(&cuda, &python, &torch);
    let reference = cog_base_reference(registry_host, &cuda, &python, &torch);
    let unsupported = format!(
        "unsupported base image configuration: CUDA: {} / Python: {} / Torch: {}",
        none_if_empty(&cuda),
        none_if_empty(&python),
        none_if_empty(&torch)
    );
    if !is_candidate(&cuda, &python, &torch) {
        return (None, Err(unsupported));
    }
    match exists.exists(&reference) {
        Ok(true) => (Some(reference.clone()), Ok(reference)),
        Ok(false) => (Some(reference), Err(unsupported)),
        Err(e) => (Some(reference), Err(e)),
    }
}

fn strip_python_patch(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    version::Version::parse(text)
        .map(|v| format!("{}.{}", v.major, v.minor))
        .ok_or_else(|| format!("Invalid version: {text}"))
}

/// Chooses the base image exactly as cog (§3.1). `registry_host` is where
/// cog-base images live (`r8.im` unless `COG_REGISTRY_HOST` / `--registry`).
pub fn select_base(
    project: &Project,
    flags: &BaseFlags,
    registry_host: &str,
    exists: &dyn BaseImageExists,
) -> Result<BaseSelection, ConfigError> {
    let mut warnings = Vec::new();
    let want_cog_base = flags.use_cog_base_image.unwrap_or(true);
    let mut candidate = None;
    if want_cog_base {
        let (looked_for, outcome) =
            determine_cog_base(project, registry_host, exists, &mut warnings);
        candidate = looked_for;
        match outcome {
            Ok(reference) => {
                return Ok(BaseSelection {
                    reference,
                    path: BasePath::CogBase,
                    cog_base_attempted: true,
                    cog_base_candidate: candidate,
                    warnings,
                });
            }
            Err(message) if flags.use_cog_base_image.is_some() => {
                return Err(ConfigError::single(
                    project.config_path(),
                    Problem::new(
                        "build",
                        message,
                        "run without --use-cog-base-image to fall back to python:<version>-slim or nvidia/cuda, or pick python/CUDA/torch versions that have a cog-base image",
                    ),
                ));
            }
            Err(message) => warnings.push(format!(
                "Could not find a suitable base image, continuing without base image support ({message})."
            )),
        }
    }
    let (reference, path) = if project.config.gpu() && flags.use_cuda_base_image.unwrap_or(true) {
        (project.cuda_base_image_tag()?, BasePath::NvidiaCuda)
    } else {
        (
            format!("python:{}-slim", project.config.python_version()),
            BasePath::PythonSlim,
        )
    };
    Ok(BaseSelection {
        reference,
        path,
        cog_base_attempted: want_cog_base,
        cog_base_candidate: candidate,
        warnings,
    })
}
