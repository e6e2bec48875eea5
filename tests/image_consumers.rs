//! Real consumers read our output: skopeo (inspect/copy of `oci:`,
//! `oci-archive:` and `docker-archive:`), umoci (unpack), GNU tar (listing
//! the layers). `/sbin/tini` is Debian's static tini binary served from a
//! loopback HTTP server and fetched with a pinned SHA-256.
//!
//! Needs: skopeo, umoci, tini (for /usr/bin/tini-static), tar, gzip.

use cogpack::layer::fetch::{FixedFile, fetch_fixed_file, generated_file};
use cogpack::layer::source::{SourceOptions, scan_source_tree};
use cogpack::layer::{Entry, LayerError, LayerJob, LayerOptions, build_layers};
use cogpack::oci::image::{
    AddedLayer, BaseImage, ConfigAdditions, ImageSpec, StoreImage, assemble,
};
use cogpack::oci::layout::{read_base, write_layout};
use cogpack::oci::output::OutputTarget;
use cogpack::oci::store::Store;
use cogpack::oci::{Digest, Image};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

const TINI: &str = "/usr/bin/tini-static";

/// Serves `body` for every GET on 127.0.0.1 until `requests` were answered.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    });
    format!("http://{addr}/tini")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn project(root: &Path) {
    for (rel, text, mode) in [
        ("predict.py", "def predict(): return 'hello'\n", 0o644),
        ("cog.yaml", "predict: predict.py:predict\n", 0o644),
        ("bin/tool.sh", "#!/bin/sh\necho tool\n", 0o755),
        ("data/private.txt", "p\n", 0o600),
    ] {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    symlink("../predict.py", root.join("bin/predict_link.py")).unwrap();
}

fn base_layout(dir: &Path) {
    let store = Store::open(dir.join("base-store")).unwrap();
    let entries = vec![
        Entry::file_bytes("etc/os-release", 0o644, b"ID=debian\n".to_vec()),
        Entry::symlink("usr/bin/python", "python3"),
        Entry::file_bytes("usr/bin/python3", 0o755, b"#!/bin/sh\n".to_vec()),
        Entry::file_bytes("src/stale.txt", 0o644, b"removed above\n".to_vec()),
    ];
    let built = build_layers(
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
            record: built[0].record.clone(),
            created_by: "debian base".into(),
            comment: None,
        }],
        config: ConfigAdditions {
            env: vec![
                ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ],
            cmd: Some(vec!["python3".into()]),
            labels: vec![("org.example.base".into(), "yes".into())],
            ..Default::default()
        },
        source_date_epoch: None,
    };
    write_layout(
        &assemble(&spec, &store).unwrap(),
        &dir.join("base"),
        Some("3.11"),
    )
    .unwrap();
}

/// Builds the test image and returns it with its store.
fn build_image(tmp: &Path) -> (StoreImage, Store) {
    let tini_bytes = fs::read(TINI).expect("apt-get install -y tini");
    let url = serve(tini_bytes.clone(), 1);
    let store = Store::open(tmp.join("store")).unwrap();
    base_layout(tmp);
    let base = read_base(
        &format!("oci-layout:{}:3.11", tmp.join("base").display()),
        &store,
    )
    .unwrap();
    let tini = FixedFile {
        url,
        sha256: Digest::of_bytes(&tini_bytes),
        dest: "sbin/tini".into(),
        mode: 0o755,
    };
    let tini_entry = fetch_fixed_file(&tini, &store).unwrap();
    let proj = tmp.join("proj");
    project(&proj);
    let mut jobs = vec![LayerJob {
        entries: vec![tini_entry],
        cache_key: Some(tini.cache_key()),
    }];
    jobs.extend(
        scan_source_tree(&proj, &SourceOptions::default())
            .unwrap()
            .jobs(),
    );
    jobs.push(LayerJob {
        entries: vec![
            generated_file(
                "src/.cog/openapi_schema.json",
                b"{\"openapi\":\"3.0.2\"}".to_vec(),
            ),
            Entry {
                path: "src/stale.txt".into(),
                kind: cogpack::layer::EntryKind::Whiteout,
                mode: 0,
                uid: 0,
                gid: 0,
            },
        ],
        cache_key: None,
    });
    let built = build_layers(jobs, LayerOptions::default(), &store).unwrap();
    let names = ["tini", "COPY . /src", "COPY .cog"];
    let layers = built
        .into_iter()
        .zip(names)
        .map(|(b, n)| AddedLayer {
            record: b.record,
            created_by: n.into(),
            comment: None,
        })
        .collect();
    let spec = ImageSpec {
        base,
        layers,
        config: ConfigAdditions {
            env: vec![
                ("PYTHONUNBUFFERED".into(), "1".into()),
                (
                    "PATH".into(),
                    "/root/.local/bin:/usr/local/bin:/usr/bin:/bin".into(),
                ),
            ],
            entrypoint: Some(vec!["/sbin/tini".into(), "--".into()]),
            cmd: Some(vec!["python".into(), "-m".into(), "cog.server.http".into()]),
            workdir: Some("/src".into()),
            exposed_ports: vec!["5000/tcp".into()],
            labels: vec![("run.cog.has_init".into(), "true".into())],
            ..Default::default()
        },
        source_date_epoch: None,
    };
    (assemble(&spec, &store).unwrap(), store)
}

