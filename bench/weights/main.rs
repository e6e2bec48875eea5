//! `make bench` for managed weights: import of ~4 GiB of weight files (a few
//! large raw-tar files, many small bundled ones) against `sha256sum` and
//! `openssl dgst -sha256` over the same files in the same run, with warm and
//! cold page cache, plus peak anonymous (heap) memory of the import.
//!
//! Run: `cargo bench --bench weights` (env `COGPACK_BENCH_WEIGHTS_MIB` sets
//! the total size, default 4096; `COGPACK_BENCH_DIR` the scratch directory).

use cogpack::config::{WeightDecl, WeightSource};
use cogpack::weights::import::{ImportOptions, import_weights};
use cogpack::weights::source::SourceOptions;
use cogpack::weights::spec::WeightSpec;
use cogpack::weights::store::WeightStore;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

fn main() {
    let total_mib: u64 = std::env::var("COGPACK_BENCH_WEIGHTS_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let scratch = match std::env::var_os("COGPACK_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("scratch directory");
    let project = scratch.path().join("project");
    let files = generate(&project.join("weights"), total_mib * MIB);
    let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    println!("# weights import bench");
    println!();
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "data: {} files, {:.2} GiB ({} large .safetensors, {} small files)",
        files.len(),
        bytes as f64 / (1024.0 * MIB as f64),
        files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "safetensors"))
            .count(),
        files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
            .count()
    );
    let load_before = load_average();
    let cold_method = cold_cache_method();
    println!("load average (1, 5, 15 min) before the runs: {load_before}");
    println!("cold page cache: {cold_method}");
    println!("every run starts after `sync`, so no run pays for the previous one's disk writeback");
    println!();
    println!("| run | seconds | CPU seconds (user + sys) | GB/s | peak heap (anon) MiB |");
    println!("|---|---|---|---|---|");

    warm(&files);
    sync();
    let sha = time_tool("sha256sum", &[], &files);
    row("sha256sum, warm (1 process)", sha, bytes, None);
    let ossl = time_tool("openssl", &["dgst", "-sha256"], &files);
    row("openssl dgst -sha256, warm (1 process)", ossl, bytes, None);
    let ossl_cpu = last_cpu();
    let parallel_speed = openssl_speed_all_cores();
    println!(
        "| openssl speed -elapsed -multi {} sha256 (1 MiB blocks in memory, all cores at once) | - | - | {:.2} | - |",
        cores(),
        parallel_speed / 1e9
    );
    let limit = bytes as f64 / ossl.as_secs_f64() * cores() as f64 / 2.0;

    let specs = specs();
    let store_dir = scratch.path().join("store");
    let (t, heap) = timed_import(&project, &store_dir, &specs);
    row(
        "cogpack import, warm, empty store (hash + store copy + layers)",
        t,
        bytes,
        Some(heap),
    );
    let import_cpu = last_cpu();
    let t_sync = timed_sync();
    row(
        "  then `sync`: disk writeback of the store copy (after the import returned)",
        t_sync,
        bytes,
        None,
    );
    let (t_warm, heap) = timed_import(&project, &store_dir, &specs);
    row(
        "cogpack re-import, warm (unchanged)",
        t_warm,
        bytes,
        Some(heap),
    );
    // The cold runs below start with baselines that read for many seconds,
    // which also gives the disk time to absorb this deletion.
    std::fs::remove_dir_all(&store_dir).unwrap();
    sync();

    drop_cache(&files);
    let sha_cold = time_tool("sha256sum", &[], &files);
    row("sha256sum, cold", sha_cold, bytes, None);
    drop_cache(&files);
    let ossl_cold = time_tool("openssl", &["dgst", "-sha256"], &files);
    row("openssl dgst -sha256, cold", ossl_cold, bytes, None);
    let cold_store = scratch.path().join("store-cold");
    drop_cache(&files);
    let (t_first_cold, heap) = timed_import(&project, &cold_store, &specs);
    row(
        "cogpack import, cold, empty store",
        t_first_cold,
        bytes,
        Some(heap),
    );
    sync();
    drop_cache(&files);
    let (t_cold, heap) = timed_import(&project, &cold_store, &specs);
    row("cogpack re-import, cold", t_cold, bytes, Some(heap));

    // Last, because deleting gigabytes on a `discard` mount keeps the disk
    // and the journal busy for a while and would slow the run after it.
    warm(&files);
    sync();
    let copy_dir = scratch.path().join("copy");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let source = project.join("weights");
    let cp = time_tool(
        "cp",
        &["-r", source.to_str().unwrap(), copy_dir.to_str().unwrap()],
        &[],
    );
    row(
        "cp -r of the same files (the store copy a first import must write)",
        cp,
        bytes,
        None,
    );

    let first_rate = bytes as f64 / t.as_secs_f64();
    let first_cold_rate = bytes as f64 / t_first_cold.as_secs_f64();
    let warm_rate = bytes as f64 / t_warm.as_secs_f64();
    let cold_limit = bytes as f64 / ossl_cold.as_secs_f64() * cores() as f64 / 2.0;
    println!();
    println!(
        "limit (two SHA-256 passes per byte) = cores × openssl speed / 2 = {:.2} GB/s (warm openssl); target: import ≥ 0.8 × limit = {:.2} GB/s",
        limit / 1e9,
        0.8 * limit / 1e9
    );
    println!(
        "first import, warm page cache: {:.2} GB/s = {:.2} × limit ({})",
        first_rate / 1e9,
        first_rate / limit,
        verdict(first_rate / limit)
    );
    println!(
        "first import, cold page cache: {:.2} GB/s = {:.2} × limit ({}); against the cold openssl limit ({:.2} GB/s): {:.2} ×",
        first_cold_rate / 1e9,
        first_cold_rate / limit,
        verdict(first_cold_rate / limit),
        cold_limit / 1e9,
        first_cold_rate / cold_limit
    );
    println!(
        "limit with the SHA-256 speed all cores deliver at the same time (measured above, so under the same load as the import) / 2 = {:.2} GB/s; first import, warm = {:.2} × that ({})",
        parallel_speed / 2e9,
        first_rate / (parallel_speed / 2.0),
        verdict(first_rate / (parallel_speed / 2.0))
    );
    println!(
        "CPU time (load-independent): first import {import_cpu:.2} CPU-s vs two openssl passes 2 × {ossl_cpu:.2} CPU-s; with {} idle cores and perfect overlap the import could reach at best ≈ {:.2} × limit",
        cores(),
        2.0 * ossl_cpu / import_cpu
    );
    println!(
        "unchanged re-import needs one pass: limit = cores × openssl speed = {:.2} GB/s; warm re-import = {:.2} GB/s = {:.2} × that",
        2.0 * limit / 1e9,
        warm_rate / 1e9,
        warm_rate / (2.0 * limit)
    );
    println!(
        "peak heap target < 200 MiB: see the heap column; load average after the runs: {}",
        load_average()
    );
}

