//! Build steps: what each step produces, in cog's order, and which engines can produce it.

use serde::Serialize;

use crate::config::RunMount;

/// The uv image whose `/uv` and `/uvx` binaries cog copies into every image.
pub const UV_IMAGE: &str = "ghcr.io/astral-sh/uv:0.9.26";

/// The tini release cog downloads on paths A and B.
pub const TINI_VERSION: &str = "v0.19.0";

/// The `CFLAGS` value cog sets around every pip/uv install.
pub const INSTALL_CFLAGS: &str = "-O3 -funroll-loops -fno-strict-aliasing -flto -S";

/// Where staged local requirement artifacts appear inside the build container.
pub const LOCAL_ARTIFACTS_CONTAINER_DIR: &str = "/tmp/local_package_artifacts";

/// Name of the staging directory for local artifacts inside `.cog/build/`.
pub const LOCAL_ARTIFACTS_STAGING_DIR: &str = "local_package_artifacts";

/// File name of the injected CA certificate in `.cog/build/` and `/tmp`.
pub const CA_CERT_FILE_NAME: &str = "cog-ca-cert.crt";

/// The system certificate bundle path after `update-ca-certificates`.
pub const SYSTEM_CERT_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the plan says of the requirements step when the build sandbox is
/// available: the host installer's refusal is not the end.
pub const REQUIREMENTS_SANDBOX_FALLBACK: &str = "if the host installer refuses a package that must be compiled from source, cog's own pip command (and the cog runtime install and ldconfig after it) runs in the build sandbox instead";

/// apt packages cog installs before the uv-managed Python of an nvidia/cuda base.
pub const PYTHON_PREREQUISITE_PACKAGES: [&str; 5] =
    ["wget", "curl", "xz-utils", "git", "ca-certificates"];

/// One `ENV` assignment as cog writes it: the value is Dockerfile text, so it
/// may hold quotes and `$VAR` references that are expanded against the
/// environment at that point (see [`crate::plan::ImageConfig::final_env`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    /// Variable name.
    pub key: String,
    /// Value exactly as it appears after `=` in the Dockerfile.
    pub value: String,
}

impl EnvVar {
    /// Builds an assignment from a name and Dockerfile value text.
    pub fn new(key: &str, value: &str) -> Self {
        EnvVar {
            key: key.to_string(),
            value: value.to_string(),
        }
    }
}

/// Whether the native (Docker-free) engine can produce a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum NativeSupport {
    /// The native engine produces the same result.
    Native,
    /// The native engine produces an equivalent result by other means.
    Substituted {
        /// How the native engine does it.
        how: String,
    },
    /// The native engine cannot produce this step yet.
    Unsupported {
        /// Why not (the step executes code inside the image).
        reason: String,
    },
}

impl NativeSupport {
    /// True when the native engine can produce the step (natively or substituted).
    pub fn is_native(&self) -> bool {
        !matches!(self, NativeSupport::Unsupported { .. })
    }
}

/// A local requirement artifact staged into `.cog/build/local_package_artifacts/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagedArtifact {
    /// The requirement line as written.
    pub line: String,
    /// Absolute source path on the host (inside the project).
    pub source: std::path::PathBuf,
    /// Path relative to the project root, forward slashes; also the staging path.
    pub project_relative: String,
    /// Path of the file inside the build container.
    pub container_path: String,
}

/// The Python package a runtime install provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimePackage {
    /// The `cog` SDK.
    Cog,
    /// The `coglet` runtime.
    Coglet,
}

impl RuntimePackage {
    /// The PyPI project name.
    pub fn name(self) -> &'static str {
        match self {
            RuntimePackage::Cog => "cog",
            RuntimePackage::Coglet => "coglet",
        }
    }
}

/// Where a runtime wheel comes from (cog's wheel sources, §4.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum WheelSource {
    /// The package index; `version` None means latest.
    Pypi {
        /// Requested version as given (semver or PEP 440), if pinned.
        version: Option<String>,
        /// `sdk_version: prerelease`: latest pre-release, unpinned.
        prerelease: bool,
    },
    /// A wheel URL.
    Url {
        /// The URL.
        url: String,
    },
    /// A local wheel file (absolute path).
    File {
        /// Absolute host path.
        path: std::path::PathBuf,
    },
}

/// One `uv pip install` of cog or coglet (cog's F10 triplet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeInstall {
    /// Which package.
    pub package: RuntimePackage,
    /// Where it comes from.
    pub source: WheelSource,
    /// The install argument: `cog`, `cog==0.17.0`, a URL or `/tmp/<wheel>`.
    pub spec: String,
    /// `--pre` is passed.
    pub pre: bool,
    /// cog's legacy quirk: an SDK source whose name contains `coglet` sets
    /// `R8_COG_VERSION=coglet`, `R8_PYTHON_VERSION` and uninstalls cog first.
    pub coglet_named_sdk: bool,
    /// The Python version written to `R8_PYTHON_VERSION` for that quirk.
    pub python_version: String,
}

impl RuntimeInstall {
    /// The staged wheel file name when the source is a local file.
    pub fn staged_file_name(&self) -> Option<String> {
        match &self.source {
            WheelSource::File { path } => path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned()),
            _ => None,
        }
    }
}

/// A file placed under `/src/.cog/` by the bundle step; bytes are supplied at build time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CogFile {
    /// File name in `.cog/build/` and `/src/.cog/`.
    pub name: String,
    /// Absolute path in the image.
    pub image_path: String,
}

