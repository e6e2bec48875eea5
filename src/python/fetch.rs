//! Wheel and sdist downloads: parallel, sha256-verified against the lock,
//! cached by digest, with index credentials applied by host.

use super::lock::Artifact;
use anyhow::{Context, Result, bail};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Progress of downloads, reported to the caller's callback.
#[derive(Debug, Clone)]
pub enum FetchEvent {
    /// A file was found in the cache (no download).
    Cached {
        /// File name.
        name: String,
    },
    /// A download started; `total` from the lock or Content-Length.
    Started {
        /// File name.
        name: String,
        /// Expected size, if known.
        total: Option<u64>,
    },
    /// More bytes of a download arrived (`bytes` received so far).
    Progress {
        /// File name.
        name: String,
        /// Bytes received so far.
        bytes: u64,
    },
    /// A download finished and was verified.
    Finished {
        /// File name.
        name: String,
    },
}

/// Callback receiving [`FetchEvent`]s (called from worker threads).
pub type ProgressFn<'a> = &'a (dyn Fn(&FetchEvent) + Send + Sync);

/// Credentials for one host.
#[derive(Clone)]
struct HostCredential {
    host: String,
    user: String,
    password: Option<String>,
}

/// Download settings.
#[derive(Clone, Default)]
pub struct FetchSettings {
    /// Cache directory; files live at `<cache>/sha256/<hex>`.
    pub cache_dir: PathBuf,
    /// Never use the network; missing cache entries are errors.
    pub offline: bool,
    /// Parallel downloads (0 means 8).
    pub concurrency: usize,
    credentials: Vec<HostCredential>,
}

impl std::fmt::Debug for FetchSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchSettings")
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("concurrency", &self.concurrency)
            .field(
                "credentials",
                &format!("<{} hosts>", self.credentials.len()),
            )
            .finish()
    }
}

impl FetchSettings {
    /// Settings with a cache directory and no credentials.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        FetchSettings {
            cache_dir: cache_dir.into(),
            ..Default::default()
        }
    }

    /// Learns credentials from URLs of the form `https://user:pass@host/…`
    /// (index URLs from flags, environment or requirement option lines).
    pub fn add_credentials_from_url(&mut self, raw: &str) {
        let Ok(url) = url::Url::parse(raw) else {
            return;
        };
        if url.username().is_empty() {
            return;
        }
        let Some(host) = url.host_str() else { return };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        self.credentials.push(HostCredential {
            host: host.to_string(),
            user: decode(url.username()),
            password: url.password().map(decode),
        });
    }

    /// Learns credentials from a netrc file (`machine`, `login`, `password`).
    pub fn add_netrc(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading netrc file {}", path.display()))?;
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let mut current: Option<HostCredential> = None;
        let mut i = 0;
        while i < tokens.len() {
            let value = tokens.get(i + 1).map(|s| s.to_string()).unwrap_or_default();
            match tokens[i] {
                "machine" => {
                    self.credentials.extend(current.take());
                    current = Some(HostCredential {
                        host: value,
                        user: String::new(),
                        password: None,
                    });
                    i += 1;
                }
                "login" => {
                    if let Some(c) = current.as_mut() {
                        c.user = value;
                    }
                    i += 1;
                }
                "password" => {
                    if let Some(c) = current.as_mut() {
                        c.password = Some(value);
                    }
                    i += 1;
                }
                _ => {}
            }
            i += 1;
        }
        self.credentials.extend(current);
        Ok(())
    }

    fn credential_for(&self, url: &url::Url) -> Option<&HostCredential> {
        let host = url.host_str()?;
        self.credentials.iter().find(|c| c.host == host)
    }

    /// Where a file with this sha256 lives in the cache.
    pub fn cache_path(&self, sha256: &str) -> PathBuf {
        self.cache_dir.join("sha256").join(sha256)
    }
}

/// `https://user:pass@host/x` → `https://host/x` (for fingerprints and messages).
pub fn strip_credentials(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => raw.to_string(),
    }
}

/// A file to obtain: `artifact` with local paths already made absolute.
#[derive(Debug, Clone)]
pub struct FetchItem {
    /// Package name, for messages.
    pub package: String,
    /// What to fetch.
    pub artifact: Artifact,
}

