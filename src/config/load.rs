//! Discovery, parsing, validation (all problems collected, cog's texts),
//! deprecation / unknown-key warnings, and completion of cog.yaml.

use super::parse::{self, KeyTree, RawBuild, RawFile};
use super::{
    Build, Config, ConfigError, MAX_SEARCH_DEPTH, Problem, Project, RunItem, RunMount, WeightDecl,
    WeightSource, catalog, requirements, version,
};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// Walks up from `start` (at most [`MAX_SEARCH_DEPTH`] directories) to the
/// first directory holding `file_name`; otherwise cog's
/// `<name> not found in <start> (or in any parent directories)`.
pub fn find_project_dir(start: &Path, file_name: &str) -> Result<PathBuf, ConfigError> {
    let file_name = if file_name.is_empty() {
        "cog.yaml"
    } else {
        file_name
    };
    let mut dir = start.to_path_buf();
    for _ in 0..MAX_SEARCH_DEPTH {
        let candidate = dir.join(file_name);
        match std::fs::metadata(&candidate) {
            Ok(_) => return Ok(dir),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(discovery_error(
                    start,
                    format!(
                        "failed to scan directory {} for {}: {e}",
                        dir.display(),
                        candidate.display()
                    ),
                    file_name,
                ));
            }
            Err(_) => {}
        }
        match dir.parent() {
            Some(parent) if parent != dir && !parent.as_os_str().is_empty() => {
                dir = parent.to_path_buf()
            }
            _ => {
                return Err(discovery_error(
                    start,
                    format!(
                        "{file_name} not found in {} (or in any parent directories)",
                        start.display()
                    ),
                    file_name,
                ));
            }
        }
    }
    Err(discovery_error(
        start,
        "No cog.yaml found in parent directories.".to_string(),
        file_name,
    ))
}

fn discovery_error(start: &Path, message: String, file_name: &str) -> ConfigError {
    ConfigError::single(
        start,
        Problem::new(
            "",
            message,
            format!(
                "run cogpack inside a Cog project (a directory with {file_name}), or pass -f <file name> if the config file has another name"
            ),
        ),
    )
}

