//! virtio-net at the queue level: split rings laid out by hand in real
//! guest memory (the test plays the driver), a datagram socket pair
//! standing in for the TAP (the emulated-host scenarios use a real TAP), and
//! link services that take and answer frames.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::frames::finish_checksum;
use super::tap::{FrameIo, TapError, VNET_HDR_LEN};
use super::{LinkServices, Net};
use crate::devices::virtio::{ActivatedQueue, FEATURE_VERSION_1, VirtioDevice, VirtioInterrupt};
use crate::memory::GuestMemoryMmap;

const QSIZE: u16 = 16;
const RXQ: u64 = 0x0;
const TXQ: u64 = 0x4000;
const BUFFERS: u64 = 0x10000;
const MEM_SIZE: usize = 1 << 20;
const VRING_DESC_F_NEXT: u16 = 1;
const VRING_DESC_F_WRITE: u16 = 2;

/// A datagram socket pair: the device's end and the "host" end.
struct PairIo {
    dev: UnixDatagram,
    offloads: Mutex<Vec<u32>>,
}

impl AsRawFd for PairIo {
    fn as_raw_fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }
}

impl FrameIo for PairIo {
    fn read_frame(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.recv(buf)
    }
    fn write_frame(&self, frame: &[u8]) -> io::Result<usize> {
        self.dev.send(frame)
    }
    fn set_offload(&self, flags: u32) -> Result<(), TapError> {
        self.offloads.lock().unwrap().push(flags);
        Ok(())
    }
}

#[derive(Default)]
struct CountingIrq(Mutex<Vec<u16>>);

impl VirtioInterrupt for CountingIrq {
    fn notify_queue(&self, queue_index: u16) -> io::Result<()> {
        self.0.lock().unwrap().push(queue_index);
        Ok(())
    }
    fn notify_config(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Takes frames whose destination MAC is 0x0e:...; answers each with the
/// same frame, source and destination swapped.
#[derive(Default)]
struct Echo {
    pending: Vec<Vec<u8>>,
}

const LOCAL_MAC: [u8; 6] = [0x0e, 0, 0, 0, 0, 1];

impl LinkServices for Echo {
    fn take_frame(&mut self, frame: &[u8], _now: Instant) -> bool {
        if frame[..6] != LOCAL_MAC {
            return false;
        }
        let mut reply = frame.to_vec();
        reply[..6].copy_from_slice(&frame[6..12]);
        reply[6..12].copy_from_slice(&LOCAL_MAC);
        self.pending.push(reply);
        true
    }
    fn next_frame(&mut self, _now: Instant) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| self.pending.remove(0))
    }
    fn poll_delay(&mut self, _now: Instant) -> Option<Duration> {
        None
    }
}

