//! A loopback static file server (`python3 -m http.server`) for tests that
//! must hand cogpack, uv, pip, curl or git a URL of files they prepared.
//! Self-contained (no other `common` helper), so test helpers included with
//! `#[path]` can use it too.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `python3 -m http.server` serving one directory on a free 127.0.0.1 port;
/// killed on drop.
pub struct FileServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl FileServer {
    /// Serves `dir` on a free loopback port and waits (up to five seconds)
    /// until the port accepts connections.
    pub fn start(dir: &Path) -> FileServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind 127.0.0.1:0 to find a free port")
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed to serve loopback files");
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        FileServer { child, port }
    }

    /// The URL of `path` (relative, without a leading `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