/// Obtains every item (cache, local file or download) and returns the local
/// path of each, in input order. All failures are reported together.
pub fn fetch_all(
    items: &[FetchItem],
    settings: &FetchSettings,
    progress: ProgressFn,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(settings.cache_dir.join("sha256"))
        .with_context(|| format!("creating cache directory {}", settings.cache_dir.display()))?;
    let all_local = items.iter().all(|item| {
        local_path(&item.artifact).is_some()
            || item.artifact.url.as_deref().is_some_and(|url| {
                settings
                    .cache_path(&cache_key(&item.artifact, url))
                    .is_file()
            })
    });
    let results: Vec<Result<PathBuf>> = if all_local {
        // Nothing to download: no runtime, no HTTP client (loading the
        // system certificates alone costs tens of milliseconds).
        items
            .iter()
            .map(|item| {
                without_download(item, settings, progress)?
                    .context("a cached wheel disappeared during the build; run the build again")
            })
            .collect()
    } else {
        download_all(items, settings, progress)?
    };
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(p) => paths.push(p),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!(
            "{} download(s) failed:\n  - {}",
            errors.len(),
            errors.join("\n  - ")
        );
    }
    Ok(paths)
}

/// Fetches every item on a small runtime of its own (the callers are sync).
fn download_all(
    items: &[FetchItem],
    settings: &FetchSettings,
    progress: ProgressFn,
) -> Result<Vec<Result<PathBuf>>> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(fetch_concurrently(items, settings, progress))
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("download worker panicked")))
    })
}

async fn fetch_concurrently(
    items: &[FetchItem],
    settings: &FetchSettings,
    progress: ProgressFn<'_>,
) -> Result<Vec<Result<PathBuf>>> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("cogpack/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .context("creating the HTTP client")?;
    let limit = if settings.concurrency == 0 {
        8
    } else {
        settings.concurrency
    };
    let futures = items
        .iter()
        .map(|item| fetch_one(&client, item, settings, progress));
    Ok(futures::stream::iter(futures)
        .buffered(limit)
        .collect()
        .await)
}

async fn fetch_one(
    client: &reqwest::Client,
    item: &FetchItem,
    settings: &FetchSettings,
    progress: ProgressFn<'_>,
) -> Result<PathBuf> {
    if let Some(found) = without_download(item, settings, progress)? {
        return Ok(found);
    }
    let name = item.artifact.file_name();
    let url = item.artifact.url.as_deref().with_context(|| {
        format!(
            "{}: the lock names neither a URL nor a path for {name}",
            item.package
        )
    })?;
    let dest = settings.cache_path(&cache_key(&item.artifact, url));
    download(client, url, item, settings, &dest, progress).await?;
    Ok(dest)
}

/// The item's file when no download is needed: a local artifact (its digest
/// checked) or a cache hit. Errors in offline mode when a download would be.
fn without_download(
    item: &FetchItem,
    settings: &FetchSettings,
    progress: ProgressFn<'_>,
) -> Result<Option<PathBuf>> {
    let name = item.artifact.file_name();
    let a = &item.artifact;
    if let Some(path) = local_path(a) {
        if let Some(expected) = &a.sha256 {
            let actual = sha256_file(&path)
                .with_context(|| format!("{}: reading {}", item.package, path.display()))?;
            check_digest(&item.package, &name, expected, &actual)?;
        }
        return Ok(Some(path));
    }
    let Some(url) = a.url.as_deref() else {
        return Ok(None);
    };
    let dest = settings.cache_path(&cache_key(a, url));
    if dest.is_file() {
        progress(&FetchEvent::Cached { name });
        return Ok(Some(dest));
    }
    if settings.offline {
        bail!(
            "{} ({name}) is not in the wheel cache {} and offline mode forbids downloading. Hint: run one build with network access to fill the cache, or drop --offline",
            item.package,
            settings.cache_dir.display()
        );
    }
    Ok(None)
}

/// The wheel cache key of an artifact: its sha256, else a hash of its URL.
fn cache_key(a: &Artifact, url: &str) -> String {
    match &a.sha256 {
        Some(h) => h.clone(),
        None => format!("url-{}", hex::encode(Sha256::digest(url.as_bytes()))),
    }
}

/// The local file an artifact names (`path` or `file://` URL).
fn local_path(a: &Artifact) -> Option<PathBuf> {
    if let Some(p) = &a.path {
        return Some(PathBuf::from(p));
    }
    let url = url::Url::parse(a.url.as_deref()?).ok()?;
    (url.scheme() == "file")
        .then(|| url.to_file_path().ok())
        .flatten()
}

