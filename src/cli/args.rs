//! Command-line arguments (clap). Flags follow cog's names where cog has them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// cogpack: build and push Cog models without Docker.
#[derive(Debug, Parser)]
#[command(name = "cogpack", version, about, propagate_version = true)]
pub struct Cli {
    /// The name of the config file (not a path); found by walking up from the
    /// current directory.
    #[arg(short = 'f', long = "file", global = true, default_value = "cog.yaml")]
    pub file: String,

    /// Print more detail (never credentials).
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from cog.yaml (like `cog build`).
    Build(BuildArgs),
    /// Build and push an image (like `cog push`).
    Push(PushArgs),
    /// Print the resolved build plan.
    Plan(PlanArgs),
    /// Print the Dockerfile the docker backend would use (cog calls this `cog debug`).
    Dockerfile(DockerfileArgs),
    /// Managed weights.
    #[command(subcommand)]
    Weights(WeightsCommand),
    /// Show the Cog model stored under an image reference.
    Inspect(InspectArgs),
    /// Store registry credentials the way docker does.
    Login(LoginArgs),
    /// Remove blobs of the local store that no recorded image uses.
    Gc(GcArgs),
    /// Copy an image from a registry to an OCI layout or archive (e.g. a
    /// base image for air-gapped builds with `--base oci-layout:DIR`).
    Pull(PullArgs),
}

/// Which engine builds the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Backend {
    /// cogpack's own daemonless assembler.
    #[default]
    Native,
    /// Render a Dockerfile and build it with `docker buildx`.
    Docker,
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CompressionArg {
    /// gzip (the default; what every registry and runtime accepts).
    #[default]
    Gzip,
    /// zstd (smaller and faster; needs a recent runtime).
    Zstd,
    /// No compression.
    None,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ProgressArg {
    /// Bars on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Bars.
    Tty,
    /// One line per event, for CI logs.
    Plain,
    /// A JSON event stream on stderr.
    Json,
    /// Nothing.
    Quiet,
}

/// Options shared by commands that compute a build plan.
#[derive(Debug, Args, Clone, Default)]
pub struct PlanFlags {
    /// Use a cog-base image (unset = auto: try it, fall back when absent).
    #[arg(long = "use-cog-base-image", num_args = 0..=1, default_missing_value = "true")]
    pub use_cog_base_image: Option<bool>,

    /// Use an nvidia/cuda base image for GPU models (`auto`, `true` or `false`).
    #[arg(long = "use-cuda-base-image")]
    pub use_cuda_base_image: Option<String>,

    /// Registry host for cog-base images (default `COG_REGISTRY_HOST` or r8.im).
    #[arg(long = "registry")]
    pub registry: Option<String>,

    /// Secrets for `build.run` mounts: `id=NAME,src=FILE` or `id=NAME,env=VAR`.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,

    /// Precompile Python files in the image (hidden in cog).
    #[arg(long, hide = true)]
    pub precompile: bool,

    /// Strip debug symbols from shared libraries (hidden in cog).
    #[arg(long, hide = true)]
    pub strip: bool,

    /// Use this OpenAPI schema file instead of generating one.
    #[arg(long = "openapi-schema")]
    pub openapi_schema: Option<PathBuf>,
}

/// Options shared by commands that talk to registries.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryFlags {
    /// Pull images of a registry from a mirror: `SOURCE=MIRROR`, e.g.
    /// `docker.io=127.0.0.1:5000` (repeatable; also `COGPACK_REGISTRY_MIRRORS`).
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,

    /// Talk plain HTTP to this registry host (loopback hosts always may).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
}

/// `cogpack build`.
#[derive(Debug, Args, Clone, Default)]
pub struct BuildArgs {
    /// Image name to record (and push to with `--push`).
    #[arg(short = 't', long = "tag")]
    pub tag: Option<String>,

    /// Push the image after building (same as `cogpack push`).
    #[arg(long)]
    pub push: bool,

