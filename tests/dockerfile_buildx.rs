//! The Docker backend's `docker buildx build` invocation, checked with a
//! recording `docker` stub (a shell script): it logs every call's arguments,
//! captures the Dockerfiles and the `cog_build` context it is handed, and
//! answers `docker info` / `docker run` like an engine would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cogpack::backend::docker::{self, BundleInputs, DockerBuildOptions, DockerError};
use cogpack::config::base::AssumeCandidatesExist;
use cogpack::plan::{self, BuildPlan, PlanOptions, SecretSpec};
use sha2::{Digest, Sha256};

const STUB: &str = r#"#!/bin/bash
# Recording docker stub: LOG is substituted by the test.
LOG=@LOG@
n=$(ls "$LOG" | grep -c '^call-')
call="$LOG/call-$n"
mkdir -p "$call"
printf '%s\0' "$@" > "$call/args"
case "$1" in
  info)
    if [ -e "$LOG/engine-down" ]; then
      echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
      exit 1
    fi
    echo "Server Version: stub"
    ;;
  buildx)
    if [ "$2" = version ]; then
      if [ -e "$LOG/no-buildx" ]; then echo "docker: unknown command: docker buildx" >&2; exit 1; fi
      echo "github.com/docker/buildx v0.stub"; exit 0
    fi
    file=""; ctx=""; prev=""
    for arg in "$@"; do
      case "$prev" in
        --file) file="$arg" ;;
        --build-context) ctx="${arg#cog_build=}" ;;
      esac
      prev="$arg"
    done
    cp "$file" "$call/Dockerfile"
    [ -e "$file.dockerignore" ] && cp "$file.dockerignore" "$call/dockerignore"
    (cd "$ctx" && find . -type f | sort | while read -r f; do printf '%s %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$f"; done) > "$call/context"
    cp -r "$ctx" "$call/cog_build"
    if [ -e "$LOG/fail-build" ]; then echo "ERROR: failed to solve" >&2; exit 1; fi
    ;;
  run)
    printf 'mypkg==0.1.0\nrequests==2.32.3\n'
    ;;
  image)
    ;;
  *)
    echo "stub: unexpected command $1" >&2; exit 2 ;;
esac
"#;

struct Harness {
    _temp: tempfile::TempDir,
    project: PathBuf,
    log: PathBuf,
    stub: PathBuf,
}

impl Harness {
    fn new() -> Harness {
        let temp = tempfile::tempdir().unwrap();
        let project = temp.path().join("model");
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dockerfile/buildx/project"),
            &project,
        );
        let log = temp.path().join("log");
        std::fs::create_dir(&log).unwrap();
        let bin = temp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let stub = bin.join("docker");
        std::fs::write(&stub, STUB.replace("@LOG@", &log.display().to_string())).unwrap();
        set_executable(&stub);
        Harness {
            _temp: temp,
            project,
            log,
            stub,
        }
    }

    fn plan(&self) -> BuildPlan {
        let project = cogpack::config::load(&self.project, "cog.yaml").expect("fixture loads");
        let options = PlanOptions {
            use_cog_base_image: Some(false),
            secrets: vec![SecretSpec::parse("id=netrc,src=secrets/netrc", &self.project).unwrap()],
            cwd: self.project.clone(),
            cog_version: "0.0.0-test".into(),
            ..PlanOptions::default()
        };
        plan::plan(&project, &options, &AssumeCandidatesExist).expect("plan")
    }

    fn options(&self, image: &str) -> DockerBuildOptions {
        DockerBuildOptions {
            program: self.stub.clone(),
            ..DockerBuildOptions::new(image)
        }
    }

    fn calls(&self) -> Vec<PathBuf> {
        let mut calls: Vec<(usize, PathBuf)> = std::fs::read_dir(&self.log)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?.to_string();
                Some((name.strip_prefix("call-")?.parse().ok()?, p))
            })
            .collect();
        calls.sort();
        calls.into_iter().map(|(_, p)| p).collect()
    }
}