/// Loads `<project_dir>/<file_name>`: parses, validates (every problem, cog's
/// texts), warns about deprecated and unknown keys, and completes
/// (requirements, local artifacts, CUDA/cuDNN, environment).
pub fn load(project_dir: &Path, file_name: &str) -> Result<Project, ConfigError> {
    let path = project_dir.join(file_name);
    let bytes = std::fs::read(&path).map_err(|e| {
        ConfigError::single(
            &path,
            Problem::new(
                "",
                format!("failed to read {file_name}: {e}"),
                "check that the file exists and is readable",
            ),
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigError::single(
            &path,
            Problem::new(
                "",
                format!("failed to parse {file_name}: invalid YAML: not UTF-8 text ({e})"),
                "save the file as UTF-8",
            ),
        )
    })?;
    load_str(project_dir, file_name, &text)
}

/// [`load`] with the config text given (files it names are still read from
/// `project_dir`).
pub fn load_str(project_dir: &Path, file_name: &str, text: &str) -> Result<Project, ConfigError> {
    let path = project_dir.join(file_name);
    let raw = parse::parse_raw(text).map_err(|e| {
        let field = e
            .line
            .and_then(|line| parse::parse_key_tree(text)?.field_at_line(line))
            .unwrap_or_default();
        let hint = if field.is_empty() {
            "fix the YAML syntax at that line (see the cog.yaml reference)".to_string()
        } else {
            format!("check the value of `{field}`: its type must match the cog.yaml reference (e.g. strings in quotes, lists as `- item`)")
        };
        let mut problem = Problem::new(
            &field,
            format!("failed to parse {file_name}: invalid YAML: {}", e.message),
            hint,
        );
        problem.line = e.line;
        ConfigError::single(&path, problem)
    })?;
    let tree = parse::parse_key_tree(text).unwrap_or_default();
    let mut problems = validate(&raw, project_dir);
    if !problems.is_empty() {
        attach_lines(&mut problems, &tree);
        return Err(ConfigError {
            file: path,
            problems,
        });
    }
    let mut warnings = unknown_key_warnings(&tree, file_name);
    warnings.extend(deprecation_warnings(&raw));
    if raw.build.is_none() {
        warnings.push(format!(
            "{file_name} has no build section: cog then builds from the invalid base \"python:-slim\"; add build.python_version (e.g. \"3.12\")"
        ));
    }
    let config = convert(&raw);
    let project = Project {
        dir: project_dir.to_path_buf(),
        file_name: file_name.to_string(),
        config,
        requirements: Vec::new(),
        local_artifacts: Vec::new(),
        environment: Vec::new(),
        warnings,
    };
    complete(project).map_err(|mut problems| {
        attach_lines(&mut problems, &tree);
        ConfigError {
            file: path,
            problems,
        }
    })
}

fn attach_lines(problems: &mut [Problem], tree: &KeyTree) {
    for problem in problems {
        if problem.line.is_none() && !problem.field.is_empty() {
            problem.line = tree.line_of(&problem.field);
        }
    }
}

fn unknown_key_warnings(tree: &KeyTree, file_name: &str) -> Vec<String> {
    parse::unknown_keys(tree)
        .into_iter()
        .map(|(key, line)| {
            format!(
                "unknown key \"{key}\" in {file_name} (line {line}) is ignored, as cog ignores it; check its spelling"
            )
        })
        .collect()
}

fn deprecation(field: &str, replacement: &str) -> String {
    format!("deprecated field \"{field}\": use \"{replacement}\" instead")
}

fn deprecation_warnings(raw: &RawFile) -> Vec<String> {
    let mut warnings = Vec::new();
    if non_empty(&raw.predict) {
        warnings.push(deprecation("predict", "run"));
    }
    if raw.concurrency.as_ref().is_some_and(|c| c.max.is_some()) {
        warnings.push(deprecation("concurrency.max", "@cog.concurrent(max=...)"));
    }
    if let Some(build) = &raw.build {
        if build
            .python_packages
            .as_ref()
            .is_some_and(|p| !p.is_empty())
        {
            warnings.push(deprecation(
                "build.python_packages",
                "build.python_requirements",
            ));
        }
        if build.pre_install.as_ref().is_some_and(|p| !p.is_empty()) {
            warnings.push(deprecation("build.pre_install", "build.run"));
        }
    }
    warnings
}

fn non_empty(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

fn some_non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------
// Validation (cog pkg/config/validate.go).

/// `invalid <field> "<value>": <message>` / `invalid <field>: <message>`.
fn invalid(field: &str, value: Option<&str>, message: &str, hint: &str) -> Problem {
    let text = match value {
        Some(v) if !v.is_empty() => format!("invalid {field} {}: {message}", go_quote(v)),
        _ => format!("invalid {field}: {message}"),
    };
    Problem::new(field, text, hint)
}

/// Go's `%q` for ordinary text.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn validate(raw: &RawFile, project_dir: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    problems.extend(schema_problem(raw));
    validate_predict(raw, &mut problems);
    validate_train(raw, &mut problems);
    if let Some(build) = &raw.build {
        validate_build(build, project_dir, &mut problems);
    }
    validate_environment(raw, &mut problems);
    validate_concurrency(raw, &mut problems);
    validate_model(raw, &mut problems);
    validate_weights(raw, &mut problems);
    if problems.is_empty() {
        validate_predictor_files(raw, project_dir, &mut problems);
    }
    problems
}

/// The single most specific JSON-schema error cog would report.
fn schema_problem(raw: &RawFile) -> Option<Problem> {
    let mut candidates: Vec<(String, String)> = Vec::new();
    if raw.run.is_some() && raw.predict.is_some() {
        candidates.push((
            "cog.yaml".into(),
            "Must not validate the schema (not)".into(),
        ));
    }
    if raw.concurrency.as_ref().is_some_and(|c| c.max.is_none()) {
        candidates.push(("concurrency".into(), "max is required".into()));
    }
    for (i, entry) in raw.environment.iter().flatten().enumerate() {
        if !ENV_PATTERN.is_match(entry) {
            candidates.push((
                format!("environment.{i}"),
                format!("Does not match pattern '{}'", ENV_PATTERN.as_str()),
            ));
        }
    }
    let runs = raw.build.as_ref().and_then(|b| b.run.as_ref());
    for (i, item) in runs.into_iter().flatten().enumerate() {
        if item.command.is_empty() {
            candidates.push((format!("build.run.{i}"), "command is required".into()));
        }
        for (j, mount) in item.mounts.iter().enumerate() {
            let field = format!("build.run.{i}.mounts.{j}");
            for (value, name) in [
                (&mount.kind, "type"),
                (&mount.id, "id"),
                (&mount.target, "target"),
            ] {
                if value.is_empty() {
                    candidates.push((field.clone(), format!("{name} is required")));
                }
            }
            if !mount.kind.is_empty() && mount.kind != "secret" {
                candidates.push((
                    format!("{field}.type"),
                    format!("{field}.type must be one of the following: \"secret\""),
                ));
            }
        }
    }
    for (i, weight) in raw.weights.iter().flatten().enumerate() {
        for (j, source) in weight.source.items.iter().enumerate() {
            if source.uri.is_empty() {
                let field = if weight.source.is_list {
                    format!("weights.{i}.source.{j}")
                } else {
                    format!("weights.{i}.source")
                };
                candidates.push((field, "uri is required".into()));
            }
        }
    }
    let depth = |field: &str| field.split('.').count();
    let mut best: Option<&(String, String)> = None;
    for candidate in &candidates {
        if best.is_none_or(|b| depth(&candidate.0) > depth(&b.0)) {
            best = Some(candidate);
        }
    }
    best.map(|(field, message)| {
        let dotted = schema_field_to_path(field);
        Problem::new(
            &dotted,
            format!("schema error in \"{field}\": {message}"),
            "fix this entry to match the cog.yaml reference",
        )
    })
}

/// `build.run.0.mounts.1` → `build.run[0].mounts[1]`.
fn schema_field_to_path(field: &str) -> String {
    if field == "cog.yaml" {
        return String::new();
    }
    let mut out = String::new();
    for segment in field.split('.') {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

static ENV_PATTERN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*=.*$").expect("valid regex"));

fn validate_ref(field: &str, value: &str, example: &str, problems: &mut Vec<Problem>) {
    if value.split(".py:").count() != 2 {
        problems.push(invalid(
            field,
            Some(value),
            &format!("must be in the form '{example}'"),
            &format!("write it as <file>.py:<ClassName>, e.g. {example}"),
        ));
    }
}

fn validate_predict(raw: &RawFile, problems: &mut Vec<Problem>) {
    if non_empty(&raw.run) && non_empty(&raw.predict) {
        problems.push(invalid(
            "run",
            None,
            "only one of run or predict can be set",
            "delete the deprecated `predict:` line and keep `run:`",
        ));
        return;
    }
    if let Some(run) = some_non_empty(&raw.run) {
        validate_ref("run", &run, "run.py:Runner", problems);
    }
    if let Some(predict) = some_non_empty(&raw.predict) {
        validate_ref("predict", &predict, "predict.py:Predictor", problems);
    }
}

fn validate_train(raw: &RawFile, problems: &mut Vec<Problem>) {
    if let Some(train) = some_non_empty(&raw.train) {
        validate_ref("train", &train, "train.py:Trainer", problems);
    }
}

const PYTHON_UPGRADE_HINT: &str = "cog (and cogpack) support Python 3.10 and newer: set build.python_version to \"3.10\" or later (e.g. \"3.12\"), then re-pin requirements that have no wheels for it (very old torch/tensorflow pins usually need an upgrade too)";

fn validate_python_version(text: &str) -> Option<Problem> {
    let text = text.trim();
    let field = "build.python_version";
    let parts: Vec<&str> = text.splitn(3, '.').collect();
    let hint = "write it as major.minor, e.g. \"3.12\" (quote it in YAML)";
    if parts.len() < 2 {
        return Some(invalid(
            field,
            Some(text),
            "must include major and minor version (e.g., '3.11')",
            hint,
        ));
    }
    let Some(major) = go_atoi(parts[0]) else {
        return Some(invalid(
            field,
            Some(text),
            "invalid major version number",
            hint,
        ));
    };
    let Some(minor) = go_atoi(parts[1]) else {
        return Some(invalid(
            field,
            Some(text),
            "invalid minor version number",
            hint,
        ));
    };
    if major < 3 || (major == 3 && minor < 10) {
        return Some(invalid(
            field,
            Some(text),
            "minimum supported Python version is 3.10",
            PYTHON_UPGRADE_HINT,
        ));
    }
    None
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, fits in i64.
fn go_atoi(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn validate_cuda_version(cuda: &str) -> Option<Problem> {
    let field = "build.cuda";
    let hint =
        "write the CUDA version as major.minor, e.g. \"12.4\", or remove it to let cogpack choose";
    let parts: Vec<&str> = cuda.split('.').collect();
    if parts.len() < 2 {
        return Some(invalid(
            field,
            Some(cuda),
            "must include both major and minor versions (e.g., '11.8')",
            hint,
        ));
    }
    let Some(major) = go_atoi(parts[0]) else {
        return Some(invalid(
            field,
            Some(cuda),
            "invalid major version number",
            hint,
        ));
    };
    if major < 11 {
        return Some(invalid(
            field,
            Some(cuda),
            "minimum supported CUDA version is 11",
            hint,
        ));
    }
    None
}

fn requirements_path(project_dir: &Path, file: &str) -> PathBuf {
    if file.starts_with('/') {
        PathBuf::from(file)
    } else {
        project_dir.join(file)
    }
}

fn validate_build(build: &RawBuild, project_dir: &Path, problems: &mut Vec<Problem>) {
    match some_non_empty(&build.python_version) {
        None => problems.push(invalid(
            "build.python_version",
            None,
            "python_version is required. Add it to the build section of your cog.yaml, e.g. `python_version: \"3.13\"`",
            "add `python_version: \"3.12\"` (or another version ≥ 3.10) under build:",
        )),
        Some(v) => problems.extend(validate_python_version(&v)),
    }
    let packages = build.python_packages.clone().unwrap_or_default();
    let requirements_file = some_non_empty(&build.python_requirements);
    if !packages.is_empty() && requirements_file.is_some() {
        problems.push(invalid(
            "build",
            None,
            "only one of python_packages or python_requirements can be set, not both",
            "move the python_packages entries into the requirements file and delete python_packages",
        ));
    }
    if let Some(file) = &requirements_file
        && !requirements_path(project_dir, file).exists()
    {
        problems.push(invalid(
            "build.python_requirements",
            Some(file),
            "file does not exist",
            "create the file (paths are relative to the directory of cog.yaml) or fix the path",
        ));
    }
    if let Some(cuda) = some_non_empty(&build.cuda) {
        problems.extend(validate_cuda_version(&cuda));
    }
    if build.gpu == Some(true) {
        validate_gpu(build, project_dir, &packages, problems);
    }
}

fn validate_gpu(
    build: &RawBuild,
    project_dir: &Path,
    packages: &[String],
    problems: &mut Vec<Problem>,
) {
    let cuda = some_non_empty(&build.cuda);
    if let (Some(cuda), Some(cudnn)) = (&cuda, some_non_empty(&build.cudnn)) {
        let compatible = catalog::compatible_cudnns_for_cuda(cuda);
        if !compatible.is_empty() && !compatible.contains(&cudnn) {
            problems.push(Problem::new(
                "build.cudnn",
                format!(
                    "CUDA {cuda} is incompatible with CuDNN {cudnn}: compatible CuDNN versions are: {}",
                    compatible.join(", ")
                ),
                "set build.cudnn to one of the compatible versions, or remove it to let cogpack choose",
            ));
        }
    }
    let lines = match some_non_empty(&build.python_requirements) {
        Some(file) => requirements::read_requirements(&requirements_path(project_dir, &file))
            .unwrap_or_default(),
        None => packages.to_vec(),
    };
    let Some(cuda) = cuda else { return };
    let Some(tf) = requirements::package_version(&lines, "tensorflow").filter(|v| !v.is_empty())
    else {
        return;
    };
    if let Some((tf_cuda, _)) = catalog::cuda_from_tf(&tf) {
        let major = tf_cuda.split('.').next().unwrap_or("");
        if !cuda.starts_with(major) {
            problems.push(Problem::new(
                "build.cuda",
                format!("TensorFlow {tf} is incompatible with CUDA {cuda}: TensorFlow {tf} requires CUDA {tf_cuda}"),
                format!("set build.cuda to \"{tf_cuda}\" or remove it to let cogpack choose"),
            ));
        }
    }
}

const ENV_DENY_LIST: &[&str] = &[
    "PATH",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "PYTHONUNBUFFERED",
    "R8_*",
    "REPLICATE_*",
    "LIBRARY_PATH",
    "CUDA_*",
    "NVIDIA_*",
    "NV_*",
    "PGET_*",
    "HF_ENDPOINT",
    "HF_HUB_ENABLE_HF_TRANSFER",
    "KUBERNETES_*",
];

fn env_name_denied(name: &str) -> bool {
    ENV_DENY_LIST
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => *pattern == name,
        })
}

/// Parses `KEY=VALUE` entries with cog's rules; every bad entry's message.
pub(crate) fn parse_environment(entries: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let mut parsed: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        let Some((key, value)) = entry.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            errors.push(format!(
                "environment variable {} is not in the KEY=VALUE format",
                go_quote(entry)
            ));
            continue;
        };
        if env_name_denied(key) {
            errors.push(format!(
                "environment variable {} is not allowed: reserved for internal use",
                go_quote(key)
            ));
            continue;
        }
        if parsed.iter().any(|(k, _)| k == key) {
            errors.push(format!(
                "environment variable {} is already defined",
                go_quote(key)
            ));
            continue;
        }
        parsed.push((key.to_string(), value.to_string()));
    }
    (parsed, errors)
}

fn validate_environment(raw: &RawFile, problems: &mut Vec<Problem>) {
    let entries = raw.environment.clone().unwrap_or_default();
    let (_, errors) = parse_environment(&entries);
    for message in errors {
        problems.push(invalid(
            "environment",
            None,
            &message,
            "write each entry as KEY=VALUE with a unique name outside cog's reserved names (PATH, CUDA_*, R8_*, …)",
        ));
    }
}

fn validate_concurrency(raw: &RawFile, problems: &mut Vec<Problem>) {
    let Some(max) = raw.concurrency.as_ref().and_then(|c| c.max) else {
        return;
    };
    let value = max.to_string();
    if max < 1 {
        problems.push(invalid(
            "concurrency.max",
            Some(&value),
            "must be at least 1",
            "set concurrency.max to 1 or more",
        ));
    }
    let python = raw.build.as_ref().and_then(|b| b.python_version.clone());
    if max > 1
        && let Some(python) = python
    {
        let parts: Vec<&str> = python.trim().splitn(3, '.').collect();
        if parts.len() >= 2
            && let (Some(3), Some(minor)) = (go_atoi(parts[0]), go_atoi(parts[1]))
            && minor < 11
        {
            problems.push(invalid(
                "concurrency.max",
                Some(&value),
                "concurrency requires Python 3.11 or higher",
                "set build.python_version to \"3.11\" or later",
            ));
        }
    }
}

fn validate_model(raw: &RawFile, problems: &mut Vec<Problem>) {
    let model = some_non_empty(&raw.model);
    if model.is_some() && non_empty(&raw.image) {
        problems.push(invalid(
            "model",
            None,
            "'model' and 'image' cannot both be set",
            "keep `model:` (the bundle format) and delete `image:`",
        ));
    }
    let Some(model) = model else { return };
    if let Err(reason) = new_repository(&model) {
        if parse_reference_ok(&model) {
            problems.push(invalid(
                "model",
                Some(&model),
                "must be a bare repository — tags and digests are not allowed",
                "drop the :tag or @digest; cogpack picks the tag when pushing",
            ));
        } else {
            problems.push(invalid(
                "model",
                Some(&model),
                &format!("invalid repository: {reason}"),
                "use a repository name like registry.example.com/user/model (lowercase letters, digits, _ - . /)",
            ));
        }
    }
}

/// go-containerregistry `name.NewRepository` with default (weak) validation.
fn new_repository(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a repository name must be specified".to_string());
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') => (first, rest),
        _ => ("", name),
    };
    check_element(
        "repository",
        repository,
        "abcdefghijklmnopqrstuvwxyz0123456789_-./",
        2,
        255,
    )?;
    if !registry.is_empty() && !valid_authority(registry) {
        return Err(format!(
            "registries must be valid RFC 3986 URI authorities: {registry}"
        ));
    }
    Ok(())
}

