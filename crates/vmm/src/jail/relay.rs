//! The relay: the process the daemon spawned, left outside the new PID
//! namespace when the VMM forked into it. It keeps the pid the daemon
//! tracks (stop, SIGKILL, re-adoption by pid + start time), forwards
//! termination signals to the VMM, and exits as the VMM did. It drops to
//! the jail's ids and capabilities too (and is pivoted into the jail with
//! the VMM: they share the mount namespace); the VMM dies with it
//! (parent-death signal). Its own seccomp filter (resources/seccomp/
//! relay.json) allows waiting, signalling and exiting, nothing else.

use std::sync::atomic::{AtomicI32, Ordering};

use super::{JailSpec, creds};

static VMM_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let pid = VMM_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; a positive pid.
        unsafe { libc::kill(pid, signal) };
    }
}

pub fn run(vmm: libc::pid_t, spec: &JailSpec, last_cap: u32) -> ! {
    VMM_PID.store(vmm, Ordering::Relaxed);
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installs a handler that only calls kill(2).
        unsafe { libc::signal(signal, forward as *const () as libc::sighandler_t) };
    }
    let contained = creds::drop_to(spec.uid, spec.gid, last_cap)
        .and_then(|()| creds::no_new_privs())
        .map_err(|e| e.to_string())
        .and_then(|()| crate::seccomp::install_relay().map_err(|e| e.to_string()));
    if let Err(e) = contained {
        eprintln!("flint vmm: jail relay: {e}");
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(vmm, libc::SIGKILL) };
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child into a live int.
        let rc = unsafe { libc::waitpid(vmm, &mut status, 0) };
        if rc == vmm {
            break;
        }
        if rc < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            std::process::exit(1);
        }
    }
    if libc::WIFEXITED(status) {
        std::process::exit(libc::WEXITSTATUS(status));
    }
    let signal = libc::WTERMSIG(status);
    // SAFETY: back to the default action, then the same signal to
    // ourselves: the daemon sees the VMM's death as it happened.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::kill(libc::getpid(), signal);
    }
    std::process::exit(128 + signal);
}
