//! Offline builds from the lock and a warm cache with the network blocked
//! by an unroutable proxy; clear failure with a cold cache.

#[path = "python_common.rs"]
mod common;

use cogpack::python::{FetchEvent, LockMode, build_python_layers};
use common::*;

fn paths(entries: &[cogpack::layer::Entry]) -> Vec<String> {
    entries.iter().map(|e| e.path.clone()).collect()
}

#[test]
fn offline_build_uses_lock_and_cache_and_fails_clearly_without_cache() {
    uv();
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let cache = work.path().join("cache");
    let mut req = request(&project, &cache, "requests==2.32.3\nmsgpack==1.1.0\n");
    req.inputs.cog_runtime = vec!["coglet==0.17.0".into(), "cog==0.17.0".into()];
    let events = std::sync::Mutex::new(Vec::new());
    let record = |e: &FetchEvent| {
        let kind = match e {
            FetchEvent::Cached { .. } => "cached",
            FetchEvent::Started { .. } => "started",
            FetchEvent::Progress { .. } => "progress",
            FetchEvent::Finished { .. } => "finished",
        };
        events.lock().unwrap().push(kind);
    };
    let online = build_python_layers(&req, &record).expect("online build");
    let count = |k: &str| events.lock().unwrap().iter().filter(|e| **e == k).count();
    assert!(
        count("finished") >= 5
            && count("started") == count("finished")
            && count("progress") >= count("finished")
    );
    assert_eq!(count("cached"), 0, "cold cache");

    // Block the network for everything this process starts from here on:
    // a proxy on a closed loopback port.
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        // SAFETY: this test binary runs a single test, so no other thread reads the environment.
        unsafe { std::env::set_var(var, "http://127.0.0.1:9") };
    }
    unsafe { std::env::remove_var("NO_PROXY") };
    req.mode = LockMode::Offline;
    events.lock().unwrap().clear();
    let offline = build_python_layers(&req, &record).expect("offline build from lock + warm cache");
    assert_eq!(count("started"), 0, "nothing downloaded offline");
    assert!(count("cached") >= 5);
    assert_eq!(paths(&online.dependencies), paths(&offline.dependencies));
    assert_eq!(paths(&online.cog_runtime), paths(&offline.cog_runtime));
    assert_eq!(paths(&online.uv_binaries), paths(&offline.uv_binaries));
    assert_eq!(online.pip_freeze, offline.pip_freeze);

    req.cache_dir = work.path().join("empty-cache");
    let err = format!(
        "{:#}",
        build(&req).expect_err("cold cache offline must fail")
    );
    assert!(
        err.contains("offline mode forbids downloading") && err.contains("requests"),
        "{err}"
    );

    req.mode = LockMode::Update;
    let err = format!(
        "{:#}",
        build(&req).expect_err("downloads through the dead proxy fail")
    );
    assert!(err.contains("download"), "{err}");
}
