//! End to end over more kinds of model: each fixture project under
//! `fixtures/e2e/` is built and pushed by the cogpack binary (no Docker) to a
//! real loopback registry holding the stand-in bases, pulled back with skopeo,
//! unpacked and served by the real Cog runtime under bwrap. Also: file inputs
//! and outputs, schema validation, training mode, the cog-base path,
//! reproducible digests, source-only rebuilds that upload one layer, and
//! broken images that the run check must reject.

mod common;

use base64::Engine;
use common::base_image;
use common::registry::{LoggedRequest, Registry};
use common::runner::{self, PulledImage, RunOptions, RunningModel};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

/// A loopback HTTP server for the tini binary (its real download host is
/// unreachable here); killed on drop.
struct TiniServer {
    child: Child,
    url: String,
    sha256: String,
    _dir: tempfile::TempDir,
}

impl TiniServer {
    fn start() -> TiniServer {
        let dir = common::scratch_dir("tini");
        let bytes = std::fs::read("/usr/bin/tini-static")
            .expect("Debian's tini package provides /usr/bin/tini-static");
        std::fs::write(dir.path().join("tini-amd64"), &bytes).unwrap();
        let port = common::free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        TiniServer {
            child,
            url: format!("http://127.0.0.1:{port}/tini-amd64"),
            sha256: hex::encode(Sha256::digest(&bytes)),
            _dir: dir,
        }
    }
}

impl Drop for TiniServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test's world: a registry with the stand-in bases (reached through
/// cogpack's registry mirrors for docker.io and r8.im), a tini server and an
/// empty cogpack store.
struct World {
    registry: Registry,
    tini: TiniServer,
    store: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let registry = Registry::start();
        base_image::push_python_slim(&registry.host);
        base_image::push_cog_base(&registry.host);
        World {
            registry,
            tini: TiniServer::start(),
            store: common::scratch_dir("store"),
        }
    }

    /// `cogpack build --push -t IMAGE ARGS…` in `project` with the world's
    /// store; panics with cogpack's output when it fails.
    fn build_push(&self, project: &Path, image: &str, args: &[&str]) {
        let output = self.cogpack(project, image, args, self.store.path(), &[]);
        assert_success(&output, &format!("cogpack build --push -t {image}"));
    }

    /// Runs `cogpack build --push -t image` plus `args` with `store` as
    /// COGPACK_HOME and `env` added.
    fn cogpack(
        &self,
        project: &Path,
        image: &str,
        args: &[&str],
        store: &Path,
        env: &[(&str, &str)],
    ) -> Output {
        let mirror_docker = format!("docker.io={}", self.registry.host);
        let mirror_r8 = format!("r8.im={}", self.registry.host);
        let mut command = Command::new(env!("CARGO_BIN_EXE_cogpack"));
        command
            .args(["build", "--push", "-t", image])
            .args(args)
            .args(["--registry-mirror", &mirror_docker])
            .args(["--registry-mirror", &mirror_r8])
            .args(["--progress", "plain"])
            .current_dir(project)
            .env("COGPACK_HOME", store)
            .env("COGPACK_TINI_URL", &self.tini.url)
            .env("COGPACK_TINI_SHA256", &self.tini.sha256)
            .env("DOCKER_CONFIG", store.join("docker-config"))
            // Pin coglet too (cog's SDK only bounds it), so every run
            // resolves the same versions.
            .env("COGLET_WHEEL", "pypi:0.23.1")
            .env_remove("SOURCE_DATE_EPOCH");
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("cogpack runs")
    }

    fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host)
    }
}

/// Copies a fixture project into a fresh directory; returns the directory
/// guard and the project path inside it.
fn project(fixture: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = common::scratch_dir("project");
    let dst = dir.path().join(fixture);
    copy_tree(&fixture_dir(fixture), &dst);
    (dir, dst)
}

