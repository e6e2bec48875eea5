//! Single-file outputs: `oci-archive:FILE` (an OCI layout as a tar) and
//! `docker-archive:FILE` (the `docker load` format: `manifest.json`, the
//! config and uncompressed layer tars). Both are written with the
//! deterministic tar writer to a temp file next to FILE, then renamed.

use super::image::ImageError;
use super::layout::REF_NAME;
use super::{Descriptor, Digest, Image, Layer, media};
use crate::layer::tar::{TarOptions, normalize_entries, write_tar};
use crate::layer::{Entry, EntryKind, FileSource, LayerError};
use serde_json::json;
use std::io::{self, BufWriter, Read};
use std::path::Path;
use std::sync::Arc;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

fn blob_entry(path: String, layer: Arc<dyn Layer>) -> Entry {
    let size = layer.size();
    Entry {
        path,
        kind: EntryKind::File {
            source: FileSource::Open(Arc::new(move || layer.open())),
            size,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

/// Writes `image` as an OCI layout tar to `file`.
pub fn write_oci_archive(
    image: &dyn Image,
    file: &Path,
    tag: Option<&str>,
) -> Result<Descriptor, ImageError> {
    let mut desc = Descriptor::new(
        image.manifest_media_type(),
        image.manifest_bytes().len() as u64,
        image.digest(),
    );
    if let Some(t) = tag {
        desc.annotations = Some([(REF_NAME.to_string(), t.to_string())].into());
    }
    let index = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [desc]});
    let mut entries = vec![
        Entry::file_bytes(
            "oci-layout",
            0o644,
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        Entry::file_bytes(
            "index.json",
            0o644,
            serde_json::to_vec(&index).expect("json"),
        ),
        Entry::file_bytes(
            format!("blobs/sha256/{}", image.digest().hex()),
            0o644,
            image.manifest_bytes().to_vec(),
        ),
        Entry::file_bytes(
            format!(
                "blobs/sha256/{}",
                Digest::of_bytes(image.config_bytes()).hex()
            ),
            0o644,
            image.config_bytes().to_vec(),
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for layer in image.layers() {
        if seen.insert(layer.digest().clone()) {
            entries.push(blob_entry(
                format!("blobs/sha256/{}", layer.digest().hex()),
                layer,
            ));
        }
    }
    write_tar_file(entries, file)?;
    Ok(desc)
}

/// Writes `image` in `docker load` format to `file`, tagged `repo_tags`
/// (e.g. `["my-model:latest"]`). Layers are stored uncompressed, named by
/// their diff_id.
pub fn write_docker_archive(
    image: &dyn Image,
    file: &Path,
    repo_tags: &[String],
) -> Result<(), ImageError> {
    let config_name = format!("{}.json", Digest::of_bytes(image.config_bytes()).hex());
    let mut entries = vec![Entry::file_bytes(
        config_name.clone(),
        0o644,
        image.config_bytes().to_vec(),
    )];
    let mut layer_names = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for layer in image.layers() {
        let name = format!("{}/layer.tar", layer.diff_id().hex());
        layer_names.push(name.clone());
        if !seen.insert(layer.diff_id().clone()) {
            continue;
        }
        entries.push(uncompressed_entry(name, layer).map_err(io_err("read layer for", file))?);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": repo_tags, "Layers": layer_names}]);
    entries.push(Entry::file_bytes(
        "manifest.json",
        0o644,
        serde_json::to_vec(&manifest).expect("json"),
    ));
    write_tar_file(entries, file)
}

/// An entry streaming the uncompressed tar of `layer`; its size is found by
/// decompressing once up front.
fn uncompressed_entry(path: String, layer: Arc<dyn Layer>) -> io::Result<Entry> {
    let size = io::copy(&mut open_uncompressed(&*layer)?, &mut io::sink())?;
    Ok(Entry {
        path,
        kind: EntryKind::File {
            source: FileSource::Open(Arc::new(move || open_uncompressed(&*layer))),
            size,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
    })
}

/// Opens a reader over the uncompressed tar of a layer, by media type.
pub fn open_uncompressed(layer: &dyn Layer) -> io::Result<Box<dyn Read + Send>> {
    let raw = layer.open()?;
    let mt = layer.media_type();
    if mt.ends_with("gzip") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::new(raw),
        )))
    } else if mt.ends_with("zstd") {
        Ok(Box::new(zstd::stream::read::Decoder::new(raw)?))
    } else if mt.ends_with(".tar") {
        Ok(raw)
    } else {
        Err(io::Error::other(format!(
            "layer {} has unsupported media type {mt}",
            layer.digest()
        )))
    }
}

fn write_tar_file(entries: Vec<Entry>, file: &Path) -> Result<(), ImageError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = normalize_entries(entries).map_err(layer_to_image)?;
    let temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err("create temp file in", dir))?;
    let mut out = BufWriter::with_capacity(1 << 20, temp);
    write_tar(&entries, TarOptions { mtime: 0 }, &mut out).map_err(layer_to_image)?;
    let temp = out
        .into_inner()
        .map_err(|e| io_err("write", file)(e.into_error()))?;
    temp.persist(file)
        .map_err(|e| io_err("rename to", file)(e.error))?;
    Ok(())
}

fn layer_to_image(e: LayerError) -> ImageError {
    match e {
        LayerError::Write { path, source } => ImageError::Io {
            op: "write",
            path: path.display().to_string(),
            source,
        },
        other => ImageError::Malformed {
            what: "archive content".into(),
            detail: other.to_string(),
            hint: "rebuild the image".into(),
        },
    }
}
