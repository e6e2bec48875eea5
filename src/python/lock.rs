//! Resolution with the `uv` binary and the project lock file
//! (`pylock.cogpack.toml`, PEP 751 format as written by `uv pip compile`,
//! plus a `[tool.cogpack]` table recording what it was resolved from).

use super::target::{PythonTarget, canonical_name};
use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// File name of the lock file in the project directory.
pub const LOCK_FILE_NAME: &str = "pylock.cogpack.toml";

/// The uv version whose `uv`/`uvx` binaries go into the image (cog's pin).
pub const UV_VERSION: &str = "0.9.26";

/// Which layer a locked package belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// User requirements and their dependencies (including cog's dependencies).
    Dependencies,
    /// `cog` and `coglet`.
    CogRuntime,
    /// The `uv` wheel whose binaries are copied to the bin directory.
    UvBinaries,
}

/// One downloadable file named in the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Absolute URL (`https://…`, `file://…`), when remote.
    pub url: Option<String>,
    /// Path relative to the lock file's directory, when local.
    pub path: Option<String>,
    /// Expected SHA-256 (hex).
    pub sha256: Option<String>,
    /// Expected size in bytes.
    pub size: Option<u64>,
}

impl Artifact {
    /// The file name (last path or URL component, without query/fragment).
    pub fn file_name(&self) -> String {
        let raw = self
            .url
            .as_deref()
            .or(self.path.as_deref())
            .unwrap_or_default();
        let raw = raw.split(['#', '?']).next().unwrap_or(raw);
        raw.rsplit('/').next().unwrap_or(raw).to_string()
    }
}

/// Where a locked package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// From an index or find-links: candidate wheels and an optional sdist.
    Index {
        /// Candidate wheels for all platforms the index offers.
        wheels: Vec<Artifact>,
        /// The source distribution, if any.
        sdist: Option<Artifact>,
    },
    /// A direct URL or local path to a wheel or sdist.
    Archive(Artifact),
    /// A VCS repository at an exact commit.
    Vcs {
        /// Repository URL (no `git+` prefix).
        url: String,
        /// Commit to build.
        commit: String,
        /// Revision asked for, if any.
        requested_revision: Option<String>,
        /// Subdirectory holding the project.
        subdirectory: Option<String>,
    },
    /// A local source directory (relative to the lock file).
    Directory {
        /// Directory path.
        path: String,
    },
}

/// A package pinned by the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    /// Name as the resolver wrote it (normalised).
    pub name: String,
    /// Pinned version (absent for some direct references).
    pub version: Option<String>,
    /// Target layer.
    pub role: Role,
    /// Origin.
    pub source: Source,
}

/// A parsed lock file.
#[derive(Debug, Clone)]
pub struct Lock {
    /// Path of the lock file.
    pub path: PathBuf,
    /// Fingerprint of the inputs it was resolved from.
    pub inputs_sha256: String,
    /// Locked packages in file order.
    pub packages: Vec<LockedPackage>,
}

impl Lock {
    /// Directory relative paths in the lock are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// What to install, as handed over by the configuration module.
#[derive(Debug, Clone, Default)]
pub struct PythonInputs {
    /// Rewritten requirements text (pip requirements-file syntax; option lines
    /// such as `--extra-index-url` allowed). Relative paths are relative to
    /// the project directory.
    pub requirements: String,
    /// Cog runtime requirement strings: `cog==0.17.0`, `coglet==…`, a URL,
    /// or a local wheel path.
    pub cog_runtime: Vec<String>,
    /// Allow pre-releases (cog's `--pre`).
    pub prerelease: bool,
}

/// Package index settings (from the caller's PIP_INDEX_URL / UV_INDEX_URL /
/// flags). Credentials inside URLs are used for downloads and never printed.
#[derive(Debug, Clone, Default)]
pub struct IndexSettings {
    /// Replaces the default index.
    pub index_url: Option<String>,
    /// Additional indexes.
    pub extra_index_urls: Vec<String>,
    /// A netrc file with `machine/login/password` credentials.
    pub netrc: Option<PathBuf>,
}

/// How the lock may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Re-resolve when the lock is missing or stale.
    Update,
    /// Fail when the lock is missing or stale (`--locked`).
    Locked,
    /// Like `Locked`, and never touch the network.
    Offline,
}

/// Fingerprint of everything a resolution depends on.
pub fn inputs_fingerprint(
    inputs: &PythonInputs,
    target: &PythonTarget,
    index: &IndexSettings,
    project_dir: &Path,
) -> String {
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        h.update(name.as_bytes());
        h.update((value.len() as u64).to_le_bytes());
        h.update(value);
    };
    field("format", b"cogpack-python-lock-v1");
    field("requirements", inputs.requirements.as_bytes());
    for spec in &inputs.cog_runtime {
        field("runtime", spec.as_bytes());
    }
    field("prerelease", &[inputs.prerelease as u8]);
    field("python", target.python_version.as_bytes());
    field("platform", target.uv_platform().as_bytes());
    for d in &target.base_distributions {
        field("base", format!("{}=={}", d.name, d.version).as_bytes());
    }
    for url in index.index_url.iter().chain(&index.extra_index_urls) {
        field("index", super::fetch::strip_credentials(url).as_bytes());
    }
    field("uv", UV_VERSION.as_bytes());
    for local in local_paths(inputs, project_dir) {
        if let Ok(bytes) = std::fs::read(&local) {
            field("local", &Sha256::digest(bytes));
        }
    }
    hex::encode(h.finalize())
}