fn fixture_dir(fixture: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/e2e")
        .join(fixture)
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pull(reference: &str) -> PulledImage {
    runner::pull(reference).unwrap_or_else(|e| panic!("pull {reference}: {e}"))
}

/// Held while a model runs. Every bwrap sandbox shares the host's network
/// namespace but has its own PID namespace, so two models running at once get
/// the same PIDs, and coglet's abstract-socket names (derived from them)
/// collide: the second worker fails with "Address already in use".
static MODEL_SLOT: Mutex<()> = Mutex::new(());

/// A running model plus the [`MODEL_SLOT`] guard (dropped after the model).
struct Served {
    model: RunningModel,
    _slot: MutexGuard<'static, ()>,
}

/// Starts `image` with `options`, one model at a time across this binary.
fn serve(image: &PulledImage, options: &RunOptions) -> Result<Served, String> {
    let slot = MODEL_SLOT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok(Served {
        model: image.run(options)?,
        _slot: slot,
    })
}

/// Serves `image` with default options and returns the prediction for `input`.
fn predict_once(image: &PulledImage, input: Value) -> (u16, Value) {
    let served = serve(image, &RunOptions::default())
        .unwrap_or_else(|e| panic!("run {}: {e}", image.reference));
    served.model.predict(&input)
}

/// The manifest digest the registry serves for `reference`, computed from
/// the raw manifest bytes skopeo reads.
fn manifest_digest(reference: &str) -> String {
    let raw = common::run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    );
    format!("sha256:{}", hex::encode(Sha256::digest(&raw)))
}

/// A binary greyscale PGM (netpbm P5) image.
fn pgm(width: usize, height: usize, pixels: &[u8]) -> Vec<u8> {
    assert_eq!(pixels.len(), width * height);
    let mut bytes = format!("P5\n{width} {height}\n255\n").into_bytes();
    bytes.extend_from_slice(pixels);
    bytes
}

/// Decodes a `data:…;base64,…` URI.
fn decode_data_uri(uri: &str) -> Vec<u8> {
    let (header, payload) = uri
        .split_once(',')
        .unwrap_or_else(|| panic!("not a data URI: {uri:.80}"));
    assert!(
        header.starts_with("data:") && header.ends_with(";base64"),
        "not a base64 data URI: {header}"
    );
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap_or_else(|e| panic!("bad base64 in data URI: {e}"))
}

/// Pixel bytes of a binary PGM written by Pillow (`P5`, whitespace-separated
/// width, height and maxval, one whitespace byte, then the raster).
fn pgm_pixels(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P5", "output is not a binary PGM");
    assert_eq!(fields[3], "255", "unexpected PGM maxval");
    let width = fields[1].parse().unwrap();
    let height = fields[2].parse().unwrap();
    (width, height, bytes[at + 1..].to_vec())
}

