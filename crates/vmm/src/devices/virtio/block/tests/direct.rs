//! O_DIRECT disks: aligned requests bypass the host page cache (seen with
//! mincore on the image), misaligned ones still work through it, data
//! round-trips either way, and the alignment rules and errors.

use std::fs::File;
use std::os::fd::AsRawFd;

use super::*;
use crate::devices::virtio::block::direct::{DirectError, DirectFile, open_error};

fn direct_cfg(img: &TempImage, direct: bool) -> BlockConfig {
    BlockConfig { direct, ..cfg(img) }
}

/// Drops the image's clean pages from the page cache.
fn evict(img: &TempImage) {
    let f = File::open(&img.0).unwrap();
    f.sync_all().unwrap();
    // SAFETY: an advisory call on an fd we own.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
}

/// Which 4 KiB pages of the image are in the page cache.
fn resident_pages(img: &TempImage) -> Vec<bool> {
    let f = File::open(&img.0).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: a fresh read-only shared mapping of a file we hold open; it
    // is only passed to mincore (never dereferenced) and unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    let mut vec = vec![0u8; len.div_ceil(4096)];
    // SAFETY: addr..addr+len is the mapping above; vec has one byte per page.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    // SAFETY: the mapping made above, unmapped once.
    unsafe { libc::munmap(addr, len) };
    assert_eq!(rc, 0);
    vec.iter().map(|b| b & 1 != 0).collect()
}

/// Writes 4 KiB of `byte` at page `page` from a guest buffer `skew` bytes
/// past a page boundary; returns the status.
fn write_page(h: &mut Harness, page: u64, byte: u8, skew: u64) -> u8 {
    let buf = h.alloc(4096 + skew) + skew;
    h.fill(buf, &[byte; 4096]);
    let done = h.used_idx();
    let st = h.request(VIRTIO_BLK_T_OUT, page * 8, &[(buf, 4096, R)]);
    h.run(done + 1);
    h.byte(st)
}

fn read_page(h: &mut Harness, page: u64) -> Vec<u8> {
    let buf = h.alloc(4096);
    let done = h.used_idx();
    let st = h.request(VIRTIO_BLK_T_IN, page * 8, &[(buf, 4096, W)]);
    h.run(done + 1);
    assert_eq!(h.byte(st), OK);
    h.bytes(buf, 4096)
}

#[test]
fn aligned_requests_bypass_the_page_cache_and_misaligned_ones_still_work() {
    let m = mem();
    let img = TempImage::new(16 * 4096);
    evict(&img);
    assert!(resident_pages(&img).iter().all(|r| !r), "evicted");
    let mut h = Harness::new(&m, direct_cfg(&img, true));
    // Guest buffers are page-aligned in host memory too (the guest memory
    // mapping is): this one goes through O_DIRECT.
    assert_eq!(write_page(&mut h, 2, 0xd1, 0), OK);
    assert_eq!(read_page(&mut h, 2), vec![0xd1; 4096]);
    assert_eq!(read_page(&mut h, 5), pattern(16 * 4096)[5 * 4096..6 * 4096]);
    // A buffer 8 bytes off any O_DIRECT alignment: buffered instead.
    assert_eq!(write_page(&mut h, 9, 0xb9, 8), OK);
    let done = h.used_idx();
    let flush = h.request(VIRTIO_BLK_T_FLUSH, 0, &[]);
    h.run(done + 1);
    assert_eq!(h.byte(flush), OK);
    let resident = resident_pages(&img);
    assert!(
        !resident[2] && !resident[5],
        "direct I/O left pages in the cache: {resident:?}"
    );
    assert!(resident[9], "the misaligned write went through the cache");
    let file = img.contents();
    assert_eq!(&file[2 * 4096..3 * 4096], &[0xd1; 4096][..]);
    assert_eq!(&file[9 * 4096..10 * 4096], &[0xb9; 4096][..]);
    assert_eq!(read_page(&mut h, 9), vec![0xb9; 4096], "coherent both ways");
}

#[test]
fn without_direct_every_request_goes_through_the_page_cache() {
    let m = mem();
    let img = TempImage::new(16 * 4096);
    evict(&img);
    let mut h = Harness::new(&m, direct_cfg(&img, false));
    assert_eq!(write_page(&mut h, 2, 0xd1, 0), OK);
    assert_eq!(read_page(&mut h, 5).len(), 4096);
    let resident = resident_pages(&img);
    assert!(resident[2] && resident[5], "{resident:?}");
}

#[test]
fn alignment_rules_cover_offset_address_and_length() {
    let f = File::open("/dev/null").unwrap();
    let d = DirectFile::with_alignment(f, 512, 4096);
    assert_eq!(d.alignment(), (512, 4096));
    let iov = |base: usize, len: usize| libc::iovec {
        iov_base: base as *mut libc::c_void,
        iov_len: len,
    };
    assert!(d.fd_if_aligned(8192, &[iov(0x1000, 4096)]).is_some());
    assert!(
        d.fd_if_aligned(8192, &[iov(0x1200, 4096), iov(0x3000, 8192)])
            .is_some(),
        "512-aligned buffers, 4 KiB-multiple lengths"
    );
    assert!(
        d.fd_if_aligned(512, &[iov(0x1000, 4096)]).is_none(),
        "offset"
    );
    assert!(
        d.fd_if_aligned(0, &[iov(0x1100, 4096)]).is_none(),
        "address"
    );
    assert!(d.fd_if_aligned(0, &[iov(0x1000, 512)]).is_none(), "length");
    assert!(
        d.fd_if_aligned(0, &[iov(0x1000, 4096), iov(0x2008, 4096)])
            .is_none(),
        "any segment"
    );
    // Odd values from a kernel are rounded up to a power of two.
    let d = DirectFile::with_alignment(File::open("/dev/null").unwrap(), 0, 3000);
    assert_eq!(d.alignment(), (1, 4096));
}

#[test]
fn a_filesystem_refusing_o_direct_is_a_clear_error() {
    let p = std::path::Path::new("/srv/disk.img");
    let e = open_error(p, std::io::Error::from_raw_os_error(libc::EINVAL));
    assert!(matches!(e, DirectError::Unsupported(_)));
    let msg = e.to_string();
    assert!(
        msg.contains("/srv/disk.img") && msg.contains("does not support O_DIRECT"),
        "{msg}"
    );
    let e = open_error(p, std::io::Error::from_raw_os_error(libc::EACCES));
    assert!(matches!(e, DirectError::Open { .. }), "{e}");
    // And through Block::new: a missing file is still NotFound, before
    // any O_DIRECT open.
    let missing = BlockConfig {
        path: "/nonexistent/flint/direct.img".into(),
        direct: true,
        ..Default::default()
    };
    assert!(matches!(Block::new(missing), Err(BlockError::NotFound(_))));
}
