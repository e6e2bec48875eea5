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
use std::path::Path;
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
const PREDICTOR: &str = r#"from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.prefix = "hello "

    def predict(self, text: str = Input(description="Text to greet")) -> str:
        return self.prefix + text
"#;
const COG_YAML: &str = "build:\n  python_version: \"3.11\"\npredict: \"predict.py:Predictor\"\n";

/// Assembles a hello-world Cog image on `base` the way cogpack will (deps layer + source
/// layer + config), pushes it as `test/hello:<tag>` and returns the pushed reference.
fn push_hello_model(
    registry: &Registry,
    base: &PushedImage,
    tag: &str,
    working_dir: &str,
) -> String {
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
    deterministic_tar(&write_source_tree(work.path()), &source_tar);
    let model = format!("{}:model", layout.display());
    add_layer(
        &format!("{}:base", layout.display()),
        Some("model"),
        &deps_tar,
        "deps",
    );
    add_layer(&model, None, &source_tar, "source");
    run_ok(
        Command::new("umoci")
            .args([
                "config",
                "--image",
                &model,
                "--no-history",
                "--created",
                CREATED,
            ])
            .args([
                "--config.workingdir",
                working_dir,
                "--config.exposedports",
                "5000/tcp",
            ])
            .args(["--config.env", "COG_PREDICT_TYPE_STUB=predict.py:Predictor"])
            .args(["--clear", "config.cmd"])
            .args(["--config.cmd", "python", "--config.cmd", "-m"])
            .args(["--config.cmd", "cog.server.http"]),
    );
    let reference = format!("{}/test/hello:{tag}", registry.host);
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
fn install_cog_runtime(work: &Path) -> std::path::PathBuf {
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

fn write_source_tree(work: &Path) -> std::path::PathBuf {
    let root = work.join("source");
    fs::create_dir_all(root.join("src")).expect("create source/src");
    fs::write(root.join("src/predict.py"), PREDICTOR).expect("write predict.py");
    fs::write(root.join("src/cog.yaml"), COG_YAML).expect("write cog.yaml");
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
    let reference = push_hello_model(&registry, &base, "slim", "/src");
    greets_world(&reference).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        registry.count_requests("PUT", "/v2/test/hello/manifests/slim"),
        1,
        "access log: {:?}",
        registry.requests()
    );
}

#[test]
fn hello_model_on_cog_base_stand_in_runs_under_tini() {
    let registry = Registry::start();
    let base = base_image::push_cog_base(&registry.host);
    let reference = push_hello_model(&registry, &base, "cog-base", "/src");
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
    let reference = push_hello_model(&registry, &base, "wrong-workdir", "/");
    let outcome = greets_world(&reference);
    let error = outcome.expect_err("a model whose WorkingDir is / must not serve predictions");
    assert!(
        error.contains("predict.py") || error.contains("failed"),
        "{error}"
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
    let rootfs = &pulled.rootfs;
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
