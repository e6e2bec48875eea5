//! OCI image layouts on disk: writing `oci:DIR[:tag]` outputs and reading a
//! base image from `oci-layout:DIR[:tag]`.

use super::image::{BaseImage, ImageError};
use super::store::Store;
use super::{Blob, Descriptor, Digest, Image, media};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Annotation naming a manifest in a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Splits `DIR[:tag]` (the part after `oci:` / `oci-layout:`). A last
/// `:` segment containing `/` is part of the directory.
pub fn split_dir_tag(spec: &str) -> (PathBuf, Option<String>) {
    match spec.rsplit_once(':') {
        Some((dir, tag)) if !tag.contains('/') && !dir.is_empty() && !tag.is_empty() => {
            (PathBuf::from(dir), Some(tag.to_string()))
        }
        _ => (PathBuf::from(spec), None),
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// Writes `image` into the OCI layout at `dir` (created if needed), keeping
/// other images already there; with `tag`, the manifest is named by
/// `org.opencontainers.image.ref.name` (replacing an older one of that name).
pub fn write_layout(
    image: &dyn Image,
    dir: &Path,
    tag: Option<&str>,
) -> Result<Descriptor, ImageError> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
    write_atomic(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    for layer in image.layers() {
        copy_blob(&*layer, &blobs)?;
    }
    let config_digest = Digest::of_bytes(image.config_bytes());
    write_blob_bytes(&blobs, &config_digest, image.config_bytes())?;
    let manifest_digest = image.digest();
    write_blob_bytes(&blobs, &manifest_digest, image.manifest_bytes())?;
    let mut desc = Descriptor::new(
        image.manifest_media_type(),
        image.manifest_bytes().len() as u64,
        manifest_digest,
    );
    if let Some(t) = tag {
        desc.annotations = Some([(REF_NAME.to_string(), t.to_string())].into());
    }
    update_index(dir, &desc)?;
    Ok(desc)
}

fn update_index(dir: &Path, desc: &Descriptor) -> Result<(), ImageError> {
    let path = dir.join("index.json");
    let mut manifests: Vec<Descriptor> = match fs::read(&path) {
        Ok(bytes) => {
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| layout_malformed(&path, e))?;
            serde_json::from_value(v["manifests"].clone())
                .map_err(|e| layout_malformed(&path, e))?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let name = ref_name(desc);
    manifests.retain(|m| match name {
        Some(n) => ref_name(m) != Some(n),
        None => m.digest != desc.digest || ref_name(m).is_some(),
    });
    manifests.push(desc.clone());
    let index = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests});
    write_atomic(
        &path,
        &serde_json::to_vec(&index).expect("index serialises"),
    )
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
}

fn layout_malformed(path: &Path, e: impl std::fmt::Display) -> ImageError {
    ImageError::Malformed {
        what: path.display().to_string(),
        detail: e.to_string(),
        hint: "point at a valid OCI image layout (a directory with oci-layout and index.json)"
            .into(),
    }
}

/// Writes bytes to `path` via a temp file in the same directory + rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err("create temp file in", dir))?;
    temp.write_all(bytes).map_err(io_err("write", path))?;
    temp.persist(path)
        .map_err(|e| io_err("rename to", path)(e.error))?;
    Ok(())
}

fn write_blob_bytes(blobs: &Path, digest: &Digest, bytes: &[u8]) -> Result<(), ImageError> {
    let dest = blobs.join(digest.hex());
    if dest.is_file() {
        return Ok(());
    }
    write_atomic(&dest, bytes)
}

/// Copies a blob into `blobs`, verifying its digest before the rename.
fn copy_blob(blob: &dyn Blob, blobs: &Path) -> Result<(), ImageError> {
    let dest = blobs.join(blob.digest().hex());
    if dest.is_file() {
        return Ok(());
    }
    let reader = blob.open().map_err(io_err("open blob for", &dest))?;
    let temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(blobs)
        .map_err(io_err("create temp file in", blobs))?;
    let (digest, temp) = hash_into(reader, temp).map_err(io_err("write", &dest))?;
    if &digest != blob.digest() {
        return Err(ImageError::Malformed {
            what: format!("blob {}", blob.digest()),
            detail: format!("its content has digest {digest}"),
            hint: "the local store is corrupt: run `cogpack gc` and rebuild".into(),
        });
    }
    temp.persist(&dest)
        .map_err(|e| io_err("rename to", &dest)(e.error))?;
    Ok(())
}

