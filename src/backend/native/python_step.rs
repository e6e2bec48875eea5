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
use sha2::Digest as _;
use std::path::{Path, PathBuf};

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
/// glibc the catalog records for it). On an nvidia/cuda base (path B) the
/// interpreter does not exist before the python-install step runs: this is
/// then a provisional `/usr/local` layout for the plan's Python `M.m`, good
/// for resolving and for `pip freeze`; [`uv_managed_target`] gives the real
/// one once the step has run.
pub fn python_target(plan: &BuildPlan, base: &BaseImage) -> Result<PythonTarget, NativeError> {
    if let Some(version) = uv_python_version(plan) {
        let minor = minor_version(&version).ok_or_else(|| {
            NativeError::Unsupported(format!(
                "python_version {version:?} is not major.minor[.patch]\nhint: set build.python_version to e.g. \"3.11\""
            ))
        })?;
        let glibc = match &plan.base.facts {
            Some(facts) => parse_glibc(facts)?,
            None => (2, 17),
        };
        return Ok(PythonTarget::usr_local(&minor, glibc));
    }
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

/// The version a path-B plan installs with `uv python install`, if any.
pub fn uv_python_version(plan: &BuildPlan) -> Option<String> {
    plan.steps.iter().find_map(|step| match &step.kind {
        StepKind::PythonInstall { version, .. } => Some(version.clone()),
        _ => None,
    })
}

/// `3.11.4` or `3.11` → `3.11`.
fn minor_version(version: &str) -> Option<String> {
    let mut parts = version.trim().split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    Some(format!("{major}.{minor}"))
}

/// The link cog's python-install step writes, pointing at `uv python find`.
pub const UV_PYTHON_LINK: &str = "usr/local/bin/python";

/// The interpreter `uv python install` put into the image, read from the
/// unpacked layer of the python-install step (`layer_root`): the target of
/// its `/usr/local/bin/python` link is `<prefix>/bin/python3.X` of a
/// python-build-standalone tree, whose packages go to
/// `<prefix>/lib/python3.X/site-packages`. Resolution facts (Python `M.m`,
/// glibc, base distributions) are kept from `provisional`, so the lock
/// resolved for it stays valid.
pub fn uv_managed_target(
    layer_root: &Path,
    provisional: &PythonTarget,
) -> Result<PythonTarget, NativeError> {
    let not_found = |what: String| {
        NativeError::Unsupported(format!(
            "the python-install step did not leave a usable uv-managed Python: {what}\nhint: check the output of `uv python install` above; run with --no-cache to run the step again"
        ))
    };
    let link = layer_root.join(UV_PYTHON_LINK);
    let executable =
        resolve_in_root(layer_root, &format!("/{UV_PYTHON_LINK}")).ok_or_else(|| {
            not_found(format!(
                "/{UV_PYTHON_LINK} is not a link into the layer ({})",
                link.display()
            ))
        })?;
    let file_name = executable.rsplit('/').next().unwrap_or_default();
    let minor = file_name
        .strip_prefix("python")
        .and_then(minor_version)
        .ok_or_else(|| not_found(format!("{executable} is not named python3.X")))?;
    if minor != provisional.python_version {
        return Err(not_found(format!(
            "{executable} is Python {minor}, the plan asks for {}",
            provisional.python_version
        )));
    }
    let bin_dir = executable
        .rsplit_once('/')
        .map(|(dir, _)| dir.to_string())
        .unwrap_or_default();
    let prefix = bin_dir
        .strip_suffix("/bin")
        .ok_or_else(|| not_found(format!("{executable} is not in a bin directory")))?
        .to_string();
    let site_packages = format!("{prefix}/lib/python{minor}/site-packages");
    if !layer_root
        .join(site_packages.trim_start_matches('/'))
        .is_dir()
    {
        return Err(not_found(format!("{site_packages} does not exist")));
    }
    Ok(PythonTarget {
        python_version: minor.clone(),
        site_packages,
        bin_dir,
        data_dir: prefix.clone(),
        include_dir: format!("{prefix}/include/python{minor}"),
        interpreter: executable,
        glibc: provisional.glibc,
        base_distributions: provisional.base_distributions.clone(),
    })
}

/// Follows symlinks of the absolute `path` inside the tree at `root` (links
/// are read as the image sees them); the resolved absolute path of a file
/// that exists, or `None`.
fn resolve_in_root(root: &Path, path: &str) -> Option<String> {
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .rev()
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        resolved.push(component);
        let on_disk = root.join(resolved.join("/"));
        let Ok(target) = std::fs::read_link(&on_disk) else {
            continue;
        };
        hops += 1;
        if hops > 40 {
            return None;
        }
        resolved.pop();
        let target = target.to_string_lossy().into_owned();
        if target.starts_with('/') {
            resolved.clear();
        }
        pending.extend(
            target
                .split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .rev(),
        );
    }
    let absolute = format!("/{}", resolved.join("/"));
    root.join(absolute.trim_start_matches('/'))
        .is_file()
        .then_some(absolute)
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
    let target = python_target(plan, base)?;
    match install_python(plan, target.clone(), settings, progress) {
        Err(NativeError::Python(error)) if falls_back_to_sandbox(plan, &error) => {
            eprintln!(
                "warning: {error:#}\nThe requirements are installed with cog's pip command in the build sandbox instead."
            );
            install_runtime_only(plan, target, settings, progress).map(Some)
        }
        other => other,
    }
}

