//! Python dependencies and the Cog runtime as native layers.
//!
//! Flow: [`lock::ensure_lock`] resolves the requirements with `uv pip
//! compile` into `pylock.cogpack.toml` (or reuses it when fresh) →
//! [`fetch::fetch_all`] downloads the chosen wheels/sdists, verified and
//! cached by digest → [`build::build_wheel`] turns pure-Python sources into
//! wheels → [`wheel::install_wheel`] maps each wheel to layer entries →
//! three entry lists (dependencies, cog runtime, uv binaries) plus the
//! `pip freeze` text the image will print.
//!
//! Entry point: [`build_python_layers`].

pub mod build;
pub mod fetch;
pub mod freeze;
pub mod lock;
pub mod target;
pub mod wheel;

pub use fetch::{FetchEvent, FetchSettings};
pub use freeze::{FrozenDist, pip_freeze};
pub use lock::{IndexSettings, Lock, LockMode, PythonInputs, Role};
pub use target::{BaseDistribution, PythonTarget};
pub use wheel::{DirectUrl, InstalledWheel};

use crate::layer::Entry;
use anyhow::{Context, Result, bail};
use lock::{Artifact, LockedPackage, Source};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use target::{WheelName, canonical_name};

/// Where local artifacts named in the requirements appear in cog's image
/// (`/tmp/local_package_artifacts/<project-relative path>`); used for
/// `direct_url.json` so `pip freeze` prints what it would under cog.
pub const LOCAL_ARTIFACTS_DIR: &str = "/tmp/local_package_artifacts";

/// Everything [`build_python_layers`] needs.
#[derive(Debug, Clone)]
pub struct PythonBuildRequest {
    /// What to install.
    pub inputs: PythonInputs,
    /// Where and for which interpreter.
    pub target: PythonTarget,
    /// Index URLs and credentials.
    pub index: IndexSettings,
    /// Project directory (relative requirement paths are resolved here).
    pub project_dir: PathBuf,
    /// Lock file path; `None` means `<project_dir>/pylock.cogpack.toml`.
    pub lock_path: Option<PathBuf>,
    /// Lock usage.
    pub mode: LockMode,
    /// Cache directory for wheels (by digest) and built wheels.
    pub cache_dir: PathBuf,
    /// Parallel downloads (0 means 8).
    pub concurrency: usize,
    /// Explicit `uv` binary; `None` searches PATH.
    pub uv: Option<PathBuf>,
}

/// The three Python layers and what they contain.
#[derive(Debug, Clone)]
pub struct PythonLayers {
    /// Requirements and dependencies (site-packages, scripts, data).
    pub dependencies: Vec<Entry>,
    /// `cog` and `coglet`.
    pub cog_runtime: Vec<Entry>,
    /// `uv` and `uvx` in the bin directory.
    pub uv_binaries: Vec<Entry>,
    /// Installed distributions (dependencies then runtime), sorted by name.
    pub installed: Vec<FrozenDist>,
    /// `python -m pip freeze` output of the final image (base + installed).
    pub pip_freeze: String,
    /// Non-fatal notes (paths overwritten by a later wheel, skipped base pins).
    pub warnings: Vec<String>,
    /// The lock that was used.
    pub lock: Lock,
}

/// How one locked package is obtained.
enum Plan {
    /// A wheel to fetch.
    Wheel(Artifact),
    /// A source to fetch (when an archive) and build.
    Source(SourcePlan),
}

enum SourcePlan {
    Sdist(Artifact),
    Git {
        url: String,
        commit: String,
        subdirectory: Option<String>,
    },
    Directory(PathBuf),
}

/// Resolves (or reads the lock), fetches, builds and installs; returns the
/// entries of the three layers. `progress` receives download events.
pub fn build_python_layers(
    req: &PythonBuildRequest,
    progress: fetch::ProgressFn,
) -> Result<PythonLayers> {
    let lock_path = req
        .lock_path
        .clone()
        .unwrap_or_else(|| req.project_dir.join(lock::LOCK_FILE_NAME));
    let lock = lock::ensure_lock(
        &req.inputs,
        &req.target,
        &req.index,
        &req.project_dir,
        &lock_path,
        req.mode,
        req.uv.as_deref(),
    )?;
    let mut warnings = Vec::new();
    let packages = packages_to_install(&lock, &req.target, &mut warnings);
    let supported = req.target.supported_tags()?;
    let plans = packages
        .iter()
        .map(|p| plan_package(p, &supported, lock.base_dir()))
        .collect::<Result<Vec<_>>>()?;
    let settings = fetch_settings(req)?;
    let fetched = fetch_artifacts(&packages, &plans, lock.base_dir(), &settings, progress)?;
    let wheels = obtain_wheels(req, &packages, plans, fetched)?;
    let installed: Vec<(Role, InstalledWheel)> = packages
        .par_iter()
        .zip(wheels.par_iter())
        .map(|(p, w)| {
            let direct = direct_url_for(p, &req.project_dir, lock.base_dir());
            wheel::install_wheel(w, &req.target, direct)
                .map(|i| (p.role, i))
                .with_context(|| format!("installing {}", p.name))
        })
        .collect::<Result<_>>()?;
    assemble(req, lock, installed, warnings)
}

