//! The native engine: turns a [`BuildPlan`] into OCI layers and an image in
//! the local store, without Docker.
//!
//! Two phases, because the schema's `info.version` and the `run.cog.version`
//! label depend on the resolved cog SDK: [`resolve_python`] resolves, fetches
//! and installs the Python packages into layer entries; [`assemble`] then
//! writes every layer (in parallel, cached by input) and the image.

mod python_step;
mod sandbox_step;

pub use python_step::{
    PythonSettings, install_python, python_target, requirements_in_sandbox, resolve_python,
    uv_managed_target, uv_python_version,
};
pub use sandbox_step::{
    CURL_LINE, FORWARDED_PROXY_ENV, KEYED_FORWARDED_ENV, RunFlagMount, SandboxCommand, SharedBlobs,
    is_sandbox_step, parse_run_line,
};

use crate::layer::fetch::{FixedFile, fetch_fixed_file, generated_file};
use crate::layer::source::{SourceOptions, scan_source_tree};
use crate::layer::{BuiltLayer, Entry, LayerError, LayerJob, LayerOptions, build_layers};
use crate::oci::image::{
    AddedLayer, BaseImage, ConfigAdditions, ImageSpec, StoreImage, assemble as assemble_image,
};
use crate::oci::store::Store;
use crate::plan::image::labels;
use crate::plan::{BuildPlan, CogFile, Step, StepKind};
use crate::python::PythonLayers;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why a native build failed.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// A layer could not be written.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The image could not be assembled.
    #[error(transparent)]
    Image(#[from] crate::oci::image::ImageError),
    /// Python packages could not be resolved, fetched or installed.
    #[error(
        "{0:#}\nhint: check the requirements; `--backend docker` runs pip inside the image instead"
    )]
    Python(anyhow::Error),
    /// A step run in the build sandbox failed, or the sandbox cannot run.
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// The plan asks for something this engine cannot do.
    #[error("{0}")]
    Unsupported(String),
}

/// Options of a native build that do not come from the plan.
#[derive(Debug, Clone)]
pub struct NativeSettings {
    /// Compression and mtime of every layer.
    pub layer: LayerOptions,
    /// `SOURCE_DATE_EPOCH`, if set.
    pub source_date_epoch: Option<u64>,
    /// The tini binary placed at `/sbin/tini` on python:slim and CUDA bases.
    pub tini: FixedFile,
    /// Project-relative directories left out of `/src` (managed weights).
    pub leave_out: Vec<String>,
    /// Rebuild every layer instead of reusing cached results.
    pub no_cache: bool,
    /// Where base layers missing from the store are fetched from when a
    /// step runs in the sandbox (`None`: the store must hold them, as for
    /// an OCI-layout base).
    pub base_blobs: Option<SharedBlobs>,
    /// Do not print sandbox progress and command output.
    pub quiet_steps: bool,
    /// How Python packages were resolved; on an nvidia/cuda base (path B)
    /// they are installed again, from the lock and the wheel cache only,
    /// into the Python the python-install step put into the image.
    pub python: Option<PythonSettings>,
}

/// Bytes the build adds that are computed outside the plan.
#[derive(Debug, Clone, Default)]
pub struct GeneratedInputs {
    /// `openapi_schema.json` content, when a schema was generated.
    pub openapi_schema: Option<String>,
    /// `weights.json` content, when the model has managed weights.
    pub weights_json: Option<String>,
    /// Labels that win over the plan's (push id, resolved versions).
    pub extra_labels: BTreeMap<String, String>,
}

/// One layer the build produced, for reporting.
#[derive(Debug, Clone)]
pub struct LayerSummary {
    /// What the layer holds.
    pub name: String,
    /// Compressed digest.
    pub digest: crate::oci::Digest,
    /// Compressed size.
    pub size: u64,
    /// True when it came from the layer cache.
    pub cached: bool,
}

