//! The build plan: base image, ordered steps and the final image config.
//!
//! A [`BuildPlan`] is computed from a loaded [`Project`] and [`PlanOptions`]
//! without network access. Both engines render it: the Dockerfile backend
//! ([`crate::backend::docker`]) writes cog's Dockerfile from it, the native
//! assembler turns its steps into layers. Each [`Step`] says whether the native
//! engine can produce it; [`BuildPlan::check_native`] refuses a native build up
//! front, listing every step it cannot produce.

pub mod ca_cert;
pub mod git;
pub mod image;
mod render;
pub mod secrets;
pub mod step;
pub mod wheels;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{LocalArtifact, Project};

pub use image::ImageConfig;
pub use secrets::{SecretSource, SecretSpec};
pub use step::{CogFile, EnvVar, NativeSupport, RuntimeInstall, Step, StepKind, WheelSource};

/// Errors computing a plan. Every message ends with a hint.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A `build.run` command contains a newline (cog's message).
    #[error(
        "One of the commands in 'run' contains a new line, which won't work. You need to create a new list item in YAML prefixed with '-' for each command.\n\nThis is the offending line: {0}"
    )]
    RunCommandNewline(String),
    /// Cog SDK / coglet wheel selection failed.
    #[error("{0}")]
    Wheel(String),
    /// Mutually exclusive flags were both given (cog's message).
    #[error("{0}\nhint: keep only one of the flags")]
    Flags(String),
    /// `COG_CA_CERT` is unusable.
    #[error("{0}")]
    CaCert(String),
    /// A `--secret` flag is malformed.
    #[error("{0}")]
    Secret(String),
    /// A local requirement artifact could not be placed.
    #[error("{0}")]
    LocalArtifact(String),
    /// Base image selection or requirement rewriting failed (config-level error).
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// Which of cog's three Dockerfile shapes the base selects (spec §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BasePath {
    /// Path A: `python:<py>-slim`.
    PythonSlim,
    /// Path B: `nvidia/cuda:<tag>` with a uv-installed Python.
    NvidiaCuda,
    /// Path C: `<registry>/cog-base:<tag>`.
    CogBase,
}

impl BasePath {
    /// Short letter used in the spec (A/B/C).
    pub fn letter(self) -> char {
        match self {
            BasePath::PythonSlim => 'A',
            BasePath::NvidiaCuda => 'B',
            BasePath::CogBase => 'C',
        }
    }
}

/// The selected base image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanBase {
    /// Image reference as written after `FROM`.
    pub reference: String,
    /// Which Dockerfile shape it implies.
    pub path: BasePath,
    /// Value of `run.cog.cog-base-image-name`: set whenever cog-base was
    /// attempted, even when it fell back (cog's quirk, spec §6).
    pub cog_base_label: Option<String>,
    /// What the catalog knows about the base without pulling it (python
    /// path, site-packages, entrypoint, env, distro); `None` outside cog's families.
    pub facts: Option<crate::config::catalog::BaseImageInfo>,
}

impl PlanBase {
    /// A base with its catalog facts looked up.
    pub fn new(reference: &str, path: BasePath, cog_base_label: Option<String>) -> PlanBase {
        PlanBase {
            reference: reference.to_string(),
            path,
            cog_base_label,
            facts: crate::config::catalog::base_image_info(reference),
        }
    }
}

