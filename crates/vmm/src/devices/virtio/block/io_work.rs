//! A running count of the block work the event loop does: requests taken
//! from avail rings plus completions reaped, over every queue of every disk
//! that shares it (the VMM gives all its disks one). The loop's scheduling
//! policy (`vmm::loop_policy`) reads how much each wakeup found.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct IoWork(AtomicU64);

impl IoWork {
    pub fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}
