//! Where a queue meets its volume's limits: whether there are any (a
//! plain bool, so an unthrottled queue pays one branch), the timer a held
//! request waits on, and what a request costs.
//!
//! A request the throttle refuses stays parsed in its slot, at the head of
//! the line: the queue takes nothing more from the avail ring until the
//! timer says it may go (so the guest's order is kept and nothing is
//! dropped), then carries on. No busy-waiting: the loop sleeps in epoll.

use std::io;
use std::sync::MutexGuard;

use super::request::{Request, RequestType};
use super::throttle::Throttle;
use super::timer::ThrottleTimer;
use super::volume::Volume;

pub struct Gate {
    /// The volume had limits when last looked at (at creation and on every
    /// limits change).
    limited: bool,
    timer: ThrottleTimer,
    /// A held request waits for the timer; until it fires, other wakeups
    /// (guest kicks, completions) do not ask the throttle again.
    waiting: bool,
}

impl Gate {
    pub fn new(volume: &Volume) -> io::Result<Self> {
        Ok(Gate {
            limited: volume.lock_throttle().is_some(),
            timer: ThrottleTimer::new()?,
            waiting: false,
        })
    }

    pub fn timer(&self) -> &ThrottleTimer {
        &self.timer
    }

    /// The throttle for one batch of requests; None (no lock taken) when
    /// the volume has no limits.
    #[inline]
    pub fn lock<'v>(&self, volume: &'v Volume) -> Option<MutexGuard<'v, Option<Throttle>>> {
        if self.limited {
            Some(volume.lock_throttle())
        } else {
            None
        }
    }

    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// Holds the queue for `ns`.
    pub fn wait(&mut self, ns: u64) -> io::Result<()> {
        self.timer.arm(ns)?;
        self.waiting = true;
        Ok(())
    }

    /// The timer fired (or may have: spurious wakeups are harmless).
    pub fn on_timer(&mut self) {
        self.timer.clear();
        self.waiting = false;
    }

    /// The limits changed: look at them again, and let a held request ask
    /// the new ones at once rather than wait out the old delay.
    pub fn on_limits_changed(&mut self, volume: &Volume) {
        self.limited = volume.lock_throttle().is_some();
        if self.waiting {
            let _ = self.timer.disarm();
            self.timer.clear();
            self.waiting = false;
        }
    }

    pub fn reset(&mut self) {
        self.on_timer();
        let _ = self.timer.disarm();
    }
}

/// What the throttle charges a request for: data transfers by their
/// length, discard / write-zeroes as one operation without throughput;
/// flush, GET_ID and requests that move nothing go free.
fn charged_len(req: &Request) -> Option<u64> {
    match req.kind {
        RequestType::In | RequestType::Out if req.data_len > 0 => Some(req.data_len),
        RequestType::Discard | RequestType::WriteZeroes if !req.ranges.is_empty() => Some(0),
        _ => None,
    }
}

/// None: the request may go now (and was charged). Some(ns): it must wait
/// that long (and was charged nothing).
#[inline]
pub fn admit(throttle: Option<&mut Throttle>, req: &Request, now: u64) -> Option<u64> {
    let throttle = throttle?;
    let len = charged_len(req)?;
    throttle.admit(throttle.cost(len), now).err()
}