/// Options of `cogpack plan/build` that shape the plan. The CLI reads the
/// environment (`COG_SDK_WHEEL`, `COGLET_WHEEL`, `COG_CA_CERT`, …) and passes
/// the values in, so planning stays a pure function of its inputs.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// `--use-cog-base-image`: `None` = auto.
    pub use_cog_base_image: Option<bool>,
    /// `--use-cuda-base-image`: `None` = auto (true); `Some(false)` only for `false`.
    pub use_cuda_base_image: Option<bool>,
    /// Replicate-compatible registry host for cog-base images (`r8.im`).
    pub registry_host: String,
    /// `--precompile` (hidden cog flag).
    pub precompile: bool,
    /// `--strip` (hidden cog flag).
    pub strip: bool,
    /// `--secret` flags, parsed.
    pub secrets: Vec<SecretSpec>,
    /// `COG_SDK_WHEEL`.
    pub cog_sdk_wheel: Option<String>,
    /// `COGLET_WHEEL`.
    pub coglet_wheel: Option<String>,
    /// Certificate bytes from `COG_CA_CERT` (see [`ca_cert::read_ca_cert`]).
    pub ca_cert: Option<Vec<u8>>,
    /// Directory relative wheel paths are resolved against (the CLI's CWD).
    pub cwd: PathBuf,
    /// `run.cog.version` label value.
    pub cog_version: String,
    /// `@cog.concurrent(max=N)` from the predictor, when cog.yaml has no `concurrency`.
    pub decorator_concurrency: Option<i64>,
    /// Git revision label value (`GITHUB_SHA` or `git rev-parse HEAD`), if known.
    pub git_revision: Option<String>,
    /// Git version label value (`GITHUB_REF_NAME` or `git describe`), if known.
    pub git_version: Option<String>,
    /// The build sandbox can run here, so `build.run` commands and
    /// `system_packages` are native. Off by default so a plan never depends
    /// on the machine; the CLI turns it on on Linux as root
    /// ([`crate::sandbox::default_enabled`]).
    pub sandbox: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            use_cog_base_image: None,
            use_cuda_base_image: None,
            registry_host: "r8.im".to_string(),
            precompile: false,
            strip: false,
            secrets: Vec::new(),
            cog_sdk_wheel: None,
            coglet_wheel: None,
            ca_cert: None,
            cwd: PathBuf::from("."),
            cog_version: env!("CARGO_PKG_VERSION").to_string(),
            decorator_concurrency: None,
            git_revision: None,
            git_version: None,
            sandbox: false,
        }
    }
}

/// What planning needs besides the project and options: the selected base and
/// the rewritten requirements (from [`crate::config`]'s base selection and
/// requirement rewriting).
#[derive(Debug, Clone)]
pub struct PlanInputs {
    /// The selected base.
    pub base: PlanBase,
    /// Requirements text after cog's torch/tensorflow rewriting (§2.6).
    pub requirements_text: String,
    /// Warnings from base selection and rewriting, passed through to the plan.
    pub warnings: Vec<String>,
}

/// The resolved-free build plan.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    /// Project directory.
    pub project_dir: PathBuf,
    /// Config file name.
    pub config_file: String,
    /// Target platform (always `linux/amd64`, like cog).
    pub platform: String,
    /// The base image.
    pub base: PlanBase,
    /// Steps in image order (the last may be the `/src/.cog` bundle step).
    pub steps: Vec<Step>,
    /// The final image config.
    pub image: ImageConfig,
    /// Secret ids the run steps mount, with the `--secret` flags given.
    pub secrets: Vec<SecretSpec>,
    /// Warnings for the user (deprecations, fallbacks, overridden packages, …).
    pub warnings: Vec<String>,
    /// The build sandbox was available when planning ([`PlanOptions::sandbox`]):
    /// requirements the host installer refuses run in it with cog's command.
    #[serde(skip)]
    pub sandbox: bool,
}

/// A native build refused because some steps need the Docker backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeUnsupported {
    /// `(step id, step name, reason)` for every blocking step, in order.
    pub steps: Vec<(String, String, String)>,
}

impl std::fmt::Display for NativeUnsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "the native engine cannot build this project yet: {} step(s) must run commands inside the image:",
            self.steps.len()
        )?;
        for (id, name, reason) in &self.steps {
            writeln!(f, "  - [{id}] {name}: {reason}")?;
        }
        write!(
            f,
            "hint: build with `--backend docker` (needs a reachable Docker engine with BuildKit); nothing was downloaded or built"
        )
    }
}

impl std::error::Error for NativeUnsupported {}

impl BuildPlan {
    /// Steps the native engine cannot produce, in order.
    pub fn native_blockers(&self) -> Vec<&Step> {
        self.steps
            .iter()
            .filter(|step| !step.native.is_native())
            .collect()
    }

