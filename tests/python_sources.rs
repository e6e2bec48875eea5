//! Requirements from a loopback index, a local git repository and a wheel
//! in the project, plus the cog runtime layer split and `pip freeze`.

#[path = "python_common.rs"]
mod common;

use cogpack::layer::EntryKind;
use common::file_server::FileServer;
use common::*;
use std::path::Path;
use std::process::Command;

/// A pure wheel with a console script, a `#!python` script, data and headers.
fn write_localpkg(dir: &Path) {
    let path = dir.join("localpkg-1.0-py3-none-any.whl");
    write_wheel(
        &path,
        "localpkg",
        "1.0",
        &[
            ("localpkg/__init__.py", b"def main():\n    print('local')\n"),
            (
                "localpkg-1.0.dist-info/entry_points.txt",
                b"[console_scripts]\nlocaltool = localpkg:main\n",
            ),
            (
                "localpkg-1.0.data/scripts/rawscript",
                b"#!python\nprint('raw')\n",
            ),
            (
                "localpkg-1.0.data/data/share/localpkg/readme.txt",
                b"data file\n",
            ),
            ("localpkg-1.0.data/headers/localpkg.h", b"/* header */\n"),
        ],
        false,
    );
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// A pure-Python project with a hatchling build, committed to a new repo.
fn make_git_repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("src/gitdemo")).unwrap();
    std::fs::write(
        dir.join("pyproject.toml"),
        "[project]\nname = \"gitdemo\"\nversion = \"0.3.0\"\n[project.scripts]\ngitdemo = \"gitdemo:main\"\n[build-system]\nrequires = [\"hatchling==1.25.0\"]\nbuild-backend = \"hatchling.build\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("src/gitdemo/__init__.py"),
        "def main():\n    return 'git'\n",
    )
    .unwrap();
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "init"]);
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A pure-Python sdist (built with `uv build --sdist`) placed in `dest_dir`.
fn make_sdist(work: &Path, dest_dir: &Path) {
    let src = work.join("sdistsrc");
    std::fs::create_dir_all(src.join("src/sdistpkg")).unwrap();
    // hatchling with a src layout: building straight from the archive inside
    // uv's cache would drop the module (uv's cache .gitignore); cogpack
    // unpacks the sdist itself.
    std::fs::write(
        src.join("pyproject.toml"),
        "[project]\nname = \"sdistpkg\"\nversion = \"0.2\"\n[build-system]\nrequires = [\"hatchling==1.25.0\"]\nbuild-backend = \"hatchling.build\"\n[tool.hatch.build.targets.wheel]\npackages = [\"src/sdistpkg\"]\n",
    )
    .unwrap();
    std::fs::write(src.join("src/sdistpkg/__init__.py"), "VALUE = 2\n").unwrap();
    let ok = Command::new("uv")
        .args(["build", "--sdist", "--quiet", "--out-dir"])
        .arg(dest_dir)
        .arg(&src)
        .status()
        .unwrap()
        .success();
    assert!(ok, "uv build --sdist");
}

