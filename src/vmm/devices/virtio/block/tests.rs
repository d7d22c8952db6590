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
use crate::vmm::devices::virtio::{
    ActivateError, ActivatedQueue, FEATURE_RING_EVENT_IDX, FEATURE_VERSION_1, TYPE_BLOCK,
    VirtioDevice, VirtioInterrupt,
};
use crate::vmm::memory::GuestMemoryMmap;

mod direct;
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

// ------------------------------------------------------------ constructor

#[test]
fn new_reports_missing_file_directory_and_bad_serial() {
    let missing = BlockConfig {
        path: "/nonexistent/flint/disk.img".into(),
        ..Default::default()
    };
    assert!(matches!(Block::new(missing), Err(BlockError::NotFound(_))));
    let dir = BlockConfig {
        path: std::env::temp_dir(),
        ..Default::default()
    };
    assert!(matches!(Block::new(dir), Err(BlockError::IsDirectory(_))));
    let img = TempImage::new(4096);
    let mut c = cfg(&img);
    c.serial = Some("vol-0123456789abcdef0".into()); // 21 bytes
    let e = Block::new(c).err().unwrap();
    assert!(matches!(e, BlockError::SerialTooLong(_)), "{e}");
    assert!(e.to_string().contains("longer than 20 bytes"));
}

#[test]
fn capacity_ignores_partial_tail_and_zero_length_is_allowed() {
    let img = TempImage::new(3 * SECTOR + 100);
    let b = Block::new(cfg(&img)).unwrap();
    assert_eq!(b.capacity(), 3);
    let mut cap = [0u8; 8];
    b.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 3);
    drop(b);

    let empty = TempImage::new(0);
    let b = Block::new(cfg(&empty)).unwrap();
    assert_eq!(b.capacity(), 0);
}

#[test]
fn resize_rereads_the_file_size_into_the_volume_and_keeps_the_limits() {
    let img = TempImage::new(4 * SECTOR);
    let mut c = cfg(&img);
    let limits = serde_json::from_str(r#"{"volume_type":"gp2","size_gib":1}"#).unwrap();
    let volume = Volume::new("vol-resize", Some(limits)).unwrap();
    c.volume = Some(volume.clone());
    let mut b = Block::new(c).unwrap();
    assert_eq!(volume.size_bytes(), 4 * SECTOR as u64);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img.0)
        .unwrap()
        .set_len(10 * SECTOR as u64 + 7)
        .unwrap();
    assert_eq!(b.capacity(), 4, "unchanged until asked");
    assert_eq!(b.resize().unwrap(), 10);
    assert_eq!(b.capacity(), 10);
    assert_eq!(volume.size_bytes(), 10 * SECTOR as u64);
    let mut cap = [0u8; 8];
    b.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 10);
    assert_eq!(b.volume().limits(), Some(limits));
}

#[test]
fn second_writer_is_refused() {
    let img = TempImage::new(4096);
    let _first = Block::new(cfg(&img)).unwrap();
    let e = Block::new(cfg(&img)).err().unwrap();
    assert!(matches!(e, BlockError::InUse(_)), "{e}");
}

#[test]
fn features_and_config() {
    let img = TempImage::new(8 * SECTOR);
    let b = Block::new(cfg(&img)).unwrap();
    assert_eq!(b.device_type(), TYPE_BLOCK);
    assert_eq!(b.queue_max_sizes(), &[256]);
    let f = b.device_features();
    for bit in [
        VIRTIO_BLK_F_SEG_MAX,
        VIRTIO_BLK_F_BLK_SIZE,
        VIRTIO_BLK_F_FLUSH,
        VIRTIO_BLK_F_DISCARD,
        VIRTIO_BLK_F_WRITE_ZEROES,
    ] {
        assert!(f & (1 << bit) != 0, "feature {bit}");
    }
    assert!(f & FEATURE_VERSION_1 != 0 && f & FEATURE_RING_EVENT_IDX != 0);
    assert_eq!(f & (1 << VIRTIO_BLK_F_RO), 0);
    // Config at odd widths: seg_max's high half, blk_size's second byte.
    let mut two = [0u8; 2];
    b.read_config(14, &mut two);
    assert_eq!(two, [0, 0]);
    let mut one = [0u8; 1];
    b.read_config(21, &mut one);
    assert_eq!(one, [2]); // 512 = 0x0200
    let mut three = [0u8; 3];
    b.read_config(12, &mut three);
    assert_eq!(three, [(SEG_MAX & 0xff) as u8, 0, 0]);
    // Writes are ignored.
    let mut b = b;
    b.write_config(0, &[0xff; 8]);
    let mut cap = [0u8; 8];
    b.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 8);

    drop(b);
    let mut c = cfg(&img);
    c.read_only = true;
    let ro = Block::new(c).unwrap();
    assert!(ro.device_features() & (1 << VIRTIO_BLK_F_RO) != 0);
}