/// Local files named by requirement lines (wheels and sdists in the project).
fn local_paths(inputs: &PythonInputs, project_dir: &Path) -> Vec<PathBuf> {
    let lines = inputs
        .requirements
        .lines()
        .chain(inputs.cog_runtime.iter().map(String::as_str));
    lines
        .filter_map(|l| {
            let token = l.split('#').next()?.trim();
            let token = token.rsplit(" @ ").next()?.trim();
            let token = token.strip_prefix("file://").unwrap_or(token);
            let is_archive = [".whl", ".tar.gz", ".zip"]
                .iter()
                .any(|s| token.ends_with(s));
            (is_archive && !token.contains("://")).then(|| project_dir.join(token))
        })
        .filter(|p| p.is_file())
        .collect()
}

/// Finds `uv` on PATH (or uses the given path) and checks it runs.
pub fn find_uv(explicit: Option<&Path>) -> Result<PathBuf> {
    let candidate = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("uv")).find(|p| p.is_file()))
            .context("the `uv` resolver was not found on PATH. Hint: install it with `pip install uv` (or see https://docs.astral.sh/uv/) and retry")?,
    };
    let ok = Command::new(&candidate)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "{} --version failed. Hint: reinstall uv with `pip install uv`",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// Reads the lock when fresh, else re-resolves (mode `Update`) or fails.
pub fn ensure_lock(
    inputs: &PythonInputs,
    target: &PythonTarget,
    index: &IndexSettings,
    project_dir: &Path,
    lock_path: &Path,
    mode: LockMode,
    uv: Option<&Path>,
) -> Result<Lock> {
    let fingerprint = inputs_fingerprint(inputs, target, index, project_dir);
    let existing = if lock_path.exists() {
        Some(read_lock(lock_path)?)
    } else {
        None
    };
    match existing {
        Some(lock) if lock.inputs_sha256 == fingerprint => return Ok(lock),
        Some(_) if mode != LockMode::Update => bail!(
            "{} is out of date: the requirements, cog runtime, python version, base packages or indexes changed since it was written. \
             Hint: run the build without --locked/--offline to re-resolve",
            lock_path.display()
        ),
        None if mode != LockMode::Update => bail!(
            "{} does not exist and --locked/--offline forbids resolving. Hint: run the build once without --locked/--offline to create it",
            lock_path.display()
        ),
        _ => {}
    }
    let uv = find_uv(uv)?;
    resolve(
        &uv,
        inputs,
        target,
        index,
        project_dir,
        lock_path,
        &fingerprint,
    )?;
    read_lock(lock_path)
}

