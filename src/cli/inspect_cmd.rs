//! `cogpack inspect REF [--json]` (spec §6, §10.1): the Cog model behind a
//! reference, read from the registry first and from the local store when the
//! registry cannot answer for it (not found, unreachable, or refusing access
//! to a name that only exists locally) but the store has the name.

use super::CliError;
use super::args::InspectArgs;
use super::env::Environment;
use crate::oci::Image;
use crate::oci::image::StoreImage;
use crate::registry::{
    Client, ClientOptions, CogModel, Reference, RegistryError, RetryPolicy, cog_model_from_config,
};

/// Runs `cogpack inspect`.
pub fn run(args: &InspectArgs, env: &Environment) -> Result<(), CliError> {
    let model = find_model(args, env)?;
    if args.json {
        let text = serde_json::to_string_pretty(&model)
            .map_err(|e| CliError::plain(format!("cannot render the model as JSON: {e}")))?;
        println!("{text}");
    } else {
        println!("{}", model.summary());
    }
    Ok(())
}

fn find_model(args: &InspectArgs, env: &Environment) -> Result<CogModel, CliError> {
    let reference =
        Reference::parse(&args.reference).map_err(|e| CliError::plain(e.to_string()))?;
    let remote = inspect_remote(&reference, args)?;
    match remote {
        Ok(model) => Ok(model),
        Err(RegistryError::NotCogModel { reference }) => Err(not_a_cog_model(&reference)),
        Err(e) => match inspect_local(&args.reference, &reference, env)? {
            Some(model) => Ok(model),
            None if e.is_not_found() => Err(CliError::new(
                format!("{}: {e}", args.reference),
                "check the reference, or build it locally with `cogpack build -t NAME`",
            )),
            None => Err(CliError::plain(e.to_string())),
        },
    }
}

fn not_a_cog_model(reference: &str) -> CliError {
    CliError::new(
        format!("image is not a Cog model: {reference} has no run.cog.config label"),
        "inspect an image built by `cogpack build` or `cog build`",
    )
}

/// The registry's answer (outer error: the client could not be set up).
fn inspect_remote(
    reference: &Reference,
    args: &InspectArgs,
) -> Result<Result<CogModel, RegistryError>, CliError> {
    let mut options = ClientOptions::from_env(
        &args.registry.registry_mirrors,
        &args.registry.insecure_registries,
    )
    .map_err(|e| CliError::plain(e.to_string()))?;
    options.retry = RetryPolicy {
        attempts: 2,
        ..RetryPolicy::default()
    };
    let client = Client::new(options).map_err(|e| CliError::plain(e.to_string()))?;
    let runtime = super::build::tokio_runtime()?;
    Ok(runtime.block_on(client.inspect(reference)))
}

/// The model recorded in the local store under the name as typed or as
/// normalised; `None` when the store has neither.
fn inspect_local(
    typed: &str,
    reference: &Reference,
    env: &Environment,
) -> Result<Option<CogModel>, CliError> {
    let store = super::build::open_store(env)?;
    let names = store.images().map_err(|e| CliError::plain(e.to_string()))?;
    let normalised = reference.to_string();
    let Some(name) = [typed, normalised.as_str()]
        .into_iter()
        .find(|n| names.contains_key(*n))
    else {
        return Ok(None);
    };
    let image = StoreImage::load_named(&store, name).map_err(|e| CliError::plain(e.to_string()))?;
    match cog_model_from_config(name, image.config_bytes()) {
        Ok(mut model) => {
            model.digest = Image::digest(&image).to_string();
            Ok(Some(model))
        }
        Err(RegistryError::NotCogModel { reference }) => Err(not_a_cog_model(&reference)),
        Err(e) => Err(CliError::plain(e.to_string())),
    }
}
