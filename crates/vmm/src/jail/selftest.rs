//! `flint vmm --jail-selftest`: a containment drill run inside the jail
//! instead of a VM. Every attempt must fail; the drill prints one line per
//! attempt and exits 1 if any succeeded. Its last step installs the VMM's
//! seccomp filter and calls execve, which the filter must kill (exit code
//! [`crate::seccomp::EXIT_FORBIDDEN_SYSCALL`], a line naming execve).

use std::ffi::CString;
use std::path::PathBuf;

/// What the drill tries. `deny` are extra host paths that must not open
/// (another instance's volume, a host block device).
pub fn run(deny: &[PathBuf]) -> ! {
    let mut escaped = Vec::new();
    let mut check = |what: String, succeeded: bool| {
        println!(
            "jail-selftest: {what}: {}",
            if succeeded { "SUCCEEDED" } else { "refused" }
        );
        if succeeded {
            escaped.push(what);
        }
    };
    let mut paths: Vec<PathBuf> = [
        "/etc/shadow",
        "/etc/passwd",
        "/dev/kvm",
        "/dev/sda",
        "/dev/vda",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    paths.extend(deny.iter().cloned());
    for path in &paths {
        let opened = std::fs::OpenOptions::new().read(true).open(path).is_ok();
        check(format!("open {}", path.display()), opened);
    }
    let node = c"/jail-selftest-blk";
    // SAFETY: a static path; a block device number (8:0, sda).
    let made = unsafe { libc::mknod(node.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(8, 0)) };
    check("mknod a block device".into(), made == 0);
    // SAFETY: integer ids.
    check("setuid(0)".into(), unsafe { libc::setuid(0) } == 0);
    let tmpfs = CString::new("tmpfs").unwrap_or_default();
    // SAFETY: static strings; no data.
    let mounted = unsafe {
        libc::mount(
            tmpfs.as_ptr(),
            c"/".as_ptr(),
            tmpfs.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    check("mount a tmpfs".into(), mounted == 0);
    // SAFETY: capget-free check: chroot needs CAP_SYS_CHROOT.
    check("chroot".into(), unsafe { libc::chroot(c"/".as_ptr()) } == 0);
    check("fork past the process limits".into(), fork_bomb());
    if !escaped.is_empty() {
        eprintln!("flint vmm: jail-selftest: FAILED: {}", escaped.join(", "));
        std::process::exit(1);
    }
    println!("jail-selftest: now execve under the seccomp filter (must be killed)");
    if let Err(e) = crate::seccomp::install(crate::seccomp::ThreadKind::Vmm) {
        eprintln!("flint vmm: jail-selftest: {e}");
        std::process::exit(1);
    }
    let sh = c"/bin/sh";
    let argv = [sh.as_ptr(), std::ptr::null()];
    // SAFETY: a static path and a null-terminated argv; the filter must
    // stop the call before the kernel looks at them.
    unsafe { libc::execv(sh.as_ptr(), argv.as_ptr()) };
    eprintln!("flint vmm: jail-selftest: FAILED: execve returned instead of being killed");
    std::process::exit(1);
}

/// Forks children that wait until up to 100 000 exist; true if every fork
/// succeeded (no limit stopped them). The children are killed and reaped.
fn fork_bomb() -> bool {
    const MAX: usize = 100_000;
    let mut children = Vec::new();
    let mut stopped = false;
    while children.len() < MAX {
        // SAFETY: the drill is single-threaded; the child only pauses.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            loop {
                // SAFETY: pause has no arguments.
                unsafe { libc::pause() };
            }
        }
        if pid < 0 {
            stopped = true;
            break;
        }
        children.push(pid);
    }
    println!("jail-selftest: {} forks before the limit", children.len());
    for &pid in &children {
        // SAFETY: our own children.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &children {
        let mut status = 0;
        // SAFETY: reaps our own child into a live int.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    !stopped
}