fn check_element(
    kind: &str,
    element: &str,
    allowed: &str,
    min: usize,
    max: usize,
) -> Result<(), String> {
    let count = element.chars().count();
    if count < min || count > max {
        return Err(format!(
            "{kind} must be between {min} and {max} characters in length: {element}"
        ));
    }
    if element.chars().any(|c| !allowed.contains(c)) {
        return Err(format!("{kind} contains invalid characters: {element}"));
    }
    Ok(())
}

fn valid_authority(registry: &str) -> bool {
    if registry
        .chars()
        .any(|c| "/@?#%".contains(c) || c.is_whitespace() || c.is_control())
    {
        return false;
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if !host.contains(']') || host.ends_with(']') => {
            port.bytes().all(|b| b.is_ascii_digit())
        }
        _ => true,
    }
}

/// go-containerregistry `name.ParseReference` succeeds (tag or digest form).
fn parse_reference_ok(name: &str) -> bool {
    parse_tag_ok(name) || parse_digest_ok(name)
}

fn parse_tag_ok(name: &str) -> bool {
    let parts: Vec<&str> = name.split(':').collect();
    let mut base = name.to_string();
    if parts.len() > 1 && !parts[parts.len() - 1].contains('/') {
        let tag = parts[parts.len() - 1];
        if tag.is_empty() {
            return false;
        }
        let tag_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.";
        if check_element("tag", tag, tag_chars, 1, 128).is_err() {
            return false;
        }
        base = parts[..parts.len() - 1].join(":");
    }
    new_repository(&base).is_ok()
}

