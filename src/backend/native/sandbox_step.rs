//! Plan steps that run commands (`build.run` items, `system_packages`, the
//! CA certificate, and on nvidia/cuda bases cog's Python prerequisites and
//! `uv python install`), executed in the build sandbox over the layers below
//! them and cached like BuildKit: a step is reused when its parent chain,
//! command line, environment, working directory and secret ids are
//! unchanged. A documented set of host variables (proxies, uv's Python
//! download mirror) is passed in without reaching a layer.

use super::{NativeError, NativeSettings, base_env};
use crate::layer::{BuiltLayer, build_layer};
use crate::oci::Descriptor;
use crate::oci::image::BaseImage;
use crate::oci::store::{LayerRecord, Store};
use crate::plan::image::ImageConfig;
use crate::plan::secrets::{SecretSource, SecretSpec};
use crate::plan::{BuildPlan, Step, StepKind};
use crate::sandbox::{
    self, BindDir, BindFile, BlobSource, LayerRef, RunSpec, SandboxError, StoreBlobs,
};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::sync::Arc;

/// Blobs of the base image, shared with the engine (e.g. a registry).
#[derive(Clone)]
pub struct SharedBlobs(pub Arc<dyn BlobSource>);

impl std::fmt::Debug for SharedBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedBlobs(..)")
    }
}

/// True for steps this engine runs in the sandbox.
pub fn is_sandbox_step(step: &Step) -> bool {
    matches!(
        step.kind,
        StepKind::RunCommand { .. }
            | StepKind::SystemPackages { .. }
            | StepKind::CaCert { .. }
            | StepKind::PythonPrerequisites { .. }
            | StepKind::PythonInstall { .. }
    ) && step.native.is_native()
}

/// A `--mount=` flag in front of a `RUN` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFlagMount {
    /// `type=secret,id=…,target=…`.
    Secret {
        /// Secret id.
        id: String,
        /// Where it appears (default `/run/secrets/<id>`).
        target: String,
    },
    /// `type=cache,target=…` (id defaults to the target).
    Cache {
        /// Cache id.
        id: String,
        /// Where it is mounted.
        target: String,
    },
}

/// Splits a Dockerfile `RUN` line into its `--mount=` flags and the shell
/// command, as BuildKit reads it.
pub fn parse_run_line(line: &str) -> (Vec<RunFlagMount>, String) {
    let mut rest = line.strip_prefix("RUN ").unwrap_or(line).trim_start();
    let mut mounts = Vec::new();
    while let Some(flag) = rest.strip_prefix("--mount=") {
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let fields: Vec<(&str, &str)> = flag[..end]
            .split(',')
            .filter_map(|f| f.split_once('='))
            .collect();
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| {
                    *k == key || (key == "target" && matches!(*k, "dst" | "destination"))
                })
                .map(|(_, v)| v.to_string())
        };
        let target = get("target").unwrap_or_default();
        match get("type").as_deref() {
            Some("secret") => {
                let id = get("id").unwrap_or_default();
                let target = if target.is_empty() {
                    format!("/run/secrets/{id}")
                } else {
                    target
                };
                mounts.push(RunFlagMount::Secret { id, target });
            }
            Some("cache") if !target.is_empty() => mounts.push(RunFlagMount::Cache {
                id: get("id").unwrap_or_else(|| target.clone()),
                target,
            }),
            _ => {}
        }
        rest = flag[end..].trim_start();
    }
    (mounts, rest.to_string())
}

/// cog's curl install at the start of its tini step (paths A/B), without the
/// tini download (the tini layer is written from the pinned binary).
pub const CURL_LINE: &str = "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked set -eux; apt-get update -qq && apt-get install -qqy --no-install-recommends curl; rm -rf /var/lib/apt/lists/*";

/// A command to run as a layer: its id (output prefix) and Dockerfile line.
pub struct SandboxCommand {
    /// Step id, e.g. `run-1`.
    pub id: String,
    /// The `RUN` line, mount flags included.
    pub line: String,
    /// Files bound read-only during the run only, as `(content, target)`;
    /// their content is part of the cache key (they are not secrets).
    pub files: Vec<(Vec<u8>, String)>,
    /// `KEY=VALUE` set by `ENV` lines of the same step before this `RUN`
    /// (e.g. cog's `CFLAGS` around pip installs); they win over the image env.
    pub env: Vec<String>,
}

