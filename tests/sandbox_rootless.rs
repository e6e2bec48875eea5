//! The build sandbox for a user who is not root: `cogpack build` run as an
//! unprivileged user (created here) with its own store, through a user
//! namespace. With `newuidmap`/`newgidmap` (Debian `uidmap`) and
//! /etc/subuid|subgid ranges the namespace maps 65536 ids and the layers
//! equal those of a build as root; without ranges only the user's own id is
//! mapped and apt runs as root inside. Where user namespaces are disabled
//! the build stops before any download.

mod common;

use common::cogpack::World;
use common::runner::{self, RunOptions};
use common::sandbox::{
    assert_libyaml_prediction, assert_no_sandbox_leftovers, check_apt_build, check_failed_run_item,
};
use common::{assert_success, stderr};
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// A user with a subordinate id range (the full mapping).
const MAPPED_USER: &str = "cogpack-rootless";
/// Its /etc/subuid and /etc/subgid range.
const MAPPED_RANGE: &str = "300000-365535";
/// A user without subordinate ids (only its own id is mapped).
const SINGLE_USER: &str = "cogpack-single";

/// Serializes user creation across the tests of this binary.
static USERS: Mutex<()> = Mutex::new(());

/// An unprivileged account the tests run cogpack as.
#[derive(Clone, Copy)]
struct TestUser {
    uid: u32,
    gid: u32,
}

fn id_of(name: &str, flag: &str) -> Option<u32> {
    let output = Command::new("id").args([flag, name]).output().ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// Creates the system user `name` when missing, with a subordinate range
/// when `range` is given; a user without one must not have any.
fn test_user(name: &str, range: Option<&str>) -> TestUser {
    let _guard = USERS.lock().unwrap_or_else(|e| e.into_inner());
    if id_of(name, "-u").is_none() {
        common::run_ok(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ]));
    }
    let listed = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|line| line.starts_with(&format!("{name}:")))
    };
    match range {
        Some(range) if !listed("/etc/subuid") || !listed("/etc/subgid") => {
            common::run_ok(Command::new("usermod").args([
                "--add-subuids",
                range,
                "--add-subgids",
                range,
                name,
            ]));
        }
        None => assert!(
            !listed("/etc/subuid") && !listed("/etc/subgid"),
            "{name} must have no subordinate ids"
        ),
        Some(_) => {}
    }
    TestUser {
        uid: id_of(name, "-u").expect("uid of the test user"),
        gid: id_of(name, "-g").expect("gid of the test user"),
    }
}

/// Hands `path` (recursively) to `user`. Scratch directories are handed
/// over at their root, so the user can enter them; their parent (the
/// shared temp dir) is open to everyone.
fn give(path: &Path, user: TestUser) {
    common::run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(path),
    );
}

/// The uv binary of the Python environment running the tests (the root
/// account's copy may sit in a directory other users cannot enter).
fn host_uv() -> PathBuf {
    let out =
        common::run_ok(Command::new("python3").args(["-c", "import uv; print(uv.find_uv_bin())"]));
    PathBuf::from(String::from_utf8(out).unwrap().trim())
}

/// What one test gives its unprivileged user: a copy of a sandbox fixture
/// project and a store and home directory of its own (with a copy of uv at
/// `home/bin/uv`), all owned by the user.
struct UserSetup {
    user: TestUser,
    project: PathBuf,
    store: PathBuf,
    home: PathBuf,
    /// Holds `store` and `home`; room for more files of the user.
    home_dir: tempfile::TempDir,
    _project_dir: tempfile::TempDir,
}

impl UserSetup {
    /// Sets up `fixtures/sandbox/<fixture>` (with `cog_yaml` when given) for
    /// `user`.
    fn new(user: TestUser, fixture: &str, cog_yaml: Option<&str>) -> UserSetup {
        let (project_dir, project) = common::project_copy(&format!("fixtures/sandbox/{fixture}"));
        if let Some(text) = cog_yaml {
            std::fs::write(project.join("cog.yaml"), text).unwrap();
        }
        give(project_dir.path(), user);
        let home_dir = common::scratch_dir("rootless-home");
        let store = home_dir.path().join("store");
        let home = home_dir.path().join("home");
        std::fs::create_dir(&store).unwrap();
        std::fs::create_dir_all(home.join("bin")).unwrap();
        std::fs::copy(host_uv(), home.join("bin/uv")).unwrap();
        give(home_dir.path(), user);
        UserSetup {
            user,
            project,
            store,
            home,
            home_dir,
            _project_dir: project_dir,
        }
    }

