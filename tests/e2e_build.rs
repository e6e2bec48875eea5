//! End to end: `cogpack build --push` of fixture projects on a machine with no
//! Docker, against a real registry holding stand-in base images (reached
//! through cogpack's registry-mirror feature), then pulled back with skopeo,
//! unpacked and served by the real Cog runtime under bwrap.

mod common;

use common::cogpack::World;
use common::runner::{self, RunOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;

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