#[test]
fn index_git_and_project_wheel_sources_install_with_direct_urls() {
    uv();
    let work = tempfile::tempdir().unwrap();
    let index_root = work.path().join("index");
    std::fs::create_dir_all(index_root.join("simple/localpkg")).unwrap();
    write_localpkg(&index_root.join("simple/localpkg"));
    std::fs::create_dir_all(index_root.join("simple/sdistpkg")).unwrap();
    make_sdist(work.path(), &index_root.join("simple/sdistpkg"));
    let server = FileServer::start(&index_root);

    let repo = work.path().join("gitrepo");
    let commit = make_git_repo(&repo);

    let project = work.path().join("project");
    std::fs::create_dir_all(project.join("dist")).unwrap();
    write_wheel(
        &project.join("dist/projwheel-0.1-py3-none-any.whl"),
        "projwheel",
        "0.1",
        &[("projwheel.py", b"X = 1\n")],
        false,
    );

    let requirements = format!(
        "--extra-index-url http://127.0.0.1:{}/simple/\nlocalpkg==1.0\nsdistpkg==0.2\ngitdemo @ git+file://{}\n./dist/projwheel-0.1-py3-none-any.whl\n",
        server.port,
        repo.display()
    );
    let mut req = request(&project, &work.path().join("cache"), &requirements);
    req.inputs.cog_runtime = vec!["coglet==0.17.0".into(), "cog==0.17.0".into()];
    let layers = build(&req).expect("build");

    let root = work.path().join("root");
    cogpack::python::materialize(&layers.dependencies, &root).unwrap();
    let sp = root.join("usr/local/lib/python3.11/site-packages");
    let bin = root.join("usr/local/bin");
    assert_eq!(
        std::fs::read_to_string(sp.join("localpkg/__init__.py")).unwrap(),
        "def main():\n    print('local')\n"
    );
    let localtool = std::fs::read_to_string(bin.join("localtool")).unwrap();
    assert!(
        localtool.starts_with("#!/usr/local/bin/python\n")
            && localtool.contains("from localpkg import main")
    );
    assert_eq!(
        std::fs::read_to_string(bin.join("rawscript")).unwrap(),
        "#!/usr/local/bin/python\nprint('raw')\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("usr/local/share/localpkg/readme.txt")).unwrap(),
        "data file\n"
    );
    assert!(
        root.join("usr/local/include/python3.11/localpkg/localpkg.h")
            .is_file()
    );
    assert!(
        bin.join("gitdemo").is_file(),
        "console script of the git project"
    );
    assert!(sp.join("gitdemo/__init__.py").is_file());
    assert!(sp.join("projwheel.py").is_file());
    assert_eq!(
        std::fs::read_to_string(sp.join("sdistpkg/__init__.py")).unwrap(),
        "VALUE = 2\n",
        "sdist built on the host"
    );
    let git_direct =
        std::fs::read_to_string(sp.join("gitdemo-0.3.0.dist-info/direct_url.json")).unwrap();
    assert!(
        git_direct.contains(&commit) && git_direct.contains("\"vcs\": \"git\""),
        "{git_direct}"
    );
    assert!(
        !sp.join("localpkg-1.0.dist-info/direct_url.json").exists(),
        "index installs carry no direct_url.json"
    );

    let runtime_paths: Vec<&str> = layers.cog_runtime.iter().map(|e| e.path.as_str()).collect();
    assert!(
        runtime_paths
            .iter()
            .any(|p| p.starts_with("usr/local/lib/python3.11/site-packages/cog/"))
    );
    assert!(
        runtime_paths
            .iter()
            .any(|p| p.starts_with("usr/local/lib/python3.11/site-packages/coglet"))
    );
    assert!(
        !layers
            .dependencies
            .iter()
            .any(|e| e.path.contains("site-packages/cog/")),
        "cog is not in the deps layer"
    );
    assert!(
        layers
            .uv_binaries
            .iter()
            .all(|e| matches!(e.kind, EntryKind::File { .. }) && e.mode == 0o755)
    );

    let freeze = &layers.pip_freeze;
    assert!(
        freeze.contains(&format!(
            "gitdemo @ git+file://{}@{commit}\n",
            repo.display()
        )),
        "{freeze}"
    );
    assert!(
        freeze.contains(
            "projwheel @ file:///tmp/local_package_artifacts/dist/projwheel-0.1-py3-none-any.whl\n"
        ),
        "{freeze}"
    );
    assert!(
        freeze.contains("localpkg==1.0\n")
            && freeze.contains("cog==0.17.0\n")
            && freeze.contains("coglet==0.17.0\n"),
        "{freeze}"
    );
    let lines: Vec<&str> = freeze.lines().collect();
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| l.to_lowercase());
    assert_eq!(lines, sorted, "pip freeze order");

    // The real pip, run over the installed tree, prints the same text.
    cogpack::python::materialize(&layers.cog_runtime, &root).unwrap();
    let pip = Command::new("python3")
        .args(["-m", "pip", "freeze", "--path"])
        .arg(&sp)
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "pip freeze: {}",
        String::from_utf8_lossy(&pip.stderr)
    );
    assert_eq!(
        String::from_utf8(pip.stdout).unwrap(),
        *freeze,
        "pip freeze of the installed tree"
    );
    let scanned = cogpack::python::freeze::scan_site_packages(&sp).unwrap();
    assert_eq!(
        cogpack::python::pip_freeze(&scanned, (3, 11)),
        *freeze,
        "freeze from a scanned site-packages"
    );

    let lock = std::fs::read_to_string(project.join("pylock.cogpack.toml")).unwrap();
    assert!(
        lock.contains("name = \"uv\"") && lock.contains("version = \"0.9.26\""),
        "uv pinned in the lock"
    );
    assert!(lock.contains("name = \"cog\"") && lock.contains("name = \"coglet\""));
}

