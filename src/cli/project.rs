//! Loading the project, its schema and its plan, shared by every command that
//! works on a Cog project.

use super::CliError;
use super::args::PlanFlags;
use super::env::Environment;
use crate::config::{self, Project};
use crate::plan::{self, BuildPlan, PlanOptions, SecretSpec};
use crate::schema::{self, GeneratedSchema, PrebuiltSource, SchemaOptions};
use std::path::PathBuf;

/// Finds the config file from the current directory upwards and loads it,
/// printing its warnings.
pub fn load_project(file_name: &str) -> Result<Project, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::plain(format!("cannot read the current directory: {e}")))?;
    let dir = config::find_project_dir(&cwd, file_name).map_err(config_error)?;
    let project = config::load(&dir, file_name).map_err(config_error)?;
    for warning in &project.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(project)
}

/// A config error as the CLI shows it (the error already names file, field and fix).
pub fn config_error(err: config::ConfigError) -> CliError {
    CliError::plain(err.to_string())
}

/// `--use-cuda-base-image`: anything but `false` means true, like cog.
fn cuda_base_flag(value: Option<&str>) -> Option<bool> {
    value.map(|v| !v.eq_ignore_ascii_case("false"))
}

/// The predictor references of the project.
fn refs(project: &Project) -> (Option<&str>, Option<&str>) {
    (
        project.config.predict.as_deref(),
        project.config.train.as_deref(),
    )
}

/// Generates (or loads) the OpenAPI schema with `version` as `info.version`,
/// printing its warnings when `report` is set. Projects with neither
/// `predict` nor `train` have no schema.
pub fn schema(
    project: &Project,
    flags: &PlanFlags,
    env: &Environment,
    version: &str,
    report: bool,
) -> Result<Option<GeneratedSchema>, CliError> {
    let (predict, train) = refs(project);
    if predict.is_none() && train.is_none() {
        return Ok(None);
    }
    let options = SchemaOptions {
        sdk_version: version.to_string(),
        ..SchemaOptions::default()
    };
    let prebuilt = match (&flags.openapi_schema, env.get("COG_OPENAPI_SCHEMA")) {
        (Some(path), _) => Some((path.clone(), PrebuiltSource::Flag)),
        (None, Some(path)) => Some((PathBuf::from(path), PrebuiltSource::EnvVar)),
        (None, None) => None,
    };
    let result = match prebuilt {
        Some((path, source)) => {
            schema::load_prebuilt(&path, &project.dir, predict, train, source, &options)
        }
        None => schema::generate(&project.dir, predict, train, &options),
    };
    let generated = result.map_err(|e| CliError::plain(format!("image build failed: {e}")))?;
    if report {
        for warning in &generated.warnings {
            eprintln!("{warning}");
        }
    }
    Ok(Some(generated))
}

/// The effective `@cog.concurrent` / `concurrency.max` of the project.
pub fn decorator_concurrency(
    project: &Project,
    schema: Option<&GeneratedSchema>,
) -> Result<Option<i64>, CliError> {
    let Some(schema) = schema else {
        return Ok(None);
    };
    let python = project
        .config
        .build
        .as_ref()
        .map(|b| b.python_version.as_str());
    schema::effective_concurrency(project.config.concurrency_max, python, schema).map_err(|e| {
        CliError::new(
            e,
            "make run()/predict() `async def` or lower the concurrency",
        )
    })?;
    Ok(schema.concurrency_max)
}

/// Plan options from the flags and the environment.
pub fn plan_options(
    project: &Project,
    flags: &PlanFlags,
    env: &Environment,
    decorator_concurrency: Option<i64>,
    cog_version: &str,
) -> Result<PlanOptions, CliError> {
    let secrets = flags
        .secrets
        .iter()
        .map(|s| SecretSpec::parse(s, &project.dir))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::plain(e.to_string()))?;
    let ca_cert = env
        .get("COG_CA_CERT")
        .map(plan::ca_cert::read_ca_cert)
        .transpose()
        .map_err(|e| CliError::plain(e.to_string()))?;
    let git = plan::git::git_labels(
        &project.dir,
        env.get("GITHUB_SHA"),
        env.get("GITHUB_REF_NAME"),
    );
    Ok(PlanOptions {
        use_cog_base_image: flags.use_cog_base_image,
        use_cuda_base_image: cuda_base_flag(flags.use_cuda_base_image.as_deref()),
        registry_host: env.registry_host(flags.registry.as_deref()),
        precompile: flags.precompile,
        strip: flags.strip,
        secrets,
        cog_sdk_wheel: env.string("COG_SDK_WHEEL"),
        coglet_wheel: env.string("COGLET_WHEEL"),
        ca_cert,
        cwd: std::env::current_dir().unwrap_or_else(|_| project.dir.clone()),
        cog_version: cog_version.to_string(),
        decorator_concurrency,
        git_revision: git.revision,
        git_version: git.version,
        sandbox: crate::sandbox::default_enabled() && env.get("COGPACK_SANDBOX") != Some("0"),
    })
}

/// Plans without the network (every cog-base candidate is assumed to exist).
pub fn offline_plan(
    project: &Project,
    flags: &PlanFlags,
    env: &Environment,
) -> Result<BuildPlan, CliError> {
    let version = crate::cli::VERSION;
    let schema = schema(project, flags, env, version, true).ok().flatten();
    let concurrency = decorator_concurrency(project, schema.as_ref())?;
    let options = plan_options(project, flags, env, concurrency, version)?;
    plan::plan_offline(project, &options).map_err(|e| CliError::plain(e.to_string()))
}
