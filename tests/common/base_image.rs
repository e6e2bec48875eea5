//! Stand-in base images built from Debian packages, so tests never pull from a public registry:
//!
//! * `library/python:3.11-slim` — a Debian bookworm minbase rootfs with python3, pip and
//!   ca-certificates, made to look like python:3.11-slim (`python`/`python3`/`pip` in
//!   /usr/local/bin, /usr/local/lib/python3.11/site-packages on `sys.path`, no PEP 668 marker,
//!   PATH/LANG env, `CMD ["python3"]`).
//! * `cog-base:python3.11` — the same rootfs plus a layer with `/sbin/tini` (Debian's
//!   tini-static) and `uv`/`uvx` in /usr/local/bin, `ENTRYPOINT ["/sbin/tini","--"]`, cog's four
//!   preamble env vars and `UV_SYSTEM_PYTHON=true`. It stands in for `r8.im/cog-base:python3.11`
//!   through a registry mirror.
//! * `nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04` — a Debian bookworm minbase rootfs without
//!   Python (only the shared libraries a relocated CPython needs) and the CUDA image's env, for
//!   cog's path B; built into its own layout ([`push_nvidia_cuda`]).
//!
//! The first two live in one OCI layout cached under [`super::cache_dir`], keyed by a hash of
//! every input; concurrent test processes serialise the build with a file lock. Pushing copies
//! the cached layout to a test registry with skopeo.

use super::{cache_dir, deterministic_tar, run_ok};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Repository and tag of the python:3.11-slim stand-in inside a test registry.
pub const PYTHON_SLIM: &str = "library/python:3.11-slim";
/// Repository and tag of the cog-base stand-in inside a test registry.
pub const COG_BASE: &str = "cog-base:python3.11";

/// Layout tag holding the python:3.11-slim stand-in.
const PYTHON_SLIM_LAYOUT_TAG: &str = "python-3.11-slim";
/// Layout tag holding the cog-base stand-in.
const COG_BASE_LAYOUT_TAG: &str = "cog-base-python3.11";
/// Bumped whenever the build recipe changes in a way the other inputs do not capture.
const RECIPE_VERSION: &str = "stand-in-base-v1";
const DEBIAN_SUITE: &str = "bookworm";
const PACKAGES: &str = "python3,python3-pip,ca-certificates";
/// All timestamps of the stand-ins: 2023-11-14T22:13:20Z.
const SOURCE_DATE_EPOCH: &str = "1700000000";
const CREATED: &str = "2023-11-14T22:13:20Z";
/// The uv release cog copies into its images (`COPY --from=…/uv:0.9.26`).
const IMAGE_UV_VERSION: &str = "0.9.26";
/// Debian's statically linked tini, installed by the `tini` package.
const HOST_TINI_STATIC: &str = "/usr/bin/tini-static";

const PYTHON_SLIM_ENV: &[&str] = &[
    "PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "PYTHON_VERSION=3.11.2",
];
const COG_BASE_EXTRA_ENV: &[&str] = &[
    "DEBIAN_FRONTEND=noninteractive",
    "PYTHONUNBUFFERED=1",
    "LD_LIBRARY_PATH=:/usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib64:/usr/local/nvidia/bin",
    "NVIDIA_DRIVER_CAPABILITIES=all",
    "UV_SYSTEM_PYTHON=true",
];

/// mmdebstrap customize hook: makes the Debian rootfs look like python:3.11-slim.
const CUSTOMIZE_HOOK: &str = r#"#!/bin/sh
set -eu
root="$1"
mkdir -p "$root/usr/local/bin" "$root/usr/local/lib/python3.11/site-packages"
ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3.11"
ln -sf python3.11 "$root/usr/local/bin/python3"
ln -sf python3.11 "$root/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip3"
ln -sf pip3 "$root/usr/local/bin/pip"
echo 'import site; site.addsitedir("/usr/local/lib/python3.11/site-packages")' \
  > "$root/usr/lib/python3/dist-packages/zz-usr-local-site-packages.pth"
rm -f "$root/usr/lib/python3.11/EXTERNALLY-MANAGED"
"#;

/// An image pushed to a test registry.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// Full reference, `127.0.0.1:PORT/repo:tag`.
    pub reference: String,
    /// Manifest digest as the registry stores it, `sha256:…`.
    pub digest: String,
}