    /// Refuses a native build when any step needs the Docker backend.
    pub fn check_native(&self) -> Result<(), NativeUnsupported> {
        let blockers = self.native_blockers();
        if blockers.is_empty() {
            return Ok(());
        }
        let steps = blockers
            .into_iter()
            .map(|step| {
                let reason = match &step.native {
                    NativeSupport::Unsupported { reason } => reason.clone(),
                    _ => String::new(),
                };
                (step.id.clone(), step.name.clone(), reason)
            })
            .collect();
        Err(NativeUnsupported { steps })
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.id == id)
    }

    /// Steps of the main image (everything except the `/src/.cog` bundle step).
    pub fn main_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|step| !matches!(step.kind, StepKind::CogFiles { .. }))
    }

    /// The `/src/.cog` files added by the bundle step.
    pub fn cog_files(&self) -> &[CogFile] {
        self.steps
            .iter()
            .find_map(|step| match &step.kind {
                StepKind::CogFiles { files } => Some(files.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    /// Pretty JSON for `cogpack plan --json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\":\"cannot serialise plan: {error}\"}}"))
    }
}

/// Everything step construction needs, gathered once.
struct Context<'a> {
    project: &'a Project,
    options: &'a PlanOptions,
    base: &'a PlanBase,
    python_version: String,
    cuda_13_or_newer: bool,
}

impl Context<'_> {
    fn break_system_packages(&self) -> bool {
        match self.base.path {
            BasePath::NvidiaCuda => true,
            BasePath::CogBase => self.cuda_13_or_newer,
            BasePath::PythonSlim => false,
        }
    }

    fn tini_path(&self) -> bool {
        self.base.path != BasePath::CogBase
    }
}

/// True when a cog-style version (`M.m[.p]`) is at least 13.0.
fn is_cuda_13_or_newer(cuda: &str) -> bool {
    let major = cuda.split('.').next().and_then(|m| m.parse::<u64>().ok());
    major.is_some_and(|m| m >= 13)
}

/// [`plan`] for `cogpack plan`: every cog-base candidate is assumed to exist.
pub fn plan_offline(project: &Project, options: &PlanOptions) -> Result<BuildPlan, PlanError> {
    plan(
        project,
        options,
        &crate::config::base::AssumeCandidatesExist,
    )
}

/// Computes the plan of a loaded project without network access: selects the
/// base (existence answered by `exists`; [`AssumeCandidatesExist`] offline),
/// picks the cog runtime wheels, rewrites the requirements and lays out the steps.
///
/// [`AssumeCandidatesExist`]: crate::config::base::AssumeCandidatesExist
pub fn plan(
    project: &Project,
    options: &PlanOptions,
    exists: &dyn crate::config::base::BaseImageExists,
) -> Result<BuildPlan, PlanError> {
    use crate::config::base;
    let flags = base::BaseFlags {
        use_cog_base_image: options.use_cog_base_image,
        use_cuda_base_image: options.use_cuda_base_image,
    };
    flags.check_exclusive(false).map_err(PlanError::Flags)?;
    let selection = base::select_base(project, &flags, &options.registry_host, exists)?;
    let runtime = wheels::select_runtime(&wheel_inputs(project, options))?;
    let managed = crate::config::requirements::ManagedSources {
        cog: runtime.cog_description.clone(),
        coglet: runtime.coglet_description.clone(),
    };
    let rewritten = crate::config::requirements::rewrite_with(project, &managed)?;
    let mut warnings = project.warnings.clone();
    warnings.extend(selection.warnings.iter().cloned());
    warnings.extend(rewritten.warnings.iter().cloned());
    let inputs = PlanInputs {
        base: PlanBase::new(
            &selection.reference,
            match selection.path {
                base::BasePath::PythonSlim => BasePath::PythonSlim,
                base::BasePath::NvidiaCuda => BasePath::NvidiaCuda,
                base::BasePath::CogBase => BasePath::CogBase,
            },
            selection
                .cog_base_attempted
                .then(|| selection.reference.clone()),
        ),
        requirements_text: rewritten.text,
        warnings,
    };
    plan_with_inputs(project, options, &inputs)
}

fn wheel_inputs(project: &Project, options: &PlanOptions) -> wheels::WheelInputs {
    let build = project.config.build.clone().unwrap_or_default();
    wheels::WheelInputs {
        cog_sdk_wheel: options.cog_sdk_wheel.clone(),
        coglet_wheel: options.coglet_wheel.clone(),
        sdk_version: build.sdk_version.clone(),
        cwd: options.cwd.clone(),
        python_version: build.python_version.clone(),
    }
}

/// cog's warning for a `cog`/`coglet` requirement line it removes.
fn managed_package_warning(line: &str, description: &str, env_var: &str) -> String {
    format!(
        "'{line}' found in requirements — overriding with {description}. Remove it from requirements and use build.sdk_version in cog.yaml or {env_var} to control the version."
    )
}