/// The message of the python module's refusal to compile a package.
const NEEDS_COMPILER: &str = "must be compiled from source";

/// File name of the lock of the runtime-only resolution made when the
/// requirements fall back to the sandbox ([`requirements_in_sandbox`]).
const RUNTIME_ONLY_LOCK: &str = "pylock.cogpack-runtime.toml";

/// True when the host installer refused a package that needs a compiler and
/// the plan's requirements can run in the build sandbox instead.
fn falls_back_to_sandbox(plan: &BuildPlan, error: &anyhow::Error) -> bool {
    plan.sandbox
        && !plan.steps.iter().any(|step| {
            matches!(&step.kind, StepKind::Requirements { local_artifacts, .. } if !local_artifacts.is_empty())
        })
        && plan
            .steps
            .iter()
            .any(|step| matches!(step.kind, StepKind::Requirements { .. }))
        && format!("{error:#}").contains(NEEDS_COMPILER)
}

/// True when `python` holds only the cog runtime (and uv) because the
/// requirements, the runtime install and ldconfig run in the build sandbox
/// with cog's commands; the layers then serve the uv binaries and the
/// runtime's version.
pub fn requirements_in_sandbox(python: &PythonLayers) -> bool {
    python.lock.path.file_name() == Some(std::ffi::OsStr::new(RUNTIME_ONLY_LOCK))
}

/// Resolves the cog runtime alone (its lock kept in the Python cache, not in
/// the project, so the project's lock stays that of the full requirements).
fn install_runtime_only(
    plan: &BuildPlan,
    target: PythonTarget,
    settings: &PythonSettings,
    progress: ProgressFn,
) -> Result<PythonLayers, NativeError> {
    let mut inputs = python_inputs(plan).unwrap_or_default();
    inputs.requirements = String::new();
    let project_key = hex::encode(sha2::Sha256::digest(
        plan.project_dir.as_os_str().as_encoded_bytes(),
    ));
    let lock_dir = settings
        .cache_dir
        .join("runtime-locks")
        .join(&project_key[..16]);
    std::fs::create_dir_all(&lock_dir).map_err(|e| {
        NativeError::Python(anyhow::anyhow!("creating {}: {e}", lock_dir.display()))
    })?;
    let request = PythonBuildRequest {
        inputs,
        target,
        index: settings.index.clone(),
        project_dir: plan.project_dir.clone(),
        lock_path: Some(lock_dir.join(RUNTIME_ONLY_LOCK)),
        mode: settings.mode,
        cache_dir: settings.cache_dir.clone(),
        concurrency: 0,
        uv: settings.uv.clone(),
    };
    build_python_layers(&request, progress).map_err(NativeError::Python)
}

