//! Python requirements: reading a requirements file like cog (§1.7), local
//! wheel/sdist artifacts, and the rewriting cog applies before `pip install`
//! (§2.6: torch/torchvision/tensorflow variants, index URLs, cog/coglet removal).

use super::{ConfigError, LocalArtifact, Problem, Project, catalog, version};
use regex::Regex;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

/// Where local artifacts are copied inside the build (§4.1 F9).
pub const LOCAL_ARTIFACTS_CONTAINER_DIR: &str = "/tmp/local_package_artifacts";

static EDITABLE_DOT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*-e\s+\.\s*$").expect("valid regex"));
static PACKAGE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-zA-Z0-9_\-\.]+(?:\[[^\]]+\])?)").expect("valid regex"));
static VERSION_SPEC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[<>=!~]=?\s*([^\s,;|]+)").expect("valid regex"));
static AT_REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"@\s*([^\s]+)").expect("valid regex"));
static PINNED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:([a-zA-Z0-9\-_]+)==([^ ]+)|--find-links=([^\s]+)|-f\s+([^\s]+)|--extra-index-url=([^\s]+))",
    )
    .expect("valid regex")
});

/// Splits requirements text into lines the way cog reads a requirements file:
/// CRLF tolerated, `\`-continuations joined, blank lines, `#` comment lines and
/// `-e .` dropped, and everything from the first `#` cut.
pub fn parse_requirements_text(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for physical in text.split('\n') {
        let physical = physical.strip_suffix('\r').unwrap_or(physical);
        pending.push_str(physical);
        if pending.ends_with('\\') {
            pending.pop();
            continue;
        }
        push_requirement_line(&mut lines, &pending);
        pending.clear();
    }
    push_requirement_line(&mut lines, &pending);
    lines
}

fn push_requirement_line(lines: &mut Vec<String>, raw: &str) {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') || EDITABLE_DOT.is_match(line) {
        return;
    }
    let line = match line.find('#') {
        Some(index) => line[..index].trim(),
        None => line,
    };
    if !line.is_empty() {
        lines.push(line.to_string());
    }
}

/// Reads and parses a requirements file.
pub fn read_requirements(path: &Path) -> std::io::Result<Vec<String>> {
    let bytes = std::fs::read(path)?;
    Ok(parse_requirements_text(&String::from_utf8_lossy(&bytes)))
}

/// The package name at the start of a requirement line (with extras), or "".
pub fn package_name(line: &str) -> String {
    PACKAGE_NAME
        .captures(line)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
        .unwrap_or_default()
}

/// Every version mentioned by a requirement line: specifier versions, then an
/// `@ reference`.
pub fn versions(line: &str) -> Vec<String> {
    let mut found: Vec<String> = VERSION_SPEC
        .captures_iter(line)
        .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
        .collect();
    if let Some(m) = AT_REFERENCE.captures(line).and_then(|c| c.get(1)) {
        found.push(m.as_str().to_string());
    }
    found
}

/// The first version of the first requirement named exactly `name`
/// (local-artifact lines skipped): `Some("")` when listed without a version.
pub fn package_version(requirements: &[String], name: &str) -> Option<String> {
    requirements
        .iter()
        .filter(|line| !is_local_artifact_requirement(line))
        .find(|line| package_name(line) == name)
        .map(|line| versions(line).into_iter().next().unwrap_or_default())
}

/// A `name==version` pin with the index options written on the same line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// Package name.
    pub name: String,
    /// Pinned version (may carry a `+local` tag).
    pub version: String,
    /// `--find-links=X` / `-f X` values.
    pub find_links: Vec<String>,
    /// `--extra-index-url=X` values.
    pub extra_index_urls: Vec<String>,
}