/// Computes the plan from a project, options and an already selected base and
/// rewritten requirements (no base selection; for callers that did it themselves).
pub fn plan_with_inputs(
    project: &Project,
    options: &PlanOptions,
    inputs: &PlanInputs,
) -> Result<BuildPlan, PlanError> {
    let build = project.config.build.clone().unwrap_or_default();
    let context = Context {
        project,
        options,
        base: &inputs.base,
        python_version: build.python_version.clone(),
        cuda_13_or_newer: build.cuda.as_deref().is_some_and(is_cuda_13_or_newer),
    };
    let mut warnings = inputs.warnings.clone();
    let runtime = wheels::select_runtime(&wheel_inputs(project, options))?;
    warnings.extend(runtime.warnings.iter().cloned());
    let mut steps = base_steps(&context, &build);
    if let Some(step) = requirements_step(&context, inputs, &runtime, &mut warnings)? {
        steps.push(step);
    }
    steps.push(runtime_step(&context, &runtime));
    if options.precompile {
        steps.push(precompile_step(&context));
    }
    if context.tini_path() {
        steps.push(ldconfig_step(&context));
    }
    steps.extend(run_steps(&context, &build)?);
    steps.extend(tail_steps(&context));
    warnings.extend(unprovided_secret_warnings(&steps, &options.secrets));
    let image = image_config(&context, &steps);
    Ok(BuildPlan {
        project_dir: project.dir.clone(),
        config_file: project.file_name.clone(),
        platform: "linux/amd64".to_string(),
        base: inputs.base.clone(),
        steps,
        image,
        secrets: options.secrets.clone(),
        warnings,
        sandbox: options.sandbox,
    })
}

/// Warns about secret mounts whose id no `--secret` flag provides (BuildKit
/// then mounts nothing and the command usually fails later).
fn unprovided_secret_warnings(steps: &[Step], secrets: &[SecretSpec]) -> Vec<String> {
    let mut warnings = Vec::new();
    for step in steps {
        let StepKind::RunCommand { mounts, .. } = &step.kind else {
            continue;
        };
        for mount in mounts.iter().filter(|m| m.kind == "secret") {
            if !secrets.iter().any(|s| s.id == mount.id) {
                warnings.push(format!(
                    "build.run step {} mounts secret \"{}\" at {} but no --secret id={},src=<file> was given; the file will be missing during that step",
                    step.id, mount.id, mount.target, mount.id
                ));
            }
        }
    }
    warnings
}

/// Builds a step with its native support derived from its kind and the base path.
fn make_step(context: &Context, id: &str, name: String, kind: StepKind) -> Step {
    let config_only = matches!(
        kind,
        StepKind::Preamble { .. }
            | StepKind::UserEnvironment { .. }
            | StepKind::RuntimeConfig { .. }
    );
    let native = native_support(context, &kind);
    Step {
        id: id.to_string(),
        name,
        config_only,
        native,
        kind,
    }
}

