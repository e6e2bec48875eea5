//! End to end: `cogpack build --push` of fixture projects on a machine with no
//! Docker, against a real registry holding stand-in base images (reached
//! through cogpack's registry-mirror feature), then pulled back with skopeo and
//! with `cogpack pull`, unpacked and served by the real Cog runtime under bwrap.

mod common;

use common::cogpack::World;
use common::runner::{self, RunOptions};
use common::{assert_success, project_copy, scratch_dir};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

#[test]
fn hello_world_on_python_slim_serves_a_prediction() {
    let world = World::new();
    let (_dir, project) = project_copy("fixtures/e2e/hello");
    let image = world.image("test/hello:v1");
    let output = world.build_push_slim(&project, &image);
    assert_success(&output, "cogpack build --push");
    let by_skopeo = runner::pull(&image).unwrap_or_else(|e| panic!("skopeo pull {image}: {e}"));

    // Our own client pulls the same bytes: same manifest digest, same blobs.
    let (_work, layout, pulled) = cogpack_pull(&world, &project, &image, "own");
    let ours = runner::from_layout(&layout, "own").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ours.manifest_digest, by_skopeo.manifest_digest);
    assert_eq!(ours.manifest, by_skopeo.manifest);
    assert_eq!(blob_names(&layout), blob_names(&by_skopeo.layout));
    assert!(
        String::from_utf8_lossy(&pulled.stdout).contains(&ours.manifest_digest),
        "cogpack pull prints the digest: {}",
        String::from_utf8_lossy(&pulled.stdout)
    );

    // The image our client pulled serves the prediction.
    let model = ours
        .run(&RunOptions::default())
        .unwrap_or_else(|e| panic!("run {image} pulled by cogpack: {e}"));
    let (status, body) = model.predict(&json!({"text": "world"}));
    assert_eq!(status, 200, "prediction failed: {body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(body["output"], "hello world", "{body}");
}

/// `cogpack pull IMAGE --output oci:LAYOUT:TAG` into a fresh scratch
/// directory; panics unless it succeeds. Returns the directory guard, the
/// layout path and cogpack's output.
fn cogpack_pull(
    world: &World,
    project: &Path,
    image: &str,
    tag: &str,
) -> (tempfile::TempDir, PathBuf, Output) {
    let work = scratch_dir("cogpack-pull.");
    let layout = work.path().join("oci");
    let output = world
        .command(project)
        .args(["pull", image, "--output"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .output()
        .expect("cogpack pull runs");
    assert_success(&output, "cogpack pull");
    (work, layout, output)
}

/// The sha256 blob file names of an OCI layout.
fn blob_names(layout: &Path) -> BTreeSet<String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap_or_else(|e| panic!("list blobs of {}: {e}", layout.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

#[test]
fn output_oci_layout_holds_the_registry_base_layers_and_serves() {
    let world = World::new();
    let (_dir, project) = project_copy("fixtures/e2e/hello");
    let work = scratch_dir("cogpack-output.");
    let layout = work.path().join("oci");
    let output = world.cogpack(
        &project,
        &[
            "build",
            "-t",
            "local/hello:v1",
            "--use-cog-base-image=false",
            "--output",
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    assert_success(&output, "cogpack build --output oci:DIR");
    // The shallow base path never downloads base layers into the store: the
    // output streams them from the (mirrored) base registry.
    let image = runner::from_layout(&layout, "v1").unwrap_or_else(|e| panic!("{e}"));
    let layers = image.manifest["layers"].as_array().expect("layers").len();
    assert_eq!(
        blob_names(&layout).len(),
        layers + 2,
        "layers + config + manifest"
    );
    let model = image
        .run(&RunOptions::default())
        .unwrap_or_else(|e| panic!("run the --output layout: {e}"));
    let (status, body) = model.predict(&json!({"text": "layout"}));
    assert_eq!(status, 200, "prediction failed: {body}");
    assert_eq!(body["output"], "hello layout", "{body}");
}

#[test]
fn uncompressed_layers_are_hashed_at_build_and_written_when_pushed() {
    let world = World::new();
    let (_dir, project) = project_copy("fixtures/e2e/hello");
    let image = world.image("test/hello-raw:v1");
    let output = world.build_push_slim_with(&project, &image, &["--compression", "none"], &[]);
    assert_success(&output, "cogpack build --push --compression none");
    // The source tree's layer was kept as a recipe, then written for the push.
    let recipes = world.store.path().join("recipes");
    assert!(
        std::fs::read_dir(&recipes).unwrap().count() > 0,
        "no layer recipe in {}",
        recipes.display()
    );
    // Pulled with our client: skopeo's `oci:` destination would recompress
    // uncompressed layers.
    let (_work, layout, _) = cogpack_pull(&world, &project, &image, "raw");
    let pulled = runner::from_layout(&layout, "raw").unwrap_or_else(|e| panic!("{e}"));
    let raw_layers = pulled.manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar")
        .count();
    assert!(
        raw_layers >= 3,
        "app layers are uncompressed: {}",
        pulled.manifest
    );
    assert_eq!(
        std::fs::read(pulled.rootfs.join("src/predict.py")).unwrap(),
        std::fs::read(project.join("predict.py")).unwrap()
    );
}