    /// `cogpack ARGS` in the project as the user, with its own store and home.
    fn cogpack(&self, world: &World, args: &[&str]) -> Output {
        world
            .command_in(&self.project, &self.store)
            .uid(self.user.uid)
            .gid(self.user.gid)
            .env("HOME", &self.home)
            .env("COGPACK_UV", self.home.join("bin/uv"))
            .env_remove("XDG_CACHE_HOME")
            .args(args)
            .output()
            .expect("cogpack runs")
    }

    /// `cogpack build --push -t IMAGE --use-cog-base-image=false
    /// --progress plain` as the user.
    fn build_push_slim(&self, world: &World, image: &str) -> Output {
        self.cogpack(world, &build_push_slim_args(image))
    }
}

/// `build --push -t IMAGE --use-cog-base-image=false --progress plain`.
fn build_push_slim_args(image: &str) -> [&str; 7] {
    [
        "build",
        "--push",
        "-t",
        image,
        "--use-cog-base-image=false",
        "--progress",
        "plain",
    ]
}

/// Builds and pushes the `apt` fixture as `user` to `repo_tag` and checks
/// it with [`check_apt_build`]; returns the build log and the pulled image.
fn build_apt_fixture_as(user: TestUser, repo_tag: &str) -> (String, runner::PulledImage) {
    let world = World::new();
    let setup = UserSetup::new(user, "apt", None);
    let image = world.image(repo_tag);
    let output = setup.build_push_slim(&world, &image);
    check_apt_build(&output, "rootless build with system_packages", &image)
}

/// Run items that need more than one mapped id: owners of other users,
/// setuid/setgid modes, copy-up of base files owned by other groups, a
/// deleted base file, an opaque directory, a secret and a cache mount.
const OWNERS_COG_YAML: &str = r#"build:
  python_version: "3.11"
  python_requirements: requirements.txt
  sdk_version: "0.23.1"
  run:
    - echo tool > /var/local/tool.txt && chown 1234:5678 /var/local/tool.txt && chmod 4755 /var/local/tool.txt && touch /var/mail/root && chown _apt /var/mail/root && touch /usr/bin/chage && rm /etc/debian_version && echo owners-ran
    - rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo only > /etc/apt/apt.conf.d/only && stat -c 'partial=%u:%g:%a' /var/cache/apt/archives/partial
    - command: sha256sum /root/.config/tok
      mounts:
        - type: secret
          id: tok
          target: /root/.config/tok
    - --mount=type=cache,target=/var/cache/mytool echo data > /var/cache/mytool/persisted && id -u && ls -A /etc/apt/apt.conf.d && test ! -e /etc/debian_version && echo cache-written
run: "predict.py:Predictor"
"#;

/// The layer digests of a pushed image.
fn layer_digests(image: &runner::PulledImage) -> Vec<String> {
    image.manifest["layers"]
        .as_array()
        .expect("manifest layers")
        .iter()
        .map(|layer| layer["digest"].as_str().unwrap().to_string())
        .collect()
}

/// `tar -tv` lines of one layer blob of a pulled image.
fn layer_listing(image: &runner::PulledImage, digest: &str) -> Vec<String> {
    let blob = image
        .layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let out = common::run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "--full-time", "-tvzf"])
            .arg(blob),
    );
    String::from_utf8_lossy(&out)
        .lines()
        .map(String::from)
        .collect()
}

/// Asserts that two builds have the same layers. The apt layer of cog's
/// curl install is not byte-reproducible even between two builds as root
/// (apt and dpkg log times into files), so there the entries (names,
/// modes, owners, sizes) must match; every other layer must match by digest.
fn assert_same_layers(a: &runner::PulledImage, b: &runner::PulledImage) {
    let (digests_a, digests_b) = (layer_digests(a), layer_digests(b));
    assert_eq!(digests_a.len(), digests_b.len(), "layer counts differ");
    let mut report = String::new();
    for (da, db) in digests_a.iter().zip(digests_b.iter()) {
        if da == db {
            continue;
        }
        let (la, lb) = (layer_listing(a, da), layer_listing(b, db));
        let apt_layer = la.iter().any(|line| line.ends_with(" usr/bin/curl"));
        if apt_layer && la == lb {
            continue;
        }
        report.push_str(&format!("layer {da} vs {db}:\n"));
        for line in la.iter().filter(|l| !lb.contains(l)) {
            report.push_str(&format!("  - {line}\n"));
        }
        for line in lb.iter().filter(|l| !la.contains(l)) {
            report.push_str(&format!("  + {line}\n"));
        }
    }
    assert!(
        report.is_empty(),
        "rootless and root builds of the same run items differ:\n{report}"
    );
}