fn parse_digest_ok(name: &str) -> bool {
    let parts: Vec<&str> = name.split('@').collect();
    if parts.len() != 2 {
        return false;
    }
    let digest_ok = check_element("digest", parts[1], "sh:0123456789abcdef", 71, 71).is_ok();
    digest_ok && parse_tag_ok(parts[0])
}

static WEIGHT_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$").expect("valid regex"));

fn validate_weights(raw: &RawFile, problems: &mut Vec<Problem>) {
    let weights = raw.weights.as_deref().unwrap_or_default();
    if weights.is_empty() {
        return;
    }
    let model_set = non_empty(&raw.model);
    if non_empty(&raw.image) && !model_set {
        problems.push(invalid(
            "image",
            None,
            "weights require 'model', not 'image' — rename 'image' to 'model'",
            "rename the `image:` key to `model:`",
        ));
    } else if !model_set {
        problems.push(invalid(
            "model",
            None,
            "weights require 'model' in cog.yaml — rename 'image' to 'model'",
            "add `model: <registry>/<user>/<name>` to cog.yaml",
        ));
    }
    let mut names: Vec<String> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for (i, weight) in weights.iter().enumerate() {
        let idx = format!("weights[{i}]");
        validate_weight_name(&idx, &weight.name, &mut names, problems);
        if weight.source.items.is_empty() {
            problems.push(invalid(
                &format!("{idx}.source"),
                None,
                "source is required",
                "add `source: {uri: <where the files come from>}`",
            ));
        }
        for (j, source) in weight.source.items.iter().enumerate() {
            let field = if weight.source.items.len() == 1 {
                format!("{idx}.source")
            } else {
                format!("{idx}.source[{j}]")
            };
            validate_patterns(&format!("{field}.include"), &source.include, problems);
            validate_patterns(&format!("{field}.exclude"), &source.exclude, problems);
        }
        validate_weight_target(&idx, &weight.target, &mut targets, problems);
    }
}

