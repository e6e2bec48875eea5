//! Runs one command in a fresh mount + PID namespace over an overlayfs of
//! unpacked layers, like a Dockerfile `RUN` line. A caller that is not root
//! gets a user namespace first ([`super::userns`]); the overlay then keeps
//! its whiteout marks in `user.overlay.*` xattrs (`userxattr`).
//!
//! The spawned process unshares the namespaces and forks again so the
//! command's shell is PID 1 of the new PID namespace (everything it starts
//! dies with it); that grandchild mounts the overlay, `/proc`, a minimal
//! `/dev`, tmpfs `/tmp` and `/run`, the host's resolv.conf and hosts and the
//! step's secrets, chroots and execs `/bin/sh -c`. Between fork and exec
//! only system calls on prepared C strings run (no allocation).

use super::SandboxError;
use super::rootfs::c_path;
use super::userns::{self, UserNs};
use std::collections::VecDeque;
use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How many trailing output lines a failure reports.
const TAIL_LINES: usize = 20;

/// Device nodes bound from the host into the sandbox's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Host files bound read-only into the sandbox (never into a layer).
pub const HOST_FILES: &[&str] = &["etc/resolv.conf", "etc/hosts"];

/// Directories the sandbox mounts over (their content never reaches a layer).
pub const MOUNTED_DIRS: &[&str] = &["proc", "dev", "tmp", "run"];

/// Where a sandbox that maps only the caller's own uid writes its apt
/// setting (inside the `/run` tmpfs, so never into a layer).
const APT_CONFIG: &str = "/run/cogpack-apt.conf";

/// apt cannot switch to its `_apt` user when only one uid is mapped.
const APT_AS_ROOT: &str = "APT::Sandbox::User \"root\";\n";

/// The file next to the upper dir listing the namespace owners and modes
/// of its entries (written when the run used a user namespace).
pub const OWNERS_FILE: &str = "owners";

/// A file bound read-only at `target` for one step.
#[derive(Debug, Clone)]
pub struct BindFile {
    /// File on the host.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
}

/// A host directory bound read-write at `target` (a BuildKit-style cache
/// mount: persistent across builds, never part of a layer).
#[derive(Debug, Clone)]
pub struct BindDir {
    /// Directory on the host.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Step name, prefixed to every output line.
    pub step_name: String,
    /// Shell command (`/bin/sh -c`).
    pub command: String,
    /// `KEY=value` environment, in order.
    pub env: Vec<String>,
    /// Working directory inside the sandbox.
    pub workdir: String,
    /// Unpacked layer directories, bottom first.
    pub lower_dirs: Vec<PathBuf>,
    /// Secret files bound for this step only.
    pub secrets: Vec<BindFile>,
    /// Cache directories bound for this step only.
    pub cache_dirs: Vec<BindDir>,
}

/// The directories of one finished run; removed on drop.
pub struct RunDirs {
    dir: tempfile::TempDir,
}

impl RunDirs {
    /// The overlay upper dir: exactly what the command changed.
    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }
}

impl Drop for RunDirs {
    fn drop(&mut self) {
        super::rootfs::remove_tree(self.dir.path());
    }
}

impl RunDirs {
    /// Hands the upper dir of a user-namespace run to the caller, keeping
    /// the namespace owners and modes in [`OWNERS_FILE`] for the layer.
    fn take_over(&self, ns: &UserNs) -> Result<(), SandboxError> {
        let upper = self.upper();
        let owners = userns::take_over_tree(ns, &upper)?;
        let mut text = Vec::new();
        for (path, (uid, gid, mode)) in owners {
            text.extend_from_slice(format!("{uid} {gid} {mode:o} {path}").as_bytes());
            text.push(0);
        }
        let file = self.dir.path().join(OWNERS_FILE);
        std::fs::write(&file, text).map_err(SandboxError::io("write", &file))
    }
}

