//! Where RegisterImage may read from, and how `qemu-img` runs.
//!
//! The API caller is not trusted with the host's files: an image location
//! must name a regular file inside the import directory (`DATA_DIR/import`
//! or `flint serve --import-dir`). The parent is canonicalised and must be
//! inside the (canonical) import dir, so `..` and symlinked directories
//! cannot climb out; the file itself is opened with O_NOFOLLOW (a symlink,
//! even one pointing back inside, is refused), must be a regular file by
//! fstat (no devices, FIFOs or directories), and the path the kernel
//! reports for the open fd is checked once more, so a directory swapped
//! for a symlink between the check and the open is caught. Everything
//! after that reads the open fd, never the path again.
//!
//! `qemu-img` parses untrusted qcow2 files, so it runs as `nobody` /
//! `nogroup`, with no supplementary groups, `no_new_privs`, and a network
//! namespace of its own (no network at all). It cannot open anything
//! under the data dir by path (0700): it gets the source and the output
//! as `/proc/self/fd/N` of fds the daemon opened, the output file owned by
//! `nobody` while it runs and root's again afterwards. A source nobody
//! cannot read (not world-readable) is first copied (reflink where the
//! filesystem can) into a scratch file that `nobody` may read.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ec2_wire::error::Ec2Error;

/// An image file opened from the import dir.
#[derive(Debug)]
pub struct ImportSource {
    pub file: File,
    /// Where it is (canonical; for messages).
    pub path: PathBuf,
    pub len: u64,
}

fn bad(location: &str, why: &str) -> Ec2Error {
    Ec2Error::invalid_parameter_value("ImageLocation", location, why)
}

/// Opens `location` (absolute, or relative to `import_dir`) if it is a
/// regular file inside `import_dir`; anything else is
/// `InvalidParameterValue` saying why.
pub fn open_import(import_dir: &Path, location: &str) -> Result<ImportSource, Ec2Error> {
    let outside = || {
        bad(
            location,
            &format!(
                "Images are read from the import directory {} only (flint serve \
                 --import-dir): copy the image file there, then register it.",
                import_dir.display()
            ),
        )
    };
    if location.is_empty() || location.contains('\0') {
        return Err(bad(location, "Expected the path of an image file."));
    }
    let root = std::fs::canonicalize(import_dir).map_err(|e| {
        bad(
            location,
            &format!(
                "The import directory {} is not usable: {e}.",
                import_dir.display()
            ),
        )
    })?;
    let given = Path::new(location);
    let path = if given.is_absolute() {
        given.to_path_buf()
    } else {
        root.join(given)
    };
    // `file_name` is None for a path ending in `..` (or `/`).
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(bad(location, "Expected the path of an image file."));
    };
    if name == "." || name == ".." {
        return Err(bad(location, "Expected the path of an image file."));
    }
    let parent = match std::fs::canonicalize(parent) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(
                if parent.starts_with(&root) || parent.starts_with(import_dir) {
                    bad(location, "No such directory.")
                } else {
                    outside()
                },
            );
        }
        Err(_) => return Err(outside()),
    };
    if !parent.starts_with(&root) {
        return Err(outside());
    }
    let candidate = parent.join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&candidate)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => bad(
                location,
                "Symbolic links are not followed: put the image file itself in the import \
                 directory.",
            ),
            Some(libc::ENOENT) => bad(location, "No such file."),
            _ => bad(location, &format!("Cannot open it: {e}.")),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| bad(location, &format!("Cannot read it: {e}.")))?;
    if !meta.is_file() {
        return Err(bad(location, "Not a regular file."));
    }
    if meta.len() == 0 {
        return Err(bad(location, "The file is empty."));
    }
    // What was actually opened, whatever happened to the path meanwhile.
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| bad(location, &format!("Cannot check it: {e}.")))?;
    if !opened.starts_with(&root) {
        return Err(outside());
    }
    Ok(ImportSource {
        file,
        path: opened,
        len: meta.len(),
    })
}

/// The unprivileged identity helpers run as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unprivileged {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// `nobody` / `nogroup` (or group `nobody`), 65534 where the databases
/// lack them.
pub fn nobody() -> Unprivileged {
    const FALLBACK: u32 = 65534;
    let uid = lookup_user("nobody").unwrap_or(FALLBACK);
    let gid = lookup_group("nogroup")
        .or_else(|| lookup_group("nobody"))
        .unwrap_or(FALLBACK);
    Unprivileged { uid, gid }
}

fn lookup_user(name: &str) -> Option<libc::uid_t> {
    let name = CString::new(name).ok()?;
    // SAFETY: a valid C string; the result is read at once (the daemon's
    // other threads do not use getpwnam).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    // SAFETY: non-null means a valid passwd record.
    (!pw.is_null()).then(|| unsafe { (*pw).pw_uid })
}

