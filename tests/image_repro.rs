//! Reproducibility: the same project built from two copies in different
//! directories (different mtimes, creation order, umask, TZ, HOME) into two
//! empty stores gives the same manifest digest; SOURCE_DATE_EPOCH changes it
//! and is honoured in the config and the tar headers.
//!
//! Each build runs in a child process of this test binary (the
//! `build_in_child` test in child mode), so umask, TZ and HOME really differ.

use cogpack::layer::fetch::generated_file;
use cogpack::layer::source::{SourceOptions, scan_source_tree};
use cogpack::layer::{Entry, LayerJob, LayerOptions, build_layers};
use cogpack::oci::Image;
use cogpack::oci::image::{AddedLayer, BaseImage, ConfigAdditions, ImageSpec, assemble};
use cogpack::oci::layout::{read_base, write_layout};
use cogpack::oci::store::Store;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

const FILES: &[(&str, &str, u32)] = &[
    (
        "cog.yaml",
        "build:\n  python_version: \"3.11\"\npredict: predict.py:Predictor\n",
        0o644,
    ),
    (
        "predict.py",
        "from cog import BasePredictor\n\nclass Predictor(BasePredictor):\n    def predict(self) -> str:\n        return 'hi'\n",
        0o644,
    ),
    ("lib/util.py", "X = 1\n", 0o644),
    ("lib/__init__.py", "", 0o644),
    ("scripts/setup.sh", "#!/bin/sh\necho setup\n", 0o755),
    ("data/table.csv", "a,b\n1,2\n", 0o640),
    ("notes/ignored.md", "not shipped\n", 0o644),
    (".dockerignore", "notes\n*.pyc\n", 0o644),
];