/// Everything prepared before `fork`, so the child only makes system calls.
struct Prepared {
    rootfs_root: CString,
    merged: CString,
    overlay_options: CString,
    proc_dir: CString,
    dev_dir: CString,
    devices: Vec<(CString, CString)>,
    dev_links: Vec<(CString, CString)>,
    dev_pts: CString,
    dev_shm: CString,
    tmp_dir: CString,
    run_dir: CString,
    host_files: Vec<(CString, CString)>,
    mount_parents: Vec<CString>,
    secrets: Vec<(CString, CString)>,
    cache_dirs: Vec<(CString, CString)>,
    workdir: CString,
    /// Written into the `/run` tmpfs when only one uid is mapped.
    apt_config: Option<(CString, CString)>,
}

/// Runs `spec` in a sandbox rooted at `rootfs_root` (the directory holding
/// the lower dirs) with its scratch space under `scratch`. `output` gets
/// every line the command prints (stdout and stderr, in order).
pub fn run_command(
    spec: &RunSpec,
    rootfs_root: &Path,
    scratch: &Path,
    output: &mut dyn FnMut(&str),
) -> Result<RunDirs, SandboxError> {
    std::fs::create_dir_all(scratch).map_err(SandboxError::io("create", scratch))?;
    let dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(scratch)
        .map_err(SandboxError::io("create temp dir in", scratch))?;
    let dirs = RunDirs { dir };
    for name in ["upper", "work", "merged"] {
        let path = dirs.dir.path().join(name);
        std::fs::create_dir(&path).map_err(SandboxError::io("create", &path))?;
    }
    let mode = super::userns::host_mode().map_err(|reason| SandboxError::Unavailable { reason })?;
    let ns = match mode {
        userns::Mode::Root => None,
        userns::Mode::UserNs(ns) => Some(ns),
    };
    let prepared = prepare(spec, rootfs_root, dirs.dir.path(), ns)?;
    let (reader, writer) = std::io::pipe().map_err(SandboxError::io("create pipe", scratch))?;
    let writer_err = writer
        .try_clone()
        .map_err(SandboxError::io("create pipe", scratch))?;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&spec.command)
        .env_clear()
        .envs(spec.env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_err);
    if prepared.apt_config.is_some() {
        command.env("APT_CONFIG", APT_CONFIG);
        if spec.command.contains("apt") {
            output(&format!(
                "[{}] note: the user namespace maps only your own uid (working newuidmap/newgidmap from `uidmap` and /etc/subuid and /etc/subgid ranges for your user map more); apt runs with APT::Sandbox::User=root and files of other users in the base appear as root",
                spec.step_name
            ));
        }
    }
    let mut child =
        match ns {
            None => {
                // SAFETY: the closure only makes async-signal-safe system calls
                // on data prepared before the fork.
                unsafe {
                    command.pre_exec(move || enter_sandbox(&prepared));
                }
                command.spawn().map_err(|e| SandboxError::Setup {
                    what: format!("cannot start the sandbox for {}: {e}", spec.step_name),
                })?
            }
            Some(ns) => userns::spawn(&mut command, ns, move || enter_sandbox(&prepared)).map_err(
                |detail| SandboxError::Setup {
                    what: format!("cannot start the sandbox for {}: {detail}", spec.step_name),
                },
            )?,
        };
    drop(command);
    let tail = stream_output(reader, &spec.step_name, output);
    let status = child
        .wait()
        .map_err(SandboxError::io("wait for", scratch))?;
    if !status.success() {
        return Err(SandboxError::CommandFailed {
            step: spec.step_name.clone(),
            command: spec.command.clone(),
            code: status.code().unwrap_or(-1),
            tail: tail.into_iter().collect(),
        });
    }
    if let Some(ns) = ns {
        dirs.take_over(ns)?;
    }
    Ok(dirs)
}

/// Forwards output lines with the step prefix and keeps the last few.
fn stream_output(
    reader: std::io::PipeReader,
    step: &str,
    output: &mut dyn FnMut(&str),
) -> VecDeque<String> {
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut line) {
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        output(&format!("[{step}] {text}"));
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
        line.clear();
    }
    tail
}

