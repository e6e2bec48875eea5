//! A real Distribution registry (Debian `docker-registry`) on a free 127.0.0.1 port with its
//! own temporary storage, delete enabled and an access log for counting requests. Dropping
//! the [`Registry`] stops the server and removes its storage.

use super::{free_port, http_request, scratch_dir};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the registry may take to answer `GET /v2/` after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How many free ports to try if another process grabs the chosen one first.
const START_ATTEMPTS: usize = 3;

/// A running `docker-registry serve` on 127.0.0.1.
pub struct Registry {
    /// `127.0.0.1:PORT`, usable as the registry part of an image reference.
    pub host: String,
    /// The registry's storage root (`storage.filesystem.rootdirectory`).
    pub root: PathBuf,
    /// File receiving the access log, one Apache combined-log line per request.
    pub access_log: PathBuf,
    /// File receiving the registry's own (error-level) log.
    pub server_log: PathBuf,
    child: Child,
    _workdir: tempfile::TempDir,
}

/// One request from the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    /// HTTP method, e.g. `PUT`.
    pub method: String,
    /// Request path with query, e.g. `/v2/library/python/manifests/3.11-slim`.
    pub path: String,
    /// Response status code.
    pub status: u16,
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers 200. Panics with the server log
    /// if it does not come up (the test cannot do anything useful without it).
    pub fn start() -> Registry {
        let workdir = scratch_dir("cogpack-registry.");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match start_on_port(workdir.path(), free_port()) {
                Ok((host, child)) => {
                    return Registry {
                        host,
                        root: workdir.path().join("storage"),
                        access_log: workdir.path().join("access.log"),
                        server_log: workdir.path().join("registry.log"),
                        child,
                        _workdir: workdir,
                    };
                }
                Err(e) => last_error = e,
            }
        }
        panic!("docker-registry did not start: {last_error}");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Every request logged so far, in order.
    pub fn requests(&self) -> Vec<AccessLogEntry> {
        let log = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        log.lines().filter_map(parse_access_line).collect()
    }

    /// Number of logged requests with this method whose path contains `path_part`.
    pub fn count_requests(&self, method: &str, path_part: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_part))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_on_port(workdir: &Path, port: u16) -> Result<(String, Child), String> {
    let host = format!("127.0.0.1:{port}");
    let config = workdir.join("config.yml");
    std::fs::write(&config, config_yaml(&workdir.join("storage"), &host))
        .map_err(|e| format!("write {}: {e}", config.display()))?;
    let access_log = create(&workdir.join("access.log"))?;
    let server_log = create(&workdir.join("registry.log"))?;
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(access_log)
        .stderr(server_log)
        .spawn()
        .map_err(|e| {
            format!("cannot run docker-registry: {e} (hint: `apt-get install docker-registry` or `bash .ci/run`)")
        })?;
    match wait_until_up(&host, &mut child) {
        Ok(()) => Ok((host, child)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(workdir.join("registry.log")).unwrap_or_default();
            Err(format!("{e}\nregistry log:\n{log}"))
        }
    }
}

fn config_yaml(storage: &Path, host: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {host}\n  secret: cogpack-test-secret\n",
        storage.display()
    )
}

fn create(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| format!("create {}: {e}", path.display()))
}

fn wait_until_up(host: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "docker-registry on {host} exited early with {status}"
            ));
        }
        let probe = http_request(host, "GET", "/v2/", None, Duration::from_secs(2));
        if probe.is_ok_and(|response| response.status == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "docker-registry on {host} did not answer GET /v2/ within {START_TIMEOUT:?}"
    ))
}

/// Parses `IP - - [time] "METHOD PATH PROTO" STATUS SIZE "referer" "agent"`.
fn parse_access_line(line: &str) -> Option<AccessLogEntry> {
    let request_start = line.find('"')? + 1;
    let request_end = request_start + line[request_start..].find('"')?;
    let mut request = line[request_start..request_end].split(' ');
    let method = request.next()?.to_string();
    let path = request.next()?.to_string();
    let status = line[request_end + 1..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(AccessLogEntry {
        method,
        path,
        status,
    })
}