#[test]
fn activate_rejects_wrong_queue_count_and_double_activation() {
    let m = mem();
    let img = TempImage::new(4096);
    let mut b = Block::new(cfg(&img)).unwrap();
    let irq: Arc<dyn VirtioInterrupt> = Arc::new(FakeInterrupt::default());
    let e = b.activate(m.clone(), FEATURE_VERSION_1, vec![], irq.clone());
    assert!(matches!(
        e,
        Err(ActivateError::QueueCount { got: 0, want: 1 })
    ));
    let mut h = Harness::new(&m, cfg(&TempImage::new(4096)));
    let vq = MockSplitQueue::create(&m, GuestAddress(0x8000), 16);
    let q = ActivatedQueue {
        index: 0,
        queue: vq.create_queue().unwrap(),
        notify: EventFd::new(0).unwrap(),
    };
    let e = h.block.activate(m.clone(), FEATURE_VERSION_1, vec![q], irq);
    assert!(matches!(e, Err(ActivateError::AlreadyActive)));
    assert_eq!(h.block.reset().map(|v| v.len()), Some(1));
    assert!(h.block.reset().is_none());
}

// ---------------------------------------------------------------- data path

#[test]
fn write_then_read_round_trips_at_several_sectors_and_sizes() {
    let m = mem();
    let img = TempImage::new(256 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let mut expect = img.contents();
    let mut n = 0;
    for (sector, sectors) in [(0u64, 1usize), (1, 8), (7, 3), (100, 64), (255, 1)] {
        let len = sectors * SECTOR;
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8) ^ (sector as u8) ^ 0x5a)
            .collect();
        let buf = h.alloc(len as u64);
        h.fill(buf, &data);
        let st = h.request(VIRTIO_BLK_T_OUT, sector, &[(buf, len as u32, R)]);
        n += 1;
        h.run(n);
        assert_eq!(h.byte(st), OK);
        assert_eq!(h.used(n - 1).1, 1);
        let off = sector as usize * SECTOR;
        expect[off..off + len].copy_from_slice(&data);
        assert_eq!(img.contents(), expect, "file after write at {sector}");

        let rbuf = h.alloc(len as u64);
        let st = h.request(VIRTIO_BLK_T_IN, sector, &[(rbuf, len as u32, W)]);
        n += 1;
        h.run(n);
        assert_eq!(h.byte(st), OK);
        assert_eq!(h.used(n - 1).1, len as u32 + 1);
        assert_eq!(h.bytes(rbuf, len), data);
    }
    let s = h.block.metrics().snapshot();
    assert_eq!((s.read_ops, s.write_ops), (5, 5));
    assert_eq!(s.read_bytes, (1 + 8 + 3 + 64 + 1) * 512);
    assert_eq!(s.write_bytes, s.read_bytes);
    assert_eq!(s.io_errors, 0);
}

#[test]
fn multi_descriptor_requests_scatter_and_gather() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    // Read sectors 4..10 into three buffers of 1, 2 and 3 sectors.
    let bufs: Vec<(u64, u32, u16)> = [1u32, 2, 3]
        .iter()
        .map(|&s| (h.alloc(u64::from(s) * 512), s * 512, W))
        .collect();
    let before = h.snapshot();
    let st = h.request(VIRTIO_BLK_T_IN, 4, &bufs);
    h.run(1);
    assert_eq!(h.byte(st), OK);
    let file = img.contents();
    let mut got = vec![];
    for &(a, l, _) in &bufs {
        got.extend(h.bytes(a, l as usize));
    }
    assert_eq!(got, &file[4 * SECTOR..10 * SECTOR]);
    // Only the three buffers, the status byte and the header (written by
    // the test itself) changed.
    let mut allowed: Vec<(u64, u64)> = bufs.iter().map(|&(a, l, _)| (a, u64::from(l))).collect();
    allowed.push((st, 1));
    allowed.push((st - 0x1000, 16));
    h.assert_only_changed(&before, &allowed);

    // Write two buffers (a 4 KiB one and a 512-byte one) at sector 20.
    let a = h.alloc(4096);
    let b = h.alloc(512);
    h.fill(a, &[0x11; 4096]);
    h.fill(b, &[0x22; 512]);
    let st = h.request(VIRTIO_BLK_T_OUT, 20, &[(a, 4096, R), (b, 512, R)]);
    h.run(2);
    assert_eq!(h.byte(st), OK);
    let file2 = img.contents();
    assert_eq!(&file2[20 * SECTOR..28 * SECTOR], &[0x11; 4096][..]);
    assert_eq!(&file2[28 * SECTOR..29 * SECTOR], &[0x22; 512][..]);
    assert_eq!(&file2[..20 * SECTOR], &file[..20 * SECTOR]);
    assert_eq!(&file2[29 * SECTOR..], &file[29 * SECTOR..]);
}