fn validate_weight_name(
    idx: &str,
    name: &str,
    seen: &mut Vec<String>,
    problems: &mut Vec<Problem>,
) {
    let field = format!("{idx}.name");
    if name.is_empty() {
        problems.push(invalid(
            &field,
            None,
            "name is required",
            "give the weight a name, e.g. `name: base-model`",
        ));
    } else if !WEIGHT_NAME.is_match(name) {
        problems.push(invalid(&field, Some(name), "must contain only lowercase alphanumeric characters, hyphens, dots, or underscores (e.g. \"my-model-weights\")", "rename the weight using lowercase letters, digits and - . _"));
    } else if seen.iter().any(|n| n == name) {
        problems.push(invalid(
            &field,
            Some(name),
            "duplicate weight name",
            "give every weight a different name",
        ));
    } else {
        seen.push(name.to_string());
    }
}

fn validate_patterns(field: &str, patterns: &[String], problems: &mut Vec<Problem>) {
    for (i, raw) in patterns.iter().enumerate() {
        let pattern = raw.trim();
        let here = format!("{field}[{i}]");
        if pattern.is_empty() {
            problems.push(invalid(
                &here,
                None,
                "pattern must not be empty",
                "remove the empty pattern",
            ));
            continue;
        }
        if pattern.starts_with('!') {
            problems.push(invalid(
                &here,
                Some(pattern),
                "negation patterns (starting with '!') are not supported",
                "move the pattern to the other list (include ↔ exclude) instead of negating it",
            ));
        }
        if pattern.contains('\\') {
            problems.push(invalid(
                &here,
                Some(pattern),
                "patterns must use forward slashes, not backslashes",
                "write the pattern with / separators",
            ));
        }
    }
}

