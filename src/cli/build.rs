//! `cogpack build` and `cogpack push`: plan → base → Python → schema →
//! layers → image → outputs → push.

use super::CliError;
use super::args::{Backend, BuildArgs, CompressionArg, ProgressArg};
use super::env::Environment;
use super::project;
use super::target::{PushTarget, build_image_name};
use crate::backend::native::{self, GeneratedInputs, NativeSettings, PythonSettings};
use crate::config::Project;
use crate::config::base::BaseImageExists;
use crate::layer::{Compression, LayerOptions};
use crate::oci::image::{BaseImage, StoreImage};
use crate::oci::output::OutputTarget;
use crate::oci::store::Store;
use crate::oci::{Image, Layer, Platform};
use crate::plan::image::labels;
use crate::plan::{self, BuildPlan};
use crate::python::{FetchEvent, IndexSettings, LockMode, PythonLayers};
use crate::registry::{
    self, Client, ClientOptions, ProgressMode, Reference, RemoteLayer, UploadOptions,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Answers the plan's cog-base existence checks from the registry (through
/// mirrors), like cog's remote inspect.
struct RegistryExists<'a> {
    client: &'a Client,
}

impl BaseImageExists for RegistryExists<'_> {
    fn exists(&self, reference: &str) -> Result<bool, String> {
        let reference = Reference::parse(reference).map_err(|e| e.to_string())?;
        self.client
            .manifest_exists_blocking(&reference)
            .map_err(|e| e.to_string())
    }
}

/// The base image and where its layers can be fetched from.
struct ResolvedBase {
    image: BaseImage,
    /// The registry reference its blobs come from (a mirror or the source),
    /// `None` for an OCI layout (blobs are in the store).
    source: Option<Reference>,
}

/// What a finished build produced.
pub struct Built {
    /// The image in the store.
    pub image: StoreImage,
    /// Where the base's blobs live, for mounts and streaming at push time.
    base_source: Option<Reference>,
}

/// `cogpack build`, and the build half of `cogpack push`. Returns `None`
/// when the docker backend built the image (it lives in Docker, not the store).
pub fn run_build(
    project: &Project,
    args: &BuildArgs,
    push_target: Option<&PushTarget>,
    env: &Environment,
) -> Result<Option<Built>, CliError> {
    if project.config.predict.is_none() && project.config.train.is_none() {
        return Err(CliError::new(
            "image build failed: no predict or train reference found in cog.yaml",
            "add `run: \"predict.py:Predictor\"` (or `train:`) to cog.yaml",
        ));
    }
    let name = build_image_name(project, args.tag.as_deref(), push_target);
    if args.backend == Backend::Docker {
        docker_backend(project, args, env, &name)?;
        return Ok(None);
    }
    let started = Instant::now();
    let runtime = tokio_runtime()?;
    let client = registry_client(&args.registry)?;
    let store = open_store(env)?;
    // Shared store lock for the whole build: `cogpack gc` waits for it.
    let _session = store
        .session()
        .map_err(|e| CliError::plain(e.to_string()))?;
    let first_schema = project::schema(project, &args.plan, env, super::VERSION, false)?;
    let concurrency = project::decorator_concurrency(project, first_schema.as_ref())?;
    let options = project::plan_options(project, &args.plan, env, concurrency, super::VERSION)?;
    let plan = match &args.base {
        Some(_) => plan::plan_offline(project, &options),
        None => plan::plan(project, &options, &RegistryExists { client: &client }),
    }
    .map_err(|e| CliError::plain(e.to_string()))?;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    plan.check_native()
        .map_err(|e| CliError::plain(e.to_string()))?;
    if plan.steps.iter().any(native::is_sandbox_step) {
        crate::sandbox::check_available(&crate::sandbox::scratch_dir(&store))
            .map_err(|e| CliError::plain(format!("image build failed: {e}")))?;
    }
    let weights_json = super::weights::runtime_manifest(project)?;
    status(args, &format!("Using base image {}", plan.base.reference));
    let base = resolve_base(&plan, args, &client, &store, &runtime)?;
    let python_settings = python_settings(args, env, &store);
    let python = resolve_python(&plan, &base.image, args, &python_settings)?;
    let cog_version = installed_cog_version(python.as_ref());
    let schema = project::schema(project, &args.plan, env, &cog_version, true)?;
    let generated = GeneratedInputs {
        openapi_schema: schema.map(|s| s.json),
        weights_json,
        extra_labels: extra_labels(args, push_target, &cog_version),
    };
    let mut settings = native_settings(args, env, project)?;
    settings.python = Some(python_settings);
    settings.base_blobs = base.source.clone().map(|reference| {
        native::SharedBlobs(Arc::new(crate::sandbox::registry::RegistryBlobs::new(
            client.clone(),
            reference,
            runtime.handle().clone(),
        )))
    });
    let built = native::assemble(
        &plan,
        base.image,
        python.as_ref(),
        &generated,
        &settings,
        &store,
    )
    .map_err(|e| CliError::plain(format!("image build failed: {e}")))?;
    for notice in &built.notices {
        eprintln!("{notice}");
    }
    report_layers(args, &built.layers);
    store
        .tag_image(&name, &built.image.descriptor())
        .map_err(|e| CliError::plain(e.to_string()))?;
    let built = Built {
        image: built.image,
        base_source: base.source,
    };
    {
        let _guard = runtime.enter();
        write_outputs(args, &complete_image(&built, &client, &store), &name)?;
    }
    status(
        args,
        &format!(
            "Image built as {name} ({}) in {:.1}s",
            Image::digest(&built.image),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(Some(built))
}

/// `--backend docker`: render the plan and drive `docker buildx`.
fn docker_backend(
    project: &Project,
    args: &BuildArgs,
    env: &Environment,
    name: &str,
) -> Result<(), CliError> {
    let schema = project::schema(project, &args.plan, env, super::VERSION, true)?;
    let concurrency = project::decorator_concurrency(project, schema.as_ref())?;
    let options = project::plan_options(project, &args.plan, env, concurrency, super::VERSION)?;
    let plan = plan::plan_offline(project, &options).map_err(|e| CliError::plain(e.to_string()))?;
    let bundle = crate::backend::docker::BundleInputs {
        openapi_schema: schema.map(|s| s.json.into_bytes()),
        weights_json: super::weights::runtime_manifest(project)?.map(String::into_bytes),
        extra_labels: BTreeMap::new(),
    };
    let mut options = crate::backend::docker::DockerBuildOptions::new(name);
    options.no_cache = args.no_cache;
    options.source_date_epoch = env
        .source_date_epoch()
        .map_err(CliError::plain)?
        .map(|s| s as i64);
    crate::backend::docker::build(&plan, &bundle, &options)
        .map_err(|e| CliError::plain(e.to_string()))?;
    Ok(())
}

/// A multi-threaded runtime for registry calls (the build itself is sync).
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| CliError::plain(format!("cannot start the async runtime: {e}")))
}