#[test]
fn numpy_pillow_model_takes_a_path_and_returns_a_file() {
    let world = World::new();
    let (_dir, project) = project("files");
    let image = world.image("test/files:v1");
    world.build_push(&project, &image, &["--use-cog-base-image=false"]);
    let pulled = pull(&image);

    let pixels: Vec<u8> = (0..12).map(|i| (i * 20) as u8).collect();
    let input = format!(
        "data:image/x-portable-graymap;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(pgm(4, 3, &pixels))
    );
    let (status, body) = predict_once(&pulled, json!({ "image": input }));
    assert_eq!(status, 200, "prediction failed: {body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    let output = body["output"]
        .as_str()
        .unwrap_or_else(|| panic!("output is not a string: {body}"));
    let (width, height, inverted) = pgm_pixels(&decode_data_uri(output));
    assert_eq!((width, height), (4, 3));
    let expected: Vec<u8> = pixels.iter().map(|p| 255 - p).collect();
    assert_eq!(
        inverted, expected,
        "output pixels are not the inverted input"
    );
}

#[test]
fn pip_freeze_in_the_image_matches_the_pip_freeze_label() {
    let world = World::new();
    let (_dir, project) = project("files");
    let image = world.image("test/freeze:v1");
    world.build_push(&project, &image, &["--use-cog-base-image=false"]);
    let pulled = pull(&image);
    let label = pulled
        .label("run.cog.pip_freeze")
        .expect("image has a run.cog.pip_freeze label");
    let output = pulled
        .exec(&["python", "-m", "pip", "freeze"], &RunOptions::default())
        .expect("pip freeze starts");
    assert_success(&output, "python -m pip freeze in the image");
    let freeze = String::from_utf8(output.stdout).unwrap();
    let label_lines: BTreeSet<&str> = label.lines().collect();
    let freeze_lines: BTreeSet<&str> = freeze.lines().collect();
    assert_eq!(
        freeze.trim_end(),
        label.trim_end(),
        "label and `pip freeze` differ:\nonly in label: {:?}\nonly in pip freeze: {:?}",
        label_lines.difference(&freeze_lines).collect::<Vec<_>>(),
        freeze_lines.difference(&label_lines).collect::<Vec<_>>()
    );
    for package in ["numpy==2.2.6", "pillow==11.3.0", "coglet==0.23.1"] {
        assert!(
            freeze_lines.contains(package),
            "{package} missing:\n{freeze}"
        );
    }
}

#[test]
fn schema_rejects_bad_input_and_serves_the_built_schema() {
    let world = World::new();
    let (_dir, project) = project("schema");
    let image = world.image("test/schema:v1");
    world.build_push(&project, &image, &["--use-cog-base-image=false"]);
    let pulled = pull(&image);

    let label: Value = serde_json::from_str(
        &pulled
            .label("run.cog.openapi_schema")
            .expect("image has a run.cog.openapi_schema label"),
    )
    .expect("the schema label is JSON");
    let in_rootfs: Value = serde_json::from_slice(
        &std::fs::read(pulled.rootfs.join("src/.cog/openapi_schema.json"))
            .expect("/src/.cog/openapi_schema.json in the image"),
    )
    .expect("/src/.cog/openapi_schema.json is JSON");
    assert_eq!(label, in_rootfs, "label and schema file differ");
    assert_eq!(
        label["components"]["schemas"]["Input"]["required"],
        json!(["word"]),
        "{label}"
    );

    let served = serve(&pulled, &RunOptions::default()).expect("model starts");
    let model = &served.model;
    let served = model.get("/openapi.json");
    assert_eq!(served.status, 200, "{}", served.text());
    let served: Value = serde_json::from_slice(&served.body).expect("served schema is JSON");
    assert_eq!(
        served["components"]["schemas"]["Input"], label["components"]["schemas"]["Input"],
        "served Input schema differs from the label"
    );
    assert_eq!(served, label, "served schema differs from the label");

    let (status, body) = model.predict(&json!({ "count": 3 }));
    assert_eq!(status, 422, "missing required field accepted: {body}");
    let (status, body) = model.predict(&json!({ "word": "ab", "count": 6 }));
    assert_eq!(status, 422, "out-of-range count accepted: {body}");
    let (status, body) = model.predict(&json!({ "word": "ab", "count": "many" }));
    assert_eq!(status, 422, "non-integer count accepted: {body}");
    let (status, body) = model.predict(&json!({ "word": "ab", "count": 3 }));
    assert_eq!(status, 200, "valid input rejected: {body}");
    assert_eq!(body["output"], "ababab", "{body}");
}

#[test]
fn training_predictor_answers_trainings_in_train_mode() {
    let world = World::new();
    let (_dir, project) = project("train");
    let image = world.image("test/train:v1");
    world.build_push(&project, &image, &["--use-cog-base-image=false"]);
    let pulled = pull(&image);
    let env = pulled.env();
    assert!(
        env.contains(&("COG_TRAIN_TYPE_STUB".into(), "train.py:train".into())),
        "{env:?}"
    );
    let options = RunOptions {
        extra_args: vec!["--x-mode".into(), "train".into()],
        ..RunOptions::default()
    };
    let served = serve(&pulled, &options).expect("model starts in train mode");
    let model = &served.model;
    let (status, body) = model.train(&json!({ "steps": 7 }));
    assert_eq!(status, 200, "training failed: {body}\n{}", model.log());
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(body["output"], "trained 7 steps at rate 0.5", "{body}");
}

#[test]
fn cog_base_image_is_resolved_through_the_r8_mirror() {
    let world = World::new();
    let (_dir, project) = project("hello");
    let image = world.image("test/hello-cog-base:v1");
    // No --use-cog-base-image flag: auto, which tries r8.im/cog-base first.
    world.build_push(&project, &image, &[]);
    let pulled = pull(&image);
    assert_eq!(
        pulled.label("run.cog.cog-base-image-name").as_deref(),
        Some("r8.im/cog-base:python3.11"),
        "{:#}",
        pulled.config["config"]["Labels"]
    );
    let last_layer = pulled
        .label("run.cog.cog-base-image-last-layer-sha")
        .expect("run.cog.cog-base-image-last-layer-sha label");
    let diff_ids = &pulled.config["rootfs"]["diff_ids"];
    assert!(
        diff_ids
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == last_layer.as_str()),
        "{last_layer} not among the image's diff_ids {diff_ids}"
    );
    let (status, body) = predict_once(&pulled, json!({ "text": "base" }));
    assert_eq!(status, 200, "prediction failed: {body}");
    assert_eq!(body["output"], "hello base", "{body}");
}