/// Runs `uv pip compile` twice (project requirements + cog runtime, then the
/// uv binary wheel) and writes the combined lock atomically.
fn resolve(
    uv: &Path,
    inputs: &PythonInputs,
    target: &PythonTarget,
    index: &IndexSettings,
    project_dir: &Path,
    lock_path: &Path,
    fingerprint: &str,
) -> Result<()> {
    let lock_dir = lock_path.parent().context("lock path has no directory")?;
    let mut requirements = inputs.requirements.clone();
    for spec in &inputs.cog_runtime {
        requirements.push('\n');
        requirements.push_str(spec);
    }
    let main = compile(
        uv,
        &requirements,
        target,
        index,
        project_dir,
        lock_dir,
        inputs.prerelease,
    )?;
    let uv_part = compile(
        uv,
        &format!("uv=={UV_VERSION}"),
        target,
        index,
        project_dir,
        lock_dir,
        false,
    )?;
    // An empty resolution is written as `packages = []`, which would clash
    // with the `[[packages]]` table appended below.
    let mut text: String = main
        .lines()
        .filter(|l| l.trim() != "packages = []")
        .map(|l| format!("{l}\n"))
        .collect();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let uv_packages = uv_part
        .find("[[packages]]")
        .map(|i| &uv_part[i..])
        .unwrap_or_default();
    text.push('\n');
    text.push_str(uv_packages.trim_end());
    text.push_str("\n\n[packages.tool.cogpack]\nrole = \"uv-binaries\"\n");
    text.push_str(&format!(
        "\n[tool.cogpack]\ninputs-sha256 = \"{fingerprint}\"\nuv-version = \"{UV_VERSION}\"\n"
    ));
    let mut tmp = tempfile::NamedTempFile::new_in(lock_dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.persist(lock_path)
        .with_context(|| format!("writing {}", lock_path.display()))?;
    Ok(())
}

/// One `uv pip compile` run; returns the pylock text.
fn compile(
    uv: &Path,
    requirements: &str,
    target: &PythonTarget,
    index: &IndexSettings,
    project_dir: &Path,
    lock_dir: &Path,
    prerelease: bool,
) -> Result<String> {
    let scratch = tempfile::Builder::new()
        .prefix(".cogpack-resolve")
        .tempdir_in(lock_dir)?;
    let out = scratch.path().join("pylock.toml");
    let constraints = scratch.path().join("constraints.txt");
    let pins: String = target
        .base_distributions
        .iter()
        .map(|d| format!("{}=={}\n", d.name, d.version))
        .collect();
    std::fs::write(&constraints, pins)?;
    let mut cmd = Command::new(uv);
    cmd.current_dir(project_dir)
        .args([
            "pip",
            "compile",
            "-",
            "--quiet",
            "--no-header",
            "--generate-hashes",
            "--format",
            "pylock.toml",
        ])
        .args(["--index-strategy", "unsafe-best-match", "--python-platform"])
        .arg(target.uv_platform())
        .args(["--python-version", &target.python_version, "-o"])
        .arg(&out)
        .arg("-c")
        .arg(&constraints);
    // Through the environment, not argv: index URLs may carry credentials
    // and argv is visible to every user of the machine.
    if let Some(url) = &index.index_url {
        cmd.env("UV_INDEX_URL", url);
    }
    if !index.extra_index_urls.is_empty() {
        cmd.env("UV_EXTRA_INDEX_URL", index.extra_index_urls.join(" "));
    }
    if let Some(netrc) = &index.netrc {
        cmd.env("NETRC", netrc);
    }
    if prerelease {
        cmd.args(["--prerelease", "allow"]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("uv stdin")?
        .write_all(requirements.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "resolving Python requirements failed; uv said:\n{}\nHint: fix the requirement named above (check package names, versions and index URLs) and retry",
            stderr.trim_end()
        );
    }
    let text = std::fs::read_to_string(&out)?;
    Ok(relocate_paths(&text))
}

/// uv writes local paths relative to its output file, which lives one
/// directory below the lock; rewrite `path = "../x"` to `path = "x"`.
fn relocate_paths(text: &str) -> String {
    text.replace("path = \"../", "path = \"")
}

/// Parses a lock file.
pub fn read_lock(path: &Path) -> Result<Lock> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| {
        format!(
            "{} is not valid TOML. Hint: delete it and build again to re-resolve",
            path.display()
        )
    })?;
    let inputs_sha256 = doc
        .get("tool")
        .and_then(|t| t.get("cogpack"))
        .and_then(|t| t.get("inputs-sha256"))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let mut packages = Vec::new();
    for (i, p) in doc
        .get("packages")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .enumerate()
    {
        packages
            .push(parse_package(p).with_context(|| format!("{}: packages[{i}]", path.display()))?);
    }
    Ok(Lock {
        path: path.to_path_buf(),
        inputs_sha256,
        packages,
    })
}

fn parse_package(p: &toml::Value) -> Result<LockedPackage> {
    let name = p
        .get("name")
        .and_then(|v| v.as_str())
        .context("missing name")?
        .to_string();
    let version = p
        .get("version")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let tool_role = p
        .get("tool")
        .and_then(|t| t.get("cogpack"))
        .and_then(|t| t.get("role"))
        .and_then(|v| v.as_str());
    let role = match (tool_role, canonical_name(&name).as_str()) {
        (Some("uv-binaries"), _) => Role::UvBinaries,
        (_, "cog" | "coglet") => Role::CogRuntime,
        _ => Role::Dependencies,
    };
    let source = if let Some(vcs) = p.get("vcs") {
        Source::Vcs {
            url: str_field(vcs, "url").context("vcs.url missing")?,
            commit: str_field(vcs, "commit-id").context("vcs.commit-id missing")?,
            requested_revision: str_field(vcs, "requested-revision"),
            subdirectory: str_field(vcs, "subdirectory"),
        }
    } else if let Some(a) = p.get("archive") {
        Source::Archive(parse_artifact(a))
    } else if let Some(d) = p.get("directory") {
        Source::Directory {
            path: str_field(d, "path").context("directory.path missing")?,
        }
    } else {
        let wheels = p
            .get("wheels")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(parse_artifact)
            .collect();
        Source::Index {
            wheels,
            sdist: p.get("sdist").map(parse_artifact),
        }
    };
    Ok(LockedPackage {
        name,
        version,
        role,
        source,
    })
}

fn str_field(v: &toml::Value, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(str::to_string)
}

fn parse_artifact(v: &toml::Value) -> Artifact {
    Artifact {
        url: str_field(v, "url"),
        path: str_field(v, "path"),
        sha256: v
            .get("hashes")
            .and_then(|h| h.get("sha256"))
            .and_then(|x| x.as_str())
            .map(str::to_string),
        size: v.get("size").and_then(|x| x.as_integer()).map(|n| n as u64),
    }
}