/// The registry client configured from flags, environment and config file.
pub fn registry_client(flags: &super::args::RegistryFlags) -> Result<Client, CliError> {
    let options = ClientOptions::from_env(&flags.registry_mirrors, &flags.insecure_registries)
        .map_err(|e| CliError::plain(e.to_string()))?;
    Client::new(options).map_err(|e| CliError::plain(e.to_string()))
}

/// Opens the local store.
pub fn open_store(env: &Environment) -> Result<Store, CliError> {
    let root = env.store_root().ok_or_else(|| {
        CliError::new(
            "cannot tell where the local store lives: neither COGPACK_HOME, XDG_CACHE_HOME nor HOME is set",
            "set COGPACK_HOME to a writable directory",
        )
    })?;
    Store::open(&root)
        .map(|store| store.with_regenerator(crate::layer::lazy::regenerator()))
        .map_err(|e| CliError::plain(e.to_string()))
}

/// Pulls the base's manifest and config (never its layers), or reads an OCI
/// layout given with `--base`.
fn resolve_base(
    plan: &BuildPlan,
    args: &BuildArgs,
    client: &Client,
    store: &Store,
    runtime: &tokio::runtime::Runtime,
) -> Result<ResolvedBase, CliError> {
    if let Some(spec) = &args.base {
        let dir = spec.strip_prefix("oci-layout:").ok_or_else(|| {
            CliError::new(
                format!("--base {spec:?} is not supported"),
                "use --base oci-layout:DIR[:TAG]",
            )
        })?;
        let image = crate::oci::layout::read_base(dir, store)
            .map_err(|e| CliError::plain(e.to_string()))?;
        return Ok(ResolvedBase {
            image,
            source: None,
        });
    }
    let reference =
        Reference::parse(&plan.base.reference).map_err(|e| CliError::plain(e.to_string()))?;
    let pulled = runtime
        .block_on(client.pull_shallow(&reference, &Platform::linux_amd64()))
        .map_err(|e| {
            CliError::plain(format!(
                "cannot pull base image {}: {e}",
                plan.base.reference
            ))
        })?;
    store
        .put_bytes(&pulled.manifest.bytes)
        .and_then(|_| store.put_bytes(&pulled.config_bytes))
        .map_err(|e| CliError::plain(e.to_string()))?;
    Ok(ResolvedBase {
        image: BaseImage {
            reference: plan.base.reference.clone(),
            config: pulled.config_bytes,
            layers: pulled.layers,
        },
        source: Some(pulled.source),
    })
}

