//! O_DIRECT: a second handle on the disk image that bypasses the host page
//! cache, and what a request must look like to use it.
//!
//! O_DIRECT needs the file offset, every buffer's address and every
//! buffer's length aligned as the host filesystem (or block device) says.
//! Linux guests almost always send 4 KiB-aligned requests, but nothing
//! obliges them to (a 512-byte sector write, a sub-page bio segment), and
//! the kernel answers a misaligned O_DIRECT request with EINVAL. So each
//! read or write is checked: aligned ones go through this handle, the rest
//! through the ordinary buffered one. The kernel keeps the two coherent (a
//! direct read first writes back dirty cached pages of its range, a direct
//! write invalidates them). Flush, discard and write-zeroes always use the
//! buffered handle: they act on the inode, whichever handle asks.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Alignment assumed when the kernel does not report one (statx without
/// STATX_DIOALIGN): the largest logical block size in common use.
const FALLBACK_ALIGN: u32 = 4096;

#[derive(Debug, Error)]
pub enum DirectError {
    #[error(
        "disk image {0}: its filesystem does not support O_DIRECT (tmpfs, for one); \
         attach it without the direct option"
    )]
    Unsupported(PathBuf),
    #[error("disk image {path}: cannot open for O_DIRECT: {source}")]
    Open { path: PathBuf, source: io::Error },
}

/// The page-cache-bypassing handle and its alignment rules.
#[derive(Debug)]
pub struct DirectFile {
    file: File,
    /// Alignment - 1 of buffer addresses and lengths.
    mem_mask: usize,
    /// Alignment - 1 of file offsets (and of lengths: a transfer must end
    /// on a block boundary too).
    offset_mask: u64,
}

impl DirectFile {
    /// Opens `path` again with O_DIRECT (the buffered handle holds the
    /// lock against other VMMs) and learns its alignment.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, DirectError> {
        let err = |source| open_error(path, source);
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(err)?;
        let (mem, offset) = match dio_align(&file).map_err(err)? {
            Some((0, _)) | Some((_, 0)) => {
                return Err(DirectError::Unsupported(path.to_path_buf()));
            }
            Some(align) => align,
            None => {
                let block = block_device_sector_size(&file).unwrap_or(FALLBACK_ALIGN);
                (block, block)
            }
        };
        Ok(Self::with_alignment(file, mem, offset))
    }

    /// `mem` and `offset` are powers of two (the kernel reports them so;
    /// anything else is rounded up to one).
    pub fn with_alignment(file: File, mem: u32, offset: u32) -> Self {
        // A value past 2^31 (none fits in u32) becomes 2 GiB: in effect,
        // never aligned, so such a file is only used buffered.
        let pow2 = |a: u32| a.max(1).checked_next_power_of_two().unwrap_or(1 << 31);
        DirectFile {
            file,
            mem_mask: pow2(mem) as usize - 1,
            offset_mask: u64::from(pow2(offset)) - 1,
        }
    }

    /// The O_DIRECT fd if a transfer at `offset` of `iov` meets its
    /// alignment, else None (the caller uses the buffered fd).
    #[inline]
    pub fn fd_if_aligned(&self, offset: u64, iov: &[libc::iovec]) -> Option<RawFd> {
        if offset & self.offset_mask != 0 {
            return None;
        }
        let len_mask = self.mem_mask | self.offset_mask as usize;
        let aligned = iov
            .iter()
            .all(|v| (v.iov_base as usize) & self.mem_mask == 0 && v.iov_len & len_mask == 0);
        aligned.then(|| self.file.as_raw_fd())
    }

    #[cfg(test)]
    pub fn alignment(&self) -> (usize, u64) {
        (self.mem_mask + 1, self.offset_mask + 1)
    }
}

/// EINVAL from open(O_DIRECT) or statx is the filesystem saying no.
pub(super) fn open_error(path: &Path, source: io::Error) -> DirectError {
    if source.raw_os_error() == Some(libc::EINVAL) {
        DirectError::Unsupported(path.to_path_buf())
    } else {
        DirectError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// (memory, offset) alignment from statx STATX_DIOALIGN; None if the
/// kernel does not report it (before Linux 6.1). (0, 0) means the file
/// cannot do direct I/O.
fn dio_align(file: &File) -> io::Result<Option<(u32, u32)>> {
    // SAFETY: statx is plain data; all-zero is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd, an empty NUL-terminated path with AT_EMPTY_PATH
    // (so the fd itself is examined) and a buffer of the right type that
    // outlives the call.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if stx.stx_mask & libc::STATX_DIOALIGN == 0 {
        return Ok(None);
    }
    Ok(Some((stx.stx_dio_mem_align, stx.stx_dio_offset_align)))
}

/// The logical sector size of a block device; None for a regular file.
fn block_device_sector_size(file: &File) -> Option<u32> {
    if !file.metadata().ok()?.file_type().is_block_device() {
        return None;
    }
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which is
    // valid for the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::BLKSSZGET, &mut size) };
    (rc == 0 && size > 0).then_some(size as u32)
}