fn inspect(target: &str) -> Value {
    serde_json::from_str(&run(Command::new("skopeo").args(["inspect", target]))).unwrap()
}

#[test]
fn skopeo_reads_every_output_and_umoci_unpacks_the_expected_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let (image, store) = build_image(tmp.path());
    let digest = image.digest().to_string();
    let layout = tmp.path().join("out-layout");
    let oci_archive = tmp.path().join("image.oci.tar");
    let docker_archive = tmp.path().join("image.docker.tar");
    for spec in [
        format!("oci:{}:v1", layout.display()),
        format!("oci-archive:{}:v1", oci_archive.display()),
        format!("docker-archive:{}", docker_archive.display()),
    ] {
        OutputTarget::parse(&spec)
            .unwrap()
            .write(&image, Some("cog-model"))
            .unwrap();
    }

    let config: Value = serde_json::from_slice(image.config_bytes()).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].clone();
    assert_eq!(diff_ids.as_array().unwrap().len(), 4);
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!([
            "PATH=/root/.local/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG=C.UTF-8",
            "PYTHONUNBUFFERED=1"
        ]),
        "ENV replaces in place and appends new names"
    );

    let from_layout = inspect(&format!("oci:{}:v1", layout.display()));
    assert_eq!(from_layout["Digest"], digest);
    assert_eq!(from_layout["Labels"]["run.cog.has_init"], "true");
    assert_eq!(from_layout["Labels"]["org.example.base"], "yes");
    let ours: Vec<String> = image
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    assert_eq!(from_layout["Layers"], serde_json::json!(ours));
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:v1", layout.display()),
    ]));
    assert_eq!(raw.as_bytes(), image.manifest_bytes());

    let from_archive = inspect(&format!("oci-archive:{}:v1", oci_archive.display()));
    assert_eq!(from_archive["Digest"], digest);

    let from_docker = inspect(&format!("docker-archive:{}", docker_archive.display()));
    assert_eq!(from_docker["Labels"]["run.cog.has_init"], "true");
    assert_eq!(from_docker["Layers"].as_array().unwrap().len(), 4);
    let docker_manifest: Value = serde_json::from_str(&run(Command::new("tar")
        .args(["-xOf"])
        .arg(&docker_archive)
        .arg("manifest.json")))
    .unwrap();
    assert_eq!(
        docker_manifest[0]["RepoTags"],
        serde_json::json!(["cog-model:latest"])
    );
    let docker_cfg: Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("docker-archive:{}", docker_archive.display()),
    ])))
    .unwrap();
    assert_eq!(docker_cfg["rootfs"]["diff_ids"], diff_ids);

    for (src, tag) in [
        (
            format!("docker-archive:{}", docker_archive.display()),
            "from-docker",
        ),
        (
            format!("oci-archive:{}:v1", oci_archive.display()),
            "from-oci-archive",
        ),
    ] {
        let dest = format!("oci:{}:{tag}", tmp.path().join("copies").display());
        run(Command::new("skopeo").args(["copy", "--quiet", &src, &dest]));
        let copied: Value = serde_json::from_str(&run(
            Command::new("skopeo").args(["inspect", "--config", &dest])
        ))
        .unwrap();
        assert_eq!(copied["rootfs"]["diff_ids"], diff_ids, "{tag}");
        assert_eq!(
            copied["config"]["Entrypoint"],
            serde_json::json!(["/sbin/tini", "--"])
        );
    }

    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:v1", layout.display())])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let expected = expected_tree(&image, &store);
    assert_eq!(unpacked_tree(&rootfs), expected);
    assert!(!rootfs.join("src/stale.txt").exists(), "whiteout honoured");
    let version = run(Command::new(rootfs.join("sbin/tini")).arg("--version"));
    assert!(version.contains("tini version"), "{version}");
    assert_eq!(
        fs::read(rootfs.join("sbin/tini")).unwrap(),
        fs::read(TINI).unwrap()
    );
}

