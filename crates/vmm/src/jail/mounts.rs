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
    // The jail uid must pass through the directories leading to its files
    // (made by root here, under the daemon's umask 077): search only, no
    // listing.
    for dir in parent
        .ancestors()
        .take_while(|d| d.starts_with(root) && *d != root)
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .map_err(JailError::io(format!("open up {}", dir.display())))?;
    }
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
        let err = std::io::Error::last_os_error();
        // A root that is the initial ramfs (a host booted from an
        // initramfs, such as the emulated test host) cannot be pivoted
        // away from: the kernel answers EINVAL. Then move the jail's mount
        // onto / and chroot into it, as runc does for such roots. The old
        // root stays under that mount, out of reach of a process without
        // CAP_SYS_CHROOT and CAP_SYS_ADMIN, which the jail drops next.
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(JailError::Sys {
                what: format!("pivot_root into {}", root.display()),
                source: err,
            });
        }
        return move_root(root);
    }
    // SAFETY: detaches the old root, now mounted on top of ".".
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(JailError::sys("detach the old root"));
    }
    std::env::set_current_dir("/").map_err(JailError::io("enter the new root"))
}

/// The fallback for a ramfs root: the jail dir (the current directory, a
/// bind mount of itself) moved onto `/`, then chroot into it.
fn move_root(root: &Path) -> Result<(), JailError> {
    let (dot, slash) = (c".", c"/");
    // SAFETY: moves the mount at "." (the jail dir's bind mount) onto "/";
    // static NUL-terminated strings, null fstype and data.
    if unsafe {
        libc::mount(
            dot.as_ptr(),
            slash.as_ptr(),
            std::ptr::null(),
            libc::MS_MOVE,
            std::ptr::null(),
        )
    } != 0
    {
        return Err(JailError::sys(format!("move {} onto /", root.display())));
    }
    // SAFETY: chroot to the current directory, now the moved jail mount.
    if unsafe { libc::chroot(dot.as_ptr()) } != 0 {
        return Err(JailError::sys(format!("chroot into {}", root.display())));
    }
    std::env::set_current_dir("/").map_err(JailError::io("enter the new root"))
}
