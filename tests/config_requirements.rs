//! Requirements reading and local artifacts (spec §1.7) and requirement
//! rewriting (§2.6), expected texts written by hand from the spec and matrices.

use cogpack::config::requirements::{self, ManagedSources};
use cogpack::config::{self, ConfigError, Project};
use std::path::Path;
use tempfile::TempDir;

fn write(root: &Path, name: &str, body: &[u8]) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, body).expect("write");
}

/// A project with `requirements.txt` (or `requirements_path`) holding `body`.
fn load(
    build: &str,
    requirements_path: &str,
    body: &str,
    files: &[&str],
) -> (TempDir, Result<Project, ConfigError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "predict.py", b"");
    for file in files {
        write(dir.path(), file, b"PK\x03\x04");
    }
    write(dir.path(), requirements_path, body.as_bytes());
    let yaml = format!(
        "build:\n{build}  python_requirements: {requirements_path}\npredict: predict.py:Predictor\n"
    );
    write(dir.path(), "cog.yaml", yaml.as_bytes());
    let loaded = config::load(dir.path(), "cog.yaml");
    (dir, loaded)
}

const CPU: &str = "  python_version: \"3.12\"\n";

fn gpu(cuda: &str) -> String {
    format!("  python_version: \"3.11\"\n  gpu: true\n  cuda: \"{cuda}\"\n")
}

fn rewritten(build: &str, body: &str) -> requirements::RewrittenRequirements {
    let (_dir, loaded) = load(build, "requirements.txt", body, &[]);
    requirements::rewrite(&loaded.expect("loads")).expect("rewrites")
}

#[test]
fn reading_follows_cogs_line_rules() {
    let text = "a==1 \\\n--hash=x\n\n# comment\n-e .\n  -e  .  \nb==2 # trailing\nc @ https://x.invalid/c.tar.gz#egg=c\r\nd\\\r\ne\n";
    assert_eq!(
        requirements::parse_requirements_text(text),
        vec![
            "a==1 --hash=x",
            "b==2",
            "c @ https://x.invalid/c.tar.gz",
            "de"
        ]
    );
    assert!(requirements::parse_requirements_text("").is_empty());
    assert_eq!(requirements::parse_requirements_text("x\\"), vec!["x"]);
}

#[test]
fn names_and_versions() {
    assert_eq!(
        requirements::package_name("torch[extra]==2.0"),
        "torch[extra]"
    );
    assert_eq!(requirements::package_name("Pillow>=10"), "Pillow");
    assert_eq!(
        requirements::package_name("--extra-index-url x"),
        "--extra-index-url"
    );
    assert_eq!(requirements::versions("torch>=2.0,<3"), vec!["2.0", "3"]);
    assert_eq!(
        requirements::versions("pkg @ https://x.invalid/y.whl"),
        vec!["https://x.invalid/y.whl"]
    );
    assert!(requirements::versions("numpy").is_empty());
    let pin = requirements::split_pinned(
        "torch==2.1.0 --extra-index-url=https://a.invalid/whl -f https://b.invalid/l",
    )
    .expect("pinned");
    assert_eq!(
        (pin.name.as_str(), pin.version.as_str()),
        ("torch", "2.1.0")
    );
    assert_eq!(pin.extra_index_urls, vec!["https://a.invalid/whl"]);
    assert_eq!(pin.find_links, vec!["https://b.invalid/l"]);
    assert_eq!(requirements::split_pinned("numpy>=1"), None);
}

