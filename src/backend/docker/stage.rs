//! Staging of `.cog/build/` (the `cog_build` named context) and the Dockerfiles.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{DockerError, render_dockerfile};
use crate::plan::step::{CA_CERT_FILE_NAME, LOCAL_ARTIFACTS_STAGING_DIR, StagedArtifact};
use crate::plan::{BuildPlan, StepKind};

use super::BundleInputs;

/// The `cog_build` context directory, relative to the project.
pub const BUILD_DIR: &str = ".cog/build";
/// Directory holding the generated main Dockerfile and its `.dockerignore`.
pub const DOCKERFILE_DIR: &str = ".cog/dockerfile";
/// Directory holding the bundle Dockerfile (also that build's context).
const BUNDLE_DIR: &str = ".cog/bundle";

/// Paths of a staged build; [`StagedBuild::remove`] deletes the scratch directories.
#[derive(Debug)]
pub struct StagedBuild {
    /// Absolute `.cog/build/`.
    pub build_dir: PathBuf,
    /// Absolute path of the main Dockerfile.
    pub dockerfile: PathBuf,
    /// Absolute `.cog/bundle/`.
    pub bundle_dir: PathBuf,
    /// Names of the `/src/.cog` files staged for the bundle build.
    pub bundle_files: Vec<String>,
    dockerfile_dir: PathBuf,
}