/// Total SHA-256 throughput (bytes/s, wall clock) of one `openssl speed`
/// process per core running at once: what the cores deliver under the
/// machine's current load.
fn openssl_speed_all_cores() -> f64 {
    let out = Command::new("openssl")
        .args(["speed", "-elapsed", "-seconds", "3", "-bytes", "1048576"])
        .args(["-multi", &cores().to_string(), "sha256"])
        .stderr(std::process::Stdio::null())
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl speed failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .rfind(|l| l.starts_with("sha256"))
        .expect("openssl speed prints a sha256 line");
    let kilo: f64 = last
        .split_whitespace()
        .last()
        .and_then(|v| v.trim_end_matches('k').parse().ok())
        .expect("a k-bytes/s figure");
    kilo * 1000.0
}

fn verdict(ratio: f64) -> &'static str {
    if ratio >= 0.8 {
        "meets the 0.8 target"
    } else {
        "below the 0.8 target"
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

fn sync() {
    let status = Command::new("sync").status().expect("sync (coreutils)");
    assert!(status.success());
}

fn timed_sync() -> Duration {
    time_tool("sync", &[], &[])
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn row(name: &str, took: Duration, bytes: u64, heap_mib: Option<f64>) {
    println!(
        "| {name} | {:.2} | {:.2} | {:.2} | {} |",
        took.as_secs_f64(),
        *LAST_CPU.lock().unwrap(),
        bytes as f64 / took.as_secs_f64() / 1e9,
        heap_mib.map_or("-".into(), |h| format!("{h:.0}"))
    );
}

/// Three large raw files (≈ 98 % of the bytes) and many small JSON files.
fn generate(dir: &Path, total: u64) -> Vec<PathBuf> {
    let small_count = 400u64;
    let small_size = (total / 64 / small_count).max(1);
    let large_size = (total - small_count * small_size) / 3;
    let mut files = Vec::new();
    for i in 0..3 {
        let path = dir.join(format!("model-{i:05}-of-00003.safetensors"));
        write_pseudo_random(&path, large_size, i + 1);
        files.push(path);
    }
    for i in 0..small_count {
        let path = dir.join(format!("shards/part-{i:04}.json"));
        write_text_like(&path, small_size, i);
        files.push(path);
    }
    files
}

fn write_pseudo_random(path: &Path, size: u64, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut block = vec![0u8; 4 << 20];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in block.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0;
    let mut n = 0u64;
    while written < size {
        block[..8].copy_from_slice(&n.to_le_bytes());
        let len = (size - written).min(block.len() as u64) as usize;
        out.write_all(&block[..len]).unwrap();
        written += len as u64;
        n += 1;
    }
    out.flush().unwrap();
}

fn write_text_like(path: &Path, size: u64, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = String::with_capacity(size as usize + 64);
    let mut i = seed;
    while (text.len() as u64) < size {
        i = i
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        text.push_str(&format!("\"tok_{}\": {},\n", i >> 40, (i >> 20) & 0xffff));
    }
    text.truncate(size as usize);
    std::fs::write(path, text).unwrap();
}

fn specs() -> Vec<WeightSpec> {
    WeightSpec::from_decls(&[WeightDecl {
        name: "bench".into(),
        target: "/src/weights/bench".into(),
        sources: vec![WeightSource {
            uri: "weights".into(),
            include: vec![],
            exclude: vec![],
        }],
        source_is_list: false,
    }])
    .unwrap()
}

fn warm(files: &[PathBuf]) {
    for f in files {
        let mut file = std::fs::File::open(f).unwrap();
        std::io::copy(&mut file, &mut std::io::sink()).unwrap();
    }
}

const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

/// How the cold runs empty the page cache: the global drop (needs root) or,
/// without it, per-file eviction.
fn cold_cache_method() -> &'static str {
    if std::fs::OpenOptions::new()
        .write(true)
        .open(DROP_CACHES)
        .is_ok()
    {
        "`sync; echo 3 > /proc/sys/vm/drop_caches` before each cold run (as root)"
    } else {
        "not root, so /proc/sys/vm/drop_caches cannot be written; each cold run evicts the source files with `dd iflag=nocache` instead (the store is not evicted)"
    }
}

/// Empties the page cache: every page with `drop_caches` when allowed,
/// else the files' pages (GNU dd `nocache`).
fn drop_cache(files: &[PathBuf]) {
    sync();
    if std::fs::write(DROP_CACHES, "3").is_ok() {
        return;
    }
    for f in files {
        let status = Command::new("dd")
            .arg(format!("if={}", f.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status()
            .expect("dd (coreutils)");
        assert!(status.success());
    }
}

/// CPU seconds (user + system) used so far by this process (`Self_`) or by
/// its waited-for children.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: `getrusage` fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn last_cpu() -> f64 {
    *LAST_CPU.lock().unwrap()
}

/// The CPU seconds of the last measured run (printed in its row).
static LAST_CPU: std::sync::Mutex<f64> = std::sync::Mutex::new(0.0);

fn time_tool(tool: &str, args: &[&str], files: &[PathBuf]) -> Duration {
    let cpu_before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let start = Instant::now();
    let out = Command::new(tool)
        .args(args)
        .args(files)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let took = start.elapsed();
    assert!(out.success(), "{tool} failed");
    *LAST_CPU.lock().unwrap() = cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before;
    took
}

fn anon_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs one import; returns its time and the peak anonymous memory (MiB)
/// sampled every 5 ms while it ran.
fn timed_import(project: &Path, store: &Path, specs: &[WeightSpec]) -> (Duration, f64) {
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(anon_rss_kib()));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(anon_rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let opts = ImportOptions {
        project_dir: project.to_path_buf(),
        sources: SourceOptions::new(project),
        store: WeightStore::new(store),
        names: vec![],
        dry_run: false,
    };
    let cpu_before = cpu_seconds(libc::RUSAGE_SELF);
    let start = Instant::now();
    let report = import_weights(specs, &opts).expect("import succeeds");
    let took = start.elapsed();
    *LAST_CPU.lock().unwrap() = cpu_seconds(libc::RUSAGE_SELF) - cpu_before;
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(report.weights.len(), 1);
    (took, peak.load(Ordering::Relaxed) as f64 / 1024.0)
}