/// Which steps the native engine can produce today (one place to change as it grows).
fn native_support(context: &Context, kind: &StepKind) -> NativeSupport {
    let unsupported = |reason: &str| NativeSupport::Unsupported {
        reason: reason.to_string(),
    };
    // Run in the build sandbox over the image's own layers: the real command.
    let sandboxed = || NativeSupport::Native;
    // Said of the requirements step when the sandbox can take over.
    let fallback = if context.options.sandbox {
        format!("; {}", step::REQUIREMENTS_SANDBOX_FALLBACK)
    } else {
        String::new()
    };
    let python_installs = |what: &str| {
        let fallback = if what == "requirements" {
            fallback.as_str()
        } else {
            ""
        };
        if context.options.strip {
            unsupported("--strip runs `strip` inside the image")
        } else if context.base.path == BasePath::NvidiaCuda && !context.options.sandbox {
            unsupported(&needs_sandbox(&format!(
                "{what} go into the Python that `uv python install` puts"
            )))
        } else if context.base.path == BasePath::NvidiaCuda {
            NativeSupport::Substituted {
                how: format!(
                    "{what} are installed on the host for linux/amd64 with uv into the uv-managed Python of the python-install step (found by reading its /usr/local/bin/python link) and added as a layer{fallback}"
                ),
            }
        } else {
            NativeSupport::Substituted {
                how: format!(
                    "{what} are installed on the host for linux/amd64 with uv and added as a layer{fallback}"
                ),
            }
        }
    };
    match kind {
        StepKind::Preamble { .. }
        | StepKind::UserEnvironment { .. }
        | StepKind::Uv { .. }
        | StepKind::Workdir { .. }
        | StepKind::RuntimeConfig { .. }
        | StepKind::SourceTree { .. }
        | StepKind::CogFiles { .. } => NativeSupport::Native,
        StepKind::Tini { .. } => NativeSupport::Substituted {
            how: "the pinned tini binary is fetched and verified; curl is not installed"
                .to_string(),
        },
        StepKind::PythonAlias => NativeSupport::Substituted {
            how: "the symlink is written directly".to_string(),
        },
        StepKind::ConfigCopy { .. } => NativeSupport::Substituted {
            how: "the config file is copied into the source layer".to_string(),
        },
        StepKind::CaCert { .. } if context.options.sandbox => sandboxed(),
        StepKind::CaCert { .. } => unsupported(&needs_sandbox("runs update-ca-certificates")),
        StepKind::SystemPackages { .. } if context.options.sandbox => sandboxed(),
        StepKind::SystemPackages { .. } => unsupported(&needs_sandbox("runs apt-get")),
        StepKind::PythonPrerequisites { .. } if context.options.sandbox => sandboxed(),
        StepKind::PythonPrerequisites { .. } => unsupported(&needs_sandbox("runs apt-get")),
        StepKind::PythonInstall { .. } if context.options.sandbox => sandboxed(),
        StepKind::PythonInstall { .. } => {
            unsupported(&needs_sandbox("runs `uv python install`"))
        }
        StepKind::Requirements { .. } => python_installs("requirements"),
        StepKind::CogRuntime { .. } => python_installs("cog runtime wheels"),
        StepKind::Precompile => unsupported("--precompile runs compileall inside the image"),
        StepKind::Ldconfig => NativeSupport::Substituted {
            how: "/etc/ld.so.conf.d/cog.conf is written from the installed *python*.so files; the ld.so cache is not regenerated (Python loads extension modules by path)".to_string(),
        },
        StepKind::RunCommand { .. } if context.options.sandbox => sandboxed(),
        StepKind::RunCommand { .. } => unsupported(&needs_sandbox("runs a shell command")),
    }
}

/// The reason for a step the build sandbox would run, when it is off.
fn needs_sandbox(what: &str) -> String {
    match crate::sandbox::unavailable_reason() {
        Some(reason) => format!("{what} inside the image (the build sandbox cannot run: {reason})"),
        None => format!("{what} inside the image (the build sandbox is turned off)"),
    }
}

/// Steps before the Python packages: preamble, CA cert, tini, env, apt, uv, Python.
fn base_steps(context: &Context, build: &crate::config::Build) -> Vec<Step> {
    let mut steps = Vec::new();
    if context.tini_path() {
        steps.push(preamble_step(context));
    }
    if let Some(cert) = &context.options.ca_cert {
        steps.push(ca_cert_step(context, cert));
    }
    if context.tini_path() {
        steps.push(tini_step(context));
    }
    if !context.project.environment.is_empty() {
        steps.push(user_env_step(context));
    }
    if !build.system_packages.is_empty() {
        steps.push(system_packages_step(context, &build.system_packages));
    }
    if context.base.path == BasePath::NvidiaCuda {
        steps.push(make_step(
            context,
            "python-prerequisites",
            "apt packages for the Python install (wget curl xz-utils git ca-certificates)".into(),
            StepKind::PythonPrerequisites {
                packages: step::PYTHON_PREREQUISITE_PACKAGES
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
            },
        ));
    }
    steps.push(make_step(
        context,
        "uv",
        format!("uv and uvx binaries from {}", step::UV_IMAGE),
        StepKind::Uv {
            image: step::UV_IMAGE.to_string(),
            files: vec!["/uv".to_string(), "/uvx".to_string()],
            destination: "/usr/local/bin/".to_string(),
            env: vec![EnvVar::new("UV_SYSTEM_PYTHON", "true")],
        },
    ));
    if context.base.path == BasePath::NvidiaCuda {
        let py = &context.python_version;
        steps.push(make_step(
            context,
            "python-install",
            format!("Python {py} installed with uv"),
            StepKind::PythonInstall {
                version: py.clone(),
                env: vec![
                    EnvVar::new("UV_PYTHON", py),
                    EnvVar::new("PATH", "\"/usr/local/bin:$PATH\""),
                ],
            },
        ));
    }
    if context.base.path == BasePath::CogBase && context.cuda_13_or_newer {
        steps.push(make_step(
            context,
            "python-alias",
            "python → python3 link (CUDA ≥ 13 cog-base)".into(),
            StepKind::PythonAlias,
        ));
    }
    steps
}

