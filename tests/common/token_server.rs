//! Runs tests/common/token_server.py (needs python3 and python3-cryptography)
//! and tells the registry how to trust its tokens.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running token server; dropping it kills the process.
pub struct TokenServer {
    /// Token endpoint URL (the registry's `realm`).
    pub realm: String,
    /// Certificate that verifies the tokens.
    pub cert: PathBuf,
    /// Issuer name the registry must expect.
    pub issuer: String,
    /// Service name (audience).
    pub service: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl TokenServer {
    /// Starts the server with users given as `(name, password, "pull,push")`.
    pub fn start(users: &[(&str, &str, &str)]) -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/common/token_server.py");
        let port_file = dir.path().join("port");
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .arg("--dir")
            .arg(dir.path())
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, password, actions) in users {
            command
                .arg("--user")
                .arg(format!("{name}:{password}:{actions}"));
        }
        let child = command.spawn().expect("python3 must be installed");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "token server did not start (is python3-cryptography installed?)"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        TokenServer {
            realm: format!("http://127.0.0.1:{port}/token"),
            cert: dir.path().join("cert.pem"),
            issuer: "cogpack-test-issuer".into(),
            service: "cogpack-test-registry".into(),
            dir,
            child,
        }
    }

    /// Token requests so far, as JSON lines `{"path","subject","status"}`.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