/// A split ring at `base`: descriptors, then avail at +0x1000, used at
/// +0x2000.
struct Ring {
    base: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl Ring {
    fn queue(base: u64) -> Queue {
        let mut q = Queue::new(QSIZE).unwrap();
        q.set_size(QSIZE);
        q.set_ready(true);
        q.try_set_desc_table_address(GuestAddress(base)).unwrap();
        q.try_set_avail_ring_address(GuestAddress(base + 0x1000))
            .unwrap();
        q.try_set_used_ring_address(GuestAddress(base + 0x2000))
            .unwrap();
        q
    }

    fn desc(&self, mem: &GuestMemoryMmap, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.base + 16 * u64::from(i);
        mem.write_obj(addr, GuestAddress(at)).unwrap();
        mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        mem.write_obj(next, GuestAddress(at + 14)).unwrap();
    }

    /// Adds a chain of (addr, len, device-writable) buffers; returns its head.
    fn add(&mut self, mem: &GuestMemoryMmap, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (k, &(addr, len, writable)) in bufs.iter().enumerate() {
            let i = self.next_desc;
            let last = k + 1 == bufs.len();
            let mut flags = if writable { VRING_DESC_F_WRITE } else { 0 };
            if !last {
                flags |= VRING_DESC_F_NEXT;
            }
            self.desc(mem, i, addr, len, flags, (i + 1) % QSIZE);
            self.next_desc = (self.next_desc + 1) % QSIZE;
        }
        self.publish(mem, head);
        head
    }

    fn publish(&mut self, mem: &GuestMemoryMmap, head: u16) {
        let slot = self.base + 0x1000 + 4 + 2 * u64::from(self.avail_idx % QSIZE);
        mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_obj(self.avail_idx, GuestAddress(self.base + 0x1000 + 2))
            .unwrap();
    }

    fn used_idx(&self, mem: &GuestMemoryMmap) -> u16 {
        mem.read_obj(GuestAddress(self.base + 0x2000 + 2)).unwrap()
    }

    /// (head, len) of used entry `i`.
    fn used(&self, mem: &GuestMemoryMmap, i: u16) -> (u32, u32) {
        let at = self.base + 0x2000 + 4 + 8 * u64::from(i % QSIZE);
        (
            mem.read_obj(GuestAddress(at)).unwrap(),
            mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }
}

struct Harness {
    mem: GuestMemoryMmap,
    net: Net,
    host: UnixDatagram,
    rx: Ring,
    tx: Ring,
    irq: Arc<CountingIrq>,
    io: Arc<PairIo>,
}

fn harness(features: u64) -> Harness {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let (dev, host) = UnixDatagram::pair().unwrap();
    dev.set_nonblocking(true).unwrap();
    host.set_nonblocking(true).unwrap();
    let io = Arc::new(PairIo {
        dev,
        offloads: Mutex::new(Vec::new()),
    });
    let mac = [0x02, 0, 0, 0, 0, 0x0a];
    let mut net = Net::new(mac, io.clone(), Box::new(Echo::default())).unwrap();
    let irq = Arc::new(CountingIrq::default());
    let queues = [RXQ, TXQ]
        .iter()
        .enumerate()
        .map(|(index, &base)| ActivatedQueue {
            index: index as u16,
            queue: Ring::queue(base),
            notify: EventFd::new(EFD_NONBLOCK).unwrap(),
        })
        .collect();
    net.activate(
        mem.clone(),
        FEATURE_VERSION_1 | features,
        queues,
        irq.clone(),
    )
    .unwrap();
    Harness {
        mem,
        net,
        host,
        rx: Ring {
            base: RXQ,
            next_desc: 0,
            avail_idx: 0,
        },
        tx: Ring {
            base: TXQ,
            next_desc: 0,
            avail_idx: 0,
        },
        irq,
        io,
    }
}

/// A vnet header (no offloads) and an Ethernet frame of `len` bytes to `dst`.
fn packet(dst: [u8; 6], len: usize) -> Vec<u8> {
    let mut p = vec![0u8; VNET_HDR_LEN];
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00]);
    p.extend((0..len - 14).map(|i| (i % 251) as u8));
    p
}

const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

#[test]
fn tx_gathers_a_split_chain_to_the_host() {
    let mut h = harness(0);
    let p = packet(HOST_MAC, 200);
    h.mem.write_slice(&p[..30], GuestAddress(BUFFERS)).unwrap();
    h.mem
        .write_slice(&p[30..], GuestAddress(BUFFERS + 0x1000))
        .unwrap();
    h.tx.add(
        &h.mem,
        &[
            (BUFFERS, 30, false),
            (BUFFERS + 0x1000, (p.len() - 30) as u32, false),
        ],
    );
    h.net.process_tx();
    let mut got = vec![0u8; 4096];
    let n = h.host.recv(&mut got).unwrap();
    assert_eq!(&got[..n], &p[..]);
    assert_eq!(h.tx.used_idx(&h.mem), 1);
    assert_eq!(h.tx.used(&h.mem, 0), (0, 0));
    assert!(h.irq.0.lock().unwrap().contains(&1));
}

