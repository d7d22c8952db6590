//! virtio-blk: a disk backed by a host file, with an io_uring engine.
//!
//! - `config`  — the device configuration space (virtio 1.2, 5.2.4).
//! - `request` — parses and validates one guest descriptor chain into a
//!   request (the guest is hostile: every address, length and index is
//!   checked here, before any I/O is issued).
//! - `engine`  — a thin io_uring wrapper: one ring per request queue, with
//!   completions signalled on an eventfd.
//! - `queue`   — one request queue: pre-allocated request slots, avail-ring
//!   processing, submission, completion and used-ring/interrupt handling.
//! - `device`  — `Block`: the `VirtioDevice` and event-loop subscriber.
//! - `throttle` — EBS volume-type limits (pure logic on an injected clock).
//! - `volume`  — `Volume`: a disk's id, counters and limits, shared with
//!   the control socket and kept across boots.
//! - `timer`   — the timerfd a throttled queue waits on.
//!
//! - `direct`  — O_DIRECT: the second, page-cache-bypassing handle on the
//!   image and the alignment a request needs to use it.
//!
//! Multi-queue (VIRTIO_BLK_F_MQ): one `queue::QueueHandler` per request
//! queue (the VMM asks for one per vCPU, up to MAX_QUEUES), each with its
//! own io_uring, slots and throttle timer, all on the event-loop thread; the
//! guest's blk-mq then submits from every CPU without sharing a ring lock.
//! The volume's limits are one token bucket shared by all queues.

mod config;
mod device;
mod direct;
mod engine;
mod gate;
mod io_work;
mod queue;
mod request;
mod slot;
pub mod throttle;
mod timer;
pub mod volume;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

// Used by the VMM core once it wires disks up.
pub use device::{Block, BlockError};
pub use io_work::IoWork;
pub use volume::{Volume, VolumeError};

/// The unit of capacity and of the request `sector` field, whatever the
/// block size (virtio 1.2, 5.2.6).
pub const SECTOR_SHIFT: u32 = 9;
pub const SECTOR_SIZE: u64 = 1 << SECTOR_SHIFT;

/// Size of every request queue (the maximum; the driver may pick less).
pub const QUEUE_SIZE: u16 = 256;
/// Most request queues one disk offers. Each costs an io_uring, an eventfd
/// and a timerfd; past 16, guests gain little (blk-mq maps several CPUs
/// onto a queue) while the fds add up with many volumes.
pub const MAX_QUEUES: u16 = 16;
/// Maximum data segments in one request. Without indirect descriptors a
/// request needs header + data + status descriptors, so a queue of
/// QUEUE_SIZE can hold at most QUEUE_SIZE - 2 data segments.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Longest accepted serial (volume id): VIRTIO_BLK_ID_BYTES.
pub const SERIAL_MAX_LEN: usize = virtio_bindings::virtio_blk::VIRTIO_BLK_ID_BYTES as usize;

/// What the VMM asks for when it creates a disk.
#[derive(Clone, Debug, Default)]
pub struct BlockConfig {
    /// Backing file (raw image) or block device.
    pub path: PathBuf,
    /// Opened O_RDONLY and offered with VIRTIO_BLK_F_RO.
    pub read_only: bool,
    /// Returned by VIRTIO_BLK_T_GET_ID (EBS volume id, e.g. "vol-0123..."):
    /// at most 20 bytes, shows up as /dev/disk/by-id/virtio-<serial>.
    pub serial: Option<String>,
    /// Its counters and limits, kept across boots and shared with the
    /// control socket. None: a fresh, unthrottled one named after the
    /// serial (or the path).
    pub volume: Option<std::sync::Arc<Volume>>,
    /// Request queues to offer (VIRTIO_BLK_F_MQ when more than 1): 0 or 1
    /// is one queue, more than MAX_QUEUES is MAX_QUEUES.
    pub num_queues: u16,
    /// Bypass the host page cache (O_DIRECT) for every request aligned as
    /// the host filesystem needs; the rest go through the page cache.
    pub direct: bool,
    /// Where its queues count the work they do (shared by every disk of
    /// the VMM; the default is a counter of its own).
    pub work: std::sync::Arc<IoWork>,
}

