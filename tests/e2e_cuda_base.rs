//! End to end on cog's path B: a GPU model without a cog-base image builds
//! on `nvidia/cuda` (here a stand-in without Python, reached through the
//! registry mirror). cog's apt prerequisites and `uv python install` run in
//! the build sandbox; uv downloads the interpreter from a loopback server
//! named by `UV_PYTHON_DOWNLOADS_JSON_URL` (forwarded into sandbox steps), the
//! requirements and the Cog runtime are installed on the host into that
//! uv-managed Python, and the pulled image serves a prediction.

mod common;

use common::base_image;
use common::cogpack::{self as cogpack, World};
use common::file_server::FileServer;
use common::runner::{self, RunOptions};
use common::stderr;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Python the downloads list offers: Debian bookworm's CPython.
const PYTHON_FULL_VERSION: &str = "3.11.2";
/// The python-build-standalone release tag written into the downloads list.
const PYTHON_BUILD: &str = "20230507";
/// Where uv installs it for root inside the image.
const UV_PYTHON_PREFIX: &str = "root/.local/share/uv/python/cpython-3.11.2-linux-x86_64-gnu";

/// A loopback HTTP server offering one CPython archive in
/// python-build-standalone's layout and a uv downloads list naming it.
struct PythonDownloads {
    _server: FileServer,
    /// URL of the downloads list (`UV_PYTHON_DOWNLOADS_JSON_URL`).
    list_url: String,
    _dir: tempfile::TempDir,
}

/// Lays out Debian's CPython 3.11 (package python3.11) as python-build-standalone's
/// `install_only` tree: `python/bin/python3.11` and `python/lib/python3.11/…`. The
/// interpreter finds its prefix from its own location; Debian's `site` does not look
/// in `lib/python3.11/site-packages`, so a `.pth` file in a directory it does search
/// adds it, as upstream CPython would. Absolute symlinks (to /etc) are dropped: uv
/// refuses archives that point outside themselves.
fn python_tree(root: &Path) {
    let interpreter = Path::new("/usr/bin/python3.11");
    let stdlib = Path::new("/usr/lib/python3.11");
    assert!(
        interpreter.is_file() && stdlib.is_dir(),
        "Debian's python3.11 is needed to build the relocatable interpreter (hint: `apt-get install python3.11`)"
    );
    let bin = root.join("python/bin");
    let lib = root.join("python/lib");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(interpreter, bin.join("python3.11")).unwrap();
    std::os::unix::fs::symlink("python3.11", bin.join("python3")).unwrap();
    std::os::unix::fs::symlink("python3.11", bin.join("python")).unwrap();
    let copied = Command::new("sh")
        .arg("-c")
        .arg(
            "tar -C /usr/lib -cf - --exclude=__pycache__ --exclude=python3.11/test \
             --exclude=python3.11/dist-packages --exclude=python3.11/site-packages \
             --exclude=python3.11/EXTERNALLY-MANAGED python3.11 | tar -C \"$1\" -xf -",
        )
        .arg("sh")
        .arg(&lib)
        .status()
        .unwrap();
    assert!(copied.success(), "copying the standard library failed");
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        if entry.path_is_symlink() && std::fs::read_link(entry.path()).unwrap().is_absolute() {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    std::fs::create_dir_all(lib.join("python3.11/site-packages")).unwrap();
    let searched = lib.join("python3/dist-packages");
    std::fs::create_dir_all(&searched).unwrap();
    std::fs::write(
        searched.join("site-packages.pth"),
        "import os, site, sys; site.addsitedir(os.path.join(sys.prefix, 'lib', 'python%d.%d' % sys.version_info[:2], 'site-packages'))\n",
    )
    .unwrap();
}

/// Checks that the relocated interpreter runs from its new place and finds its
/// standard library, extension modules and site-packages.
fn check_relocated(root: &Path) {
    let python = root.join("python/bin/python3.11");
    let output = Command::new(&python)
        .args([
            "-I",
            "-c",
            "import sys, ssl, ctypes, json, site; print(sys.prefix); print(site.getsitepackages())",
        ])
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "relocated python fails: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.starts_with(&root.join("python").display().to_string()),
        "{text}"
    );
    let without_isolation = Command::new(&python)
        .args(["-c", "import sys; print(sys.path[-1])"])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&without_isolation.stdout)
            .trim()
            .ends_with("python/lib/python3.11/site-packages"),
        "{}",
        String::from_utf8_lossy(&without_isolation.stdout)
    );
}

