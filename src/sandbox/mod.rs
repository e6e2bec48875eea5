//! A daemonless build sandbox: runs `RUN`-style commands over the image's
//! own root filesystem and turns what they change into layer entries.
//!
//! * [`rootfs`]: layer blobs unpacked once into the store, keyed by diff_id,
//!   OCI whiteouts converted to overlay whiteouts.
//! * [`run`]: one command in a mount + PID namespace over an overlayfs of
//!   those directories.
//! * [`diff`]: the overlay upper dir as deterministic layer entries.
//! * [`userns`]: the user namespace a caller that is not root runs in.

pub mod diff;
pub mod registry;
pub mod rootfs;
pub mod run;
pub mod userns;

pub use diff::{UpperDiff, upper_entries};
pub use rootfs::{BlobSource, LayerRef, StoreBlobs, ensure_layers};
pub use run::{BindDir, BindFile, RunDirs, RunSpec, run_command};

use crate::oci::store::Store;
use std::io;
use std::path::Path;
use std::sync::OnceLock;

/// Why the sandbox could not run or a command in it failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The host cannot run the sandbox at all.
    #[error(
        "the build sandbox cannot run on this machine: {reason}\nhint: run cogpack as root, or as a user on Linux >= 5.11 with unprivileged user namespaces enabled (sysctl user.max_user_namespaces > 0), or build with `--backend docker`"
    )]
    Unavailable {
        /// What is missing.
        reason: String,
    },
    /// A layer blob could not be fetched or did not verify.
    #[error(
        "cannot unpack layer {digest}: {detail}\nhint: check the registry connection and retry; nothing partial was kept"
    )]
    Fetch {
        /// The blob or diff_id.
        digest: String,
        /// What went wrong.
        detail: String,
    },
    /// Preparing the sandbox failed.
    #[error("{what}\nhint: check that the store directory is writable and on a local filesystem")]
    Setup {
        /// What went wrong.
        what: String,
    },
    /// A filesystem operation failed.
    #[error(
        "cannot {action} {path}: {source}\nhint: check permissions and free space in the store"
    )]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The command exited non-zero.
    #[error(
        "step [{step}] failed: `{command}` exited with code {code}\nlast output lines:\n{}\nhint: fix the command in cog.yaml; no layer or image was written",
        tail.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
    )]
    CommandFailed {
        /// Step name.
        step: String,
        /// The command.
        command: String,
        /// Its exit code (128 + signal when killed).
        code: i32,
        /// Its last output lines.
        tail: Vec<String>,
    },
}

impl SandboxError {
    /// A closure mapping an I/O error on `path` to [`SandboxError::Io`].
    pub fn io(action: &'static str, path: &Path) -> impl Fn(io::Error) -> SandboxError + use<> {
        let path = path.display().to_string();
        move |source| SandboxError::Io {
            action,
            path: path.clone(),
            source,
        }
    }
}

/// True on Linux when running as root, or as a user where user namespaces
/// can run the sandbox (the default of the plan's sandbox option; the full
/// probe is [`check_available`]).
pub fn default_enabled() -> bool {
    userns::host_mode().is_ok()
}

/// Why the sandbox cannot run on this host (not root and no usable user
/// namespaces, or not Linux); `None` when it can.
pub fn unavailable_reason() -> Option<String> {
    userns::host_mode().err()
}

/// Checks once per process that a mount namespace (inside a user namespace
/// when not root) and an overlay mount work here, by mounting an overlay of
/// empty directories under `scratch` in a throw-away namespace.
pub fn check_available(scratch: &Path) -> Result<(), SandboxError> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| probe(scratch).map_err(|e| e.to_string()))
        .clone()
        .map_err(|reason| SandboxError::Unavailable { reason })
}

/// Mounts an overlay in a new mount namespace and runs the host's `/bin/sh`.
fn probe(scratch: &Path) -> Result<(), String> {
    let ns = match userns::host_mode()? {
        userns::Mode::Root => None,
        userns::Mode::UserNs(ns) => Some(ns),
    };
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("probe-")
        .tempdir_in(scratch)
        .map_err(|e| format!("{}: {e}", scratch.display()))?
        .keep();
    let result = probe_in(&dir, ns);
    // The overlay's work dir holds a mode-000 directory.
    rootfs::remove_tree(&dir);
    result
}

/// [`probe`] inside its scratch directory `dir`.
fn probe_in(dir: &Path, ns: Option<&userns::UserNs>) -> Result<(), String> {
    for name in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(dir.join(name)).map_err(|e| e.to_string())?;
    }
    let options = run::overlay_options(
        &[dir.join("lower").to_string_lossy().into_owned()],
        &dir.join("upper"),
        &dir.join("work"),
        ns.is_some(),
    )
    .map_err(|e| e.to_string())?;
    let merged = rootfs::c_path(&dir.join("merged")).map_err(|e| e.to_string())?;
    let mut command = std::process::Command::new("/bin/sh");
    command.args(["-c", ":"]);
    let mount_overlay = move || {
        // SAFETY: only system calls on prepared C strings run in the child.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            let private = libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            );
            if private != 0
                || libc::mount(
                    c"overlay".as_ptr(),
                    merged.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    options.as_ptr().cast(),
                ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
    };
    let failed = |e: &dyn std::fmt::Display| {
        let within = if ns.is_some() {
            " inside a user namespace"
        } else {
            ""
        };
        let apparmor = ns
            .and_then(|_| userns::apparmor_restriction())
            .map_or(String::new(), |note| format!("; {note}"));
        format!("a mount namespace with an overlay mount failed{within}: {e}{apparmor}")
    };
    let mut child = match ns {
        None => {
            // SAFETY: the closure only makes system calls on prepared data.
            unsafe { std::os::unix::process::CommandExt::pre_exec(&mut command, mount_overlay) };
            command.spawn().map_err(|e| failed(&e))?
        }
        Some(ns) => userns::spawn(&mut command, ns, mount_overlay).map_err(|e| failed(&e))?,
    };
    let status = child.wait().map_err(|e| failed(&e))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the probe shell exited with {status}"))
    }
}

/// Where run scratch dirs (upper/work/merged) live inside the store root.
pub fn scratch_dir(store: &Store) -> std::path::PathBuf {
    store.root().join("sandbox")
}