fn preamble_step(context: &Context) -> Step {
    make_step(
        context,
        "preamble",
        "cog's base environment".into(),
        StepKind::Preamble {
            env: vec![
                EnvVar::new("DEBIAN_FRONTEND", "noninteractive"),
                EnvVar::new("PYTHONUNBUFFERED", "1"),
                EnvVar::new(
                    "LD_LIBRARY_PATH",
                    "$LD_LIBRARY_PATH:/usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib64:/usr/local/nvidia/bin",
                ),
                EnvVar::new("NVIDIA_DRIVER_CAPABILITIES", "all"),
            ],
        },
    )
}

fn ca_cert_step(context: &Context, cert: &[u8]) -> Step {
    make_step(
        context,
        "ca-cert",
        "custom CA certificate (COG_CA_CERT)".into(),
        StepKind::CaCert {
            sha256: hex::encode(Sha256::digest(cert)),
            contents: cert.to_vec(),
            env: vec![
                EnvVar::new("SSL_CERT_FILE", step::SYSTEM_CERT_BUNDLE),
                EnvVar::new("REQUESTS_CA_BUNDLE", step::SYSTEM_CERT_BUNDLE),
            ],
        },
    )
}

fn tini_step(context: &Context) -> Step {
    make_step(
        context,
        "tini",
        format!("tini {} at /sbin/tini as init", step::TINI_VERSION),
        StepKind::Tini {
            version: step::TINI_VERSION.to_string(),
            url: format!(
                "https://github.com/krallin/tini/releases/download/{}/tini-amd64",
                step::TINI_VERSION
            ),
            path: "/sbin/tini".to_string(),
            entrypoint: vec!["/sbin/tini".to_string(), "--".to_string()],
        },
    )
}

fn user_env_step(context: &Context) -> Step {
    let mut vars: Vec<&(String, String)> = context.project.environment.iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    make_step(
        context,
        "environment",
        "environment from cog.yaml".into(),
        StepKind::UserEnvironment {
            env: vars.into_iter().map(|(k, v)| EnvVar::new(k, v)).collect(),
        },
    )
}

fn system_packages_step(context: &Context, packages: &[String]) -> Step {
    let (kept, provided): (Vec<String>, Vec<String>) = if context.base.path == BasePath::CogBase {
        packages
            .iter()
            .cloned()
            .partition(|p| !crate::config::catalog::cog_base_apt_packages().contains(p))
    } else {
        (packages.to_vec(), Vec::new())
    };
    make_step(
        context,
        "system-packages",
        if kept.is_empty() {
            "system packages (none left after the cog-base filter)".to_string()
        } else {
            format!("system packages ({})", kept.join(" "))
        },
        StepKind::SystemPackages {
            packages: kept,
            provided_by_base: provided,
        },
    )
}

/// The requirements step, or `None` when nothing is left to install.
fn requirements_step(
    context: &Context,
    inputs: &PlanInputs,
    runtime: &wheels::RuntimeSelection,
    warnings: &mut Vec<String>,
) -> Result<Option<Step>, PlanError> {
    let (text, artifacts) =
        place_local_artifacts(&inputs.requirements_text, &context.project.local_artifacts)?;
    let text = remove_managed_packages(&text, runtime, warnings);
    if text.is_empty() {
        return Ok(None);
    }
    let uninstall_managed = !artifacts.is_empty();
    let count = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with(['#', '-']))
        .count();
    Ok(Some(make_step(
        context,
        "requirements",
        format!("Python packages from requirements ({count} requirement(s))"),
        StepKind::Requirements {
            text,
            local_artifacts: artifacts,
            uninstall_managed,
            break_system_packages: context.break_system_packages(),
            strip: context.options.strip,
            env: step::install_cflags_env(),
        },
    )))
}

