//! HuggingFace and HTTP sources against a loopback server that answers like
//! the Hub API (revision, paginated recursive tree with `Link`, LFS entries,
//! `resolve/` downloads, 401/404, transient 503s).

#[path = "weights_support.rs"]
mod support;

use cogpack::config::{WeightDecl, WeightSource};
use cogpack::oci::Digest;
use cogpack::weights::drift::PlanStatus;
use cogpack::weights::import::{ImportOptions, import_weights};
use cogpack::weights::layerio::compute_layer;
use cogpack::weights::lockfile::LockFile;
use cogpack::weights::pack::Compression;
use cogpack::weights::source::SourceOptions;
use cogpack::weights::spec::WeightSpec;
use cogpack::weights::store::WeightStore;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SHA: &str = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41";
const TOKEN: &str = "hf_secret_token_value";

/// What the fake hub serves and what it saw.
#[derive(Default)]
struct Hub {
    files: HashMap<String, Vec<u8>>,
    log: Vec<(String, Option<String>)>,
    revision_failures_left: usize,
}

struct Server {
    port: u16,
    hub: Arc<Mutex<Hub>>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Digest::of_bytes(bytes).hex().to_string()
}

fn big_model() -> Vec<u8> {
    static MODEL: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("model");
            support::write_random_file(&path, 70 * 1024 * 1024, 7);
            std::fs::read(path).unwrap()
        })
        .clone()
}

fn start_hub() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hub = Arc::new(Mutex::new(Hub {
        revision_failures_left: 2,
        ..Default::default()
    }));
    {
        let mut h = hub.lock().unwrap();
        h.files
            .insert("config.json".into(), b"{\"hidden_size\": 384}".to_vec());
        h.files
            .insert("tokenizer.json".into(), b"{\"vocab\": [1,2,3]}".to_vec());
        h.files.insert("onnx/model.onnx".into(), vec![9u8; 1000]);
        h.files.insert("model.safetensors".into(), big_model());
        h.files
            .insert("weights.bin".into(), b"real content".to_vec());
        h.files
            .insert("files/noetag.bin".into(), b"plain file".to_vec());
    }
    let shared = hub.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let hub = shared.clone();
            std::thread::spawn(move || handle(stream, port, &hub));
        }
    });
    Server { port, hub }
}

fn handle(stream: std::net::TcpStream, port: u16, hub: &Mutex<Hub>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut auth = None;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            auth = Some(v.trim().to_string());
        }
    }
    hub.lock().unwrap().log.push((target.clone(), auth.clone()));
    let (status, headers, body) = route(&target, auth.as_deref(), port, hub);
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = out.write_all(&body);
    }
}