#[test]
fn rewriting_examples() {
    let cases: [(&str, String, &str, &str); 13] = [
        (
            "spec example",
            gpu("11.8"),
            "torch==2.0.1\npandas==2.0.3\n",
            "--extra-index-url https://download.pytorch.org/whl/cu118/\ntorch==2.0.1\npandas==2.0.3",
        ),
        (
            "cpu torch gets the cpu index",
            CPU.to_string(),
            "torch==2.3.0\n",
            "--extra-index-url https://download.pytorch.org/whl/cpu/\ntorch==2.3.0",
        ),
        (
            "cpu torch with +cpu stays verbatim",
            CPU.to_string(),
            "torch==2.3.0+cpu\n",
            "torch==2.3.0+cpu",
        ),
        (
            "cpu torchvision keeps the row's +cpu",
            CPU.to_string(),
            "torchvision==0.12.0\n",
            "--extra-index-url https://download.pytorch.org/whl/cpu/\ntorchvision==0.12.0+cpu",
        ),
        (
            "cpu torchvision new",
            CPU.to_string(),
            "torchvision==0.18.0\n",
            "--extra-index-url https://download.pytorch.org/whl/cpu/\ntorchvision==0.18.0",
        ),
        (
            "gpu torch+torchvision share an index",
            gpu("12.1"),
            "torch==2.3.0\ntorchvision==0.18.0\n",
            "--extra-index-url https://download.pytorch.org/whl/cu121/\ntorch==2.3.0\ntorchvision==0.18.0",
        ),
        (
            "gpu tie goes to the higher torch",
            gpu("12.1"),
            "torch==2.3\n",
            "--extra-index-url https://download.pytorch.org/whl/cu121/\ntorch==2.3.1",
        ),
        (
            "gpu torch newer than the CUDA stays verbatim",
            gpu("11.8"),
            "torch==2.8.0\n",
            "torch==2.8.0",
        ),
        (
            "inline index is hoisted",
            CPU.to_string(),
            "torch==2.1.0 --extra-index-url=https://a.invalid/whl\n",
            "--extra-index-url https://a.invalid/whl\ntorch==2.1.0",
        ),
        (
            "find-links come first",
            CPU.to_string(),
            "foo==1.0 -f https://b.invalid/links\ntorch==2.3.0\n",
            "--find-links https://b.invalid/links\n--extra-index-url https://download.pytorch.org/whl/cpu/\nfoo==1.0\ntorch==2.3.0",
        ),
        (
            "unpinned and other lines verbatim",
            CPU.to_string(),
            "numpy>=1.26\ngit+https://git.invalid/x/y.git\ntorchaudio==2.3.0\n--pre\n",
            "numpy>=1.26\ngit+https://git.invalid/x/y.git\ntorchaudio==2.3.0\n--pre",
        ),
        (
            "tensorflow gpu is a no-op",
            gpu("11.8"),
            "tensorflow==2.12.0\n",
            "tensorflow==2.12.0",
        ),
        (
            "nothing to install",
            CPU.to_string(),
            "# only a comment\n",
            "",
        ),
    ];
    for (name, build, body, expected) in cases {
        let out = rewritten(&build, body);
        assert_eq!(out.text, expected, "{name}");
        assert!(!out.text.ends_with('\n'), "{name}");
    }
}

#[test]
fn cog_and_coglet_are_removed_with_a_warning() {
    let out = rewritten(
        CPU,
        "numpy==1.26.4\ncog==0.9.0\nCOGLET[extra]>=0.1\nrequests\n",
    );
    assert_eq!(out.text, "numpy==1.26.4\nrequests");
    assert_eq!(
        out.removed_managed,
        vec!["cog==0.9.0", "COGLET[extra]>=0.1"]
    );
    assert_eq!(
        out.warnings,
        vec![
            "'cog==0.9.0' found in requirements — overriding with latest cog from PyPI. Remove it from requirements and use build.sdk_version in cog.yaml or COG_SDK_WHEEL to control the version.",
            "'COGLET[extra]>=0.1' found in requirements — overriding with latest coglet from PyPI. Remove it from requirements and use build.sdk_version in cog.yaml or COGLET_WHEEL to control the version.",
        ]
    );
    let pinned = rewritten(
        "  python_version: \"3.12\"\n  sdk_version: \"0.17.0\"\n",
        "cog\n",
    );
    assert_eq!(pinned.text, "");
    assert_eq!(
        pinned.warnings,
        vec![
            "'cog' found in requirements — overriding with cog==0.17.0 from PyPI. Remove it from requirements and use build.sdk_version in cog.yaml or COG_SDK_WHEEL to control the version."
        ]
    );
    let (_dir, loaded) = load(CPU, "requirements.txt", "cog\n", &[]);
    let custom = ManagedSources {
        cog: "/tmp/cog-0.18.0-py3-none-any.whl".into(),
        coglet: "x".into(),
    };
    let out = requirements::rewrite_with(&loaded.expect("loads"), &custom).expect("rewrite");
    assert!(
        out.warnings[0].contains("overriding with /tmp/cog-0.18.0-py3-none-any.whl."),
        "{:?}",
        out.warnings
    );
}

#[test]
fn local_artifacts_are_resolved_and_rewritten() {
    let (dir, loaded) = load(
        CPU,
        "reqs/requirements.txt",
        "../dist/mypkg-1.0-py3-none-any.whl\nnumpy==1.26.4\n./local/other-2.0.tar.gz\ntorch==2.3.0\n",
        &[
            "dist/mypkg-1.0-py3-none-any.whl",
            "reqs/local/other-2.0.tar.gz",
        ],
    );
    let project = loaded.expect("loads");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let rel: Vec<&str> = project
        .local_artifacts
        .iter()
        .map(|a| a.project_relative.as_str())
        .collect();
    assert_eq!(
        rel,
        vec![
            "dist/mypkg-1.0-py3-none-any.whl",
            "reqs/local/other-2.0.tar.gz"
        ]
    );
    assert_eq!(
        project.local_artifacts[0].path,
        root.join("dist/mypkg-1.0-py3-none-any.whl")
    );
    assert_eq!(
        project.local_artifacts[0].line,
        "../dist/mypkg-1.0-py3-none-any.whl"
    );
    let out = requirements::rewrite(&project).expect("rewrite");
    assert_eq!(
        out.text,
        "--extra-index-url https://download.pytorch.org/whl/cpu/\n/tmp/local_package_artifacts/dist/mypkg-1.0-py3-none-any.whl\nnumpy==1.26.4\n/tmp/local_package_artifacts/reqs/local/other-2.0.tar.gz\ntorch==2.3.0"
    );
    assert_eq!(out.local_artifacts.len(), 2);
}

