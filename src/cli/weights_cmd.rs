//! `cogpack weights import|status|pull` (spec §8.15–8.17): the managed
//! weights library driven against the model repository.

use super::CliError;
use super::args::{RegistryFlags, WeightsCommand};
use super::env::Environment;
use crate::config::Project;
use crate::registry::weights_adapter::ClientWeightRegistry;
use crate::registry::{ProgressMode, Reference, UploadOptions};
use crate::weights::import::{ImportOptions, import_weights};
use crate::weights::lockfile::{FileRecord, LOCKFILE_NAME, LockEntry, LockFile};
use crate::weights::pull::{PullOptions, pull_weights};
use crate::weights::push::{DEFAULT_PUSH_CONCURRENCY, push_weights};
use crate::weights::source::SourceOptions;
use crate::weights::spec::WeightSpec;
use crate::weights::status::weights_status;
use crate::weights::store::{WeightStore, resolve_store_root};

/// Runs one `weights` subcommand for the project found from `file`.
pub fn run(
    file: &str,
    verbose: bool,
    command: &WeightsCommand,
    env: &Environment,
) -> Result<(), CliError> {
    let project = super::project::load_project(file)?;
    match command {
        WeightsCommand::Import(args) => {
            import(&project, &args.names, args.dry_run, &args.registry, env)
        }
        WeightsCommand::Status(args) => status(&project, args.json, &args.registry, env),
        WeightsCommand::Pull(args) => pull(&project, &args.names, verbose, &args.registry, env),
    }
}

fn weights_error(err: crate::weights::WeightsError) -> CliError {
    CliError::plain(err.to_string())
}

/// The model repository weights are pushed to: `model:` or `COG_MODEL*`.
pub(crate) fn model_repository(
    project: &Project,
    env: &Environment,
) -> Result<Reference, CliError> {
    let reference = super::target::model_reference(project, env)?;
    match (reference, &project.config.image) {
        (Some(_), Some(_)) => Err(CliError::new(
            "a model reference was resolved while cog.yaml sets 'image'",
            "remove 'image' from cog.yaml or unset COG_MODEL*",
        )),
        (Some(reference), None) => Ok(reference),
        (None, Some(image)) => Err(CliError::new(
            format!("managed weights need a model reference, but cog.yaml sets 'image: {image}'"),
            "replace 'image' with 'model' in cog.yaml (e.g. model: r8.im/user/name), or set COG_MODEL",
        )),
        (None, None) => Err(CliError::new(
            "no model ref — set 'model' in cog.yaml or COG_MODEL",
            "add e.g. `model: r8.im/user/name` to cog.yaml",
        )),
    }
}

/// The local weights store: `$COG_CACHE_DIR/weights`, else
/// `$XDG_CACHE_HOME/cog/weights`, else `$HOME/.cache/cog/weights`.
pub(crate) fn weight_store(env: &Environment) -> Result<WeightStore, CliError> {
    resolve_store_root(
        env.get("COG_CACHE_DIR"),
        env.get("XDG_CACHE_HOME"),
        env.get("HOME"),
    )
    .map(WeightStore::new)
    .ok_or_else(|| {
        CliError::new(
            "cannot tell where the weights store lives: neither COG_CACHE_DIR, XDG_CACHE_HOME nor HOME is set",
            "set COG_CACHE_DIR to a writable directory",
        )
    })
}

fn specs(project: &Project) -> Result<Vec<WeightSpec>, CliError> {
    WeightSpec::from_decls(&project.config.weights).map_err(weights_error)
}

fn positive_number(env: &Environment, name: &str) -> Result<Option<u64>, CliError> {
    match env.get(name) {
        None => Ok(None),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(CliError::new(
                format!("environment variable {name}={text:?} is not a positive integer"),
                format!("unset {name} or set it to a number"),
            )),
        },
    }
}

/// Upload tunables from `COG_PUSH_*`.
fn upload_options(env: &Environment) -> Result<UploadOptions, CliError> {
    let mut options = UploadOptions::default();
    if let Some(n) = positive_number(env, "COG_PUSH_CONCURRENCY")? {
        options.concurrency = n as usize;
    }
    if let Some(n) = positive_number(env, "COG_PUSH_DEFAULT_CHUNK_SIZE")? {
        options.chunk_size = n;
    }
    if let Some(n) = positive_number(env, "COG_PUSH_MULTIPART_THRESHOLD")? {
        options.multipart_threshold = n;
    }
    Ok(options)
}

/// A registry session bound to the model repository.
struct Session {
    registry: ClientWeightRegistry,
    _runtime: tokio::runtime::Runtime,
}

fn connect(
    repository: &Reference,
    flags: &RegistryFlags,
    env: &Environment,
) -> Result<Session, CliError> {
    let runtime = super::build::tokio_runtime()?;
    let client = super::build::registry_client(flags)?;
    let registry = ClientWeightRegistry::new(client, repository, runtime.handle().clone())
        .with_upload_options(upload_options(env)?);
    Ok(Session {
        registry,
        _runtime: runtime,
    })
}

