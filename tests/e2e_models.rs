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
use common::cogpack::{TiniServer, World};
use common::file_server::FileServer;
use common::registry::{LoggedRequest, Registry};
use common::runner::{self, PulledImage, RunOptions, RunningModel};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `cogpack build --push -t IMAGE ARGS…` in `project` with the world's
/// store; panics with cogpack's output when it fails.
fn build_push(world: &World, project: &Path, image: &str, args: &[&str]) {
    let output = build_push_with(world, project, image, args, world.store.path(), &[]);
    common::assert_success(&output, &format!("cogpack build --push -t {image}"));
}

/// `cogpack build --push -t image ARGS…` in the environment
/// [`World::cogpack_with_store`] sets up (mirrors, tini, pinned coglet,
/// SOURCE_DATE_EPOCH unset) with `store` as the store, plus `env`.
fn build_push_with(
    world: &World,
    project: &Path,
    image: &str,
    args: &[&str],
    store: &Path,
    env: &[(&str, &str)],
) -> Output {
    let mut all = vec!["build", "--push", "-t", image];
    all.extend_from_slice(args);
    world.cogpack_with(project, &all, store, env)
}

/// Copies a fixture project into a fresh directory; returns the directory
/// guard and the project path inside it.
fn project(fixture: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = common::scratch_dir("project");
    let dst = dir.path().join(fixture);
    common::copy_tree(&fixture_dir(fixture), &dst);
    (dir, dst)
}

fn fixture_dir(fixture: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/e2e")
        .join(fixture)
}

fn pull(reference: &str) -> PulledImage {
    runner::pull(reference).unwrap_or_else(|e| panic!("pull {reference}: {e}"))
}

/// `POST /predictions`, retried for a few seconds while coglet answers 409
/// ("all prediction slots busy"): it frees the slot of a finished synchronous
/// prediction a moment after answering it.
fn predict_when_idle(model: &RunningModel, input: &Value) -> (u16, Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = model.predict(input);
        if status != 409 || std::time::Instant::now() > deadline {
            return (status, body);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Serves `image` with default options and returns the prediction for `input`.
fn predict_once(image: &PulledImage, input: Value) -> (u16, Value) {
    let model = image
        .run(&RunOptions::default())
        .unwrap_or_else(|e| panic!("run {}: {e}", image.reference));
    model.predict(&input)
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

/// The digest in cogpack's `image REPO@sha256:…` line after a push.
fn printed_digest(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("image "))
        .and_then(|reference| reference.split_once('@'))
        .map(|(_, digest)| digest.trim().to_string())
        .unwrap_or_else(|| panic!("no `image REPO@DIGEST` line in cogpack's output:\n{stdout}"))
}

/// The image config the registry serves for `reference`.
fn image_config(reference: &str) -> Value {
    let raw = common::run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    );
    serde_json::from_slice(&raw).expect("image config is JSON")
}

/// A loopback file server over a scratch directory (standing in for
/// wherever a client keeps its input files); stops on drop.
struct InputFiles {
    server: FileServer,
    dir: tempfile::TempDir,
}

impl InputFiles {
    fn start() -> InputFiles {
        let dir = common::scratch_dir("files");
        let server = FileServer::start(dir.path());
        InputFiles { server, dir }
    }

    /// Writes `bytes` as `name` and returns its URL.
    fn serve(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.dir.path().join(name), bytes).unwrap();
        self.server.url(name)
    }
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
    build_push(&world, &project, &image, &["--use-cog-base-image=false"]);
    let pulled = pull(&image);

    let pixels: Vec<u8> = (0..12).map(|i| (i * 20) as u8).collect();
    let as_data_uri = format!(
        "data:image/x-portable-graymap;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(pgm(4, 3, &pixels))
    );
    let files = InputFiles::start();
    let other_pixels: Vec<u8> = (0..6).map(|i| (i * 40 + 3) as u8).collect();
    let as_url = files.serve("input.pgm", &pgm(2, 3, &other_pixels));

    let model = pulled.run(&RunOptions::default()).expect("model starts");
    for (input, (width, height, pixels)) in [
        (as_data_uri, (4, 3, pixels)),
        (as_url, (2, 3, other_pixels)),
    ] {
        let (status, body) = predict_when_idle(&model, &json!({ "image": input }));
        assert_eq!(status, 200, "prediction for {input:.60} failed: {body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        let output = body["output"]
            .as_str()
            .unwrap_or_else(|| panic!("output is not a string: {body}"));
        let inverted = pgm_pixels(&decode_data_uri(output));
        let expected: Vec<u8> = pixels.iter().map(|p| 255 - p).collect();
        assert_eq!(
            inverted,
            (width, height, expected),
            "output is not the inverted input {input:.60}"
        );
    }
}

#[test]
fn pip_freeze_in_the_image_matches_the_pip_freeze_label() {
    let world = World::new();
    let (_dir, project) = project("files");
    let image = world.image("test/freeze:v1");
    build_push(&world, &project, &image, &["--use-cog-base-image=false"]);
    let pulled = pull(&image);
    let label = pulled
        .label("run.cog.pip_freeze")
        .expect("image has a run.cog.pip_freeze label");
    let output = pulled
        .exec(&["python", "-m", "pip", "freeze"], &RunOptions::default())
        .expect("pip freeze starts");
    common::assert_success(&output, "python -m pip freeze in the image");
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
    build_push(&world, &project, &image, &["--use-cog-base-image=false"]);
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

    let model = pulled.run(&RunOptions::default()).expect("model starts");
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
    let (status, body) = predict_when_idle(&model, &json!({ "word": "ab", "count": 3 }));
    assert_eq!(status, 200, "valid input rejected: {body}");
    assert_eq!(body["output"], "ababab", "{body}");
}

#[test]
fn training_predictor_answers_trainings_in_train_mode() {
    let world = World::new();
    let (_dir, project) = project("train");
    let image = world.image("test/train:v1");
    build_push(&world, &project, &image, &["--use-cog-base-image=false"]);
    let pulled = pull(&image);
    let env = pulled.env();
    assert!(
        env.contains(&("COG_TRAIN_TYPE_STUB".into(), "train.py:train".into())),
        "{env:?}"
    );
    let schema: Value = serde_json::from_str(
        &pulled
            .label("run.cog.openapi_schema")
            .expect("run.cog.openapi_schema label"),
    )
    .expect("schema label is JSON");
    let training_input = &schema["components"]["schemas"]["TrainingInput"];
    assert_eq!(
        training_input["properties"]["steps"]["default"], 3,
        "{schema:#}"
    );
    assert!(schema["paths"]["/trainings"].is_object(), "{schema:#}");
    let options = RunOptions {
        extra_args: vec!["--x-mode".into(), "train".into()],
        ..RunOptions::default()
    };
    let model = pulled.run(&options).expect("model starts in train mode");
    let (status, body) = model.train(&json!({ "steps": 7 }));
    assert_eq!(status, 200, "training failed: {body}\n{}", model.log());
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(body["output"], "trained 7 steps at rate 0.5", "{body}");
}

/// Asserts that the image's first layers are those of `base_repo_tag` in
/// the world's registry; returns the base's layers.
fn assert_built_on(world: &World, image: &PulledImage, base_repo_tag: &str) -> Vec<Value> {
    let base: Value = serde_json::from_slice(&common::run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}", world.image(base_repo_tag))),
    ))
    .expect("base manifest is JSON");
    let base_layers = base["layers"].as_array().unwrap().clone();
    let layers = image.manifest["layers"].as_array().unwrap();
    assert!(layers.len() > base_layers.len(), "no layers over the base");
    for (at, base_layer) in base_layers.iter().enumerate() {
        assert_eq!(
            layers[at]["digest"], base_layer["digest"],
            "layer {at} is not {base_repo_tag}'s"
        );
    }
    base_layers
}