impl SandboxCommand {
    /// The command of a sandbox step of the plan: its `RUN` line. The CA
    /// certificate step's `COPY` into `/tmp` becomes a read-only bind of the
    /// certificate there (so it does not linger in a layer).
    pub fn of_step(step: &Step) -> Self {
        let lines = crate::backend::docker::step_instructions(step);
        let line = lines
            .iter()
            .find(|l| l.starts_with("RUN "))
            .cloned()
            .unwrap_or_else(|| super::created_by(step));
        let files = match &step.kind {
            StepKind::CaCert { contents, .. } => vec![(
                contents.clone(),
                format!("/tmp/{}", crate::plan::step::CA_CERT_FILE_NAME),
            )],
            _ => Vec::new(),
        };
        SandboxCommand {
            id: step.id.clone(),
            line,
            files,
            env: Vec::new(),
        }
    }

    /// Every `RUN` of a step whose Dockerfile lines also `COPY` files from
    /// cog's build context and set `ENV`s between the `RUN`s (the
    /// requirements and cog runtime installs): the copies become read-only
    /// binds (`files` maps a build-context name to its bytes), the `ENV`s
    /// the environment of the `RUN`s after them.
    pub fn all_of_step(
        step: &Step,
        files: &dyn Fn(&str) -> Result<Vec<u8>, NativeError>,
    ) -> Result<Vec<SandboxCommand>, NativeError> {
        let mut bound: Vec<(Vec<u8>, String)> = Vec::new();
        let mut env: Vec<String> = Vec::new();
        let mut commands = Vec::new();
        for line in crate::backend::docker::step_instructions(step) {
            if let Some(copy) = line.strip_prefix("COPY --from=cog_build ") {
                let (name, target) = copy.split_once(' ').unwrap_or((copy, ""));
                bound.push((files(name)?, target.to_string()));
            } else if let Some(assignment) = line.strip_prefix("ENV ") {
                let (key, value) = assignment.split_once('=').unwrap_or((assignment, ""));
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                env.retain(|kv| kv.split_once('=').map(|(k, _)| k) != Some(key));
                if !value.is_empty() {
                    env.push(format!("{key}={value}"));
                }
            } else if line.starts_with("RUN ") {
                commands.push(SandboxCommand {
                    id: step.id.clone(),
                    line,
                    files: bound.clone(),
                    env: env.clone(),
                });
            }
        }
        Ok(commands)
    }
}