/// Index, lock mode, cache and uv of the Python install.
fn python_settings(args: &BuildArgs, env: &Environment, store: &Store) -> PythonSettings {
    let mode = if args.offline {
        LockMode::Offline
    } else if args.locked {
        LockMode::Locked
    } else {
        LockMode::Update
    };
    let index = IndexSettings {
        index_url: env
            .string("UV_INDEX_URL")
            .or_else(|| env.string("PIP_INDEX_URL")),
        extra_index_urls: env
            .get("UV_EXTRA_INDEX_URL")
            .or_else(|| env.get("PIP_EXTRA_INDEX_URL"))
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        netrc: env.get("NETRC").map(Into::into),
    };
    PythonSettings {
        index,
        mode,
        cache_dir: native::python_cache_dir(store),
        uv: env.get("COGPACK_UV").map(Into::into),
    }
}

/// Resolves, fetches and installs the Python packages.
fn resolve_python(
    plan: &BuildPlan,
    base: &BaseImage,
    args: &BuildArgs,
    settings: &PythonSettings,
) -> Result<Option<PythonLayers>, CliError> {
    let quiet = args.progress == ProgressArg::Quiet;
    let progress = move |event: &FetchEvent| {
        if !quiet && let FetchEvent::Started { name, .. } = event {
            eprintln!("Downloading {name}");
        }
    };
    native::resolve_python(plan, base, settings, &progress)
        .map_err(|e| CliError::plain(format!("image build failed: {e}")))
}

/// The `cog` SDK version installed in the image (the `run.cog.version`
/// label and the schema's `info.version`, which must agree).
fn installed_cog_version(python: Option<&PythonLayers>) -> String {
    python
        .and_then(|p| {
            p.installed
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case("cog"))
        })
        .map(|d| d.version.clone())
        .unwrap_or_else(|| super::VERSION.to_string())
}

/// Labels decided at build time.
fn extra_labels(
    args: &BuildArgs,
    push_target: Option<&PushTarget>,
    cog_version: &str,
) -> BTreeMap<String, String> {
    let mut extra = BTreeMap::new();
    extra.insert(labels::VERSION.to_string(), cog_version.to_string());
    if args.push_id && push_target.is_some() {
        extra.insert(
            "run.cog.push_id".to_string(),
            uuid::Uuid::now_v7().to_string(),
        );
    }
    extra
}

/// Layer options, tini source and left-out directories.
fn native_settings(
    args: &BuildArgs,
    env: &Environment,
    project: &Project,
) -> Result<NativeSettings, CliError> {
    let source_date_epoch = env.source_date_epoch().map_err(CliError::plain)?;
    let name = match args.compression {
        CompressionArg::Gzip => "gzip",
        CompressionArg::Zstd => "zstd",
        CompressionArg::None => "none",
    };
    let compression = Compression::parse(name, args.compression_level.map(|l| l as i32))
        .map_err(|e| CliError::new(e, "use --compression-level 1-9 for gzip or 1-19 for zstd"))?;
    let tini = native::tini_file(env.get("COGPACK_TINI_URL"), env.get("COGPACK_TINI_SHA256"))
        .map_err(|e| CliError::plain(e.to_string()))?;
    Ok(NativeSettings {
        layer: LayerOptions {
            compression,
            mtime: source_date_epoch.unwrap_or(0),
        },
        source_date_epoch,
        tini,
        leave_out: weight_source_dirs(project),
        no_cache: args.no_cache,
        base_blobs: None,
        quiet_steps: args.progress == ProgressArg::Quiet,
        python: None,
    })
}

/// Project-relative managed-weight source directories (shipped as weight
/// artifacts, so left out of `/src`).
fn weight_source_dirs(project: &Project) -> Vec<String> {
    project
        .config
        .weights
        .iter()
        .flat_map(|w| &w.sources)
        .filter_map(|s| {
            let uri = s.uri.strip_prefix("file://").unwrap_or(&s.uri);
            (!s.uri.contains("://") || s.uri.starts_with("file://")).then(|| {
                uri.trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string()
            })
        })
        .filter(|p| !p.is_empty() && !p.starts_with('/') && !p.starts_with(".."))
        .collect()
}