impl PythonDownloads {
    /// Builds the archive and list and serves them on a free loopback port.
    fn start() -> PythonDownloads {
        let dir = common::scratch_dir("python-downloads");
        let tree = dir.path().join("tree");
        python_tree(&tree);
        check_relocated(&tree);
        let archive_name = format!(
            "cpython-{PYTHON_FULL_VERSION}+{PYTHON_BUILD}-x86_64-unknown-linux-gnu-install_only.tar.gz"
        );
        let serve = dir.path().join("serve");
        std::fs::create_dir_all(&serve).unwrap();
        let archive = serve.join(&archive_name);
        common::run_ok(
            Command::new("tar")
                .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
                .arg("-czf")
                .arg(&archive)
                .arg("-C")
                .arg(&tree)
                .arg("python"),
        );
        let sha256 = hex::encode(Sha256::digest(std::fs::read(&archive).unwrap()));
        let server = FileServer::start(&serve);
        let (major, minor, patch) = (3, 11, 2);
        let list = json!({
            format!("cpython-{PYTHON_FULL_VERSION}-linux-x86_64-gnu"): {
                "name": "cpython",
                "arch": {"family": "x86_64", "variant": null},
                "os": "linux",
                "libc": "gnu",
                "major": major,
                "minor": minor,
                "patch": patch,
                "prerelease": "",
                "url": server.url(&archive_name),
                "sha256": sha256,
                "variant": null,
                "build": PYTHON_BUILD,
            }
        });
        std::fs::write(serve.join("downloads.json"), list.to_string()).unwrap();
        PythonDownloads {
            list_url: server.url("downloads.json"),
            _server: server,
            _dir: dir,
        }
    }
}

fn project() -> (tempfile::TempDir, PathBuf) {
    common::project_copy("fixtures/e2e/cuda-base")
}

/// `cogpack build --push` on path B with the downloads list forwarded.
fn build(world: &World, downloads: &PythonDownloads, project: &Path, image: &str) -> Output {
    world.build_push_slim_with(
        project,
        image,
        &[],
        &[("UV_PYTHON_DOWNLOADS_JSON_URL", downloads.list_url.as_str())],
    )
}

#[test]
fn gpu_model_on_nvidia_cuda_installs_python_with_uv_and_serves_a_prediction() {
    let world = World::new();
    base_image::push_nvidia_cuda(&world.registry.host);
    let downloads = PythonDownloads::start();
    let (_dir, project) = project();
    let image = world.image("test/cuda-base:v1");
    let output = build(&world, &downloads, &project, &image);
    common::assert_success(&output, "path B build");
    let log = stderr(&output);
    assert!(
        log.contains(&format!("Using base image {}", base_image::NVIDIA_CUDA)),
        "{log}"
    );
    for running in ["Running [python-prerequisites]", "Running [python-install]"] {
        assert!(log.contains(running), "missing {running:?} in:\n{log}");
    }
    assert!(
        log.contains(&format!("Installed Python {PYTHON_FULL_VERSION}")),
        "{log}"
    );
    let prefix = format!("/{UV_PYTHON_PREFIX}");
    assert!(
        log.contains(&format!(
            "Installing Python packages into {prefix}/bin/python3.11"
        )),
        "{log}"
    );

    let pulled = runner::pull(&image).unwrap();
    let rootfs = &pulled.rootfs;
    let site_packages = rootfs
        .join(UV_PYTHON_PREFIX)
        .join("lib/python3.11/site-packages");
    for installed in ["yaml/__init__.py", "cog/__init__.py", "coglet"] {
        assert!(
            site_packages.join(installed).exists(),
            "{installed} is not in the uv-managed site-packages"
        );
    }
    assert!(!rootfs.join("usr/local/lib/python3.11").exists());
    for link in ["usr/local/bin/python", "usr/bin/python3"] {
        let target = std::fs::read_link(rootfs.join(link)).unwrap();
        assert!(
            target.to_string_lossy().ends_with("/bin/python3.11"),
            "{link} -> {}",
            target.display()
        );
    }
    for tool in ["usr/bin/curl", "usr/bin/git", "usr/bin/wget", "usr/bin/xz"] {
        assert!(
            rootfs.join(tool).exists(),
            "{tool} was not installed by cog's apt line"
        );
    }
    let env = pulled.env();
    let value = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(value("UV_PYTHON").as_deref(), Some("3.11"));
    assert!(
        value("PATH")
            .unwrap_or_default()
            .starts_with("/usr/local/bin:/usr/local/nvidia/bin"),
        "{env:?}"
    );
    assert_eq!(value("UV_PYTHON_DOWNLOADS_JSON_URL"), None);
    let config = pulled.label("run.cog.config").unwrap();
    assert!(config.contains("\"gpu\":true"), "{config}");
    let freeze = pulled.label("run.cog.pip_freeze").unwrap();
    assert!(freeze.contains("PyYAML==6.0.4"), "{freeze}");
    // charset-normalizer's console script runs the uv-managed interpreter.
    let script =
        std::fs::read_to_string(rootfs.join(UV_PYTHON_PREFIX).join("bin/normalizer")).unwrap();
    assert!(
        script.starts_with(&format!("#!{prefix}/bin/python3.11\n")),
        "{script}"
    );

    let model = pulled.run(&RunOptions::default()).unwrap();
    let (status, body) = model.predict(&json!({"text": "cuda"}));
    assert_eq!(status, 200, "{body}\n{}", model.log());
    assert_eq!(
        body["output"],
        format!("cuda from {prefix} (3.11)"),
        "{body}"
    );
    drop(model);

    // Unchanged: no step runs again, and the packages land in the same place.
    let again = build(
        &world,
        &downloads,
        &project,
        &world.image("test/cuda-base:v2"),
    );
    common::assert_success(&again, "second path B build");
    let log = stderr(&again);
    assert!(!log.contains("Running ["), "re-executed:\n{log}");
    assert!(!log.contains("  built "), "a layer was rebuilt:\n{log}");
}

