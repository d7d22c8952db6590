//! Device-level tests: a MockSplitQueue on real guest memory, a temp file,
//! and the real io_uring engine. Every test that feeds the device a bad
//! chain checks the status byte (or the used length when there is no status
//! byte) and that nothing outside the request's buffers changed, in guest
//! memory and in the file.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_manager::{EventManager, SubscriberOps};
use virtio_bindings::virtio_blk::*;
use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{RawDescriptor, split::Descriptor as SplitDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::config::{MAX_DISCARD_SECTORS, MAX_DISCARD_SEG};
use super::{Block, BlockConfig, BlockError, SEG_MAX, Volume};
use crate::devices::virtio::{
    ActivateError, ActivatedQueue, FEATURE_RING_EVENT_IDX, FEATURE_VERSION_1, TYPE_BLOCK,
    VirtioDevice, VirtioInterrupt,
};
use crate::memory::GuestMemoryMmap;

mod data_path;
mod device;
mod direct;
mod engine;
mod event_loop;
mod hostile;
mod multiqueue;
mod throttled;

const W: u16 = VRING_DESC_F_WRITE as u16;
const R: u16 = 0;
const OK: u8 = VIRTIO_BLK_S_OK as u8;
const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
const UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

const MEM_SIZE: u64 = 0x40_0000;
/// Guest buffers live in [DATA_START, DATA_END), pre-filled with CANARY.
const DATA_START: u64 = 0x10_0000;
const DATA_END: u64 = 0x30_0000;
const CANARY: u8 = 0xCC;
const SECTOR: usize = 512;

// ---------------------------------------------------------------- fixtures

#[derive(Default)]
struct FakeInterrupt {
    queue: AtomicU32,
    config: AtomicU32,
    /// Interrupts per queue index (the first 16).
    by_queue: [AtomicU32; 16],
}

impl VirtioInterrupt for FakeInterrupt {
    fn notify_queue(&self, queue_index: u16) -> std::io::Result<()> {
        self.queue.fetch_add(1, Ordering::SeqCst);
        if let Some(n) = self.by_queue.get(usize::from(queue_index)) {
            n.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
    fn notify_config(&self) -> std::io::Result<()> {
        self.config.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A temp file, removed on drop.
struct TempImage(PathBuf);

impl TempImage {
    fn new(len: usize) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "flint-blk-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, pattern(len)).unwrap();
        TempImage(path)
    }

    fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }

    /// Allocated bytes on disk (to see holes).
    fn allocated(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.0).unwrap().blocks() * 512
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Distinct, never-zero bytes, different in every sector.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / SECTOR) as u8).wrapping_mul(31).wrapping_add(i as u8) | 1)
        .collect()
}

fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap()
}

fn cfg(img: &TempImage) -> BlockConfig {
    BlockConfig {
        path: img.0.clone(),
        read_only: false,
        serial: Some("vol-0123456789abcdef".into()),
        volume: None,
        num_queues: 1,
        direct: false,
        work: Default::default(),
    }
}

/// A split queue at guest address 0 with the spec's layout. (virtio-queue
/// 0.18's MockSplitQueue computes the used ring's address from the avail
/// ring's length in elements instead of bytes, so its used ring overlaps
/// the second half of the avail ring; we keep the mock for the descriptor
/// table and lay out the rings ourselves.)
struct Rings {
    avail: u64,
    used: u64,
}

/// Guest memory each ring of a multi-queue harness gets (queue k at
/// k * RING_SPAN): room for a 256-entry split queue.
const RING_SPAN: u64 = 0x8000;

fn make_queue(base: u64, qsize: u16) -> (Queue, Rings) {
    let avail = base + 16 * u64::from(qsize);
    let used = (avail + 4 + 2 * u64::from(qsize) + 2 + 3) & !3;
    let mut q = Queue::new(qsize).unwrap();
    q.set_size(qsize);
    q.set_ready(true);
    q.try_set_desc_table_address(GuestAddress(base)).unwrap();
    q.try_set_avail_ring_address(GuestAddress(avail)).unwrap();
    q.try_set_used_ring_address(GuestAddress(used)).unwrap();
    (q, Rings { avail, used })
}

/// The driver's side of one queue.
struct DriverRing<'a> {
    /// The device's queue index.
    index: u16,
    vq: MockSplitQueue<'a, GuestMemoryMmap>,
    rings: Rings,
    next_desc: u16,
    avail_idx: u16,
}