/// Pushes the python:3.11-slim stand-in to the registry at `registry_host` (`127.0.0.1:PORT`)
/// as [`PYTHON_SLIM`], building or reusing the cached layout first.
pub fn push_python_slim(registry_host: &str) -> PushedImage {
    push(PYTHON_SLIM_LAYOUT_TAG, registry_host, PYTHON_SLIM)
}

/// Pushes the cog-base stand-in to the registry at `registry_host` as [`COG_BASE`].
pub fn push_cog_base(registry_host: &str) -> PushedImage {
    push(COG_BASE_LAYOUT_TAG, registry_host, COG_BASE)
}

/// The cached OCI layout holding both stand-ins (tags `python-3.11-slim` and
/// `cog-base-python3.11`), built on first use. Treat it as read-only.
pub fn stand_in_layout() -> PathBuf {
    cached_layout("base", &inputs_key(), build_into)
}

/// The OCI layout `CACHE/<name>-<key>/oci`, built by `build` (into a
/// directory it then renames there) unless a finished one is there; the
/// build holds a file lock so concurrent test processes build it once.
fn cached_layout(name: &str, key: &str, build: fn(&Path)) -> PathBuf {
    let finished = cache_dir().join(format!("{name}-{key}"));
    if finished.join("oci/index.json").exists() {
        return finished.join("oci");
    }
    let lock_path = cache_dir().join(format!("{name}-{key}.lock"));
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("create lock {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));
    if !finished.join("oci/index.json").exists() {
        build(&finished);
    }
    finished.join("oci")
}

/// The running hash of `parts`, each followed by a NUL byte.
fn hash_parts(parts: &[&str]) -> Sha256 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher
}

/// A cache key: the first 16 hex digits of a finished hash.
fn key_of(hasher: Sha256) -> String {
    hex::encode(hasher.finalize())[..16].to_string()
}

fn push(layout_tag: &str, registry_host: &str, repo_tag: &str) -> PushedImage {
    push_layout(&stand_in_layout(), layout_tag, registry_host, repo_tag)
}

/// Copies `layout:layout_tag` to `registry_host/repo_tag` with skopeo.
fn push_layout(
    layout: &Path,
    layout_tag: &str,
    registry_host: &str,
    repo_tag: &str,
) -> PushedImage {
    let reference = format!("{registry_host}/{repo_tag}");
    let scratch = tempfile::tempdir().expect("temp dir for digest file");
    let digest_file = scratch.path().join("digest");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false", "--digestfile"])
            .arg(&digest_file)
            .arg(format!("oci:{}:{layout_tag}", layout.display()))
            .arg(format!("docker://{reference}")),
    );
    let digest = fs::read_to_string(&digest_file).expect("skopeo wrote the digest file");
    PushedImage {
        reference,
        digest: digest.trim().to_string(),
    }
}

/// Hash over everything that determines the stand-ins' bytes.
fn inputs_key() -> String {
    let tini = fs::read(HOST_TINI_STATIC).unwrap_or_else(|e| {
        panic!("read {HOST_TINI_STATIC}: {e} (hint: `apt-get install tini` or `bash .ci/run`)")
    });
    let mut hasher = hash_parts(&[
        RECIPE_VERSION,
        DEBIAN_SUITE,
        PACKAGES,
        SOURCE_DATE_EPOCH,
        CREATED,
        IMAGE_UV_VERSION,
        CUSTOMIZE_HOOK,
        &PYTHON_SLIM_ENV.join("\n"),
        &COG_BASE_EXTRA_ENV.join("\n"),
    ]);
    hasher.update(Sha256::digest(&tini));
    key_of(hasher)
}

/// Builds both stand-ins in a scratch dir next to `finished`, then renames it into place.
fn build_into(finished: &Path) {
    build_in_scratch("base-build.", finished, |work| {
        let rootfs_tar = work.join("rootfs.tar");
        let hook = work.join("customize-hook.sh");
        fs::write(&hook, CUSTOMIZE_HOOK).expect("write customize hook");
        minbase_rootfs_tar(PACKAGES, Some(&hook), &rootfs_tar);
        let layout = work.join("oci");
        single_layer_image(
            &layout,
            &rootfs_tar,
            &SingleLayerImage {
                layout_tag: PYTHON_SLIM_LAYOUT_TAG,
                created_by: "mmdebstrap minbase python3 (stand-in)",
                cmd: "python3",
                env: PYTHON_SLIM_ENV,
            },
        );
        build_cog_base(work, &layout);
        fs::remove_file(&rootfs_tar).expect("remove rootfs tar");
    });
}