fn lookup_group(name: &str) -> Option<libc::gid_t> {
    let name = CString::new(name).ok()?;
    // SAFETY: as for getpwnam.
    let gr = unsafe { libc::getgrnam(name.as_ptr()) };
    // SAFETY: non-null means a valid group record.
    (!gr.is_null()).then(|| unsafe { (*gr).gr_gid })
}

fn fchown(file: &File, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: fchown on an open fd.
    if unsafe { libc::fchown(file.as_raw_fd(), uid, gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the daemon can change identities (it runs as root); otherwise
/// helpers simply run as the daemon's own, already unprivileged, user.
fn can_drop() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `qemu-img ARGS`, unprivileged and without network (see the module
/// docs), with `fds` inherited under their own numbers (name them in ARGS
/// as `/proc/self/fd/N`). Returns stdout, or stderr as the error.
pub fn qemu_img(args: &[String], fds: &[&File]) -> Result<Vec<u8>, String> {
    let what = format!(
        "qemu-img {}",
        args.first().map(String::as_str).unwrap_or("")
    );
    let mut cmd = Command::new("qemu-img");
    cmd.args(args).current_dir("/").env_clear();
    cmd.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let raw_fds: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let drop_to = can_drop().then(nobody);
    // SAFETY: the closure only makes async-signal-safe system calls
    // (fcntl, unshare, setgroups, setgid, setuid, prctl) on values copied
    // in before the fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &raw_fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(who) = drop_to
                && (libc::unshare(libc::CLONE_NEWNET) != 0
                    || libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(who.gid) != 0
                    || libc::setuid(who.uid) != 0)
            {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `/proc/self/fd/N` for an fd handed to [`qemu_img`].
pub fn fd_path(file: &File) -> String {
    format!("/proc/self/fd/{}", file.as_raw_fd())
}

/// A file the unprivileged helper may read: the source itself if others
/// may read it, else a scratch copy at `scratch` owned by the helper's
/// user (removed by the caller).
pub fn readable_by_helper(source: &ImportSource, scratch: &Path) -> Result<Option<File>, String> {
    let meta = source.file.metadata().map_err(|e| e.to_string())?;
    let who = nobody();
    let readable = !can_drop()
        || meta.mode() & 0o004 != 0
        || (meta.uid() == who.uid && meta.mode() & 0o400 != 0);
    if readable {
        return Ok(None);
    }
    crate::supervisor::volume::clone_open_file(&source.file, &source.path, scratch, 0, &mut |_| {})
        .map_err(|e| e.to_string())?;
    let copy = File::open(scratch).map_err(|e| e.to_string())?;
    fchown(&copy, who.uid, who.gid).map_err(|e| e.to_string())?;
    Ok(Some(copy))
}

/// A new private output file that the helper may write while it runs;
/// [`reclaim_output`] gives it back to root.
pub fn output_for_helper(path: &Path) -> Result<File, String> {
    let file = crate::private::private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if can_drop() {
        let who = nobody();
        fchown(&file, who.uid, who.gid).map_err(|e| e.to_string())?;
    }
    Ok(file)
}

/// Root's again, 0600.
pub fn reclaim_output(file: &File) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if can_drop() {
        fchown(file, 0, 0).map_err(|e| e.to_string())?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(crate::private::FILE_MODE))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::open_import;

    #[test]
    fn only_regular_files_inside_the_import_dir_open() {
        let base = std::env::temp_dir().join(format!("flint-import-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let import = base.join("import");
        std::fs::create_dir_all(import.join("sub")).unwrap();
        std::fs::write(import.join("ok.raw"), b"disk").unwrap();
        std::fs::write(base.join("outside.raw"), b"disk").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", import.join("shadow")).unwrap();
        std::os::unix::fs::symlink(import.join("ok.raw"), import.join("inner-link")).unwrap();
        std::os::unix::fs::symlink(&base, import.join("sub/up")).unwrap();
        std::fs::write(import.join("empty.raw"), b"").unwrap();
        let code = |loc: &str| open_import(&import, loc).map(|_| ()).map_err(|e| e.code);
        let invalid: Result<(), &str> = Err("InvalidParameterValue");
        let i = import.display();
        let b = base.display();
        for loc in [
            "/etc/shadow".to_string(),
            format!("{i}/shadow"),
            format!("{i}/inner-link"),
            "/dev/null".into(),
            format!("{b}/outside.raw"),
            format!("{i}/../outside.raw"),
            format!("{i}/sub/../../outside.raw"),
            "../outside.raw".into(),
            format!("{i}/sub/up/outside.raw"),
            format!("{i}/sub"),
            format!("{i}/.."),
            format!("{i}/empty.raw"),
            format!("{i}/missing.raw"),
            String::new(),
        ] {
            assert_eq!(code(&loc), invalid, "{loc}");
        }
        assert_eq!(code(&format!("{i}/ok.raw")), Ok(()));
        assert_eq!(code("ok.raw"), Ok(()));
        assert_eq!(code(&format!("{i}/sub/../ok.raw")), Ok(()));
        let _ = std::fs::remove_dir_all(&base);
    }
}