/// Builds every C string the child needs.
fn prepare(
    spec: &RunSpec,
    rootfs_root: &Path,
    run_dir: &Path,
    ns: Option<&UserNs>,
) -> Result<Prepared, SandboxError> {
    let merged = run_dir.join("merged");
    let inside = |rel: &str| c_path(&merged.join(rel.trim_start_matches('/')));
    let lower: Vec<String> = spec
        .lower_dirs
        .iter()
        .rev()
        .map(|dir| {
            dir.strip_prefix(rootfs_root)
                .unwrap_or(dir)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let options = overlay_options(
        &lower,
        &run_dir.join("upper"),
        &run_dir.join("work"),
        ns.is_some(),
    )?;
    let devices = DEVICES
        .iter()
        .map(|d| {
            Ok((
                c_path(&Path::new("/dev").join(d))?,
                inside(&format!("dev/{d}"))?,
            ))
        })
        .collect::<Result<_, SandboxError>>()?;
    let dev_links = [
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
        ("pts/ptmx", "dev/ptmx"),
    ]
    .iter()
    .map(|(target, link)| Ok((c_path(Path::new(target))?, inside(link)?)))
    .collect::<Result<_, SandboxError>>()?;
    let host_files = HOST_FILES
        .iter()
        .filter(|f| Path::new("/").join(f).is_file())
        .map(|f| Ok((c_path(&Path::new("/").join(f))?, inside(f)?)))
        .collect::<Result<_, SandboxError>>()?;
    let mut mount_parents = Vec::new();
    let targets = spec.secrets.iter().map(|s| &s.target);
    for target in targets.chain(spec.cache_dirs.iter().map(|c| &c.target)) {
        let target = target.trim_start_matches('/');
        let mut parent = Path::new(target).parent();
        let mut chain = Vec::new();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            chain.push(inside(&p.to_string_lossy())?);
            parent = p.parent();
        }
        mount_parents.extend(chain.into_iter().rev());
    }
    let secrets = spec
        .secrets
        .iter()
        .map(|s| Ok((c_path(&s.source)?, inside(&s.target)?)))
        .collect::<Result<_, SandboxError>>()?;
    let cache_dirs = spec
        .cache_dirs
        .iter()
        .map(|c| Ok((c_path(&c.source)?, inside(&c.target)?)))
        .collect::<Result<_, SandboxError>>()?;
    Ok(Prepared {
        rootfs_root: c_path(rootfs_root)?,
        merged: c_path(&merged)?,
        overlay_options: options,
        proc_dir: inside("proc")?,
        dev_dir: inside("dev")?,
        devices,
        dev_links,
        dev_pts: inside("dev/pts")?,
        dev_shm: inside("dev/shm")?,
        tmp_dir: inside("tmp")?,
        run_dir: inside("run")?,
        host_files,
        mount_parents,
        secrets,
        cache_dirs,
        workdir: CString::new(spec.workdir.as_bytes()).map_err(|_| SandboxError::Setup {
            what: format!("working directory {:?} contains a NUL byte", spec.workdir),
        })?,
        apt_config: match ns {
            Some(ns) if ns.single_id() => Some((
                inside(APT_CONFIG)?,
                CString::new(APT_AS_ROOT).expect("static text"),
            )),
            _ => None,
        },
    })
}

/// `lowerdir=…,upperdir=…,workdir=…` (top layer first), refusing paths
/// overlayfs cannot parse and option strings longer than a page. In a user
/// namespace (`user_ns`) the overlay keeps its marks in `user.overlay.*`
/// xattrs, which only allows `redirect_dir=nofollow`.
pub fn overlay_options(
    lower_top_first: &[String],
    upper: &Path,
    work: &Path,
    user_ns: bool,
) -> Result<CString, SandboxError> {
    let all = lower_top_first
        .iter()
        .cloned()
        .chain([
            upper.to_string_lossy().into_owned(),
            work.to_string_lossy().into_owned(),
        ])
        .collect::<Vec<_>>();
    if let Some(bad) = all.iter().find(|p| p.contains([',', ':', '\\'])) {
        return Err(SandboxError::Setup {
            what: format!("path {bad} contains a character overlayfs options cannot hold"),
        });
    }
    let lower = if lower_top_first.is_empty() {
        return Err(SandboxError::Setup {
            what: "the sandbox needs at least one layer".to_string(),
        });
    } else {
        lower_top_first.join(":")
    };
    // Renamed directories and metadata-only copies must be complete in the
    // upper dir (it becomes a layer), whatever the kernel's defaults.
    let redirect = if user_ns {
        "userxattr,redirect_dir=nofollow"
    } else {
        "redirect_dir=off"
    };
    let text = format!(
        "lowerdir={lower},upperdir={},workdir={},{redirect},metacopy=off",
        upper.display(),
        work.display()
    );
    if text.len() >= 4000 {
        return Err(SandboxError::Setup {
            what: format!(
                "{} layers are more than one overlay mount can stack",
                lower_top_first.len()
            ),
        });
    }
    CString::new(text).map_err(|_| SandboxError::Setup {
        what: "overlay options contain a NUL byte".to_string(),
    })
}

/// Writes a fixed message to stderr (async-signal-safe).
fn say(message: &[u8]) {
    // SAFETY: writes a live byte slice to fd 2.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
    }
}