/// Runs `build` in a scratch directory next to the cache, then renames that
/// directory to `finished` (so a half-built layout is never found there).
fn build_in_scratch(prefix: &str, finished: &Path, build: impl FnOnce(&Path)) {
    let scratch = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(cache_dir())
        .expect("create base build dir");
    build(scratch.path());
    let _ = fs::remove_dir_all(finished);
    fs::rename(scratch.keep(), finished).expect("move finished stand-in layout into place");
}

/// A Debian minbase rootfs of [`DEBIAN_SUITE`] with `packages` (comma
/// separated), without man pages, locales or docs but their copyright
/// files, written as a tar to `out` with mmdebstrap; `hook` (a shell
/// script) customizes the rootfs when given.
fn minbase_rootfs_tar(packages: &str, hook: Option<&Path>, out: &Path) {
    let mut mmdebstrap = Command::new("mmdebstrap");
    mmdebstrap
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .stdin(Stdio::null())
        .args(["--quiet", "--variant=minbase", "--format=tar"])
        .arg(format!("--include={packages}"))
        .args([
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        ]);
    if let Some(hook) = hook {
        mmdebstrap.arg(format!("--customize-hook=sh {} \"$1\"", hook.display()));
    }
    run_ok(mmdebstrap.arg(DEBIAN_SUITE).arg(out));
}

/// What [`single_layer_image`] writes besides the rootfs layer.
struct SingleLayerImage<'a> {
    /// Tag of the image inside the layout.
    layout_tag: &'a str,
    /// The layer's `created_by` history entry.
    created_by: &'a str,
    /// The image's `CMD`.
    cmd: &'a str,
    /// The image's env, `KEY=value`.
    env: &'a [&'a str],
}

/// Creates the OCI layout `layout` with one linux/amd64 image of the single
/// layer `rootfs_tar`, dated [`CREATED`].
fn single_layer_image(layout: &Path, rootfs_tar: &Path, spec: &SingleLayerImage) {
    let image = format!("{}:{}", layout.display(), spec.layout_tag);
    run_ok(Command::new("umoci").args(["init", "--layout"]).arg(layout));
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(
        Command::new("umoci")
            .args(["raw", "add-layer", "--image", &image])
            .args(["--history.created", CREATED])
            .args(["--history.created_by", spec.created_by])
            .arg(rootfs_tar),
    );
    let mut config = Command::new("umoci");
    config
        .args(["config", "--image", &image, "--no-history"])
        .args([
            "--os",
            "linux",
            "--architecture",
            "amd64",
            "--created",
            CREATED,
        ])
        .args(["--config.cmd", spec.cmd]);
    for env in spec.env {
        config.args(["--config.env", env]);
    }
    run_ok(&mut config);
}

fn build_cog_base(work: &Path, layout: &Path) {
    let extras = work.join("cog-base-extras");
    stage_cog_base_extras(work, &extras);
    let extras_tar = work.join("cog-base-extras.tar");
    deterministic_tar(&extras, &extras_tar);
    let from = format!("{}:{PYTHON_SLIM_LAYOUT_TAG}", layout.display());
    let image = format!("{}:{COG_BASE_LAYOUT_TAG}", layout.display());
    run_ok(
        Command::new("umoci")
            .args([
                "raw",
                "add-layer",
                "--image",
                &from,
                "--tag",
                COG_BASE_LAYOUT_TAG,
            ])
            .args(["--history.created", CREATED])
            .args(["--history.created_by", "tini + uv (cog-base stand-in)"])
            .arg(&extras_tar),
    );
    let mut config = Command::new("umoci");
    config
        .args([
            "config",
            "--image",
            &image,
            "--no-history",
            "--created",
            CREATED,
        ])
        .args(["--clear", "config.cmd"])
        .args([
            "--config.entrypoint",
            "/sbin/tini",
            "--config.entrypoint",
            "--",
        ]);
    for env in COG_BASE_EXTRA_ENV {
        config.args(["--config.env", env]);
    }
    run_ok(&mut config);
}

