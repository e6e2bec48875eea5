//! Running the sandbox without root, the way rootless BuildKit and Podman
//! do: a user namespace maps the caller's uid/gid to 0, and — when
//! `newuidmap`/`newgidmap` and `/etc/subuid`/`/etc/subgid` ranges exist — a
//! subordinate range to 1..=65536, so base files owned by other users and
//! apt's `_apt` user work as under root. With only the caller's own id
//! mapped the sandbox still runs; files owned by other users appear as root
//! and apt runs with `APT::Sandbox::User=root`.
//!
//! [`decide`] is the pure decision (root, user namespace, or the reason it
//! cannot run); [`spawn`] starts a process inside the namespace; the helpers
//! below run host tools (`chown`, `rm`, `find`) inside it for the files the
//! caller cannot touch on the host.

use super::SandboxError;
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The first kernel that mounts overlayfs inside a user namespace.
const MIN_KERNEL: (u32, u32) = (5, 11);

/// How many subordinate ids a full mapping uses (ids 1..=65536 inside).
pub const FULL_RANGE: u32 = 65536;

/// One line of a uid or gid map: `count` ids from `inside` map to `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id on the host.
    pub outside: u32,
    /// Number of ids.
    pub count: u32,
}

/// The user namespace a non-root caller's sandbox runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNs {
    /// uid map lines.
    pub uid_map: Vec<IdRange>,
    /// gid map lines.
    pub gid_map: Vec<IdRange>,
    /// The map is written by `newuidmap`/`newgidmap` (paths), else by the
    /// process itself (only the caller's own ids).
    pub helpers: Option<(PathBuf, PathBuf)>,
}

impl UserNs {
    /// True when only the caller's own uid is mapped (no subordinate ids).
    pub fn single_id(&self) -> bool {
        self.uid_map.iter().map(|r| u64::from(r.count)).sum::<u64>() <= 1
    }

    /// The namespace uid of a host uid (65534, "nobody", when unmapped).
    pub fn uid_inside(&self, host: u32) -> u32 {
        inside(&self.uid_map, host)
    }

    /// The namespace gid of a host gid (65534 when unmapped).
    pub fn gid_inside(&self, host: u32) -> u32 {
        inside(&self.gid_map, host)
    }

    /// A short text naming the mapping, for messages and store keys.
    pub fn describe(&self) -> String {
        let lines = |map: &[IdRange]| {
            map.iter()
                .map(|r| format!("{}:{}:{}", r.inside, r.outside, r.count))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!("uid {} gid {}", lines(&self.uid_map), lines(&self.gid_map))
    }
}

fn inside(map: &[IdRange], host: u32) -> u32 {
    map.iter()
        .find(|r| host >= r.outside && host - r.outside < r.count)
        .map_or(65534, |r| r.inside + (host - r.outside))
}

/// How the sandbox runs on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// As root: mount + PID namespace only.
    Root,
    /// As a normal user, inside a user namespace.
    UserNs(UserNs),
}

/// What [`decide`] looks at, gathered from the running host by
/// [`HostFacts::gather`].
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Running on Linux.
    pub linux: bool,
    /// Effective uid and gid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Kernel (major, minor), when readable.
    pub kernel: Option<(u32, u32)>,
    /// `/proc/sys/user/max_user_namespaces`.
    pub max_user_namespaces: Option<u64>,
    /// `/proc/sys/kernel/unprivileged_userns_clone` (Debian/Ubuntu kernels).
    pub unprivileged_userns_clone: Option<u64>,
    /// Paths of `newuidmap` and `newgidmap` when both are installed.
    pub id_helpers: Option<(PathBuf, PathBuf)>,
    /// The caller's `/etc/subuid` range (start, count).
    pub subuid: Option<(u32, u32)>,
    /// The caller's `/etc/subgid` range (start, count).
    pub subgid: Option<(u32, u32)>,
}