/// Plays the driver: builds chains in a MockSplitQueue, notifies, and
/// drives the device's queue handler directly (no event loop). With
/// several queues, the methods act on the selected one (`select`); the
/// others are parked.
struct Harness<'a> {
    mem: &'a GuestMemoryMmap,
    vq: MockSplitQueue<'a, GuestMemoryMmap>,
    rings: Rings,
    qsize: u16,
    block: Block,
    irq: Arc<FakeInterrupt>,
    next_desc: u16,
    avail_idx: u16,
    next_buf: u64,
    /// The selected queue's index.
    queue: u16,
    parked: Vec<DriverRing<'a>>,
}

impl<'a> Harness<'a> {
    fn new(mem: &'a GuestMemoryMmap, cfg: BlockConfig) -> Self {
        Self::with(mem, cfg, 64, false)
    }

    fn with(mem: &'a GuestMemoryMmap, cfg: BlockConfig, qsize: u16, event_idx: bool) -> Self {
        Self::with_queues(mem, cfg, qsize, event_idx, &[0])
    }

    /// The driver sets up the queues `indexes` (increasing), each with its
    /// own rings; queue `indexes[0]` starts selected.
    fn with_queues(
        mem: &'a GuestMemoryMmap,
        cfg: BlockConfig,
        qsize: u16,
        event_idx: bool,
        indexes: &[u16],
    ) -> Self {
        let mut block = Block::new(cfg).expect("Block::new");
        let mut rings = Vec::new();
        let mut activated = Vec::new();
        for (k, &index) in indexes.iter().enumerate() {
            let base = k as u64 * RING_SPAN;
            let vq = MockSplitQueue::create(mem, GuestAddress(base), qsize);
            // Clear what the mock initialised at its own (overlapping) offsets.
            mem.write_slice(
                &vec![0u8; 0x4000],
                GuestAddress(base + 16 * u64::from(qsize)),
            )
            .unwrap();
            let (queue, r) = make_queue(base, qsize);
            activated.push(ActivatedQueue {
                index,
                queue,
                notify: EventFd::new(EFD_NONBLOCK).unwrap(),
            });
            rings.push(DriverRing {
                index,
                vq,
                rings: r,
                next_desc: 0,
                avail_idx: 0,
            });
        }
        mem.write_slice(
            &vec![CANARY; (DATA_END - DATA_START) as usize],
            GuestAddress(DATA_START),
        )
        .unwrap();
        let irq = Arc::new(FakeInterrupt::default());
        let mut features = FEATURE_VERSION_1;
        if event_idx {
            features |= FEATURE_RING_EVENT_IDX;
        }
        block
            .activate(mem.clone(), features, activated, irq.clone())
            .expect("activate");
        let first = rings.remove(0);
        Harness {
            mem,
            vq: first.vq,
            rings: first.rings,
            qsize,
            block,
            irq,
            next_desc: 0,
            avail_idx: 0,
            next_buf: DATA_START,
            queue: first.index,
            parked: rings,
        }
    }

    /// Makes queue `index` the one the other methods act on.
    fn select(&mut self, index: u16) {
        if index == self.queue {
            return;
        }
        let k = self
            .parked
            .iter()
            .position(|r| r.index == index)
            .expect("a queue the driver set up");
        let r = &mut self.parked[k];
        std::mem::swap(&mut self.vq, &mut r.vq);
        std::mem::swap(&mut self.rings, &mut r.rings);
        std::mem::swap(&mut self.next_desc, &mut r.next_desc);
        std::mem::swap(&mut self.avail_idx, &mut r.avail_idx);
        std::mem::swap(&mut self.queue, &mut r.index);
    }

    /// A guest buffer of `len` bytes (CANARY-filled), with a gap after it.
    fn alloc(&mut self, len: u64) -> u64 {
        let a = self.next_buf;
        self.next_buf = (a + len + 0x40 + 0xfff) & !0xfff;
        assert!(self.next_buf <= DATA_END);
        a
    }