/// Runs one sandbox step over `base` + `below` (layers of earlier steps of
/// this build, bottom first), or takes its layer from the cache.
/// `earlier_keys` are the cache keys of the sandbox steps before it: as in
/// BuildKit, changing a command re-runs every later command even when its
/// output happens to be identical. Returns the layer and this step's key.
#[allow(clippy::too_many_arguments)]
pub fn run_step(
    plan: &BuildPlan,
    step_index: usize,
    what: &SandboxCommand,
    base: &BaseImage,
    below: &[LayerRecord],
    earlier_keys: &[String],
    settings: &NativeSettings,
    store: &Store,
) -> Result<(BuiltLayer, String), NativeError> {
    let line = &what.line;
    let (mounts, command) = parse_run_line(line);
    let chain = parent_chain(base, below)?;
    let mut env = step_env(plan, step_index, base);
    let workdir = base_workdir(base);
    let mut key_line = line.clone();
    for (content, target) in &what.files {
        let digest = hex::encode(Sha256::digest(content));
        key_line.push_str(&format!("\nfile:{target}:{digest}"));
    }
    for kv in &what.env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        env.retain(|existing| existing.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(kv.clone());
    }
    for (name, value) in forwarded_env(&env) {
        if KEYED_FORWARDED_ENV.contains(&name) {
            key_line.push_str(&format!("\nforwarded:{name}={value}"));
        }
        env.push(format!("{name}={value}"));
    }
    let key = cache_key(&chain, earlier_keys, &key_line, &env, &workdir, settings);
    if !settings.no_cache
        && let Some(record) = store.cached_layer(&key).map_err(layer_store_error)?
    {
        let layer = BuiltLayer {
            record,
            cached: true,
        };
        return Ok((layer, key));
    }
    let source = ChainBlobs {
        store: store.clone(),
        remote: settings.base_blobs.clone(),
    };
    let quiet = settings.quiet_steps;
    let progress = |text: &str| {
        if !quiet {
            eprintln!("{text}");
        }
    };
    let (lower_dirs, _) = sandbox::ensure_layers(store, &chain, &source, &progress)?;
    let scratch = sandbox::scratch_dir(store);
    std::fs::create_dir_all(&scratch).map_err(SandboxError::io("create", &scratch))?;
    let secret_dir = tempfile::Builder::new()
        .prefix("secrets-")
        .tempdir_in(sandbox::scratch_dir(store))
        .map_err(SandboxError::io(
            "create temp dir in",
            &sandbox::scratch_dir(store),
        ))?;
    let (mut secrets, caches) = bind_mounts(&mounts, &plan.secrets, secret_dir.path(), store)?;
    for (index, (content, target)) in what.files.iter().enumerate() {
        let path = secret_dir.path().join(format!("file-{index}"));
        write_private(&path, content)?;
        // Not a secret: readable like a file Docker's COPY writes.
        let readable =
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
        std::fs::set_permissions(&path, readable).map_err(SandboxError::io("chmod", &path))?;
        secrets.push(BindFile {
            source: path,
            target: target.clone(),
        });
    }
    let targets: Vec<String> = secrets
        .iter()
        .map(|s| s.target.clone())
        .chain(caches.iter().map(|c| c.target.clone()))
        .collect();
    let spec = RunSpec {
        step_name: what.id.clone(),
        command,
        env,
        workdir,
        lower_dirs: lower_dirs.clone(),
        secrets,
        cache_dirs: caches,
    };
    progress(&format!("Running [{}] {}", what.id, spec.command));
    let run = sandbox::run_command(
        &spec,
        &sandbox::rootfs::rootfs_root(store),
        &sandbox::scratch_dir(store),
        &mut |text| progress(text),
    )?;
    drop(secret_dir);
    let diff = sandbox::upper_entries(&run.upper(), &targets, &lower_dirs)?;
    for path in &diff.skipped {
        progress(&format!(
            "[{}] left out of the layer (not a file, directory or link): {path}",
            what.id
        ));
    }
    let record = build_layer(diff.entries, settings.layer, store)?;
    store
        .record_layer(&key, &record)
        .map_err(layer_store_error)?;
    let layer = BuiltLayer {
        record,
        cached: false,
    };
    Ok((layer, key))
}

/// Store errors while reading or writing the step cache.
fn layer_store_error(error: crate::oci::store::StoreError) -> NativeError {
    NativeError::Layer(error.into())
}

/// The base layers and this build's earlier layers, bottom first.
fn parent_chain(base: &BaseImage, below: &[LayerRecord]) -> Result<Vec<LayerRef>, NativeError> {
    let diff_ids = base.diff_ids()?;
    if diff_ids.len() != base.layers.len() {
        return Err(NativeError::Unsupported(format!(
            "base image {} lists {} layers but {} diff_ids\nhint: the base image is malformed; pick another base",
            base.reference,
            base.layers.len(),
            diff_ids.len()
        )));
    }
    let mut chain: Vec<LayerRef> = base
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(descriptor, diff_id)| LayerRef {
            descriptor: descriptor.clone(),
            diff_id,
        })
        .collect();
    chain.extend(below.iter().map(|record| LayerRef {
        descriptor: record.descriptor(),
        diff_id: record.diff_id.clone(),
    }));
    Ok(chain)
}

