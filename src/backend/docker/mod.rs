//! The Dockerfile backend: renders the build plan as the Dockerfile cog would
//! generate and drives `docker buildx build` (BuildKit) with the `cog_build`
//! named context, secrets and the second "bundle + labels" build (spec §4).

mod render;
mod stage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

pub use render::{
    SYNTAX_LINE, render_bundle_dockerfile, render_bundle_dockerfile_for, render_dockerfile,
    step_instructions,
};
pub use stage::{BUILD_DIR, DOCKERFILE_DIR, stage_build_dir};

use crate::plan::BuildPlan;

/// Errors of the Docker backend. Every message ends with a hint.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// No Docker engine answered `docker info`.
    #[error(
        "no Docker engine is reachable (`{program} info` failed: {detail})\nhint: start Docker (or set DOCKER_HOST), or build without Docker using `--backend native`"
    )]
    NoEngine {
        /// The docker program invoked.
        program: String,
        /// What went wrong.
        detail: String,
    },
    /// The engine answers but the BuildKit CLI plugin is missing.
    #[error(
        "`{program} buildx` is not available ({detail})\nhint: install the Docker buildx plugin (BuildKit), or build without Docker using `--backend native`"
    )]
    NoBuildx {
        /// The docker program invoked.
        program: String,
        /// What went wrong.
        detail: String,
    },
    /// Preparing `.cog/build/` failed.
    #[error("cannot prepare {path}: {detail}\nhint: check that the project directory is writable")]
    Stage {
        /// The path involved.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A docker command failed.
    #[error(
        "`{command}` failed: {detail}\nhint: read the build output above; rerun with --progress plain for full logs"
    )]
    Command {
        /// The command line (program and subcommand).
        command: String,
        /// Exit status or spawn error.
        detail: String,
    },
}

/// Bytes and labels known only at build time (schema, weights manifest,
/// resolved base labels); the CLI computes them before calling [`build`].
#[derive(Debug, Clone, Default)]
pub struct BundleInputs {
    /// `/src/.cog/openapi_schema.json` bytes (also the `run.cog.openapi_schema`
    /// label); `None` skips the file and leaves the label empty, like cog's
    /// `--skip-schema-validation`.
    pub openapi_schema: Option<Vec<u8>>,
    /// `/src/.cog/weights.json` bytes.
    pub weights_json: Option<Vec<u8>>,
    /// Extra labels (e.g. `run.cog.cog-base-image-last-layer-sha`, `run.cog.push_id`).
    pub extra_labels: BTreeMap<String, String>,
}

