//! What `flint vmm` does around [`super::enter`]: the files of a VM config
//! made absolute and bound into the jail, and the host resources opened
//! before it (TAPs, the control socket, /dev/kvm) kept as descriptors.

use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use flint_contract::config::VmConfig;

use super::{Bind, JailError, JailSpec, Rlimits, absolute};

/// `flint vmm --jail ...`.
#[derive(Debug, Clone, Default)]
pub struct JailRequest {
    pub uid: u32,
    pub gid: u32,
    pub root: PathBuf,
    pub cgroup: Option<PathBuf>,
    /// Run the containment drill instead of the VM.
    pub selftest: bool,
    /// Extra paths the drill must fail to open.
    pub deny: Vec<PathBuf>,
}

/// Makes every file path of `config` absolute (the jail binds them at
/// those paths) and lists the binds. A console file that does not exist
/// yet is created for the jail uid.
pub fn prepare(config: &mut VmConfig, request: &JailRequest) -> Result<Vec<Bind>, JailError> {
    let mut binds = Vec::new();
    let mut add = |path: &mut PathBuf, writable: bool| -> Result<(), JailError> {
        *path = absolute(path)?;
        binds.push(Bind {
            path: path.clone(),
            writable,
        });
        Ok(())
    };
    if let Some(kernel) = config.kernel.as_mut() {
        add(&mut kernel.path, false)?;
        if let Some(initrd) = kernel.initrd.as_mut() {
            add(initrd, false)?;
        }
    }
    if let Some(image) = config.image.as_mut() {
        add(&mut image.firmware, false)?;
        add(&mut image.path, true)?;
    }
    for disk in &mut config.disks {
        add(&mut disk.path, !disk.read_only)?;
    }
    if let Some(file) = config.console.file.as_mut() {
        // The log rotates into `PATH.1`: both are bound, so both must
        // exist before the jail and belong to its uid.
        let rotated = crate::devices::legacy::console_log::rotated_path(file);
        for path in [file.clone(), rotated] {
            if !path.exists() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(JailError::io(format!("create {}", path.display())))?;
                std::os::unix::fs::chown(&path, Some(request.uid), Some(request.gid))
                    .map_err(JailError::io(format!("chown {}", path.display())))?;
            }
        }
        add(file, true)?;
        let mut rotated = crate::devices::legacy::console_log::rotated_path(file);
        add(&mut rotated, true)?;
    }
    binds.dedup();
    Ok(binds)
}

/// The spec for `config` once [`prepare`]d, keeping `keep_fds`.
pub fn spec(
    config: &VmConfig,
    request: &JailRequest,
    binds: Vec<Bind>,
    keep_fds: Vec<RawFd>,
) -> JailSpec {
    JailSpec {
        uid: request.uid,
        gid: request.gid,
        root: request.root.clone(),
        cgroup: request.cgroup.clone(),
        rlimits: Rlimits::for_vm(config.vcpus),
        binds,
        keep_fds,
    }
}

/// The jail uid must be able to open what it will open (a hand-run VMM:
/// the daemon chowns volumes itself). Returns the first that it cannot.
pub fn unreachable_file(binds: &[Bind], uid: u32, gid: u32) -> Option<PathBuf> {
    binds.iter().find_map(|b| {
        let meta = std::fs::metadata(&b.path).ok()?;
        let mode = meta.mode();
        let (r, w) = if meta.uid() == uid {
            (0o400, 0o200)
        } else if meta.gid() == gid {
            (0o040, 0o020)
        } else {
            (0o004, 0o002)
        };
        let ok = mode & r != 0 && (!b.writable || mode & w != 0);
        (!ok).then(|| b.path.clone())
    })
}