async fn download(
    client: &reqwest::Client,
    url: &str,
    item: &FetchItem,
    settings: &FetchSettings,
    dest: &Path,
    progress: ProgressFn<'_>,
) -> Result<()> {
    let name = item.artifact.file_name();
    let shown = strip_credentials(url);
    let parsed =
        url::Url::parse(url).with_context(|| format!("{}: invalid URL {shown}", item.package))?;
    let mut request = client.get(parsed.clone());
    if parsed.username().is_empty()
        && let Some(c) = settings.credential_for(&parsed)
    {
        request = request.basic_auth(&c.user, c.password.as_ref());
    }
    let response = request.send().await.with_context(|| {
        format!(
            "{}: downloading {shown}. Hint: check the network, proxy settings and index URL",
            item.package
        )
    })?;
    let status = response.status();
    if !status.is_success() {
        let hint = if status.as_u16() == 401 || status.as_u16() == 403 {
            "check the index credentials (URL user:password, netrc)"
        } else {
            "check that the index still serves this file"
        };
        bail!(
            "{}: downloading {shown} failed with HTTP {status}. Hint: {hint}",
            item.package
        );
    }
    let total = item.artifact.size.or(response.content_length());
    progress(&FetchEvent::Started {
        name: name.clone(),
        total,
    });
    let mut tmp =
        tempfile::NamedTempFile::new_in(dest.parent().context("cache path has no parent")?)?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| truncated_error(item, &shown, received, total, &e.to_string()))?;
        hasher.update(&chunk);
        tmp.write_all(&chunk)?;
        received += chunk.len() as u64;
        progress(&FetchEvent::Progress {
            name: name.clone(),
            bytes: received,
        });
    }
    if let Some(t) = total.filter(|t| *t != received) {
        return Err(truncated_error(
            item,
            &shown,
            received,
            Some(t),
            "connection closed early",
        ));
    }
    if let Some(expected) = &item.artifact.sha256 {
        check_digest(
            &item.package,
            &name,
            expected,
            &hex::encode(hasher.finalize()),
        )?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(dest)
        .with_context(|| format!("storing {} in the cache", dest.display()))?;
    progress(&FetchEvent::Finished { name });
    Ok(())
}

fn truncated_error(
    item: &FetchItem,
    shown: &str,
    received: u64,
    total: Option<u64>,
    why: &str,
) -> anyhow::Error {
    let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
    anyhow::anyhow!(
        "{}: download of {shown} was truncated after {received}{of} bytes ({why}); nothing was cached. Hint: retry; if it persists, check the proxy or index",
        item.package
    )
}

fn check_digest(package: &str, name: &str, expected: &str, actual: &str) -> Result<()> {
    if !expected.eq_ignore_ascii_case(actual) {
        bail!(
            "{package}: sha256 of {name} is {actual} but the lock expects {expected}; the file was not used. \
             Hint: the index served different bytes than when the lock was written — check the index, or delete the lock to re-resolve"
        );
    }
    Ok(())
}

/// SHA-256 (hex) of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_urls_and_netrc_by_host() {
        let dir = tempfile::tempdir().unwrap();
        let netrc = dir.path().join("netrc");
        std::fs::write(&netrc, "machine idx.example.invalid\n  login alice\n  password s3cret\nmachine other.invalid login bob password pw\n").unwrap();
        let mut s = FetchSettings::new(dir.path());
        s.add_credentials_from_url("https://carol:p%40ss@private.invalid/simple/");
        s.add_netrc(&netrc).unwrap();
        let cred = |u: &str| {
            s.credential_for(&url::Url::parse(u).unwrap())
                .map(|c| (c.user.clone(), c.password.clone()))
        };
        assert_eq!(
            cred("https://private.invalid/files/x.whl"),
            Some(("carol".into(), Some("p@ss".into())))
        );
        assert_eq!(
            cred("https://idx.example.invalid/a.whl"),
            Some(("alice".into(), Some("s3cret".into())))
        );
        assert_eq!(
            cred("https://other.invalid/a.whl"),
            Some(("bob".into(), Some("pw".into())))
        );
        assert_eq!(cred("https://unknown.invalid/a.whl"), None);
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "credentials never printed"
        );
        assert_eq!(
            strip_credentials("https://u:p@h.invalid/simple/"),
            "https://h.invalid/simple/"
        );
    }
}
