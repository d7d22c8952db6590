//! One request's life in a queue: its slot (progress of a request in
//! flight), the io_uring operations it is submitted as, and what each
//! completion means for it (short transfers and transient errors resume,
//! never drop). `queue` moves slots between its free, pending and
//! in-flight sets; this is what happens inside one.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use io_uring::{opcode, types};
use virtio_bindings::virtio_blk::{VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP};

use super::direct::DirectFile;
use super::engine::Engine;
use super::io_work::IoWork;
use super::request::{DiskLimits, Range, Request, RequestType};
use super::{BlockMetrics, SECTOR_SHIFT, SERIAL_MAX_LEN};
use crate::memory::GuestMemoryMmap;

/// Retries of an operation that failed with EAGAIN/EINTR before IOERR.
pub(super) const MAX_RETRIES: u8 = 8;

/// The backing file and what every queue needs to know about it.
pub struct Disk {
    /// Buffered: flush, discard, write-zeroes, and reads/writes when there
    /// is no `direct` handle or they are not aligned for it.
    pub file: File,
    /// O_DIRECT, when the disk was configured so.
    pub direct: Option<DirectFile>,
    /// In 512-byte sectors; changes when the backing file is resized
    /// (PATCH /vm/disks/{id} with resize).
    pub capacity: AtomicU64,
    pub read_only: bool,
    /// GET_ID answer: the serial, NUL-padded.
    pub id: [u8; SERIAL_MAX_LEN],
    /// Set once the host filesystem refused FALLOC_FL_ZERO_RANGE (tmpfs,
    /// for one); write-zeroes then punches holes, which reads back as
    /// zeroes too.
    pub zero_range_unsupported: AtomicBool,
    /// The VMM-wide count of requests taken and completions reaped.
    pub work: Arc<IoWork>,
}

impl Disk {
    /// The fd a read or write of `iov` at `offset` goes through.
    #[inline]
    pub(super) fn rw_fd(&self, offset: u64, iov: &[libc::iovec]) -> i32 {
        self.direct
            .as_ref()
            .and_then(|d| d.fd_if_aligned(offset, iov))
            .unwrap_or_else(|| self.file.as_raw_fd())
    }

    /// What a request is checked against, as of now.
    pub fn limits(&self) -> DiskLimits {
        DiskLimits {
            capacity: self.capacity.load(Ordering::Acquire),
            read_only: self.read_only,
        }
    }
}

/// The status byte of a slot whose operations have all completed.
pub(super) fn slot_status(slot: &Slot) -> u8 {
    if slot.failed {
        VIRTIO_BLK_S_IOERR as u8
    } else {
        VIRTIO_BLK_S_OK as u8
    }
}

/// user_data layout: slot index (bits 0..16), range index (16..32) and
/// whether a fallocate used ZERO_RANGE (bit 32).
pub(super) fn user_data(slot: u16, range: usize, zero_range: bool) -> u64 {
    u64::from(slot) | ((range as u64 & 0xffff) << 16) | (u64::from(zero_range) << 32)
}

pub(super) struct Slot {
    pub(super) req: Request,
    /// IN/OUT bytes already transferred (a short transfer resumes here).
    pub(super) done: u64,
    /// First iovec not fully transferred.
    pub(super) iov_start: usize,
    /// Engine entries in flight.
    pub(super) ops: u32,
    /// Discard/write-zeroes: next range to push.
    pub(super) next_range: usize,
    /// Write-zeroes ranges to redo with PUNCH_HOLE (bit per range).
    pub(super) retry_punch: u32,
    pub(super) retries: u8,
    pub(super) failed: bool,
    /// In the pending FIFO.
    pub(super) queued: bool,
    /// When it left the avail ring (the volume's clock, ns).
    pub(super) started: u64,
}

impl Slot {
    pub(super) fn new() -> Self {
        Slot {
            req: Request::new(),
            done: 0,
            iov_start: 0,
            ops: 0,
            next_range: 0,
            retry_punch: 0,
            retries: 0,
            failed: false,
            queued: false,
            started: 0,
        }
    }

