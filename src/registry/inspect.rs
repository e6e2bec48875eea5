//! `cogpack inspect`: read a model's labels from the registry and recognise
//! Cog models (spec §6, §10).

use super::{Client, Reference, RegistryError};
use crate::oci::{Descriptor, Platform, media};
use serde::Serialize;
use std::collections::BTreeMap;

/// Label whose presence makes an image a Cog model.
pub const CONFIG_LABEL: &str = "run.cog.config";
/// Label holding the OpenAPI schema.
pub const SCHEMA_LABEL: &str = "run.cog.openapi_schema";
/// Label holding the Cog version.
pub const VERSION_LABEL: &str = "run.cog.version";

/// A Cog model as read from its image config.
#[derive(Debug, Clone, Serialize)]
pub struct CogModel {
    /// The reference inspected.
    pub reference: String,
    /// Digest of what the reference points at (index or manifest).
    pub digest: String,
    /// `bundle` (OCI index with weights) or `image`.
    pub format: &'static str,
    /// Every label of the image config.
    pub labels: BTreeMap<String, String>,
    /// Parsed `run.cog.config`.
    pub config: serde_json::Value,
    /// Parsed `run.cog.openapi_schema`; `None` when empty.
    pub schema: Option<serde_json::Value>,
    /// `run.cog.version`.
    pub cog_version: Option<String>,
    /// Weight descriptors of a bundle index (platform `unknown`).
    pub weights: Vec<Descriptor>,
}

impl CogModel {
    /// A human summary for `cogpack inspect`: reference, format, Cog
    /// version, Python version, predictor, schema inputs and weights.
    pub fn summary(&self) -> String {
        let mut lines = vec![
            format!("model      {}@{}", self.reference, self.digest),
            format!("format     {}", self.format),
            format!(
                "cog        {}",
                self.cog_version.as_deref().unwrap_or("unknown")
            ),
        ];
        let field = |pointer: &str| {
            self.config
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        if let Some(python) = field("/build/python_version") {
            lines.push(format!("python     {python}"));
        }
        if let Some(gpu) = self.config.pointer("/build/gpu").and_then(|v| v.as_bool()) {
            lines.push(format!("gpu        {gpu}"));
        }
        if let Some(predict) = field("/predict") {
            lines.push(format!("predict    {predict}"));
        }
        if let Some(train) = field("/train") {
            lines.push(format!("train      {train}"));
        }
        let inputs = self.schema_inputs();
        if !inputs.is_empty() {
            lines.push(format!("inputs     {}", inputs.join(", ")));
        }
        for weight in &self.weights {
            let name = weight
                .annotations
                .as_ref()
                .and_then(|a| a.get("run.cog.weight.name"))
                .map_or("?", String::as_str);
            lines.push(format!(
                "weight     {name} {} ({} bytes manifest)",
                weight.digest, weight.size
            ));
        }
        lines.join("\n")
    }

    /// Input names of the predict schema (`components.schemas.Input.properties`).
    pub fn schema_inputs(&self) -> Vec<String> {
        self.schema
            .as_ref()
            .and_then(|s| s.pointer("/components/schemas/Input/properties"))
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }
}

impl Client {
    /// Reads a model from the registry. An index counts as a bundle: its
    /// linux/amd64 image (else the first non-`unknown` entry) gives the labels.
    pub async fn inspect(&self, reference: &Reference) -> Result<CogModel, RegistryError> {
        let (source, top) = self.get_manifest(reference).await?;
        let (image_ref, image_manifest, format, weights) = if media::is_index(&top.media_type) {
            let entries = index_entries(reference, &top.bytes)?;
            let runnable =
                pick_runnable(&entries).ok_or_else(|| RegistryError::InvalidManifest {
                    reference: reference.to_string(),
                    detail: "the index has no runnable image entry".into(),
                })?;
            let pinned = source.with_digest(runnable.digest.clone());
            let manifest = self.get_manifest_direct(&pinned).await?;
            let weights = entries
                .into_iter()
                .filter(|d| d.platform.as_ref().is_some_and(|p| p.os == "unknown"))
                .collect();
            (pinned, manifest, "bundle", weights)
        } else {
            (source.clone(), top.clone(), "image", Vec::new())
        };
        let (config, _) =
            super::pull::parse_image_manifest(&reference.to_string(), &image_manifest.bytes)?;
        let config_bytes = self.get_blob_bytes(&image_ref, &config).await?;
        let mut model = cog_model_from_config(&reference.to_string(), &config_bytes)?;
        model.digest = top.digest.to_string();
        model.format = format;
        model.weights = weights;
        Ok(model)
    }
}

/// Recognises a Cog model from image config bytes (local store or remote):
/// it is one iff the `run.cog.config` label exists.
pub fn cog_model_from_config(
    reference: &str,
    config_bytes: &[u8],
) -> Result<CogModel, RegistryError> {
    let invalid = |detail: String| RegistryError::InvalidManifest {
        reference: reference.to_string(),
        detail,
    };
    let config: serde_json::Value = serde_json::from_slice(config_bytes)
        .map_err(|e| invalid(format!("image config is not JSON: {e}")))?;
    let labels: BTreeMap<String, String> = config
        .pointer("/config/Labels")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let Some(cog_config) = labels.get(CONFIG_LABEL) else {
        return Err(RegistryError::NotCogModel {
            reference: reference.to_string(),
        });
    };
    let parsed_config = serde_json::from_str(cog_config)
        .map_err(|e| invalid(format!("label {CONFIG_LABEL} is not JSON: {e}")))?;
    let schema = match labels.get(SCHEMA_LABEL).map(String::as_str) {
        None | Some("") => None,
        Some(text) => Some(
            serde_json::from_str(text)
                .map_err(|e| invalid(format!("label {SCHEMA_LABEL} is not JSON: {e}")))?,
        ),
    };
    Ok(CogModel {
        reference: reference.to_string(),
        digest: String::new(),
        format: "image",
        cog_version: labels.get(VERSION_LABEL).cloned(),
        config: parsed_config,
        schema,
        labels,
        weights: Vec::new(),
    })
}

fn index_entries(reference: &Reference, bytes: &[u8]) -> Result<Vec<Descriptor>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Index {
        manifests: Vec<Descriptor>,
    }
    serde_json::from_slice::<Index>(bytes)
        .map(|i| i.manifests)
        .map_err(|e| RegistryError::InvalidManifest {
            reference: reference.to_string(),
            detail: format!("invalid index JSON: {e}"),
        })
}