/// Go's `filepath.Clean` for absolute or relative Unix paths.
fn clean_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn validate_weight_target(
    idx: &str,
    target: &str,
    seen: &mut Vec<String>,
    problems: &mut Vec<Problem>,
) {
    let field = format!("{idx}.target");
    if target.is_empty() {
        problems.push(invalid(
            &field,
            None,
            "target is required",
            "add `target: /src/weights` (an absolute directory in the container)",
        ));
        return;
    }
    if !target.starts_with('/') {
        problems.push(invalid(
            &field,
            Some(target),
            "target must be an absolute path",
            "start the target with /, e.g. /src/weights",
        ));
    }
    let cleaned = clean_path(target);
    if cleaned == "/" {
        problems.push(invalid(
            &field,
            Some(target),
            "target must not be the container root \"/\"",
            "pick a directory such as /src/weights",
        ));
    }
    if seen.contains(&cleaned) {
        problems.push(invalid(
            &field,
            Some(target),
            "duplicate weight target",
            "give every weight its own target directory",
        ));
        return;
    }
    let overlap = seen
        .iter()
        .find(|prev| is_subpath(&cleaned, prev) || is_subpath(prev, &cleaned));
    if let Some(prev) = overlap {
        problems.push(invalid(
            &field,
            Some(target),
            &format!(
                "target overlaps with {}; weight targets must be disjoint",
                go_quote(prev)
            ),
            "use target directories that do not contain one another",
        ));
    }
    seen.push(cleaned);
}

fn is_subpath(child: &str, parent: &str) -> bool {
    child != parent && child.starts_with(&format!("{parent}/"))
}

