//! Bad input: unknown packages, conflicts, stale locks, bad hashes,
//! truncated downloads, zip-slip wheels and sources that need a compiler.

#[path = "python_common.rs"]
mod common;

use cogpack::python::{LockMode, lock, wheel};
use common::*;
use std::io::{Read as _, Write as _};
use std::path::Path;

fn err_text(r: anyhow::Result<cogpack::python::PythonLayers>) -> String {
    format!("{:#}", r.expect_err("build must fail"))
}

#[test]
fn unknown_package_reports_uvs_message() {
    uv();
    let work = tempfile::tempdir().unwrap();
    let err = err_text(build(&request(
        work.path(),
        &work.path().join("c"),
        "cogpack-no-such-package-zzq==1.0\n",
    )));
    assert!(
        err.contains("cogpack-no-such-package-zzq")
            && err.contains("not found in the package registry"),
        "{err}"
    );
    assert!(err.contains("Hint:"), "{err}");
    assert!(
        !work.path().join("pylock.cogpack.toml").exists(),
        "no lock written on failure"
    );
}

#[test]
fn version_conflict_reports_uvs_explanation() {
    uv();
    let work = tempfile::tempdir().unwrap();
    let err = err_text(build(&request(
        work.path(),
        &work.path().join("c"),
        "requests==2.32.3\nurllib3==1.0\n",
    )));
    assert!(
        err.contains("unsatisfiable") && err.contains("urllib3"),
        "{err}"
    );
}

#[test]
fn missing_uv_binary_gives_install_hint() {
    let work = tempfile::tempdir().unwrap();
    let mut req = request(work.path(), &work.path().join("c"), "requests\n");
    req.uv = Some(work.path().join("no-uv-here"));
    let err = err_text(build(&req));
    assert!(err.contains("pip install uv"), "{err}");
}

#[test]
fn stale_lock_is_an_error_under_locked() {
    uv();
    let work = tempfile::tempdir().unwrap();
    let mut req = request(work.path(), &work.path().join("c"), "msgpack==1.1.0\n");
    build(&req).unwrap();
    req.inputs.requirements = "msgpack==1.0.8\n".into();
    req.mode = LockMode::Locked;
    let err = err_text(build(&req));
    assert!(
        err.contains("out of date") && err.contains("pylock.cogpack.toml"),
        "{err}"
    );
    req.mode = LockMode::Update;
    let layers = build(&req).expect("re-resolve");
    assert!(layers.pip_freeze.contains("msgpack==1.0.8"));
}

#[test]
fn bad_hash_in_lock_is_refused_and_not_cached() {
    uv();
    let work = tempfile::tempdir().unwrap();
    let mut req = request(work.path(), &work.path().join("c"), "msgpack==1.1.0\n");
    build(&req).unwrap();
    let lock_path = work.path().join("pylock.cogpack.toml");
    let text = std::fs::read_to_string(&lock_path).unwrap();
    let parsed = lock::read_lock(&lock_path).unwrap();
    let msgpack = parsed
        .packages
        .iter()
        .find(|p| p.name == "msgpack")
        .unwrap();
    let lock::Source::Index { wheels, .. } = &msgpack.source else {
        panic!("index source")
    };
    let mut tampered = text.clone();
    for w in wheels {
        tampered = tampered.replace(w.sha256.as_deref().unwrap(), &"0".repeat(64));
    }
    std::fs::write(&lock_path, tampered).unwrap();
    req.cache_dir = work.path().join("fresh-cache");
    req.mode = LockMode::Locked;
    let err = err_text(build(&req));
    assert!(
        err.contains("msgpack") && err.contains("but the lock expects 0000"),
        "{err}"
    );
    let cached: Vec<_> = std::fs::read_dir(work.path().join("fresh-cache/wheels/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !cached.iter().any(|n| n.to_string_lossy() == "0".repeat(64)),
        "nothing cached under the bad digest"
    );
}

/// A server that promises `len` bytes and sends only 10, then closes.
fn truncating_server(len: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4).flatten() {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n0123456789"
            );
            let _ = s.flush();
        }
    });
    port
}

fn write_handmade_lock(
    project: &Path,
    req: &cogpack::python::PythonBuildRequest,
    package_toml: &str,
) {
    let fp = lock::inputs_fingerprint(&req.inputs, &req.target, &req.index, project);
    let text = format!(
        "lock-version = \"1.0\"\ncreated-by = \"test\"\n\n{package_toml}\n[tool.cogpack]\ninputs-sha256 = \"{fp}\"\n"
    );
    std::fs::write(project.join("pylock.cogpack.toml"), text).unwrap();
}

