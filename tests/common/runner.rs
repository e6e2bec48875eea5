//! Pull an image from a registry and run it without Docker, the way a container runtime
//! would: `skopeo copy` to an OCI layout, unpack every layer in order (whiteouts honoured,
//! compressed digests and diff_ids verified), then start the image's ENTRYPOINT + CMD with its
//! Env and WorkingDir under `bwrap` and talk to the Cog HTTP server on 127.0.0.1.

use super::{HttpResponse, free_port, http_request, run_checked, scratch_dir};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Default time a model gets to report `READY` on `/health-check`.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Time one HTTP request to the model may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Layout tag used for the pulled copy.
const PULLED_TAG: &str = "pulled";

/// An image pulled from a registry and unpacked into a root filesystem.
pub struct PulledImage {
    /// The reference it was pulled from (`127.0.0.1:PORT/repo:tag`).
    pub reference: String,
    /// Digest of the pulled manifest, `sha256:…`.
    pub manifest_digest: String,
    /// The image manifest as pulled.
    pub manifest: Value,
    /// The image config blob as pulled.
    pub config: Value,
    /// Unpacked root filesystem (all layers applied in order).
    pub rootfs: PathBuf,
    /// The OCI layout skopeo wrote (tag `pulled`).
    pub layout: PathBuf,
    workdir: tempfile::TempDir,
}

/// How to start a model from a [`PulledImage`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Arguments appended after ENTRYPOINT + CMD + `--host 127.0.0.1`, e.g. `--x-mode train`.
    pub extra_args: Vec<String>,
    /// Host paths bound read-only at absolute paths inside the image (e.g. a weights dir).
    pub ro_binds: Vec<(PathBuf, String)>,
    /// Environment added to (or overriding) the image's Env.
    pub env: Vec<(String, String)>,
    /// Time to wait for `READY`; [`DEFAULT_READY_TIMEOUT`] when `None`.
    pub ready_timeout: Option<Duration>,
}

/// A model server running under bwrap; killed (with everything it started) on drop.
pub struct RunningModel {
    /// `127.0.0.1:PORT` of the Cog HTTP server.
    pub host: String,
    /// The port the server listens on (passed as `PORT`).
    pub port: u16,
    /// File holding the server's stdout and stderr.
    pub log_path: PathBuf,
    child: Child,
    /// Held while the model runs: coglet names its worker transport after
    /// in-sandbox PIDs, which are equal in every PID namespace, and abstract
    /// sockets are shared through the host network the sandboxes use; two
    /// models at once would collide ("Address already in use").
    _slot: File,
}

/// Waits for the machine-wide model slot (a lock file in the test cache).
fn model_slot() -> Result<File, String> {
    let path = super::cache_dir().join("model-run.lock");
    let file = File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("lock {}: {e}", path.display()))?;
    Ok(file)
}

/// Pulls `reference` (`127.0.0.1:PORT/repo:tag` or `…@sha256:…`) with skopeo over plain HTTP
/// and unpacks it. Errors say which step or layer failed.
pub fn pull(reference: &str) -> Result<PulledImage, String> {
    let workdir = scratch_dir("cogpack-pull.");
    let layout = workdir.path().join("oci");
    run_checked(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:{PULLED_TAG}", layout.display())),
    )?;
    unpack_into(workdir, layout, PULLED_TAG, reference)
}

/// Unpacks the image tagged `tag` in an OCI layout written by another client (e.g. cogpack's
/// own pull or `--output oci:DIR`). An index is resolved to its linux/amd64 manifest. The
/// layout is only read.
pub fn from_layout(layout: &Path, tag: &str) -> Result<PulledImage, String> {
    let reference = format!("oci:{}:{tag}", layout.display());
    unpack_into(
        scratch_dir("cogpack-layout."),
        layout.to_path_buf(),
        tag,
        &reference,
    )
}

fn unpack_into(
    workdir: tempfile::TempDir,
    layout: PathBuf,
    tag: &str,
    reference: &str,
) -> Result<PulledImage, String> {
    let tagged = tagged_manifest_digest(&layout, tag)?;
    let (manifest_digest, manifest) = resolve_image_manifest(&layout, &tagged)?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| format!("manifest of {reference} has no config.digest"))?
        .to_string();
    let config = read_json_blob(&layout, &config_digest)?;
    let rootfs = workdir.path().join("rootfs");
    fs::create_dir(&rootfs).map_err(|e| format!("create {}: {e}", rootfs.display()))?;
    unpack_layers(&layout, &manifest, &config, &rootfs)
        .map_err(|e| format!("unpacking {reference}: {e}"))?;
    Ok(PulledImage {
        reference: reference.to_string(),
        manifest_digest,
        manifest,
        config,
        rootfs,
        layout,
        workdir,
    })
}