/// Rewrites local artifact lines to their container paths (idempotent when
/// requirement rewriting already did) and lists what to stage.
fn place_local_artifacts(
    text: &str,
    artifacts: &[LocalArtifact],
) -> Result<(String, Vec<step::StagedArtifact>), PlanError> {
    if artifacts.is_empty() {
        return Ok((text.to_string(), Vec::new()));
    }
    let staged: Vec<step::StagedArtifact> = artifacts
        .iter()
        .map(|artifact| step::StagedArtifact {
            line: artifact.line.clone(),
            source: artifact.path.clone(),
            project_relative: artifact.project_relative.clone(),
            container_path: format!(
                "{}/{}",
                step::LOCAL_ARTIFACTS_CONTAINER_DIR,
                artifact.project_relative
            ),
        })
        .collect();
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let trimmed = line.trim();
        match staged.iter().find(|a| a.line.trim() == trimmed) {
            Some(artifact) => lines.push(artifact.container_path.clone()),
            None => lines.push(line.to_string()),
        }
    }
    for artifact in &staged {
        if !lines
            .iter()
            .any(|line| line.trim() == artifact.container_path)
        {
            return Err(PlanError::LocalArtifact(format!(
                "failed to rewrite local Python package artifact \"{}\"\nhint: keep the artifact on its own line in the requirements file",
                artifact.line
            )));
        }
    }
    let mut unique: Vec<step::StagedArtifact> = Vec::new();
    for artifact in staged {
        if !unique
            .iter()
            .any(|u| u.project_relative == artifact.project_relative)
        {
            unique.push(artifact);
        }
    }
    Ok((lines.join("\n"), unique))
}

/// The package name of a requirement line (cog's regex), lower-cased without extras.
fn requirement_base_name(line: &str) -> String {
    let name: String = line
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    name.to_ascii_lowercase()
}

/// Drops `cog` / `coglet` lines (cog manages them) with cog's warning.
fn remove_managed_packages(
    text: &str,
    runtime: &wheels::RuntimeSelection,
    warnings: &mut Vec<String>,
) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            kept.push(line);
            continue;
        }
        let (description, env_var) = match requirement_base_name(trimmed).as_str() {
            "cog" => (&runtime.cog_description, wheels::COG_SDK_WHEEL_ENV),
            "coglet" => (&runtime.coglet_description, wheels::COGLET_WHEEL_ENV),
            _ => {
                kept.push(line);
                continue;
            }
        };
        warnings.push(managed_package_warning(trimmed, description, env_var));
    }
    kept.join("\n")
}

fn runtime_step(context: &Context, runtime: &wheels::RuntimeSelection) -> Step {
    let names: Vec<String> = runtime.installs.iter().map(|i| i.spec.clone()).collect();
    make_step(
        context,
        "cog-runtime",
        format!("cog runtime ({})", names.join(", ")),
        StepKind::CogRuntime {
            installs: runtime.installs.clone(),
            break_system_packages: context.break_system_packages(),
            strip: context.options.strip,
            env: runtime_env(&runtime.installs),
        },
    )
}

/// ENV assignments of the runtime installs: the coglet-named SDK quirk's R8
/// variables, and the CFLAGS pair around each install.
fn runtime_env(installs: &[RuntimeInstall]) -> Vec<EnvVar> {
    let mut env = Vec::new();
    for install in installs {
        if install.coglet_named_sdk {
            env.push(EnvVar::new("R8_COG_VERSION", "coglet"));
            env.push(EnvVar::new("R8_PYTHON_VERSION", &install.python_version));
        }
        env.extend(step::install_cflags_env());
    }
    env
}

fn precompile_step(context: &Context) -> Step {
    make_step(
        context,
        "precompile",
        "bytecode precompilation (--precompile)".into(),
        StepKind::Precompile,
    )
}

fn ldconfig_step(context: &Context) -> Step {
    make_step(
        context,
        "ldconfig",
        "ldconfig for Python shared libraries".into(),
        StepKind::Ldconfig,
    )
}

/// One step per `build.run` item, then per deprecated `pre_install` item.
fn run_steps(context: &Context, build: &crate::config::Build) -> Result<Vec<Step>, PlanError> {
    let items = build
        .run
        .iter()
        .cloned()
        .chain(
            build
                .pre_install
                .iter()
                .map(|command| crate::config::RunItem {
                    command: command.clone(),
                    mounts: Vec::new(),
                }),
        );
    let mut steps = Vec::new();
    for (index, item) in items.enumerate() {
        let command = item.command.trim().to_string();
        if command.contains('\n') {
            return Err(PlanError::RunCommandNewline(command));
        }
        steps.push(make_step(
            context,
            &format!("run-{}", index + 1),
            format!("run command: {command}"),
            StepKind::RunCommand {
                command,
                mounts: item.mounts.clone(),
            },
        ));
    }
    Ok(steps)
}