/// The env at this point of the Dockerfile (base env, then every `ENV` of
/// the steps before), plus cog's `DEBIAN_FRONTEND=noninteractive`.
fn step_env(plan: &BuildPlan, step_index: usize, base: &BaseImage) -> Vec<String> {
    let mut image = plan.image.clone();
    image.env = ImageConfig::env_from_steps(&plan.steps[..step_index]);
    let mut env: Vec<String> = image
        .final_env(&base_env(base))
        .into_iter()
        .filter(|kv| !kv.starts_with("DEBIAN_FRONTEND="))
        .collect();
    env.push("DEBIAN_FRONTEND=noninteractive".to_string());
    // Docker gives every container a PATH and HOME when the image has none.
    for (key, default) in [("PATH", DEFAULT_PATH), ("HOME", "/root")] {
        if !env.iter().any(|kv| kv.starts_with(&format!("{key}="))) {
            env.push(format!("{key}={default}"));
        }
    }
    env
}

/// Host variables passed into every sandbox step when set, like BuildKit's
/// predefined proxy build args: they reach the command but never a layer or
/// the image config. Proxies do not change what a step produces, so (as in
/// BuildKit) they stay out of the cache key.
pub const FORWARDED_PROXY_ENV: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Host variables passed into every sandbox step when set that choose what
/// `uv python install` downloads (a python-build-standalone mirror, or a
/// downloads list with URLs and SHA-256s): forwarded like the proxies, and
/// part of the cache key because they can change the result.
pub const KEYED_FORWARDED_ENV: [&str; 2] =
    ["UV_PYTHON_INSTALL_MIRROR", "UV_PYTHON_DOWNLOADS_JSON_URL"];

/// The forwarded host variables that are set, non-empty and not already set
/// by the image at this step (the image's own value wins).
fn forwarded_env(step_env: &[String]) -> Vec<(&'static str, String)> {
    FORWARDED_PROXY_ENV
        .iter()
        .chain(KEYED_FORWARDED_ENV.iter())
        .filter(|name| {
            !step_env
                .iter()
                .any(|kv| kv.split_once('=').is_some_and(|(k, _)| k == **name))
        })
        .filter_map(|name| {
            let value = std::env::var(name).ok().filter(|v| !v.is_empty())?;
            Some((*name, value))
        })
        .collect()
}

/// Docker's PATH for containers whose image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The base config's `WorkingDir`, or `/`.
fn base_workdir(base: &BaseImage) -> String {
    serde_json::from_slice::<serde_json::Value>(&base.config)
        .ok()
        .and_then(|v| {
            v.pointer("/config/WorkingDir")?
                .as_str()
                .map(str::to_string)
        })
        .filter(|dir| !dir.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// Everything a step's result depends on, never a secret's content.
fn cache_key(
    chain: &[LayerRef],
    earlier_keys: &[String],
    line: &str,
    env: &[String],
    workdir: &str,
    settings: &NativeSettings,
) -> String {
    let mut hasher = Sha256::new();
    for layer in chain {
        hasher.update(format!("parent:{}\n", layer.diff_id));
    }
    for key in earlier_keys {
        hasher.update(format!("earlier-step:{key}\n"));
    }
    hasher.update(format!("line:{line}\n"));
    for kv in env {
        hasher.update(format!("env:{kv}\n"));
    }
    hasher.update(format!("workdir:{workdir}\n"));
    format!(
        "sandbox-step-v1\n{}\n{}",
        hex::encode(hasher.finalize()),
        settings.layer.cache_tag()
    )
}

/// The step's secret files (env secrets written to `secret_dir`) and cache
/// directories. A secret the build was not given is left out, as BuildKit
/// does for a non-required secret.
fn bind_mounts(
    mounts: &[RunFlagMount],
    secrets: &[SecretSpec],
    secret_dir: &std::path::Path,
    store: &Store,
) -> Result<(Vec<BindFile>, Vec<BindDir>), NativeError> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for mount in mounts {
        match mount {
            RunFlagMount::Secret { id, target } => {
                let Some(spec) = secrets.iter().find(|s| &s.id == id) else {
                    continue;
                };
                let source = match &spec.source {
                    SecretSource::File { path } => path.clone(),
                    SecretSource::Env { name } => {
                        let path = secret_dir.join(format!("env-{}", files.len()));
                        let value = std::env::var_os(name).unwrap_or_default();
                        write_private(&path, value.as_encoded_bytes())?;
                        path
                    }
                };
                files.push(BindFile {
                    source,
                    target: target.clone(),
                });
            }
            RunFlagMount::Cache { id, target } => {
                let dir = sandbox::scratch_dir(store)
                    .with_file_name("sandbox-cache")
                    .join(hex::encode(Sha256::digest(id.as_bytes())));
                std::fs::create_dir_all(&dir).map_err(SandboxError::io("create", &dir))?;
                dirs.push(BindDir {
                    source: dir,
                    target: target.clone(),
                });
            }
        }
    }
    Ok((files, dirs))
}

/// Writes a file readable only by its owner.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), NativeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .map_err(SandboxError::io("create", path))?;
    file.write_all(bytes)
        .map_err(|e| NativeError::from(SandboxError::io("write", path)(e)))
}