/// What a step produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    /// cog's four preamble `ENV`s (paths A/B).
    Preamble {
        /// The variables set.
        env: Vec<EnvVar>,
    },
    /// `COG_CA_CERT` injection: copy, `update-ca-certificates`, two `ENV`s.
    CaCert {
        /// SHA-256 of the certificate bytes (hex).
        sha256: String,
        /// Certificate bytes (PEM, trimmed, newline-terminated).
        #[serde(skip)]
        contents: Vec<u8>,
        /// The variables set.
        env: Vec<EnvVar>,
    },
    /// tini at `/sbin/tini` as the entrypoint (paths A/B; the Dockerfile also installs curl).
    Tini {
        /// tini release.
        version: String,
        /// Download URL of the linux/amd64 binary cog's Dockerfile fetches.
        url: String,
        /// Where the binary goes (mode 0755).
        path: String,
        /// The entrypoint it sets.
        entrypoint: Vec<String>,
    },
    /// cog.yaml `environment`, keys sorted, one `ENV` line.
    UserEnvironment {
        /// The variables set.
        env: Vec<EnvVar>,
    },
    /// `apt-get install` of `build.system_packages`.
    SystemPackages {
        /// Packages installed (after the cog-base filter).
        packages: Vec<String>,
        /// Packages dropped because the cog-base image already has them.
        provided_by_base: Vec<String>,
    },
    /// apt packages needed to install Python on an nvidia/cuda base (path B).
    PythonPrerequisites {
        /// The packages.
        packages: Vec<String>,
    },
    /// The uv binaries in `/usr/local/bin` and `UV_SYSTEM_PYTHON=true`.
    Uv {
        /// Image the binaries come from.
        image: String,
        /// Files copied out of that image.
        files: Vec<String>,
        /// Directory they are copied into.
        destination: String,
        /// The variables set.
        env: Vec<EnvVar>,
    },
    /// `uv python install` on an nvidia/cuda base (path B).
    PythonInstall {
        /// Python version as written in cog.yaml.
        version: String,
        /// The variables set.
        env: Vec<EnvVar>,
    },
    /// `python` → `python3` link on CUDA ≥ 13 cog-base images.
    PythonAlias,
    /// Python packages from the (rewritten) requirements.
    Requirements {
        /// requirements.txt as installed (rewritten, cog/coglet removed, no trailing newline).
        text: String,
        /// Local artifacts staged and copied to `/tmp/local_package_artifacts/`.
        local_artifacts: Vec<StagedArtifact>,
        /// `uv pip uninstall cog coglet` follows (local artifacts present).
        uninstall_managed: bool,
        /// `--break-system-packages` is passed.
        break_system_packages: bool,
        /// `--strip` suffix is added.
        strip: bool,
        /// The variables set (CFLAGS, then CFLAGS emptied).
        env: Vec<EnvVar>,
    },
    /// cog SDK (and explicit coglet) wheels.
    CogRuntime {
        /// Installs in order (coglet before cog).
        installs: Vec<RuntimeInstall>,
        /// `--break-system-packages` is passed.
        break_system_packages: bool,
        /// `--strip` suffix is added.
        strip: bool,
        /// The variables set.
        env: Vec<EnvVar>,
    },
    /// `--precompile`: bytecode compilation of every `.py` file.
    Precompile,
    /// ldconfig over the directories holding `*python*.so` (paths A/B).
    Ldconfig,
    /// One `build.run` (or deprecated `pre_install`) command.
    RunCommand {
        /// The command, trimmed.
        command: String,
        /// Mounts as written (only `secret` mounts are used).
        mounts: Vec<RunMount>,
    },
    /// `WORKDIR /src` (creates the directory).
    Workdir {
        /// The directory.
        path: String,
    },
    /// Config-only tail: exposed port, cog runtime env stubs, cmd.
    RuntimeConfig {
        /// Exposed port (`5000/tcp`).
        exposed_port: String,
        /// The variables set.
        env: Vec<EnvVar>,
        /// The image command.
        cmd: Vec<String>,
    },
    /// The project tree at `/src` (`.dockerignore` + `.cog/` excluded).
    SourceTree {
        /// Destination directory.
        destination: String,
    },
    /// Copy of a non-default config file name to `/src/cog.yaml`.
    ConfigCopy {
        /// Config file name in the project.
        file_name: String,
    },
    /// `/src/.cog/*` files added by the second (bundle) build.
    CogFiles {
        /// The files.
        files: Vec<CogFile>,
    },
}

/// One step of the build plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Stable identifier (`requirements`, `run-2`, …).
    pub id: String,
    /// Human description of what the step produces.
    pub name: String,
    /// True when the step changes only the image config (no layer).
    pub config_only: bool,
    /// Whether the native engine can produce it.
    pub native: NativeSupport,
    /// What it produces.
    #[serde(flatten)]
    pub kind: StepKind,
}

impl Step {
    /// The variables this step sets, in order.
    pub fn env(&self) -> &[EnvVar] {
        match &self.kind {
            StepKind::Preamble { env }
            | StepKind::CaCert { env, .. }
            | StepKind::UserEnvironment { env }
            | StepKind::Uv { env, .. }
            | StepKind::PythonInstall { env, .. }
            | StepKind::Requirements { env, .. }
            | StepKind::CogRuntime { env, .. }
            | StepKind::RuntimeConfig { env, .. } => env,
            _ => &[],
        }
    }
}

/// The `ENV CFLAGS=...` pair cog wraps around installs: set, then emptied.
pub fn install_cflags_env() -> Vec<EnvVar> {
    vec![
        EnvVar::new("CFLAGS", &format!("\"{INSTALL_CFLAGS}\"")),
        EnvVar::new("CFLAGS", ""),
    ]
}
