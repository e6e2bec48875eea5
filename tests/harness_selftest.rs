//! Proves the end-to-end harness with stand-in tools instead of cogpack: images assembled
//! with uv + GNU tar + umoci, pushed with skopeo to a real registry, pulled back, unpacked by
//! the runner and served by the real Cog runtime under bwrap. The negative test shows the
//! harness fails when the image is wrong.

mod common;

use common::base_image::{self, PushedImage};
use common::registry::Registry;
use common::runner::{self, PulledImage, RunOptions};
use common::{deterministic_tar, run_ok};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Cog runtime and its dependencies, pinned (cog's wheel is pure Python; coglet is abi3).
const COG_RUNTIME: &[&str] = &[
    "cog==0.23.1",
    "coglet==0.23.1",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "idna==3.20",
    "pyyaml==6.0.4",
    "requests==2.34.2",
    "structlog==26.1.0",
    "typing-extensions==4.16.0",
    "urllib3==2.8.0",
];
const CREATED: &str = "1970-01-01T00:00:00Z";
const HELLO_PREDICTOR: &str = r#"from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.prefix = "hello "

    def predict(self, text: str = Input(description="Text to greet")) -> str:
        return self.prefix + text
"#;
const HELLO_COG_YAML: &str =
    "build:\n  python_version: \"3.11\"\npredict: \"predict.py:Predictor\"\n";
/// A predictor that reads its greeting from a weights directory bound at /src/weights.
const WEIGHTS_PREDICTOR: &str = r#"from pathlib import Path

from cog import BasePredictor


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.greeting = Path("/src/weights/greeting.txt").read_text().strip()

    def predict(self, text: str) -> str:
        return f"{self.greeting} {text}"
"#;
const TRAINER: &str = r#"from cog import Input


def train(steps: int = Input(description="Training steps")) -> str:
    return f"trained for {steps} steps"
"#;

/// What goes into a stand-in model image on top of the base and the Cog runtime.
struct ModelSpec<'a> {
    /// Tag under `test/model` in the registry.
    tag: &'a str,
    /// Image WorkingDir.
    working_dir: &'a str,
    /// Files under /src: (relative path, contents).
    source: &'a [(&'a str, &'a str)],
    /// Env entries (`K=V`) added to the base's.
    env: &'a [&'a str],
}

impl<'a> ModelSpec<'a> {
    fn hello(tag: &'a str, working_dir: &'a str) -> Self {
        ModelSpec {
            tag,
            working_dir,
            source: &[
                ("predict.py", HELLO_PREDICTOR),
                ("cog.yaml", HELLO_COG_YAML),
            ],
            env: &["COG_PREDICT_TYPE_STUB=predict.py:Predictor"],
        }
    }
}

/// Assembles a Cog image on `base` the way cogpack will (deps layer + source layer +
/// config), pushes it as `test/model:<tag>` and returns the pushed reference.
fn push_model(registry: &Registry, base: &PushedImage, spec: &ModelSpec) -> String {
    let work = tempfile::tempdir().expect("temp dir");
    let layout = work.path().join("oci");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}", base.reference))
            .arg(format!("oci:{}:base", layout.display())),
    );
    let deps_tar = work.path().join("deps.tar");
    deterministic_tar(&install_cog_runtime(work.path()), &deps_tar);
    let source_tar = work.path().join("source.tar");
    deterministic_tar(&write_source_tree(work.path(), spec.source), &source_tar);
    let model = format!("{}:model", layout.display());
    let base_image = format!("{}:base", layout.display());
    add_layer(&base_image, Some("model"), &deps_tar, "deps");
    add_layer(&model, None, &source_tar, "source");
    let mut config = Command::new("umoci");
    config
        .args([
            "config",
            "--image",
            &model,
            "--no-history",
            "--created",
            CREATED,
        ])
        .args(["--config.workingdir", spec.working_dir])
        .args(["--config.exposedports", "5000/tcp"])
        .args(["--clear", "config.cmd"])
        .args(["--config.cmd", "python", "--config.cmd", "-m"])
        .args(["--config.cmd", "cog.server.http"]);
    for env in spec.env {
        config.args(["--config.env", env]);
    }
    run_ok(&mut config);
    let reference = format!("{}/test/model:{}", registry.host, spec.tag);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{model}"))
            .arg(format!("docker://{reference}")),
    );
    reference
}

fn add_layer(image: &str, new_tag: Option<&str>, tar: &Path, created_by: &str) {
    let mut command = Command::new("umoci");
    command.args(["raw", "add-layer", "--image", image]);
    if let Some(tag) = new_tag {
        command.args(["--tag", tag]);
    }
    command
        .args([
            "--history.created",
            CREATED,
            "--history.created_by",
            created_by,
        ])
        .arg(tar);
    run_ok(&mut command);
}