#[test]
fn truncated_download_is_reported_and_not_cached() {
    let work = tempfile::tempdir().unwrap();
    let port = truncating_server(5000);
    let mut req = request(work.path(), &work.path().join("c"), "trunc==1.0\n");
    req.mode = LockMode::Locked;
    let pkg = format!(
        "[[packages]]\nname = \"trunc\"\nversion = \"1.0\"\nwheels = [{{ url = \"http://127.0.0.1:{port}/trunc-1.0-py3-none-any.whl\", size = 5000, hashes = {{ sha256 = \"{}\" }} }}]\n",
        "ab".repeat(32)
    );
    write_handmade_lock(work.path(), &req, &pkg);
    let err = err_text(build(&req));
    assert!(
        err.contains("trunc") && err.contains("truncated after 10 of 5000 bytes"),
        "{err}"
    );
    assert!(
        !work
            .path()
            .join("c/wheels/sha256")
            .join("ab".repeat(32))
            .exists()
    );
}

#[test]
fn zip_slip_wheel_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("evil-1.0-py3-none-any.whl");
    write_wheel(
        &path,
        "evil",
        "1.0",
        &[
            ("evil/__init__.py", b""),
            ("../../../../etc/evil.conf", b"x"),
        ],
        false,
    );
    let target = cogpack::python::PythonTarget::usr_local("3.11", (2, 36));
    let err = format!(
        "{:#}",
        wheel::install_wheel(&path, &target, None).expect_err("zip-slip")
    );
    assert!(
        err.contains("zip-slip") && err.contains("../../../../etc/evil.conf"),
        "{err}"
    );

    // Through the whole pipeline, from a wheel in the project.
    let mut req = request(
        work.path(),
        &work.path().join("c"),
        "./evil-1.0-py3-none-any.whl\n",
    );
    req.uv = None;
    uv();
    let err = err_text(build(&req));
    assert!(err.contains("zip-slip"), "{err}");
}

fn c_extension_project(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("setup.py"),
        format!("from setuptools import setup, Extension\nsetup(name='{name}', version='0.1', ext_modules=[Extension('{name}', sources=['{name}.c'])])\n"),
    )
    .unwrap();
    std::fs::write(dir.join("pyproject.toml"), "[build-system]\nrequires = [\"setuptools==75.6.0\"]\nbuild-backend = \"setuptools.build_meta\"\n").unwrap();
    std::fs::write(dir.join(format!("{name}.c")), "#include <Python.h>\n").unwrap();
}

#[test]
fn sources_needing_a_compiler_are_named_in_one_error() {
    uv();
    let work = tempfile::tempdir().unwrap();
    c_extension_project(&work.path().join("cextone"), "cextone");
    c_extension_project(&work.path().join("cexttwo"), "cexttwo");
    let req = request(
        work.path(),
        &work.path().join("c"),
        "./cextone\n./cexttwo\nmsgpack==1.1.0\n",
    );
    let err = err_text(build(&req));
    assert!(
        err.contains("cextone, cexttwo") && err.contains("--backend docker"),
        "{err}"
    );
}

#[test]
fn member_not_matching_the_wheels_record_fails_when_streamed() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("liar-1.0-py3-none-any.whl");
    let wrong =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"other"));
    let good =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"ok\n"));
    let record = format!(
        "liar/bad.py,sha256={wrong},6\nliar/good.py,sha256={good},3\nliar-1.0.dist-info/RECORD,,\n"
    );
    write_wheel(
        &path,
        "liar",
        "1.0",
        &[
            ("liar/bad.py", b"evil!\n"),
            ("liar/good.py", b"ok\n"),
            (
                "liar-1.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: liar\nVersion: 1.0\n",
            ),
            (
                "liar-1.0.dist-info/WHEEL",
                b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            ),
            ("liar-1.0.dist-info/RECORD", record.as_bytes()),
        ],
        true,
    );
    let target = cogpack::python::PythonTarget::usr_local("3.11", (2, 36));
    let installed = wheel::install_wheel(&path, &target, None).unwrap();
    let good_entry: Vec<_> = installed
        .entries
        .iter()
        .filter(|e| e.path.ends_with("liar/good.py"))
        .cloned()
        .collect();
    cogpack::python::materialize(&good_entry, &work.path().join("ok"))
        .expect("matching member streams");
    let err = cogpack::python::materialize(&installed.entries, &work.path().join("root"))
        .expect_err("mismatch detected");
    assert!(
        format!("{err:#}").contains("liar/bad.py") && format!("{err:#}").contains("RECORD"),
        "{err:#}"
    );
}