impl StagedBuild {
    /// Writes the bundle Dockerfile and returns its path.
    pub fn write_bundle_dockerfile(&self, text: &str) -> Result<PathBuf, DockerError> {
        create_dir(&self.bundle_dir)?;
        let path = self.bundle_dir.join("Dockerfile");
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Deletes the scratch directories (cog deletes `.cog/build/` at the end too).
    pub fn remove(&self) {
        for dir in [&self.build_dir, &self.dockerfile_dir, &self.bundle_dir] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Deletes the scratch directories of a project (after a failed staging).
pub fn remove_scratch(project_dir: &Path) {
    for dir in [BUILD_DIR, DOCKERFILE_DIR, BUNDLE_DIR] {
        let _ = std::fs::remove_dir_all(project_dir.join(dir));
    }
}

fn stage_error(path: &Path, detail: impl std::fmt::Display) -> DockerError {
    DockerError::Stage {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn create_dir(path: &Path) -> Result<(), DockerError> {
    std::fs::create_dir_all(path).map_err(|error| stage_error(path, error))
}

/// Writes `bytes` to a temp file next to `path` (mode 0644) and renames it into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DockerError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    create_dir(parent)?;
    let mut temp =
        tempfile::NamedTempFile::new_in(parent).map_err(|error| stage_error(path, error))?;
    temp.write_all(bytes)
        .map_err(|error| stage_error(path, error))?;
    set_mode_644(temp.path())?;
    temp.persist(path)
        .map_err(|error| stage_error(path, error.error))?;
    Ok(())
}

#[cfg(unix)]
fn set_mode_644(path: &Path) -> Result<(), DockerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(|error| stage_error(path, error))
}

#[cfg(not(unix))]
fn set_mode_644(_path: &Path) -> Result<(), DockerError> {
    Ok(())
}

/// Copies a local artifact after checking it is a regular file inside the project.
fn stage_artifact(
    project_root: &Path,
    build_dir: &Path,
    artifact: &StagedArtifact,
) -> Result<(), DockerError> {
    let source = artifact
        .source
        .canonicalize()
        .map_err(|error| stage_error(&artifact.source, error))?;
    if !source.starts_with(project_root) {
        return Err(stage_error(
            &artifact.source,
            format!(
                "local Python package artifact \"{}\" must be inside the project directory",
                artifact.line
            ),
        ));
    }
    let metadata = std::fs::metadata(&source).map_err(|error| stage_error(&source, error))?;
    if !metadata.is_file() {
        return Err(stage_error(&source, "source must be a regular file"));
    }
    let bytes = std::fs::read(&source).map_err(|error| stage_error(&source, error))?;
    let destination = build_dir
        .join(LOCAL_ARTIFACTS_STAGING_DIR)
        .join(&artifact.project_relative);
    write_atomic(&destination, &bytes)
}

/// The `.dockerignore` applied to the main context: the project's own
/// patterns, then `.cog` (last, so no `!` pattern can re-include it).
fn context_dockerignore(project_dir: &Path) -> String {
    let mut text = std::fs::read_to_string(project_dir.join(".dockerignore")).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(".cog\n");
    text
}

/// Wipes and fills `.cog/build/`, writes the main Dockerfile and its ignore file.
pub fn stage_build_dir(
    plan: &BuildPlan,
    bundle: &BundleInputs,
) -> Result<StagedBuild, DockerError> {
    let project_root = plan
        .project_dir
        .canonicalize()
        .map_err(|error| stage_error(&plan.project_dir, error))?;
    let build_dir = project_root.join(BUILD_DIR);
    let dockerfile_dir = project_root.join(DOCKERFILE_DIR);
    let bundle_dir = project_root.join(BUNDLE_DIR);
    for dir in [&build_dir, &dockerfile_dir, &bundle_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|error| stage_error(dir, error))?;
        }
    }
    create_dir(&build_dir)?;
    stage_step_files(plan, &project_root, &build_dir)?;
    let bundle_files = stage_bundle_files(plan, bundle, &project_root, &build_dir)?;
    let dockerfile = dockerfile_dir.join("Dockerfile");
    write_atomic(&dockerfile, render_dockerfile(plan).as_bytes())?;
    write_atomic(
        &dockerfile_dir.join("Dockerfile.dockerignore"),
        context_dockerignore(&project_root).as_bytes(),
    )?;
    Ok(StagedBuild {
        build_dir,
        dockerfile,
        bundle_dir,
        bundle_files,
        dockerfile_dir,
    })
}

/// Files the main Dockerfile copies from `cog_build`.
fn stage_step_files(
    plan: &BuildPlan,
    project_root: &Path,
    build_dir: &Path,
) -> Result<(), DockerError> {
    for step in plan.main_steps() {
        match &step.kind {
            StepKind::CaCert { contents, .. } => {
                write_atomic(&build_dir.join(CA_CERT_FILE_NAME), contents)?;
            }
            StepKind::Requirements {
                text,
                local_artifacts,
                ..
            } => {
                for artifact in local_artifacts {
                    stage_artifact(project_root, build_dir, artifact)?;
                }
                write_atomic(&build_dir.join("requirements.txt"), text.as_bytes())?;
            }
            StepKind::CogRuntime { installs, .. } => {
                for install in installs {
                    if let (Some(name), crate::plan::WheelSource::File { path }) =
                        (install.staged_file_name(), &install.source)
                    {
                        let bytes =
                            std::fs::read(path).map_err(|error| stage_error(path, error))?;
                        write_atomic(&build_dir.join(name), &bytes)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `/src/.cog` files for the bundle build, plus the `.cog/` root copies cog
/// keeps; returns the names staged. A missing schema is skipped (cog's
/// `--skip-schema-validation`); a missing weights manifest is an error.
fn stage_bundle_files(
    plan: &BuildPlan,
    bundle: &BundleInputs,
    project_root: &Path,
    build_dir: &Path,
) -> Result<Vec<String>, DockerError> {
    let mut staged = Vec::new();
    for file in plan.cog_files() {
        let bytes = match file.name.as_str() {
            "openapi_schema.json" => match bundle.openapi_schema.as_deref() {
                Some(bytes) => Some(bytes),
                None => continue,
            },
            "weights.json" => bundle.weights_json.as_deref(),
            _ => None,
        };
        let Some(bytes) = bytes else {
            return Err(stage_error(
                &build_dir.join(&file.name),
                format!(
                    "the bytes of {} were not supplied to the Docker backend",
                    file.name
                ),
            ));
        };
        write_atomic(&build_dir.join(&file.name), bytes)?;
        write_atomic(&project_root.join(".cog").join(&file.name), bytes)?;
        staged.push(file.name.clone());
    }
    Ok(staged)
}
