//! One request queue: avail-ring processing, request slots, submission to
//! the io_uring engine, completion and used-ring/interrupt handling.
//!
//! Each queue owns its engine and a fixed set of request slots (one per
//! queue entry, allocated at activation), so requests in flight are bounded
//! by the queue size and the hot path does not allocate. A slot moves
//! free -> (parsed) -> pending (waiting for room in the ring) -> in flight
//! -> completed -> free. Short transfers and transient errors send a slot
//! back to pending; nothing is ever dropped. With volume limits, a parsed
//! request the throttle refuses is held (see `gate`) before it goes pending.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use tracing::{error, warn};

use thiserror::Error;
use virtio_bindings::virtio_blk::VIRTIO_BLK_S_OK;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::Bytes;
use vmm_sys_util::eventfd::EventFd;

use super::BlockMetrics;
use super::engine::{Engine, EngineError, Submitted};
use super::gate::{self, Gate};
use super::request::RequestType;
use super::slot::{Disk, Slot, count, on_result, push_ops, slot_status, start};
use super::volume::Volume;
use crate::devices::virtio::VirtioInterrupt;
use crate::memory::GuestMemoryMmap;

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("virtqueue: {0}")]
    Virtqueue(#[from] virtio_queue::Error),
    #[error("I/O engine: {0}")]
    Engine(#[from] EngineError),
    #[error("queue is not active")]
    Inactive,
    #[error("throttle timer: {0}")]
    Timer(std::io::Error),
}

/// The queue as the driver set it up, with its request slots.
struct ActiveQueue {
    queue: Queue,
    mem: GuestMemoryMmap,
    interrupt: Arc<dyn VirtioInterrupt>,
    /// The transport's ioeventfd, handed back on reset.
    notify: EventFd,
    /// Our duplicate of it, the one registered with the event loop: it
    /// stays open until the loop has unregistered it, even after `notify`
    /// went back to the transport.
    notify_watch: EventFd,
    slots: Box<[Slot]>,
    free: Vec<u16>,
    pending: VecDeque<u16>,
    /// Stopped taking chains because every slot was busy.
    throttled: bool,
    /// A parsed request the volume's limits hold back: the queue takes
    /// nothing more until it has gone.
    held: Option<u16>,
}

pub struct QueueHandler {
    index: u16,
    engine: Engine,
    disk: Arc<Disk>,
    metrics: Arc<BlockMetrics>,
    volume: Arc<Volume>,
    gate: Gate,
    active: Option<ActiveQueue>,
    broken: bool,
    /// Requests in flight last added to the volume's queue length.
    counted: usize,
}

impl QueueHandler {
    pub fn new(
        index: u16,
        ring_entries: u32,
        disk: Arc<Disk>,
        volume: Arc<Volume>,
    ) -> Result<Self, QueueError> {
        Ok(QueueHandler {
            index,
            engine: Engine::new(ring_entries)?,
            disk,
            metrics: volume.counters().clone(),
            gate: Gate::new(&volume).map_err(QueueError::Timer)?,
            volume,
            active: None,
            broken: false,
            counted: 0,
        })
    }

    pub fn timer(&self) -> &super::timer::ThrottleTimer {
        self.gate.timer()
    }

    /// The throttle's timer fired: a held request may go.
    pub fn handle_timer(&mut self) {
        self.gate.on_timer();
        self.process_queue();
    }

    /// The volume's limits changed.
    pub fn handle_limits_changed(&mut self) {
        self.gate.on_limits_changed(&self.volume);
        self.process_queue();
    }

    pub fn completion_fd(&self) -> &EventFd {
        self.engine.event_fd()
    }

    pub fn notify_watch(&self) -> Option<&EventFd> {
        self.active.as_ref().map(|a| &a.notify_watch)
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Takes over a validated queue. `queue.size()` is at least 1.
    pub fn activate(
        &mut self,
        mut queue: Queue,
        event_idx: bool,
        notify: EventFd,
        mem: GuestMemoryMmap,
        interrupt: Arc<dyn VirtioInterrupt>,
    ) -> std::io::Result<()> {
        let notify_watch = notify.try_clone()?;
        queue.set_event_idx(event_idx);
        let size = queue.size();
        self.active = Some(ActiveQueue {
            queue,
            mem,
            interrupt,
            notify,
            notify_watch,
            slots: (0..size).map(|_| Slot::new()).collect(),
            free: (0..size).rev().collect(),
            pending: VecDeque::with_capacity(usize::from(size)),
            throttled: false,
            held: None,
        });
        self.broken = false;
        Ok(())
    }

    /// Stops the queue: waits for the kernel to finish every operation
    /// (they write guest memory), then drops the queue without touching
    /// the rings again. Returns (transport's notify fd, our watch fd).
    pub fn reset(&mut self) -> Option<(EventFd, EventFd)> {
        let aq = self.active.take()?;
        let ActiveQueue {
            notify,
            notify_watch,
            mem,
            slots,
            ..
        } = aq;
        if !self.engine.drain() {
            // The ring failed with operations possibly still running: keep
            // their iovecs and the guest memory mapped for the life of the
            // process rather than let the kernel write into freed memory.
            std::mem::forget(mem);
            std::mem::forget(slots);
        }
        // A held request goes with the queue (the driver is resetting it).
        self.gate.reset();
        self.count_in_flight(0, self.volume.now_ns());
        self.broken = false;
        Some((notify, notify_watch))
    }

    /// The guest notified the queue.
    pub fn handle_notify(&mut self) {
        if let Some(aq) = &self.active {
            // Non-blocking; a spurious wakeup reads EAGAIN.
            let _ = aq.notify_watch.read();
        }
        self.process_queue();
    }

    /// The engine posted completions.
    pub fn handle_completions(&mut self) {
        self.engine.clear_event();
        if self.active.is_none() || self.broken {
            // Nothing to report them to; still reap so the ring drains.
            while self.engine.pop().is_some() {}
            return;
        }
        let now = self.volume.now_ns();
        let result = self.complete_and_continue(now);
        self.check(result);
        self.publish_queue_length(now);
    }

    /// Takes new chains from the avail ring and submits them.
    pub fn process_queue(&mut self) {
        if self.active.is_none() || self.broken {
            return;
        }
        // One clock reading per wakeup: latency and throttling are
        // measured per batch, not per request.
        let now = self.volume.now_ns();
        let result = self.take_chains(now).and_then(|used| {
            let used2 = self.submit_pending(now)?;
            if used || used2 {
                self.signal_used()?;
            }
            Ok(())
        });
        self.check(result);
        self.publish_queue_length(now);
    }

    fn publish_queue_length(&mut self, now: u64) {
        if let Some(aq) = &self.active {
            let in_flight = aq.slots.len() - aq.free.len();
            self.count_in_flight(in_flight, now);
        }
    }

    /// Adds this queue's change in requests in flight (taken, not yet
    /// used) to the volume's queue length, which sums every queue's.
    fn count_in_flight(&mut self, n: usize, now: u64) {
        if n == self.counted {
            return;
        }
        self.metrics
            .add_queue_length(n as i64 - self.counted as i64, now);
        self.counted = n;
    }

    fn check(&mut self, result: Result<(), QueueError>) {
        if let Err(e) = result {
            self.broken = true;
            error!("virtio-blk: queue {}: {e}; device needs reset", self.index);
            if let Some(aq) = &self.active {
                // Lets the transport raise DEVICE_NEEDS_RESET.
                let _ = aq.interrupt.notify_config();
            }
        }
    }

    /// Pops avail chains into free slots. Returns whether any chain was
    /// completed right away (errors, GET_ID, empty transfers).
    fn take_chains(&mut self, now: u64) -> Result<bool, QueueError> {
        let aq = self.active.as_mut().ok_or(QueueError::Inactive)?;
        let mut used = false;
        aq.throttled = false;
        // Without limits: no lock, and `admit` below is one branch.
        let mut throttle = self.gate.lock(&self.volume);
        if let Some(idx) = aq.held {
            if self.gate.waiting() {
                return Ok(false);
            }
            let req = &aq.slots[usize::from(idx)].req;
            if let Some(wait) =
                gate::admit(throttle.as_deref_mut().and_then(Option::as_mut), req, now)
            {
                self.gate.wait(wait).map_err(QueueError::Timer)?;
                return Ok(false);
            }
            aq.held = None;
            used |= dispatch(aq, idx, &self.disk, &self.metrics, now)?;
        }
        // EVENT_IDX-safe loop: suppress notifications while draining, then
        // re-enable and look again so a chain added in between is not
        // missed (enable_notification returns true if there is one).
        'outer: loop {
            aq.queue.disable_notification(&aq.mem)?;
            loop {
                let Some(&idx) = aq.free.last() else {
                    // Resumed when a completion frees a slot.
                    aq.throttled = true;
                    break 'outer;
                };
                // iter() refuses an avail index more than queue-size ahead
                // (corrupted ring): the error marks the device broken.
                let Some(chain) = aq.queue.iter(&aq.mem)?.next() else {
                    break;
                };
                aq.free.pop();
                self.disk.work.add(1);
                let slot = &mut aq.slots[usize::from(idx)];
                slot.clear_progress();
                slot.started = now;
                match slot.req.parse(chain, &aq.mem, self.disk.limits()) {
                    Ok(()) => {
                        let limits = throttle.as_deref_mut().and_then(Option::as_mut);
                        if let Some(wait) = gate::admit(limits, &slot.req, now) {
                            BlockMetrics::inc(&self.metrics.throttled_ops, 1);
                            BlockMetrics::inc(&self.metrics.throttled_bytes, slot.req.data_len);
                            aq.held = Some(idx);
                            self.gate.wait(wait).map_err(QueueError::Timer)?;
                            // Notifications stay off: the timer resumes us.
                            break 'outer;
                        }
                        used |= dispatch(aq, idx, &self.disk, &self.metrics, now)?;
                    }
                    Err(e) => {
                        if e.is_guest_bug() {
                            BlockMetrics::inc(&self.metrics.invalid_requests, 1);
                        }
                        finish(aq, idx, e.status(), &self.metrics, now)?;
                        used = true;
                    }
                }
            }
            if !aq.queue.enable_notification(&aq.mem)? {
                break;
            }
        }
        Ok(used)
    }

    /// Pushes pending slots' operations to the engine (as many as fit) and
    /// submits them with one io_uring_enter. Returns whether a slot was
    /// completed on the way.
    fn submit_pending(&mut self, now: u64) -> Result<bool, QueueError> {
        let aq = self.active.as_mut().ok_or(QueueError::Inactive)?;
        let fd = self.disk.file.as_raw_fd();
        let mut used = false;
        while let Some(&idx) = aq.pending.front() {
            let slot = &mut aq.slots[usize::from(idx)];
            if !push_ops(&mut self.engine, slot, idx, fd, &self.disk) {
                BlockMetrics::inc(&self.metrics.engine_busy, 1);
                break;
            }
            aq.pending.pop_front();
            slot.queued = false;
            if slot.ops == 0 {
                // Nothing was left to push (a failed multi-range request).
                let status = slot_status(slot);
                finish(aq, idx, status, &self.metrics, now)?;
                used = true;
            }
        }
        if self.engine.submit()? == Submitted::Busy {
            BlockMetrics::inc(&self.metrics.engine_busy, 1);
        }
        Ok(used)
    }

    /// Reaps completions, resubmits what needs it, takes more chains if we
    /// had run out of slots, and interrupts the guest if needed.
    fn complete_and_continue(&mut self, now: u64) -> Result<(), QueueError> {
        let mut used = false;
        while let Some((ud, res)) = self.engine.pop() {
            self.disk.work.add(1);
            let aq = self.active.as_mut().ok_or(QueueError::Inactive)?;
            let idx = (ud & 0xffff) as u16;
            let range = ((ud >> 16) & 0xffff) as usize;
            let zero_range = ud & (1 << 32) != 0;
            let Some(slot) = aq.slots.get_mut(usize::from(idx)) else {
                continue;
            };
            if slot.ops == 0 {
                continue; // not ours (cannot happen: slots drain on reset)
            }
            slot.ops -= 1;
            let requeue = on_result(slot, res, range, zero_range, &self.disk);
            if requeue && !slot.queued {
                slot.queued = true;
                aq.pending.push_back(idx);
            }
            if slot.ops == 0 && !slot.queued {
                let status = slot_status(slot);
                finish(aq, idx, status, &self.metrics, now)?;
                used = true;
            }
        }
        if self.active.as_ref().is_some_and(|a| a.throttled) {
            used |= self.take_chains(now)?;
        }
        used |= self.submit_pending(now)?;
        if used {
            self.signal_used()?;
        }
        Ok(())
    }

    /// Interrupts the guest unless EVENT_IDX says it does not want one yet.
    fn signal_used(&mut self) -> Result<(), QueueError> {
        let aq = self.active.as_mut().ok_or(QueueError::Inactive)?;
        if aq.queue.needs_notification(&aq.mem)?
            && let Err(e) = aq.interrupt.notify_queue(self.index)
        {
            warn!("virtio-blk: queue {}: interrupt failed: {e}", self.index);
        }
        Ok(())
    }
}

impl Drop for QueueHandler {
    fn drop(&mut self) {
        // The kernel must not write guest memory after it is unmapped.
        self.reset();
    }
}

/// Hands a parsed (and admitted) request on: completed at once, or queued
/// for the engine. Returns whether it completed.
fn dispatch(
    aq: &mut ActiveQueue,
    idx: u16,
    disk: &Disk,
    metrics: &BlockMetrics,
    now: u64,
) -> Result<bool, QueueError> {
    let slot = &mut aq.slots[usize::from(idx)];
    match start(slot, &aq.mem, disk, metrics) {
        Some(status) => {
            finish(aq, idx, status, metrics, now)?;
            Ok(true)
        }
        None => {
            slot.queued = true;
            aq.pending.push_back(idx);
            Ok(false)
        }
    }
}

/// Writes the status byte, returns the chain to the guest and frees the
/// slot. Without a usable status byte the chain goes back with length 0.
fn finish(
    aq: &mut ActiveQueue,
    idx: u16,
    status: u8,
    metrics: &BlockMetrics,
    now: u64,
) -> Result<(), QueueError> {
    aq.free.push(idx);
    let slot = &aq.slots[usize::from(idx)];
    let req = &slot.req;
    let ok = status == VIRTIO_BLK_S_OK as u8;
    let written = req
        .status
        .is_some_and(|addr| aq.mem.write_obj(status, addr).is_ok());
    let len = if !written {
        0
    } else {
        match req.kind {
            // Data bytes the device wrote, plus the status byte.
            RequestType::In => slot.done + 1,
            RequestType::GetId if ok => req.data_len + 1,
            _ => 1,
        }
    };
    if written {
        count(
            metrics,
            req,
            slot.done,
            status,
            now.saturating_sub(slot.started),
        );
    } else {
        BlockMetrics::inc(&metrics.invalid_requests, 1);
    }
    // Lengths are bounded by the chain (< 2^32 bytes).
    match aq.queue.add_used(&aq.mem, req.head, len as u32) {
        // A head index beyond the queue came from the guest: there is no
        // descriptor to return.
        Err(virtio_queue::Error::InvalidDescriptorIndex) => Ok(()),
        r => r.map_err(QueueError::from),
    }
}