#[test]
fn python_packages_never_make_local_artifacts() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "predict.py", b"");
    write(dir.path(), "cog.yaml", b"build:\n  python_version: \"3.12\"\n  python_packages:\n    - ./x.whl\npredict: predict.py:Predictor\n");
    let project = config::load(dir.path(), "cog.yaml").expect("loads");
    assert!(project.local_artifacts.is_empty());
    assert_eq!(
        requirements::rewrite(&project).expect("rewrite").text,
        "./x.whl"
    );
}

#[test]
fn rejected_local_forms_name_the_file_and_field() {
    let outside = tempfile::tempdir().expect("outside");
    write(outside.path(), "x.whl", b"PK");
    let outside_whl = outside.path().join("x.whl");
    let body = format!(
        "{abs}\nfile:///w/a.whl\nmypkg @ ./dist/a.whl\n./dist/a.whl --hash=sha256:abc\n./dist/a.whl; python_version>'3'\n./dist/a.whl[extra]\n-r ./other.txt\n--find-links ./wheels\n./pkgdir/\n./dist/missing.whl\n",
        abs = outside_whl.display()
    );
    let (_dir, loaded) = load(CPU, "requirements.txt", &body, &["dist/a.whl"]);
    let error = loaded.expect_err("rejected");
    let expected = vec![
        format!("local Python package artifact \"{}\" must be inside the project directory", outside_whl.display()),
        "local file URL requirements are not supported: file:///w/a.whl".to_string(),
        "local direct reference requirements (`name @ path`) are not supported; list the path directly instead: mypkg @ ./dist/a.whl".to_string(),
        "local package artifact requirements do not support inline options or hashes: ./dist/a.whl --hash=sha256:abc".to_string(),
        "environment markers are not supported on local package artifact requirements: ./dist/a.whl; python_version>'3'".to_string(),
        "extras are not supported on local package artifact requirements: ./dist/a.whl[extra]".to_string(),
        "local requirements option \"-r\" is not supported: -r ./other.txt".to_string(),
        "local requirements option \"--find-links\" is not supported: --find-links ./wheels".to_string(),
        "local package requirement \"./pkgdir/\" is not a supported wheel or source archive".to_string(),
    ];
    assert_eq!(
        error.messages()[..expected.len()],
        expected.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    let last = error.messages()[expected.len()];
    assert!(
        last.starts_with("local Python package artifact \"./dist/missing.whl\" not found: "),
        "{last}"
    );
    for problem in &error.problems {
        assert_eq!(problem.field, "build.python_requirements");
        assert!(!problem.hint.is_empty());
    }
    assert_eq!(error.file, _dir.path().join("cog.yaml"));
}

#[test]
fn symlinks_cannot_smuggle_files_from_outside() {
    let outside = tempfile::tempdir().expect("outside");
    write(outside.path(), "secret.whl", b"PK");
    let (dir, _) = load(CPU, "requirements.txt", "numpy\n", &[]);
    std::os::unix::fs::symlink(
        outside.path().join("secret.whl"),
        dir.path().join("link.whl"),
    )
    .expect("symlink");
    std::fs::create_dir(dir.path().join("dist")).expect("mkdir");
    std::fs::write(dir.path().join("dist/real.whl"), b"PK").expect("write");
    std::os::unix::fs::symlink(dir.path().join("dist"), dir.path().join("dist-link"))
        .expect("symlink");
    std::fs::write(
        dir.path().join("requirements.txt"),
        "./link.whl\n./dist-link/real.whl\n",
    )
    .expect("write");
    let error = config::load(dir.path(), "cog.yaml").expect_err("outside via symlink");
    assert_eq!(
        error.messages(),
        vec!["local Python package artifact \"./link.whl\" must be inside the project directory"]
    );
    std::fs::write(
        dir.path().join("requirements.txt"),
        "./dist-link/real.whl\n",
    )
    .expect("write");
    let project = config::load(dir.path(), "cog.yaml").expect("symlinked dir inside project");
    assert_eq!(project.local_artifacts[0].project_relative, "dist/real.whl");
}