    fn header(&mut self, t: u32, sector: u64) -> u64 {
        let a = self.alloc(16);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&t.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&h, GuestAddress(a)).unwrap();
        a
    }

    fn put_desc(&self, idx: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.vq
            .desc_table()
            .store(
                idx,
                RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next)),
            )
            .unwrap();
    }

    /// Adds a chain (NEXT flags and links filled in), publishes it.
    fn chain(&mut self, descs: &[(u64, u32, u16)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, flags)) in descs.iter().enumerate() {
            let idx = (head + i as u16) % self.qsize;
            let next = (idx + 1) % self.qsize;
            let last = i + 1 == descs.len();
            let flags = if last {
                flags
            } else {
                flags | VRING_DESC_F_NEXT as u16
            };
            self.put_desc(idx, addr, len, flags, next);
        }
        self.next_desc = (head + descs.len() as u16) % self.qsize;
        self.publish(head);
        head
    }

    fn publish(&mut self, head: u16) {
        let slot = self.rings.avail + 4 + 2 * u64::from(self.avail_idx % self.qsize);
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.set_avail_idx(self.avail_idx);
    }

    fn set_avail_idx(&self, idx: u16) {
        self.mem
            .write_obj(idx, GuestAddress(self.rings.avail + 2))
            .unwrap();
    }

    /// header + data descriptors + 1-byte status. Returns the status addr.
    fn request(&mut self, t: u32, sector: u64, data: &[(u64, u32, u16)]) -> u64 {
        let h = self.header(t, sector);
        let s = self.alloc(1);
        let mut descs = vec![(h, 16, R)];
        descs.extend_from_slice(data);
        descs.push((s, 1, W));
        self.chain(&descs);
        s
    }

    fn used_idx(&self) -> u16 {
        self.mem
            .read_obj(GuestAddress(self.rings.used + 2))
            .unwrap()
    }

    /// (id, len) of used element `i`.
    fn used(&self, i: u16) -> (u32, u32) {
        let a = self.rings.used + 4 + 8 * u64::from(i % self.qsize);
        (
            self.mem.read_obj(GuestAddress(a)).unwrap(),
            self.mem.read_obj(GuestAddress(a + 4)).unwrap(),
        )
    }

    fn byte(&self, addr: u64) -> u8 {
        self.mem.read_obj(GuestAddress(addr)).unwrap()
    }

    fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    fn fill(&self, addr: u64, data: &[u8]) {
        self.mem.write_slice(data, GuestAddress(addr)).unwrap();
    }

    /// Notifies the queue and runs completions until `total` chains have
    /// been used (or panics after 5 s: the device must never hang).
    fn run(&mut self, total: u16) {
        self.block.handler(usize::from(self.queue)).process_queue();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.used_idx() != total {
            assert!(
                Instant::now() < deadline,
                "timed out: used {} of {total}",
                self.used_idx()
            );
            let fd = self
                .block
                .handler(usize::from(self.queue))
                .completion_fd()
                .as_raw_fd();
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for the duration of the call.
            unsafe { libc::poll(&mut p, 1, 100) };
            self.block
                .handler(usize::from(self.queue))
                .handle_completions();
        }
    }

    /// The whole data area, to diff after a request.
    fn snapshot(&self) -> Vec<u8> {
        self.bytes(DATA_START, (DATA_END - DATA_START) as usize)
    }

    /// Guest memory changed only inside `allowed` (address, length) since
    /// `before` was taken.
    fn assert_only_changed(&self, before: &[u8], allowed: &[(u64, u64)]) {
        let now = self.snapshot();
        for (i, (&b, &a)) in before.iter().zip(&now).enumerate() {
            let addr = DATA_START + i as u64;
            if b != a && !allowed.iter().any(|&(s, l)| addr >= s && addr < s + l) {
                panic!("guest memory at {addr:#x} changed from {b:#x} to {a:#x}");
            }
        }
    }
}
/// Chains the device could not answer are returned with used length 0,
/// without writing anything (not even a status byte).
fn assert_no_status(h: &Harness, before: &[u8], used_i: u16, status: u64) {
    assert_eq!(h.used(used_i).1, 0, "used length");
    assert_eq!(h.byte(status), CANARY, "status byte must not be written");
    h.assert_only_changed(before, &[]);
}

/// One discard/write-zeroes range record.
fn range(sector: u64, n: u32, flags: u32) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[0..8].copy_from_slice(&sector.to_le_bytes());
    r[8..12].copy_from_slice(&n.to_le_bytes());
    r[12..16].copy_from_slice(&flags.to_le_bytes());
    r
}

fn ranges_buf(h: &mut Harness, ranges: &[[u8; 16]]) -> (u64, u32) {
    let bytes: Vec<u8> = ranges.iter().flatten().copied().collect();
    let a = h.alloc(bytes.len() as u64);
    h.fill(a, &bytes);
    (a, bytes.len() as u32)
}