/// Decides how the sandbox runs, or says why it cannot (the reason names
/// the setting to change).
pub fn decide(facts: &HostFacts) -> Result<Mode, String> {
    if !facts.linux {
        return Err("it needs Linux namespaces and overlayfs, and this is not Linux".to_string());
    }
    if facts.euid == 0 {
        return Ok(Mode::Root);
    }
    let not_root = "cogpack is not running as root";
    if let Some((major, minor)) = facts.kernel.filter(|k| *k < MIN_KERNEL) {
        return Err(format!(
            "{not_root} and Linux {major}.{minor} is older than {}.{}, the first kernel that mounts overlayfs inside a user namespace",
            MIN_KERNEL.0, MIN_KERNEL.1
        ));
    }
    let disabled = [
        (
            facts.max_user_namespaces,
            "/proc/sys/user/max_user_namespaces",
        ),
        (
            facts.unprivileged_userns_clone,
            "/proc/sys/kernel/unprivileged_userns_clone",
        ),
    ];
    if let Some((_, path)) = disabled.iter().find(|(value, _)| *value == Some(0)) {
        return Err(format!(
            "{not_root} and unprivileged user namespaces are disabled ({path} is 0)"
        ));
    }
    let own = |id| IdRange {
        inside: 0,
        outside: id,
        count: 1,
    };
    let sub = |(start, count): (u32, u32)| IdRange {
        inside: 1,
        outside: start,
        count: count.min(FULL_RANGE),
    };
    let full = match (&facts.id_helpers, facts.subuid, facts.subgid) {
        (Some(helpers), Some(uids), Some(gids)) if uids.1 > 0 && gids.1 > 0 => UserNs {
            uid_map: vec![own(facts.euid), sub(uids)],
            gid_map: vec![own(facts.egid), sub(gids)],
            helpers: Some(helpers.clone()),
        },
        _ => UserNs {
            uid_map: vec![own(facts.euid)],
            gid_map: vec![own(facts.egid)],
            helpers: None,
        },
    };
    Ok(Mode::UserNs(full))
}

impl HostFacts {
    /// Reads the facts from this host.
    pub fn gather() -> HostFacts {
        // SAFETY: geteuid/getegid have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let user = user_name(euid);
        HostFacts {
            linux: cfg!(target_os = "linux"),
            euid,
            egid,
            kernel: kernel_version(),
            max_user_namespaces: read_number("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: read_number("/proc/sys/kernel/unprivileged_userns_clone"),
            id_helpers: find_program("newuidmap").zip(find_program("newgidmap")),
            subuid: subordinate_range("/etc/subuid", user.as_deref(), euid),
            subgid: subordinate_range("/etc/subgid", user.as_deref(), euid),
        }
    }
}

/// Why a user namespace may lack the rights to mount: Ubuntu's AppArmor
/// restriction (namespaces are created, but without capabilities, unless a
/// profile allows the program). `None` when it is off.
pub fn apparmor_restriction() -> Option<String> {
    let path = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";
    (read_number(path) == Some(1)).then(|| {
        format!(
            "AppArmor restricts unprivileged user namespaces ({path} is 1): allow cogpack with an AppArmor profile that has `userns,`, or set the sysctl to 0"
        )
    })
}

/// The mode of this process, decided once. A full mapping whose
/// `newuidmap`/`newgidmap` fail (e.g. installed without their setuid bit)
/// falls back to mapping only the caller's own ids.
pub fn host_mode() -> Result<&'static Mode, String> {
    static MODE: OnceLock<Result<Mode, String>> = OnceLock::new();
    MODE.get_or_init(|| {
        let facts = HostFacts::gather();
        match decide(&facts) {
            Ok(Mode::UserNs(ns)) if ns.helpers.is_some() && !helpers_work(&ns) => {
                decide(&HostFacts {
                    id_helpers: None,
                    ..facts
                })
            }
            decided => decided,
        }
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// True when a process can be started with `ns`'s mapping.
fn helpers_work(ns: &UserNs) -> bool {
    run_tool(ns, Path::new("/"), "true", &[], &[]).is_ok()
}

/// The user namespace of this process's sandbox, if it runs in one.
pub fn host_userns() -> Option<&'static UserNs> {
    match host_mode() {
        Ok(Mode::UserNs(ns)) => Some(ns),
        _ => None,
    }
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// (major, minor) of the running kernel.
fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    parse_kernel_release(&release)
}

/// `6.18.44-foo` → (6, 18).
pub fn parse_kernel_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The login name of `uid` from `/etc/passwd`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// A program's path from `PATH` or the usual system directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The first `user:start:count` line of `file` for this user (by name or
/// uid).
fn subordinate_range(file: &str, user: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    parse_subordinate(&text, user, uid)
}

/// Parses `/etc/subuid` text for a user; see [`subordinate_range`].
pub fn parse_subordinate(text: &str, user: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next()?;
        let start = fields.next()?.parse().ok()?;
        let count = fields.next()?.parse().ok()?;
        (Some(owner) == user || owner == uid).then_some((start, count))
    })
}

