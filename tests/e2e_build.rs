//! End to end: `cogpack build --push` of fixture projects on a machine with no
//! Docker, against a real registry holding stand-in base images (reached
//! through cogpack's registry-mirror feature), then pulled back with skopeo,
//! unpacked and served by the real Cog runtime under bwrap.

mod common;

use common::cogpack::World;
use common::runner::{self, RunOptions};
use common::{assert_success, project_copy};
use serde_json::json;

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
    let (_dir, project) = project_copy("fixtures/e2e/hello");
    let image = world.image("test/hello:v1");
    let output = world.build_push_slim(&project, &image);
    assert_success(&output, "cogpack build --push");
    let (status, body) = predict(&image, json!({"text": "world"}));
    assert_eq!(status, 200, "prediction failed: {body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(body["output"], "hello world", "{body}");
}
