//! Static OpenAPI schema generation from predictor source.
//!
//! Reads the predictor named in cog.yaml (`predict:` / `train:`) with
//! tree-sitter — no Python runs — and produces the exact bytes cog would put
//! in the `run.cog.openapi_schema` label and `/src/.cog/openapi_schema.json`:
//! compact Go-style JSON for one mode, 2-space indented with sorted keys when
//! both `predict` and `train` are configured. The document is validated like
//! cog's build does (defaults against their own constraints).
//!
//! Entry points: [`generate`] and [`load_prebuilt`].

mod analyze;
mod document;
mod error;
mod gojson;
mod model;
mod pysrc;
mod validate;

use std::path::Path;

pub use analyze::Mode;
pub use error::{ErrorKind, SchemaError};

use analyze::{PredictorInfo, analyze, clean_relative};
use gojson::Json;

/// Options for schema generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Becomes `info.version`. cog writes its own version here (the value
    /// of the `run.cog.version` label); pass the same string.
    pub sdk_version: String,
    /// Extension (off by default, not cog-compatible): map `Literal[...]`
    /// parameter annotations to enum choices, as cog's docs promise.
    pub literal_enums: bool,
}

/// A generated (or loaded) schema and the predictor metadata read with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSchema {
    /// Exact bytes for the label and `/src/.cog/openapi_schema.json`.
    pub json: String,
    /// The target `run`/`predict`/`train` is `async def`.
    pub is_async: bool,
    /// `@cog.concurrent(max=N)` on the target, if present.
    pub concurrency_max: Option<i64>,
    /// Warnings for the user (e.g. `predict()` deprecation).
    pub warnings: Vec<String>,
}

/// Where a prebuilt schema file came from (decides how strict the metadata
/// parse of the predictor is, like cog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrebuiltSource {
    /// `COG_OPENAPI_SCHEMA=<file>`: the predictor must still parse.
    EnvVar,
    /// `--openapi-schema <file>`: predictor parse failures only warn.
    Flag,
}

/// Splits `path.py:Name` and checks the path stays inside the project.
fn split_ref(reference: &str) -> Result<(String, String), SchemaError> {
    let bad = || {
        SchemaError::new(
            ErrorKind::InvalidReference,
            format!(
                "invalid predict reference '{reference}' — expected format: file.py:ClassName or file.py:function_name"
            ),
        )
    };
    let (path, name) = reference.split_once(':').ok_or_else(bad)?;
    if path.is_empty() || name.is_empty() {
        return Err(bad());
    }
    let clean = clean_relative(path).filter(|_| !path.starts_with('/'));
    let clean = clean.ok_or_else(|| {
        SchemaError::new(
            ErrorKind::InvalidReference,
            format!(
                "predictor source path {} is outside source directory",
                go_quote(path)
            ),
        )
    })?;
    Ok((clean, name.to_string()))
}

fn go_quote(s: &str) -> String {
    let mut out = String::new();
    gojson::write_go_string(s, &mut out);
    out
}

fn analyze_ref(
    project_dir: &Path,
    reference: &str,
    mode: Mode,
    opts: &SchemaOptions,
) -> Result<PredictorInfo, SchemaError> {
    let (path, name) = split_ref(reference)?;
    analyze(project_dir, &path, &name, mode, opts.literal_enums)
}

fn validated(doc: &Json) -> Result<(), SchemaError> {
    validate::validate_document(doc).map_err(|e| {
        let mut err = SchemaError::new(
            ErrorKind::InvalidSchema,
            format!("Model schema is invalid: {}", e.message),
        );
        err.note = Some(format!("at {}", e.path));
        err
    })
}

fn no_reference() -> SchemaError {
    SchemaError::new(
        ErrorKind::NoReference,
        "no predict or train reference found in cog.yaml".to_string(),
    )
}

/// Generates the schema for a project.
///
/// `predict_ref` / `train_ref` are cog.yaml's `predict:` / `train:` values
/// (`"predict.py:Predictor"`). With only one, the result is compact JSON;
/// with both, the merged document is 2-space indented with sorted keys.
/// `is_async` and `concurrency_max` come from the predict target if set,
/// else from the train target.
pub fn generate(
    project_dir: &Path,
    predict_ref: Option<&str>,
    train_ref: Option<&str>,
    opts: &SchemaOptions,
) -> Result<GeneratedSchema, SchemaError> {
    let predict_ref = predict_ref.filter(|r| !r.is_empty());
    let train_ref = train_ref.filter(|r| !r.is_empty());
    let (json, meta, warnings) = match (predict_ref, train_ref) {
        (None, None) => return Err(no_reference()),
        (Some(p), Some(t)) => {
            let predict = analyze_ref(project_dir, p, Mode::Predict, opts)
                .map_err(|e| e.prefixed("predict schema: "))?;
            let train = analyze_ref(project_dir, t, Mode::Train, opts)
                .map_err(|e| e.prefixed("train schema: "))?;
            let mut doc = document::build_document(&predict, &opts.sdk_version);
            validated(&doc)?;
            let train_doc = document::build_document(&train, &opts.sdk_version);
            validated(&train_doc)?;
            document::merge(&mut doc, &train_doc);
            let mut warnings = predict.warnings.clone();
            warnings.extend(train.warnings.iter().cloned());
            (doc.to_go_indented_generic(), predict, warnings)
        }
        (Some(r), None) | (None, Some(r)) => {
            let mode = if predict_ref.is_some() {
                Mode::Predict
            } else {
                Mode::Train
            };
            let info = analyze_ref(project_dir, r, mode, opts)?;
            let doc = document::build_document(&info, &opts.sdk_version);
            validated(&doc)?;
            let warnings = info.warnings.clone();
            (doc.to_go_compact(), info, warnings)
        }
    };
    Ok(GeneratedSchema {
        json,
        is_async: meta.is_async,
        concurrency_max: meta.concurrency_max,
        warnings,
    })
}

