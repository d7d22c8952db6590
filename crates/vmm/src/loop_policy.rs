//! How eagerly the event-loop thread takes the CPU when it wakes.
//!
//! The thread that serves the device queues often shares a CPU with the
//! vCPU threads (an over-committed host; the emulated KVM host of the tests
//! runs a whole VMM on one CPU). As an ordinary (SCHED_OTHER) thread, a
//! guest's kick or an I/O completion wakes it and CFS lets it preempt the
//! running vCPU at once. Where a guest exit costs more than the disk's
//! latency, that makes queued I/O synchronous: the loop takes the one new
//! request, the disk completes it and the guest is interrupted before its
//! vCPU runs on to queue the next, so fio at iodepth 32 keeps one request
//! in the device and pays a kick and an interrupt per request (measured in
//! the emulated host: 1 request in the guest's /sys/block/vda/inflight,
//! one interrupt per request; QEMU, whose heavier main loop CFS does not
//! let preempt, had 32 and one interrupt per 16).
//!
//! As SCHED_BATCH the loop's wakeups do not preempt: it runs when the vCPU
//! halts or its slice ends, and finds several requests and completions at
//! once. That is only worth it while the guest has requests to queue
//! behind the one in service; at queue depth 1 it delays every request. The
//! two look alike from here (one request per wakeup) until the loop is
//! lazy, so it probes: now and then it sleeps as SCHED_BATCH for a window
//! of wakeups and stays so while the wakeups find work to batch; a probe
//! that finds none backs off (exponentially) before the next.
//! A loop with a CPU of its own is run at once on wakeup either way.
//! Measured in the emulated host (one run, 2 vCPUs, fio 4k O_DIRECT, 8 s
//! each, the probe gap then capped at 2048): randread qd32 891 and 406
//! IOPS against 149 and 166 with `--no-io-batching` (QEMU: 931); randwrite
//! qd32 1299 against 111; randread qd1 237 and 185 against 222 and 241
//! (QEMU: 117 and 106). benches/blk.sh compares both side by side.

use std::sync::Arc;
use tracing::warn;

use crate::devices::virtio::block::IoWork;

/// Wakeups with block work in one probe window.
const WINDOW: u32 = 16;
/// Work (requests taken + completions reaped) per wakeup, on average over
/// a window, from which batching counts as paying off: an unbatched loop
/// finds one request or one completion per wakeup.
const BATCHED_PER_WAKEUP: u64 = 2;
/// Wakeups with block work between probes: after a probe that paid off,
/// and at most (doubling after each one that did not).
const PROBE_GAP_MIN: u32 = 64;
const PROBE_GAP_MAX: u32 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Normal,
    Batch,
}

/// The decisions, apart from the system call that applies them.
#[derive(Debug)]
struct Probe {
    current: Policy,
    last_total: u64,
    /// Normal: wakeups with work left before the next probe.
    until_probe: u32,
    probe_gap: u32,
    /// Batch: the window so far.
    window_wakeups: u32,
    window_work: u64,
}

impl Probe {
    fn new() -> Self {
        Probe {
            current: Policy::Normal,
            last_total: 0,
            until_probe: PROBE_GAP_MIN,
            probe_gap: PROBE_GAP_MIN,
            window_wakeups: 0,
            window_work: 0,
        }
    }

    /// The policy to sleep as, given the work counter now.
    fn next(&mut self, total: u64) -> Policy {
        let found = total.wrapping_sub(self.last_total);
        self.last_total = total;
        if found == 0 {
            // Network, timers, the control socket: no say in the matter.
            return self.current;
        }
        match self.current {
            Policy::Normal => {
                self.until_probe = self.until_probe.saturating_sub(1);
                if self.until_probe == 0 {
                    self.current = Policy::Batch;
                    self.window_wakeups = 0;
                    self.window_work = 0;
                }
            }
            Policy::Batch => {
                self.window_wakeups += 1;
                self.window_work += found;
                if self.window_wakeups == WINDOW {
                    if self.window_work >= BATCHED_PER_WAKEUP * u64::from(WINDOW) {
                        self.probe_gap = PROBE_GAP_MIN;
                    } else {
                        self.probe_gap = (self.probe_gap * 2).min(PROBE_GAP_MAX);
                        self.until_probe = self.probe_gap;
                        self.current = Policy::Normal;
                    }
                    self.window_wakeups = 0;
                    self.window_work = 0;
                }
            }
        }
        self.current
    }
}

pub struct LoopPolicy {
    work: Arc<IoWork>,
    enabled: bool,
    probe: Probe,
    applied: Policy,
}

impl LoopPolicy {
    /// `enabled`: false keeps the thread SCHED_OTHER (`--no-io-batching`).
    pub fn new(work: Arc<IoWork>, enabled: bool) -> Self {
        LoopPolicy {
            work,
            enabled,
            probe: Probe::new(),
            applied: Policy::Normal,
        }
    }

    /// Called by the loop before it sleeps; a system call only when the
    /// policy changes. A kernel that refuses (a foreign seccomp filter,
    /// say) turns batching off for good, with one message.
    pub fn before_sleep(&mut self) -> Policy {
        if !self.enabled {
            return Policy::Normal;
        }
        let want = self.probe.next(self.work.total());
        if want != self.applied {
            match set_thread_policy(want) {
                Ok(()) => self.applied = want,
                Err(e) => {
                    warn!(
                        "flint vmm: cannot switch the event loop to {want:?}: {e}; I/O batching off"
                    );
                    self.enabled = false;
                }
            }
        }
        self.applied
    }
}

impl Drop for LoopPolicy {
    /// The thread goes on (it builds the next boot): back to normal.
    fn drop(&mut self) {
        if self.applied != Policy::Normal {
            let _ = set_thread_policy(Policy::Normal);
        }
    }
}

/// Sets the calling thread's policy (pid 0 of sched_setscheduler is the
/// calling thread on Linux).
fn set_thread_policy(policy: Policy) -> std::io::Result<()> {
    let policy = match policy {
        Policy::Normal => libc::SCHED_OTHER,
        Policy::Batch => libc::SCHED_BATCH,
    };
    // Both are normal-priority policies: static priority 0, no privilege.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; the
    // kernel only reads it.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests;
