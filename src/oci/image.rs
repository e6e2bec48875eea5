//! Image assembly: config = base config + additions, OCI manifest, index.
//!
//! `created` and every history timestamp are `SOURCE_DATE_EPOCH` or the Unix
//! epoch; the choice is recorded in the last history entry. Nothing here
//! reads the clock or the environment, so the same inputs give the same
//! manifest digest.

use super::store::{LayerRecord, Store, StoreError, StoreLayer};
use super::{Descriptor, Digest, Image, Layer, Platform, media};
use serde_json::{Map, Value, json};
use std::io;
use std::sync::Arc;

/// What can go wrong while assembling or reading an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The base image config is not usable.
    #[error(
        "base image {reference}: {detail}; hint: check the base image reference or rebuild the base"
    )]
    BadBase {
        /// The base reference.
        reference: String,
        /// What is wrong.
        detail: String,
    },
    /// A manifest, index or layout file is malformed.
    #[error("{what} is malformed: {detail}; hint: {hint}")]
    Malformed {
        /// Which file.
        what: String,
        /// What is wrong.
        detail: String,
        /// What to do.
        hint: String,
    },
    /// An input or output path failed.
    #[error("{op} {path}: {source}; hint: check the path exists, is writable and has free space")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Where.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The base image: its config bytes and layer descriptors (bottom first).
/// The registry code or [`super::layout::read_base`] fills it in.
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// How the user named the base (for history and labels).
    pub reference: String,
    /// The raw config JSON of the base.
    pub config: Vec<u8>,
    /// The base manifest's layer descriptors, bottom first.
    pub layers: Vec<Descriptor>,
}

impl BaseImage {
    /// An empty base (`FROM scratch`) for linux/amd64.
    pub fn scratch() -> Self {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        BaseImage {
            reference: "scratch".into(),
            config: serde_json::to_vec(&config).expect("static json"),
            layers: Vec::new(),
        }
    }

    /// The rootfs diff_ids of the base config, bottom first.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, ImageError> {
        let config: Value = self.parse_config()?;
        let ids = config
            .pointer("/rootfs/diff_ids")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(ids).map_err(|e| self.bad(format!("rootfs.diff_ids: {e}")))
    }

    /// `(index, diff_id)` of the base's last layer, for the
    /// `run.cog.cog-base-image-last-layer-*` labels.
    pub fn last_layer(&self) -> Result<Option<(usize, Digest)>, ImageError> {
        let ids = self.diff_ids()?;
        Ok(ids.last().cloned().map(|d| (ids.len() - 1, d)))
    }

    fn parse_config(&self) -> Result<Value, ImageError> {
        let v: Value = serde_json::from_slice(&self.config)
            .map_err(|e| self.bad(format!("config is not JSON: {e}")))?;
        if !v.is_object() {
            return Err(self.bad("config is not a JSON object".into()));
        }
        Ok(v)
    }

    fn bad(&self, detail: String) -> ImageError {
        ImageError::BadBase {
            reference: self.reference.clone(),
            detail,
        }
    }
}

/// Changes to the image config on top of the base's.
#[derive(Clone, Debug, Default)]
pub struct ConfigAdditions {
    /// Environment variables in order; an existing name is replaced in place
    /// (like Dockerfile `ENV`), a new one is appended.
    pub env: Vec<(String, String)>,
    /// New entrypoint; setting it without `cmd` clears the base's Cmd (as
    /// Dockerfile `ENTRYPOINT` does).
    pub entrypoint: Option<Vec<String>>,
    /// New command.
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Ports to expose, e.g. `5000/tcp`.
    pub exposed_ports: Vec<String>,
    /// Labels added to (or replacing) the base's labels.
    pub labels: Vec<(String, String)>,
}

/// A layer added on top of the base, with its history text.
#[derive(Clone, Debug)]
pub struct AddedLayer {
    /// The stored layer.
    pub record: LayerRecord,
    /// History `created_by`, e.g. `COPY . /src`.
    pub created_by: String,
    /// Optional history comment.
    pub comment: Option<String>,
}

/// Everything that determines an image.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The base.
    pub base: BaseImage,
    /// Layers added on top, bottom first.
    pub layers: Vec<AddedLayer>,
    /// Config changes.
    pub config: ConfigAdditions,
    /// `SOURCE_DATE_EPOCH`, passed in by the caller; `None` means the epoch.
    pub source_date_epoch: Option<u64>,
}

