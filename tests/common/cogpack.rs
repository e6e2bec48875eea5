//! Running the cogpack binary against a test world: a real registry holding
//! the stand-in bases (reached through cogpack's registry-mirror feature), a
//! loopback server for the tini binary, and an empty store.

use super::base_image;
use super::file_server::FileServer;
use super::registry::Registry;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cogpack binary: `COGPACK_BIN`, else the one cargo built next to the tests.
pub fn cogpack_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("COGPACK_BIN") {
        let bin = PathBuf::from(bin);
        return std::fs::canonicalize(&bin).unwrap_or(bin);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    dir.join("cogpack")
}

/// A loopback HTTP server for the tini binary (its real download host is
/// unreachable here); stops on drop.
pub struct TiniServer {
    _server: FileServer,
    /// Download URL.
    pub url: String,
    /// SHA-256 (hex) of the served file.
    pub sha256: String,
    _dir: tempfile::TempDir,
}

impl TiniServer {
    /// Serves Debian's static tini on a free loopback port.
    pub fn start() -> TiniServer {
        let dir = super::scratch_dir("tini");
        let bytes = std::fs::read("/usr/bin/tini-static")
            .expect("Debian's tini package provides /usr/bin/tini-static");
        std::fs::write(dir.path().join("tini-amd64"), &bytes).unwrap();
        let server = FileServer::start(dir.path());
        TiniServer {
            url: server.url("tini-amd64"),
            _server: server,
            sha256: hex::encode(Sha256::digest(&bytes)),
            _dir: dir,
        }
    }
}

/// One test's world: a registry with the stand-in bases, a tini server and
/// an empty cogpack store.
pub struct World {
    /// The registry holding the stand-in bases.
    pub registry: Registry,
    /// The tini download server.
    pub tini: TiniServer,
    /// The cogpack store of this world.
    pub store: tempfile::TempDir,
}

impl World {
    /// Starts the registry (with both stand-in bases pushed) and the tini server.
    pub fn new() -> World {
        let registry = Registry::start();
        base_image::push_python_slim(&registry.host);
        base_image::push_cog_base(&registry.host);
        World {
            registry,
            tini: TiniServer::start(),
            store: super::scratch_dir("store"),
        }
    }

    /// Runs cogpack in `project` with the mirror, tini override and store set.
    pub fn cogpack(&self, project: &Path, args: &[&str]) -> Output {
        self.cogpack_with(project, args, self.store.path(), &[])
    }

    /// `cogpack build --push -t IMAGE --use-cog-base-image=false` (the
    /// python:slim path) with this world's store.
    pub fn build_push_slim(&self, project: &Path, image: &str) -> Output {
        self.build_push_slim_with(project, image, &[], &[])
    }

    /// [`World::build_push_slim`] with `extra` arguments and `env` added.
    pub fn build_push_slim_with(
        &self,
        project: &Path,
        image: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let mut args = vec!["build", "--push", "-t", image, "--use-cog-base-image=false"];
        args.extend_from_slice(extra);
        self.cogpack_with(project, &args, self.store.path(), env)
    }

    /// [`World::cogpack`] with another store.
    pub fn cogpack_with_store(&self, project: &Path, args: &[&str], store: &Path) -> Output {
        self.cogpack_with(project, args, store, &[])
    }

    /// A build/push command: `args`, the registry mirrors as flags and plain
    /// progress, with `store` as the store and `env` added.
    pub fn cogpack_with(
        &self,
        project: &Path,
        args: &[&str],
        store: &Path,
        env: &[(&str, &str)],
    ) -> Output {
        let mirror_docker = format!("docker.io={}", self.registry.host);
        let mirror_r8 = format!("r8.im={}", self.registry.host);
        self.command_in(project, store)
            .args(args)
            .args(["--registry-mirror", &mirror_docker])
            .args(["--registry-mirror", &mirror_r8])
            .args(["--progress", "plain"])
            .envs(env.iter().copied())
            .output()
            .expect("cogpack runs")
    }

    /// A cogpack command in `project` with this world's store, tini server
    /// and pins set, for subcommands that take no mirror or progress flags
    /// (the mirrors come from `COGPACK_REGISTRY_MIRRORS`).
    pub fn command(&self, project: &Path) -> Command {
        self.command_in(project, self.store.path())
    }

    /// [`World::command`] with another store.
    pub fn command_in(&self, project: &Path, store: &Path) -> Command {
        let mut command = Command::new(cogpack_bin());
        command
            .current_dir(project)
            .env("COGPACK_HOME", store)
            .env("COGPACK_TINI_URL", &self.tini.url)
            .env("COGPACK_TINI_SHA256", &self.tini.sha256)
            .env("DOCKER_CONFIG", store.join("docker-config"))
            // Pin coglet too (cog's SDK only bounds it), so every run
            // resolves the same versions.
            .env("COGLET_WHEEL", "pypi:0.23.1")
            .env(
                "COGPACK_REGISTRY_MIRRORS",
                format!("docker.io={0},r8.im={0}", self.registry.host),
            )
            .env_remove("SOURCE_DATE_EPOCH");
        command
    }

    /// `<registry>/<repo_tag>`.
    pub fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host)
    }
}

/// `cogpack plan --json --use-cog-base-image=false` in `project` with `env`
/// added; panics with cogpack's output unless it succeeds.
pub fn plan_json(project: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let output = Command::new(cogpack_bin())
        .args(["plan", "--json", "--use-cog-base-image=false"])
        .current_dir(project)
        .envs(env.iter().copied())
        .output()
        .expect("cogpack runs");
    super::assert_success(&output, "cogpack plan");
    serde_json::from_slice(&output.stdout).expect("cogpack plan --json prints JSON")
}

/// The step called `id` of a [`plan_json`] plan; panics when there is none.
pub fn plan_step<'a>(plan: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    plan["steps"]
        .as_array()
        .expect("plan steps")
        .iter()
        .find(|step| step["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {plan}"))
}