    pub(super) fn clear_progress(&mut self) {
        self.done = 0;
        self.iov_start = 0;
        self.ops = 0;
        self.next_range = 0;
        self.retry_punch = 0;
        self.retries = 0;
        self.failed = false;
        self.queued = false;
    }

    /// Skips `n` transferred bytes of the iovecs. `n` is less than what
    /// remains, so the iovecs cover it.
    pub(super) fn advance(&mut self, mut n: usize) {
        let iovs = &mut self.req.iovecs.0;
        while n > 0 && self.iov_start < iovs.len() {
            let v = &mut iovs[self.iov_start];
            if n >= v.iov_len {
                n -= v.iov_len;
                self.iov_start += 1;
            } else {
                // Stays inside the same guest buffer: n < iov_len.
                v.iov_base = v.iov_base.cast::<u8>().wrapping_add(n).cast();
                v.iov_len -= n;
                n = 0;
            }
        }
    }
}

/// Starts a parsed request. Returns the status if it completed at once.
pub(super) fn start(
    slot: &mut Slot,
    mem: &GuestMemoryMmap,
    disk: &Disk,
    metrics: &BlockMetrics,
) -> Option<u8> {
    let req = &slot.req;
    match req.kind {
        RequestType::GetId => {
            BlockMetrics::inc(&metrics.get_id_ops, 1);
            Some(match req.write_in_stream(mem, &disk.id) {
                Ok(()) => VIRTIO_BLK_S_OK as u8,
                Err(_) => VIRTIO_BLK_S_IOERR as u8,
            })
        }
        RequestType::In | RequestType::Out if req.data_len == 0 => Some(VIRTIO_BLK_S_OK as u8),
        RequestType::Discard | RequestType::WriteZeroes if req.ranges.is_empty() => {
            Some(VIRTIO_BLK_S_OK as u8)
        }
        _ => None,
    }
}

/// Pushes the slot's remaining operations. False if the engine is full
/// (the slot stays pending and is retried after completions).
pub(super) fn push_ops(
    engine: &mut Engine,
    slot: &mut Slot,
    idx: u16,
    fd: i32,
    disk: &Disk,
) -> bool {
    let fd = types::Fd(fd);
    let req = &slot.req;
    match req.kind {
        RequestType::In | RequestType::Out => {
            if slot.ops > 0 {
                return true;
            }
            let iov = &req.iovecs.0[slot.iov_start..];
            // sector + data_len/512 <= capacity <= file size / 512, so this
            // does not overflow.
            let offset = (req.sector << SECTOR_SHIFT) + slot.done;
            let fd = types::Fd(disk.rw_fd(offset, iov));
            let entry = if req.kind == RequestType::In {
                opcode::Readv::new(fd, iov.as_ptr(), iov.len() as u32)
                    .offset(offset)
                    .build()
            } else {
                opcode::Writev::new(fd, iov.as_ptr(), iov.len() as u32)
                    .offset(offset)
                    .build()
            };
            // SAFETY: the iovec array lives in the slot, which is neither
            // reused nor moved until this entry completes (or the engine is
            // drained on reset), and it points into guest memory that the
            // queue's GuestMemoryMmap keeps mapped as long.
            let pushed = unsafe { engine.push(&entry.user_data(user_data(idx, 0, false))) };
            if pushed.is_err() {
                return false;
            }
            slot.ops += 1;
            true
        }
        RequestType::Flush => {
            if slot.ops > 0 {
                return true;
            }
            // fdatasync: the data and the metadata needed to read it back
            // (block allocation, file size) reach stable storage before the
            // guest sees the completion.
            let entry = opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(user_data(idx, 0, false));
            // SAFETY: fsync refers to no memory.
            if unsafe { engine.push(&entry) }.is_err() {
                return false;
            }
            slot.ops += 1;
            true
        }
        RequestType::Discard | RequestType::WriteZeroes => {
            if slot.failed {
                // Do not start more ranges of a request that already failed.
                slot.next_range = req.ranges.len();
                slot.retry_punch = 0;
                return true;
            }
            let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
            while slot.retry_punch != 0 {
                let r = slot.retry_punch.trailing_zeros() as usize;
                if !push_fallocate(engine, idx, fd, &req.ranges[r], r, punch, false) {
                    return false;
                }
                slot.retry_punch &= !(1 << r);
                slot.ops += 1;
            }
            while slot.next_range < req.ranges.len() {
                let r = slot.next_range;
                let range = &req.ranges[r];
                let zero_range = req.kind == RequestType::WriteZeroes
                    && !range.unmap
                    && !disk.zero_range_unsupported.load(Ordering::Relaxed);
                let mode = if zero_range {
                    libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE
                } else {
                    punch
                };
                if !push_fallocate(engine, idx, fd, range, r, mode, zero_range) {
                    return false;
                }
                slot.next_range += 1;
                slot.ops += 1;
            }
            true
        }
        RequestType::GetId => true,
    }
}