/// Per-device counters, readable from any thread while the device runs.
#[derive(Debug, Default)]
pub struct BlockMetrics {
    pub read_ops: AtomicU64,
    pub read_bytes: AtomicU64,
    pub write_ops: AtomicU64,
    pub write_bytes: AtomicU64,
    pub flush_ops: AtomicU64,
    pub discard_ops: AtomicU64,
    pub write_zeroes_ops: AtomicU64,
    pub get_id_ops: AtomicU64,
    /// Requests completed with VIRTIO_BLK_S_IOERR (host I/O errors and
    /// invalid requests alike).
    pub io_errors: AtomicU64,
    /// Requests completed with VIRTIO_BLK_S_UNSUPP.
    pub unsupported: AtomicU64,
    /// Chains the guest got wrong (subset of io_errors/unsupported, plus
    /// chains returned without a status byte).
    pub invalid_requests: AtomicU64,
    /// Times the host I/O engine reported back-pressure (ring full/busy).
    pub engine_busy: AtomicU64,
    /// Summed latency of completed reads / writes (ns).
    pub read_time_ns: AtomicU64,
    pub write_time_ns: AtomicU64,
    /// Requests taken from the avail ring and not yet completed (a gauge).
    pub queue_length: AtomicU64,
    /// Requests the volume's limits held back, and their bytes.
    pub throttled_ops: AtomicU64,
    pub throttled_bytes: AtomicU64,
    /// Idle time in one word, so a reader on another thread never sees
    /// half an update: while busy, the idle nanoseconds so far; while
    /// idle, IDLE_FLAG | (the time idleness began - the idle time before
    /// it), so that idle time = now - that.
    idle: AtomicU64,
}

const IDLE_FLAG: u64 = 1 << 63;

/// A plain copy of the counters, for reporting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockMetricsSnapshot {
    pub read_ops: u64,
    pub read_bytes: u64,
    pub write_ops: u64,
    pub write_bytes: u64,
    pub flush_ops: u64,
    pub discard_ops: u64,
    pub write_zeroes_ops: u64,
    pub get_id_ops: u64,
    pub io_errors: u64,
    pub unsupported: u64,
    pub invalid_requests: u64,
    pub engine_busy: u64,
}

impl BlockMetrics {
    pub fn snapshot(&self) -> BlockMetricsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BlockMetricsSnapshot {
            read_ops: l(&self.read_ops),
            read_bytes: l(&self.read_bytes),
            write_ops: l(&self.write_ops),
            write_bytes: l(&self.write_bytes),
            flush_ops: l(&self.flush_ops),
            discard_ops: l(&self.discard_ops),
            write_zeroes_ops: l(&self.write_zeroes_ops),
            get_id_ops: l(&self.get_id_ops),
            io_errors: l(&self.io_errors),
            unsupported: l(&self.unsupported),
            invalid_requests: l(&self.invalid_requests),
            engine_busy: l(&self.engine_busy),
        }
    }

    pub(crate) fn inc(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Marks the volume idle from `now` with no idle time yet.
    pub(crate) fn set_idle_since(&self, now: u64) {
        self.idle
            .store(IDLE_FLAG | (now & !IDLE_FLAG), Ordering::Relaxed);
    }

    /// Seconds of idleness up to `now`, in ns.
    pub fn idle_ns(&self, now: u64) -> u64 {
        let v = self.idle.load(Ordering::Relaxed);
        if v & IDLE_FLAG != 0 {
            now.saturating_sub(v & !IDLE_FLAG)
        } else {
            v
        }
    }

    /// Moves the number of requests in flight by `delta` (each queue adds
    /// what it took and subtracts what it finished, so the queues of a
    /// multi-queue disk add up) and moves the idle clock when the volume
    /// goes idle or busy. Not an atomic read-modify-write: every queue of
    /// a volume runs on the VMM's one event-loop thread.
    pub(crate) fn add_queue_length(&self, delta: i64, now: u64) {
        if delta == 0 {
            return;
        }
        let was = self.queue_length.load(Ordering::Relaxed);
        let n = was.saturating_add_signed(delta);
        self.queue_length.store(n, Ordering::Relaxed);
        let idle = self.idle.load(Ordering::Relaxed);
        if n == 0 && idle & IDLE_FLAG == 0 {
            // Busy -> idle: remember when, less the idle time so far.
            let base = now.saturating_sub(idle) & !IDLE_FLAG;
            self.idle.store(IDLE_FLAG | base, Ordering::Relaxed);
        } else if n > 0 && idle & IDLE_FLAG != 0 {
            // Idle -> busy: freeze the total.
            let total = now.saturating_sub(idle & !IDLE_FLAG);
            self.idle.store(total, Ordering::Relaxed);
        }
    }
}