/// WORKDIR, runtime config, source tree, config copy and the `/src/.cog` bundle.
fn tail_steps(context: &Context) -> Vec<Step> {
    let config = &context.project.config;
    let mut steps = vec![make_step(
        context,
        "workdir",
        "working directory /src".into(),
        StepKind::Workdir {
            path: "/src".into(),
        },
    )];
    let mut env = Vec::new();
    if let Some(predict) = &config.predict {
        env.push(EnvVar::new(
            "COG_PREDICT_TYPE_STUB",
            &format!("\"{predict}\""),
        ));
    }
    if let Some(train) = &config.train {
        env.push(EnvVar::new("COG_TRAIN_TYPE_STUB", &format!("\"{train}\"")));
    }
    if let Some(max) = effective_concurrency(context).filter(|max| *max > 0) {
        env.push(EnvVar::new("COG_MAX_CONCURRENCY", &max.to_string()));
    }
    steps.push(make_step(
        context,
        "runtime-config",
        "port 5000, cog runtime env, command".into(),
        StepKind::RuntimeConfig {
            exposed_port: "5000/tcp".into(),
            env,
            cmd: cog_cmd(),
        },
    ));
    steps.push(make_step(
        context,
        "source",
        "project source tree at /src".into(),
        StepKind::SourceTree {
            destination: "/src".into(),
        },
    ));
    if context.project.file_name != "cog.yaml" && !context.project.file_name.is_empty() {
        steps.push(make_step(
            context,
            "config-copy",
            format!("/src/{} copied to /src/cog.yaml", context.project.file_name),
            StepKind::ConfigCopy {
                file_name: context.project.file_name.clone(),
            },
        ));
    }
    let files = cog_files(context);
    if !files.is_empty() {
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        steps.push(make_step(
            context,
            "cog-files",
            format!("/src/.cog files ({})", names.join(", ")),
            StepKind::CogFiles { files },
        ));
    }
    steps
}

fn cog_cmd() -> Vec<String> {
    ["python", "-m", "cog.server.http"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `concurrency.max` from cog.yaml, else the predictor's decorator value.
fn effective_concurrency(context: &Context) -> Option<i64> {
    context
        .project
        .config
        .effective_concurrency(context.options.decorator_concurrency)
}

/// The files the bundle step adds: the schema when there is a predictor or
/// trainer, `weights.json` when managed weights are declared.
fn cog_files(context: &Context) -> Vec<CogFile> {
    let config = &context.project.config;
    let mut files = Vec::new();
    if config.predict.is_some() || config.train.is_some() {
        files.push(CogFile {
            name: "openapi_schema.json".into(),
            image_path: "/src/.cog/openapi_schema.json".into(),
        });
    }
    if !config.weights.is_empty() {
        files.push(CogFile {
            name: "weights.json".into(),
            image_path: "/src/.cog/weights.json".into(),
        });
    }
    files
}

/// The final image config: entrypoint, cmd, workdir, port, env, plan-time labels.
fn image_config(context: &Context, steps: &[Step]) -> ImageConfig {
    let entrypoint = steps.iter().find_map(|step| match &step.kind {
        StepKind::Tini { entrypoint, .. } => Some(entrypoint.clone()),
        _ => None,
    });
    let mut labels = BTreeMap::new();
    labels.insert(
        image::labels::VERSION.to_string(),
        context.options.cog_version.clone(),
    );
    labels.insert(
        image::labels::CONFIG.to_string(),
        context
            .project
            .config
            .effective_json(context.options.decorator_concurrency)
            .trim()
            .to_string(),
    );
    labels.insert(image::labels::HAS_INIT.to_string(), "true".to_string());
    let mut pending = vec![
        image::labels::OPENAPI_SCHEMA.to_string(),
        image::labels::PIP_FREEZE.to_string(),
    ];
    if let Some(name) = &context.base.cog_base_label {
        labels.insert(image::labels::BASE_IMAGE_NAME.to_string(), name.clone());
        pending.push(image::labels::BASE_LAST_LAYER_SHA.to_string());
        pending.push(image::labels::BASE_LAST_LAYER_IDX.to_string());
    }
    if let Some(revision) = &context.options.git_revision {
        labels.insert(image::labels::REVISION.to_string(), revision.clone());
    }
    if let Some(version) = &context.options.git_version {
        labels.insert(image::labels::IMAGE_VERSION.to_string(), version.clone());
    }
    ImageConfig {
        entrypoint,
        cmd: cog_cmd(),
        working_dir: "/src".into(),
        exposed_ports: vec!["5000/tcp".into()],
        env: ImageConfig::env_from_steps(steps),
        labels,
        pending_labels: pending,
    }
}