/// Prints one line per layer.
fn report_layers(args: &BuildArgs, layers: &[native::LayerSummary]) {
    for layer in layers {
        let state = if layer.cached { "cached" } else { "built" };
        status(
            args,
            &format!(
                "  {state:6} {} {} ({} bytes)",
                layer.digest, layer.name, layer.size
            ),
        );
    }
}

/// Prints a status line unless quiet.
fn status(args: &BuildArgs, line: &str) {
    if args.progress != ProgressArg::Quiet {
        eprintln!("{line}");
    }
}

/// `--output` targets.
fn write_outputs(args: &BuildArgs, image: &dyn Image, name: &str) -> Result<(), CliError> {
    for spec in &args.output {
        let target = OutputTarget::parse(spec).map_err(|e| {
            CliError::new(e, "use oci:DIR, oci-archive:FILE or docker-archive:FILE")
        })?;
        target
            .write(image, Some(name))
            .map_err(|e| CliError::plain(e.to_string()))?;
        status(args, &format!("Wrote {spec}"));
    }
    Ok(())
}

/// Registry progress mode for a `--progress` value.
pub fn progress_mode(arg: ProgressArg) -> ProgressMode {
    match arg {
        ProgressArg::Auto | ProgressArg::Tty => ProgressMode::Auto,
        ProgressArg::Plain => ProgressMode::Plain,
        ProgressArg::Json => ProgressMode::Json,
        ProgressArg::Quiet => ProgressMode::Quiet,
    }
}

/// The built image with every layer readable: base layers that are not in
/// the store (the shallow path never downloads them) are streamed from the
/// base's registry, digest-verified, straight into the push or output.
/// Must be called inside a tokio runtime.
fn complete_image(built: &Built, client: &Client, store: &Store) -> CompleteImage {
    let layers = built
        .image
        .layers()
        .into_iter()
        .map(|layer| match &built.base_source {
            Some(source) if !store.has_blob(layer.digest()) => Arc::new(RemoteLayer::new(
                client.clone(),
                source.clone(),
                layer.descriptor(),
                layer.diff_id().clone(),
            )) as Arc<dyn Layer>,
            _ => layer,
        })
        .collect();
    CompleteImage {
        inner: built.image.clone(),
        layers,
    }
}

/// The built image with base layers that are not in the store read from
/// the base's registry (streamed to the push or output, never into the store).
struct CompleteImage {
    inner: StoreImage,
    layers: Vec<Arc<dyn Layer>>,
}

impl Image for CompleteImage {
    fn manifest_bytes(&self) -> &[u8] {
        self.inner.manifest_bytes()
    }
    fn manifest_media_type(&self) -> &str {
        self.inner.manifest_media_type()
    }
    fn config_bytes(&self) -> &[u8] {
        self.inner.config_bytes()
    }
    fn layers(&self) -> Vec<Arc<dyn Layer>> {
        self.layers.clone()
    }
}

/// Pushes a built image (or bundle) to its target.
pub fn push(
    built: &Built,
    target: &PushTarget,
    args: &BuildArgs,
    env: &Environment,
) -> Result<(), CliError> {
    let started = Instant::now();
    let runtime = tokio_runtime()?;
    let client = registry_client(&args.registry)?;
    let store = open_store(env)?;
    let mut options = UploadOptions::from_env().map_err(|e| CliError::plain(e.to_string()))?;
    if let Some(source) = &built.base_source
        && source.registry == target.reference.registry
    {
        options.mount_from.push(source.repository.clone());
    }
    let _guard = runtime.enter();
    let image = complete_image(built, &client, &store);
    let progress = registry::reporter(progress_mode(args.progress));
    let reference = &target.reference;
    if target.bundle {
        let weights = super::weights::bundle_weights(&target.project_dir)?;
        let pushed = runtime
            .block_on(client.push_bundle(reference, &image, &weights, &options, &progress))
            .map_err(|e| CliError::plain(e.to_string()))?;
        let repo = format!("{}/{}", reference.registry, reference.repository);
        println!("model {repo}@{}", pushed.index.digest);
        println!("├─ image {repo}@{}", pushed.image.digest);
        for (weight, found) in weights.iter().zip(&pushed.weights) {
            println!("└─ weight {} {repo}@{}", weight.name, found.digest);
        }
    } else {
        let pushed = runtime
            .block_on(client.push_image(reference, &image, &options, &progress))
            .map_err(|e| CliError::plain(e.to_string()))?;
        println!(
            "image {}/{}@{}",
            reference.registry, reference.repository, pushed.digest
        );
    }
    status(
        args,
        &format!(
            "Pushed {reference} in {:.1}s",
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}