/// The result of [`assemble`].
pub struct NativeImage {
    /// The image in the store.
    pub image: StoreImage,
    /// The layers added on top of the base, bottom first.
    pub layers: Vec<LayerSummary>,
    /// Notices for the user (left-out directories, substitutions).
    pub notices: Vec<String>,
}

/// A layer to build with its history text.
struct NamedJob {
    name: String,
    created_by: String,
    job: LayerJob,
}

/// Writes every layer of `plan` and assembles the image on top of `base`.
pub fn assemble(
    plan: &BuildPlan,
    base: BaseImage,
    python: Option<&PythonLayers>,
    generated: &GeneratedInputs,
    settings: &NativeSettings,
    store: &Store,
) -> Result<NativeImage, NativeError> {
    let mut notices = Vec::new();
    // The host installer refused the requirements: cog's pip command, the
    // runtime install and ldconfig run in the sandbox (`python` holds the
    // cog runtime alone, for the uv binaries and the version).
    let python_in_sandbox = python.is_some_and(requirements_in_sandbox);
    if python_in_sandbox || plan.steps.iter().any(is_sandbox_step) {
        crate::sandbox::check_available(&crate::sandbox::scratch_dir(store))?;
    }
    let mut pending: Vec<NamedJob> = Vec::new();
    let mut done: Vec<(String, String, BuiltLayer)> = Vec::new();
    let mut step_keys: Vec<String> = Vec::new();
    let curl_for_runs = plan
        .steps
        .iter()
        .any(|s| matches!(s.kind, StepKind::RunCommand { .. }) && is_sandbox_step(s));
    // What the steps after this point see as the installed Python: path B's
    // install into the uv-managed Python, or the sandbox's `pip freeze`.
    let mut replaced: Option<PythonLayers> = None;
    for (index, step) in plan.steps.iter().enumerate() {
        let sandboxed_python = python_in_sandbox && runs_python_in_sandbox(step);
        for (name, what) in sandbox_commands(step, sandboxed_python, curl_for_runs)? {
            flush_jobs(&mut pending, &mut done, settings, store)?;
            let below: Vec<_> = done.iter().map(|(_, _, l)| l.record.clone()).collect();
            let (layer, key) = sandbox_step::run_step(
                plan, index, &what, &base, &below, &step_keys, settings, store,
            )?;
            step_keys.push(key);
            if matches!(step.kind, StepKind::PythonInstall { .. }) && !python_in_sandbox {
                replaced = Some(install_into_uv_python(
                    plan, &base, &layer, python, settings, store,
                )?);
            }
            done.push((name, what.line, layer));
        }
        if sandboxed_python && matches!(step.kind, StepKind::CogRuntime { .. }) {
            let below: Vec<_> = done.iter().map(|(_, _, l)| l.record.clone()).collect();
            let freeze =
                sandbox_pip_freeze(plan, index, &base, &below, &step_keys, settings, store)?;
            replaced = python.cloned().map(|mut layers| {
                layers.pip_freeze = freeze;
                layers
            });
        }
        let python = replaced.as_ref().or(python);
        if !is_sandbox_step(step) && !sandboxed_python {
            pending.extend(step_jobs(
                plan,
                step,
                python,
                generated,
                settings,
                store,
                &mut notices,
            )?);
        }
    }
    flush_jobs(&mut pending, &mut done, settings, store)?;
    let layers: Vec<AddedLayer> = done
        .iter()
        .map(|(name, created_by, layer)| AddedLayer {
            record: layer.record.clone(),
            created_by: created_by.clone(),
            comment: Some(format!("cogpack: {name}")),
        })
        .collect();
    let summaries = done
        .iter()
        .map(|(name, _, layer)| LayerSummary {
            name: name.clone(),
            digest: layer.record.digest.clone(),
            size: layer.record.size,
            cached: layer.cached,
        })
        .collect();
    let config = image_config(plan, &base, replaced.as_ref().or(python), generated)?;
    let spec = ImageSpec {
        base,
        layers,
        config,
        source_date_epoch: settings.source_date_epoch,
    };
    let image = assemble_image(&spec, store)?;
    Ok(NativeImage {
        image,
        layers: summaries,
        notices,
    })
}

