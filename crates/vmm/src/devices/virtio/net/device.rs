//! `Net`: the virtio-net device. Everything runs on the event-loop thread:
//! queue notifications (ioeventfds), TAP readiness (edge-triggered) and the
//! link services' timer.
//!
//! RX (queue 0): frames from the link services first, then from the TAP,
//! each copied into one chain, or into as many chains as it needs with
//! VIRTIO_NET_F_MRG_RXBUF. A frame that finds no buffers waits (the TAP is
//! not read further) until the guest adds some.
//! TX (queue 1): each chain is gathered into one buffer, offered to the
//! link services, and written to the TAP when they do not take it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::error;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use thiserror::Error;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::timerfd::TimerFd;

use super::frames::{self, TxOffload};
use super::tap::{FrameIo, TUN_F_CSUM, TUN_F_TSO_ECN, TUN_F_TSO4, TUN_F_TSO6, VNET_HDR_LEN};
use super::{LinkServices, MAX_FRAME_LEN, MAX_LOCAL_FRAMES, QUEUE_SIZE, RX_QUEUE, TX_QUEUE};
use crate::devices::virtio::{
    ActivateError, ActivatedQueue, FEATURE_RING_EVENT_IDX, FEATURE_VERSION_1, TYPE_NET,
    VirtioDevice, VirtioInterrupt, check_queues,
};
use crate::memory::GuestMemoryMmap;

const EVENT_CTRL: u32 = 0;
const EVENT_RX: u32 = 1;
const EVENT_TX: u32 = 2;
const EVENT_TAP: u32 = 3;
const EVENT_TIMER: u32 = 4;
/// Chains one frame may span with MRG_RXBUF (a 64 KiB frame in 4 KiB
/// buffers needs 17).
const MAX_RX_CHAINS: usize = 64;
/// Config space: mac[6], status le16.
const CONFIG_LEN: usize = 8;

#[derive(Debug, Error)]
pub enum NetError {
    #[error("virtio-net: cannot create an eventfd/timerfd: {0}")]
    Fd(io::Error),
}

/// Counters, readable from any thread.
#[derive(Debug, Default)]
pub struct NetMetrics {
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_frames: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Frames the link services took (never sent to the host).
    pub tx_local: AtomicU64,
    /// Frames the link services sent the guest.
    pub rx_local: AtomicU64,
    /// Frames dropped: bad chains, too large, no room, TAP errors.
    pub rx_dropped: AtomicU64,
    pub tx_dropped: AtomicU64,
    pub invalid_chains: AtomicU64,
}

