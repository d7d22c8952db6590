//! Private data: everything under the data dir belongs to root alone.
//!
//! Volumes, snapshots and images are guests' disks; `vm.json` holds user
//! data; console logs hold whatever the guest printed; the database holds
//! key pairs and user data. No other local user may read any of it. So
//! `flint serve` sets umask 077 before it creates anything, the data dir
//! is 0700, and every file the daemon makes is created 0600 explicitly
//! (not trusting the umask, which a library or a test harness may differ
//! on). Data dirs made by an older Flint are fixed at start by
//! [`lock_down`].

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Files under the data dir.
pub const FILE_MODE: u32 = 0o600;
/// Directories under the data dir.
pub const DIR_MODE: u32 = 0o700;

/// The daemon's file-creation mask: group and others get nothing.
pub fn set_umask() {
    // SAFETY: umask only swaps the process's file-creation mask.
    unsafe { libc::umask(0o077) };
}

/// Creates `path` (and missing parents) as 0700 and makes sure an existing
/// `path` is 0700 too. A symlink is left alone (the administrator's).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() && meta.permissions().mode() & 0o7777 != DIR_MODE {
        std::fs::set_permissions(path, Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Options for a new private file: created 0600 (an existing file keeps
/// its mode; [`lock_down`] fixes those at start).
pub fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Writes `data` to a new (or truncated) private file.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut file: File = private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    file.write_all(data)
}

/// What [`lock_down`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LockDown {
    pub dirs_fixed: usize,
    pub files_fixed: usize,
}

/// Makes `data_dir` 0700 and walks it (never following symlinks): every
/// directory becomes 0700, every other non-symlink entry (files, sockets,
/// FIFOs) 0600 unless it is already at least that private. Errors on
/// single entries (one vanishing mid-walk) are skipped; only the data
/// dir itself must succeed.
pub fn lock_down(data_dir: &Path) -> io::Result<LockDown> {
    create_private_dir(data_dir)?;
    let mut done = LockDown::default();
    walk(data_dir, 0, &mut done);
    Ok(done)
}

/// Nesting kept to what the layout has (instances/<id>/… is three deep),
/// with room to spare; deeper trees are not ours.
const MAX_DEPTH: usize = 16;

fn walk(dir: &Path, depth: usize, done: &mut LockDown) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            if mode != DIR_MODE
                && std::fs::set_permissions(&path, Permissions::from_mode(DIR_MODE)).is_ok()
            {
                done.dirs_fixed += 1;
            }
            walk(&path, depth + 1, done);
        } else if mode & !FILE_MODE != 0
            && std::fs::set_permissions(&path, Permissions::from_mode(mode & FILE_MODE)).is_ok()
        {
            done.files_fixed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("flint-private-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn lock_down_fixes_an_old_world_readable_tree_and_skips_symlinks() {
        let data = scratch("lockdown");
        std::fs::create_dir_all(data.join("instances/i-0123")).unwrap();
        std::fs::set_permissions(&data, Permissions::from_mode(0o755)).unwrap();
        for dir in ["instances", "instances/i-0123"] {
            std::fs::set_permissions(data.join(dir), Permissions::from_mode(0o755)).unwrap();
        }
        let files = [
            "flint.db",
            "instances/i-0123/vm.json",
            "instances/i-0123/console.log",
        ];
        for f in files {
            std::fs::write(data.join(f), b"secret").unwrap();
            std::fs::set_permissions(data.join(f), Permissions::from_mode(0o644)).unwrap();
        }
        // A file that is already more private keeps its mode.
        std::fs::write(data.join("ro"), b"x").unwrap();
        std::fs::set_permissions(data.join("ro"), Permissions::from_mode(0o400)).unwrap();
        // A symlink to a file outside is not followed.
        let outside = scratch("lockdown-outside");
        std::fs::write(&outside, b"not ours").unwrap();
        std::fs::set_permissions(&outside, Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();

        let done = lock_down(&data).unwrap();
        assert_eq!(done.files_fixed, 3, "{done:?}");
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("instances")), 0o700);
        assert_eq!(mode(&data.join("instances/i-0123")), 0o700);
        for f in files {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
        assert_eq!(mode(&data.join("ro")), 0o400);
        assert_eq!(mode(&outside), 0o644);
        // Idempotent.
        assert_eq!(lock_down(&data).unwrap(), LockDown::default());
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_file(&outside);
    }

    #[test]
    fn private_files_are_0600_whatever_the_umask() {
        let data = scratch("write");
        create_private_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        let f = data.join("vm.json");
        write_private(&f, b"{}").unwrap();
        assert_eq!(mode(&f), 0o600);
        // An existing world-readable file is tightened on rewrite.
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        write_private(&f, b"{}").unwrap();
        assert_eq!(mode(&f), 0o600);
        let _ = std::fs::remove_dir_all(&data);
    }
}