/// Splits a pinned requirement like cog's `SplitPinnedPythonRequirement`;
/// `None` when the line has no `name==version`.
pub fn split_pinned(line: &str) -> Option<Pinned> {
    let mut pinned = Pinned {
        name: String::new(),
        version: String::new(),
        find_links: Vec::new(),
        extra_index_urls: Vec::new(),
    };
    for caps in PINNED.captures_iter(line) {
        let group = |i: usize| caps.get(i).map(|m| m.as_str().to_string());
        if let Some(name) = group(1) {
            pinned.name = name;
        }
        if let Some(version) = group(2) {
            pinned.version = version;
        }
        pinned.find_links.extend(group(3));
        pinned.find_links.extend(group(4));
        pinned.extra_index_urls.extend(group(5));
    }
    (!pinned.name.is_empty() && !pinned.version.is_empty()).then_some(pinned)
}

// ---------------------------------------------------------------------------
// Local artifacts (§1.7).

fn is_remote(line: &str) -> bool {
    line.contains("://") || line.starts_with("git+")
}

fn is_file_url(line: &str) -> bool {
    line.to_lowercase().starts_with("file:")
}

fn is_local_path(line: &str) -> bool {
    line.starts_with('/') || line.starts_with("./") || line.starts_with("../")
}

fn has_artifact_suffix(path: &str) -> bool {
    let lower = path.to_lowercase();
    [".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"]
        .iter()
        .any(|suffix| lower.ends_with(suffix))
}

fn is_local_artifact(path: &str) -> bool {
    !is_remote(path) && (is_local_path(path) || has_artifact_suffix(path))
}

fn option_value<'a>(line: &'a str, option: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(option)?;
    if rest.is_empty() {
        return None;
    }
    let rest = if option.starts_with("--") {
        match rest.as_bytes()[0] {
            b'=' => &rest[1..],
            b' ' | b'\t' => rest,
            _ => return None,
        }
    } else {
        rest
    };
    Some(rest.trim())
}

fn unsupported_local_option(line: &str) -> Option<&'static str> {
    ["--find-links", "--requirement", "-f", "-r"]
        .into_iter()
        .find(|option| {
            option_value(line, option)
                .is_some_and(|v| !v.is_empty() && (is_file_url(v) || !is_remote(v)))
        })
}

fn has_inline_option(line: &str) -> bool {
    line.char_indices()
        .filter(|(_, c)| *c == ' ' || *c == '\t')
        .any(|(i, _)| {
            let rest = line[i..].trim_start_matches([' ', '\t']);
            is_local_artifact(line[..i].trim())
                && (rest.starts_with("--")
                    || option_value(rest, "-f").is_some()
                    || option_value(rest, "-r").is_some())
        })
}

/// Classifies a requirement line like cog's `ParseLocalArtifactRequirement`:
/// `Ok(Some(path))` for a bare local wheel/sdist path, `Ok(None)` for any other
/// requirement, `Err(cog's message)` for unsupported local forms.
pub fn parse_local_artifact(line: &str) -> Result<Option<String>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if is_file_url(line) {
        return Err(format!(
            "local file URL requirements are not supported: {line}"
        ));
    }
    if let Some((name, target)) = line.split_once('@') {
        let spaced = name != name.trim() || target != target.trim();
        let (name, target) = (name.trim(), target.trim());
        if !name.is_empty() && package_name(name) == name {
            if is_file_url(target) {
                return Err(format!(
                    "local file URL requirements are not supported: {line}"
                ));
            }
            if is_local_path(target) || (spaced && is_local_artifact(target)) {
                return Err(format!(
                    "local direct reference requirements (`name @ path`) are not supported; list the path directly instead: {line}"
                ));
            }
        }
    }
    if line.starts_with('-') {
        return match unsupported_local_option(line) {
            Some(option) => Err(format!(
                "local requirements option \"{option}\" is not supported: {line}"
            )),
            None => Ok(None),
        };
    }
    if has_inline_option(line) {
        return Err(format!(
            "local package artifact requirements do not support inline options or hashes: {line}"
        ));
    }
    if is_remote(line) {
        return Ok(None);
    }
    if let Some((base, _)) = line.split_once(';')
        && is_local_artifact(base.trim())
    {
        return Err(format!(
            "environment markers are not supported on local package artifact requirements: {line}"
        ));
    }
    if let Some((base, _)) = line.split_once('[')
        && line.ends_with(']')
        && is_local_artifact(base.trim())
    {
        return Err(format!(
            "extras are not supported on local package artifact requirements: {line}"
        ));
    }
    if !is_local_path(line) && !has_artifact_suffix(line) {
        return Ok(None);
    }
    if !has_artifact_suffix(line) {
        return Err(format!(
            "local package requirement \"{line}\" is not a supported wheel or source archive"
        ));
    }
    Ok(Some(line.to_string()))
}