pub(super) fn push_fallocate(
    engine: &mut Engine,
    idx: u16,
    fd: types::Fd,
    range: &Range,
    r: usize,
    mode: i32,
    zero_range: bool,
) -> bool {
    // Validated against the capacity, so neither overflows.
    let entry = opcode::Fallocate::new(fd, u64::from(range.num_sectors) << SECTOR_SHIFT)
        .offset(range.sector << SECTOR_SHIFT)
        .mode(mode)
        .build()
        .user_data(user_data(idx, r, zero_range));
    // SAFETY: fallocate refers to no memory.
    unsafe { engine.push(&entry) }.is_ok()
}

/// Applies one completion to its slot. Returns true if the slot must be
/// pushed again (short transfer, transient error, fallback).
pub(super) fn on_result(
    slot: &mut Slot,
    res: i32,
    range: usize,
    zero_range: bool,
    disk: &Disk,
) -> bool {
    let transient = res == -libc::EAGAIN || res == -libc::EINTR;
    match slot.req.kind {
        RequestType::In | RequestType::Out | RequestType::Flush if res < 0 => {
            if transient && slot.retries < MAX_RETRIES {
                slot.retries += 1;
                return true;
            }
            slot.failed = true;
        }
        RequestType::In | RequestType::Out => {
            let n = res as u64;
            let remaining = slot.req.data_len - slot.done;
            if n == 0 || n > remaining {
                // No progress: the file shrank under us. Fail rather than
                // spin (or hand the guest stale buffer contents).
                slot.failed = true;
            } else if n < remaining {
                slot.done += n;
                slot.advance(n as usize);
                return true;
            } else {
                slot.done = slot.req.data_len;
            }
        }
        RequestType::Flush | RequestType::GetId => {}
        RequestType::Discard => {
            // Discard is a hint: a filesystem that cannot punch holes
            // simply keeps the blocks.
            if res < 0 && res != -libc::EOPNOTSUPP {
                slot.failed = true;
            }
        }
        RequestType::WriteZeroes => {
            if res == -libc::EOPNOTSUPP && zero_range && range < 32 {
                disk.zero_range_unsupported.store(true, Ordering::Relaxed);
                slot.retry_punch |= 1 << range;
                return true;
            }
            if res < 0 {
                slot.failed = true;
            }
        }
    }
    false
}

pub(super) fn count(m: &BlockMetrics, req: &Request, done: u64, status: u8, latency_ns: u64) {
    if status == VIRTIO_BLK_S_IOERR as u8 {
        BlockMetrics::inc(&m.io_errors, 1);
        return;
    }
    if status == VIRTIO_BLK_S_UNSUPP as u8 {
        BlockMetrics::inc(&m.unsupported, 1);
        return;
    }
    match req.kind {
        RequestType::In => {
            BlockMetrics::inc(&m.read_ops, 1);
            BlockMetrics::inc(&m.read_bytes, done);
            BlockMetrics::inc(&m.read_time_ns, latency_ns);
        }
        RequestType::Out => {
            BlockMetrics::inc(&m.write_ops, 1);
            BlockMetrics::inc(&m.write_bytes, req.data_len);
            BlockMetrics::inc(&m.write_time_ns, latency_ns);
        }
        RequestType::Flush => BlockMetrics::inc(&m.flush_ops, 1),
        RequestType::Discard => BlockMetrics::inc(&m.discard_ops, 1),
        RequestType::WriteZeroes => BlockMetrics::inc(&m.write_zeroes_ops, 1),
        RequestType::GetId => {}
    }
}