/// [`resolve_python`] for a given target (path B: the uv-managed Python).
pub fn install_python(
    plan: &BuildPlan,
    target: PythonTarget,
    settings: &PythonSettings,
    progress: ProgressFn,
) -> Result<Option<PythonLayers>, NativeError> {
    let Some(inputs) = python_inputs(plan) else {
        return Ok(None);
    };
    let request = PythonBuildRequest {
        inputs,
        target,
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

    /// The tree `uv python install 3.11` + cog's links leave in a layer,
    /// with uv's minor-version link directory in between.
    fn uv_layer() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let uv = root.join("root/.local/share/uv/python");
        let prefix = uv.join("cpython-3.11.2-linux-x86_64-gnu");
        std::fs::create_dir_all(prefix.join("bin")).unwrap();
        std::fs::create_dir_all(prefix.join("lib/python3.11/site-packages")).unwrap();
        std::fs::write(prefix.join("bin/python3.11"), b"ELF").unwrap();
        std::os::unix::fs::symlink("python3.11", prefix.join("bin/python3")).unwrap();
        std::os::unix::fs::symlink(
            "cpython-3.11.2-linux-x86_64-gnu",
            uv.join("cpython-3.11-linux-x86_64-gnu"),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        std::os::unix::fs::symlink(
            "/root/.local/share/uv/python/cpython-3.11-linux-x86_64-gnu/bin/python3",
            root.join("usr/local/bin/python"),
        )
        .unwrap();
        dir
    }

    #[test]
    fn uv_managed_python_is_found_through_its_links() {
        let layer = uv_layer();
        let provisional = PythonTarget::usr_local("3.11", (2, 35));
        let target = uv_managed_target(layer.path(), &provisional).unwrap();
        let prefix = "/root/.local/share/uv/python/cpython-3.11.2-linux-x86_64-gnu";
        assert_eq!(target.interpreter, format!("{prefix}/bin/python3.11"));
        assert_eq!(target.bin_dir, format!("{prefix}/bin"));
        assert_eq!(target.data_dir, prefix);
        assert_eq!(
            target.site_packages,
            format!("{prefix}/lib/python3.11/site-packages")
        );
        assert_eq!(target.python_version, "3.11");
        assert_eq!(target.glibc, (2, 35));
    }

    #[test]
    fn wrong_version_or_missing_link_is_an_error_with_a_hint() {
        let layer = uv_layer();
        let error = uv_managed_target(layer.path(), &PythonTarget::usr_local("3.12", (2, 35)))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is Python 3.11, the plan asks for 3.12"),
            "{error}"
        );
        assert!(error.contains("hint:"), "{error}");
        std::fs::remove_file(layer.path().join("usr/local/bin/python")).unwrap();
        let error = uv_managed_target(layer.path(), &PythonTarget::usr_local("3.11", (2, 35)))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/usr/local/bin/python is not a link"),
            "{error}"
        );
    }

    #[test]
    fn links_climbing_out_of_the_root_stay_inside_it() {
        let layer = uv_layer();
        std::os::unix::fs::symlink("../../../../../../etc/passwd", layer.path().join("escape"))
            .unwrap();
        assert_eq!(resolve_in_root(layer.path(), "/escape"), None);
    }

    #[test]
    fn staged_artifact_lines_point_back_into_the_project() {
        let text = "numpy==2.0.0\n/tmp/local_package_artifacts/dist/pkg-1.0-py3-none-any.whl";
        assert_eq!(
            unstage_artifacts(text),
            "numpy==2.0.0\n./dist/pkg-1.0-py3-none-any.whl"
        );
    }
}