/// True for local artifact lines and for unsupported local forms (cog leaves
/// both untouched when rewriting).
pub fn is_local_artifact_requirement(line: &str) -> bool {
    !matches!(parse_local_artifact(line), Ok(None))
}

fn lexical_normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn within(root: &Path, target: &Path) -> bool {
    target.starts_with(root)
}

/// Resolves the local artifacts among `lines` of the requirements file at
/// `requirements_file` (§1.7): relative to the file's directory, parent
/// symlinks resolved, a regular file inside the (symlink-resolved) project.
/// Returns cog's message for the first bad line.
pub fn resolve_local_artifacts(
    project_dir: &Path,
    requirements_file: &Path,
    lines: &[String],
) -> Result<Vec<LocalArtifact>, Vec<String>> {
    let root = std::fs::canonicalize(project_dir)
        .map_err(|e| vec![format!("failed to resolve project directory: {e}")])?;
    let base = requirements_file.parent().unwrap_or(project_dir);
    let mut artifacts = Vec::new();
    let mut errors = Vec::new();
    for line in lines {
        match parse_local_artifact(line) {
            Ok(None) => {}
            Err(message) => errors.push(message),
            Ok(Some(path)) => match resolve_one(&root, base, line.trim(), &path) {
                Ok(artifact) => artifacts.push(artifact),
                Err(message) => errors.push(message),
            },
        }
    }
    if errors.is_empty() {
        Ok(artifacts)
    } else {
        Err(errors)
    }
}

fn resolve_one(root: &Path, base: &Path, line: &str, path: &str) -> Result<LocalArtifact, String> {
    let joined = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        base.join(path)
    };
    let absolute = lexical_normalize(&std::path::absolute(&joined).unwrap_or(joined));
    let file_name = absolute
        .file_name()
        .ok_or_else(|| format!("local Python package artifact \"{path}\" not found"))?;
    let parent = absolute.parent().unwrap_or(Path::new("/"));
    let resolved_parent = std::fs::canonicalize(parent)
        .map_err(|e| format!("local Python package artifact \"{path}\" not found: {e}"))?;
    let staged = resolved_parent.join(file_name);
    if !within(root, &staged) {
        return Err(format!(
            "local Python package artifact \"{path}\" must be inside the project directory"
        ));
    }
    let canonical = std::fs::canonicalize(&absolute)
        .map_err(|e| format!("local Python package artifact \"{path}\" not found: {e}"))?;
    let metadata = std::fs::metadata(&canonical)
        .map_err(|e| format!("failed to inspect local Python package artifact \"{path}\": {e}"))?;
    if !metadata.is_file() {
        return Err(format!(
            "local Python package artifact \"{path}\" must be a regular file"
        ));
    }
    if !within(root, &canonical) {
        return Err(format!(
            "local Python package artifact \"{path}\" must be inside the project directory"
        ));
    }
    let relative = staged.strip_prefix(root).unwrap_or(&staged);
    let project_relative = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect::<Vec<_>>()
        .join("/");
    Ok(LocalArtifact {
        line: line.to_string(),
        path: canonical,
        project_relative,
    })
}

// ---------------------------------------------------------------------------
// Rewriting (§2.6).