/// path → "type mode [-> target]" from `tar -tv` listings of every layer,
/// applying whiteouts, as an independent view of the final tree.
fn expected_tree(image: &StoreImage, store: &Store) -> BTreeMap<String, String> {
    let mut tree = BTreeMap::new();
    for layer in image.layers() {
        let listing = run(Command::new("tar")
            .args(["--numeric-owner", "-tvzf"])
            .arg(store.blob_path(layer.digest())));
        for line in listing.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let perms = fields[0];
            assert_eq!(fields[1], "0/0", "{line}");
            let rest = fields[5..].join(" ");
            let (name, target) = match rest.split_once(" -> ") {
                Some((n, t)) => (n.to_string(), Some(t.to_string())),
                None => (rest.clone(), None),
            };
            let name = name.trim_end_matches('/').to_string();
            let base = name.rsplit('/').next().unwrap();
            if let Some(deleted) = base.strip_prefix(".wh.") {
                let dir = name
                    .rsplit_once('/')
                    .map(|(d, _)| format!("{d}/"))
                    .unwrap_or_default();
                tree.remove(&format!("{dir}{deleted}"));
                continue;
            }
            let desc = match target {
                Some(t) => format!("{perms} -> {t}"),
                None => perms.to_string(),
            };
            tree.insert(name, desc);
        }
    }
    tree
}

/// The same description, read from the unpacked rootfs.
fn unpacked_tree(rootfs: &Path) -> BTreeMap<String, String> {
    let mut tree = BTreeMap::new();
    for entry in walkdir::WalkDir::new(rootfs).min_depth(1) {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(rootfs)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let meta = entry.path().symlink_metadata().unwrap();
        let kind = if meta.file_type().is_dir() {
            'd'
        } else if meta.file_type().is_symlink() {
            'l'
        } else {
            '-'
        };
        let mode = meta.mode();
        let bits: String = (0..9)
            .map(|i| {
                let on = mode & (0o400 >> i) != 0;
                if on { ['r', 'w', 'x'][i % 3] } else { '-' }
            })
            .collect();
        let mut desc = format!("{kind}{bits}");
        if kind == 'l' {
            desc = format!(
                "{desc} -> {}",
                fs::read_link(entry.path()).unwrap().display()
            );
        }
        tree.insert(rel, desc);
    }
    tree
}

#[test]
fn a_fixed_file_with_the_wrong_digest_is_refused_and_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let url = serve(b"not tini at all".to_vec(), 1);
    let pinned = Digest::of_bytes(&fs::read(TINI).unwrap());
    let file = FixedFile {
        url: url.clone(),
        sha256: pinned.clone(),
        dest: "sbin/tini".into(),
        mode: 0o755,
    };
    let err = fetch_fixed_file(&file, &store).unwrap_err();
    assert!(matches!(err, LayerError::FetchDigest { .. }));
    let text = err.to_string();
    assert!(
        text.contains(&url) && text.contains(&format!("expected {pinned}")),
        "{text}"
    );
    assert!(!store.has_blob(&pinned));
    assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    let refused = FixedFile {
        url: "http://127.0.0.1:9/tini".into(),
        ..file
    };
    let text = fetch_fixed_file(&refused, &store).unwrap_err().to_string();
    assert!(
        text.contains("cannot download http://127.0.0.1:9/tini"),
        "{text}"
    );
}