fn args_of(call: &Path) -> Vec<String> {
    let bytes = std::fs::read(call.join("args")).unwrap();
    bytes
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn schema_bundle() -> BundleInputs {
    BundleInputs {
        openapi_schema: Some(
            br#"{"openapi":"3.0.2","info":{"title":"Cog","version":"0.1.0"}}"#.to_vec(),
        ),
        weights_json: None,
        extra_labels: BTreeMap::from([(
            "run.cog.cog-base-image-last-layer-idx".to_string(),
            "3".to_string(),
        )]),
    }
}

#[test]
fn unreachable_engine_fails_naming_the_native_backend_before_staging() {
    let harness = Harness::new();
    std::fs::write(harness.log.join("engine-down"), "").unwrap();
    let plan = harness.plan();
    let error = docker::build(&plan, &schema_bundle(), &harness.options("acme/model")).unwrap_err();
    assert!(matches!(error, DockerError::NoEngine { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("no Docker engine is reachable"),
        "{message}"
    );
    assert!(
        message.contains("Cannot connect to the Docker daemon"),
        "{message}"
    );
    assert!(message.contains("--backend native"), "{message}");
    let calls = harness.calls();
    assert_eq!(calls.len(), 1, "only `docker info` may run");
    assert_eq!(args_of(&calls[0]), vec!["info"]);
    assert!(!harness.project.join(".cog/build").exists());
}

#[test]
fn missing_buildx_plugin_is_reported_before_staging() {
    let harness = Harness::new();
    std::fs::write(harness.log.join("no-buildx"), "").unwrap();
    let plan = harness.plan();
    let error = docker::build(&plan, &schema_bundle(), &harness.options("acme/model")).unwrap_err();
    assert!(matches!(error, DockerError::NoBuildx { .. }), "{error}");
    assert!(
        error.to_string().contains("unknown command: docker buildx"),
        "{error}"
    );
    assert!(error.to_string().contains("--backend native"), "{error}");
    assert!(!harness.project.join(".cog/build").exists());
}

/// The real docker CLI (present on our machines, with no engine) pointed at a
/// socket nobody listens on: `docker info` fails and the backend says so.
#[test]
fn real_docker_cli_without_an_engine_is_a_no_engine_error() {
    let harness = Harness::new();
    let socket = harness.log.join("nobody.sock");
    let wrapper = harness.log.join("real-docker");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nDOCKER_HOST=unix://{} exec docker \"$@\"\n",
            socket.display()
        ),
    )
    .unwrap();
    set_executable(&wrapper);
    let error = docker::probe_engine(&wrapper).unwrap_err();
    assert!(matches!(error, DockerError::NoEngine { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("--backend native"), "{message}");
    let docker_installed = std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_ok();
    if docker_installed {
        assert!(
            message.contains(&format!(
                "Cannot connect to the Docker daemon at unix://{}",
                socket.display()
            )),
            "{message}"
        );
    }
}

#[test]
fn missing_docker_program_is_a_no_engine_error() {
    let harness = Harness::new();
    let plan = harness.plan();
    let options = DockerBuildOptions {
        program: harness.project.join("no-such-docker"),
        ..DockerBuildOptions::new("acme/model")
    };
    let error = docker::build(&plan, &schema_bundle(), &options).unwrap_err();
    assert!(error.to_string().contains("--backend native"), "{error}");
}

#[test]
fn build_runs_main_and_bundle_builds_with_context_secrets_and_labels() {
    let harness = Harness::new();
    let plan = harness.plan();
    let image = "r8.im/acme/model";
    let output = docker::build(&plan, &schema_bundle(), &harness.options(image)).expect("build");
    let project = harness.project.canonicalize().unwrap();
    let tmp_tag = format!("cog-tmp:{}", sha256_hex(image.as_bytes()));
    assert_eq!(output.main_image, tmp_tag);

    let calls = harness.calls();
    let commands: Vec<String> = calls.iter().map(|c| args_of(c)[0].clone()).collect();
    assert_eq!(
        commands,
        vec!["info", "buildx", "buildx", "run", "buildx", "image"]
    );
    assert_eq!(args_of(&calls[1]), vec!["buildx", "version"]);
    let calls = &calls[1..];

    let main = args_of(&calls[1]);
    let build_dir = project.join(".cog/build").display().to_string();
    let dockerfile = project
        .join(".cog/dockerfile/Dockerfile")
        .display()
        .to_string();
    let expected_main: Vec<String> = [
        "buildx",
        "build",
        "--platform",
        "linux/amd64",
        "--build-context",
        &format!("cog_build={build_dir}"),
        "--load",
        "--secret",
        &format!(
            "id=netrc,src={}",
            harness.project.join("secrets/netrc").display()
        ),
        "--tag",
        &tmp_tag,
        "--file",
        &dockerfile,
        &project.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(main, expected_main);

    let main_dockerfile = std::fs::read_to_string(calls[1].join("Dockerfile")).unwrap();
    assert_eq!(main_dockerfile, docker::render_dockerfile(&plan));
    assert!(main_dockerfile.contains(
        "RUN --mount=type=secret,id=netrc,target=/root/.netrc git clone https://example.com/private.git /opt/private"
    ));
    let ignore = std::fs::read_to_string(calls[1].join("dockerignore")).unwrap();
    assert_eq!(ignore, "secrets/\n*.log\n.cog\n");

    let wheel = std::fs::read(harness.project.join("wheels/mypkg-0.1.0-py3-none-any.whl")).unwrap();
    let requirements =
        "/tmp/local_package_artifacts/wheels/mypkg-0.1.0-py3-none-any.whl\nrequests==2.32.3";
    let schema = schema_bundle().openapi_schema.unwrap();
    let expected_context = format!(
        "{} ./local_package_artifacts/wheels/mypkg-0.1.0-py3-none-any.whl\n{} ./openapi_schema.json\n{} ./requirements.txt\n",
        sha256_hex(&wheel),
        sha256_hex(&schema),
        sha256_hex(requirements.as_bytes()),
    );
    assert_eq!(
        std::fs::read_to_string(calls[1].join("context")).unwrap(),
        expected_context
    );

    assert_eq!(
        args_of(&calls[2]),
        vec![
            "run",
            "--rm",
            "--platform",
            "linux/amd64",
            tmp_tag.as_str(),
            "python",
            "-m",
            "pip",
            "freeze"
        ]
    );

    let bundle = args_of(&calls[3]);
    let bundle_dir = project.join(".cog/bundle");
    assert_eq!(&bundle[..7], &expected_main[..7]);
    let labels: BTreeMap<String, String> = bundle
        .windows(2)
        .filter(|pair| pair[0] == "--label")
        .map(|pair| {
            let (k, v) = pair[1].split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(labels.get("run.cog.version").unwrap(), "0.0.0-test");
    assert_eq!(labels.get("run.cog.has_init").unwrap(), "true");
    assert_eq!(
        labels.get("run.cog.pip_freeze").unwrap(),
        "mypkg==0.1.0\nrequests==2.32.3\n"
    );
    assert_eq!(
        labels.get("run.cog.openapi_schema").unwrap().as_bytes(),
        schema.as_slice()
    );
    assert_eq!(
        labels.get("run.cog.cog-base-image-last-layer-idx").unwrap(),
        "3"
    );
    assert_eq!(
        labels.get("run.cog.cog-base-image-name"),
        None,
        "cog-base was not attempted"
    );
    let config: serde_json::Value =
        serde_json::from_str(labels.get("run.cog.config").unwrap()).unwrap();
    assert_eq!(config["build"]["python_version"], "3.12");
    assert_eq!(config["predict"], "predict.py:Predictor");
    assert_eq!(labels, output.labels);
    let tail: Vec<&str> = bundle[bundle.len() - 5..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        vec![
            "--tag",
            image,
            "--file",
            &bundle_dir.join("Dockerfile").display().to_string(),
            &bundle_dir.display().to_string()
        ]
    );
    assert_eq!(
        std::fs::read_to_string(calls[3].join("Dockerfile")).unwrap(),
        format!("FROM {tmp_tag}\nCOPY --from=cog_build openapi_schema.json .cog/\n")
    );
    assert_eq!(args_of(&calls[4]), vec!["image", "rm", tmp_tag.as_str()]);

    assert!(
        !project.join(".cog/build").exists(),
        "staging dir is removed"
    );
    assert_eq!(
        std::fs::read(project.join(".cog/openapi_schema.json")).unwrap(),
        schema
    );
}

#[test]
fn plain_image_names_are_built_in_place_without_removal() {
    let harness = Harness::new();
    let plan = harness.plan();
    let options = DockerBuildOptions {
        no_cache: true,
        progress: Some("plain".into()),
        source_date_epoch: Some(0),
        pip_freeze_label: false,
        ..harness.options("localhost:5000/acme/model:v1")
    };
    docker::build(&plan, &schema_bundle(), &options).expect("build");
    let calls = harness.calls();
    let commands: Vec<String> = calls.iter().map(|c| args_of(c)[0].clone()).collect();
    assert_eq!(commands, vec!["info", "buildx", "buildx", "buildx"]);
    let calls = &calls[1..];
    let main = args_of(&calls[1]);
    assert!(!main.iter().any(|a| a == "--load"), "{main:?}");
    for expected in [
        "type=docker,rewrite-timestamp=true",
        "--no-cache",
        "--progress",
        "plain",
        "SOURCE_DATE_EPOCH=0",
        "localhost:5000/acme/model:v1",
    ] {
        assert!(
            main.iter().any(|a| a == expected),
            "{expected} missing from {main:?}"
        );
    }
    assert!(
        !args_of(&calls[2])
            .iter()
            .any(|a| a.starts_with("run.cog.pip_freeze="))
    );
}

#[test]
fn failed_main_build_reports_and_cleans_up() {
    let harness = Harness::new();
    std::fs::write(harness.log.join("fail-build"), "").unwrap();
    let plan = harness.plan();
    let error = docker::build(&plan, &schema_bundle(), &harness.options("acme/model")).unwrap_err();
    assert!(matches!(error, DockerError::Command { .. }), "{error}");
    assert!(error.to_string().contains("buildx build"), "{error}");
    // info, buildx version, the failing main build
    assert_eq!(
        harness.calls().len(),
        3,
        "nothing runs after the failed build"
    );
    assert!(!harness.project.join(".cog/build").exists());
}

#[test]
fn without_schema_bytes_the_bundle_copies_nothing_and_the_label_is_empty() {
    let harness = Harness::new();
    let plan = harness.plan();
    let options = DockerBuildOptions {
        pip_freeze_label: false,
        ..harness.options("acme/model")
    };
    let output = docker::build(&plan, &BundleInputs::default(), &options).expect("build");
    let calls = &harness.calls()[1..];
    assert_eq!(
        std::fs::read_to_string(calls[2].join("Dockerfile")).unwrap(),
        "FROM acme/model\n"
    );
    assert_eq!(output.labels.get("run.cog.openapi_schema").unwrap(), "");
}

#[test]
fn missing_weights_manifest_is_an_error_and_staging_is_removed() {
    let harness = Harness::new();
    let yaml = std::fs::read_to_string(harness.project.join("cog.yaml")).unwrap();
    std::fs::create_dir_all(harness.project.join("weights")).unwrap();
    std::fs::write(harness.project.join("weights/w.bin"), "w").unwrap();
    std::fs::write(
        harness.project.join("cog.yaml"),
        format!("{yaml}model: registry.example.com/acme/m\nweights:\n  - name: w\n    target: /src/weights\n    source:\n      uri: weights\n"),
    )
    .unwrap();
    let plan = harness.plan();
    let error = docker::build(&plan, &schema_bundle(), &harness.options("acme/model")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the bytes of weights.json were not supplied"),
        "{error}"
    );
    assert!(
        !harness.project.join(".cog/build").exists(),
        "partial staging is removed"
    );
}

#[test]
fn a_held_project_lock_makes_the_build_wait() {
    let harness = Harness::new();
    let plan = harness.plan();
    std::fs::create_dir_all(harness.project.join(".cog")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(harness.project.join(".cog/cog.lock"))
        .unwrap();
    lock.lock().unwrap();
    let options = DockerBuildOptions {
        pip_freeze_label: false,
        ..harness.options("acme/model")
    };
    let bundle = schema_bundle();
    std::thread::scope(|scope| {
        let build = scope.spawn(|| docker::build(&plan, &bundle, &options));
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(
            harness.calls().len(),
            2,
            "only the probes ran while the lock was held"
        );
        assert!(!build.is_finished());
        lock.unlock().unwrap();
        build
            .join()
            .unwrap()
            .expect("build after the lock is released");
    });
    assert_eq!(harness.calls().len(), 4);
}