/// What the child process needs to enter the namespace, prepared before
/// the fork.
enum ChildSide {
    /// Write the maps itself (only the caller's ids).
    SelfMap { uid_map: CString, gid_map: CString },
    /// Send its pid through `pid_w` and wait for one byte on `go_r` while
    /// the parent runs newuidmap/newgidmap; close the parent's ends.
    Helpers {
        pid_w: RawFd,
        go_r: RawFd,
        parent_ends: [RawFd; 2],
    },
}

fn map_text(map: &[IdRange]) -> CString {
    let text: String = map
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect();
    CString::new(text).expect("numbers hold no NUL")
}

/// Spawns `command` in a new user namespace with `ns`'s mapping, then runs
/// `then` (in the child, before exec; it must only make system calls). The
/// error says what failed (including newuidmap's complaint).
pub fn spawn<F>(command: &mut Command, ns: &UserNs, then: F) -> Result<Child, String>
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    let within = |e: io::Error| format!("{e} (user namespace {})", ns.describe());
    let Some(helpers) = &ns.helpers else {
        let side = ChildSide::SelfMap {
            uid_map: map_text(&ns.uid_map),
            gid_map: map_text(&ns.gid_map),
        };
        return start(command, side, then).map_err(within);
    };
    let pipe_error = |e: io::Error| format!("cannot create a pipe: {e}");
    let (pid_r, pid_w) = io::pipe().map_err(pipe_error)?;
    let (go_r, go_w) = io::pipe().map_err(pipe_error)?;
    let side = ChildSide::Helpers {
        pid_w: pid_w.as_raw_fd(),
        go_r: go_r.as_raw_fd(),
        parent_ends: [pid_r.as_raw_fd(), go_w.as_raw_fd()],
    };
    let (helpers, ns_for_thread) = (helpers.clone(), ns.clone());
    let mapper = std::thread::spawn(move || write_maps(pid_r, go_w, &helpers, &ns_for_thread));
    let child = start(command, side, then);
    drop((pid_w, go_r));
    let mapped = mapper
        .join()
        .unwrap_or_else(|_| Err("the id mapper panicked".into()));
    child.map_err(|e| match mapped {
        Err(mapper) => format!("{}: {mapper}", within(e)),
        Ok(()) => within(e),
    })
}

fn start<F>(command: &mut Command, side: ChildSide, mut then: F) -> io::Result<Child>
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    // SAFETY: the closure only makes system calls on data prepared before
    // the fork.
    unsafe {
        command.pre_exec(move || {
            enter(&side)?;
            then()
        });
    }
    command.spawn()
}

/// Child side: unshare the user namespace and get its maps written.
fn enter(side: &ChildSide) -> io::Result<()> {
    // SAFETY: plain system calls on prepared C strings and owned fds.
    unsafe {
        if let ChildSide::Helpers { parent_ends, .. } = side {
            for fd in parent_ends {
                libc::close(*fd);
            }
        }
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            return Err(io::Error::last_os_error());
        }
        match side {
            ChildSide::SelfMap { uid_map, gid_map } => {
                write_proc(c"/proc/self/setgroups", c"deny")?;
                write_proc(c"/proc/self/uid_map", uid_map)?;
                write_proc(c"/proc/self/gid_map", gid_map)
            }
            ChildSide::Helpers { pid_w, go_r, .. } => {
                let pid = libc::getpid().to_ne_bytes();
                if libc::write(*pid_w, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
                    return Err(io::Error::last_os_error());
                }
                let mut go = [0u8; 1];
                let n = libc::read(*go_r, go.as_mut_ptr().cast(), 1);
                if n == 1 && go[0] == 1 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(libc::EPERM))
                }
            }
        }
    }
}

/// Writes a C string to a `/proc/self` file.
unsafe fn write_proc(path: &std::ffi::CStr, text: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: valid C strings; the fd is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let bytes = text.to_bytes();
        let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let error = io::Error::last_os_error();
        libc::close(fd);
        if written == bytes.len() as isize {
            Ok(())
        } else {
            Err(error)
        }
    }
}