#[test]
fn hostile_tx_chains_are_dropped_and_returned() {
    let mut h = harness(0);
    let p = packet(HOST_MAC, 100);
    h.mem.write_slice(&p, GuestAddress(BUFFERS)).unwrap();
    // A device-writable descriptor, an address outside memory, a chain too
    // short for a header, one longer than any frame (a descriptor of 4 GiB).
    h.tx.add(&h.mem, &[(BUFFERS, p.len() as u32, true)]);
    h.tx.add(&h.mem, &[(MEM_SIZE as u64 * 4, p.len() as u32, false)]);
    h.tx.add(&h.mem, &[(BUFFERS, 10, false)]);
    h.tx.add(&h.mem, &[(BUFFERS, u32::MAX, false)]);
    // A chain whose next index points back at itself (a loop).
    let head = h.tx.next_desc;
    h.tx.desc(&h.mem, head, BUFFERS, 64, VRING_DESC_F_NEXT, head);
    h.tx.next_desc += 1;
    h.tx.publish(&h.mem, head);
    // A head index beyond the queue.
    h.tx.publish(&h.mem, QSIZE + 7);
    h.net.process_tx();
    // Only the loop reached the host: virtio-queue ends a chain after
    // queue-size descriptors, so it is one bounded frame (16 x 64 bytes),
    // no different from any frame the guest may send.
    let mut buf = [0u8; 4096];
    assert_eq!(h.host.recv(&mut buf).unwrap(), 16 * 64);
    assert!(
        h.host.recv(&mut buf).is_err(),
        "nothing else reached the host"
    );
    assert!(h.tx.used_idx(&h.mem) >= 5);
    let m = h.net.metrics();
    assert!(m.invalid_chains.load(std::sync::atomic::Ordering::Relaxed) >= 4);
    // The queue still works afterwards.
    h.tx.add(&h.mem, &[(BUFFERS, p.len() as u32, false)]);
    h.net.process_tx();
    assert_eq!(h.host.recv(&mut buf).unwrap(), p.len());
}

#[test]
fn rx_spans_chains_with_mergeable_buffers() {
    let mut h = harness(1 << VIRTIO_NET_F_MRG_RXBUF);
    for i in 0..3 {
        h.rx.add(&h.mem, &[(BUFFERS + i * 0x1000, 2048, true)]);
    }
    let p = packet([0x02, 0, 0, 0, 0, 0x0a], 3000);
    h.host.send(&p).unwrap();
    h.net.process_rx();
    assert_eq!(h.rx.used_idx(&h.mem), 2);
    let (a, b) = (h.rx.used(&h.mem, 0), h.rx.used(&h.mem, 1));
    assert_eq!((a.1 + b.1) as usize, p.len());
    let mut got = vec![0u8; 4096];
    h.mem
        .read_slice(&mut got[..2048], GuestAddress(BUFFERS))
        .unwrap();
    h.mem
        .read_slice(&mut got[2048..p.len()], GuestAddress(BUFFERS + 0x1000))
        .unwrap();
    // num_buffers = 2 in the header; the rest is the frame as sent.
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 2);
    assert_eq!(&got[VNET_HDR_LEN..p.len()], &p[VNET_HDR_LEN..]);
}

#[test]
fn rx_without_mergeable_buffers_drops_what_does_not_fit() {
    let mut h = harness(0);
    h.rx.add(&h.mem, &[(BUFFERS, 1024, true)]);
    h.rx.add(&h.mem, &[(BUFFERS + 0x1000, 4096, true)]);
    h.host.send(&packet(HOST_MAC, 2000)).unwrap();
    h.host.send(&packet(HOST_MAC, 500)).unwrap();
    h.net.process_rx();
    // The first chain came back empty (frame dropped), the second carries
    // the next frame.
    assert_eq!(h.rx.used(&h.mem, 0), (0, 0));
    assert_eq!(h.rx.used(&h.mem, 1), (1, 500 + VNET_HDR_LEN as u32));
}

#[test]
fn rx_waits_for_buffers_then_delivers() {
    let mut h = harness(1 << VIRTIO_NET_F_MRG_RXBUF);
    let p = packet(HOST_MAC, 100);
    h.host.send(&p).unwrap();
    h.net.process_rx();
    assert_eq!(h.rx.used_idx(&h.mem), 0);
    h.rx.add(&h.mem, &[(BUFFERS, 2048, true)]);
    h.net.process_rx();
    assert_eq!(h.rx.used_idx(&h.mem), 1);
    assert_eq!(h.rx.used(&h.mem, 0).1 as usize, p.len());
}

