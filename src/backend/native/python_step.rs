//! Maps the plan's Python steps (uv, requirements, cog runtime) onto the
//! python module's resolver and installer.

use super::NativeError;
use crate::config::catalog::BaseImageInfo;
use crate::oci::image::BaseImage;
use crate::plan::{BuildPlan, StepKind, WheelSource};
use crate::python::{
    IndexSettings, LockMode, PythonBuildRequest, PythonInputs, PythonLayers, PythonTarget,
    build_python_layers, fetch::ProgressFn,
};
use std::path::PathBuf;

/// Where requirement lines naming local artifacts point in cog's Dockerfile.
const STAGED_ARTIFACTS: &str = "/tmp/local_package_artifacts/";

/// Python options that do not come from the plan.
#[derive(Debug, Clone)]
pub struct PythonSettings {
    /// Index URLs and credentials (from PIP_INDEX_URL / UV_INDEX_URL / netrc).
    pub index: IndexSettings,
    /// Lock usage (`--locked`, `--offline`).
    pub mode: LockMode,
    /// Wheel cache directory.
    pub cache_dir: PathBuf,
    /// An explicit `uv` binary; `None` searches PATH.
    pub uv: Option<PathBuf>,
}

/// The interpreter layout of the base, from the catalog facts (and the
/// glibc the catalog records for it).
pub fn python_target(plan: &BuildPlan, base: &BaseImage) -> Result<PythonTarget, NativeError> {
    let facts = plan.base.facts.as_ref().ok_or_else(|| {
        NativeError::Unsupported(format!(
            "cogpack does not know where Python lives in {} (not a python:slim or cog-base image)",
            base.reference
        ))
    })?;
    let python_version = facts.python.clone().ok_or_else(|| {
        NativeError::Unsupported(format!(
            "the catalog does not record the Python version of {}",
            base.reference
        ))
    })?;
    let glibc = parse_glibc(facts)?;
    let mut target = PythonTarget::usr_local(&python_version, glibc);
    if let Some(site_packages) = &facts.site_packages {
        target.site_packages = site_packages.clone();
    }
    if let Some(executable) = &facts.python_executable {
        target.interpreter = executable.clone();
    }
    Ok(target)
}

/// `"2.36"` → `(2, 36)`; a base whose glibc the catalog does not know gets
/// manylinux2014's floor, the most compatible choice.
fn parse_glibc(facts: &BaseImageInfo) -> Result<(u32, u32), NativeError> {
    if facts.glibc.is_empty() {
        return Ok((2, 17));
    }
    let parsed = facts
        .glibc
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    parsed.ok_or_else(|| {
        NativeError::Unsupported(format!(
            "the catalog records glibc {:?} for {}, which is not major.minor",
            facts.glibc, facts.reference
        ))
    })
}

/// What the plan asks the python module to install, or `None` when the plan
/// has no Python steps.
fn python_inputs(plan: &BuildPlan) -> Option<PythonInputs> {
    let mut inputs = PythonInputs::default();
    let mut any = false;
    for step in &plan.steps {
        match &step.kind {
            StepKind::Requirements { text, .. } => {
                inputs.requirements = unstage_artifacts(text);
                any = true;
            }
            StepKind::CogRuntime { installs, .. } => {
                for install in installs {
                    inputs.cog_runtime.push(runtime_requirement(install));
                    inputs.prerelease |= install.pre;
                }
                any = true;
            }
            StepKind::Uv { .. } => any = true,
            _ => {}
        }
    }
    any.then_some(inputs)
}

/// Local artifacts are named by their staged path in the plan's
/// requirements; the installer reads them from the project.
fn unstage_artifacts(text: &str) -> String {
    text.lines()
        .map(|line| match line.trim().strip_prefix(STAGED_ARTIFACTS) {
            Some(rest) => format!("./{rest}"),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A pip requirement for one cog runtime install.
fn runtime_requirement(install: &crate::plan::RuntimeInstall) -> String {
    match &install.source {
        WheelSource::Pypi {
            version: Some(_), ..
        } => install.spec.clone(),
        WheelSource::Pypi { version: None, .. } => install.package.name().to_string(),
        WheelSource::Url { url } => url.clone(),
        WheelSource::File { path } => path.display().to_string(),
    }
}

/// Resolves, fetches and installs the plan's Python packages into layer
/// entries (`None` when the plan installs nothing).
pub fn resolve_python(
    plan: &BuildPlan,
    base: &BaseImage,
    settings: &PythonSettings,
    progress: ProgressFn,
) -> Result<Option<PythonLayers>, NativeError> {
    let Some(inputs) = python_inputs(plan) else {
        return Ok(None);
    };
    let request = PythonBuildRequest {
        inputs,
        target: python_target(plan, base)?,
        index: settings.index.clone(),
        project_dir: plan.project_dir.clone(),
        lock_path: None,
        mode: settings.mode,
        cache_dir: settings.cache_dir.clone(),
        concurrency: 0,
        uv: settings.uv.clone(),
    };
    build_python_layers(&request, progress)
        .map(Some)
        .map_err(NativeError::Python)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_artifact_lines_point_back_into_the_project() {
        let text = "numpy==2.0.0\n/tmp/local_package_artifacts/dist/pkg-1.0-py3-none-any.whl";
        assert_eq!(
            unstage_artifacts(text),
            "numpy==2.0.0\n./dist/pkg-1.0-py3-none-any.whl"
        );
    }
}