#[test]
fn same_project_in_two_places_with_fresh_stores_gives_the_same_digest() {
    let world = World::new();
    let (_dir_a, project_a) = project("hello");
    let (_dir_b, project_b) = project("hello");
    let store_a = common::scratch_dir("store-a");
    let store_b = common::scratch_dir("store-b");
    let args = ["--use-cog-base-image=false"];
    let image_a = world.image("test/repro:a");
    let image_b = world.image("test/repro:b");
    let image_epoch = world.image("test/repro:epoch");
    assert_success(
        &world.cogpack(&project_a, &image_a, &args, store_a.path(), &[]),
        "first build",
    );
    assert_success(
        &world.cogpack(&project_b, &image_b, &args, store_b.path(), &[]),
        "second build",
    );
    let digest_a = manifest_digest(&image_a);
    assert_eq!(
        digest_a,
        manifest_digest(&image_b),
        "two fresh builds of the same project differ"
    );
    assert_success(
        &world.cogpack(
            &project_b,
            &image_epoch,
            &args,
            store_b.path(),
            &[("SOURCE_DATE_EPOCH", "1700000000")],
        ),
        "build with SOURCE_DATE_EPOCH",
    );
    assert_ne!(
        digest_a,
        manifest_digest(&image_epoch),
        "SOURCE_DATE_EPOCH did not change the digest"
    );
}

/// Blob uploads (`POST`/`PUT` under `/blobs/uploads/`) and manifest `PUT`s.
fn uploads(requests: &[LoggedRequest]) -> (Vec<&LoggedRequest>, Vec<&LoggedRequest>) {
    let blobs = requests
        .iter()
        .filter(|r| {
            matches!(r.method.as_str(), "POST" | "PUT" | "PATCH")
                && r.path.contains("/blobs/uploads/")
        })
        .collect();
    let manifests = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .collect();
    (blobs, manifests)
}

