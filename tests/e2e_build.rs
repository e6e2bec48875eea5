//! End to end: `cogpack build --push` of fixture projects on a machine with no
//! Docker, against a real registry holding stand-in base images (reached
//! through cogpack's registry-mirror feature), then pulled back with skopeo,
//! unpacked and served by the real Cog runtime under bwrap.

mod common;

use common::base_image;
use common::registry::Registry;
use common::runner::{self, RunOptions};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let url = format!("http://127.0.0.1:{port}/tini-amd64");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        TiniServer {
            child,
            url,
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

/// One test's world: a registry with the stand-in bases, a tini server and
/// an empty cogpack store.
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

    /// Runs cogpack in `project` with the mirror, tini override and store set.
    fn cogpack(&self, project: &Path, args: &[&str]) -> Output {
        self.cogpack_with_store(project, args, self.store.path())
    }

    fn cogpack_with_store(&self, project: &Path, args: &[&str], store: &Path) -> Output {
        let mirror_docker = format!("docker.io={}", self.registry.host);
        let mirror_r8 = format!("r8.im={}", self.registry.host);
        Command::new(env!("CARGO_BIN_EXE_cogpack"))
            .args(args)
            .args(["--registry-mirror", &mirror_docker])
            .args(["--registry-mirror", &mirror_r8])
            .args(["--progress", "plain"])
            .current_dir(project)
            .env("COGPACK_HOME", store)
            .env("COGPACK_TINI_URL", &self.tini.url)
            .env("COGPACK_TINI_SHA256", &self.tini.sha256)
            .env("DOCKER_CONFIG", store.join("docker-config"))
            // Pin coglet too (cog's SDK only bounds it), so every run resolves
            // the same versions.
            .env("COGLET_WHEEL", "pypi:0.23.1")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .expect("cogpack runs")
    }

    fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host)
    }
}

/// Copies a fixture project into a fresh directory.
fn project(fixture: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = common::scratch_dir("project");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/e2e")
        .join(fixture);
    let dst = dir.path().join(fixture);
    copy_tree(&src, &dst);
    (dir, dst)
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

/// Pulls `reference`, serves it and returns the prediction for `input`.
fn predict(reference: &str, input: serde_json::Value) -> (u16, serde_json::Value) {
    let pulled = runner::pull(reference).unwrap_or_else(|e| panic!("pull {reference}: {e}"));
    let model = pulled
        .run(&RunOptions::default())
        .unwrap_or_else(|e| panic!("run {reference}: {e}"));
    model.predict(&input)
}

#[test]
fn hello_world_on_python_slim_serves_a_prediction() {
    let world = World::new();
    let (_dir, project) = project("hello");
    let image = world.image("test/hello:v1");
    let output = world.cogpack(
        &project,
        &[
            "build",
            "--push",
            "-t",
            &image,
            "--use-cog-base-image=false",
        ],
    );
    assert_success(&output, "cogpack build --push");
    let (status, body) = predict(&image, json!({"text": "world"}));
    assert_eq!(status, 200, "prediction failed: {body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(body["output"], "hello world", "{body}");
}