#[test]
fn cog_base_image_is_resolved_through_the_r8_mirror() {
    let world = World::new();
    let (_dir, project) = project("hello");
    let image = world.image("test/hello-cog-base:v1");
    // No --use-cog-base-image flag: auto, which tries r8.im/cog-base first.
    build_push(&world, &project, &image, &[]);
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
    let base_layers = assert_built_on(&world, &pulled, base_image::COG_BASE);
    assert_eq!(
        pulled.label("run.cog.cog-base-image-last-layer-idx"),
        Some((base_layers.len() - 1).to_string())
    );
    let (status, body) = predict_once(&pulled, json!({ "text": "base" }));
    assert_eq!(status, 200, "prediction failed: {body}");
    assert_eq!(body["output"], "hello base", "{body}");
}

#[test]
fn auto_cog_base_falls_back_to_python_slim_when_the_mirror_lacks_it() {
    let registry = Registry::start();
    base_image::push_python_slim(&registry.host);
    let world = World {
        registry,
        tini: TiniServer::start(),
        store: common::scratch_dir("store"),
    };
    let (_dir, project) = project("hello");
    let image = world.image("test/hello-fallback:v1");
    build_push(&world, &project, &image, &[]);
    let pulled = pull(&image);
    // cog records the fallback base under the same label (spec §6).
    assert_eq!(
        pulled.label("run.cog.cog-base-image-name").as_deref(),
        Some("python:3.11-slim")
    );
    assert_built_on(&world, &pulled, base_image::PYTHON_SLIM);
    let (status, body) = predict_once(&pulled, json!({ "text": "fallback" }));
    assert_eq!(status, 200, "prediction failed: {body}");
    assert_eq!(body["output"], "hello fallback", "{body}");
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
    let built_a = build_push_with(&world, &project_a, &image_a, &args, store_a.path(), &[]);
    common::assert_success(&built_a, "first build");
    let built_b = build_push_with(&world, &project_b, &image_b, &args, store_b.path(), &[]);
    common::assert_success(&built_b, "second build");
    let digest_a = manifest_digest(&image_a);
    assert_eq!(printed_digest(&built_a), digest_a);
    assert_eq!(printed_digest(&built_b), digest_a);
    assert_eq!(
        digest_a,
        manifest_digest(&image_b),
        "two fresh builds of the same project differ"
    );
    let built_epoch = build_push_with(
        &world,
        &project_b,
        &image_epoch,
        &args,
        store_b.path(),
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    common::assert_success(&built_epoch, "build with SOURCE_DATE_EPOCH");
    let digest_epoch = manifest_digest(&image_epoch);
    assert_eq!(printed_digest(&built_epoch), digest_epoch);
    assert_ne!(
        digest_a, digest_epoch,
        "SOURCE_DATE_EPOCH did not change the digest"
    );
    assert_eq!(image_config(&image_a)["created"], "1970-01-01T00:00:00Z");
    assert_eq!(
        image_config(&image_epoch)["created"],
        "2023-11-14T22:13:20Z"
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
    build_push(&world, &project, &first, &args);

    let predict_py = project.join("predict.py");
    let source = std::fs::read_to_string(&predict_py).unwrap();
    std::fs::write(&predict_py, source.replace("\"hello \"", "\"goodbye \"")).unwrap();
    let second = world.image("test/source-change:v2");
    let mark = world.registry.request_count();
    build_push(&world, &project, &second, &args);
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

    let mark = world.registry.request_count();
    build_push(&world, &project, &second, &args);
    let noop_requests = world.registry.requests_since(mark);
    let (blobs, _) = uploads(&noop_requests);
    assert!(blobs.is_empty(), "no-op push uploaded blobs: {blobs:#?}");
    assert_eq!(manifest_digest(&second), after.manifest_digest);
}

/// Runs `image` and asks for one prediction; `Err` describes why the check
/// failed (server did not start, non-200, not succeeded, wrong output).
fn hello_check(image: &PulledImage) -> Result<(), String> {
    let model = image.run(&RunOptions {
        ready_timeout: Some(std::time::Duration::from_secs(60)),
        ..RunOptions::default()
    })?;
    let (status, body) = model.predict(&json!({ "text": "world" }));
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
    common::assert_success(&output, "locate cog in the image");
    let dir = String::from_utf8(output.stdout).unwrap();
    PathBuf::from(dir.trim())
}

/// The check must fail, and for the broken variant's own reason: its error
/// (which carries the server log) must mention `reason`.
fn assert_failed_for_the_image(result: Result<(), String>, variant: &str, reason: &str) {
    let error = match result {
        Ok(()) => panic!("broken variant ({variant}) still passed the check"),
        Err(error) => error,
    };
    assert!(
        error.contains(reason),
        "{variant} failed, but not with {reason:?}:\n{error}"
    );
    eprintln!("--- {variant} fails as it should:\n{error}");
}

fn assert_check_fails(image: &PulledImage, variant: &str, reason: &str) {
    assert_failed_for_the_image(hello_check(image), variant, reason);
}

#[test]
fn broken_variants_of_a_good_image_fail_the_run_check() {
    let world = World::new();
    let (_dir, project) = project("hello");
    let image = world.image("test/broken:v1");
    build_push(&world, &project, &image, &["--use-cog-base-image=false"]);
    let mut pulled = pull(&image);
    hello_check(&pulled).expect("the unmodified image passes the check");

    let config = pulled.config.clone();
    pulled.config["config"]["WorkingDir"] = json!("/tmp");
    assert_check_fails(
        &pulled,
        "WorkingDir /tmp",
        "No such file or directory: '/tmp/predict.py'",
    );
    pulled.config = config.clone();

    remove_env(&mut pulled, "COG_PREDICT_TYPE_STUB");
    assert_check_fails(
        &pulled,
        "no COG_PREDICT_TYPE_STUB",
        "COG_PREDICT_TYPE_STUB environment variable is not set",
    );
    pulled.config = config;

    let site_packages = cog_site_packages(&pulled);
    let on_host = pulled.rootfs.join(site_packages.strip_prefix("/").unwrap());
    let moved = on_host.with_file_name("not-on-sys-path");
    std::fs::rename(&on_host, &moved).unwrap();
    let result = hello_check(&pulled);
    std::fs::rename(&moved, &on_host).unwrap();
    assert_failed_for_the_image(
        result,
        &format!("{} moved", site_packages.display()),
        "No module named 'cog'",
    );
    hello_check(&pulled).expect("the restored image passes the check again");
}