fn layer_digests(image: &PulledImage) -> Vec<String> {
    image.manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn source_only_change_uploads_only_the_source_layer_config_and_manifest() {
    let world = World::new();
    let (_dir, project) = project("hello");
    let args = ["--use-cog-base-image=false"];
    let first = world.image("test/source-change:v1");
    world.build_push(&project, &first, &args);

    let predict_py = project.join("predict.py");
    let source = std::fs::read_to_string(&predict_py).unwrap();
    std::fs::write(&predict_py, source.replace("\"hello \"", "\"goodbye \"")).unwrap();
    let second = world.image("test/source-change:v2");
    let mark = world.registry.request_count();
    world.build_push(&project, &second, &args);
    let requests = world.registry.requests_since(mark);

    let before = pull(&first);
    let after = pull(&second);
    let new_layers: Vec<String> = layer_digests(&after)
        .into_iter()
        .filter(|d| !layer_digests(&before).contains(d))
        .collect();
    assert_eq!(
        new_layers.len(),
        1,
        "expected one new layer: {new_layers:?}"
    );
    assert_eq!(
        layer_digests(&before).len(),
        layer_digests(&after).len(),
        "layer count changed"
    );

    let (blobs, manifests) = uploads(&requests);
    let committed: BTreeSet<String> = blobs
        .iter()
        .filter(|r| r.method == "PUT")
        .filter_map(|r| r.path.split("digest=").nth(1))
        .map(|d| d.split('&').next().unwrap().replace("%3A", ":"))
        .collect();
    let config = after.manifest["config"]["digest"].as_str().unwrap();
    let expected: BTreeSet<String> = [new_layers[0].clone(), config.to_string()].into();
    assert_eq!(committed, expected, "uploads: {blobs:#?}");
    let started = blobs.iter().filter(|r| r.method == "POST").count();
    assert_eq!(started, 2, "upload sessions: {blobs:#?}");
    assert_eq!(manifests.len(), 1, "manifest puts: {manifests:#?}");

    let (status, body) = predict_once(&after, json!({ "text": "world" }));
    assert_eq!(status, 200, "prediction failed: {body}");
    assert_eq!(body["output"], "goodbye world", "{body}");
}

/// Runs `image` and asks for one prediction; `Err` describes why the check
/// failed (server did not start, non-200, not succeeded, wrong output).
fn hello_check(image: &PulledImage) -> Result<(), String> {
    let served = serve(
        image,
        &RunOptions {
            ready_timeout: Some(std::time::Duration::from_secs(60)),
            ..RunOptions::default()
        },
    )?;
    let (status, body) = served.model.predict(&json!({ "text": "world" }));
    if status == 200 && body["status"] == "succeeded" && body["output"] == "hello world" {
        Ok(())
    } else {
        Err(format!("prediction answered {status}: {body}"))
    }
}

/// Removes `name` from the pulled config's Env.
fn remove_env(image: &mut PulledImage, name: &str) {
    let env = image.config["config"]["Env"].as_array_mut().unwrap();
    let before = env.len();
    env.retain(|e| !e.as_str().unwrap().starts_with(&format!("{name}=")));
    assert_eq!(env.len() + 1, before, "{name} was not in Env exactly once");
}

/// Where the image's Python packages live: the directory holding `cog/`.
fn cog_site_packages(image: &PulledImage) -> PathBuf {
    let output = image
        .exec(
            &[
                "python",
                "-c",
                "import cog, os; print(os.path.dirname(os.path.dirname(cog.__file__)))",
            ],
            &RunOptions::default(),
        )
        .expect("python starts");
    assert_success(&output, "locate cog in the image");
    let dir = String::from_utf8(output.stdout).unwrap();
    PathBuf::from(dir.trim())
}

/// The check must fail, and not because of the harness (port or socket
/// clashes), so the failure is the broken image's own.
fn assert_failed_for_the_image(result: Result<(), String>, variant: &str) {
    let error = match result {
        Ok(()) => panic!("broken variant ({variant}) still passed the check"),
        Err(error) => error,
    };
    assert!(
        !error.contains("Address already in use"),
        "{variant} failed for a harness reason:\n{error}"
    );
    eprintln!("--- {variant} fails as it should:\n{error}");
}

fn assert_check_fails(image: &PulledImage, variant: &str) {
    assert_failed_for_the_image(hello_check(image), variant);
}

#[test]
fn broken_variants_of_a_good_image_fail_the_run_check() {
    let world = World::new();
    let (_dir, project) = project("hello");
    let image = world.image("test/broken:v1");
    world.build_push(&project, &image, &["--use-cog-base-image=false"]);
    let mut pulled = pull(&image);
    hello_check(&pulled).expect("the unmodified image passes the check");

    let config = pulled.config.clone();
    pulled.config["config"]["WorkingDir"] = json!("/tmp");
    assert_check_fails(&pulled, "WorkingDir /tmp");
    pulled.config = config.clone();

    remove_env(&mut pulled, "COG_PREDICT_TYPE_STUB");
    assert_check_fails(&pulled, "no COG_PREDICT_TYPE_STUB");
    pulled.config = config;

    let site_packages = cog_site_packages(&pulled);
    let on_host = pulled.rootfs.join(site_packages.strip_prefix("/").unwrap());
    let moved = on_host.with_file_name("not-on-sys-path");
    std::fs::rename(&on_host, &moved).unwrap();
    let result = hello_check(&pulled);
    std::fs::rename(&moved, &on_host).unwrap();
    assert_failed_for_the_image(result, &format!("{} moved", site_packages.display()));
    hello_check(&pulled).expect("the restored image passes the check again");
}