/// Fills `extras` with `sbin/tini` and `usr/local/bin/{uv,uvx}` (uv from its pinned wheel).
fn stage_cog_base_extras(work: &Path, extras: &Path) {
    let sbin = extras.join("sbin");
    let bin = extras.join("usr/local/bin");
    fs::create_dir_all(&sbin).expect("create extras/sbin");
    fs::create_dir_all(&bin).expect("create extras/usr/local/bin");
    fs::copy(HOST_TINI_STATIC, sbin.join("tini")).expect("copy tini-static");
    let uv_prefix = work.join("uv-wheel");
    run_ok(
        Command::new("uv")
            .args(["pip", "install", "--quiet", "--link-mode=copy", "--prefix"])
            .arg(&uv_prefix)
            .args([
                "--python-platform",
                "x86_64-manylinux_2_28",
                "--python-version",
                "3.11",
            ])
            .args(["--only-binary", ":all:", "--no-deps"])
            .arg(format!("uv=={IMAGE_UV_VERSION}")),
    );
    for tool in ["uv", "uvx"] {
        fs::copy(uv_prefix.join("bin").join(tool), bin.join(tool))
            .unwrap_or_else(|e| panic!("copy {tool} from the uv wheel: {e}"));
    }
}

/// Repository and tag of the `nvidia/cuda` stand-in inside a test registry: the tag cog's
/// plan picks for a GPU model that pins no torch or TensorFlow (CUDA 11.8).
pub const NVIDIA_CUDA: &str = "nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04";

/// Layout tag of the `nvidia/cuda` stand-in (in its own layout, so the other stand-ins keep
/// their cache key).
const NVIDIA_CUDA_LAYOUT_TAG: &str = "nvidia-cuda-11.8";
/// Bumped whenever the `nvidia/cuda` stand-in's recipe changes.
const NVIDIA_CUDA_RECIPE: &str = "nvidia-cuda-stand-in-v1";
/// No Python: the shared libraries a relocated CPython 3.11 (Debian's build) and its
/// extension modules load, which the real CUDA devel images also carry.
const NVIDIA_CUDA_PACKAGES: &str =
    "libexpat1,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,libuuid1,zlib1g";
const NVIDIA_CUDA_ENV: &[&str] = &[
    "PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "NVIDIA_VISIBLE_DEVICES=all",
    "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
    "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
    "CUDA_VERSION=11.8.0",
];

/// Pushes the `nvidia/cuda` stand-in (a Debian minbase rootfs without Python, with the CUDA
/// image's env) to the registry at `registry_host` as [`NVIDIA_CUDA`].
pub fn push_nvidia_cuda(registry_host: &str) -> PushedImage {
    push_layout(
        &nvidia_cuda_layout(),
        NVIDIA_CUDA_LAYOUT_TAG,
        registry_host,
        NVIDIA_CUDA,
    )
}

/// The cached OCI layout holding the `nvidia/cuda` stand-in, built on first use.
fn nvidia_cuda_layout() -> PathBuf {
    let key = key_of(hash_parts(&[
        NVIDIA_CUDA_RECIPE,
        DEBIAN_SUITE,
        NVIDIA_CUDA_PACKAGES,
        SOURCE_DATE_EPOCH,
        CREATED,
        &NVIDIA_CUDA_ENV.join("\n"),
    ]));
    cached_layout("cuda-base", &key, build_nvidia_cuda_into)
}

fn build_nvidia_cuda_into(finished: &Path) {
    build_in_scratch("cuda-base-build.", finished, |work| {
        let rootfs_tar = work.join("rootfs.tar");
        minbase_rootfs_tar(NVIDIA_CUDA_PACKAGES, None, &rootfs_tar);
        single_layer_image(
            &work.join("oci"),
            &rootfs_tar,
            &SingleLayerImage {
                layout_tag: NVIDIA_CUDA_LAYOUT_TAG,
                created_by: "mmdebstrap minbase, no python (nvidia/cuda stand-in)",
                cmd: "/bin/bash",
                env: NVIDIA_CUDA_ENV,
            },
        );
        fs::remove_file(&rootfs_tar).expect("remove rootfs tar");
    });
}