fn pick_runnable(entries: &[Descriptor]) -> Option<&Descriptor> {
    super::pull::select_platform(entries, &Platform::linux_amd64()).or_else(|| {
        entries
            .iter()
            .find(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_cog_images_get_the_not_a_cog_model_error() {
        let err = cog_model_from_config("x", br#"{"config":{"Labels":{"a":"b"}}}"#).unwrap_err();
        assert!(matches!(err, RegistryError::NotCogModel { .. }));
        assert!(err.to_string().contains("image is not a Cog model"));
    }

    #[test]
    fn cog_labels_are_parsed() {
        let config = br#"{"config":{"Labels":{"run.cog.config":"{\"build\":{}}","run.cog.openapi_schema":"","run.cog.version":"0.19.0"}}}"#;
        let model = cog_model_from_config("x", config).unwrap();
        assert_eq!(model.cog_version.as_deref(), Some("0.19.0"));
        assert!(model.schema.is_none());
        assert!(model.config.get("build").is_some());
        assert!(model.summary().contains("cog        0.19.0"));
    }

    #[test]
    fn summary_lists_schema_inputs() {
        let schema = r#"{\"components\":{\"schemas\":{\"Input\":{\"properties\":{\"prompt\":{},\"seed\":{}}}}}}"#;
        let config = format!(
            r#"{{"config":{{"Labels":{{"run.cog.config":"{{\"build\":{{\"python_version\":\"3.11\"}},\"predict\":\"predict.py:Predictor\"}}","run.cog.openapi_schema":"{schema}"}}}}}}"#
        );
        let model = cog_model_from_config("r8.im/u/m", config.as_bytes()).unwrap();
        assert_eq!(model.schema_inputs(), vec!["prompt", "seed"]);
        let summary = model.summary();
        assert!(summary.contains("python     3.11"), "{summary}");
        assert!(
            summary.contains("predict    predict.py:Predictor"),
            "{summary}"
        );
        assert!(summary.contains("inputs     prompt, seed"), "{summary}");
    }
}
