//! `Volume`: the part of a disk that outlives one boot and that other
//! threads see. The VMM's disk table (`vmm::disks`) holds one per disk,
//! boot-time or hot-plugged, from its attach to its detach, and hands an
//! `Arc` to the block device of each boot; the control socket reads the
//! counters and changes the limits through it while the guest runs.
//!
//! The device's event loop owns the request path; the only thing it shares
//! with the control socket here is the throttle, behind a mutex that the
//! loop takes only when the volume has limits (once per batch of requests,
//! not per request). Changing the limits writes `limits_changed`, an eventfd
//! the loop watches, so a queue held back by the old limits looks again
//! at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::BlockMetrics;
use super::throttle::Throttle;
use flint_contract::ebs::{Limits, LimitsError};
use flint_contract::socket::VolumeMetrics;

/// Nanoseconds from a fixed origin. Injected so that tests control time.
pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
}

/// CLOCK_MONOTONIC (through the vDSO: no system call), from the volume's
/// creation.
pub struct MonotonicClock(Instant);

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

pub struct Volume {
    id: String,
    /// Set by the block device when it opens the image.
    size_bytes: AtomicU64,
    clock: Arc<dyn Clock>,
    counters: Arc<BlockMetrics>,
    throttle: Mutex<Option<Throttle>>,
    limits_changed: EventFd,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("id", &self.id)
            .field("limits", &self.limits())
            .finish()
    }
}

fn nanos_to_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

impl Volume {
    /// A volume on the monotonic clock. Fails on invalid limits or when no
    /// eventfd can be had.
    pub fn new(id: impl Into<String>, limits: Option<Limits>) -> Result<Arc<Self>, VolumeError> {
        Self::with_clock(id, limits, Arc::new(MonotonicClock::new()))
    }

    pub fn with_clock(
        id: impl Into<String>,
        limits: Option<Limits>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, VolumeError> {
        let now = clock.now_ns();
        let throttle = limits.map(|l| Throttle::new(l, now)).transpose()?;
        let counters = Arc::new(BlockMetrics::default());
        counters.set_idle_since(now);
        Ok(Arc::new(Volume {
            id: id.into(),
            size_bytes: AtomicU64::new(0),
            clock,
            counters,
            throttle: Mutex::new(throttle),
            limits_changed: EventFd::new(EFD_NONBLOCK).map_err(VolumeError::EventFd)?,
        }))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The disk's size as the guest sees it (0 before the device opened it).
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Relaxed)
    }

    pub(super) fn set_size_bytes(&self, bytes: u64) {
        self.size_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn limits(&self) -> Option<Limits> {
        self.lock_throttle().as_ref().map(Throttle::limits)
    }

    /// Applies new limits (None: unthrottled) to the running device. The
    /// burst credits carry over; invalid limits change nothing.
    pub fn set_limits(&self, limits: Option<Limits>) -> Result<(), LimitsError> {
        let now = self.now_ns();
        {
            let mut throttle = self.lock_throttle();
            *throttle = match limits {
                Some(l) => Some(Throttle::replacing(l, throttle.as_mut(), now)?),
                None => None,
            };
        }
        // Cannot fail short of 2^64 unread writes.
        let _ = self.limits_changed.write(1);
        Ok(())
    }

    /// The counters as EBS names them.
    pub fn metrics(&self) -> VolumeMetrics {
        let now = self.now_ns();
        let burst_balance = self
            .lock_throttle()
            .as_mut()
            .and_then(|t| t.burst_balance(now));
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        VolumeMetrics {
            read_ops: l(&c.read_ops),
            write_ops: l(&c.write_ops),
            read_bytes: l(&c.read_bytes),
            write_bytes: l(&c.write_bytes),
            total_read_time: nanos_to_seconds(l(&c.read_time_ns)),
            total_write_time: nanos_to_seconds(l(&c.write_time_ns)),
            queue_length: l(&c.queue_length),
            idle_time: nanos_to_seconds(c.idle_ns(now)),
            burst_balance,
            throttled_ops: l(&c.throttled_ops),
            throttled_bytes: l(&c.throttled_bytes),
        }
    }

    /// Every counter of the device (the EBS ones and the rest).
    pub fn counters(&self) -> &Arc<BlockMetrics> {
        &self.counters
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    pub(super) fn lock_throttle(&self) -> MutexGuard<'_, Option<Throttle>> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Readable after `set_limits`; the device's event loop watches it.
    pub(super) fn limits_changed(&self) -> &EventFd {
        &self.limits_changed
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Limits(#[from] LimitsError),
    #[error("volume eventfd: {0}")]
    EventFd(std::io::Error),
}