/// `uv pip install` of the pinned runtime for Linux x86_64 / CPython 3.11 into
/// `<work>/deps/usr/local`, with script shebangs pointing at the image's python.
fn install_cog_runtime(work: &Path) -> PathBuf {
    let root = work.join("deps");
    let prefix = root.join("usr/local");
    run_ok(
        Command::new("uv")
            .args(["pip", "install", "--quiet", "--link-mode=copy", "--prefix"])
            .arg(&prefix)
            .args([
                "--python-platform",
                "x86_64-manylinux_2_28",
                "--python-version",
                "3.11",
            ])
            .args(["--only-binary", ":all:"])
            .args(COG_RUNTIME),
    );
    let _ = fs::remove_file(prefix.join(".lock"));
    for script in fs::read_dir(prefix.join("bin")).expect("uv created bin/") {
        retarget_shebang(&script.expect("bin entry").path());
    }
    root
}

fn retarget_shebang(script: &Path) {
    let text = fs::read(script).expect("read script");
    let Some(line_end) = text.iter().position(|&b| b == b'\n') else {
        return;
    };
    let first = String::from_utf8_lossy(&text[..line_end]);
    if first.starts_with("#!") && first.contains("python") {
        let mut fixed = b"#!/usr/local/bin/python".to_vec();
        fixed.extend_from_slice(&text[line_end..]);
        fs::write(script, fixed).expect("rewrite shebang");
    }
}

fn write_source_tree(work: &Path, files: &[(&str, &str)]) -> PathBuf {
    let root = work.join("source");
    for (name, contents) in files {
        let path = root.join("src").join(name);
        fs::create_dir_all(path.parent().expect("file under src/")).expect("create source dir");
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    root
}

/// Pull, unpack, run and call one prediction; the harness's pass/fail check.
fn greets_world(reference: &str) -> Result<(), String> {
    let image = runner::pull(reference)?;
    let model = image.run(&RunOptions::default())?;
    let (status, body) = model.predict(&json!({ "text": "world" }));
    if status == 200 && body["output"] == "hello world" && body["status"] == "succeeded" {
        Ok(())
    } else {
        Err(format!(
            "prediction returned {status} {body}\n{}",
            model.log()
        ))
    }
}

#[test]
fn hello_model_on_python_slim_stand_in_serves_a_prediction() {
    let registry = Registry::start();
    let base = base_image::push_python_slim(&registry.host);
    let reference = push_model(&registry, &base, &ModelSpec::hello("slim", "/src"));
    greets_world(&reference).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        registry.count_requests("PUT", "/v2/test/model/manifests/slim"),
        1,
        "access log: {:?}",
        registry.requests()
    );
}

