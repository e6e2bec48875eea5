//! Where a build is recorded and pushed (cog's image-name precedence and
//! model reference resolution).

use super::CliError;
use super::env::Environment;
use crate::config::Project;
use crate::registry::Reference;
use std::path::PathBuf;

/// Where `cogpack push` (or `build --push`) sends the image.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// The reference pushed to (always tagged).
    pub reference: Reference,
    /// Bundle format (OCI index with weights) rather than a plain image.
    pub bundle: bool,
    /// The project, for the weights lockfile.
    pub project_dir: PathBuf,
}

/// The name the image is recorded under in the local store:
/// the push target, else `-t`, else `image:`, else `model:` (`:latest`),
/// else cog's default name.
pub fn build_image_name(project: &Project, tag: Option<&str>, push: Option<&PushTarget>) -> String {
    if let Some(target) = push {
        return target.reference.to_string();
    }
    tag.map(str::to_string)
        .or_else(|| project.config.image.clone())
        .or_else(|| project.config.model.as_ref().map(|m| format!("{m}:latest")))
        .unwrap_or_else(|| crate::config::default_image_name(&project.dir))
}

/// Resolves the push target like `cog push`: a model reference (`COG_MODEL`,
/// or cog.yaml `model` with `COG_MODEL_*` overrides) selects the bundle
/// format; otherwise the positional image, `-t`, or cog.yaml `image`.
pub fn push_target(
    project: &Project,
    positional: Option<&str>,
    tag: Option<&str>,
    env: &Environment,
) -> Result<PushTarget, CliError> {
    let bundle_ref = model_reference(project, env)?;
    if let Some(reference) = bundle_ref {
        if positional.is_some() {
            return Err(CliError::new(
                "positional image argument not supported with 'model' config",
                "remove the argument, or set COG_MODEL to push somewhere else",
            ));
        }
        if project.config.image.is_some() {
            return Err(CliError::new(
                "a model reference was resolved while cog.yaml sets 'image'",
                "remove 'image' from cog.yaml or unset COG_MODEL*",
            ));
        }
        return Ok(PushTarget {
            reference,
            bundle: true,
            project_dir: project.dir.clone(),
        });
    }
    let name = positional
        .or(tag)
        .map(str::to_string)
        .or_else(|| project.config.image.clone())
        .ok_or_else(|| {
            CliError::plain(
                "To push images, you must either set the 'image' option in cog.yaml or pass an image name as an argument. For example, 'cogpack push registry.example.com/your-username/model-name'",
            )
        })?;
    let reference = parse(&name)?;
    Ok(PushTarget {
        reference,
        bundle: false,
        project_dir: project.dir.clone(),
    })
}

/// The bundle reference (cog's `ResolveModelRef`), or `None` for image format.
pub(crate) fn model_reference(
    project: &Project,
    env: &Environment,
) -> Result<Option<Reference>, CliError> {
    if let Some(model) = env.get("COG_MODEL") {
        let mut reference = parse(model)?;
        if model_has_no_tag(model) {
            reference.tag = Some(timestamp_tag());
        }
        return Ok(Some(reference));
    }
    let Some(model) = &project.config.model else {
        return Ok(None);
    };
    let base = parse(model)?;
    let registry = env
        .string("COG_MODEL_REGISTRY")
        .unwrap_or(base.registry.clone());
    if registry.contains('/') || registry.contains('@') {
        return Err(CliError::new(
            format!("invalid COG_MODEL_REGISTRY {registry:?}"),
            "give a host name with an optional port, e.g. registry.example.com:5000",
        ));
    }
    let repository = env
        .string("COG_MODEL_REPO")
        .unwrap_or(base.repository.clone());
    if repository.contains(':') || repository.contains('@') {
        return Err(CliError::new(
            format!("invalid COG_MODEL_REPO {repository:?}"),
            "give a repository path without tag or digest",
        ));
    }
    let tag = env.string("COG_MODEL_TAG").unwrap_or_else(timestamp_tag);
    let valid_tag =
        regex::Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").expect("static regex");
    if !valid_tag.is_match(&tag) || tag.starts_with("cog-") {
        return Err(CliError::new(
            format!("invalid COG_MODEL_TAG {tag:?}"),
            "use letters, digits, '.', '_' and '-' (not starting with 'cog-')",
        ));
    }
    Ok(Some(parse(&format!("{registry}/{repository}:{tag}"))?))
}

/// True when a reference text names neither a tag nor a digest.
fn model_has_no_tag(text: &str) -> bool {
    let last = text.rsplit('/').next().unwrap_or(text);
    !last.contains(':') && !text.contains('@')
}

/// cog's default model tag: the UTC time as `YYYYMMDDTHHMMSSZ`.
fn timestamp_tag() -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| "latest".to_string())
}

fn parse(text: &str) -> Result<Reference, CliError> {
    Reference::parse(text).map_err(|e| CliError::plain(e.to_string()))
}