#[test]
fn base_distributions_are_constraints_and_never_reinstalled() {
    uv();
    let work = tempfile::tempdir().unwrap();
    let mut req = request(work.path(), &work.path().join("cache"), "requests\n");
    req.target.base_distributions = vec![
        cogpack::python::BaseDistribution {
            name: "urllib3".into(),
            version: "2.2.3".into(),
        },
        cogpack::python::BaseDistribution {
            name: "pip".into(),
            version: "24.0".into(),
        },
    ];
    let layers = build(&req).expect("build");
    assert!(
        !layers
            .dependencies
            .iter()
            .any(|e| e.path.contains("urllib3")),
        "urllib3 comes from the base"
    );
    assert!(
        layers.pip_freeze.contains("urllib3==2.2.3\n"),
        "{}",
        layers.pip_freeze
    );
    assert!(!layers.pip_freeze.contains("pip=="));
    let lock = std::fs::read_to_string(work.path().join("pylock.cogpack.toml")).unwrap();
    assert!(
        lock.contains("name = \"urllib3\"\nversion = \"2.2.3\""),
        "resolver honoured the base pin"
    );
}

#[test]
fn a_later_wheel_overwriting_a_file_wins_with_a_warning() {
    uv();
    let work = tempfile::tempdir().unwrap();
    write_wheel(
        &work.path().join("aaa_first-1.0-py3-none-any.whl"),
        "aaa_first",
        "1.0",
        &[("shared/x.py", b"first\n")],
        false,
    );
    write_wheel(
        &work.path().join("zzz_second-1.0-py3-none-any.whl"),
        "zzz_second",
        "1.0",
        &[("shared/x.py", b"second\n")],
        false,
    );
    let req = request(
        work.path(),
        &work.path().join("c"),
        "./aaa_first-1.0-py3-none-any.whl\n./zzz_second-1.0-py3-none-any.whl\n",
    );
    let layers = build(&req).unwrap();
    let root = work.path().join("root");
    cogpack::python::materialize(&layers.dependencies, &root).unwrap();
    let x = root.join("usr/local/lib/python3.11/site-packages/shared/x.py");
    assert_eq!(std::fs::read_to_string(x).unwrap(), "second\n");
    assert!(
        layers.warnings.iter().any(|w| w.contains("shared/x.py")
            && w.contains("zzz_second")
            && w.contains("aaa_first")),
        "{:?}",
        layers.warnings
    );
    let paths: Vec<&str> = layers
        .dependencies
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(paths, sorted, "entries sorted and unique");
}

#[test]
fn empty_requirements_still_lock_and_ship_uv() {
    uv();
    let work = tempfile::tempdir().unwrap();
    let layers = build(&request(work.path(), &work.path().join("c"), "")).expect("empty build");
    assert!(layers.dependencies.is_empty() && layers.cog_runtime.is_empty());
    assert_eq!(layers.pip_freeze, "");
    let bins: Vec<&str> = layers.uv_binaries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(bins, ["usr/local/bin/uv", "usr/local/bin/uvx"]);
    let root = work.path().join("root");
    cogpack::python::materialize(&layers.uv_binaries, &root).unwrap();
    let out = Command::new(root.join("usr/local/bin/uv"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("uv 0.9.26"),
        "{out:?}"
    );
    let again = build(&request(work.path(), &work.path().join("c"), "")).expect("lock reused");
    assert_eq!(again.uv_binaries.len(), 2);
}

#[test]
fn index_settings_are_used_and_credentials_stay_out_of_the_lock() {
    uv();
    let work = tempfile::tempdir().unwrap();
    let index_root = work.path().join("index");
    std::fs::create_dir_all(index_root.join("simple/localpkg")).unwrap();
    write_localpkg(&index_root.join("simple/localpkg"));
    let server = FileServer::start(&index_root);
    let project = work.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let mut req = request(&project, &work.path().join("c"), "localpkg==1.0\n");
    req.index.extra_index_urls = vec![format!(
        "http://someone:hunter2secret@127.0.0.1:{}/simple/",
        server.port
    )];
    let layers = build(&req).expect("build through the extra index");
    assert!(layers.pip_freeze.contains("localpkg==1.0\n"));
    let lock = std::fs::read_to_string(project.join("pylock.cogpack.toml")).unwrap();
    assert!(
        lock.contains(&format!("127.0.0.1:{}", server.port)),
        "wheel URL from the loopback index"
    );
    assert!(
        !lock.contains("hunter2secret"),
        "no credentials in the lock"
    );
}
