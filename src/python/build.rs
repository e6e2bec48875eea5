//! Building wheels from source distributions, VCS checkouts and local
//! directories on the host with `uv build`, for pure-Python projects only:
//! compilers are disabled, and a project that needs one is refused.

use super::target::WheelName;
use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Something to build into a wheel.
#[derive(Debug, Clone)]
pub enum BuildSource {
    /// An sdist archive on disk (`file_name` keeps its extension for uv).
    Sdist {
        /// Cached archive.
        archive: PathBuf,
        /// Original file name (e.g. `pkg-1.0.tar.gz`).
        file_name: String,
        /// sha256 of the archive (cache key).
        sha256: String,
    },
    /// A git repository at a commit.
    Git {
        /// Clone URL.
        url: String,
        /// Commit id.
        commit: String,
        /// Project subdirectory.
        subdirectory: Option<String>,
    },
    /// A local project directory.
    Directory(PathBuf),
}

/// Why a build was refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The project compiles native code.
    #[error("{package} needs a C/C++ compiler to build from source")]
    NeedsCompiler {
        /// Package name.
        package: String,
    },
    /// Anything else (uv output included).
    #[error("{package} could not be built into a wheel: {message}")]
    Failed {
        /// Package name.
        package: String,
        /// uv's output or the cause.
        message: String,
    },
}

/// Builds (or takes from `cache_dir/built/`) a pure-Python wheel.
pub fn build_wheel(
    uv: &Path,
    package: &str,
    source: &BuildSource,
    cache_dir: &Path,
    offline: bool,
) -> Result<PathBuf, BuildError> {
    let failed = |message: String| BuildError::Failed {
        package: package.to_string(),
        message,
    };
    let out_dir = cache_dir.join("built").join(cache_key(source));
    if let Some(wheel) = find_wheel(&out_dir) {
        return Ok(wheel);
    }
    if offline {
        return Err(failed(format!(
            "no built wheel in the cache {} and offline mode forbids building",
            cache_dir.display()
        )));
    }
    let scratch = tempfile::tempdir().map_err(|e| failed(e.to_string()))?;
    let src = prepare_source(source, scratch.path()).map_err(|e| failed(format!("{e:#}")))?;
    let staging = scratch.path().join("out");
    let output = Command::new(uv)
        .args(["build", "--wheel", "--out-dir"])
        .arg(&staging)
        .arg(&src)
        .env("CC", "/bin/false")
        .env("CXX", "/bin/false")
        .env("FC", "/bin/false")
        .env("CARGO", "/bin/false")
        .output()
        .map_err(|e| failed(format!("running uv build: {e}")))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr).to_string();
        if mentions_compiler(&text) {
            return Err(BuildError::NeedsCompiler {
                package: package.to_string(),
            });
        }
        return Err(failed(last_lines(&text, 15)));
    }
    let wheel = find_wheel(&staging).ok_or_else(|| failed("uv build produced no wheel".into()))?;
    let name = wheel
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let parsed = WheelName::parse(&name).map_err(|e| failed(e.to_string()))?;
    if !parsed.is_pure() {
        return Err(BuildError::NeedsCompiler {
            package: package.to_string(),
        });
    }
    std::fs::create_dir_all(out_dir.parent().expect("built/ parent"))
        .map_err(|e| failed(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::rename(&staging, &out_dir)
        .map_err(|e| failed(format!("storing the built wheel: {e}")))?;
    Ok(out_dir.join(name))
}

fn cache_key(source: &BuildSource) -> String {
    let text = match source {
        BuildSource::Sdist { sha256, .. } => format!("sdist:{sha256}"),
        BuildSource::Git {
            url,
            commit,
            subdirectory,
        } => format!(
            "git:{url}@{commit}#{}",
            subdirectory.as_deref().unwrap_or("")
        ),
        BuildSource::Directory(p) => format!("dir:{}:{}", p.display(), directory_stamp(p)),
    };
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A cheap fingerprint of a directory's files (paths, sizes, mtimes).
fn directory_stamp(dir: &Path) -> String {
    let mut h = Sha256::new();
    for e in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if let Ok(m) = e.metadata() {
            h.update(e.path().to_string_lossy().as_bytes());
            h.update(m.len().to_le_bytes());
            if let Ok(t) = m.modified() {
                h.update(format!("{t:?}").as_bytes());
            }
        }
    }
    hex::encode(h.finalize())
}

fn prepare_source(source: &BuildSource, scratch: &Path) -> Result<PathBuf> {
    match source {
        BuildSource::Sdist {
            archive, file_name, ..
        } => extract_sdist(archive, file_name, &scratch.join("sdist")),
        BuildSource::Git {
            url,
            commit,
            subdirectory,
        } => {
            let dir = scratch.join("checkout");
            run_git(
                Command::new("git")
                    .args(["clone", "--quiet", url])
                    .arg(&dir),
            )?;
            run_git(
                Command::new("git")
                    .arg("-C")
                    .arg(&dir)
                    .args(["checkout", "--quiet", commit]),
            )?;
            Ok(match subdirectory {
                Some(s) => dir.join(s),
                None => dir,
            })
        }
        BuildSource::Directory(p) => {
            let copy = scratch.join("source");
            let status = Command::new("cp")
                .arg("-a")
                .arg(p)
                .arg(&copy)
                .status()
                .context("running cp")?;
            if !status.success() {
                bail!("copying {} failed", p.display());
            }
            Ok(copy)
        }
    }
}

/// Unpacks an sdist into `dest` and returns its single top-level directory.
/// Building from our own directory (not from the archive) keeps build
/// backends away from ignore files in uv's cache directory, which made
/// hatchling drop every module.
fn extract_sdist(archive: &Path, file_name: &str, dest: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dest)?;
    let file =
        std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    if file_name.ends_with(".tar.gz") || file_name.ends_with(".tgz") {
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(dest)
            .with_context(|| format!("unpacking {file_name}"))?;
    } else if file_name.ends_with(".zip") {
        zip::ZipArchive::new(file)?
            .extract(dest)
            .with_context(|| format!("unpacking {file_name}"))?;
    } else {
        bail!("{file_name} is not a .tar.gz or .zip source distribution");
    }
    let dirs: Vec<PathBuf> = std::fs::read_dir(dest)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("{file_name} does not contain exactly one top-level directory"),
    }
}

fn run_git(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().context("running git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn find_wheel(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
}

/// True when build output shows an attempt to run a compiler.
fn mentions_compiler(text: &str) -> bool {
    [
        "/bin/false",
        "command 'gcc'",
        "error: command",
        "compiler",
        "cc1",
        "Python.h",
        "cargo",
        "rustc",
        "cmake",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