/// The commands a step runs in the sandbox, with the layer names: its own
/// `RUN` line; cog's `RUN` lines of a Python step the host installer could
/// not produce (`sandboxed_python`); or, for the tini step when run items
/// follow, the curl install cog's tini step does first.
fn sandbox_commands(
    step: &Step,
    sandboxed_python: bool,
    curl_for_runs: bool,
) -> Result<Vec<(String, SandboxCommand)>, NativeError> {
    if is_sandbox_step(step) {
        return Ok(vec![(step.name.clone(), SandboxCommand::of_step(step))]);
    }
    if sandboxed_python {
        let commands = SandboxCommand::all_of_step(step, &|name| build_context_file(step, name))?;
        return Ok(commands
            .into_iter()
            .map(|what| (format!("{} (in the build sandbox)", step.name), what))
            .collect());
    }
    if curl_for_runs && matches!(step.kind, StepKind::Tini { .. }) {
        let what = SandboxCommand {
            id: step.id.clone(),
            line: sandbox_step::CURL_LINE.to_string(),
            files: Vec::new(),
            env: Vec::new(),
        };
        return Ok(vec![("curl (from cog's tini step)".to_string(), what)]);
    }
    Ok(Vec::new())
}

/// Steps that run cog's own commands in the sandbox when the host installer
/// refused the requirements.
fn runs_python_in_sandbox(step: &Step) -> bool {
    matches!(
        step.kind,
        StepKind::Requirements { .. } | StepKind::CogRuntime { .. } | StepKind::Ldconfig
    )
}

/// The bytes of a file cog's Dockerfile copies from its build context
/// (`.cog/build/`) in a Python step: `requirements.txt` or a runtime wheel.
fn build_context_file(step: &Step, name: &str) -> Result<Vec<u8>, NativeError> {
    match &step.kind {
        StepKind::Requirements { text, .. } if name == "requirements.txt" => {
            Ok(format!("{text}\n").into_bytes())
        }
        StepKind::CogRuntime { installs, .. } => {
            let path = installs
                .iter()
                .find(|install| install.staged_file_name().as_deref() == Some(name))
                .and_then(|install| match &install.source {
                    crate::plan::WheelSource::File { path } => Some(path.clone()),
                    _ => None,
                })
                .ok_or_else(|| unknown_context_file(step, name))?;
            std::fs::read(&path).map_err(|source| {
                NativeError::Layer(LayerError::Read {
                    path: path.display().to_string(),
                    source,
                })
            })
        }
        _ => Err(unknown_context_file(step, name)),
    }
}

fn unknown_context_file(step: &Step, name: &str) -> NativeError {
    NativeError::Unsupported(format!(
        "step [{}] copies {name} from cog's build context, which the build sandbox cannot provide\nhint: build with --backend docker",
        step.id
    ))
}

/// Where the sandboxed `pip freeze` writes its output (in a throw-away layer).
const PIP_FREEZE_FILE: &str = "cogpack-pip-freeze.txt";

