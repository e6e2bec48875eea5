//! End to end for a `model:` bundle with managed weights: `cogpack weights
//! import` packs and pushes the weights, `cogpack push` pushes the image and
//! the OCI index, `cogpack weights pull` restores the files into an empty
//! cache, and the image, pulled back and run without Docker with the weights
//! directory supplied at its target, serves a prediction that reads them.

mod common;

use common::cogpack::World;
use common::runner::{self, RunOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(mut command: Command, what: &str) -> Output {
    let output = command.output().expect("cogpack runs");
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A cogpack command with the model reference and weights cache pointed at
/// this test's registry and directories.
fn cogpack(world: &World, project: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut command = world.command(project);
    command
        .args(args)
        .env("COG_MODEL_REGISTRY", &world.registry.host)
        .env("COG_MODEL_TAG", "v1")
        .env("COG_CACHE_DIR", cache);
    command
}

/// Lays the weight's files out at their paths (what cog's runtime mount
/// does), from the content-addressed weights store.
fn weights_dir(project: &Path, cache: &Path, into: &Path) -> Vec<String> {
    let lock: Value =
        serde_json::from_slice(&std::fs::read(project.join("weights.lock")).unwrap()).unwrap();
    let mut paths = Vec::new();
    for file in lock["weights"][0]["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        let hex = file["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let blob: PathBuf = cache.join("weights/files/sha256").join(&hex[..2]).join(hex);
        let to = into.join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&blob, &to).unwrap_or_else(|e| {
            panic!(
                "weight file {path} not in the cache at {}: {e}",
                blob.display()
            )
        });
        paths.push(path.to_string());
    }
    paths
}

#[test]
fn bundle_with_managed_weights_serves_a_prediction_from_pulled_weights() {
    let world = World::new();
    let (scratch, project) = common::project_copy("fixtures/e2e/weights-model");
    let cache = scratch.path().join("cache");

    run(
        cogpack(&world, &project, &cache, &["weights", "import"]),
        "weights import",
    );
    assert!(
        project.join("weights.lock").exists(),
        "import writes weights.lock"
    );
    let pushed = run(
        cogpack(&world, &project, &cache, &["push", "--progress", "plain"]),
        "push",
    );
    let tree = String::from_utf8_lossy(&pushed.stdout);
    assert!(
        tree.contains("model ") && tree.contains("image ") && tree.contains("weight greeting"),
        "push output: {tree}"
    );

    // The model tag is an OCI index: the runnable image plus the weight
    // artifact (platform unknown/unknown, artifactType, annotations).
    let model = world.image("test/weights-model:v1");
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{model}"),
        ])
        .output()
        .expect("skopeo runs");
    let index: Value = serde_json::from_slice(&raw.stdout).expect("index JSON");
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let weight = &index["manifests"][1];
    assert_eq!(
        weight["artifactType"], "application/vnd.cog.weight.v1",
        "{index}"
    );
    assert_eq!(
        weight["platform"],
        json!({"architecture": "unknown", "os": "unknown"})
    );
    assert_eq!(weight["annotations"]["run.cog.weight.name"], "greeting");

    // An empty cache is restored by `weights pull`, byte for byte.
    std::fs::remove_dir_all(&cache).unwrap();
    run(
        cogpack(&world, &project, &cache, &["weights", "pull"]),
        "weights pull",
    );
    let mounted = scratch.path().join("mounted");
    let mut files = weights_dir(&project, &cache, &mounted);
    files.sort();
    assert_eq!(files, ["config.json", "greeting.txt"]);
    for file in &files {
        assert_eq!(
            std::fs::read(mounted.join(file)).unwrap(),
            std::fs::read(project.join("weights").join(file)).unwrap(),
            "{file} differs after pull"
        );
    }

    let image = runner::pull(&model).unwrap_or_else(|e| panic!("pull {model}: {e}"));
    assert!(
        !image.rootfs.join("src/weights").exists(),
        "the weights directory ships as an artifact, not in /src"
    );
    let weights_json: Value = serde_json::from_slice(
        &std::fs::read(image.rootfs.join("src/.cog/weights.json")).expect("/src/.cog/weights.json"),
    )
    .unwrap();
    assert_eq!(weights_json["weights"][0]["name"], "greeting");
    assert_eq!(weights_json["weights"][0]["target"], "/src/weights");
    let options = RunOptions {
        ro_binds: vec![(mounted.clone(), "/src/weights".to_string())],
        ..RunOptions::default()
    };
    let served = image
        .run(&options)
        .unwrap_or_else(|e| panic!("run {model}: {e}"));
    let (status, body) = served.predict(&json!({"text": "world"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], "Hello from the weights, world", "{body}");
}