/// The requirements.txt cog would install, plus what happened on the way.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RewrittenRequirements {
    /// The file content, lines joined with `\n`, no trailing newline; empty
    /// when there is nothing to install.
    pub text: String,
    /// `--find-links` URLs of the header, in first-seen order.
    pub find_links: Vec<String>,
    /// `--extra-index-url` URLs of the header, in first-seen order.
    pub extra_index_urls: Vec<String>,
    /// Local artifacts referenced by the text (staged under
    /// `/tmp/local_package_artifacts/<project_relative>`).
    pub local_artifacts: Vec<LocalArtifact>,
    /// Requirement lines removed because cog installs them itself (`cog`, `coglet`).
    pub removed_managed: Vec<String>,
    /// Warnings to print (cog's texts).
    pub warnings: Vec<String>,
}

/// How the build installs cog and coglet, for the removal warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedSources {
    /// e.g. `latest cog from PyPI`, `cog==0.17.0 from PyPI`, a URL or a path.
    pub cog: String,
    /// e.g. `latest coglet from PyPI`.
    pub coglet: String,
}

impl ManagedSources {
    /// What cog reports when only `build.sdk_version` decides (no
    /// `COG_SDK_WHEEL` / `COGLET_WHEEL`).
    pub fn from_sdk_version(sdk_version: Option<&str>) -> ManagedSources {
        match sdk_version.filter(|v| !v.is_empty()) {
            Some("prerelease") => ManagedSources {
                cog: "latest pre-release cog from PyPI".to_string(),
                coglet: "latest coglet from PyPI".to_string(),
            },
            Some(v) => ManagedSources {
                cog: format!("cog=={v} from PyPI"),
                coglet: "latest coglet from PyPI".to_string(),
            },
            None => ManagedSources {
                cog: "latest cog from PyPI".to_string(),
                coglet: "latest coglet from PyPI".to_string(),
            },
        }
    }
}

static SEMVER_PRE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-alpha(\d+)|-beta(\d+)|-rc(\d+)|-dev(\d*)").expect("valid regex")
});
static PEP440_PRE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d(a|b|rc|\.dev)\d").expect("valid regex"));

/// cog's pre-release test for SDK versions (§4.6).
pub fn is_prerelease(version: &str) -> bool {
    SEMVER_PRE.is_match(version) || PEP440_PRE.is_match(version)
}

/// Semver pre-release suffixes to PEP 440 (`-alpha1` → `a1`, `-dev2` → `.dev2`).
pub fn semver_to_pep440(version: &str) -> String {
    version
        .replace("-alpha", "a")
        .replace("-beta", "b")
        .replace("-rc", "rc")
        .replace("-dev", ".dev")
}

/// Rewrites the project's requirements as cog does for linux/amd64 (§2.6),
/// with the cog/coglet warning worded for `build.sdk_version` alone.
pub fn rewrite(project: &Project) -> Result<RewrittenRequirements, ConfigError> {
    let sdk = project
        .config
        .build
        .as_ref()
        .and_then(|b| b.sdk_version.as_deref());
    rewrite_with(project, &ManagedSources::from_sdk_version(sdk))
}