impl PulledImage {
    /// The config's `Env` as (name, value) pairs, in order.
    pub fn env(&self) -> Vec<(String, String)> {
        string_list(&self.config["config"]["Env"])
            .into_iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => (entry, String::new()),
            })
            .collect()
    }

    /// The config's `Entrypoint` (empty when unset).
    pub fn entrypoint(&self) -> Vec<String> {
        string_list(&self.config["config"]["Entrypoint"])
    }

    /// The config's `Cmd` (empty when unset).
    pub fn cmd(&self) -> Vec<String> {
        string_list(&self.config["config"]["Cmd"])
    }

    /// The config's `WorkingDir`, `/` when unset (Docker's default).
    pub fn working_dir(&self) -> String {
        match self.config["config"]["WorkingDir"].as_str() {
            Some(dir) if !dir.is_empty() => dir.to_string(),
            _ => "/".to_string(),
        }
    }

    /// The config's label `name`, if present.
    pub fn label(&self, name: &str) -> Option<String> {
        self.config["config"]["Labels"][name]
            .as_str()
            .map(str::to_string)
    }

    /// Starts ENTRYPOINT + CMD + `--host 127.0.0.1` + `extra_args` under bwrap with the image's
    /// Env, WorkingDir and `PORT`, and waits until `/health-check` reports `READY`. On failure
    /// (exit, `SETUP_FAILED`, timeout) the error carries the server log.
    pub fn run(&self, options: &RunOptions) -> Result<RunningModel, String> {
        let slot = model_slot()?;
        let port = free_port();
        let log_path = self.workdir.path().join(format!("server-{port}.log"));
        let log = File::create(&log_path).map_err(|e| format!("create server log: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        let mut argv = self.entrypoint();
        argv.extend(self.cmd());
        argv.extend(["--host".to_string(), "127.0.0.1".to_string()]);
        argv.extend(options.extra_args.iter().cloned());
        let mut env = options.env.clone();
        env.push(("PORT".to_string(), port.to_string()));
        let child = self
            .bwrap(&argv, &options.ro_binds, &env)?
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start bwrap: {e} (hint: `bash .ci/run`)"))?;
        let mut model = RunningModel {
            host: format!("127.0.0.1:{port}"),
            port,
            log_path,
            child,
            _slot: slot,
        };
        let timeout = options.ready_timeout.unwrap_or(DEFAULT_READY_TIMEOUT);
        model.wait_ready(timeout)?;
        Ok(model)
    }

    /// Runs `argv` to completion in the image (its Env and WorkingDir, no entrypoint) and
    /// returns its output, e.g. `["python", "-c", "import numpy"]`.
    pub fn exec(&self, argv: &[&str], options: &RunOptions) -> Result<Output, String> {
        let argv: Vec<String> = argv.iter().map(|arg| arg.to_string()).collect();
        self.bwrap(&argv, &options.ro_binds, &options.env)?
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start bwrap: {e} (hint: `bash .ci/run`)"))
    }

    fn bwrap(
        &self,
        argv: &[String],
        ro_binds: &[(PathBuf, String)],
        extra_env: &[(String, String)],
    ) -> Result<Command, String> {
        if argv.is_empty() {
            return Err(format!("{} has neither Entrypoint nor Cmd", self.reference));
        }
        let mut command = Command::new("bwrap");
        command
            .arg("--ro-bind")
            .arg(&self.rootfs)
            .arg("/")
            .args([
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
            ])
            .args([
                "--unshare-pid",
                "--unshare-ipc",
                "--unshare-uts",
                "--die-with-parent",
            ]);
        for (source, target) in ro_binds {
            self.create_mount_point(source, target)?;
            command.arg("--ro-bind").arg(source).arg(target);
        }
        command.args(["--chdir", &self.working_dir(), "--clearenv"]);
        for (name, value) in self.merged_env(extra_env) {
            command.args(["--setenv", &name, &value]);
        }
        command.args(argv);
        Ok(command)
    }

    /// Image Env, then `HOME=/root` if the image sets no HOME (as Docker does), then overrides.
    fn merged_env(&self, extra_env: &[(String, String)]) -> Vec<(String, String)> {
        let mut env = self.env();
        if !env.iter().any(|(name, _)| name == "HOME") {
            env.push(("HOME".to_string(), "/root".to_string()));
        }
        for (name, value) in extra_env {
            env.retain(|(existing, _)| existing != name);
            env.push((name.clone(), value.clone()));
        }
        env
    }

    /// bwrap cannot create a mount point inside the read-only root, so make it beforehand.
    fn create_mount_point(&self, source: &Path, target: &str) -> Result<(), String> {
        let inside = self.rootfs.join(target.trim_start_matches('/'));
        let created = if source.is_dir() {
            fs::create_dir_all(&inside)
        } else {
            inside
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| File::create(&inside).map(drop))
        };
        created.map_err(|e| format!("create mount point {}: {e}", inside.display()))
    }
}