type Reply = (&'static str, Vec<(String, String)>, Vec<u8>);

fn json(status: &'static str, body: String) -> Reply {
    (
        status,
        vec![("Content-Type".into(), "application/json".into())],
        body.into_bytes(),
    )
}

fn route(target: &str, auth: Option<&str>, port: u16, hub: &Mutex<Hub>) -> Reply {
    let not_found = || {
        json(
            "404 Not Found",
            r#"{"error":"Repository not found"}"#.into(),
        )
    };
    if target.starts_with("/api/models/org/private/") && auth != Some(&format!("Bearer {TOKEN}")) {
        return json(
            "401 Unauthorized",
            r#"{"error":"Invalid credentials in Authorization header"}"#.into(),
        );
    }
    if target.starts_with("/api/models/org/missing/") {
        return not_found();
    }
    if let Some(rest) = target.strip_prefix("/api/models/") {
        let (repo, tail) =
            rest.split_at(rest.find("/revision/").or(rest.find("/tree/")).unwrap_or(0));
        if tail.starts_with("/revision/") {
            let mut h = hub.lock().unwrap();
            if repo == "org/model" && h.revision_failures_left > 0 {
                h.revision_failures_left -= 1;
                return ("503 Service Unavailable", vec![], b"busy".to_vec());
            }
            return json(
                "200 OK",
                format!(r#"{{"id":"{repo}","sha":"{SHA}","siblings":[]}}"#),
            );
        }
        if tail.starts_with(&format!("/tree/{SHA}")) {
            return tree_page(repo, tail.contains("cursor=page2"), port, hub);
        }
        return not_found();
    }
    if let Some(rest) = target.strip_prefix("/files/") {
        let h = hub.lock().unwrap();
        let body = h.files.get(&format!("files/{rest}")).cloned();
        return match (rest, body) {
            ("noetag.bin", Some(b)) => ("200 OK", vec![], b),
            ("weak.bin", _) => (
                "200 OK",
                vec![("ETag".into(), "W/\"weak\"".into())],
                b"weak".to_vec(),
            ),
            ("tagged.bin", _) => (
                "200 OK",
                vec![("ETag".into(), "\"v1-abc\"".into())],
                b"tagged".to_vec(),
            ),
            _ => not_found(),
        };
    }
    let prefix_len = target.find(&format!("/resolve/{SHA}/"));
    if let Some(i) = prefix_len {
        let path = &target[i + format!("/resolve/{SHA}/").len()..];
        let h = hub.lock().unwrap();
        return match h.files.get(path) {
            Some(b) => ("200 OK", vec![], b.clone()),
            None => not_found(),
        };
    }
    not_found()
}

fn entry(path: &str, bytes: &[u8], lfs: bool) -> String {
    if lfs {
        format!(
            r#"{{"type":"file","oid":"0123456789abcdef0123456789abcdef01234567","size":134,"path":"{path}","lfs":{{"oid":"{}","size":{},"pointerSize":134}}}}"#,
            sha256_hex(bytes),
            bytes.len()
        )
    } else {
        format!(
            r#"{{"type":"file","oid":"0123456789abcdef0123456789abcdef01234567","size":{},"path":"{path}"}}"#,
            bytes.len()
        )
    }
}

fn tree_page(repo: &str, second: bool, port: u16, hub: &Mutex<Hub>) -> Reply {
    let h = hub.lock().unwrap();
    let f = |p: &str| h.files.get(p).cloned().unwrap();
    if repo == "org/tampered" {
        let claimed = entry("weights.bin", b"what the listing claims", true);
        return json("200 OK", format!("[{claimed}]"));
    }
    if !second {
        let body = format!(
            "[{},{{\"type\":\"directory\",\"oid\":\"0\",\"size\":0,\"path\":\"onnx\"}},{}]",
            entry("config.json", &f("config.json"), false),
            entry("model.safetensors", &f("model.safetensors"), true)
        );
        let next = format!(
            "<http://127.0.0.1:{port}/api/models/{repo}/tree/{SHA}?recursive=true&cursor=page2>; rel=\"next\""
        );
        let mut reply = json("200 OK", body);
        reply.1.push(("Link".into(), next));
        return reply;
    }
    json(
        "200 OK",
        format!(
            "[{},{}]",
            entry("onnx/model.onnx", &f("onnx/model.onnx"), true),
            entry("tokenizer.json", &f("tokenizer.json"), false)
        ),
    )
}

fn spec(name: &str, uri: &str, exclude: &[&str]) -> Vec<WeightSpec> {
    WeightSpec::from_decls(&[WeightDecl {
        name: name.into(),
        target: format!("/src/weights/{name}"),
        sources: vec![WeightSource {
            uri: uri.into(),
            include: vec![],
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }],
        source_is_list: false,
    }])
    .unwrap()
}

fn options(
    server: &Server,
    project: &std::path::Path,
    store: &std::path::Path,
    token: Option<&str>,
) -> ImportOptions {
    let mut sources = SourceOptions::new(project);
    sources.hf_endpoint = Some(format!("http://127.0.0.1:{}", server.port));
    sources.hf_token = token.map(str::to_string);
    sources.retry_backoff = Duration::from_millis(10);
    ImportOptions {
        project_dir: project.to_path_buf(),
        sources,
        store: WeightStore::new(store),
        names: vec![],
        dry_run: false,
    }
}

fn count(hub: &Mutex<Hub>, needle: &str) -> usize {
    hub.lock()
        .unwrap()
        .log
        .iter()
        .filter(|(t, _)| t.contains(needle))
        .count()
}

#[test]
fn hf_source_paginates_uses_lfs_digests_retries_and_ingests() {
    let server = start_hub();
    let project = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let specs = spec("minilm", "hf://org/model", &["onnx/"]);
    let opts = options(&server, project.path(), store.path(), None);
    let report = import_weights(&specs, &opts).unwrap();
    assert_eq!(report.plan_lines(), ["+ minilm (new)"]);
    assert_eq!(
        count(&server.hub, "/revision/main"),
        3,
        "two 503s are retried"
    );
    assert_eq!(
        count(&server.hub, "cursor=page2"),
        1,
        "the Link page is followed"
    );
    assert_eq!(
        count(&server.hub, "onnx/model.onnx"),
        0,
        "excluded files are not downloaded"
    );

    let lock = LockFile::load(project.path()).unwrap().unwrap();
    let entry = lock.entry("minilm").unwrap();
    assert_eq!(entry.sources[0].fingerprint, format!("commit:{SHA}"));
    let paths: Vec<&str> = entry.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    let model = big_model();
    let model_rec = entry
        .files
        .iter()
        .find(|f| f.path == "model.safetensors")
        .unwrap();
    assert_eq!(model_rec.digest, Digest::of_bytes(&model));
    let store = WeightStore::new(store.path());
    for f in &entry.files {
        assert!(
            store.verify(&f.digest).unwrap(),
            "{} is in the store",
            f.path
        );
    }
    // The raw layer digest computed while downloading equals one rebuilt from the store.
    let raw = entry
        .layers
        .iter()
        .find(|l| l.digest == model_rec.layer)
        .unwrap();
    let rebuilt = compute_layer(
        &[(
            "model.safetensors".into(),
            model.len() as u64,
            model_rec.digest.clone(),
        )],
        &store,
        Compression::None,
    )
    .unwrap();
    assert_eq!((rebuilt.0, rebuilt.1), (raw.digest.clone(), raw.size));

    // Unchanged commit: nothing is downloaded again.
    let downloads = count(&server.hub, "/resolve/");
    let again = import_weights(&specs, &opts).unwrap();
    assert_eq!(again.plan_lines(), ["= minilm (unchanged)"]);
    assert_eq!(count(&server.hub, "/resolve/"), downloads);
    assert_eq!(again.weights[0].layers_reused, 2);
}

#[test]
fn hf_errors_name_the_cause_and_a_fix() {
    let server = start_hub();
    let project = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();

    let err = import_weights(
        &spec("p", "hf://org/private", &[]),
        &options(&server, project.path(), store.path(), None),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("401") && err.contains("HF_TOKEN"), "{err}");
    assert!(!err.contains(TOKEN));

    let ok = import_weights(
        &spec("p", "hf://org/private", &["model.safetensors", "onnx/"]),
        &options(&server, project.path(), store.path(), Some(TOKEN)),
    );
    assert!(ok.is_ok(), "{ok:?}");
    let with_token = server
        .hub
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|(t, a)| {
            t.contains("org/private") && a.as_deref() == Some(&format!("Bearer {TOKEN}"))
        })
        .count();
    assert!(with_token >= 2, "the token is sent to the API");

    let err = import_weights(
        &spec("m", "hf://org/missing@v2", &[]),
        &options(&server, project.path(), store.path(), None),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("404") && err.contains("hf://org/missing@v2") && err.contains("hint"),
        "{err}"
    );

    let err = import_weights(
        &spec("t", "hf://org/tampered", &[]),
        &options(&server, project.path(), store.path(), None),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("hash mismatch"), "{err}");
    let claimed: Digest = format!("sha256:{}", sha256_hex(b"what the listing claims"))
        .parse()
        .unwrap();
    assert!(!WeightStore::new(store.path()).contains(&claimed, None));
}

#[test]
fn http_sources_fingerprint_by_strong_etag_or_content() {
    let server = start_hub();
    let project = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}/files", server.port);
    let cases = [
        ("tagged.bin", "etag:\"v1-abc\"".to_string()),
        ("weak.bin", format!("sha256:{}", sha256_hex(b"weak"))),
        (
            "noetag.bin",
            format!("sha256:{}", sha256_hex(b"plain file")),
        ),
    ];
    for (file, fingerprint) in cases {
        let specs = spec("h", &format!("{base}/{file}"), &[]);
        import_weights(
            &specs,
            &options(&server, project.path(), store.path(), None),
        )
        .unwrap();
        let lock = LockFile::load(project.path()).unwrap().unwrap();
        let entry = lock.entry("h").unwrap();
        assert_eq!(entry.sources[0].fingerprint, fingerprint, "{file}");
        assert_eq!(entry.files[0].path, file);
    }
    let report = import_weights(
        &spec("h", &format!("{base}/noetag.bin"), &[]),
        &options(&server, project.path(), store.path(), None),
    )
    .unwrap();
    assert_eq!(report.weights[0].status, PlanStatus::Unchanged);
    let err = import_weights(
        &spec("h", &format!("{base}/absent.bin"), &[]),
        &options(&server, project.path(), store.path(), None),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("404") && err.contains("absent.bin"), "{err}");
}
