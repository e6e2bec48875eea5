//! `cogpack build --push` of projects with `build.run` items, executed in
//! the build sandbox over the Debian stand-in base, pushed to a real
//! registry, pulled back with skopeo, unpacked and served.

mod common;

use common::cogpack::{self as cogpack, World};
use common::file_server::FileServer;
use common::runner::{self, RunOptions};
use common::sandbox::{
    assert_libyaml_prediction, assert_no_sandbox_leftovers, check_apt_build, check_failed_run_item,
};
use common::{assert_success, stderr};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The secret's content; must never appear in a layer.
const SECRET: &str = "s3cr3t-4711";

/// Copies `fixtures/sandbox/<name>` into a fresh directory.
fn project(name: &str) -> (tempfile::TempDir, PathBuf) {
    common::project_copy(&format!("fixtures/sandbox/{name}"))
}

/// What run-3 prints after reading the secret: its SHA-256 and path.
fn secret_line() -> String {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(format!("{SECRET}\n")));
    format!("[run-3] {hash}  /root/.config/tok")
}

/// Builds and pushes `project` as `image` with the secret file given
/// (written outside the project, as a real secret would be).
fn build(world: &World, project: &Path, image: &str) -> Output {
    build_with(world, project, image, &["--push"])
}

/// [`build`] with other flags instead of `--push`.
fn build_with(world: &World, project: &Path, image: &str, flags: &[&str]) -> Output {
    let secret = world.store.path().with_extension("secret.txt");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret_flag = format!("id=tok,src={}", secret.display());
    let mut args = vec![
        "build",
        "-t",
        image,
        "--use-cog-base-image=false",
        "--secret",
        &secret_flag,
    ];
    args.extend(flags);
    world.cogpack(project, &args)
}