/// Parent side: waits for the child's pid, runs newuidmap/newgidmap and
/// tells the child whether it worked.
fn write_maps(
    mut pid_r: io::PipeReader,
    mut go_w: io::PipeWriter,
    helpers: &(PathBuf, PathBuf),
    ns: &UserNs,
) -> Result<(), String> {
    let mut pid = [0u8; 4];
    if pid_r.read_exact(&mut pid).is_err() {
        return Err("the child ended before its user namespace was mapped".to_string());
    }
    let pid = i32::from_ne_bytes(pid).to_string();
    let result = run_map_helper(&helpers.0, &pid, &ns.uid_map)
        .and_then(|()| run_map_helper(&helpers.1, &pid, &ns.gid_map));
    let _ = go_w.write_all(&[u8::from(result.is_ok())]);
    result
}

fn run_map_helper(program: &Path, pid: &str, map: &[IdRange]) -> Result<(), String> {
    let mut command = Command::new(program);
    command.arg(pid);
    for r in map {
        command.args([r.inside, r.outside, r.count].map(|n| n.to_string()));
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs a host program inside the namespace (in `dir`), feeding `input`
/// on stdin; returns its stdout.
pub fn run_tool(
    ns: &UserNs,
    dir: &Path,
    program: &str,
    args: &[&str],
    input: &[u8],
) -> Result<Vec<u8>, SandboxError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command, ns, || Ok(())).map_err(|detail| SandboxError::Setup {
        what: format!("cannot run `{program}` in a user namespace: {detail}"),
    })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let feeder = {
        let input = input.to_vec();
        std::thread::spawn(move || stdin.write_all(&input))
    };
    let output = child
        .wait_with_output()
        .map_err(SandboxError::io("wait for", Path::new(program)))?;
    let _ = feeder.join();
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(SandboxError::Setup {
        what: format!(
            "`{program} {}` in the user namespace ({}) failed in {} with {}: {}",
            args.join(" "),
            ns.describe(),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

/// Namespace owner and mode per path (relative to a tree's root).
pub type Owners = std::collections::HashMap<String, (u32, u32, u32)>;

/// The owner an unpacked entry must get inside the namespace.
#[derive(Debug, Clone)]
pub struct PathOwner {
    /// Path relative to the tree's root.
    pub path: PathBuf,
    /// Namespace uid.
    pub uid: u32,
    /// Namespace gid.
    pub gid: u32,
    /// Permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    /// A symlink (its own owner is set; it has no mode).
    pub symlink: bool,
}

/// Sets namespace owners (and, after chown cleared them, setuid/setgid
/// modes) of paths relative to `dir`.
pub fn set_owners(ns: &UserNs, dir: &Path, owners: &[PathOwner]) -> Result<(), SandboxError> {
    use std::collections::BTreeMap;
    use std::os::unix::ffi::OsStrExt;
    let mut by_owner: BTreeMap<(u32, u32), Vec<u8>> = BTreeMap::new();
    let mut by_mode: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    for owner in owners {
        let path = owner.path.as_os_str().as_bytes();
        let list = by_owner.entry((owner.uid, owner.gid)).or_default();
        list.extend_from_slice(path);
        list.push(0);
        if !owner.symlink && owner.mode & 0o7000 != 0 {
            let list = by_mode.entry(owner.mode).or_default();
            list.extend_from_slice(path);
            list.push(0);
        }
    }
    for ((uid, gid), list) in by_owner {
        let owner = format!("{uid}:{gid}");
        run_tool(
            ns,
            dir,
            "xargs",
            &["-0r", "chown", "-h", &owner, "--"],
            &list,
        )?;
    }
    for (mode, list) in by_mode {
        let mode = format!("{mode:o}");
        run_tool(ns, dir, "xargs", &["-0r", "chmod", &mode, "--"], &list)?;
    }
    Ok(())
}

/// Removes a tree whose files may belong to subordinate ids.
pub fn remove_tree(ns: &UserNs, path: &Path) -> Result<(), SandboxError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let target = path.to_string_lossy();
    run_tool(ns, parent, "rm", &["-rf", "--", &target], &[]).map(|_| ())
}

/// Namespace owners and modes of everything under `dir`, after which the
/// whole tree is handed to the caller (owner 0 inside, readable) so the
/// layer writer can read it on the host. Keys are paths relative to `dir`.
pub fn take_over_tree(ns: &UserNs, dir: &Path) -> Result<Owners, SandboxError> {
    let script =
        "find . -mindepth 1 -printf '%U %G %m %P\\0' && chown -hR 0:0 . && chmod -R u+rwX .";
    let listing = run_tool(ns, dir, "/bin/sh", &["-c", script], &[])?;
    Ok(parse_listing(&listing))
}

/// Parses `uid gid octal-mode path\0` records.
pub fn parse_listing(listing: &[u8]) -> Owners {
    listing
        .split(|b| *b == 0)
        .filter_map(|record| {
            let text = String::from_utf8_lossy(record);
            let mut fields = text.splitn(4, ' ');
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            let mode = u32::from_str_radix(fields.next()?, 8).ok()?;
            Some((fields.next()?.to_string(), (uid, gid, mode)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_facts() -> HostFacts {
        HostFacts {
            linux: true,
            euid: 1000,
            egid: 1000,
            kernel: Some((6, 8)),
            max_user_namespaces: Some(63000),
            ..HostFacts::default()
        }
    }

    #[test]
    fn root_runs_without_a_user_namespace() {
        let facts = HostFacts {
            euid: 0,
            kernel: Some((4, 19)),
            max_user_namespaces: Some(0),
            ..user_facts()
        };
        assert_eq!(decide(&facts), Ok(Mode::Root));
    }

    #[test]
    fn user_with_helpers_and_ranges_gets_the_full_mapping() {
        let facts = HostFacts {
            id_helpers: Some(("/usr/bin/newuidmap".into(), "/usr/bin/newgidmap".into())),
            subuid: Some((100000, 65536)),
            subgid: Some((200000, 131072)),
            ..user_facts()
        };
        let Ok(Mode::UserNs(ns)) = decide(&facts) else {
            panic!("expected a user namespace")
        };
        assert!(!ns.single_id());
        assert_eq!(ns.uid_inside(1000), 0);
        assert_eq!(ns.uid_inside(100041), 42);
        assert_eq!(ns.gid_inside(200000 + 65535), 65536);
        assert_eq!(ns.gid_inside(200000 + 65536), 65534, "beyond the map");
    }

    #[test]
    fn user_without_ranges_maps_only_itself() {
        let facts = HostFacts {
            id_helpers: Some(("/usr/bin/newuidmap".into(), "/usr/bin/newgidmap".into())),
            subuid: None,
            ..user_facts()
        };
        let Ok(Mode::UserNs(ns)) = decide(&facts) else {
            panic!("expected a user namespace")
        };
        assert!(ns.single_id());
        assert!(ns.helpers.is_none());
        assert_eq!(ns.uid_inside(1000), 0);
        assert_eq!(ns.uid_inside(0), 65534);
    }

    #[test]
    fn refusals_name_the_reason() {
        let cases = [
            (
                HostFacts {
                    linux: false,
                    ..user_facts()
                },
                "not Linux",
            ),
            (
                HostFacts {
                    kernel: Some((5, 10)),
                    ..user_facts()
                },
                "Linux 5.10 is older than 5.11",
            ),
            (
                HostFacts {
                    max_user_namespaces: Some(0),
                    ..user_facts()
                },
                "/proc/sys/user/max_user_namespaces is 0",
            ),
            (
                HostFacts {
                    unprivileged_userns_clone: Some(0),
                    ..user_facts()
                },
                "unprivileged_userns_clone is 0",
            ),
        ];
        for (facts, reason) in cases {
            let error = decide(&facts).expect_err(reason);
            assert!(error.contains(reason), "{error:?} lacks {reason:?}");
        }
    }

    #[test]
    fn subordinate_ranges_match_name_or_uid() {
        let text = "alice:100000:65536\n1001:165536:65536\n";
        assert_eq!(
            parse_subordinate(text, Some("alice"), 1000),
            Some((100000, 65536))
        );
        assert_eq!(
            parse_subordinate(text, Some("bob"), 1001),
            Some((165536, 65536))
        );
        assert_eq!(parse_subordinate(text, Some("carol"), 1002), None);
    }

    #[test]
    fn kernel_release_and_listing_parse() {
        assert_eq!(parse_kernel_release("6.18.44-fc-v669\n"), Some((6, 18)));
        assert_eq!(parse_kernel_release("5.4"), Some((5, 4)));
        let listing = b"0 0 755 usr\x0042 0 4755 usr/bin/a b\x00";
        let parsed = parse_listing(listing);
        assert_eq!(parsed["usr"], (0, 0, 0o755));
        assert_eq!(parsed["usr/bin/a b"], (42, 0, 0o4755));
    }
}