#[test]
fn plan_reports_path_b_native_with_the_sandbox_and_refuses_without() {
    let (_dir, project) = project();
    let plan = |sandbox: &str| cogpack::plan_json(&project, &[("COGPACK_SANDBOX", sandbox)]);
    let status = |plan: &serde_json::Value, id: &str| {
        let step = cogpack::plan_step(plan, id);
        step["native"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let with = plan("1");
    assert_eq!(with["base"]["reference"], base_image::NVIDIA_CUDA);
    for (id, expected) in [
        ("python-prerequisites", "native"),
        ("python-install", "native"),
        ("requirements", "substituted"),
        ("cog-runtime", "substituted"),
    ] {
        assert_eq!(status(&with, id), expected, "{id}");
    }
    let without = plan("0");
    for id in [
        "python-prerequisites",
        "python-install",
        "requirements",
        "cog-runtime",
    ] {
        assert_eq!(status(&without, id), "unsupported", "{id}");
    }
}

/// A loopback find-links server holding the sdist of `fixtures/e2e/cext-sdist`, a package
/// with a C extension and no wheel; killed on drop.
struct SdistServer {
    _server: FileServer,
    /// The find-links URL.
    url: String,
    _dir: tempfile::TempDir,
}

impl SdistServer {
    fn start() -> SdistServer {
        let dir = common::scratch_dir("sdist");
        let source = dir.path().join("source");
        common::copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/e2e/cext-sdist"),
            &source,
        );
        let serve = dir.path().join("serve");
        common::run_ok(
            Command::new("uv")
                .args(["build", "--sdist", "--out-dir"])
                .arg(&serve)
                .arg(&source),
        );
        let server = FileServer::start(&serve);
        SdistServer {
            url: server.url(""),
            _server: server,
            _dir: dir,
        }
    }
}

#[test]
fn sdist_that_needs_a_compiler_falls_back_to_cogs_pip_command_in_the_sandbox() {
    let world = World::new();
    let sdists = SdistServer::start();
    let (_dir, project) = common::project_copy("fixtures/e2e/cext-model");
    let requirements = project.join("requirements.txt");
    let text = std::fs::read_to_string(&requirements).unwrap();
    std::fs::write(&requirements, text.replace("FIND_LINKS_URL", &sdists.url)).unwrap();

    let plan = cogpack::plan_json(&project, &[]);
    let how = cogpack::plan_step(&plan, "requirements")["native"]["how"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(how.contains("cog's own pip command"), "{how}");

    // pip and uv reach the package index from inside the sandbox. Behind a
    // TLS-intercepting proxy (the host names its CA bundle in SSL_CERT_FILE)
    // the image must trust it: cog's COG_CA_CERT, as a user there would do.
    let ca_bundle = std::env::var("SSL_CERT_FILE").unwrap_or_default();
    let env: Vec<(&str, &str)> = if ca_bundle.is_empty() {
        Vec::new()
    } else {
        vec![("COG_CA_CERT", ca_bundle.as_str())]
    };
    let image = world.image("test/cext:v1");
    let output = world.build_push_slim_with(&project, &image, &[], &env);
    common::assert_success(&output, "fallback build");
    let log = stderr(&output);
    assert!(
        log.contains("cogpack-cext must be compiled from source"),
        "{log}"
    );
    assert!(
        log.contains("Running [requirements] uv run pip install --cache-dir /root/.cache/pip -r /tmp/requirements.txt"),
        "{log}"
    );
    assert!(
        log.contains("Running [cog-runtime] uv pip install --no-cache"),
        "{log}"
    );
    assert!(log.contains("Running [ldconfig]"), "{log}");

    let pulled = runner::pull(&image).unwrap();
    let freeze = pulled.label("run.cog.pip_freeze").unwrap();
    assert!(freeze.contains("cogpack-cext==0.1.0"), "{freeze}");
    assert!(freeze.contains("cog==0.23.1"), "{freeze}");
    assert!(!pulled.rootfs.join("tmp/requirements.txt").exists());
    assert!(!pulled.rootfs.join("cogpack-pip-freeze.txt").exists());
    let model = pulled.run(&RunOptions::default()).unwrap();
    let (status, body) = model.predict(&json!({"text": "answer"}));
    assert_eq!(status, 200, "{body}\n{}", model.log());
    assert_eq!(body["output"], "answer 42", "{body}");
    drop(model);

    // Unchanged: the sandboxed installs and the pip freeze come from the step cache.
    let again = world.build_push_slim_with(&project, &world.image("test/cext:v2"), &[], &env);
    common::assert_success(&again, "second fallback build");
    let log = stderr(&again);
    assert!(!log.contains("Running ["), "re-executed:\n{log}");
    let pulled_again = runner::pull(&world.image("test/cext:v2")).unwrap();
    assert_eq!(pulled_again.manifest_digest, pulled.manifest_digest);
}
