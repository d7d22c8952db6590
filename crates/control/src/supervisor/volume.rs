//! Root volumes: a copy of the AMI's raw file, made cheaply. A reflink
//! (FICLONE: btrfs, XFS, bcachefs) shares every block until the guest
//! writes; elsewhere a sparse copy reads only the image's data extents
//! (SEEK_DATA / SEEK_HOLE) and leaves its holes as holes. Then the file
//! grows to the volume size the launch asked for (sparse, so free).
//!
//! The copy is made under a temporary name and renamed into place, so a
//! crash mid-copy never leaves a truncated volume that looks complete.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::SupervisorError;

pub const GIB: u64 = 1 << 30;
/// `_IOW(0x94, 9, int)`
const FICLONE: libc::c_ulong = 0x4004_9409;
const COPY_CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloneMethod {
    Reflink,
    SparseCopy,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SupervisorError + '_ {
    move |source| SupervisorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Clones `image` to `dest` (which must not exist) and grows it to
/// `size_bytes` if that is larger.
pub fn clone_image(
    image: &Path,
    dest: &Path,
    size_bytes: u64,
) -> Result<CloneMethod, SupervisorError> {
    clone_with_progress(image, dest, size_bytes, &mut |_| {})
}

/// [`clone_image`], telling `progress` how far a sparse copy has come (in
/// percent of the source, whenever that grows; a reflink is one step).
pub fn clone_with_progress(
    image: &Path,
    dest: &Path,
    size_bytes: u64,
    progress: &mut dyn FnMut(u8),
) -> Result<CloneMethod, SupervisorError> {
    let src = File::open(image).map_err(io(image))?;
    clone_open_file(&src, image, dest, size_bytes, progress)
}

/// [`clone_with_progress`] from a source the caller has already opened
/// (RegisterImage: opened without following symlinks, then checked);
/// `image` only names it in errors.
pub fn clone_open_file(
    src: &File,
    image: &Path,
    dest: &Path,
    size_bytes: u64,
    progress: &mut dyn FnMut(u8),
) -> Result<CloneMethod, SupervisorError> {
    let tmp = dest.with_extension("raw.partial");
    let result = clone_to(src, image, &tmp, size_bytes, progress);
    match result {
        Ok(method) => {
            std::fs::rename(&tmp, dest).map_err(io(dest))?;
            Ok(method)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn clone_to(
    src: &File,
    image: &Path,
    tmp: &Path,
    size_bytes: u64,
    progress: &mut dyn FnMut(u8),
) -> Result<CloneMethod, SupervisorError> {
    let dst = crate::private::private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(io(tmp))?;
    // SAFETY: FICLONE takes the source fd as its argument; both fds are
    // open for the duration of the call and no memory is shared.
    let cloned = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE, src.as_raw_fd()) } == 0;
    let method = if cloned {
        CloneMethod::Reflink
    } else {
        sparse_copy(src, &dst, image, tmp, progress)?;
        CloneMethod::SparseCopy
    };
    let len = dst.metadata().map_err(io(tmp))?.len();
    if size_bytes > len {
        dst.set_len(size_bytes).map_err(io(tmp))?;
    }
    dst.sync_all().map_err(io(tmp))?;
    Ok(method)
}

/// Copies the data extents of `src` into `dst` at the same offsets and
/// sets the length, so holes stay holes.
fn sparse_copy(
    src: &File,
    dst: &File,
    src_path: &Path,
    dst_path: &Path,
    progress: &mut dyn FnMut(u8),
) -> Result<(), SupervisorError> {
    let len = source_len(src).map_err(io(src_path))?;
    let mut offset = 0u64;
    let mut buf = vec![0u8; COPY_CHUNK];
    while offset < len {
        let Some(data) = seek(src, offset, libc::SEEK_DATA).map_err(io(src_path))? else {
            break; // only a hole is left
        };
        let hole = seek(src, data, libc::SEEK_HOLE)
            .map_err(io(src_path))?
            .unwrap_or(len);
        copy_range(src, dst, data, hole, &mut buf, src_path, dst_path)?;
        offset = hole;
        let done = u128::from(offset.min(len)) * 100 / u128::from(len.max(1));
        progress(u8::try_from(done).unwrap_or(100));
    }
    // A trailing hole ends the loop early: the copy is complete anyway.
    progress(100);
    dst.set_len(len).map_err(io(dst_path))
}

/// The size of a regular file or a block device (an AMI registered from a
/// disk, as in the emulated test host), whose metadata says 0.
fn source_len(file: &File) -> std::io::Result<u64> {
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut f = file;
    let len = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(len)
}

/// lseek with SEEK_DATA/SEEK_HOLE; None at ENXIO (nothing past `offset`).
/// A filesystem without them reports the whole file as data, which is
/// still correct (just not sparse).
fn seek(file: &File, offset: u64, whence: i32) -> std::io::Result<Option<u64>> {
    let off =
        libc::off_t::try_from(offset).map_err(|_| std::io::Error::other("offset too large"))?;
    // SAFETY: lseek on an open fd; no memory involved.
    let at = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if at < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            Some(libc::EINVAL) if whence == libc::SEEK_DATA => Ok(Some(offset)),
            _ => Err(e),
        };
    }
    Ok(Some(u64::try_from(at).unwrap_or(0)))
}

fn copy_range(
    src: &File,
    dst: &File,
    start: u64,
    end: u64,
    buf: &mut [u8],
    src_path: &Path,
    dst_path: &Path,
) -> Result<(), SupervisorError> {
    let mut src = src;
    let mut dst = dst;
    src.seek(SeekFrom::Start(start)).map_err(io(src_path))?;
    dst.seek(SeekFrom::Start(start)).map_err(io(dst_path))?;
    let mut left = end - start;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = src.read(&mut buf[..want]).map_err(io(src_path))?;
        if n == 0 {
            break;
        }
        // Blocks of zeros inside a data extent stay holes too.
        if buf[..n].iter().all(|&b| b == 0) {
            dst.seek(SeekFrom::Current(n as i64))
                .map_err(io(dst_path))?;
        } else {
            dst.write_all(&buf[..n]).map_err(io(dst_path))?;
        }
        left -= n as u64;
    }
    Ok(())
}

/// The bytes a file holds on disk (a sparse copy takes no more); 0 when it
/// cannot be read.
pub fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.blocks().saturating_mul(512))
        .unwrap_or(0)
}

/// The size in GiB a volume of `bytes` needs (at least 1).
pub fn gib_for(bytes: u64) -> u64 {
    bytes.div_ceil(GIB).max(1)
}

/// Removes a volume file; one already gone is fine.
pub fn delete(path: &Path) -> Result<(), SupervisorError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SupervisorError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