    /// Build engine.
    #[arg(long, value_enum, default_value_t = Backend::Native)]
    pub backend: Backend,

    /// Ignore cached layers and rebuild every step.
    #[arg(long = "no-cache")]
    pub no_cache: bool,

    /// Write the image out: `oci:DIR`, `oci-archive:FILE` or `docker-archive:FILE`.
    #[arg(long)]
    pub output: Vec<String>,

    /// Use this base image instead of pulling one: `oci-layout:DIR[:TAG]`.
    #[arg(long)]
    pub base: Option<String>,

    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub compression: CompressionArg,

    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3).
    #[arg(long = "compression-level")]
    pub compression_level: Option<u32>,

    /// Fail instead of resolving when the Python lock file is stale.
    #[arg(long)]
    pub locked: bool,

    /// Build from the lock file and caches only; no network for Python packages.
    #[arg(long)]
    pub offline: bool,

    /// Add the `run.cog.push_id` label (unique per push: breaks reproducible digests).
    #[arg(long = "push-id")]
    pub push_id: bool,

    /// Progress output.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,

    /// Plan options.
    #[command(flatten)]
    pub plan: PlanFlags,

    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// `cogpack push`.
#[derive(Debug, Args, Clone, Default)]
pub struct PushArgs {
    /// Image to push to (else `model`/`image` from cog.yaml).
    pub image: Option<String>,

    /// Build options.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// `cogpack plan`.
#[derive(Debug, Args, Clone, Default)]
pub struct PlanArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Plan options.
    #[command(flatten)]
    pub plan: PlanFlags,
}

/// `cogpack dockerfile`.
#[derive(Debug, Args, Clone, Default)]
pub struct DockerfileArgs {
    /// Image name used in the rendered build (cog's `--image-name`).
    #[arg(long = "image-name")]
    pub image_name: Option<String>,

    /// Plan options.
    #[command(flatten)]
    pub plan: PlanFlags,
}

/// `cogpack weights ...`.
#[derive(Debug, Subcommand)]
pub enum WeightsCommand {
    /// Import weights declared in cog.yaml, pack and push them.
    Import(WeightsImportArgs),
    /// Show the state of each weight.
    Status(WeightsStatusArgs),
    /// Download weights from the registry into the local cache.
    Pull(WeightsPullArgs),
}

/// `cogpack weights import`.
#[derive(Debug, Args, Clone, Default)]
pub struct WeightsImportArgs {
    /// Only these weights (default: all).
    pub names: Vec<String>,
    /// Show the plan and stop.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// `cogpack weights status`.
#[derive(Debug, Args, Clone, Default)]
pub struct WeightsStatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// `cogpack weights pull`.
#[derive(Debug, Args, Clone, Default)]
pub struct WeightsPullArgs {
    /// Only these weights (default: all).
    pub names: Vec<String>,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// `cogpack inspect`.
#[derive(Debug, Args, Clone, Default)]
pub struct InspectArgs {
    /// Image reference (registry or local store name).
    pub reference: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// `cogpack login`.
#[derive(Debug, Args, Clone, Default)]
pub struct LoginArgs {
    /// Registry host (default `COG_REGISTRY_HOST` or r8.im).
    pub registry: Option<String>,
    /// User name (generic registries).
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Read the password or token from standard input.
    #[arg(long = "password-stdin", alias = "token-stdin")]
    pub password_stdin: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry_flags: RegistryFlags,
}

/// `cogpack pull`.
#[derive(Debug, Args, Clone, Default)]
pub struct PullArgs {
    /// Image reference, e.g. `python:3.11-slim` or `r8.im/user/model@sha256:…`.
    pub reference: String,
    /// Where to write it: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or
    /// `docker-archive:FILE[:REF]` (repeatable).
    #[arg(long, required = true)]
    pub output: Vec<String>,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// `cogpack gc`.
#[derive(Debug, Args, Clone, Default)]
pub struct GcArgs {
    /// Only print what would be removed.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}
