//! Resource limits, ids and capabilities of the jailed process.

use super::JailError;

/// The rlimits of a jailed VMM (soft = hard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimits {
    /// Open files: disks × queues, eventfds, io_uring rings, sockets.
    pub nofile: u64,
    /// Largest file offset written: the largest volume EBS allows
    /// (64 TiB; a write at or past the limit fails even inside an
    /// existing file) plus room.
    pub fsize: u64,
    /// Processes and threads of the jail uid (one uid per instance):
    /// vCPUs, the event loop, the API thread and io_uring workers.
    pub nproc: u64,
}

impl Rlimits {
    pub fn for_vm(vcpus: u8) -> Rlimits {
        Rlimits {
            nofile: 4096,
            fsize: 65 << 40,
            nproc: 128 + 8 * u64::from(vcpus),
        }
    }

    pub fn apply(&self) -> Result<(), JailError> {
        for (resource, name, value) in [
            (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", self.nofile),
            (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE", self.fsize),
            (libc::RLIMIT_NPROC, "RLIMIT_NPROC", self.nproc),
        ] {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            // SAFETY: a live rlimit struct.
            if unsafe { libc::setrlimit(resource, &limit) } != 0 {
                return Err(JailError::sys(format!("set {name}")));
            }
        }
        Ok(())
    }
}

/// The highest capability number this kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// Empties the bounding and ambient sets (needs CAP_SETPCAP: before the
/// id change), becomes `uid`:`gid` with no supplementary groups, and
/// clears the permitted, effective and inheritable sets.
pub fn drop_to(uid: u32, gid: u32, last_cap: u32) -> Result<(), JailError> {
    for cap in 0..=last_cap {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            return Err(JailError::sys(format!(
                "drop capability {cap} from the bounding set"
            )));
        }
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    // SAFETY: an empty group list (a null pointer with a zero count).
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(JailError::sys("clear the supplementary groups"));
    }
    // SAFETY: integer ids.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(JailError::sys(format!("become gid {gid}")));
    }
    // SAFETY: integer ids.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(JailError::sys(format!("become uid {uid}")));
    }
    clear_capabilities()
}

/// capset(2) with every set empty.
fn clear_capabilities() -> Result<(), JailError> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data::default(); 2];
    // SAFETY: a v3 header and the two data structs v3 expects, both live.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(JailError::sys("clear the capability sets"));
    }
    Ok(())
}

/// PR_SET_NO_NEW_PRIVS: no exec can grant privileges again.
pub fn no_new_privs() -> Result<(), JailError> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(JailError::sys("set no_new_privs"));
    }
    Ok(())
}