fn inc(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

struct Active {
    mem: GuestMemoryMmap,
    rxq: Queue,
    txq: Queue,
    notify: Vec<EventFd>,
    watch: Vec<EventFd>,
    interrupt: Arc<dyn VirtioInterrupt>,
    mrg_rxbuf: bool,
}

pub struct Net {
    mac: [u8; 6],
    tap: Arc<dyn FrameIo>,
    services: Box<dyn LinkServices>,
    features: u64,
    acked_features: u64,
    queue_sizes: [u16; 2],
    active: Option<Active>,
    broken: bool,
    ctrl_evt: EventFd,
    timer: TimerFd,
    registered: bool,
    stale: Vec<EventFd>,
    metrics: Arc<NetMetrics>,
    /// TX scratch: vnet header + frame.
    tx_buf: Vec<u8>,
    /// The frame waiting for RX buffers (vnet header + frame), `rx_len`
    /// bytes of it; 0 = none.
    rx_buf: Vec<u8>,
    rx_len: usize,
    /// Edge-triggered: the TAP may have frames until a read says EAGAIN.
    tap_readable: bool,
    local: VecDeque<Vec<u8>>,
    /// Scratch for RX chains: (head, used bytes) and their buffers.
    rx_heads: Vec<(u16, usize)>,
    rx_buffers: Vec<Vec<(GuestAddress, u32)>>,
}

impl Net {
    pub fn new(
        mac: [u8; 6],
        tap: Arc<dyn FrameIo>,
        services: Box<dyn LinkServices>,
    ) -> Result<Self, NetError> {
        let features = FEATURE_VERSION_1
            | FEATURE_RING_EVENT_IDX
            | (1 << VIRTIO_NET_F_MAC)
            | (1 << VIRTIO_NET_F_STATUS)
            | (1 << VIRTIO_NET_F_MRG_RXBUF)
            | (1 << VIRTIO_NET_F_CSUM)
            | (1 << VIRTIO_NET_F_HOST_TSO4)
            | (1 << VIRTIO_NET_F_HOST_TSO6)
            | (1 << VIRTIO_NET_F_HOST_ECN)
            | (1 << VIRTIO_NET_F_GUEST_CSUM)
            | (1 << VIRTIO_NET_F_GUEST_TSO4)
            | (1 << VIRTIO_NET_F_GUEST_TSO6)
            | (1 << VIRTIO_NET_F_GUEST_ECN);
        Ok(Net {
            mac,
            tap,
            services,
            features,
            acked_features: 0,
            queue_sizes: [QUEUE_SIZE; 2],
            active: None,
            broken: false,
            ctrl_evt: EventFd::new(EFD_NONBLOCK).map_err(NetError::Fd)?,
            timer: TimerFd::new()
                .map_err(|e| NetError::Fd(io::Error::from_raw_os_error(e.errno())))?,
            registered: false,
            stale: Vec::new(),
            metrics: Arc::new(NetMetrics::default()),
            tx_buf: vec![0; VNET_HDR_LEN + MAX_FRAME_LEN],
            rx_buf: vec![0; VNET_HDR_LEN + MAX_FRAME_LEN],
            rx_len: 0,
            tap_readable: true,
            local: VecDeque::new(),
            rx_heads: Vec::with_capacity(MAX_RX_CHAINS),
            rx_buffers: (0..MAX_RX_CHAINS).map(|_| Vec::new()).collect(),
        })
    }

    pub fn metrics(&self) -> Arc<NetMetrics> {
        self.metrics.clone()
    }

    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// TAP offloads matching what the guest accepts.
    fn tap_offloads(acked: u64) -> u32 {
        let has = |bit: u32| acked & (1 << bit) != 0;
        let mut flags = 0;
        if has(VIRTIO_NET_F_GUEST_CSUM) {
            flags |= TUN_F_CSUM;
            if has(VIRTIO_NET_F_GUEST_TSO4) {
                flags |= TUN_F_TSO4;
            }
            if has(VIRTIO_NET_F_GUEST_TSO6) {
                flags |= TUN_F_TSO6;
            }
            if has(VIRTIO_NET_F_GUEST_ECN) {
                flags |= TUN_F_TSO_ECN;
            }
        }
        flags
    }

    // ---- TX ----

    pub(super) fn process_tx(&mut self) {
        let now = Instant::now();
        let Some(aq) = self.active.as_mut() else {
            return;
        };
        let mut used = false;
        let result: Result<(), virtio_queue::Error> = (|| {
            loop {
                aq.txq.disable_notification(&aq.mem)?;
                while let Some(chain) = aq.txq.iter(&aq.mem)?.next() {
                    let head = chain.head_index();
                    match frames::gather_tx(chain, &aq.mem, &mut self.tx_buf) {
                        Ok(len) => {
                            send_frame(
                                &mut self.tx_buf[..len],
                                self.tap.as_ref(),
                                self.services.as_mut(),
                                &self.metrics,
                                now,
                            );
                        }
                        Err(_) => {
                            inc(&self.metrics.invalid_chains, 1);
                            inc(&self.metrics.tx_dropped, 1);
                        }
                    }
                    add_used(&mut aq.txq, &aq.mem, head, 0)?;
                    used = true;
                }
                if !aq.txq.enable_notification(&aq.mem)? {
                    break;
                }
            }
            if used && aq.txq.needs_notification(&aq.mem)? {
                let _ = aq.interrupt.notify_queue(TX_QUEUE as u16);
            }
            Ok(())
        })();
        self.check(result);
        self.collect_local(now);
    }

    // ---- link services ----

    /// Moves the services' frames to the local RX queue and re-arms the
    /// timer for their next deadline.
    fn collect_local(&mut self, now: Instant) {
        while let Some(frame) = self.services.next_frame(now) {
            if self.local.len() >= MAX_LOCAL_FRAMES || frame.len() > MAX_FRAME_LEN {
                inc(&self.metrics.rx_dropped, 1);
                continue;
            }
            self.local.push_back(frame);
        }
        let delay = self.services.poll_delay(now);
        let _ = match delay {
            // A zero timer would disarm it: at least 1 ms.
            Some(d) => self
                .timer
                .reset(d.max(std::time::Duration::from_millis(1)), None),
            None => self.timer.clear(),
        };
    }

    // ---- RX ----

    /// Fills `rx_buf` with the next frame for the guest. False: none.
    fn next_rx_frame(&mut self) -> bool {
        if let Some(frame) = self.local.pop_front() {
            self.rx_buf[..VNET_HDR_LEN].fill(0);
            self.rx_buf[VNET_HDR_LEN..VNET_HDR_LEN + frame.len()].copy_from_slice(&frame);
            self.rx_len = VNET_HDR_LEN + frame.len();
            inc(&self.metrics.rx_local, 1);
            return true;
        }
        while self.tap_readable {
            match self.tap.read_frame(&mut self.rx_buf) {
                Ok(n) if n > VNET_HDR_LEN => {
                    self.rx_len = n;
                    return true;
                }
                Ok(_) => inc(&self.metrics.rx_dropped, 1),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.tap_readable = false,
            }
        }
        false
    }

    pub(super) fn process_rx(&mut self) {
        if self.active.is_none() || self.broken {
            // Link down: the host's frames are dropped, not queued.
            self.drain_tap_inactive();
            return;
        }
        let mut used = false;
        let result = loop {
            if self.rx_len == 0 && !self.next_rx_frame() {
                break Ok(());
            }
            match self.deliver() {
                Ok(Some(delivered)) => {
                    used = true;
                    if delivered {
                        inc(&self.metrics.rx_frames, 1);
                        inc(&self.metrics.rx_bytes, (self.rx_len - VNET_HDR_LEN) as u64);
                    } else {
                        inc(&self.metrics.rx_dropped, 1);
                    }
                    self.rx_len = 0;
                }
                // No buffers: the frame waits for the guest's next notify.
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let result = result.and_then(|()| {
            let aq = self
                .active
                .as_mut()
                .ok_or(virtio_queue::Error::QueueNotReady)?;
            if used && aq.rxq.needs_notification(&aq.mem)? {
                let _ = aq.interrupt.notify_queue(RX_QUEUE as u16);
            }
            Ok(())
        });
        self.check(result);
    }

    /// Puts the frame in `rx_buf[..rx_len]` into RX chains. Ok(Some(true))
    /// delivered, Ok(Some(false)) dropped (the chain returned empty),
    /// Ok(None) not enough buffers yet (nothing consumed).
    fn deliver(&mut self) -> Result<Option<bool>, virtio_queue::Error> {
        let aq = self
            .active
            .as_mut()
            .ok_or(virtio_queue::Error::QueueNotReady)?;
        let len = self.rx_len;
        self.rx_heads.clear();
        let mut capacity = 0usize;
        // Take chains until the frame fits (one chain without MRG_RXBUF).
        while capacity < len {
            let n = self.rx_heads.len();
            let max = if aq.mrg_rxbuf { MAX_RX_CHAINS } else { 1 };
            if n == max {
                break;
            }
            let Some(chain) = aq.rxq.iter(&aq.mem)?.next() else {
                // Give the chains back: the frame waits for more.
                for _ in 0..n {
                    aq.rxq.go_to_previous_position();
                }
                if !aq.rxq.enable_notification(&aq.mem)? {
                    // The guest added buffers meanwhile: nothing is lost
                    // by asking again on the next event.
                }
                return Ok(None);
            };
            let (head, cap) = frames::collect_rx(chain, &mut self.rx_buffers[n]);
            match cap {
                Some(c) if c > 0 => {
                    capacity += c;
                    self.rx_heads.push((head, 0));
                }
                _ => {
                    // Unusable chain: return it empty, drop the frame.
                    inc(&self.metrics.invalid_chains, 1);
                    for &(h, _) in &self.rx_heads {
                        add_used(&mut aq.rxq, &aq.mem, h, 0)?;
                    }
                    add_used(&mut aq.rxq, &aq.mem, head, 0)?;
                    return Ok(Some(false));
                }
            }
        }
        if capacity < len {
            // The frame is larger than the chains the guest may give us.
            for &(h, _) in &self.rx_heads {
                add_used(&mut aq.rxq, &aq.mem, h, 0)?;
            }
            return Ok(Some(false));
        }
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr.copy_from_slice(&self.rx_buf[..VNET_HDR_LEN]);
        frames::set_num_buffers(&mut hdr, self.rx_heads.len() as u16);
        self.rx_buf[..VNET_HDR_LEN].copy_from_slice(&hdr);
        let mut offset = 0usize;
        for (i, entry) in self.rx_heads.iter_mut().enumerate() {
            let rest = &self.rx_buf[offset..len];
            let n = frames::write_rx(&self.rx_buffers[i], &aq.mem, 0, rest);
            entry.1 = n;
            offset += n;
            if offset == len {
                break;
            }
        }
        let ok = offset == len;
        for &(h, n) in &self.rx_heads {
            add_used(&mut aq.rxq, &aq.mem, h, if ok { n as u32 } else { 0 })?;
        }
        Ok(Some(ok))
    }

    fn drain_tap_inactive(&mut self) {
        while self.tap_readable {
            match self.tap.read_frame(&mut self.rx_buf) {
                Ok(_) => inc(&self.metrics.rx_dropped, 1),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.tap_readable = false,
            }
        }
        self.local.clear();
        self.rx_len = 0;
    }

    fn check(&mut self, result: Result<(), virtio_queue::Error>) {
        if let Err(e) = result {
            self.broken = true;
            error!("virtio-net: {e}; device needs reset");
            if let Some(aq) = &self.active {
                let _ = aq.interrupt.notify_config();
            }
        }
    }
}

/// Sends one gathered TX chain (vnet header + frame): to a link service
/// when one takes it, else to the TAP.
fn send_frame(
    buf: &mut [u8],
    tap: &dyn FrameIo,
    services: &mut dyn LinkServices,
    metrics: &NetMetrics,
    now: Instant,
) {
    let (hdr, frame) = buf.split_at_mut(VNET_HDR_LEN);
    let for_services = match frames::tx_offload(hdr) {
        TxOffload::None => true,
        TxOffload::Checksum { start, offset } => frames::finish_checksum(frame, start, offset),
        // Only the kernel segments GSO frames; the services' peers
        // (DHCP, small HTTP requests) never need them.
        TxOffload::Gso => false,
    };
    if for_services && services.take_frame(frame, now) {
        inc(&metrics.tx_local, 1);
        return;
    }
    match tap.write_frame(buf) {
        Ok(_) => {
            inc(&metrics.tx_frames, 1);
            inc(&metrics.tx_bytes, (buf.len() - VNET_HDR_LEN) as u64);
        }
        Err(_) => inc(&metrics.tx_dropped, 1),
    }
}

fn add_used(
    q: &mut Queue,
    mem: &GuestMemoryMmap,
    head: u16,
    len: u32,
) -> Result<(), virtio_queue::Error> {
    match q.add_used(mem, head, len) {
        // A head beyond the queue came from the guest: nothing to return.
        Err(virtio_queue::Error::InvalidDescriptorIndex) => Ok(()),
        r => r,
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn device_features(&self) -> u64 {
        self.features
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut config = [0u8; CONFIG_LEN];
        config[..6].copy_from_slice(&self.mac);
        config[6..8].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|at| config.get(at))
                .copied()
                .unwrap_or(0);
        }
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // The MAC is read-only without VIRTIO_NET_F_CTRL_MAC_ADDR.
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        acked_features: u64,
        queues: Vec<ActivatedQueue>,
        interrupt: Arc<dyn VirtioInterrupt>,
    ) -> Result<(), ActivateError> {
        if self.active.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        check_queues(&queues, &mem, &self.queue_sizes)?;
        let acked = acked_features & self.features;
        self.tap
            .set_offload(Self::tap_offloads(acked))
            .map_err(|e| ActivateError::Engine(e.to_string()))?;
        let event_idx = acked & FEATURE_RING_EVENT_IDX != 0;
        let mut qs = Vec::with_capacity(2);
        let mut notify = Vec::with_capacity(2);
        let mut watch = Vec::with_capacity(2);
        for q in queues {
            let mut queue = q.queue;
            queue.set_event_idx(event_idx);
            watch.push(q.notify.try_clone()?);
            notify.push(q.notify);
            qs.push(queue);
        }
        let txq = qs.pop().ok_or(ActivateError::InvalidQueue(TX_QUEUE))?;
        let rxq = qs.pop().ok_or(ActivateError::InvalidQueue(RX_QUEUE))?;
        self.active = Some(Active {
            mem,
            rxq,
            txq,
            notify,
            watch,
            interrupt,
            mrg_rxbuf: acked & (1 << VIRTIO_NET_F_MRG_RXBUF) != 0,
        });
        self.acked_features = acked;
        self.broken = false;
        self.registered = false;
        self.rx_len = 0;
        self.tap_readable = true;
        let _ = self.ctrl_evt.write(1);
        Ok(())
    }

    fn reset(&mut self) -> Option<Vec<EventFd>> {
        let aq = self.active.take()?;
        if self.registered {
            self.stale.extend(aq.watch);
        }
        self.registered = false;
        self.rx_len = 0;
        self.local.clear();
        let _ = self.ctrl_evt.write(1);
        Some(aq.notify)
    }

    fn needs_reset(&self) -> bool {
        self.broken
    }
}

impl MutEventSubscriber for Net {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        match events.data() {
            EVENT_CTRL => {
                let _ = self.ctrl_evt.read();
                for fd in self.stale.drain(..) {
                    let _ = ops.remove(Events::empty(&fd));
                }
                if let Some(aq) = &self.active
                    && !self.registered
                {
                    for (fd, data) in aq.watch.iter().zip([EVENT_RX, EVENT_TX]) {
                        if let Err(e) = ops.add(Events::with_data(fd, data, EventSet::IN)) {
                            error!("virtio-net: cannot watch a queue: {e}");
                            self.broken = true;
                        }
                    }
                    self.registered = true;
                    self.process_tx();
                    self.process_rx();
                }
            }
            EVENT_RX => {
                if let Some(aq) = &self.active {
                    let _ = aq.watch[RX_QUEUE].read();
                }
                self.process_rx();
            }
            EVENT_TX => {
                if let Some(aq) = &self.active {
                    let _ = aq.watch[TX_QUEUE].read();
                }
                if !self.broken {
                    self.process_tx();
                }
                self.process_rx();
            }
            EVENT_TAP => {
                self.tap_readable = true;
                self.process_rx();
            }
            EVENT_TIMER => {
                let _ = self.timer.wait();
                self.collect_local(Instant::now());
                self.process_rx();
            }
            _ => {}
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        let fds = [
            (self.ctrl_evt.as_raw_fd(), EVENT_CTRL, EventSet::IN),
            (
                self.tap.as_raw_fd(),
                EVENT_TAP,
                EventSet::IN | EventSet::EDGE_TRIGGERED,
            ),
            (self.timer.as_raw_fd(), EVENT_TIMER, EventSet::IN),
        ];
        for (fd, data, set) in fds {
            if let Err(e) = ops.add(Events::with_data_raw(fd, data, set)) {
                error!("virtio-net: cannot watch fd {fd}: {e}");
                self.broken = true;
            }
        }
    }
}
