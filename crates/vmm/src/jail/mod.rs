//! The per-instance jail of `flint vmm` (Firecracker's jailer, built in).
//!
//! [`enter`] runs before any guest code, while the process is still
//! single-threaded, and in this order:
//!
//! 1. joins the cgroup the daemon made (`cgroup.procs`);
//! 2. `unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS)`
//!    and forks: the child is pid 1 of the new PID namespace and becomes
//!    the VMM; the parent stays as a small *relay* (relay.rs) with the
//!    pid the daemon spawned, so stop, SIGKILL, exit codes and
//!    re-adoption (pid + start time) work unchanged;
//! 3. in the child: mounts private (`MS_REC | MS_PRIVATE`), the jail dir
//!    bound onto itself, every file the VM needs bound at its own
//!    absolute path inside it, `pivot_root`, the old root detached;
//! 4. fds closed except the ones to keep (/dev/kvm, TAPs, the control
//!    socket, stdio), rlimits set;
//! 5. the capability bounding and ambient sets emptied, `setgroups([])`,
//!    `setresgid`, `setresuid` to the jail ids, every capability dropped,
//!    parent-death signal, `PR_SET_NO_NEW_PRIVS`.
//!
//! The seccomp filters go on afterwards, as without a jail.

mod cgroup;
mod creds;
mod mounts;
mod relay;
pub mod selftest;
pub mod setup;
#[cfg(test)]
mod tests;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use thiserror::Error;

pub use cgroup::join as join_cgroup;
pub use creds::Rlimits;
pub use mounts::mirror_path;
pub use setup::JailRequest;

#[derive(Debug, Error)]
pub enum JailError {
    #[error("the jail needs root (to join a cgroup, mount and change ids)")]
    NotRoot,
    #[error("the jail must be entered while single-threaded ({0} threads)")]
    Threads(usize),
    #[error("jail uid and gid must be non-zero")]
    RootIds,
    #[error("jail root {0}: must be an existing absolute directory")]
    Root(PathBuf),
    #[error("cannot {what}: {source}")]
    Sys {
        what: String,
        source: std::io::Error,
    },
}

impl JailError {
    pub(crate) fn sys(what: impl Into<String>) -> JailError {
        JailError::Sys {
            what: what.into(),
            source: std::io::Error::last_os_error(),
        }
    }
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JailError {
        let what = what.into();
        move |source| JailError::Sys { what, source }
    }
}

/// One host file or directory the jailed VMM needs, bound at the same
/// absolute path inside the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub path: PathBuf,
    pub writable: bool,
}

#[derive(Debug, Clone)]
pub struct JailSpec {
    pub uid: u32,
    pub gid: u32,
    /// The per-instance directory that becomes `/`.
    pub root: PathBuf,
    /// A cgroup (v2) directory made by the daemon; None: stay where we are.
    pub cgroup: Option<PathBuf>,
    pub rlimits: Rlimits,
    pub binds: Vec<Bind>,
    /// Descriptors kept open across the jail (besides 0, 1 and 2).
    pub keep_fds: Vec<RawFd>,
}

impl JailSpec {
    fn check(&self) -> Result<(), JailError> {
        if self.uid == 0 || self.gid == 0 {
            return Err(JailError::RootIds);
        }
        if !self.root.is_absolute() || !self.root.is_dir() {
            return Err(JailError::Root(self.root.clone()));
        }
        // SAFETY: geteuid has no arguments and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(JailError::NotRoot);
        }
        let threads = std::fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(1);
        if threads != 1 {
            return Err(JailError::Threads(threads));
        }
        Ok(())
    }
}

/// Enters the jail. Returns in the jailed VMM process (pid 1 of its PID
/// namespace); the process that called it stays as the relay and never
/// returns (it exits as the VMM exits).
pub fn enter(spec: &JailSpec) -> Result<(), JailError> {
    spec.check()?;
    let last_cap = creds::last_cap();
    if let Some(cgroup) = &spec.cgroup {
        cgroup::join(cgroup)?;
    }
    let flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(JailError::sys(
            "unshare the mount, PID, IPC and UTS namespaces",
        ));
    }
    // The relay holds the write end: the VMM sees it hang up if the relay
    // dies before the parent-death signal is armed.
    let mut pipe = [-1; 2];
    // SAFETY: a live array of two ints.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(JailError::sys("create a pipe"));
    }
    // SAFETY: the process is single-threaded (checked above), so the child
    // may run any code, not only async-signal-safe functions.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(JailError::sys("fork into the new PID namespace"));
    }
    if child > 0 {
        // SAFETY: our copy of the read end, not used by the relay.
        unsafe { libc::close(pipe[0]) };
        relay::run(child, spec, last_cap);
    }
    // SAFETY: the child's copy of the write end.
    unsafe { libc::close(pipe[1]) };
    let hostname = b"flint-vmm";
    // SAFETY: a live buffer and its length.
    unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) };
    let mut keep = spec.keep_fds.clone();
    keep.push(pipe[0]);
    close_other_fds(&keep)?;
    mounts::pivot_into(&spec.root, &spec.binds)?;
    spec.rlimits.apply()?;
    creds::drop_to(spec.uid, spec.gid, last_cap)?;
    // Cleared by the id change, so set now: the VMM dies with its relay.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let mut poll = libc::pollfd {
        fd: pipe[0],
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd; then our read end is closed, once.
    let hung_up = unsafe {
        let n = libc::poll(&mut poll, 1, 0);
        libc::close(pipe[0]);
        n > 0
    };
    if hung_up {
        return Err(JailError::Sys {
            what: "stay with the relay".into(),
            source: std::io::Error::other("the relay process is gone"),
        });
    }
    creds::no_new_privs()
}

/// Closes every descriptor but 0, 1, 2 and `keep` (before /proc goes).
fn close_other_fds(keep: &[RawFd]) -> Result<(), JailError> {
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(JailError::io("list /proc/self/fd"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing a descriptor number this process has open
            // (or had: the read_dir's own, already closed, gives EBADF).
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// /dev/kvm opened before the jail (the jail holds no device nodes); every
/// boot's `Vm::new` duplicates it.
static KVM_FD: OnceLock<OwnedFd> = OnceLock::new();

/// Opens /dev/kvm for the jailed VMM; returns its fd number (to keep).
pub fn open_kvm() -> Result<RawFd, JailError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(JailError::io("open /dev/kvm"))?;
    let fd: OwnedFd = file.into();
    let raw = fd.as_raw_fd();
    let _ = KVM_FD.set(fd);
    Ok(KVM_FD.get().map(|f| f.as_raw_fd()).unwrap_or(raw))
}

/// The /dev/kvm opened before the jail, if any.
pub fn kvm_fd() -> Option<&'static OwnedFd> {
    KVM_FD.get()
}

/// `path` made absolute and free of symlinks (the jail binds it at that
/// path, and a relative path would resolve against the jail's `/`).
pub fn absolute(path: &Path) -> Result<PathBuf, JailError> {
    std::fs::canonicalize(path).map_err(JailError::io(format!("resolve {}", path.display())))
}