/// [`rewrite`] with the cog/coglet sources the build resolved (for the warning).
pub fn rewrite_with(
    project: &Project,
    managed: &ManagedSources,
) -> Result<RewrittenRequirements, ConfigError> {
    let build = project.config.build.clone().unwrap_or_default();
    let mut out = RewrittenRequirements::default();
    let mut packages = Vec::new();
    for line in &project.requirements {
        let (package, find_links, extra) = rewrite_line(line, &build, &mut out.warnings);
        packages.push(package);
        for link in find_links {
            push_unique(&mut out.find_links, link);
        }
        for url in extra {
            push_unique(&mut out.extra_index_urls, url);
        }
    }
    let mut lines: Vec<String> = out
        .find_links
        .iter()
        .map(|l| format!("--find-links {l}"))
        .collect();
    lines.extend(
        out.extra_index_urls
            .iter()
            .map(|u| format!("--extra-index-url {u}")),
    );
    lines.extend(packages);
    let lines = stage_local_artifacts(project, lines, &mut out)?;
    let lines = remove_managed(lines, managed, &mut out);
    out.text = lines.join("\n");
    Ok(out)
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

type LineRewrite = (String, Vec<String>, Vec<String>);

fn rewrite_line(line: &str, build: &super::Build, warnings: &mut Vec<String>) -> LineRewrite {
    if is_local_artifact_requirement(line) {
        return (line.to_string(), Vec::new(), Vec::new());
    }
    let Some(pin) = split_pinned(line) else {
        return (line.to_string(), Vec::new(), Vec::new());
    };
    if !pin.extra_index_urls.is_empty() {
        return (
            format!("{}=={}", pin.name, pin.version),
            pin.find_links,
            pin.extra_index_urls,
        );
    }
    let cuda = build.cuda.clone().unwrap_or_default();
    let (name, version, find_links, index) = match (pin.name.as_str(), build.gpu) {
        ("tensorflow", true) => {
            let (name, version) = tf_gpu_package(&pin.version, &cuda);
            if name.is_empty() {
                warnings.push(format!(
                    "tensorflow=={} has no GPU package for CUDA {cuda} in cog's matrix; cog drops the line from requirements.txt",
                    pin.version
                ));
            }
            (name, version, String::new(), String::new())
        }
        ("torch", true) => torch_gpu_package(&pin.version, &cuda),
        ("torch", false) => torch_cpu_package(&pin.version),
        ("torchvision", true) => torchvision_gpu_package(&pin.version, &cuda, warnings),
        ("torchvision", false) => torchvision_cpu_package(&pin.version),
        _ => (
            pin.name.clone(),
            pin.version.clone(),
            String::new(),
            String::new(),
        ),
    };
    let package = if version.is_empty() {
        name
    } else {
        format!("{name}=={version}")
    };
    let mut find = pin.find_links;
    if !find_links.is_empty() {
        find = vec![find_links];
    }
    let extra = if index.is_empty() {
        Vec::new()
    } else {
        vec![index]
    };
    (package, find, extra)
}

type Variant = (String, String, String, String);

fn tf_gpu_package(ver: &str, cuda: &str) -> (String, String) {
    catalog::tf_matrix()
        .iter()
        .find(|row| row.tf == ver && version::equal(&row.cuda, cuda))
        .and_then(|row| split_pinned(&row.gpu_package))
        .map(|p| (p.name, p.version))
        .unwrap_or_default()
}

/// `a` is a strictly higher CUDA than `b`; unparsable versions never are.
fn cuda_greater(a: &str, b: &str) -> bool {
    version::greater(a, b)
}

fn cuda_usable(row_cuda: &str, build_cuda: &str) -> bool {
    version::Version::parse(row_cuda).is_some()
        && version::Version::parse(build_cuda).is_some()
        && !cuda_greater(row_cuda, build_cuda)
}

fn torch_gpu_package(ver: &str, cuda: &str) -> Variant {
    let mut best: Option<&catalog::TorchRow> = None;
    for row in catalog::torch_matrix() {
        let Some(row_cuda) = row.cuda.as_deref() else {
            continue;
        };
        if !version::matches(row.torch_version(), ver) || !cuda_usable(row_cuda, cuda) {
            continue;
        }
        best = match best {
            None => Some(row),
            Some(current) => {
                let current_cuda = current.cuda.as_deref().unwrap_or_default();
                let better = cuda_greater(row_cuda, current_cuda)
                    || (row_cuda == current_cuda
                        && version::greater(row.torch_version(), current.torch_version()));
                if better { Some(row) } else { Some(current) }
            }
        };
    }
    match best {
        Some(row) => (
            "torch".to_string(),
            row.torch_version().to_string(),
            row.find_links.clone(),
            row.extra_index_url.clone(),
        ),
        None => (
            "torch".to_string(),
            ver.to_string(),
            String::new(),
            String::new(),
        ),
    }
}

fn torch_cpu_package(ver: &str) -> Variant {
    catalog::torch_matrix()
        .iter()
        .find(|row| row.torch_version() == ver && row.cuda.is_none())
        .map(|row| {
            (
                "torch".to_string(),
                row.torch_version().to_string(),
                row.find_links.clone(),
                row.extra_index_url.clone(),
            )
        })
        .unwrap_or_else(|| {
            (
                "torch".to_string(),
                ver.to_string(),
                String::new(),
                String::new(),
            )
        })
}

fn torchvision_cpu_package(ver: &str) -> Variant {
    catalog::torch_matrix()
        .iter()
        .find(|row| row.torchvision_version() == ver && row.cuda.is_none())
        .map(|row| {
            (
                "torchvision".to_string(),
                row.torchvision.clone(),
                row.find_links.clone(),
                row.extra_index_url.clone(),
            )
        })
        .unwrap_or_else(|| {
            (
                "torchvision".to_string(),
                ver.to_string(),
                String::new(),
                String::new(),
            )
        })
}

fn torchvision_gpu_package(ver: &str, cuda: &str, warnings: &mut Vec<String>) -> Variant {
    let mut best: Option<&catalog::TorchRow> = None;
    for row in catalog::torch_matrix() {
        let Some(row_cuda) = row.cuda.as_deref() else {
            continue;
        };
        if row.torchvision_version() != ver || !cuda_usable(row_cuda, cuda) {
            continue;
        }
        let replace = match best {
            None => true,
            Some(current) => cuda_greater(row_cuda, current.cuda.as_deref().unwrap_or_default()),
        };
        if replace {
            best = Some(row);
        }
    }
    match best {
        Some(row) => (
            "torchvision".to_string(),
            row.torchvision_version().to_string(),
            row.find_links.clone(),
            row.extra_index_url.clone(),
        ),
        None => {
            warnings.push(format!(
                "Cog doesn't know if CUDA {cuda} is compatible with torchvision {ver}. This might cause CUDA problems."
            ));
            (
                "torchvision".to_string(),
                ver.to_string(),
                String::new(),
                String::new(),
            )
        }
    }
}

fn stage_local_artifacts(
    project: &Project,
    lines: Vec<String>,
    out: &mut RewrittenRequirements,
) -> Result<Vec<String>, ConfigError> {
    if project.local_artifacts.is_empty() {
        return Ok(lines);
    }
    let mut matched = vec![false; project.local_artifacts.len()];
    let rewritten = lines
        .into_iter()
        .map(|line| {
            let trimmed = line.trim();
            match project
                .local_artifacts
                .iter()
                .position(|a| a.line == trimmed)
            {
                Some(index) => {
                    matched[index] = true;
                    let artifact = &project.local_artifacts[index];
                    format!(
                        "{LOCAL_ARTIFACTS_CONTAINER_DIR}/{}",
                        artifact.project_relative
                    )
                }
                None => line,
            }
        })
        .collect();
    if let Some(index) = matched.iter().position(|m| !m) {
        let line = &project.local_artifacts[index].line;
        return Err(ConfigError::single(
            project.config_path(),
            Problem::new(
                "build.python_requirements",
                format!("failed to rewrite local Python package artifact \"{line}\""),
                "list the wheel or source archive path on its own line in the requirements file",
            ),
        ));
    }
    out.local_artifacts = project.local_artifacts.clone();
    Ok(rewritten)
}

fn remove_managed(
    lines: Vec<String>,
    managed: &ManagedSources,
    out: &mut RewrittenRequirements,
) -> Vec<String> {
    let mut kept = Vec::new();
    for line in lines {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            kept.push(line);
            continue;
        }
        let name = package_name(trimmed);
        let base = name.split('[').next().unwrap_or("").to_lowercase();
        let (source, variable) = match base.as_str() {
            "cog" => (&managed.cog, "COG_SDK_WHEEL"),
            "coglet" => (&managed.coglet, "COGLET_WHEEL"),
            _ => {
                kept.push(line);
                continue;
            }
        };
        out.warnings.push(format!(
            "'{trimmed}' found in requirements — overriding with {source}. Remove it from requirements and use build.sdk_version in cog.yaml or {variable} to control the version."
        ));
        out.removed_managed.push(trimmed.to_string());
    }
    kept
}