/// The last OS error, after saying which stage failed.
fn fail(stage: &[u8]) -> std::io::Error {
    let error = std::io::Error::last_os_error();
    say(stage);
    error
}

/// Runs in the spawned process: new namespaces, then a fork whose child
/// sets up the tree and returns to exec; the parent waits and exits with
/// the command's status.
fn enter_sandbox(p: &Prepared) -> std::io::Result<()> {
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        // Killed with cogpack, and the command (PID 1) with this process.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWPID) != 0 {
            return Err(fail(b"cogpack sandbox: unshare(mount, pid) failed\n"));
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(fail(b"cogpack sandbox: cannot make mounts private\n"));
        }
        let pid = libc::fork();
        if pid < 0 {
            return Err(fail(b"cogpack sandbox: fork failed\n"));
        }
        if pid > 0 {
            wait_and_exit(pid);
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        setup_tree(p)
    }
}

/// Closes inherited descriptors (so the spawner sees exec), waits for the
/// command and exits with its status.
unsafe fn wait_and_exit(pid: libc::pid_t) -> ! {
    // SAFETY: plain system calls; this process never returns to Rust code.
    unsafe {
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..1024 {
                libc::close(fd);
            }
        }
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 {
            if *libc::__errno_location() != libc::EINTR {
                libc::_exit(125);
            }
        }
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        libc::_exit(code)
    }
}

/// Mounts the tree, chroots and changes to the working directory.
unsafe fn setup_tree(p: &Prepared) -> std::io::Result<()> {
    // SAFETY: plain system calls on prepared C strings.
    unsafe {
        if libc::chdir(p.rootfs_root.as_ptr()) != 0 {
            return Err(fail(b"cogpack sandbox: cannot enter the layer directory\n"));
        }
        mount(
            c"overlay",
            &p.merged,
            c"overlay",
            0,
            Some(&p.overlay_options),
        )
        .map_err(|_| fail(b"cogpack sandbox: overlay mount failed\n"))?;
        mkdir(&p.proc_dir, 0o555);
        mount(
            c"proc",
            &p.proc_dir,
            c"proc",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        )
        .map_err(|_| fail(b"cogpack sandbox: cannot mount /proc\n"))?;
        mount_dev(p)?;
        for (dir, mode) in [(&p.tmp_dir, c"mode=1777"), (&p.run_dir, c"mode=755")] {
            mkdir(dir, 0o755);
            mount(
                c"tmpfs",
                dir,
                c"tmpfs",
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(mode),
            )
            .map_err(|_| fail(b"cogpack sandbox: cannot mount a tmpfs\n"))?;
        }
        if let Some((path, text)) = &p.apt_config {
            write_new_file(path, text)
                .map_err(|_| fail(b"cogpack sandbox: cannot write the apt setting\n"))?;
        }
        for (source, target) in &p.host_files {
            // A base whose resolv.conf is a dangling symlink keeps its own.
            let _ = bind_read_only(source, target);
        }
        for dir in &p.mount_parents {
            mkdir(dir, 0o755);
        }
        for (source, target) in &p.cache_dirs {
            mkdir(target, 0o755);
            mount(source, target, c"none", libc::MS_BIND, None)
                .map_err(|_| fail(b"cogpack sandbox: cannot mount a cache directory\n"))?;
        }
        for (source, target) in &p.secrets {
            bind_read_only(source, target)
                .map_err(|_| fail(b"cogpack sandbox: cannot mount a secret\n"))?;
        }
        if libc::chroot(p.merged.as_ptr()) != 0 {
            return Err(fail(b"cogpack sandbox: chroot failed\n"));
        }
        if libc::chdir(p.workdir.as_ptr()) != 0 && libc::chdir(c"/".as_ptr()) != 0 {
            return Err(fail(b"cogpack sandbox: cannot change directory\n"));
        }
    }
    Ok(())
}