/// `python -m pip freeze` in the image as it stands after the sandboxed
/// Python installs (cog computes the `run.cog.pip_freeze` label the same way
/// on the finished image). The layer it writes only carries the output: it
/// is read and not added to the image.
#[allow(clippy::too_many_arguments)]
fn sandbox_pip_freeze(
    plan: &BuildPlan,
    index: usize,
    base: &BaseImage,
    below: &[crate::oci::store::LayerRecord],
    earlier_keys: &[String],
    settings: &NativeSettings,
    store: &Store,
) -> Result<String, NativeError> {
    let what = SandboxCommand {
        id: "pip-freeze".to_string(),
        line: format!("RUN python -m pip freeze > /{PIP_FREEZE_FILE}"),
        files: Vec::new(),
        env: Vec::new(),
    };
    let (layer, _) = sandbox_step::run_step(
        plan,
        index + 1,
        &what,
        base,
        below,
        earlier_keys,
        settings,
        store,
    )?;
    let layer_ref = crate::sandbox::LayerRef {
        descriptor: layer.record.descriptor(),
        diff_id: layer.record.diff_id.clone(),
    };
    let (dirs, _) = crate::sandbox::ensure_layers(
        store,
        std::slice::from_ref(&layer_ref),
        &crate::sandbox::StoreBlobs(store.clone()),
        &|_| {},
    )?;
    let path = dirs[0].join(PIP_FREEZE_FILE);
    std::fs::read_to_string(&path).map_err(|source| {
        NativeError::Layer(LayerError::Read {
            path: path.display().to_string(),
            source,
        })
    })
}

/// Path B: finds the interpreter in the python-install step's layer and
/// installs the plan's packages into it from the lock and the wheel cache
/// the first phase ([`resolve_python`]) filled.
fn install_into_uv_python(
    plan: &BuildPlan,
    base: &BaseImage,
    layer: &BuiltLayer,
    python: Option<&PythonLayers>,
    settings: &NativeSettings,
    store: &Store,
) -> Result<PythonLayers, NativeError> {
    let python_settings = settings.python.as_ref().ok_or_else(|| {
        NativeError::Unsupported(
            "the native engine was not given the Python settings needed on an nvidia/cuda base"
                .to_string(),
        )
    })?;
    if python.is_none() {
        return Err(NativeError::Unsupported(
            "the python-install step ran but no Python packages were resolved".to_string(),
        ));
    }
    let layer_ref = crate::sandbox::LayerRef {
        descriptor: layer.record.descriptor(),
        diff_id: layer.record.diff_id.clone(),
    };
    let quiet = settings.quiet_steps;
    let progress = |text: &str| {
        if !quiet {
            eprintln!("{text}");
        }
    };
    let (dirs, _) = crate::sandbox::ensure_layers(
        store,
        std::slice::from_ref(&layer_ref),
        &crate::sandbox::StoreBlobs(store.clone()),
        &progress,
    )?;
    let target = uv_managed_target(&dirs[0], &python_target(plan, base)?)?;
    progress(&format!(
        "Installing Python packages into {} (site-packages {})",
        target.interpreter, target.site_packages
    ));
    let offline = PythonSettings {
        mode: crate::python::LockMode::Offline,
        ..python_settings.clone()
    };
    install_python(plan, target, &offline, &|_| {})?
        .ok_or_else(|| NativeError::Unsupported("the plan installs no Python packages".to_string()))
}

/// Builds the pending layer jobs (in parallel) and appends them to `done`
/// as `(name, created_by, layer)`.
fn flush_jobs(
    pending: &mut Vec<NamedJob>,
    done: &mut Vec<(String, String, BuiltLayer)>,
    settings: &NativeSettings,
    store: &Store,
) -> Result<(), NativeError> {
    if pending.is_empty() {
        return Ok(());
    }
    let jobs = std::mem::take(pending);
    let built = build_layers(
        jobs.iter()
            .map(|j| LayerJob {
                entries: j.job.entries.clone(),
                cache_key: j.job.cache_key.clone().filter(|_| !settings.no_cache),
            })
            .collect(),
        settings.layer,
        store,
    )?;
    done.extend(
        jobs.into_iter()
            .zip(built)
            .map(|(job, layer)| (job.name, job.created_by, layer)),
    );
    Ok(())
}