#[test]
fn hello_model_on_cog_base_stand_in_runs_under_tini() {
    let registry = Registry::start();
    let base = base_image::push_cog_base(&registry.host);
    let reference = push_model(&registry, &base, &ModelSpec::hello("cog-base", "/src"));
    let image = runner::pull(&reference).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(image.entrypoint(), ["/sbin/tini", "--"]);
    assert!(
        image
            .env()
            .contains(&("UV_SYSTEM_PYTHON".into(), "true".into()))
    );
    let model = image
        .run(&RunOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = model.predict(&json!({ "text": "tini" }));
    assert_eq!(
        (status, body["output"].clone()),
        (200, json!("hello tini")),
        "{body}"
    );
    let uv = image
        .exec(&["uv", "--version"], &RunOptions::default())
        .expect("run uv in the cog-base stand-in");
    assert!(
        String::from_utf8_lossy(&uv.stdout).starts_with("uv 0.9.26"),
        "{uv:?}"
    );
}

#[test]
fn wrong_working_dir_fails_the_run_check() {
    let registry = Registry::start();
    let base = base_image::push_python_slim(&registry.host);
    let reference = push_model(&registry, &base, &ModelSpec::hello("wrong-workdir", "/"));
    let outcome = greets_world(&reference);
    let error = outcome.expect_err("a model whose WorkingDir is / must not serve predictions");
    assert!(error.contains("SETUP_FAILED"), "{error}");
}

/// Exercises the runner options the end-to-end tests need: a weights directory bound
/// read-only at its target, and extra server arguments (`--x-mode train`).
#[test]
fn runner_binds_weights_and_serves_train_mode() {
    let registry = Registry::start();
    let base = base_image::push_python_slim(&registry.host);
    let spec = ModelSpec {
        tag: "weights-train",
        working_dir: "/src",
        source: &[("predict.py", WEIGHTS_PREDICTOR), ("train.py", TRAINER)],
        env: &[
            "COG_PREDICT_TYPE_STUB=predict.py:Predictor",
            "COG_TRAIN_TYPE_STUB=train.py:train",
        ],
    };
    let image =
        runner::pull(&push_model(&registry, &base, &spec)).unwrap_or_else(|e| panic!("{e}"));
    let weights = tempfile::tempdir().expect("weights dir");
    fs::write(weights.path().join("greeting.txt"), "bonjour\n").expect("write weights file");
    let with_weights = RunOptions {
        ro_binds: vec![(weights.path().to_path_buf(), "/src/weights".to_string())],
        ..RunOptions::default()
    };
    let predictor = image.run(&with_weights).unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = predictor.predict(&json!({ "text": "le monde" }));
    assert_eq!(
        (status, &body["output"]),
        (200, &json!("bonjour le monde")),
        "{body}"
    );
    drop(predictor);
    assert!(
        image.run(&RunOptions::default()).is_err(),
        "without the weights bind, setup must fail"
    );
    let train_mode = RunOptions {
        extra_args: vec!["--x-mode".to_string(), "train".to_string()],
        ..RunOptions::default()
    };
    let trainer = image.run(&train_mode).unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = trainer.train(&json!({ "steps": 3 }));
    assert_eq!(
        (status, &body["output"]),
        (200, &json!("trained for 3 steps")),
        "{body}"
    );
}

#[test]
fn python_slim_stand_in_looks_like_python_slim() {
    let registry = Registry::start();
    let base = base_image::push_python_slim(&registry.host);
    let image: PulledImage = runner::pull(&base.reference).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(image.manifest_digest, base.digest);
    assert_eq!(image.cmd(), ["python3"]);
    assert!(image.entrypoint().is_empty());
    let path = image
        .env()
        .into_iter()
        .find(|(k, _)| k == "PATH")
        .expect("PATH set");
    assert!(path.1.starts_with("/usr/local/bin:"), "{path:?}");
    let probe = "import sys; print(sys.version_info[:2] == (3, 11)); print(sys.path)";
    let output = image
        .exec(&["python", "-c", probe], &RunOptions::default())
        .expect("run python in the stand-in");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.starts_with("True\n"), "{stdout}");
    assert!(
        stdout.contains("/usr/local/lib/python3.11/site-packages"),
        "{stdout}"
    );
    let freeze = image
        .exec(&["pip", "freeze"], &RunOptions::default())
        .expect("run pip in the stand-in");
    assert!(freeze.status.success(), "{freeze:?}");
}

/// Builds a two-layer scratch image whose second layer whites out a file and makes a
/// directory opaque, and checks the runner's unpack honours both.
#[test]
fn runner_unpack_honours_whiteouts() {
    let registry = Registry::start();
    let work = tempfile::tempdir().expect("temp dir");
    let lower = work.path().join("lower");
    let upper = work.path().join("upper");
    for (dir, files) in [
        (&lower, &["a/keep", "a/gone", "b/old1", "b/old2"][..]),
        (&upper, &["a/.wh.gone", "b/.wh..wh..opq", "b/new"][..]),
    ] {
        for file in files {
            let path = dir.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, file.as_bytes()).unwrap();
        }
    }
    let (lower_tar, upper_tar) = (work.path().join("lower.tar"), work.path().join("upper.tar"));
    deterministic_tar(&lower, &lower_tar);
    deterministic_tar(&upper, &upper_tar);
    let image = format!("{}:img", work.path().join("oci").display());
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(work.path().join("oci")),
    );
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    add_layer(&image, None, &lower_tar, "lower");
    add_layer(&image, None, &upper_tar, "upper");
    let reference = format!("{}/test/whiteouts:latest", registry.host);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{image}"))
            .arg(format!("docker://{reference}")),
    );
    let pulled = runner::pull(&reference).unwrap_or_else(|e| panic!("{e}"));
    assert_whiteouts_applied(&pulled.rootfs);
    let local =
        runner::from_layout(&work.path().join("oci"), "img").unwrap_or_else(|e| panic!("{e}"));
    assert_whiteouts_applied(&local.rootfs);
}

fn assert_whiteouts_applied(rootfs: &Path) {
    assert!(rootfs.join("a/keep").is_file());
    assert!(!rootfs.join("a/gone").exists(), "whiteout ignored");
    assert!(
        !rootfs.join("a/.wh.gone").exists(),
        "whiteout marker unpacked"
    );
    assert!(
        !rootfs.join("b/old1").exists() && !rootfs.join("b/old2").exists(),
        "opaque dir ignored"
    );
    assert_eq!(fs::read_to_string(rootfs.join("b/new")).unwrap(), "b/new");
}