/// Writes the fixture project; `reverse` creates files in the opposite
/// order, `mtime` is applied to every file and directory.
fn write_project(root: &Path, reverse: bool, mtime: &str) {
    let mut files: Vec<_> = FILES.to_vec();
    if reverse {
        files.reverse();
    }
    for (rel, text, mode) in files {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::write(root.join("junk.pyc"), b"\0\0").unwrap();
    symlink("lib/util.py", root.join("util_link.py")).unwrap();
    for dir in ["", "lib", "scripts", "data", "notes"] {
        fs::set_permissions(root.join(dir), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let status = Command::new("find")
        .arg(root)
        .args(["-exec", "touch", "-h", "-d", mtime, "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A small base image in an OCI layout (tag `base`).
fn write_base_layout(dir: &Path) {
    let store = Store::open(dir.join("store")).unwrap();
    let entries = vec![
        Entry::file_bytes("etc/os-release", 0o644, b"ID=debian\n".to_vec()),
        Entry::symlink("bin/python", "python3"),
        Entry::file_bytes("usr/bin/python3", 0o755, b"#!/bin/sh\n".to_vec()),
    ];
    let layers = build_layers(
        vec![LayerJob {
            entries,
            cache_key: None,
        }],
        LayerOptions::default(),
        &store,
    )
    .unwrap();
    let spec = ImageSpec {
        base: BaseImage::scratch(),
        layers: vec![AddedLayer {
            record: layers[0].record.clone(),
            created_by: "base".into(),
            comment: None,
        }],
        config: ConfigAdditions {
            env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
            cmd: Some(vec!["python3".into()]),
            ..Default::default()
        },
        source_date_epoch: None,
    };
    let image = assemble(&spec, &store).unwrap();
    write_layout(&image, &dir.join("layout"), Some("base")).unwrap();
}

/// The build a CLI would do: base from the layout, source layers,
/// generated `/src/.cog/openapi_schema.json`, cog's config.
fn build(project: &Path, store_dir: &Path, base_layout: &Path, sde: Option<u64>) -> String {
    let store = Store::open(store_dir).unwrap();
    let _session = store.session().unwrap();
    let base = read_base(&format!("{}:base", base_layout.display()), &store).unwrap();
    let opts = LayerOptions {
        mtime: sde.unwrap_or(0),
        ..LayerOptions::default()
    };
    let tree = scan_source_tree(project, &SourceOptions::default()).unwrap();
    let mut jobs = tree.jobs();
    jobs.push(LayerJob {
        entries: vec![generated_file(
            "src/.cog/openapi_schema.json",
            b"{\"openapi\":\"3.0.2\"}".to_vec(),
        )],
        cache_key: None,
    });
    let built = build_layers(jobs, opts, &store).unwrap();
    let layers = built
        .into_iter()
        .map(|b| AddedLayer {
            record: b.record,
            created_by: "COPY . /src".into(),
            comment: None,
        })
        .collect();
    let spec = ImageSpec {
        base,
        layers,
        config: ConfigAdditions {
            env: vec![("PYTHONUNBUFFERED".into(), "1".into())],
            entrypoint: Some(vec!["/sbin/tini".into(), "--".into()]),
            cmd: Some(vec!["python".into(), "-m".into(), "cog.server.http".into()]),
            workdir: Some("/src".into()),
            exposed_ports: vec!["5000/tcp".into()],
            labels: vec![("run.cog.has_init".into(), "true".into())],
            ..Default::default()
        },
        source_date_epoch: sde,
    };
    let image = assemble(&spec, &store).unwrap();
    store
        .tag_image("repro:latest", &image.descriptor())
        .unwrap();
    Image::digest(&image).to_string()
}

/// Child mode (env `REPRO_PROJECT` etc. set by the parent): build and write
/// the digest. Normal mode: two builds into one store agree.
#[test]
fn build_in_child() {
    if let Ok(project) = std::env::var("REPRO_PROJECT") {
        let sde = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .map(|s| s.parse().unwrap());
        let digest = build(
            Path::new(&project),
            Path::new(&std::env::var("REPRO_STORE").unwrap()),
            Path::new(&std::env::var("REPRO_BASE").unwrap()),
            sde,
        );
        fs::write(std::env::var("REPRO_OUT").unwrap(), digest).unwrap();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    write_base_layout(tmp.path());
    let project = tmp.path().join("p");
    write_project(&project, false, "2001-02-03 04:05:06");
    let base = tmp.path().join("layout");
    let a = build(&project, &tmp.path().join("s"), &base, None);
    let b = build(&project, &tmp.path().join("s"), &base, None);
    assert_eq!(a, b);
}

struct Child<'a> {
    project: &'a Path,
    store: &'a Path,
    base: &'a Path,
    umask: &'a str,
    tz: &'a str,
    home: &'a Path,
    sde: Option<u64>,
}

fn run_child(c: Child) -> String {
    let out_file = c.store.with_extension("digest");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "umask {}; exec \"$0\" --exact build_in_child --test-threads=1",
            c.umask
        ))
        .arg(std::env::current_exe().unwrap())
        .env("REPRO_PROJECT", c.project)
        .env("REPRO_STORE", c.store)
        .env("REPRO_BASE", c.base)
        .env("REPRO_OUT", &out_file)
        .env("TZ", c.tz)
        .env("HOME", c.home)
        .env_remove("SOURCE_DATE_EPOCH");
    if let Some(s) = c.sde {
        cmd.env("SOURCE_DATE_EPOCH", s.to_string());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    fs::read_to_string(out_file).unwrap()
}

#[test]
fn two_copies_two_stores_one_digest_and_source_date_epoch_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    write_base_layout(tmp.path());
    let base = tmp.path().join("layout");
    let a = tmp.path().join("first/some/deep/place/proj");
    let b = tmp.path().join("second-copy");
    write_project(&a, false, "2001-02-03 04:05:06");
    write_project(&b, true, "2024-12-31 23:59:59");
    let (home_a, home_b) = (tmp.path().join("home-a"), tmp.path().join("home-b"));
    let da = run_child(Child {
        project: &a,
        store: &tmp.path().join("store-a"),
        base: &base,
        umask: "022",
        tz: "UTC",
        home: &home_a,
        sde: None,
    });
    let db = run_child(Child {
        project: &b,
        store: &tmp.path().join("store-b"),
        base: &base,
        umask: "077",
        tz: "Asia/Kathmandu",
        home: &home_b,
        sde: None,
    });
    assert!(da.starts_with("sha256:") && da.len() == 71, "{da}");
    assert_eq!(da, db, "same project, different places and environments");

    let dc = run_child(Child {
        project: &b,
        store: &tmp.path().join("store-c"),
        base: &base,
        umask: "022",
        tz: "UTC",
        home: &home_b,
        sde: Some(1_700_000_000),
    });
    assert_ne!(da, dc, "SOURCE_DATE_EPOCH changes the digest");
    let store = Store::open(tmp.path().join("store-c")).unwrap();
    let image = cogpack::oci::image::StoreImage::load_named(&store, "repro:latest").unwrap();
    let config: serde_json::Value = serde_json::from_slice(image.config_bytes()).unwrap();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    let history = config["history"].as_array().unwrap();
    assert!(
        history.last().unwrap()["comment"]
            .as_str()
            .unwrap()
            .contains("SOURCE_DATE_EPOCH=1700000000")
    );
    let top = image.layers().last().unwrap().clone();
    let listing = Command::new("tar")
        .args(["-tvz", "--full-time", "-f"])
        .arg(store.blob_path(top.digest()))
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let text = String::from_utf8(listing.stdout).unwrap();
    assert!(
        text.lines().all(|l| l.contains("2023-11-14 22:13:20")),
        "{text}"
    );
}