#[test]
fn flush_completes_ok() {
    let m = mem();
    let img = TempImage::new(16 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let buf = h.alloc(512);
    h.fill(buf, &[7; 512]);
    h.request(VIRTIO_BLK_T_OUT, 3, &[(buf, 512, R)]);
    h.run(1);
    let st = h.request(VIRTIO_BLK_T_FLUSH, 0, &[]);
    h.run(2);
    assert_eq!(h.byte(st), OK);
    assert_eq!(h.used(1).1, 1);
    assert_eq!(h.block.metrics().snapshot().flush_ops, 1);
    assert_eq!(&img.contents()[3 * SECTOR..4 * SECTOR], &[7; 512][..]);
}

fn get_id(serial: Option<&str>, buf_len: u32) -> (Vec<u8>, u8, u32) {
    let m = mem();
    let img = TempImage::new(4096);
    let mut c = cfg(&img);
    c.serial = serial.map(str::to_string);
    let mut h = Harness::new(&m, c);
    let buf = h.alloc(64);
    let st = h.request(VIRTIO_BLK_T_GET_ID, 0, &[(buf, buf_len, W)]);
    h.run(1);
    (h.bytes(buf, 24), h.byte(st), h.used(0).1)
}

#[test]
fn get_id_short_serial_is_nul_padded() {
    let (buf, st, len) = get_id(Some("vol-42"), 20);
    assert_eq!(st, OK);
    assert_eq!(len, 21);
    let mut want = b"vol-42".to_vec();
    want.resize(20, 0);
    assert_eq!(&buf[..20], &want[..]);
    assert_eq!(&buf[20..], &[CANARY; 4], "nothing past the 20-byte buffer");
}

#[test]
fn get_id_twenty_byte_serial_has_no_terminator() {
    let (buf, st, _) = get_id(Some("vol-0123456789abcdef"), 20);
    assert_eq!(st, OK);
    assert_eq!(&buf[..20], b"vol-0123456789abcdef");
    assert_eq!(&buf[20..], &[CANARY; 4]);
}

#[test]
fn get_id_short_buffer_and_no_serial() {
    let (buf, st, len) = get_id(Some("vol-0123456789abcdef"), 8);
    assert_eq!((st, len), (OK, 9));
    assert_eq!(&buf[..8], b"vol-0123");
    assert_eq!(buf[8], CANARY);
    let (buf, st, _) = get_id(None, 20);
    assert_eq!(st, OK);
    assert_eq!(&buf[..20], &[0; 20]);
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

#[test]
fn discard_punches_holes_and_reads_back_zero() {
    let m = mem();
    let img = TempImage::new(1 << 20); // 1 MiB, fully allocated
    let before_alloc = img.allocated();
    let mut h = Harness::new(&m, cfg(&img));
    // Two ranges: 64 KiB at sector 128, and 4 KiB at sector 1024.
    let (a, l) = ranges_buf(&mut h, &[range(128, 128, 0), range(1024, 8, 0)]);
    let st = h.request(VIRTIO_BLK_T_DISCARD, 0, &[(a, l, R)]);
    h.run(1);
    assert_eq!(h.byte(st), OK);
    let file = img.contents();
    let orig = pattern(1 << 20);
    assert_eq!(file.len(), 1 << 20, "size kept");
    assert!(file[128 * SECTOR..256 * SECTOR].iter().all(|&b| b == 0));
    assert!(file[1024 * SECTOR..1032 * SECTOR].iter().all(|&b| b == 0));
    assert_eq!(&file[..128 * SECTOR], &orig[..128 * SECTOR]);
    assert_eq!(
        &file[256 * SECTOR..1024 * SECTOR],
        &orig[256 * SECTOR..1024 * SECTOR]
    );
    assert_eq!(&file[1032 * SECTOR..], &orig[1032 * SECTOR..]);
    assert!(img.allocated() < before_alloc, "blocks were freed");
    assert_eq!(h.block.metrics().snapshot().discard_ops, 1);
}

#[test]
fn write_zeroes_zeroes_and_unmap_punches() {
    let m = mem();
    let img = TempImage::new(1 << 20);
    let mut h = Harness::new(&m, cfg(&img));
    let (a, l) = ranges_buf(&mut h, &[range(16, 16, 0)]);
    let st = h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, &[(a, l, R)]);
    h.run(1);
    assert_eq!(h.byte(st), OK);
    let alloc_after_zero = img.allocated();
    let flag = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
    let (a, l) = ranges_buf(&mut h, &[range(512, 256, flag)]);
    let st = h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, &[(a, l, R)]);
    h.run(2);
    assert_eq!(h.byte(st), OK);
    let file = img.contents();
    let orig = pattern(1 << 20);
    assert_eq!(file.len(), 1 << 20);
    assert!(file[16 * SECTOR..32 * SECTOR].iter().all(|&b| b == 0));
    assert!(file[512 * SECTOR..768 * SECTOR].iter().all(|&b| b == 0));
    assert_eq!(&file[..16 * SECTOR], &orig[..16 * SECTOR]);
    assert_eq!(
        &file[32 * SECTOR..512 * SECTOR],
        &orig[32 * SECTOR..512 * SECTOR]
    );
    assert_eq!(&file[768 * SECTOR..], &orig[768 * SECTOR..]);
    assert!(img.allocated() < alloc_after_zero, "unmap freed blocks");
    assert_eq!(h.block.metrics().snapshot().write_zeroes_ops, 2);
}