/// How to run the Docker build.
#[derive(Debug, Clone)]
pub struct DockerBuildOptions {
    /// The docker program (`docker`, or a path).
    pub program: PathBuf,
    /// Final image name (`-t`).
    pub image_name: String,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--progress` value, if given.
    pub progress: Option<String>,
    /// cog's hidden `--timestamp`: build arg `SOURCE_DATE_EPOCH` and the
    /// exporter's `rewrite-timestamp=true` (replaces `--load` by the equivalent
    /// `--output type=docker,...`).
    pub source_date_epoch: Option<i64>,
    /// Collect `pip freeze` from the built image for the `run.cog.pip_freeze` label.
    pub pip_freeze_label: bool,
}

impl DockerBuildOptions {
    /// Options with cog's defaults for an image name.
    pub fn new(image_name: &str) -> Self {
        DockerBuildOptions {
            program: PathBuf::from("docker"),
            image_name: image_name.to_string(),
            no_cache: false,
            progress: None,
            source_date_epoch: None,
            pip_freeze_label: true,
        }
    }
}

/// What a successful Docker build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerBuildOutput {
    /// The final image name.
    pub image_name: String,
    /// The intermediate image the main build was tagged with.
    pub main_image: String,
    /// Every label applied by the bundle build.
    pub labels: BTreeMap<String, String>,
}

/// The tag of the main build: the image name itself, or `cog-tmp:<sha256(name)>`
/// when the name starts with `r8.im` (cog's rule, spec §4.0).
pub fn main_image_tag(image_name: &str) -> String {
    if image_name.starts_with("r8.im") {
        format!(
            "cog-tmp:{}",
            hex::encode(Sha256::digest(image_name.as_bytes()))
        )
    } else {
        image_name.to_string()
    }
}

/// Fails with a clear error naming the native backend when `docker info`
/// does not succeed, or when `docker buildx version` does not (no BuildKit plugin).
pub fn probe_engine(program: &Path) -> Result<(), DockerError> {
    let name = program.display().to_string();
    probe(program, &["info"]).map_err(|detail| DockerError::NoEngine {
        program: name.clone(),
        detail,
    })?;
    probe(program, &["buildx", "version"]).map_err(|detail| DockerError::NoBuildx {
        program: name,
        detail,
    })
}

/// Runs a probe command quietly; on failure returns its last stderr line (or status).
fn probe(program: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let detail = stderr.lines().last().unwrap_or("").trim().to_string();
    Err(if detail.is_empty() {
        output.status.to_string()
    } else {
        detail
    })
}

/// Arguments of the main `docker buildx build`.
pub fn main_build_args(
    plan: &BuildPlan,
    options: &DockerBuildOptions,
    dockerfile: &Path,
    build_dir: &Path,
) -> Vec<String> {
    let mut args = common_build_args(options, build_dir);
    for secret in &plan.secrets {
        args.push("--secret".into());
        args.push(secret.to_buildx_arg());
    }
    if let Some(epoch) = options.source_date_epoch {
        args.push("--build-arg".into());
        args.push(format!("SOURCE_DATE_EPOCH={epoch}"));
    }
    args.push("--tag".into());
    args.push(main_image_tag(&options.image_name));
    args.push("--file".into());
    args.push(dockerfile.display().to_string());
    args.push(plan.project_dir.display().to_string());
    args
}

/// Arguments of the bundle + labels build.
pub fn bundle_build_args(
    options: &DockerBuildOptions,
    labels: &BTreeMap<String, String>,
    dockerfile: &Path,
    build_dir: &Path,
) -> Vec<String> {
    let mut args = common_build_args(options, build_dir);
    for (key, value) in labels {
        args.push("--label".into());
        args.push(format!("{key}={value}"));
    }
    args.push("--tag".into());
    args.push(options.image_name.clone());
    args.push("--file".into());
    args.push(dockerfile.display().to_string());
    args.push(
        dockerfile
            .parent()
            .unwrap_or(Path::new("."))
            .display()
            .to_string(),
    );
    args
}

fn common_build_args(options: &DockerBuildOptions, build_dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "buildx".into(),
        "build".into(),
        "--platform".into(),
        "linux/amd64".into(),
        "--build-context".into(),
        format!("cog_build={}", build_dir.display()),
    ];
    match options.source_date_epoch {
        Some(_) => {
            args.push("--output".into());
            args.push("type=docker,rewrite-timestamp=true".into());
        }
        None => args.push("--load".into()),
    }
    if options.no_cache {
        args.push("--no-cache".into());
    }
    if let Some(progress) = &options.progress {
        args.push("--progress".into());
        args.push(progress.clone());
    }
    args
}

/// Runs a docker command with inherited stdout/stderr (build output streams to the user).
fn run_docker(program: &Path, args: &[String]) -> Result<(), DockerError> {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .map_err(|error| docker_command_error(program, args, error.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(docker_command_error(program, args, status.to_string()))
    }
}

fn docker_command_error(program: &Path, args: &[String], detail: String) -> DockerError {
    let head: Vec<&str> = args.iter().take(2).map(String::as_str).collect();
    DockerError::Command {
        command: format!("{} {}", program.display(), head.join(" ")),
        detail,
    }
}

/// `python -m pip freeze` inside the main image (the `run.cog.pip_freeze` label).
fn pip_freeze(program: &Path, image: &str) -> Result<String, DockerError> {
    let args: Vec<String> = [
        "run",
        "--rm",
        "--platform",
        "linux/amd64",
        image,
        "python",
        "-m",
        "pip",
        "freeze",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let output = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| docker_command_error(program, &args, error.to_string()))?;
    if !output.status.success() {
        return Err(docker_command_error(
            program,
            &args,
            output.status.to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Every label of the bundle build: the plan's, the schema, pip freeze, extras.
fn final_labels(
    plan: &BuildPlan,
    bundle: &BundleInputs,
    pip_freeze: Option<String>,
) -> BTreeMap<String, String> {
    plan.image.complete_labels(
        bundle.openapi_schema.as_deref(),
        pip_freeze.as_deref(),
        &bundle.extra_labels,
    )
}

/// Builds the plan with Docker: probes the engine, stages `.cog/build/`, runs
/// the main build and the bundle + labels build, removes the temporary
/// `cog-tmp:` image and the staging directories.
pub fn build(
    plan: &BuildPlan,
    bundle: &BundleInputs,
    options: &DockerBuildOptions,
) -> Result<DockerBuildOutput, DockerError> {
    probe_engine(&options.program)?;
    let _lock = lock_project(&plan.project_dir)?;
    let staged = match stage_build_dir(plan, bundle) {
        Ok(staged) => staged,
        Err(error) => {
            stage::remove_scratch(&plan.project_dir);
            return Err(error);
        }
    };
    let result = run_builds(plan, bundle, options, &staged);
    staged.remove();
    result
}

/// Takes cog's project lock (`.cog/cog.lock`, shared with cog and weight
/// imports) for the duration of the build; waits if another process holds it.
fn lock_project(project_dir: &Path) -> Result<std::fs::File, DockerError> {
    let cog_dir = project_dir.join(".cog");
    let lock_path = cog_dir.join("cog.lock");
    let stage_error = |error: std::io::Error| DockerError::Stage {
        path: lock_path.clone(),
        detail: error.to_string(),
    };
    std::fs::create_dir_all(&cog_dir).map_err(stage_error)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(stage_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "waiting for {}: another cog/cogpack process is using this project",
                lock_path.display()
            );
            file.lock().map_err(stage_error)?;
            Ok(file)
        }
        Err(std::fs::TryLockError::Error(error)) => Err(stage_error(error)),
    }
}

fn run_builds(
    plan: &BuildPlan,
    bundle: &BundleInputs,
    options: &DockerBuildOptions,
    staged: &stage::StagedBuild,
) -> Result<DockerBuildOutput, DockerError> {
    let main_image = main_image_tag(&options.image_name);
    let args = main_build_args(plan, options, &staged.dockerfile, &staged.build_dir);
    run_docker(&options.program, &args)?;
    let freeze = if options.pip_freeze_label {
        Some(pip_freeze(&options.program, &main_image)?)
    } else {
        None
    };
    let labels = final_labels(plan, bundle, freeze);
    let names: Vec<&str> = staged.bundle_files.iter().map(String::as_str).collect();
    let bundle_dockerfile =
        staged.write_bundle_dockerfile(&render_bundle_dockerfile_for(&main_image, &names))?;
    let args = bundle_build_args(options, &labels, &bundle_dockerfile, &staged.build_dir);
    run_docker(&options.program, &args)?;
    if main_image != options.image_name {
        let rm: Vec<String> = vec!["image".into(), "rm".into(), main_image.clone()];
        run_docker(&options.program, &rm)?;
    }
    Ok(DockerBuildOutput {
        image_name: options.image_name.clone(),
        main_image,
        labels,
    })
}