/// Layers from the store when present there, else from the base's source.
struct ChainBlobs {
    store: Store,
    remote: Option<SharedBlobs>,
}

impl BlobSource for ChainBlobs {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SandboxError> {
        match &self.remote {
            Some(remote) if !self.store.has_blob(&descriptor.digest) => remote.0.open(descriptor),
            _ => StoreBlobs(self.store.clone()).open(descriptor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_line_flags_are_split_from_the_command() {
        let (mounts, command) = parse_run_line(
            "RUN --mount=type=secret,id=tok,target=/root/.netrc --mount=type=cache,target=/root/.cache/pip pip install x",
        );
        assert_eq!(command, "pip install x");
        assert_eq!(
            mounts,
            vec![
                RunFlagMount::Secret {
                    id: "tok".into(),
                    target: "/root/.netrc".into()
                },
                RunFlagMount::Cache {
                    id: "/root/.cache/pip".into(),
                    target: "/root/.cache/pip".into()
                },
            ]
        );
    }

    #[test]
    fn secret_without_target_goes_to_run_secrets_and_plain_lines_pass_through() {
        let (mounts, command) = parse_run_line("RUN --mount=type=secret,id=hf cat /run/secrets/hf");
        assert_eq!(command, "cat /run/secrets/hf");
        assert_eq!(
            mounts,
            vec![RunFlagMount::Secret {
                id: "hf".into(),
                target: "/run/secrets/hf".into()
            }]
        );
        let (mounts, command) = parse_run_line("RUN echo --mount=not-a-flag");
        assert!(mounts.is_empty());
        assert_eq!(command, "echo --mount=not-a-flag");
    }

    #[test]
    fn requirements_step_runs_cogs_pip_line_with_cflags_and_the_file_bound() {
        let step = Step {
            id: "requirements".into(),
            name: "requirements".into(),
            config_only: false,
            native: crate::plan::NativeSupport::Native,
            kind: StepKind::Requirements {
                text: "cext==0.1.0".into(),
                local_artifacts: Vec::new(),
                uninstall_managed: false,
                break_system_packages: true,
                strip: false,
                env: crate::plan::step::install_cflags_env(),
            },
        };
        let commands =
            SandboxCommand::all_of_step(&step, &|name| Ok(format!("<{name}>").into_bytes()))
                .unwrap();
        assert_eq!(commands.len(), 1);
        let command = &commands[0];
        assert_eq!(
            command.line,
            "RUN --mount=type=cache,target=/root/.cache/pip uv run pip install --break-system-packages --cache-dir /root/.cache/pip -r /tmp/requirements.txt"
        );
        assert_eq!(
            command.files,
            vec![(
                b"<requirements.txt>".to_vec(),
                "/tmp/requirements.txt".to_string()
            )]
        );
        assert_eq!(
            command.env,
            vec!["CFLAGS=-O3 -funroll-loops -fno-strict-aliasing -flto -S".to_string()]
        );
    }

    #[test]
    fn cog_apt_line_keeps_the_exact_command() {
        let (mounts, command) = parse_run_line(CURL_LINE);
        assert_eq!(mounts.len(), 1);
        assert_eq!(
            command,
            "set -eux; apt-get update -qq && apt-get install -qqy --no-install-recommends curl; rm -rf /var/lib/apt/lists/*"
        );
    }
}