#[test]
fn read_only_disk_refuses_writes_and_leaves_file_unchanged() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let orig = img.contents();
    let mut c = cfg(&img);
    c.read_only = true;
    let mut h = Harness::new(&m, c);
    let buf = h.alloc(512);
    h.fill(buf, &[0xee; 512]);
    let s1 = h.request(VIRTIO_BLK_T_OUT, 0, &[(buf, 512, R)]);
    let (a, l) = ranges_buf(&mut h, &[range(0, 8, 0)]);
    let s2 = h.request(VIRTIO_BLK_T_DISCARD, 0, &[(a, l, R)]);
    let s3 = h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, &[(a, l, R)]);
    let rbuf = h.alloc(512);
    let s4 = h.request(VIRTIO_BLK_T_IN, 1, &[(rbuf, 512, W)]);
    let s5 = h.request(VIRTIO_BLK_T_FLUSH, 0, &[]);
    h.run(5);
    assert_eq!([h.byte(s1), h.byte(s2), h.byte(s3)], [IOERR; 3]);
    assert_eq!([h.byte(s4), h.byte(s5)], [OK; 2]);
    assert_eq!(h.bytes(rbuf, 512), &orig[SECTOR..2 * SECTOR]);
    assert_eq!(img.contents(), orig);
}

// ------------------------------------------------------------ hostile guest

/// Sends one chain, expects status `want` and a file and guest memory
/// unchanged apart from the status byte.
fn expect_refused(
    h: &mut Harness,
    img: &TempImage,
    descs: &[(u64, u32, u16)],
    status: u64,
    want: u8,
) {
    let orig = img.contents();
    let before = h.snapshot();
    h.chain(descs);
    let n = h.used_idx() + 1;
    h.run(n);
    h.assert_only_changed(&before, &[(status, 1)]);
    assert_eq!(h.byte(status), want, "status byte");
    assert_eq!(h.used(n - 1).1, 1, "used length");
    assert_eq!(img.contents(), orig, "file unchanged");
}

#[test]
fn descriptor_outside_guest_memory_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    // Starts inside, ends past the end of guest memory.
    let d = (MEM_SIZE - 256, 512, W);
    expect_refused(&mut h, &img, &[(hd, 16, R), d, (st, 1, W)], st, IOERR);
    // Entirely outside.
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (1 << 40, 512, R), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(MEM_SIZE - 256, 256), vec![0; 256]);
}

#[test]
fn overflowing_address_plus_length_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    let d = (u64::MAX - 100, 512, W);
    expect_refused(&mut h, &img, &[(hd, 16, R), d, (st, 1, W)], st, IOERR);
}

#[test]
fn chain_longer_than_four_gib_has_no_status() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    // Total length passes 2^32: the chain iterator stops, so the status
    // descriptor is never reached.
    let big = (DATA_START, u32::MAX, W);
    let before = h.snapshot();
    h.chain(&[(hd, 16, R), big, (st, 1, W)]);
    h.run(1);
    assert_no_status(&h, &before, 0, st);
}

#[test]
fn looping_chain_is_returned_without_status_and_queue_goes_on() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let buf = h.alloc(512);
    // 0 -> 1 -> 0 -> ...
    let before = h.snapshot();
    h.put_desc(0, hd, 16, VRING_DESC_F_NEXT as u16, 1);
    h.put_desc(1, buf, 512, W | VRING_DESC_F_NEXT as u16, 0);
    h.next_desc = 2;
    h.publish(0);
    h.run(1);
    assert_eq!(h.used(0), (0, 0));
    h.assert_only_changed(&before, &[]);
    // The device still works.
    let rbuf = h.alloc(512);
    let st = h.request(VIRTIO_BLK_T_IN, 0, &[(rbuf, 512, W)]);
    h.run(2);
    assert_eq!(h.byte(st), OK);
    assert!(!h.block.needs_reset());
}

#[test]
fn next_index_beyond_queue_is_truncated_chain() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    let before = h.snapshot();
    h.put_desc(0, hd, 16, VRING_DESC_F_NEXT as u16, 200); // qsize is 64
    h.put_desc(1, st, 1, W, 0);
    h.next_desc = 2;
    h.publish(0);
    h.run(1);
    assert_no_status(&h, &before, 0, st);
}

#[test]
fn head_index_beyond_queue_is_skipped() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    h.publish(1000);
    h.block.handler(0).process_queue();
    assert_eq!(h.used_idx(), 0, "nothing to return for a bogus head");
    assert!(!h.block.needs_reset());
    let rbuf = h.alloc(512);
    let st = h.request(VIRTIO_BLK_T_IN, 0, &[(rbuf, 512, W)]);
    h.run(1);
    assert_eq!(h.byte(st), OK);
}