/// An image whose manifest and config are in the store.
#[derive(Clone)]
pub struct StoreImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layers: Vec<Arc<dyn Layer>>,
}

impl std::fmt::Debug for StoreImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreImage({})", Image::digest(self))
    }
}

impl StoreImage {
    /// The manifest descriptor (OCI manifest media type, linux/amd64).
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            media::OCI_MANIFEST,
            self.manifest.len() as u64,
            Image::digest(self),
        );
        d.platform = Some(Platform::linux_amd64());
        d
    }

    /// Loads the image with manifest `digest` from the store.
    pub fn load(store: &Store, digest: &Digest) -> Result<Self, ImageError> {
        let manifest = store.read_blob(digest)?;
        let parsed: Value = serde_json::from_slice(&manifest)
            .map_err(|e| malformed(format!("manifest {digest}"), e))?;
        let config_desc: Descriptor = serde_json::from_value(parsed["config"].clone())
            .map_err(|e| malformed(format!("manifest {digest} config"), e))?;
        let config = store.read_blob(&config_desc.digest)?;
        let layer_descs: Vec<Descriptor> = serde_json::from_value(parsed["layers"].clone())
            .map_err(|e| malformed(format!("manifest {digest} layers"), e))?;
        let base = BaseImage {
            reference: digest.to_string(),
            config: config.clone(),
            layers: layer_descs.clone(),
        };
        let layers = store_layers(store, &layer_descs, &base.diff_ids()?)?;
        Ok(StoreImage {
            manifest,
            config,
            layers,
        })
    }

    /// Loads the image recorded under `name` in the store.
    pub fn load_named(store: &Store, name: &str) -> Result<Self, ImageError> {
        let desc = store.image(name)?;
        Self::load(store, &desc.digest)
    }
}

fn malformed(what: String, e: impl std::fmt::Display) -> ImageError {
    ImageError::Malformed {
        what,
        detail: e.to_string(),
        hint: "rebuild the image".into(),
    }
}

fn store_layers(
    store: &Store,
    descs: &[Descriptor],
    diff_ids: &[Digest],
) -> Result<Vec<Arc<dyn Layer>>, ImageError> {
    if descs.len() != diff_ids.len() {
        return Err(ImageError::Malformed {
            what: "image config".into(),
            detail: format!(
                "{} layers but {} rootfs diff_ids",
                descs.len(),
                diff_ids.len()
            ),
            hint: "rebuild the image or re-pull its base".into(),
        });
    }
    Ok(descs
        .iter()
        .zip(diff_ids)
        .map(|(d, id)| {
            let record = LayerRecord {
                digest: d.digest.clone(),
                diff_id: id.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
            };
            Arc::new(StoreLayer::new(store.clone(), record)) as Arc<dyn Layer>
        })
        .collect())
}

impl Image for StoreImage {
    fn manifest_bytes(&self) -> &[u8] {
        &self.manifest
    }
    fn manifest_media_type(&self) -> &str {
        media::OCI_MANIFEST
    }
    fn config_bytes(&self) -> &[u8] {
        &self.config
    }
    fn layers(&self) -> Vec<Arc<dyn Layer>> {
        self.layers.clone()
    }
}