/// The layer jobs of one plan step (none for config-only steps).
fn step_jobs(
    plan: &BuildPlan,
    step: &Step,
    python: Option<&PythonLayers>,
    generated: &GeneratedInputs,
    settings: &NativeSettings,
    store: &Store,
    notices: &mut Vec<String>,
) -> Result<Vec<NamedJob>, NativeError> {
    let python_part = |pick: fn(&PythonLayers) -> &Vec<Entry>| -> Result<Vec<Entry>, NativeError> {
        python.map(|p| pick(p).clone()).ok_or_else(|| {
            NativeError::Unsupported(format!(
                "step [{}] needs Python packages but none were resolved",
                step.id
            ))
        })
    };
    let single = |entries: Vec<Entry>| {
        let key = entries_key(&step.id, &entries);
        vec![NamedJob {
            name: step.name.clone(),
            created_by: created_by(step),
            job: LayerJob {
                entries,
                cache_key: Some(key),
            },
        }]
    };
    // Wheel members are streamed, so their entries do not name content: the
    // lock (every artifact's hash) does.
    let python_job = |entries: Vec<Entry>| {
        let mut jobs = single(entries);
        if let (Some(p), Some(job)) = (python, jobs.first_mut()) {
            let lock = hex::encode(Sha256::digest(format!("{:?}", p.lock.packages)));
            if let Some(key) = &mut job.job.cache_key {
                key.push_str(&format!(
                    "
lock:{lock}"
                ));
            }
        }
        jobs
    };
    let jobs = match &step.kind {
        StepKind::Tini { .. } => {
            let entry = fetch_fixed_file(&settings.tini, store)?;
            single(vec![entry])
        }
        StepKind::Uv { .. } => python_job(python_part(|p| &p.uv_binaries)?),
        StepKind::PythonAlias => single(vec![Entry::symlink(
            "usr/local/bin/python",
            "/usr/bin/python3",
        )]),
        StepKind::Requirements { .. } => python_job(python_part(|p| &p.dependencies)?),
        StepKind::CogRuntime { .. } => {
            // Without a requirements step, the runtime's own dependencies
            // (requests, pydantic, …) still need a layer below it.
            let mut jobs = Vec::new();
            if plan.step("requirements").is_none() {
                jobs.extend(python_job(python_part(|p| &p.dependencies)?));
                if let Some(job) = jobs.first_mut() {
                    job.name = format!("{} (dependencies)", step.name);
                }
            }
            jobs.extend(python_job(python_part(|p| &p.cog_runtime)?));
            jobs
        }
        StepKind::Ldconfig => single(vec![ld_so_conf(python)]),
        StepKind::SourceTree { destination } => {
            source_jobs(plan, step, destination, settings, notices)?
        }
        StepKind::CogFiles { files } => single(cog_file_entries(files, generated)),
        // Config-only steps live in the image config; WORKDIR is created by
        // the source layer; steps that must run code were refused by the plan.
        _ => Vec::new(),
    };
    Ok(jobs
        .into_iter()
        .filter(|j| !j.job.entries.is_empty())
        .collect())
}

/// The Dockerfile line this step stands for, as image history.
fn created_by(step: &Step) -> String {
    let lines = crate::backend::docker::step_instructions(step);
    if lines.is_empty() {
        format!("cogpack: {}", step.name)
    } else {
        lines.join(" && ")
    }
}

/// A cache key naming every entry of a layer built from in-memory or
/// content-addressed inputs (paths, modes, link targets, sizes, sources).
fn entries_key(step_id: &str, entries: &[Entry]) -> String {
    let mut hasher = Sha256::new();
    for entry in entries {
        hasher.update(format!(
            "{}\0{:o}\0{}\0{}\0",
            entry.path, entry.mode, entry.uid, entry.gid
        ));
        hasher.update(match &entry.kind {
            crate::layer::EntryKind::Dir => "dir".to_string(),
            crate::layer::EntryKind::Symlink { target } => format!("symlink:{target}"),
            crate::layer::EntryKind::Hardlink { target } => format!("hardlink:{target}"),
            crate::layer::EntryKind::Whiteout => "whiteout".to_string(),
            crate::layer::EntryKind::File { source, size } => {
                format!("file:{size}:{}", source_key(source))
            }
        });
        hasher.update(b"\n");
    }
    format!(
        "native-step-v1\n{step_id}\n{}",
        hex::encode(hasher.finalize())
    )
}