/// An indirect table (the device follows them even though the feature is
/// not offered) with `data` data descriptors between header and status.
fn indirect_request(h: &mut Harness, data: usize) -> u64 {
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    let buf = h.alloc(512 * data as u64);
    let table = h.alloc(16 * (data as u64 + 2));
    let n = data + 2;
    for i in 0..n {
        let (addr, len, flags) = match i {
            0 => (hd, 16, R),
            _ if i == n - 1 => (st, 1, W),
            _ => (buf + 512 * (i as u64 - 1), 512, W),
        };
        let flags = if i == n - 1 {
            flags
        } else {
            flags | VRING_DESC_F_NEXT as u16
        };
        let d = SplitDescriptor::new(addr, len, flags, (i + 1) as u16);
        h.mem
            .write_obj(RawDescriptor::from(d), GuestAddress(table + 16 * i as u64))
            .unwrap();
    }
    h.chain(&[(table, 16 * n as u32, VRING_DESC_F_INDIRECT as u16)]);
    st
}

#[test]
fn more_segments_than_seg_max_is_ioerr() {
    let m = mem();
    let img = TempImage::new(1024 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    // SEG_MAX data segments are fine...
    let st = indirect_request(&mut h, SEG_MAX as usize);
    h.run(1);
    assert_eq!(h.byte(st), OK);
    // ...one more is refused, with nothing read into guest memory.
    let st = indirect_request(&mut h, SEG_MAX as usize + 1);
    let before_run = h.snapshot();
    h.run(2);
    assert_eq!(h.byte(st), IOERR);
    h.assert_only_changed(&before_run, &[(st, 1)]);
}

#[test]
fn header_shorter_than_16_bytes_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    expect_refused(&mut h, &img, &[(hd, 15, R), (st, 1, W)], st, IOERR);
    // 8 header bytes followed by data: the data's first 8 bytes complete
    // the header, leaving a misaligned OUT, which is refused.
    expect_refused(
        &mut h,
        &img,
        &[(hd, 8, R), (buf, 512, R), (st, 1, W)],
        st,
        IOERR,
    );
}

#[test]
fn header_in_writable_descriptor_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, W), (buf, 512, W), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(buf, 512), vec![CANARY; 512]);
    assert_eq!(h.bytes(hd, 4), VIRTIO_BLK_T_IN.to_le_bytes());
}

#[test]
fn out_with_device_writable_buffer_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 512, W), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(buf, 512), vec![CANARY; 512]);
}

#[test]
fn in_with_device_readable_buffer_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 512, R), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(buf, 512), vec![CANARY; 512], "not written");
}

#[test]
fn missing_status_descriptor_returns_zero_length() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let orig = img.contents();
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let buf = h.alloc(512);
    h.fill(buf, &[1; 512]);
    let before = h.snapshot();
    h.chain(&[(hd, 16, R), (buf, 512, R)]);
    h.run(1);
    assert_eq!(h.used(0).1, 0);
    h.assert_only_changed(&before, &[]);
    assert_eq!(img.contents(), orig);
    assert_eq!(h.bytes(buf, 512), vec![1; 512]);
}

#[test]
fn zero_length_status_descriptor_returns_zero_length() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_FLUSH, 0);
    let st = h.alloc(1);
    let before = h.snapshot();
    h.chain(&[(hd, 16, R), (st, 0, W)]);
    h.run(1);
    assert_no_status(&h, &before, 0, st);
}

#[test]
fn read_only_status_descriptor_returns_zero_length() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let orig = img.contents();
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    let before = h.snapshot();
    h.chain(&[(hd, 16, R), (buf, 512, W), (st, 1, R)]);
    h.run(1);
    assert_no_status(&h, &before, 0, st);
    assert_eq!(h.bytes(buf, 512), vec![CANARY; 512], "no data read");
    assert_eq!(img.contents(), orig);
}

#[test]
fn request_beyond_capacity_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR + 100); // capacity 64
    let mut h = Harness::new(&m, cfg(&img));
    for (t, flags) in [(VIRTIO_BLK_T_IN, W), (VIRTIO_BLK_T_OUT, R)] {
        for sector in [64u64, 63, 1 << 60] {
            let buf = h.alloc(1024);
            let hd = h.header(t, sector);
            let st = h.alloc(1);
            expect_refused(
                &mut h,
                &img,
                &[(hd, 16, R), (buf, 1024, flags), (st, 1, W)],
                st,
                IOERR,
            );
            assert_eq!(h.bytes(buf, 1024), vec![CANARY; 1024]);
        }
    }
    // The last whole sector is fine, the partial tail is not exposed.
    let buf = h.alloc(512);
    let st = h.request(VIRTIO_BLK_T_IN, 63, &[(buf, 512, W)]);
    let n = h.used_idx() + 1;
    h.run(n);
    assert_eq!(h.byte(st), OK);
}

#[test]
fn sector_plus_length_overflowing_u64_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let buf = h.alloc(1024);
    let hd = h.header(VIRTIO_BLK_T_IN, u64::MAX);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 1024, W), (st, 1, W)],
        st,
        IOERR,
    );
    let hd = h.header(VIRTIO_BLK_T_OUT, u64::MAX >> 9);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 1024, R), (st, 1, W)],
        st,
        IOERR,
    );
}

#[test]
fn length_not_multiple_of_512_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let buf = h.alloc(1024);
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 513, W), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(buf, 1024), vec![CANARY; 1024]);
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 100, R), (st, 1, W)],
        st,
        IOERR,
    );
}