impl RunningModel {
    /// `POST /predictions` with `{"input": input}`; returns the status and the JSON body
    /// (`Value::Null` if the body is not JSON).
    pub fn predict(&self, input: &Value) -> (u16, Value) {
        self.post_json("/predictions", &serde_json::json!({ "input": input }))
    }

    /// `POST /trainings` with `{"input": input}` (models served with `--x-mode train`).
    pub fn train(&self, input: &Value) -> (u16, Value) {
        self.post_json("/trainings", &serde_json::json!({ "input": input }))
    }

    /// `POST path` with a JSON body; returns the status and the parsed JSON response.
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("serialise request JSON");
        let response = http_request(&self.host, "POST", path, Some(&bytes), REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("POST {path} to {}: {e}\n{}", self.host, self.log()));
        (response.status, parse_json(&response))
    }

    /// `GET path`, e.g. `/openapi.json`.
    pub fn get(&self, path: &str) -> HttpResponse {
        http_request(&self.host, "GET", path, None, REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e}\n{}", self.host, self.log()))
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last_status = String::from("no answer");
        while Instant::now() < deadline {
            if let Ok(Some(exit)) = self.child.try_wait() {
                return Err(self.failure(&format!("server exited with {exit} before READY")));
            }
            if let Ok(response) = http_request(
                &self.host,
                "GET",
                "/health-check",
                None,
                Duration::from_secs(5),
            ) {
                last_status = parse_json(&response)["status"]
                    .as_str()
                    .unwrap_or("(no status)")
                    .to_string();
                match last_status.as_str() {
                    "READY" => return Ok(()),
                    "SETUP_FAILED" | "DEFUNCT" => {
                        return Err(self.failure(&format!("health-check says {last_status}")));
                    }
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(self.failure(&format!(
            "not READY within {timeout:?} (last health-check status: {last_status})"
        )))
    }

    fn failure(&self, what: &str) -> String {
        format!(
            "model on {} failed to start: {what}\n--- server log ---\n{}",
            self.host,
            self.log()
        )
    }
}

impl Drop for RunningModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn tagged_manifest_digest(layout: &Path, tag: &str) -> Result<String, String> {
    let index_path = layout.join("index.json");
    let index: Value = serde_json::from_slice(
        &fs::read(&index_path).map_err(|e| format!("read {}: {e}", index_path.display()))?,
    )
    .map_err(|e| format!("parse {}: {e}", index_path.display()))?;
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .and_then(|m| m["digest"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{} has no manifest tagged {tag}", index_path.display()))
}

/// Follows an image index down to its linux/amd64 image manifest.
fn resolve_image_manifest(layout: &Path, digest: &str) -> Result<(String, Value), String> {
    let mut digest = digest.to_string();
    loop {
        let blob = read_json_blob(layout, &digest)?;
        let Some(entries) = blob["manifests"].as_array() else {
            return Ok((digest, blob));
        };
        digest = entries
            .iter()
            .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")
            .and_then(|m| m["digest"].as_str())
            .ok_or_else(|| format!("index {digest} has no linux/amd64 manifest"))?
            .to_string();
    }
}

fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("unsupported digest {digest:?} (expected sha256:…)"))?;
    Ok(layout.join("blobs/sha256").join(hex))
}

fn read_json_blob(layout: &Path, digest: &str) -> Result<Value, String> {
    let path = blob_path(layout, digest)?;
    let bytes = fs::read(&path).map_err(|e| format!("read blob {digest}: {e}"))?;
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if actual != digest {
        return Err(format!("blob {digest} has digest {actual}"));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("blob {digest} is not JSON: {e}"))
}

fn unpack_layers(
    layout: &Path,
    manifest: &Value,
    config: &Value,
    rootfs: &Path,
) -> Result<(), String> {
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let diff_ids = string_list(&config["rootfs"]["diff_ids"]);
    if layers.len() != diff_ids.len() {
        return Err(format!(
            "manifest lists {} layers but config rootfs has {} diff_ids",
            layers.len(),
            diff_ids.len()
        ));
    }
    for (index, (layer, diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
        let digest = layer["digest"].as_str().unwrap_or_default();
        let media_type = layer["mediaType"].as_str().unwrap_or_default();
        apply_layer(layout, digest, media_type, diff_id, rootfs)
            .map_err(|e| format!("layer {index} ({digest}, {media_type}): {e}"))?;
    }
    Ok(())
}

fn apply_layer(
    layout: &Path,
    digest: &str,
    media_type: &str,
    diff_id: &str,
    rootfs: &Path,
) -> Result<(), String> {
    let path = blob_path(layout, digest)?;
    let file = File::open(&path).map_err(|e| format!("open blob: {e}"))?;
    let compressed = HashingReader::new(file);
    // Gzip layers may hold several members (block-parallel compressors); read them all.
    let decompressed: Box<dyn Read> = if media_type.ends_with("gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(compressed.clone_handle()))
    } else if media_type.ends_with("zstd") {
        Box::new(
            zstd::stream::read::Decoder::new(compressed.clone_handle())
                .map_err(|e| e.to_string())?,
        )
    } else if media_type.ends_with(".tar") || media_type.ends_with("tar") {
        Box::new(compressed.clone_handle())
    } else {
        return Err(format!("unsupported layer media type {media_type:?}"));
    };
    let uncompressed = HashingReader::new(decompressed);
    extract_tar(uncompressed.clone_handle(), rootfs).map_err(|e| e.to_string())?;
    let actual_diff_id = uncompressed.finish_digest().map_err(|e| e.to_string())?;
    let actual_digest = compressed.finish_digest().map_err(|e| e.to_string())?;
    if actual_digest != digest {
        return Err(format!("blob bytes have digest {actual_digest}"));
    }
    if actual_diff_id != diff_id {
        return Err(format!(
            "uncompressed tar has diff_id {actual_diff_id} but the config says {diff_id}"
        ));
    }
    Ok(())
}

/// A reader that hashes every byte it passes on; shared so the hash can be read after the
/// consumer (tar, decompressor) is done with it.
struct HashingReader<R> {
    inner: std::rc::Rc<std::cell::RefCell<(R, Sha256)>>,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner: std::rc::Rc::new(std::cell::RefCell::new((inner, Sha256::new()))),
        }
    }

    fn clone_handle(&self) -> Self {
        HashingReader {
            inner: self.inner.clone(),
        }
    }

    /// Reads whatever the consumer left unread (tar padding, compressor trailer) and returns
    /// the digest of the whole stream.
    fn finish_digest(&self) -> io::Result<String> {
        io::copy(&mut self.clone_handle(), &mut io::sink())?;
        let (_, hasher) = &*self.inner.borrow();
        Ok(format!("sha256:{}", hex::encode(hasher.clone().finalize())))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (reader, hasher) = &mut *self.inner.borrow_mut();
        let n = reader.read(buf)?;
        hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Applies one layer tar on top of `rootfs` with OCI whiteout semantics. Device nodes and
/// FIFOs are skipped (bwrap provides /dev).
fn extract_tar(reader: impl Read, rootfs: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    let mut written_by_this_layer: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(relative) = clean_relative(&entry.path()?) else {
            continue;
        };
        let name = relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = relative.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == ".wh..wh..opq" {
            clear_directory(rootfs, &parent, &written_by_this_layer)?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            remove_path(&rootfs.join(&parent).join(hidden))?;
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            continue;
        }
        replace_conflicting(&rootfs.join(&relative), kind.is_dir())?;
        entry.unpack_in(rootfs)?;
        written_by_this_layer.insert(relative);
    }
    Ok(())
}

/// `./a/b` or `/a/b` → `a/b`; `None` for the root itself or paths with `..`.
fn clean_relative(path: &Path) -> Option<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!clean.as_os_str().is_empty()).then_some(clean)
}

/// Opaque whiteout: remove everything in `dir` that lower layers put there.
fn clear_directory(rootfs: &Path, dir: &Path, keep: &HashSet<PathBuf>) -> io::Result<()> {
    let Ok(children) = fs::read_dir(rootfs.join(dir)) else {
        return Ok(());
    };
    for child in children {
        let child = child?;
        if !keep.contains(&dir.join(child.file_name())) {
            remove_path(&child.path())?;
        }
    }
    Ok(())
}

fn remove_path(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A new entry replaces what a lower layer had at its path, except directory over directory.
fn replace_conflicting(path: &Path, new_is_dir: bool) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() && new_is_dir => Ok(()),
        Ok(_) => remove_path(path),
        Err(_) => Ok(()),
    }
}