/// Identity of a file's bytes for cache keys. In-memory bytes are hashed;
/// paths are stable only for content-addressed files (store blobs, wheels by
/// digest), which is all this engine passes here besides streams.
fn source_key(source: &crate::layer::FileSource) -> String {
    match source {
        crate::layer::FileSource::Bytes(bytes) => hex::encode(Sha256::digest(bytes)),
        crate::layer::FileSource::Path(path) => format!("path:{}", path.display()),
        crate::layer::FileSource::Open(_) => "stream".to_string(),
    }
}

/// `/etc/ld.so.conf.d/cog.conf` listing the directories of the installed
/// `*python*.so` libraries, as cog's ldconfig step writes it (the ld.so cache
/// itself cannot be regenerated without running the image).
fn ld_so_conf(python: Option<&PythonLayers>) -> Entry {
    let mut dirs: Vec<String> = python
        .into_iter()
        .flat_map(|p| p.dependencies.iter().chain(&p.cog_runtime))
        .filter(|e| matches!(e.kind, crate::layer::EntryKind::File { .. }))
        .filter_map(|e| {
            let (dir, name) = e.path.rsplit_once('/')?;
            (name.contains("python") && name.ends_with(".so")).then(|| format!("/{dir}"))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let text: String = dirs.iter().map(|d| format!("{d}\n")).collect();
    Entry::file_bytes("etc/ld.so.conf.d/cog.conf", 0o644, text.into_bytes())
}

/// The source tree at `/src`: one layer per large file, then the rest, plus
/// the config-copy step's `/src/cog.yaml` when the config file has another name.
fn source_jobs(
    plan: &BuildPlan,
    step: &Step,
    destination: &str,
    settings: &NativeSettings,
    notices: &mut Vec<String>,
) -> Result<Vec<NamedJob>, NativeError> {
    let options = SourceOptions {
        dest: destination.trim_start_matches('/').to_string(),
        leave_out: settings.leave_out.clone(),
        ..SourceOptions::default()
    };
    let tree = scan_source_tree(&plan.project_dir, &options)?;
    notices.extend(tree.notices.iter().cloned());
    let mut jobs = tree.jobs();
    let main = jobs.last_mut().expect("source tree always has a main job");
    if plan.config_file != "cog.yaml" {
        add_config_copy(plan, &options.dest, main)?;
    }
    let count = jobs.len();
    Ok(jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let name = if i + 1 == count {
                step.name.clone()
            } else {
                format!("{} (large file {})", step.name, job.entries[0].path)
            };
            NamedJob {
                name,
                created_by: "COPY . /src".to_string(),
                job,
            }
        })
        .collect())
}