#[test]
fn unknown_request_type_is_unsupp() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    for t in [
        VIRTIO_BLK_T_SCSI_CMD,
        3,
        VIRTIO_BLK_T_SECURE_ERASE,
        VIRTIO_BLK_T_ZONE_APPEND,
        0xffff_ffff,
    ] {
        let hd = h.header(t, 0);
        let st = h.alloc(1);
        expect_refused(&mut h, &img, &[(hd, 16, R), (st, 1, W)], st, UNSUPP);
    }
    assert_eq!(h.block.metrics().snapshot().unsupported, 5);
}

#[test]
fn malformed_discard_and_write_zeroes_lists() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let unmap = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
    let too_many: Vec<[u8; 16]> = (0..=MAX_DISCARD_SEG)
        .map(|i| range(u64::from(i), 1, 0))
        .collect();
    let cases: Vec<(u32, Vec<u8>, u8)> = vec![
        // Not a whole number of 16-byte records.
        (VIRTIO_BLK_T_DISCARD, range(0, 8, 0)[..15].to_vec(), IOERR),
        // Empty list.
        (VIRTIO_BLK_T_WRITE_ZEROES, vec![], IOERR),
        // Beyond capacity, and overflowing.
        (VIRTIO_BLK_T_DISCARD, range(60, 8, 0).to_vec(), IOERR),
        (
            VIRTIO_BLK_T_WRITE_ZEROES,
            range(u64::MAX - 2, 8, 0).to_vec(),
            IOERR,
        ),
        // Larger than max_discard_sectors.
        (
            VIRTIO_BLK_T_DISCARD,
            range(0, MAX_DISCARD_SECTORS + 1, 0).to_vec(),
            IOERR,
        ),
        // More ranges than max_discard_seg.
        (
            VIRTIO_BLK_T_DISCARD,
            too_many.iter().flatten().copied().collect(),
            IOERR,
        ),
        // Unmap on a discard, unknown flags: UNSUPP per spec.
        (VIRTIO_BLK_T_DISCARD, range(0, 8, unmap).to_vec(), UNSUPP),
        (VIRTIO_BLK_T_WRITE_ZEROES, range(0, 8, 2).to_vec(), UNSUPP),
        // A valid range followed by a bad one: nothing is done at all.
        (
            VIRTIO_BLK_T_WRITE_ZEROES,
            [range(0, 8, 0), range(100, 8, 0)]
                .iter()
                .flatten()
                .copied()
                .collect(),
            IOERR,
        ),
    ];
    for (t, payload, want) in cases {
        let hd = h.header(t, 0);
        let st = h.alloc(1);
        let mut descs = vec![(hd, 16, R)];
        if !payload.is_empty() {
            let p = h.alloc(payload.len() as u64);
            h.fill(p, &payload);
            descs.push((p, payload.len() as u32, R));
        }
        descs.push((st, 1, W));
        expect_refused(&mut h, &img, &descs, st, want);
    }
    // Ranges in a device-writable buffer.
    let hd = h.header(VIRTIO_BLK_T_DISCARD, 0);
    let p = h.alloc(16);
    h.fill(p, &range(0, 8, 0));
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (p, 16, W), (st, 1, W)],
        st,
        IOERR,
    );
}

#[test]
fn corrupted_avail_index_needs_reset_and_stops() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let orig = img.contents();
    let mut h = Harness::new(&m, cfg(&img));
    let buf = h.alloc(512);
    h.request(VIRTIO_BLK_T_OUT, 0, &[(buf, 512, R)]);
    // The driver claims 65 new chains on a 64-entry queue.
    h.set_avail_idx(65);
    h.block.handler(0).process_queue();
    assert!(h.block.needs_reset());
    assert_eq!(h.used_idx(), 0);
    assert_eq!(h.irq.config.load(Ordering::SeqCst), 1, "config interrupt");
    // Further notifications do nothing.
    h.set_avail_idx(1);
    h.block.handler(0).process_queue();
    assert_eq!(h.used_idx(), 0);
    assert_eq!(img.contents(), orig);
    // Reset clears it.
    assert!(h.block.reset().is_some());
    assert!(!h.block.needs_reset());
}

// ----------------------------------------------- engine edge cases, EVENT_IDX

#[test]
fn short_read_from_shrunken_file_fails_without_hanging() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    // Someone truncates the image under the VMM: the first readv is short,
    // the resubmitted remainder reads 0 bytes.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img.0)
        .unwrap()
        .set_len(4 * SECTOR as u64 + 100)
        .unwrap();
    let buf = h.alloc(8 * 512);
    let st = h.request(VIRTIO_BLK_T_IN, 0, &[(buf, 2048, W), (buf + 2048, 2048, W)]);
    h.run(1);
    assert_eq!(h.byte(st), IOERR);
    // done (short) bytes + status.
    assert_eq!(h.used(0).1, 4 * 512 + 100 + 1);
    assert_eq!(h.bytes(buf, 4 * 512 + 100), pattern(4 * 512 + 100));
    assert_eq!(h.block.metrics().snapshot().io_errors, 1);
}