fn hash_into(
    mut reader: impl Read,
    mut temp: tempfile::NamedTempFile,
) -> io::Result<(Digest, tempfile::NamedTempFile)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        temp.write_all(&buf[..n])?;
    }
    Ok((Digest::from_sha256(hasher.finalize().into()), temp))
}

/// Reads a base image from the OCI layout `spec` (`DIR[:tag]`, with or
/// without the `oci-layout:` prefix of `--base`): picks the
/// manifest named `tag` (or the only one), resolves an index to its
/// linux/amd64 manifest, and copies config and layer blobs into `store`,
/// verifying each digest.
pub fn read_base(spec: &str, store: &Store) -> Result<BaseImage, ImageError> {
    let spec = spec.strip_prefix("oci-layout:").unwrap_or(spec);
    let (dir, tag) = split_dir_tag(spec);
    let index_path = dir.join("index.json");
    let bytes = fs::read(&index_path).map_err(io_err("read", &index_path))?;
    let index: Value =
        serde_json::from_slice(&bytes).map_err(|e| layout_malformed(&index_path, e))?;
    let manifests: Vec<Descriptor> = serde_json::from_value(index["manifests"].clone())
        .map_err(|e| layout_malformed(&index_path, e))?;
    let chosen = choose_manifest(&manifests, tag.as_deref(), &index_path)?;
    let mut desc = chosen.clone();
    let mut manifest = import_json(&dir, &desc, store)?;
    if media::is_index(&desc.media_type) {
        let inner: Vec<Descriptor> = serde_json::from_value(manifest["manifests"].clone())
            .map_err(|e| layout_malformed(&index_path, e))?;
        desc = inner
            .into_iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
            })
            .ok_or_else(|| layout_malformed(&index_path, "the index has no linux/amd64 image"))?;
        manifest = import_json(&dir, &desc, store)?;
    }
    let config_desc: Descriptor = serde_json::from_value(manifest["config"].clone())
        .map_err(|e| layout_malformed(&index_path, e))?;
    let config = import_blob(&dir, &config_desc, store)
        .and_then(|()| Ok(store.read_blob(&config_desc.digest)?))?;
    let layers: Vec<Descriptor> = serde_json::from_value(manifest["layers"].clone())
        .map_err(|e| layout_malformed(&index_path, e))?;
    for layer in &layers {
        import_blob(&dir, layer, store)?;
    }
    Ok(BaseImage {
        reference: format!("oci-layout:{spec}"),
        config,
        layers,
    })
}

fn choose_manifest<'a>(
    manifests: &'a [Descriptor],
    tag: Option<&str>,
    index_path: &Path,
) -> Result<&'a Descriptor, ImageError> {
    match tag {
        Some(t) => manifests
            .iter()
            .find(|m| ref_name(m) == Some(t))
            .ok_or_else(|| layout_malformed(index_path, format!("no image tagged {t:?}"))),
        None if manifests.len() == 1 => Ok(&manifests[0]),
        None => Err(layout_malformed(
            index_path,
            format!(
                "{} images and no tag given (use oci-layout:DIR:TAG)",
                manifests.len()
            ),
        )),
    }
}

fn import_json(dir: &Path, desc: &Descriptor, store: &Store) -> Result<Value, ImageError> {
    import_blob(dir, desc, store)?;
    let bytes = store.read_blob(&desc.digest)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| layout_malformed(&dir.join("blobs").join(desc.digest.hex()), e))
}

fn import_blob(dir: &Path, desc: &Descriptor, store: &Store) -> Result<(), ImageError> {
    if store.has_blob(&desc.digest) {
        return Ok(());
    }
    let path = dir
        .join("blobs")
        .join(desc.digest.algorithm())
        .join(desc.digest.hex());
    let file = fs::File::open(&path).map_err(io_err("open", &path))?;
    store.put_verified(file, &desc.digest)?;
    Ok(())
}
