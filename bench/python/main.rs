//! `make bench` — Python layer install: cogpack's native installer against
//! `uv pip install --link-mode=copy --prefix` + `tar | gzip -6`, cold (empty
//! caches) and warm, for a ~300 MB dependency set from the package registry.
//!
//! Both sides end with a gzip-6 tar of the installed tree. cogpack's side
//! writes the entries with a minimal tar+gzip writer in this program (the
//! layer engine is a separate module), so the figures compare installers.
//!
//! Run: `cargo bench --bench python` (needs `uv` on PATH and registry access).

use cogpack::layer::{Entry, EntryKind, FileSource};
use cogpack::python::*;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const REQUIREMENTS: &str = "numpy==2.1.3
scipy==1.14.1
pandas==2.2.3
pillow==11.0.0
tokenizers==0.20.3
transformers==4.46.3
pydantic==2.9.2
";

fn main() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let project = work.path().join("project");
    std::fs::create_dir_all(&project)?;
    let cache = work.path().join("cogpack-cache");
    let uv_cache = work.path().join("uv-cache");
    let req = PythonBuildRequest {
        inputs: PythonInputs {
            requirements: REQUIREMENTS.into(),
            cog_runtime: vec![],
            prerelease: false,
        },
        target: PythonTarget::usr_local("3.11", (2, 36)),
        index: IndexSettings::default(),
        project_dir: project.clone(),
        lock_path: None,
        mode: LockMode::Update,
        cache_dir: cache.clone(),
        concurrency: 8,
        uv: None,
    };
    let t = Instant::now();
    lock::ensure_lock(
        &req.inputs,
        &req.target,
        &req.index,
        &project,
        &project.join(lock::LOCK_FILE_NAME),
        LockMode::Update,
        None,
    )?;
    let resolve = t.elapsed();
    std::fs::write(work.path().join("req.txt"), REQUIREMENTS)?;

    let mut rows = Vec::new();
    for round in ["cold", "warm"] {
        let (install, tar, bytes) =
            cogpack_round(&req, &work.path().join(format!("ours-{round}.tar.gz")))?;
        rows.push(format!(
            "cogpack {round}: install {} + tar.gz {} = {} ({} MB uncompressed)",
            s(install),
            s(tar),
            s(install + tar),
            bytes / 1_000_000
        ));
        let (install, tar) = uv_round(work.path(), &uv_cache, round)?;
        rows.push(format!(
            "uv      {round}: install {} + tar|gzip {} = {}",
            s(install),
            s(tar),
            s(install + tar)
        ));
    }
    println!(
        "python layers bench ({} packages pinned, resolve {} once)",
        REQUIREMENTS.lines().count(),
        s(resolve)
    );
    for r in rows {
        println!("  {r}");
    }
    Ok(())
}

fn s(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Native install (download into the cache when cold) and a gzip-6 tar.
fn cogpack_round(
    req: &PythonBuildRequest,
    out: &Path,
) -> anyhow::Result<(Duration, Duration, u64)> {
    let t = Instant::now();
    let layers = build_python_layers(req, &|_: &FetchEvent| {})?;
    let install = t.elapsed();
    let t = Instant::now();
    let bytes = write_tar_gz(&layers.dependencies, out)?;
    Ok((install, t.elapsed(), bytes))
}

fn write_tar_gz(entries: &[Entry], out: &Path) -> anyhow::Result<u64> {
    let gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(out)?),
        flate2::Compression::new(6),
    );
    let mut tar = tar::Builder::new(gz);
    let mut total = 0;
    for e in entries {
        let EntryKind::File { source, size } = &e.kind else {
            continue;
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(*size);
        h.set_mode(e.mode);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        total += size;
        match source {
            FileSource::Open(open) => tar.append_data(&mut h, &e.path, open()?)?,
            FileSource::Bytes(b) => tar.append_data(&mut h, &e.path, &b[..])?,
            FileSource::Path(p) => tar.append_data(&mut h, &e.path, std::fs::File::open(p)?)?,
        }
    }
    tar.into_inner()?.finish()?.flush()?;
    Ok(total)
}

/// `uv pip install --link-mode=copy --prefix` then `tar | gzip -6`.
fn uv_round(work: &Path, uv_cache: &Path, round: &str) -> anyhow::Result<(Duration, Duration)> {
    let prefix = work.join(format!("uv-prefix-{round}"));
    let t = Instant::now();
    let ok = Command::new("uv")
        .args([
            "pip",
            "install",
            "--quiet",
            "--link-mode=copy",
            "--only-binary",
            ":all:",
            "--python-platform",
            "x86_64-manylinux_2_36",
            "--python-version",
            "3.11",
            "--prefix",
        ])
        .arg(&prefix)
        .arg("-r")
        .arg(work.join("req.txt"))
        .env("UV_CACHE_DIR", uv_cache)
        .status()?
        .success();
    anyhow::ensure!(ok, "uv pip install failed");
    let install = t.elapsed();
    let t = Instant::now();
    let script = format!(
        "tar -C {} -cf - . | gzip -6 > {}/uv-{round}.tar.gz",
        prefix.display(),
        work.display()
    );
    anyhow::ensure!(
        Command::new("sh").args(["-c", &script]).status()?.success(),
        "tar | gzip failed"
    );
    Ok((install, t.elapsed()))
}