/// RFC 3339 UTC text of a Unix time.
pub fn rfc3339(seconds: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(seconds as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Builds the config and manifest of `spec`, stores both and returns the image.
/// Base layer blobs need not be in the store.
pub fn assemble(spec: &ImageSpec, store: &Store) -> Result<StoreImage, ImageError> {
    let base_ids = spec.base.diff_ids()?;
    if base_ids.len() != spec.base.layers.len() {
        return Err(spec.base.bad(format!(
            "{} layers in the manifest but {} rootfs diff_ids in the config",
            spec.base.layers.len(),
            base_ids.len()
        )));
    }
    let config = build_config(spec)?;
    let config_bytes = serde_json::to_vec(&config).expect("config serialises");
    let config_digest = store.put_bytes(&config_bytes)?;
    let mut layer_descs: Vec<Descriptor> =
        spec.base.layers.iter().map(oci_layer_descriptor).collect();
    layer_descs.extend(spec.layers.iter().map(|l| l.record.descriptor()));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": Descriptor::new(media::OCI_CONFIG, config_bytes.len() as u64, config_digest),
        "layers": layer_descs,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
    store.put_bytes(&manifest_bytes)?;
    let mut diff_ids = base_ids;
    diff_ids.extend(spec.layers.iter().map(|l| l.record.diff_id.clone()));
    let layers = store_layers(store, &layer_descs, &diff_ids)?;
    Ok(StoreImage {
        manifest: manifest_bytes,
        config: config_bytes,
        layers,
    })
}

/// Docker layer media types become their OCI equivalents (same bytes).
fn oci_layer_descriptor(d: &Descriptor) -> Descriptor {
    let mut d = d.clone();
    d.media_type = match d.media_type.as_str() {
        media::DOCKER_LAYER_GZIP => media::OCI_LAYER_GZIP.into(),
        "application/vnd.docker.image.rootfs.diff.tar" => media::OCI_LAYER_TAR.into(),
        other => other.into(),
    };
    d
}

fn build_config(spec: &ImageSpec) -> Result<Value, ImageError> {
    let mut root = spec.base.parse_config()?;
    let created = rfc3339(spec.source_date_epoch.unwrap_or(0));
    let obj = root.as_object_mut().expect("checked object");
    obj.insert("created".into(), Value::String(created.clone()));
    obj.entry("architecture").or_insert_with(|| "amd64".into());
    obj.entry("os").or_insert_with(|| "linux".into());
    let cfg = obj
        .entry("config")
        .or_insert_with(|| Value::Object(Map::new()));
    if !cfg.is_object() {
        *cfg = Value::Object(Map::new());
    }
    apply_additions(cfg.as_object_mut().expect("object"), &spec.config);
    let mut diff_ids = spec.base.diff_ids()?;
    diff_ids.extend(spec.layers.iter().map(|l| l.record.diff_id.clone()));
    obj.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    let history = obj
        .entry("history")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !history.is_array() {
        *history = Value::Array(Vec::new());
    }
    let history = history.as_array_mut().expect("array");
    for layer in &spec.layers {
        let mut h = json!({"created": created, "created_by": layer.created_by});
        if let Some(c) = &layer.comment {
            h["comment"] = Value::String(c.clone());
        }
        history.push(h);
    }
    let timestamps = match spec.source_date_epoch {
        Some(n) => format!("timestamps set to SOURCE_DATE_EPOCH={n}"),
        None => "timestamps set to the Unix epoch (SOURCE_DATE_EPOCH unset)".into(),
    };
    history.push(json!({
        "created": created,
        "created_by": "cogpack: image config (env, entrypoint, cmd, workdir, ports, labels)",
        "comment": timestamps,
        "empty_layer": true,
    }));
    Ok(root)
}

fn apply_additions(cfg: &mut Map<String, Value>, add: &ConfigAdditions) {
    if !add.env.is_empty() {
        let mut env: Vec<String> = cfg
            .get("Env")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        for (k, v) in &add.env {
            let item = format!("{k}={v}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |p| p.0) == k)
            {
                Some(slot) => *slot = item,
                None => env.push(item),
            }
        }
        cfg.insert("Env".into(), json!(env));
    }
    if let Some(ep) = &add.entrypoint {
        cfg.insert("Entrypoint".into(), json!(ep));
        if add.cmd.is_none() {
            cfg.remove("Cmd");
        }
    }
    if let Some(cmd) = &add.cmd {
        cfg.insert("Cmd".into(), json!(cmd));
    }
    if let Some(w) = &add.workdir {
        cfg.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &add.user {
        cfg.insert("User".into(), json!(u));
    }
    if !add.exposed_ports.is_empty() {
        let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
        if !ports.is_object() {
            *ports = json!({});
        }
        for p in &add.exposed_ports {
            ports[p] = json!({});
        }
    }
    if !add.labels.is_empty() {
        let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in &add.labels {
            labels[k] = json!(v);
        }
    }
}

/// An OCI index over `manifests` (each descriptor should carry its platform
/// or artifactType); the bytes are stored and returned with their digest.
pub fn store_index(
    manifests: &[Descriptor],
    store: &Store,
) -> Result<(Vec<u8>, Digest), ImageError> {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    });
    let bytes = serde_json::to_vec(&index).expect("index serialises");
    let digest = store.put_bytes(&bytes)?;
    Ok((bytes, digest))
}