fn import(
    project: &Project,
    names: &[String],
    dry_run: bool,
    flags: &RegistryFlags,
    env: &Environment,
) -> Result<(), CliError> {
    let repository = model_repository(project, env)?;
    let specs = specs(project)?;
    let mut sources = SourceOptions::new(&project.dir);
    sources.hf_endpoint = env.string("HF_ENDPOINT");
    sources.hf_token =
        SourceOptions::hf_token_from(env.get("HF_TOKEN"), env.get("HUGGING_FACE_HUB_TOKEN"));
    let store = weight_store(env)?;
    let options = ImportOptions {
        project_dir: project.dir.clone(),
        sources,
        store: store.clone(),
        names: names.to_vec(),
        dry_run,
    };
    let report = import_weights(&specs, &options).map_err(weights_error)?;
    for line in report.plan_lines() {
        println!("{line}");
    }
    if dry_run {
        println!("Dry run: nothing was imported or pushed.");
        return Ok(());
    }
    for weight in &report.weights {
        for notice in &weight.notices {
            eprintln!("{}: {notice}", weight.name);
        }
    }
    for name in &report.pruned {
        println!("- {name} (removed from weights.lock)");
    }
    let lock = LockFile::load(&project.dir)
        .map_err(weights_error)?
        .ok_or_else(|| {
            CliError::plain("weights.lock was not written by the import; hint: run it again")
        })?;
    let imported: Vec<String> = report.weights.iter().map(|w| w.name.clone()).collect();
    let mut session = connect(&repository, flags, env)?;
    session.registry = session
        .registry
        .with_progress(crate::registry::reporter(ProgressMode::Auto));
    let concurrency = positive_number(env, "COG_PUSH_CONCURRENCY")?
        .map_or(DEFAULT_PUSH_CONCURRENCY, |n| n as usize);
    let pushed = crate::weights::run_bounded(&imported, concurrency, |name| {
        push_weights(
            &session.registry,
            &lock,
            &store,
            std::slice::from_ref(name),
            concurrency,
        )
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(weights_error)?
    .into_iter()
    .flatten();
    let repo = repository.repository_name();
    for weight in pushed {
        println!(
            "Pushed {} {repo}:{} ({}, {} layer(s) uploaded)",
            weight.name, weight.tag, weight.digest, weight.layers_uploaded
        );
    }
    Ok(())
}

fn status(
    project: &Project,
    json: bool,
    flags: &RegistryFlags,
    env: &Environment,
) -> Result<(), CliError> {
    let repository = model_repository(project, env)?;
    let specs = specs(project)?;
    let lock = LockFile::load(&project.dir).map_err(weights_error)?;
    let session = connect(&repository, flags, env)?;
    let report = weights_status(&specs, lock.as_ref(), &session.registry);
    if json {
        println!("{}", String::from_utf8_lossy(&report.to_json()));
    } else {
        for line in report.lines() {
            println!("{line}");
        }
    }
    Ok(())
}

fn pull(
    project: &Project,
    names: &[String],
    verbose: bool,
    flags: &RegistryFlags,
    env: &Environment,
) -> Result<(), CliError> {
    let repository = model_repository(project, env)?;
    let lock = LockFile::load(&project.dir)
        .map_err(weights_error)?
        .ok_or_else(|| {
            CliError::new(
                format!("no weights.lock in {}", project.dir.display()),
                "run 'cogpack weights import' first",
            )
        })?;
    let unknown: Vec<&String> = names.iter().filter(|n| lock.entry(n).is_none()).collect();
    if !unknown.is_empty() {
        return Err(CliError::new(
            format!("unknown weight name(s) {unknown:?} (not in weights.lock)"),
            "run 'cogpack weights status' to list weights",
        ));
    }
    let store = weight_store(env)?;
    let selected: Vec<&str> = lock
        .weights
        .iter()
        .filter(|e| names.is_empty() || names.contains(&e.name))
        .map(|e| e.name.as_str())
        .collect();
    if verbose {
        println!("Cache: {}", store.root().display());
        println!("Lockfile: {}", project.dir.join(LOCKFILE_NAME).display());
    }
    let session = connect(&repository, flags, env)?;
    let mut fetched_any = false;
    for name in &selected {
        let entry = lock
            .entry(name)
            .expect("selected names are in the lockfile");
        let missing: Vec<&FileRecord> = entry
            .files
            .iter()
            .filter(|f| !store.contains(&f.digest, Some(f.size)))
            .collect();
        if verbose {
            print_cache_state(entry, &missing);
        }
        if !missing.is_empty() {
            println!("Pulling {name}");
        }
        let options = PullOptions {
            names: vec![name.to_string()],
            verify_cached: false,
        };
        let pulled =
            pull_weights(&session.registry, &lock, &store, &options).map_err(weights_error)?;
        for weight in pulled.iter().filter(|w| w.restored_files > 0) {
            fetched_any = true;
            println!(
                "Pulled {} ({} file(s) from {} layer(s), {} already cached)",
                weight.name, weight.restored_files, weight.layers_fetched, weight.cached_files
            );
        }
    }
    if !fetched_any {
        println!("All {} weight(s) already cached", selected.len());
    }
    Ok(())
}

/// `--verbose` detail of one weight before pulling: cached, or which files
/// are missing and the layers that hold them.
fn print_cache_state(entry: &LockEntry, missing: &[&FileRecord]) {
    let total = entry.files.len();
    if missing.is_empty() {
        println!("  {}: cached ({total}/{total} files)", entry.name);
        return;
    }
    println!(
        "  {}: {} missing / {total} total",
        entry.name,
        missing.len()
    );
    for file in missing {
        println!("    {} (layer {})", file.path, file.layer);
    }
}
