//! The jail's file system: a private mount namespace whose root is the
//! per-instance directory, holding only bind mounts of the files the VM
//! needs, each at its own absolute host path.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Bind, JailError};

/// Where `host` (absolute) appears under the jail `root` before the pivot.
pub fn mirror_path(root: &Path, host: &Path) -> PathBuf {
    root.join(host.strip_prefix("/").unwrap_or(host))
}

fn cstr(path: &Path) -> Result<CString, JailError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| JailError::Sys {
        what: format!("use the path {}", path.display()),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> Result<(), JailError> {
    let source = source.map(cstr).transpose()?;
    let target_c = cstr(target)?;
    let fstype = fstype.map(|t| CString::new(t).unwrap_or_default());
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: NUL-terminated strings (or null) that outlive the call; no
    // data argument.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(JailError::sys(format!("mount on {}", target.display())));
    }
    Ok(())
}

/// Binds `bind.path` at its mirror under `root`, read-only unless
/// writable, never with set-uid bits, devices or execution.
fn bind_one(root: &Path, bind: &Bind) -> Result<(), JailError> {
    let target = mirror_path(root, &bind.path);
    let parent = target.parent().unwrap_or(root);
    std::fs::create_dir_all(parent)
        .map_err(JailError::io(format!("create {}", parent.display())))?;
    if bind.path.is_dir() {
        std::fs::create_dir_all(&target)
    } else if !target.exists() {
        std::fs::File::create(&target).map(drop)
    } else {
        Ok(())
    }
    .map_err(JailError::io(format!("create {}", target.display())))?;
    mount(Some(&bind.path), &target, None, libc::MS_BIND)?;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV;
    flags |= libc::MS_NOEXEC;
    if !bind.writable {
        flags |= libc::MS_RDONLY;
    }
    mount(None, &target, None, flags)
}

/// Makes every mount private, binds `root` onto itself and the `binds`
/// into it, and pivots into it, detaching the old root.
pub fn pivot_into(root: &Path, binds: &[Bind]) -> Result<(), JailError> {
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE)?;
    mount(Some(root), root, None, libc::MS_BIND | libc::MS_REC)?;
    for bind in binds {
        bind_one(root, bind)?;
    }
    std::env::set_current_dir(root).map_err(JailError::io(format!("enter {}", root.display())))?;
    let dot = c".";
    // SAFETY: pivot_root(".", ".") stacks the old root on the new one
    // (the trick runc uses: no directory for the old root is needed); the
    // strings are static and NUL-terminated.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(JailError::sys(format!(
            "pivot_root into {}",
            root.display()
        )));
    }
    // SAFETY: detaches the old root, now mounted on top of ".".
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(JailError::sys("detach the old root"));
    }
    std::env::set_current_dir("/").map_err(JailError::io("enter the new root"))
}