fn validate_predictor_files(raw: &RawFile, project_dir: &Path, problems: &mut Vec<Problem>) {
    let refs = [
        ("run", &raw.run),
        ("predict", &raw.predict),
        ("train", &raw.train),
    ];
    for (field, value) in refs {
        let Some(reference) = some_non_empty(value) else {
            continue;
        };
        let Some((file, _)) = reference.split_once(".py:") else {
            continue;
        };
        let file = format!("{file}.py");
        if !project_dir.join(&file).is_file() {
            problems.push(invalid(
                field,
                Some(&reference),
                &format!(
                    "predictor file {} does not exist in the project directory",
                    go_quote(&file)
                ),
                &format!(
                    "create {file} next to cog.yaml or point {field} at the right <file>.py:<Class>"
                ),
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Conversion and completion (cog Config.Complete).

fn convert(raw: &RawFile) -> Config {
    let predict = some_non_empty(&raw.run).or_else(|| some_non_empty(&raw.predict));
    Config {
        build: raw.build.as_ref().map(convert_build),
        image: some_non_empty(&raw.image),
        model: some_non_empty(&raw.model),
        predict,
        train: some_non_empty(&raw.train),
        concurrency_max: raw.concurrency.as_ref().and_then(|c| c.max),
        environment: raw.environment.clone().unwrap_or_default(),
        weights: raw.weights.iter().flatten().map(convert_weight).collect(),
    }
}

fn convert_build(raw: &RawBuild) -> Build {
    Build {
        gpu: raw.gpu.unwrap_or(false),
        python_version: raw.python_version.clone().unwrap_or_default(),
        python_requirements: some_non_empty(&raw.python_requirements),
        python_packages: raw.python_packages.clone().unwrap_or_default(),
        run: raw
            .run
            .iter()
            .flatten()
            .map(|item| RunItem {
                command: item.command.clone(),
                mounts: item
                    .mounts
                    .iter()
                    .map(|m| RunMount {
                        kind: m.kind.clone(),
                        id: m.id.clone(),
                        target: m.target.clone(),
                    })
                    .collect(),
            })
            .collect(),
        system_packages: raw.system_packages.clone().unwrap_or_default(),
        pre_install: raw.pre_install.clone().unwrap_or_default(),
        cuda: some_non_empty(&raw.cuda),
        cudnn: some_non_empty(&raw.cudnn),
        sdk_version: some_non_empty(&raw.sdk_version),
    }
}

fn convert_weight(raw: &parse::RawWeight) -> WeightDecl {
    WeightDecl {
        name: raw.name.clone(),
        target: raw.target.clone(),
        sources: raw
            .source
            .items
            .iter()
            .map(|s| WeightSource {
                uri: s.uri.clone(),
                include: s.include.clone(),
                exclude: s.exclude.clone(),
            })
            .collect(),
        source_is_list: raw.source.is_list,
    }
}

fn complete(mut project: Project) -> Result<Project, Vec<Problem>> {
    let build = project.config.build.clone().unwrap_or_default();
    if let Some(file) = &build.python_requirements {
        let path = requirements_path(&project.dir, file);
        project.requirements = requirements::read_requirements(&path).map_err(|e| {
            vec![Problem::new(
                "build.python_requirements",
                format!(
                    "failed to open python_requirements file: open {}: {e}",
                    path.display()
                ),
                "make the requirements file readable",
            )]
        })?;
        project.local_artifacts =
            requirements::resolve_local_artifacts(&project.dir, &path, &project.requirements)
                .map_err(|messages| {
                    messages
                        .into_iter()
                        .map(|m| {
                            Problem::new(
                                "build.python_requirements",
                                m,
                                "list local wheels/sdists as bare paths (./dist/pkg-1.0-py3-none-any.whl) to files inside the project",
                            )
                        })
                        .collect::<Vec<_>>()
                })?;
    } else {
        project.requirements = build.python_packages.clone();
    }
    if build.gpu {
        let warnings = complete_cuda(&mut project).map_err(|p| vec![p])?;
        project.warnings.extend(warnings);
    }
    let (environment, errors) = parse_environment(&project.config.environment);
    if let Some(message) = errors.into_iter().next() {
        return Err(vec![Problem::new(
            "environment",
            message,
            "fix the environment entry",
        )]);
    }
    project.environment = environment;
    Ok(project)
}

fn cuda_problem(message: String, hint: &str) -> Problem {
    Problem::new("build.cuda", message, hint)
}

/// Resolves CUDA and cuDNN for a GPU project (§2.5); returns warnings.
fn complete_cuda(project: &mut Project) -> Result<Vec<String>, Problem> {
    let mut warnings = Vec::new();
    let mut build = project.config.build.clone().unwrap_or_default();
    let mut cuda = build.cuda.clone().unwrap_or_default();
    let mut cudnn = build.cudnn.clone().unwrap_or_default();
    if !cuda.is_empty() {
        check_cuda_for_completion(&cuda)?;
    }
    if !cuda.is_empty() && !cudnn.is_empty() {
        let compatible = catalog::compatible_cudnns_for_cuda(&cuda);
        if !compatible.contains(&cudnn) {
            return Err(Problem::new(
                "build.cudnn",
                format!(
                    "the specified CUDA version {cuda} is not compatible with CuDNN {cudnn}.\nCompatible CuDNN versions are: {}",
                    compatible.join(",")
                ),
                "pick a CUDA/cuDNN pair listed in base-images/cuda.toml, or remove build.cudnn",
            ));
        }
    }
    let torch = project.torch_version();
    let torch_cudas = match &torch {
        Some(v) => catalog::cudas_from_torch(v).map_err(|m| {
            Problem::new(
                "build.python_requirements",
                m,
                "pin torch to an exact version in the requirements, e.g. torch==2.5.1",
            )
        })?,
        None => Vec::new(),
    };
    let tf = project.tensorflow_version();
    let tf_facts = tf.as_deref().and_then(catalog::cuda_from_tf);
    if let Some(tf) = tf.filter(|v| !v.is_empty()) {
        let (tf_cuda, tf_cudnn) = tf_facts.unwrap_or_default();
        if cuda.is_empty() {
            if tf_cudnn.is_empty() {
                return Err(cuda_problem(
                    format!(
                        "cog doesn't know what CUDA version is compatible with tensorflow=={tf}. You might need to upgrade Cog: https://github.com/replicate/cog#upgrade\n\nIf that doesn't work, you need to set the 'cuda' option in cog.yaml to set what version to use. You might be able to find this out from https://www.tensorflow.org/"
                    ),
                    "set build.cuda (and build.cudnn) explicitly",
                ));
            }
            cuda = tf_cuda.clone();
        } else if tf_cuda.is_empty() || version::equal_minor(&tf_cuda, &cuda) {
            warnings.push(format!("Cog doesn't know if CUDA {cuda} is compatible with Tensorflow {tf}. This might cause CUDA problems."));
            if !tf_cuda.is_empty() {
                warnings.push(format!("Try {tf_cuda} instead?"));
            }
        }
        if cudnn.is_empty() && !tf_cudnn.is_empty() {
            cudnn = tf_cudnn;
        } else if cudnn.is_empty() {
            cudnn = latest_cudnn(&cuda)?;
        } else if tf_cudnn != cudnn {
            warnings.push(format!("Cog doesn't know if cuDNN {cudnn} is compatible with Tensorflow {tf}. This might cause CUDA problems."));
            return Err(Problem::new(
                "build.cudnn",
                format!(
                    "the specified cuDNN version {cudnn} is not compatible with tensorflow=={tf}.\nCompatible cuDNN version is: {tf_cudnn}"
                ),
                "remove build.cudnn or set it to the compatible version",
            ));
        }
    } else if let Some(torch) = torch.filter(|v| !v.is_empty()) {
        if cuda.is_empty() {
            cuda = catalog::latest_cuda_from(&torch_cudas).ok_or_else(|| {
                cuda_problem(
                    format!("cog doesn't know what CUDA version is compatible with torch=={torch}. You might need to upgrade Cog: https://github.com/replicate/cog#upgrade\n\nIf that doesn't work, you need to set the 'cuda' option in cog.yaml to set what version to use. You might be able to find this out from https://pytorch.org/"),
                    "set build.cuda explicitly, or pin a torch version listed in base-images/torch.toml",
                )
            })?;
        } else if !torch_cudas.iter().any(|c| version::equal_minor(c, &cuda)) {
            warnings.push(format!("Cog doesn't know if CUDA {cuda} is compatible with PyTorch {torch}. This might cause CUDA problems."));
            if let Some(last) = torch_cudas.last() {
                warnings.push(format!("Try {last} instead?"));
            }
        }
        if cudnn.is_empty() {
            cudnn = latest_cudnn(&cuda)?;
        }
    } else {
        if cuda.is_empty() {
            cuda = catalog::DEFAULT_CUDA.to_string();
        }
        if cudnn.is_empty() {
            cudnn = latest_cudnn(&cuda)?;
        }
    }
    build.cuda = Some(cuda);
    build.cudnn = Some(cudnn);
    project.config.build = Some(build);
    Ok(warnings)
}

fn latest_cudnn(cuda: &str) -> Result<String, Problem> {
    catalog::latest_cudnn_for_cuda(cuda).map_err(|m| {
        cuda_problem(
            m,
            "set build.cuda to a version listed in base-images/cuda.toml",
        )
    })
}

fn check_cuda_for_completion(cuda: &str) -> Result<(), Problem> {
    let hint = "write the CUDA version as major.minor, e.g. \"12.4\"";
    let parts: Vec<&str> = cuda.split('.').collect();
    if parts.len() < 2 {
        return Err(cuda_problem(
            format!(
                "CUDA version {} must include both major and minor versions",
                go_quote(cuda)
            ),
            hint,
        ));
    }
    let Some(major) = go_atoi(parts[0]) else {
        return Err(cuda_problem(
            format!("invalid major version in CUDA version {}", go_quote(cuda)),
            hint,
        ));
    };
    if go_atoi(parts[1]).is_none() {
        return Err(cuda_problem(
            format!("invalid minor version in CUDA version {}", go_quote(cuda)),
            hint,
        ));
    }
    if major < 11 {
        return Err(cuda_problem(
            format!(
                "minimum supported CUDA version is 11, requested {}",
                go_quote(cuda)
            ),
            hint,
        ));
    }
    Ok(())
}

/// cog's check of an explicit `build.sdk_version` (§4.6): `prerelease` and
/// unparsable versions pass; a version below 0.16.0 gives
/// `cog version X is below the minimum required version 0.16.0`. Only applies
/// when `COG_SDK_WHEEL` does not override the SDK source.
pub fn validate_sdk_version(sdk_version: &str) -> Result<(), String> {
    if sdk_version.is_empty() || sdk_version == "prerelease" {
        return Ok(());
    }
    static BASE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(\d+\.\d+\.\d+)").expect("valid regex"));
    let base = BASE
        .find(sdk_version)
        .map(|m| m.as_str())
        .unwrap_or(sdk_version);
    if version::Version::parse(base).is_none() || version::greater_or_equal(base, "0.16.0") {
        return Ok(());
    }
    Err(format!(
        "cog version {sdk_version} is below the minimum required version 0.16.0"
    ))
}