/// A tmpfs `/dev` with the host's basic device nodes bound in.
unsafe fn mount_dev(p: &Prepared) -> std::io::Result<()> {
    // SAFETY: plain system calls on prepared C strings.
    unsafe {
        mkdir(&p.dev_dir, 0o755);
        mount(
            c"tmpfs",
            &p.dev_dir,
            c"tmpfs",
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            Some(c"mode=755"),
        )
        .map_err(|_| fail(b"cogpack sandbox: cannot mount /dev\n"))?;
        for (host, target) in &p.devices {
            touch(target);
            mount(host, target, c"none", libc::MS_BIND, None)
                .map_err(|_| fail(b"cogpack sandbox: cannot bind a device into /dev\n"))?;
        }
        for (target, link) in &p.dev_links {
            libc::symlink(target.as_ptr(), link.as_ptr());
        }
        mkdir(&p.dev_pts, 0o755);
        mount(
            c"devpts",
            &p.dev_pts,
            c"devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some(c"newinstance,ptmxmode=0666,mode=0620"),
        )
        .map_err(|_| fail(b"cogpack sandbox: cannot mount /dev/pts\n"))?;
        mkdir(&p.dev_shm, 0o1777);
        mount(
            c"shm",
            &p.dev_shm,
            c"tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(c"mode=1777"),
        )
        .map_err(|_| fail(b"cogpack sandbox: cannot mount /dev/shm\n"))?;
    }
    Ok(())
}

/// Bind-mounts `source` at `target` (created as an empty file) read-only,
/// keeping the source mount's nosuid/nodev/noexec/atime flags (a user
/// namespace may not drop them).
unsafe fn bind_read_only(source: &CString, target: &CString) -> std::io::Result<()> {
    const KEPT: libc::c_ulong = libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_RELATIME;
    // SAFETY: plain system calls on prepared C strings; `stat` is a local.
    unsafe {
        touch(target);
        mount(source, target, c"none", libc::MS_BIND, None)?;
        // The ST_* flags have the MS_* values; glibc takes them from
        // statfs(2) (kernels since 2.6.36), without reading /proc.
        let mut stat: libc::statvfs = std::mem::zeroed();
        let locked = if libc::statvfs(target.as_ptr(), &mut stat) == 0 {
            stat.f_flag & KEPT
        } else {
            0
        };
        mount(
            c"none",
            target,
            c"none",
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked,
            None,
        )
    }
}

/// Creates `path` holding `text` (async-signal-safe).
unsafe fn write_new_file(path: &CString, text: &CString) -> std::io::Result<()> {
    // SAFETY: valid C strings; the descriptor is closed before returning.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o644,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let bytes = text.to_bytes();
        let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        libc::close(fd);
        if written == bytes.len() as isize {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// `mount(2)` with optional data.
unsafe fn mount(
    source: &std::ffi::CStr,
    target: &std::ffi::CStr,
    fstype: &std::ffi::CStr,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) -> std::io::Result<()> {
    let data = data.map_or(std::ptr::null(), |d| d.as_ptr().cast());
    // SAFETY: valid NUL-terminated strings; data is null or a C string.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `mkdir(2)`, ignoring "exists".
unsafe fn mkdir(path: &CString, mode: libc::mode_t) {
    // SAFETY: valid C string.
    unsafe {
        libc::mkdir(path.as_ptr(), mode);
    }
}

/// Creates an empty file when nothing exists at `path`.
unsafe fn touch(path: &CString) {
    // SAFETY: valid C string; the descriptor is closed at once.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o644,
        );
        if fd >= 0 {
            libc::close(fd);
        }
    }
}