#[test]
fn back_pressure_many_operations_all_complete() {
    let m = mem();
    let img = TempImage::new(2048 * SECTOR);
    // 64 chains of 3 descriptors need a 256-entry table.
    let mut h = Harness::with(&m, cfg(&img), 256, false);
    // 64 write-zeroes requests x 16 ranges = 1024 fallocates: more than
    // the ring's 256 submission and 512 in-flight slots.
    let mut statuses = vec![];
    for r in 0..64u64 {
        let list: Vec<[u8; 16]> = (0..16u64).map(|i| range(r * 32 + i * 2, 1, 0)).collect();
        let (a, l) = ranges_buf(&mut h, &list);
        let hd = h.header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
        let st = h.alloc(1);
        h.chain(&[(hd, 16, R), (a, l, R), (st, 1, W)]);
        statuses.push(st);
    }
    h.run(64);
    assert!(statuses.iter().all(|&s| h.byte(s) == OK));
    let file = img.contents();
    let orig = pattern(2048 * SECTOR);
    for s in 0..2048usize {
        let zeroed = s < 64 * 32 && s % 2 == 0;
        let got = &file[s * SECTOR..(s + 1) * SECTOR];
        if zeroed {
            assert!(got.iter().all(|&b| b == 0), "sector {s}");
        } else {
            assert_eq!(got, &orig[s * SECTOR..(s + 1) * SECTOR], "sector {s}");
        }
    }
    assert!(h.block.metrics().snapshot().engine_busy > 0);
}

#[test]
fn more_chains_than_slots_are_throttled_then_served() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::with(&m, cfg(&img), 16, false);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    let hd = h.header(VIRTIO_BLK_T_IN, 5);
    // One chain, made available 16 times (the driver may reuse a head
    // only after it is used, but the device must survive it anyway).
    let head = h.chain(&[(hd, 16, R), (buf, 512, W), (st, 1, W)]);
    for _ in 1..16 {
        h.publish(head);
    }
    h.block.handler(0).process_queue();
    // A hostile driver republishes the same chain while all 16 are in
    // flight: the device has no free slot and must come back for them.
    for _ in 0..16 {
        h.publish(head);
    }
    h.block.handler(0).process_queue();
    h.run(32);
    assert_eq!(h.byte(st), OK);
    assert_eq!(h.block.metrics().snapshot().read_ops, 32);
}

fn used_event_addr(h: &Harness) -> u64 {
    h.rings.avail + 4 + 2 * u64::from(h.qsize)
}

fn avail_event(h: &Harness) -> u16 {
    h.mem
        .read_obj(GuestAddress(h.rings.used + 4 + 8 * u64::from(h.qsize)))
        .unwrap()
}

#[test]
fn event_idx_suppresses_interrupts_until_used_event() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::with(&m, cfg(&img), 64, true);
    let buf = h.alloc(512);
    let irqs = |h: &Harness| h.irq.queue.load(Ordering::SeqCst);

    // used_event = 0: interrupt when the first buffer is used.
    h.mem
        .write_obj(0u16, GuestAddress(used_event_addr(&h)))
        .unwrap();
    h.request(VIRTIO_BLK_T_IN, 0, &[(buf, 512, W)]);
    h.run(1);
    assert_eq!(irqs(&h), 1);
    // The device asked to be notified at the next avail index.
    assert_eq!(avail_event(&h), 1);

    // used_event = 10: the next two completions stay silent.
    h.mem
        .write_obj(10u16, GuestAddress(used_event_addr(&h)))
        .unwrap();
    h.request(VIRTIO_BLK_T_IN, 1, &[(buf, 512, W)]);
    h.request(VIRTIO_BLK_T_IN, 2, &[(buf, 512, W)]);
    h.run(3);
    assert_eq!(irqs(&h), 1);
    assert_eq!(avail_event(&h), 3);

    // used_event = 3: the 4th used buffer crosses it.
    h.mem
        .write_obj(3u16, GuestAddress(used_event_addr(&h)))
        .unwrap();
    h.request(VIRTIO_BLK_T_IN, 3, &[(buf, 512, W)]);
    h.run(4);
    assert_eq!(irqs(&h), 2);
}

#[test]
fn without_event_idx_every_completion_batch_interrupts() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::with(&m, cfg(&img), 64, false);
    let buf = h.alloc(512);
    for i in 0..3u16 {
        h.request(VIRTIO_BLK_T_IN, u64::from(i), &[(buf, 512, W)]);
        h.run(i + 1);
        assert_eq!(h.irq.queue.load(Ordering::SeqCst), u32::from(i) + 1);
    }
}

// ------------------------------------------------------------- event loop