/// Locked packages minus those the base image already has.
fn packages_to_install(
    lock: &Lock,
    target: &PythonTarget,
    warnings: &mut Vec<String>,
) -> Vec<LockedPackage> {
    let base: BTreeMap<String, &str> = target
        .base_distributions
        .iter()
        .map(|d| (canonical_name(&d.name), d.version.as_str()))
        .collect();
    let mut out: Vec<LockedPackage> = Vec::new();
    for p in &lock.packages {
        match (p.role, base.get(&canonical_name(&p.name))) {
            (Role::UvBinaries, _) | (_, None) => out.push(p.clone()),
            (_, Some(v)) => {
                if p.version.as_deref() != Some(*v) {
                    warnings.push(format!(
                        "{} {} is locked but the base image has {v}; keeping the base image's copy",
                        p.name,
                        p.version.as_deref().unwrap_or("?")
                    ));
                }
            }
        }
    }
    out.sort_by_key(|p| (p.role, canonical_name(&p.name)));
    out
}

/// Picks the best wheel for the target, or the source to build.
fn plan_package(p: &LockedPackage, supported: &[String], base_dir: &Path) -> Result<Plan> {
    let best_wheel = |wheels: &[Artifact]| {
        wheels
            .iter()
            .filter_map(|w| {
                WheelName::parse(&w.file_name())
                    .ok()
                    .and_then(|n| n.rank(supported))
                    .map(|r| (r, w))
            })
            .min_by_key(|(r, _)| *r)
            .map(|(_, w)| w.clone())
    };
    match &p.source {
        Source::Index { wheels, sdist } => match (best_wheel(wheels), sdist) {
            (Some(w), _) => Ok(Plan::Wheel(w)),
            (None, Some(s)) => Ok(Plan::Source(SourcePlan::Sdist(s.clone()))),
            (None, None) => bail!(
                "{} {}: none of its {} wheels fits python {} on {} and there is no sdist. Hint: pick a version that publishes a compatible wheel, or use --backend docker",
                p.name,
                p.version.as_deref().unwrap_or(""),
                wheels.len(),
                supported[0].split('-').next().unwrap_or(""),
                supported[0].rsplit('-').next().unwrap_or("")
            ),
        },
        Source::Archive(a) if a.file_name().ends_with(".whl") => {
            if best_wheel(std::slice::from_ref(a)).is_none() {
                bail!(
                    "{}: wheel {} does not fit the target image's Python and platform. Hint: use a wheel built for it",
                    p.name,
                    a.file_name()
                );
            }
            Ok(Plan::Wheel(a.clone()))
        }
        Source::Archive(a) => Ok(Plan::Source(SourcePlan::Sdist(a.clone()))),
        Source::Vcs {
            url,
            commit,
            subdirectory,
            ..
        } => Ok(Plan::Source(SourcePlan::Git {
            url: url.clone(),
            commit: commit.clone(),
            subdirectory: subdirectory.clone(),
        })),
        Source::Directory { path } => Ok(Plan::Source(SourcePlan::Directory(base_dir.join(path)))),
    }
}

fn fetch_settings(req: &PythonBuildRequest) -> Result<FetchSettings> {
    let mut s = FetchSettings::new(req.cache_dir.join("wheels"));
    s.offline = req.mode == LockMode::Offline;
    s.concurrency = req.concurrency;
    for url in req
        .index
        .index_url
        .iter()
        .chain(&req.index.extra_index_urls)
    {
        s.add_credentials_from_url(url);
    }
    for line in req.inputs.requirements.lines() {
        for token in line.split_whitespace() {
            let token = match token.strip_prefix("--") {
                Some(option) => option.split_once('=').map(|(_, v)| v).unwrap_or(token),
                None => token,
            };
            if token.contains("://") {
                s.add_credentials_from_url(token);
            }
        }
    }
    if let Some(netrc) = &req.index.netrc {
        s.add_netrc(netrc)?;
    }
    Ok(s)
}