fn build_args<'a>(image: &'a str, secret: &'a str) -> Vec<&'a str> {
    vec![
        "build",
        "--push",
        "-t",
        image,
        "--use-cog-base-image=false",
        "--secret",
        secret,
        "--progress",
        "plain",
    ]
}

#[test]
fn rootless_run_items_give_the_same_layers_as_root() {
    let world = World::new();
    let user = test_user(MAPPED_USER, Some(MAPPED_RANGE));
    let setup = UserSetup::new(user, "runs", Some(OWNERS_COG_YAML));
    let secret = setup.home_dir.path().join("secret.txt");
    std::fs::write(&secret, "token\n").unwrap();
    give(&secret, user);
    let secret_flag = format!("id=tok,src={}", secret.display());

    let plan = setup.cogpack(&world, &["plan", "--json", "--use-cog-base-image=false"]);
    assert_success(&plan, "cogpack plan as a user");
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    for step in plan["steps"].as_array().unwrap() {
        if step["id"].as_str().unwrap_or_default().starts_with("run-") {
            assert_eq!(step["native"]["status"], json!("native"), "{step}");
        }
    }

    let rootless_image = world.image("test/rootless-owners:user");
    let started = std::time::Instant::now();
    let output = setup.cogpack(&world, &build_args(&rootless_image, &secret_flag));
    assert_success(&output, "rootless build");
    let rootless_time = started.elapsed();
    let log = stderr(&output);
    for line in [
        "[run-1] owners-ran",
        "[run-2] partial=42:0:700",
        "[run-4] 0",
        // Whiteout and opaque directory of earlier layers, unpacked by the user.
        "[run-4] only",
        "[run-4] cache-written",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    let unpacked_by_user = std::fs::read_dir(&setup.store)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("rootfs-userns-")
        });
    assert!(unpacked_by_user, "no user-namespace rootfs in the store");
    assert_no_sandbox_leftovers(&setup.store);

    let root_image = world.image("test/rootless-owners:root");
    let root_args = build_args(&root_image, &secret_flag);
    // World::cogpack adds the progress flag itself.
    let started = std::time::Instant::now();
    let output = world.cogpack(&setup.project, &root_args[..root_args.len() - 2]);
    assert_success(&output, "build as root");
    eprintln!(
        "cold build with 4 run items (unpack, curl step, run steps, push): as a user {:.1}s, as root {:.1}s",
        rootless_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let rootless = runner::pull(&rootless_image).unwrap();
    let root = runner::pull(&root_image).unwrap();
    assert_same_layers(&rootless, &root);
    let meta = |path: &str| std::fs::symlink_metadata(rootless.rootfs.join(path)).unwrap();
    let tool = meta("var/local/tool.txt");
    assert_eq!(
        (tool.uid(), tool.gid(), tool.mode() & 0o7777),
        (1234, 5678, 0o4755)
    );
    let mail = meta("var/mail");
    assert_eq!((mail.gid(), mail.mode() & 0o7777), (8, 0o2775));
    assert_eq!(meta("var/mail/root").uid(), 42);
    let chage = meta("usr/bin/chage");
    assert_eq!((chage.gid(), chage.mode() & 0o7777), (42, 0o2755));
    assert!(!rootless.rootfs.join("etc/debian_version").exists());
    let apt_conf: Vec<_> = std::fs::read_dir(rootless.rootfs.join("etc/apt/apt.conf.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(apt_conf, vec!["only"]);
    assert!(!rootless.rootfs.join("root/.config/tok").exists());

    let model = rootless.run(&RunOptions::default()).unwrap();
    let (status, body) = model.predict(&json!({"text": "rootless"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], json!("hello rootless"));
}

#[test]
fn rootless_system_packages_install_with_apt_and_load_at_predict_time() {
    let user = test_user(MAPPED_USER, Some(MAPPED_RANGE));
    let (log, pulled) = build_apt_fixture_as(user, "test/rootless-apt:v1");
    assert!(
        log.contains(
            "Running [system-packages] apt-get update -qq && apt-get install -qqy libyaml-0-2"
        ),
        "{log}"
    );
    assert!(
        !log.contains("APT::Sandbox::User=root"),
        "apt must run as _apt with the full mapping:\n{log}"
    );
    let library = std::fs::symlink_metadata(
        pulled
            .rootfs
            .join("usr/lib/x86_64-linux-gnu/libyaml-0.so.2.0.9"),
    )
    .or_else(|_| {
        std::fs::metadata(
            pulled
                .rootfs
                .join("usr/lib/x86_64-linux-gnu/libyaml-0.so.2"),
        )
    })
    .unwrap();
    assert_eq!((library.uid(), library.gid()), (0, 0));
    assert_libyaml_prediction(&pulled, "loaded");
}

#[test]
fn single_id_mapping_runs_apt_as_root_inside_and_says_so() {
    let user = test_user(SINGLE_USER, None);
    let (log, pulled) = build_apt_fixture_as(user, "test/rootless-single:v1");
    assert!(
        log.contains("[system-packages] note: the user namespace maps only your own uid")
            && log.contains("APT::Sandbox::User=root"),
        "{log}"
    );
    assert_libyaml_prediction(&pulled, "single");
}

#[test]
fn rootless_failing_run_item_reports_its_exit_code_and_leaves_nothing() {
    let world = World::new();
    let user = test_user(MAPPED_USER, Some(MAPPED_RANGE));
    let cog_yaml = "build:\n  python_version: \"3.11\"\n  python_requirements: requirements.txt\n  sdk_version: \"0.23.1\"\n  run:\n    - mkdir -p /var/cache/apt/archives/partial/x && chown -R _apt /var/cache/apt/archives/partial && chmod 700 /var/cache/apt/archives/partial/x && echo about-to-fail && exit 3\npredict: \"predict.py:Predictor\"\n";
    let setup = UserSetup::new(user, "runs", Some(cog_yaml));
    let image = world.image("test/rootless-fails:v1");
    let output = setup.build_push_slim(&world, &image);
    check_failed_run_item(&output, 3);
    assert_no_sandbox_leftovers(&setup.store);
}

/// Runs argv in a user namespace mapping every id to itself, whose
/// `user.max_user_namespaces` is 0 (the parent writes the maps; the host
/// setting is untouched).
const NO_USERNS_WRAPPER: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:
        sys.exit("unshare(CLONE_NEWUSER): errno %d" % ctypes.get_errno())
    os.write(ready_w, b"x")
    os.read(go_r, 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as limit:
        limit.write("0")
    os.execvp(sys.argv[1], sys.argv[1:])
os.read(ready_r, 1)
for name in ("uid_map", "gid_map"):
    with open("/proc/%d/%s" % (pid, name), "w") as mapping:
        mapping.write("0 0 4294967295")
os.write(go_w, b"x")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn user_without_user_namespaces_is_refused_before_any_download() {
    let world = World::new();
    let user = test_user(MAPPED_USER, Some(MAPPED_RANGE));
    let setup = UserSetup::new(user, "runs", None);
    let image = world.image("test/rootless-refused:v1");
    let cogpack = world.command_in(&setup.project, &setup.store);
    let envs: Vec<_> = cogpack
        .get_envs()
        .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned())))
        .collect();
    let output = Command::new("python3")
        .arg("-c")
        .arg(NO_USERNS_WRAPPER)
        .arg("setpriv")
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--clear-groups")
        .arg("--")
        .arg(cogpack.get_program())
        .args(build_push_slim_args(&image))
        .envs(envs)
        .env_remove("SOURCE_DATE_EPOCH")
        .env("HOME", &setup.home)
        .current_dir(&setup.project)
        .output()
        .expect("python3 runs");
    assert!(
        !output.status.success(),
        "build must fail:\n{}",
        stderr(&output)
    );
    let log = stderr(&output);
    assert!(
        log.contains("the build sandbox cannot run: cogpack is not running as root and unprivileged user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0)"),
        "{log}"
    );
    assert!(log.contains("--backend docker"), "{log}");
    assert!(!log.contains("Downloading"), "work started:\n{log}");
    assert!(!log.contains("Running ["), "{log}");
}