/// cog's `RUN cp /src/<file> /src/cog.yaml`, written into the source layer.
fn add_config_copy(plan: &BuildPlan, dest: &str, main: &mut LayerJob) -> Result<(), NativeError> {
    let path = plan.project_dir.join(&plan.config_file);
    let bytes = std::fs::read(&path).map_err(|source| LayerError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let target = format!("{dest}/cog.yaml");
    main.entries.retain(|e| e.path != target);
    main.entries
        .push(Entry::file_bytes(target, 0o644, bytes.clone()));
    if let Some(key) = &mut main.cache_key {
        key.push_str(&format!(
            "\nconfig-copy:{}:{}",
            plan.config_file,
            hex::encode(Sha256::digest(&bytes))
        ));
    }
    Ok(())
}

/// The `/src/.cog/*` files whose bytes were generated.
fn cog_file_entries(files: &[CogFile], generated: &GeneratedInputs) -> Vec<Entry> {
    files
        .iter()
        .filter_map(|file| {
            let bytes = match file.name.as_str() {
                "openapi_schema.json" => generated.openapi_schema.clone(),
                "weights.json" => generated.weights_json.clone(),
                _ => None,
            }?;
            Some(generated_file(
                file.image_path.trim_start_matches('/'),
                bytes.into_bytes(),
            ))
        })
        .collect()
}

/// The image config: the plan's env expanded over the base env, entrypoint,
/// cmd, workdir, port and every label.
fn image_config(
    plan: &BuildPlan,
    base: &BaseImage,
    python: Option<&PythonLayers>,
    generated: &GeneratedInputs,
) -> Result<ConfigAdditions, NativeError> {
    let env = plan
        .image
        .final_env(&base_env(base))
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect();
    let mut extra = BTreeMap::new();
    if plan.base.cog_base_label.is_some()
        && let Some((idx, diff_id)) = base.last_layer()?
    {
        extra.insert(labels::BASE_LAST_LAYER_SHA.to_string(), diff_id.to_string());
        extra.insert(labels::BASE_LAST_LAYER_IDX.to_string(), idx.to_string());
    }
    extra.extend(generated.extra_labels.clone());
    let all = plan.image.complete_labels(
        generated.openapi_schema.as_deref().map(str::as_bytes),
        python.map(|p| p.pip_freeze.as_str()),
        &extra,
    );
    Ok(ConfigAdditions {
        env,
        entrypoint: plan.image.entrypoint.clone(),
        cmd: Some(plan.image.cmd.clone()),
        workdir: Some(plan.image.working_dir.clone()),
        user: None,
        exposed_ports: plan.image.exposed_ports.clone(),
        labels: all.into_iter().collect(),
    })
}

/// `config.Env` of the base image.
fn base_env(base: &BaseImage) -> Vec<String> {
    serde_json::from_slice::<serde_json::Value>(&base.config)
        .ok()
        .and_then(|v| v.pointer("/config/Env").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// Where the native engine keeps Python downloads inside the store root.
pub fn python_cache_dir(store: &Store) -> PathBuf {
    store.root().join("python")
}

/// The pinned artifacts of `base-images/artifacts.toml`.
const ARTIFACTS: &str = include_str!("../../../base-images/artifacts.toml");

/// The tini binary: the catalog's pinned download, or an override (both URL
/// and digest must be given together).
pub fn tini_file(url: Option<&str>, sha256: Option<&str>) -> Result<FixedFile, NativeError> {
    let catalog: toml::Value = toml::from_str(ARTIFACTS)
        .map_err(|e| NativeError::Unsupported(format!("base-images/artifacts.toml: {e}")))?;
    let field = |key: &str| {
        catalog
            .get("tini")
            .and_then(|t| t.get(key))
            .cloned()
            .ok_or_else(|| {
                NativeError::Unsupported(format!(
                    "base-images/artifacts.toml: tini.{key} is missing"
                ))
            })
    };
    let (url, sha256) = match (url, sha256) {
        (Some(url), Some(sha)) => (url.to_string(), sha.to_string()),
        (None, None) => (
            field("url")?.as_str().unwrap_or_default().to_string(),
            field("sha256")?.as_str().unwrap_or_default().to_string(),
        ),
        _ => {
            return Err(NativeError::Unsupported(
                "COGPACK_TINI_URL and COGPACK_TINI_SHA256 must be set together\nhint: set both to override the pinned tini download, or neither".to_string(),
            ));
        }
    };
    let digest = format!("sha256:{}", sha256.trim_start_matches("sha256:"))
        .parse()
        .map_err(|e| NativeError::Unsupported(format!("tini sha256: {e}")))?;
    Ok(FixedFile {
        url,
        sha256: digest,
        dest: field("path")?.as_str().unwrap_or("sbin/tini").to_string(),
        mode: field("mode")?.as_integer().unwrap_or(0o755) as u32,
    })
}