#[test]
fn link_services_take_frames_and_answer_through_rx() {
    let mut h = harness(1 << VIRTIO_NET_F_MRG_RXBUF);
    h.rx.add(&h.mem, &[(BUFFERS + 0x8000, 2048, true)]);
    let p = packet(LOCAL_MAC, 80);
    h.mem.write_slice(&p, GuestAddress(BUFFERS)).unwrap();
    h.tx.add(&h.mem, &[(BUFFERS, p.len() as u32, false)]);
    h.net.process_tx();
    h.net.process_rx();
    let mut buf = [0u8; 256];
    assert!(
        h.host.recv(&mut buf).is_err(),
        "a taken frame never reaches the host"
    );
    assert_eq!(h.rx.used_idx(&h.mem), 1);
    let mut got = vec![0u8; p.len()];
    h.mem
        .read_slice(&mut got, GuestAddress(BUFFERS + 0x8000))
        .unwrap();
    assert_eq!(
        &got[VNET_HDR_LEN..VNET_HDR_LEN + 6],
        &p[VNET_HDR_LEN + 6..VNET_HDR_LEN + 12]
    );
    assert_eq!(&got[VNET_HDR_LEN + 6..VNET_HDR_LEN + 12], &LOCAL_MAC);
}

#[test]
fn offloads_follow_the_guests_features_and_config_has_the_mac() {
    let h = harness(
        (1 << VIRTIO_NET_F_CSUM) | (1 << VIRTIO_NET_F_GUEST_CSUM) | (1 << VIRTIO_NET_F_MAC),
    );
    assert_eq!(*h.io.offloads.lock().unwrap(), vec![super::tap::TUN_F_CSUM]);
    let mut mac = [0u8; 8];
    h.net.read_config(0, &mut mac);
    assert_eq!(mac, [0x02, 0, 0, 0, 0, 0x0a, 1, 0]);
    let mut beyond = [0xffu8; 4];
    h.net.read_config(u64::MAX - 1, &mut beyond);
    assert_eq!(beyond, [0; 4]);
}

#[test]
fn partial_checksums_are_completed_like_the_kernel_would() {
    // UDP over IPv4 with the pseudo-header sum in the checksum field, as a
    // guest using checksum offload leaves it.
    let mut frame = vec![0u8; 14 + 20 + 8 + 4];
    let ip = 14;
    frame[ip] = 0x45;
    frame[ip + 9] = 17;
    frame[ip + 12..ip + 16].copy_from_slice(&[10, 0, 0, 1]);
    frame[ip + 16..ip + 20].copy_from_slice(&[10, 0, 0, 2]);
    let udp = ip + 20;
    frame[udp..udp + 2].copy_from_slice(&1234u16.to_be_bytes());
    frame[udp + 2..udp + 4].copy_from_slice(&80u16.to_be_bytes());
    frame[udp + 4..udp + 6].copy_from_slice(&12u16.to_be_bytes());
    frame[udp + 8..].copy_from_slice(b"ping");
    // Pseudo-header: src + dst + proto + length.
    let pseudo: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 12;
    let folded = ((pseudo & 0xffff) + (pseudo >> 16)) as u16;
    frame[udp + 6..udp + 8].copy_from_slice(&folded.to_be_bytes());
    assert!(finish_checksum(&mut frame, udp, 6));
    // The whole UDP segment plus pseudo-header now sums to 0xffff.
    let mut sum: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 12;
    for c in frame[udp..].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(sum, 0xffff);
    // Offsets outside the frame are refused, never a panic.
    assert!(!finish_checksum(&mut frame, 60, 0));
    assert!(!finish_checksum(&mut frame, 40, 20));
    assert!(!finish_checksum(&mut frame, usize::MAX, 2));
}

#[test]
fn a_readable_rx_descriptor_returns_the_chain_empty() {
    let mut h = harness(1 << VIRTIO_NET_F_MRG_RXBUF);
    h.rx.add(&h.mem, &[(BUFFERS, 2048, false)]);
    h.rx.add(&h.mem, &[(BUFFERS + 0x1000, 2048, true)]);
    h.host.send(&packet(HOST_MAC, 100)).unwrap();
    h.host.send(&packet(HOST_MAC, 120)).unwrap();
    h.net.process_rx();
    assert_eq!(h.rx.used(&h.mem, 0), (0, 0));
    assert_eq!(h.rx.used(&h.mem, 1), (1, 120 + VNET_HDR_LEN as u32));
}