/// Uses a prebuilt schema file (`COG_OPENAPI_SCHEMA` or `--openapi-schema`).
///
/// The file's bytes are returned unchanged after OpenAPI validation. The
/// predictor is still parsed for `async`/`@cog.concurrent` metadata; with
/// [`PrebuiltSource::Flag`] a parse failure only adds a warning.
pub fn load_prebuilt(
    schema_file: &Path,
    project_dir: &Path,
    predict_ref: Option<&str>,
    train_ref: Option<&str>,
    source: PrebuiltSource,
    opts: &SchemaOptions,
) -> Result<GeneratedSchema, SchemaError> {
    let bytes = std::fs::read(schema_file).map_err(|e| {
        let message = match source {
            PrebuiltSource::EnvVar => format!(
                "COG_OPENAPI_SCHEMA: failed to read {}: {e}",
                schema_file.display()
            ),
            PrebuiltSource::Flag => format!("Failed to read schema file: {e}"),
        };
        SchemaError::new(ErrorKind::Io, message)
    })?;
    let display = schema_file.display().to_string();
    let json = String::from_utf8(bytes).map_err(|e| {
        SchemaError::new(
            ErrorKind::InvalidSchema,
            format!("Failed to load model schema JSON: {e}"),
        )
        .at(&display, None)
    })?;
    let parsed: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
        SchemaError::new(
            ErrorKind::InvalidSchema,
            format!("Failed to load model schema JSON: {e}"),
        )
        .at(&display, Some(e.line()))
    })?;
    validated(&Json::from_serde(&parsed)).map_err(|e| e.at(&display, None))?;
    let mut result = GeneratedSchema {
        json,
        is_async: false,
        concurrency_max: None,
        warnings: Vec::new(),
    };
    let meta_ref = predict_ref
        .filter(|r| !r.is_empty())
        .map(|r| (r, Mode::Predict))
        .or_else(|| {
            train_ref
                .filter(|r| !r.is_empty())
                .map(|r| (r, Mode::Train))
        });
    let Some((reference, mode)) = meta_ref else {
        return Ok(result);
    };
    match analyze_ref(project_dir, reference, mode, opts) {
        Ok(info) => {
            result.is_async = info.is_async;
            result.concurrency_max = info.concurrency_max;
            result.warnings = info.warnings;
        }
        Err(e) if source == PrebuiltSource::Flag => result
            .warnings
            .push(format!("skipping decorator concurrency detection: {e}")),
        Err(e) => return Err(e),
    }
    Ok(result)
}

/// The concurrency the image runs with, combining cog.yaml's
/// `concurrency.max` with the predictor's `@cog.concurrent(max=N)` like cog:
/// cog.yaml wins when set; the decorator fills in otherwise; any value > 1
/// needs an `async` target and Python ≥ 3.11.
pub fn effective_concurrency(
    config_max: Option<i64>,
    python_version: Option<&str>,
    schema: &GeneratedSchema,
) -> Result<Option<i64>, String> {
    if config_max.is_some_and(|m| m > 1) && !schema.is_async {
        return Err("concurrency.max > 1 requires an async run() or predict() method".to_string());
    }
    let effective = match (config_max, schema.concurrency_max) {
        (Some(m), _) => Some(m),
        (None, Some(m)) if m > 1 && !schema.is_async => {
            return Err(
                "@cog.concurrent(max > 1) requires an async run() or predict() method".to_string(),
            );
        }
        (None, decorator) => decorator,
    };
    if effective.is_some_and(|m| m > 1)
        && python_minor(python_version).is_some_and(|(major, minor)| major == 3 && minor < 11)
    {
        return Err("concurrency requires Python 3.11 or higher".to_string());
    }
    Ok(effective)
}

fn python_minor(version: Option<&str>) -> Option<(u32, u32)> {
    let mut parts = version?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Oldest cog SDK whose runtime accepts a statically generated schema.
pub const MINIMUM_STATIC_SCHEMA_SDK: &str = "0.17.0";

/// Rejects an explicitly pinned SDK too old for static schemas, like cog.
///
/// `explicit_sdk_version` is the version the user pinned (cog.yaml
/// `build.sdk_version`, or the PyPI version named by `COG_SDK_WHEEL`);
/// `None`, empty, `prerelease` and unparseable values pass.
pub fn check_sdk_version(explicit_sdk_version: Option<&str>) -> Result<(), SchemaError> {
    let Some(version) = explicit_sdk_version.filter(|v| !v.is_empty() && *v != "prerelease") else {
        return Ok(());
    };
    let Some(parsed) = numeric_version(version) else {
        return Ok(());
    };
    if parsed >= (0, 17, 0) {
        return Ok(());
    }
    Err(SchemaError::new(
        ErrorKind::UnsupportedSdk,
        format!(
            "SDK version {version} is not supported by static schema generation; use {MINIMUM_STATIC_SCHEMA_SDK} or newer"
        ),
    ))
}

fn numeric_version(version: &str) -> Option<(u64, u64, u64)> {
    let base: String = version
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = base.trim_end_matches('.').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some((major, minor, patch))
}