/// Every blob of the store, decompressed when gzip.
fn store_layer_texts(store: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = store.join("blobs/sha256");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let raw = std::fs::read(&path).unwrap();
            let mut bytes = Vec::new();
            if raw.starts_with(&[0x1f, 0x8b]) {
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .read_to_end(&mut bytes)
                    .unwrap();
            } else {
                bytes = raw;
            }
            (path.display().to_string(), bytes)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn run_items_become_layers_secret_stays_out_and_cache_is_reused() {
    let world = World::new();
    let (_dir, project) = project("runs");
    let image = world.image("test/runs:v1");
    let output = build(&world, &project, &image);
    assert_success(&output, "first build");
    let log = stderr(&output);
    for line in [
        "[run-1] step-one-ran",
        "[run-2] step-two-ran",
        &secret_line(),
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    for (path, bytes) in store_layer_texts(world.store.path()) {
        assert!(!contains(&bytes, SECRET), "secret found in blob {path}");
    }

    let pulled = runner::pull(&image).unwrap();
    let made = std::fs::read_to_string(pulled.rootfs.join("usr/local/share/made.txt")).unwrap();
    assert_eq!(made, "made-by-run\n");
    assert!(
        !pulled.rootfs.join("etc/debian_version").exists(),
        "the whiteout of run-2 was not honoured"
    );
    assert!(
        !pulled.rootfs.join("root/.config/tok").exists(),
        "secret mount point leaked into the image"
    );
    assert!(log.contains("[run-4] cache-written"), "{log}");
    assert!(
        !pulled.rootfs.join("var/cache/mytool/persisted").exists(),
        "cache mount content leaked into the image"
    );
    assert!(pulled.rootfs.join("usr/bin/python3").exists());
    let model = pulled.run(&RunOptions::default()).unwrap();
    let (status, body) = model.predict(&json!({"text": "sandbox"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], "hello sandbox", "{body}");
    drop(model);

    // Unchanged: nothing runs again.
    let again = build(&world, &project, &world.image("test/runs:v2"));
    assert_success(&again, "second build");
    let log = stderr(&again);
    assert!(!log.contains("Running [run-"), "re-executed:\n{log}");
    assert!(!log.contains("  built "), "a layer was rebuilt:\n{log}");

    // One item changed: it and the items after it run, the one before does not.
    let yaml = std::fs::read_to_string(project.join("cog.yaml")).unwrap();
    let changed = yaml.replace("echo step-two-ran", "echo step-two-changed");
    std::fs::write(project.join("cog.yaml"), changed).unwrap();
    let third = build(&world, &project, &world.image("test/runs:v3"));
    assert_success(&third, "third build");
    let log = stderr(&third);
    assert!(
        !log.contains("Running [run-1]"),
        "run-1 re-executed:\n{log}"
    );
    assert!(log.contains("[run-2] step-two-changed"), "{log}");
    assert!(log.contains(&secret_line()), "{log}");

    // --no-cache runs every command again.
    let output = build_with(
        &world,
        &project,
        &world.image("test/runs:v4"),
        &["--no-cache"],
    );
    assert_success(&output, "--no-cache build");
    let log = stderr(&output);
    assert!(log.contains("Running [run-1]"), "{log}");
    assert!(log.contains("Running [run-2]"), "{log}");
}

#[test]
fn plan_reports_run_steps_native_and_refuses_without_the_sandbox() {
    let (_dir, project) = project("runs");
    let native = |plan: &serde_json::Value, id: &str| {
        cogpack::plan_step(plan, id)["native"]["status"].clone()
    };
    let with_sandbox = cogpack::plan_json(&project, &[]);
    for id in ["run-1", "run-2", "run-3"] {
        assert_eq!(native(&with_sandbox, id), json!("native"), "{id}");
    }
    let without = cogpack::plan_json(&project, &[("COGPACK_SANDBOX", "0")]);
    assert_ne!(native(&without, "run-1"), json!("native"));
    let store = common::scratch_dir("refused-store");
    let mut command = std::process::Command::new(cogpack::cogpack_bin());
    let refused = command
        .args(["build", "--use-cog-base-image=false"])
        .current_dir(&project)
        .env("COGPACK_SANDBOX", "0")
        .env("COGPACK_HOME", store.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let log = stderr(&refused);
    assert!(
        log.contains("[run-1]") && log.contains("--backend docker"),
        "{log}"
    );
    assert!(log.contains("nothing was downloaded or built"), "{log}");
}

#[test]
fn failing_run_item_stops_the_build_with_its_exit_code_and_output() {
    let world = World::new();
    let (_dir, project) = project("runs");
    std::fs::write(
        project.join("cog.yaml"),
        "build:\n  python_version: \"3.11\"\n  python_requirements: requirements.txt\n  sdk_version: \"0.23.1\"\n  run:\n    - echo about-to-fail && ls /no/such/dir && echo never\n    - echo not-reached\npredict: \"predict.py:Predictor\"\n",
    )
    .unwrap();
    let image = world.image("test/fails:v1");
    let output = world.build_push_slim(&project, &image);
    let log = check_failed_run_item(&output, 2);
    assert!(log.contains("No such file or directory"), "{log}");
    assert!(!log.contains("not-reached"), "{log}");
    assert!(
        runner::pull(&image).is_err(),
        "an image was pushed for a failed build"
    );
    let images =
        std::fs::read_to_string(world.store.path().join("images.json")).unwrap_or_default();
    assert!(!images.contains("test/fails"), "image recorded: {images}");
    assert_no_sandbox_leftovers(world.store.path());
}

#[test]
fn system_packages_are_installed_with_apt_and_load_at_predict_time() {
    let world = World::new();
    let (_dir, project) = project("apt");
    let image = world.image("test/apt:v1");
    let output = world.build_push_slim(&project, &image);
    let (log, pulled) = check_apt_build(&output, "build with system_packages", &image);
    assert!(
        log.contains("Running [system-packages] apt-get update -qq && apt-get install -qqy libyaml-0-2 && rm -rf /var/lib/apt/lists/*"),
        "{log}"
    );
    let lists = pulled.rootfs.join("var/lib/apt/lists");
    let leftover: Vec<_> = std::fs::read_dir(&lists)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name != "partial" && name != "lock" && name != "auxfiles")
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leftover.is_empty(),
        "apt lists left in the image: {leftover:?}"
    );
    assert_libyaml_prediction(&pulled, "loaded");
}

#[test]
fn run_item_downloads_a_tool_with_curl_from_a_loopback_server() {
    let world = World::new();
    let (_dir, project) = project("curl");
    let served = common::scratch_dir("served");
    std::fs::rename(project.join("tool"), served.path().join("tool")).unwrap();
    let server = FileServer::start(served.path());
    write_config_for_port(&project, server.port);
    let image = world.image("test/curl:v1");
    let output = world.build_push_slim(&project, &image);
    assert_success(&output, "build with a curl run item");
    let log = stderr(&output);
    assert!(log.contains("Running [tini] set -eux;"), "{log}");
    let pulled = runner::pull(&image).unwrap();
    assert!(
        pulled.rootfs.join("usr/bin/curl").is_file(),
        "curl not installed"
    );
    let model = pulled.run(&RunOptions::default()).unwrap();
    let (status, body) = model.predict(&json!({"text": "hi"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], "tool says hi", "{body}");
}

/// A pure-Python wheel `greetpkg 1.0.0` written with Python's zipfile.
fn write_greet_wheel(dir: &Path) -> String {
    let name = "greetpkg-1.0.0-py3-none-any.whl";
    let script = r#"
import base64, hashlib, sys, zipfile
files = {
    "greetpkg/__init__.py": b"MARK = 'from-loopback-index'\n",
    "greetpkg-1.0.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: greetpkg\nVersion: 1.0.0\n",
    "greetpkg-1.0.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = ""
for path, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record += f"{path},sha256={digest},{len(data)}\n"
record += "greetpkg-1.0.0.dist-info/RECORD,,\n"
files["greetpkg-1.0.0.dist-info/RECORD"] = record.encode()
with zipfile.ZipFile(sys.argv[1], "w") as wheel:
    for path, data in files.items():
        wheel.writestr(path, data)
"#;
    common::run_ok(
        std::process::Command::new("python3")
            .args(["-c", script])
            .arg(dir.join(name)),
    );
    name.to_string()
}

/// A bare git repository (served over dumb HTTP) holding `greeting.txt`.
fn write_git_repo(served: &Path, work: &Path) {
    let git = |dir: &Path, args: &[&str]| {
        common::run_ok(
            std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .current_dir(dir),
        );
    };
    let src = work.join("greeting-src");
    std::fs::create_dir_all(&src).unwrap();
    git(&src, &["init", "-q"]);
    std::fs::write(src.join("greeting.txt"), "Hello from git\n").unwrap();
    git(&src, &["add", "greeting.txt"]);
    git(&src, &["commit", "-q", "-m", "greeting"]);
    git(
        work,
        &["clone", "-q", "--bare", "greeting-src", "greeting.git"],
    );
    git(&work.join("greeting.git"), &["update-server-info"]);
    std::fs::rename(work.join("greeting.git"), served.join("greeting.git")).unwrap();
}

#[test]
fn git_from_system_packages_clones_and_pip_installs_from_loopback_servers() {
    let world = World::new();
    let (dir, project) = project("git");
    let served = common::scratch_dir("served");
    write_git_repo(served.path(), dir.path());
    let wheel = write_greet_wheel(served.path());
    let index = served.path().join("simple/greetpkg");
    std::fs::create_dir_all(&index).unwrap();
    std::fs::write(
        index.join("index.html"),
        format!("<html><body><a href=\"../../{wheel}\">{wheel}</a></body></html>\n"),
    )
    .unwrap();
    let server = FileServer::start(served.path());
    write_config_for_port(&project, server.port);
    let image = world.image("test/git:v1");
    let output = world.build_push_slim(&project, &image);
    assert_success(&output, "build with git clone and pip install");
    let pulled = runner::pull(&image).unwrap();
    assert!(
        pulled.rootfs.join("usr/bin/git").is_file(),
        "git not installed"
    );
    assert!(!pulled.rootfs.join("opt/greeting/.git").exists());
    let model = pulled.run(&RunOptions::default()).unwrap();
    let (status, body) = model.predict(&json!({"name": "Ada"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["output"], "Hello from git Ada from-loopback-index",
        "{body}"
    );
}

#[test]
fn sandbox_that_cannot_mount_fails_before_any_download() {
    let world = World::new();
    let (_dir, project) = project("runs");
    // overlayfs options cannot name a directory whose path holds a colon,
    // so the up-front probe fails for a store there.
    let store = common::scratch_dir("colon");
    let odd_store = store.path().join("store:odd");
    let image = world.image("test/unavailable:v1");
    let output = world.cogpack_with_store(
        &project,
        &["build", "-t", &image, "--use-cog-base-image=false"],
        &odd_store,
    );
    assert!(!output.status.success(), "build must fail");
    let log = stderr(&output);
    assert!(
        log.contains("the build sandbox cannot run on this machine"),
        "{log}"
    );
    assert!(log.contains("--backend docker"), "{log}");
    assert!(
        !log.contains("Downloading"),
        "work started before the check:\n{log}"
    );
    assert!(!log.contains("Running ["), "{log}");
}

#[test]
fn custom_ca_certificate_is_installed_with_update_ca_certificates() {
    let world = World::new();
    let (dir, project) = project("runs");
    std::fs::write(
        project.join("cog.yaml"),
        "build:\n  python_version: \"3.11\"\n  python_requirements: requirements.txt\n  sdk_version: \"0.23.1\"\npredict: \"predict.py:Predictor\"\n",
    )
    .unwrap();
    let cert = dir.path().join("ca.pem");
    common::run_ok(
        std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=cogpack sandbox test CA", "-keyout"])
            .arg(dir.path().join("ca.key"))
            .arg("-out")
            .arg(&cert),
    );
    let pem = std::fs::read_to_string(&cert).unwrap();
    let image = world.image("test/ca:v1");
    let mirror_docker = format!("docker.io={}", world.registry.host);
    let output = std::process::Command::new(cogpack::cogpack_bin())
        .args([
            "build",
            "--push",
            "-t",
            &image,
            "--use-cog-base-image=false",
        ])
        .args(["--registry-mirror", &mirror_docker, "--progress", "plain"])
        .current_dir(&project)
        .env("COGPACK_HOME", world.store.path())
        .env("COGPACK_TINI_URL", &world.tini.url)
        .env("COGPACK_TINI_SHA256", &world.tini.sha256)
        .env("DOCKER_CONFIG", world.store.path().join("docker-config"))
        .env("COGLET_WHEEL", "pypi:0.23.1")
        .env("COG_CA_CERT", &cert)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert_success(&output, "build with COG_CA_CERT");
    let log = stderr(&output);
    assert!(
        log.contains("Running [ca-cert] cp /tmp/cog-ca-cert.crt"),
        "{log}"
    );
    let pulled = runner::pull(&image).unwrap();
    let installed = pulled
        .rootfs
        .join("usr/local/share/ca-certificates/cog-ca-cert.crt");
    assert_eq!(
        std::fs::read_to_string(&installed).unwrap().trim(),
        pem.trim()
    );
    let bundle =
        std::fs::read_to_string(pulled.rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let body = pem.lines().nth(1).unwrap();
    assert!(
        bundle.contains(body),
        "certificate not in the system bundle"
    );
    assert!(
        !pulled.rootfs.join("tmp/cog-ca-cert.crt").exists(),
        "the bound certificate leaked into /tmp"
    );
    let env = pulled.env();
    assert!(
        env.iter()
            .any(|(k, v)| k == "SSL_CERT_FILE" && v == "/etc/ssl/certs/ca-certificates.crt"),
        "{env:?}"
    );
}

#[test]
fn run_item_on_the_cog_base_image_sees_every_base_layer() {
    let world = World::new();
    let (_dir, project) = project("runs");
    std::fs::write(
        project.join("cog.yaml"),
        "build:\n  python_version: \"3.11\"\n  python_requirements: requirements.txt\n  sdk_version: \"0.23.1\"\n  run:\n    - test -x /sbin/tini && uv --version > /etc/uv-version.txt\npredict: \"predict.py:Predictor\"\n",
    )
    .unwrap();
    let image = world.image("test/cogbase:v1");
    let output = world.cogpack(&project, &["build", "--push", "-t", &image]);
    assert_success(&output, "cog-base build with a run item");
    let log = stderr(&output);
    assert!(log.contains("cog-base"), "{log}");
    assert!(
        !log.contains("Running [tini]"),
        "cog-base needs no curl step:\n{log}"
    );
    let pulled = runner::pull(&image).unwrap();
    let version = std::fs::read_to_string(pulled.rootfs.join("etc/uv-version.txt")).unwrap();
    assert!(version.starts_with("uv "), "{version}");
    let model = pulled.run(&RunOptions::default()).unwrap();
    let (status, body) = model.predict(&json!({"text": "base"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], "hello base", "{body}");
}

/// Writes `cog.yaml` from the fixture's `cog.yaml.in` with `@PORT@` set to
/// the loopback server's port, and removes the template.
fn write_config_for_port(project: &std::path::Path, port: u16) {
    let template = std::fs::read_to_string(project.join("cog.yaml.in")).unwrap();
    std::fs::write(
        project.join("cog.yaml"),
        template.replace("@PORT@", &port.to_string()),
    )
    .unwrap();
    std::fs::remove_file(project.join("cog.yaml.in")).unwrap();
}