/// Fetches every archive the plans need; returns one path per plan (None
/// for plans without an archive).
fn fetch_artifacts(
    packages: &[LockedPackage],
    plans: &[Plan],
    base_dir: &Path,
    settings: &FetchSettings,
    progress: fetch::ProgressFn,
) -> Result<Vec<Option<PathBuf>>> {
    let mut items = Vec::new();
    let mut slots = Vec::new();
    for (p, plan) in packages.iter().zip(plans) {
        let artifact = match plan {
            Plan::Wheel(a) | Plan::Source(SourcePlan::Sdist(a)) => a,
            Plan::Source(_) => {
                slots.push(None);
                continue;
            }
        };
        let mut artifact = artifact.clone();
        artifact.path = artifact
            .path
            .map(|rel| base_dir.join(rel).to_string_lossy().into_owned());
        slots.push(Some(items.len()));
        items.push(fetch::FetchItem {
            package: p.name.clone(),
            artifact,
        });
    }
    let paths = fetch::fetch_all(&items, settings, progress)?;
    Ok(slots
        .into_iter()
        .map(|s| s.map(|i| paths[i].clone()))
        .collect())
}

/// Turns fetched wheels and built sources into one wheel path per package;
/// every build refusal is reported together.
fn obtain_wheels(
    req: &PythonBuildRequest,
    packages: &[LockedPackage],
    plans: Vec<Plan>,
    fetched: Vec<Option<PathBuf>>,
) -> Result<Vec<PathBuf>> {
    let mut wheels = Vec::new();
    let mut needs_compiler = Vec::new();
    let mut failures = Vec::new();
    let mut uv: Option<PathBuf> = None;
    for ((p, plan), path) in packages.iter().zip(plans).zip(fetched) {
        let source = match plan {
            Plan::Wheel(_) => {
                wheels.push(path.context("wheel was not fetched")?);
                continue;
            }
            Plan::Source(SourcePlan::Sdist(a)) => {
                let archive = path.context("sdist was not fetched")?;
                let sha256 = match &a.sha256 {
                    Some(h) => h.clone(),
                    None => fetch::sha256_file(&archive)?,
                };
                build::BuildSource::Sdist {
                    archive,
                    file_name: a.file_name(),
                    sha256,
                }
            }
            Plan::Source(SourcePlan::Git {
                url,
                commit,
                subdirectory,
            }) => build::BuildSource::Git {
                url,
                commit,
                subdirectory,
            },
            Plan::Source(SourcePlan::Directory(d)) => build::BuildSource::Directory(d),
        };
        if uv.is_none() {
            uv = Some(lock::find_uv(req.uv.as_deref())?);
        }
        match build::build_wheel(
            uv.as_deref().expect("set above"),
            &p.name,
            &source,
            &req.cache_dir,
            req.mode == LockMode::Offline,
        ) {
            Ok(w) => wheels.push(w),
            Err(build::BuildError::NeedsCompiler { package }) => needs_compiler.push(package),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !needs_compiler.is_empty() {
        failures.push(format!(
            "{} must be compiled from source (no compatible wheel is published), which the native builder does not do. \
             Hint: pin a version with a manylinux wheel, or build with --backend docker",
            needs_compiler.join(", ")
        ));
    }
    if !failures.is_empty() {
        bail!(
            "building Python packages from source failed:\n  - {}",
            failures.join("\n  - ")
        );
    }
    Ok(wheels)
}

/// PEP 610 origin for direct references (not for index packages).
fn direct_url_for(p: &LockedPackage, project_dir: &Path, base_dir: &Path) -> Option<DirectUrl> {
    match &p.source {
        Source::Index { .. } => None,
        Source::Archive(a) => {
            let url = match (&a.url, &a.path) {
                (Some(u), _) => split_hash_fragment(&fetch::strip_credentials(u)).0,
                (None, Some(path)) => image_file_url(p.role, &base_dir.join(path), project_dir),
                (None, None) => return None,
            };
            let hash = a.url.as_deref().and_then(|u| split_hash_fragment(u).1);
            Some(DirectUrl::Archive { url, hash })
        }
        Source::Vcs {
            url,
            commit,
            requested_revision,
            ..
        } => Some(DirectUrl::Vcs {
            vcs: "git".into(),
            url: fetch::strip_credentials(url),
            commit_id: commit.clone(),
            requested_revision: requested_revision.clone(),
        }),
        Source::Directory { path } => Some(DirectUrl::Dir {
            url: image_file_url(p.role, &base_dir.join(path), project_dir),
        }),
    }
}

/// `https://x/y.whl#sha256=abc` → (`https://x/y.whl`, `Some("sha256=abc")`).
fn split_hash_fragment(url: &str) -> (String, Option<String>) {
    match url.split_once('#') {
        Some((base, frag)) => (
            base.to_string(),
            frag.starts_with("sha256=").then(|| frag.to_string()),
        ),
        None => (url.to_string(), None),
    }
}

/// The `file://` URL a local artifact has inside cog's image.
fn image_file_url(role: Role, host_path: &Path, project_dir: &Path) -> String {
    let norm = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let file = norm(host_path);
    if role == Role::CogRuntime {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return format!("file:///tmp/{name}");
    }
    match file.strip_prefix(norm(project_dir)) {
        Ok(rel) => format!("file://{LOCAL_ARTIFACTS_DIR}/{}", rel.to_string_lossy()),
        Err(_) => format!("file://{}", file.display()),
    }
}

/// Splits installed wheels into the three layers and computes `pip freeze`.
fn assemble(
    req: &PythonBuildRequest,
    lock: Lock,
    installed: Vec<(Role, InstalledWheel)>,
    mut warnings: Vec<String>,
) -> Result<PythonLayers> {
    let mut layers: BTreeMap<Role, BTreeMap<String, (String, Entry)>> = BTreeMap::new();
    let mut dists = Vec::new();
    for (role, wheel) in installed {
        let layer = layers.entry(role).or_default();
        let entries = if role == Role::UvBinaries {
            uv_binaries(&wheel, &req.target)?
        } else {
            wheel.entries
        };
        for e in entries {
            if let Some((previous, _)) =
                layer.insert(e.path.clone(), (wheel.name.clone(), e.clone()))
            {
                warnings.push(format!(
                    "/{} from {} overwrites the file installed by {previous}",
                    e.path, wheel.name
                ));
            }
        }
        if role != Role::UvBinaries {
            dists.push(FrozenDist {
                name: wheel.name,
                version: wheel.version,
                direct_url: wheel.direct_url,
            });
        }
    }
    let mut take = |role| {
        layers
            .remove(&role)
            .map(|m| m.into_values().map(|(_, e)| e).collect())
            .unwrap_or_default()
    };
    let (dependencies, cog_runtime, uv_binaries) = (
        take(Role::Dependencies),
        take(Role::CogRuntime),
        take(Role::UvBinaries),
    );
    let mut all: Vec<FrozenDist> = req
        .target
        .base_distributions
        .iter()
        .map(|b| FrozenDist {
            name: b.name.clone(),
            version: b.version.clone(),
            direct_url: None,
        })
        .collect();
    all.extend(dists.iter().cloned());
    let pip_freeze = freeze::pip_freeze(&all, req.target.version_pair()?);
    Ok(PythonLayers {
        dependencies,
        cog_runtime,
        uv_binaries,
        installed: dists,
        pip_freeze,
        warnings,
        lock,
    })
}

/// Only `uv` and `uvx` from the uv wheel's scripts, in the bin directory.
fn uv_binaries(wheel: &InstalledWheel, target: &PythonTarget) -> Result<Vec<Entry>> {
    let bin = target.bin_dir.trim_matches('/');
    let wanted = [format!("{bin}/uv"), format!("{bin}/uvx")];
    let out: Vec<Entry> = wheel
        .entries
        .iter()
        .filter(|e| wanted.contains(&e.path))
        .cloned()
        .collect();
    if out.len() != 2 {
        bail!(
            "the uv {} wheel does not contain both uv and uvx scripts; cannot provide /usr/local/bin/uv",
            wheel.version
        );
    }
    Ok(out)
}

/// Writes entries into a directory (for tests, debugging and benches):
/// directories, files (streamed) and symlinks; modes applied.
pub fn materialize(entries: &[Entry], root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for e in entries {
        let dest = root.join(&e.path);
        match &e.kind {
            crate::layer::EntryKind::Dir => std::fs::create_dir_all(&dest)?,
            crate::layer::EntryKind::File { source, .. } => {
                std::fs::create_dir_all(dest.parent().context("entry without parent")?)?;
                let mut out = std::fs::File::create(&dest)?;
                match source {
                    crate::layer::FileSource::Path(p) => {
                        std::io::copy(&mut std::fs::File::open(p)?, &mut out)?;
                    }
                    crate::layer::FileSource::Bytes(b) => std::io::Write::write_all(&mut out, b)?,
                    crate::layer::FileSource::Open(open) => {
                        std::io::copy(&mut open()?, &mut out)?;
                    }
                }
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(e.mode))?;
            }
            crate::layer::EntryKind::Symlink { target } => {
                std::fs::create_dir_all(dest.parent().context("entry without parent")?)?;
                std::os::unix::fs::symlink(target, &dest)?;
            }
            crate::layer::EntryKind::Hardlink { target } => {
                std::fs::hard_link(root.join(target), &dest)?
            }
            crate::layer::EntryKind::Whiteout => {}
        }
    }
    Ok(())
}