/// The real path: activate() on another thread (like a vCPU), a guest
/// notification through the queue's eventfd, the event loop running
/// the device, io_uring completing, the used ring updated; then reset and
/// re-activation.
#[test]
fn event_loop_end_to_end_through_activate_notify_and_reset() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let block = Arc::new(Mutex::new(Block::new(cfg(&img)).unwrap()));
    let mut em: EventManager<Arc<Mutex<Block>>> = EventManager::new().unwrap();
    em.add_subscriber(block.clone());

    let irq = Arc::new(FakeInterrupt::default());
    let round = |em: &mut EventManager<Arc<Mutex<Block>>>, sector: u64| {
        m.write_slice(&[0u8; 0x1000], GuestAddress(0)).unwrap();
        let vq = MockSplitQueue::create(&m, GuestAddress(0), 16);
        let (queue, rings) = make_queue(0, 16);
        m.write_slice(&[0u8; 0x100], GuestAddress(rings.avail))
            .unwrap();
        let notify = EventFd::new(EFD_NONBLOCK).unwrap();
        let kick = notify.try_clone().unwrap();
        let (b, mm, i) = (block.clone(), m.clone(), irq.clone());
        std::thread::spawn(move || {
            b.lock()
                .unwrap()
                .activate(
                    mm,
                    FEATURE_VERSION_1 | FEATURE_RING_EVENT_IDX,
                    vec![ActivatedQueue {
                        index: 0,
                        queue,
                        notify,
                    }],
                    i,
                )
                .unwrap();
        })
        .join()
        .unwrap();

        // Guest: one IN request, then notify.
        let (hd, buf, st) = (DATA_START, DATA_START + 0x1000, DATA_START + 0x2000);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&VIRTIO_BLK_T_IN.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        m.write_slice(&h, GuestAddress(hd)).unwrap();
        m.write_obj(0xffu8, GuestAddress(st)).unwrap();
        let descs = [
            RawDescriptor::from(SplitDescriptor::new(hd, 16, VRING_DESC_F_NEXT as u16, 1)),
            RawDescriptor::from(SplitDescriptor::new(
                buf,
                1024,
                W | VRING_DESC_F_NEXT as u16,
                2,
            )),
            RawDescriptor::from(SplitDescriptor::new(st, 1, W, 0)),
        ];
        vq.add_desc_chains(&descs, 0).unwrap();
        kick.write(1).unwrap();

        let deadline = Instant::now() + Duration::from_secs(5);
        let used_idx = || m.read_obj::<u16>(GuestAddress(rings.used + 2)).unwrap();
        while used_idx() != 1 {
            assert!(
                Instant::now() < deadline,
                "event loop did not complete the request"
            );
            em.run_with_timeout(100).unwrap();
        }
        assert_eq!(m.read_obj::<u8>(GuestAddress(st)).unwrap(), OK);
        let mut got = vec![0u8; 1024];
        m.read_slice(&mut got, GuestAddress(buf)).unwrap();
        let off = sector as usize * SECTOR;
        assert_eq!(got, &pattern(64 * SECTOR)[off..off + 1024]);

        // Driver reset from a vCPU thread: the notify fd comes back.
        let fds = block.lock().unwrap().reset().unwrap();
        assert_eq!(fds.len(), 1);
        // Let the loop unregister the stale watch.
        em.run_with_timeout(10).unwrap();
        kick
    };
    let k1 = round(&mut em, 2);
    // A notification after reset must not reach the device (nor spin).
    k1.write(1).unwrap();
    assert_eq!(em.run_with_timeout(10).unwrap(), 0);
    // Activate again, like a guest driver reload.
    round(&mut em, 9);
    assert!(irq.queue.load(Ordering::SeqCst) >= 2);
    assert_eq!(block.lock().unwrap().metrics().snapshot().read_ops, 2);
}

/// Rough per-request cost of the whole device path (parse, io_uring
/// round trip from the page cache, used ring). Not a unit test:
/// `cargo test --release bench_ -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark (prints a per-request cost), not pass/fail: run with --release -- --ignored --nocapture"]
fn bench_4k_reads_from_page_cache() {
    let m = mem();
    let img = TempImage::new(64 << 20);
    let mut h = Harness::with(&m, cfg(&img), 256, true);
    const DEPTH: usize = 64;
    let reqs: Vec<(u64, u64, u64)> = (0..DEPTH)
        .map(|_| (h.header(VIRTIO_BLK_T_IN, 0), h.alloc(4096), h.alloc(1)))
        .collect();
    let rounds = 300u64;
    let start = Instant::now();
    let mut total = 0u16;
    let mut x = 12345u64;
    for _ in 0..rounds {
        for &(hd, buf, st) in &reqs {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let sector = ((x >> 33) % ((64 << 20) / 512 - 8)) & !7;
            h.fill(hd + 8, &sector.to_le_bytes());
            h.chain(&[(hd, 16, R), (buf, 4096, W), (st, 1, W)]);
        }
        total = total.wrapping_add(DEPTH as u16);
        h.run(total);
    }
    let n = rounds * DEPTH as u64;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{n} 4 KiB reads, queue depth {DEPTH}: {:.0} IOPS, {:.1} us/request, {} interrupts",
        n as f64 / secs,
        secs * 1e6 / n as f64,
        h.irq.queue.load(Ordering::SeqCst)
    );
    assert_eq!(h.block.metrics().snapshot().read_ops, n);
}
