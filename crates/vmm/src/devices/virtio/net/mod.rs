//! virtio-net: the instance's NIC, backed by a TAP device on the host.
//!
//! - `tap`    — the TAP device (vnet header, offloads, link up).
//! - `frames` — moving one frame between guest descriptor chains and host
//!   buffers (the guest is hostile: every address and length is checked
//!   through guest-memory accessors, every length is bounded).
//! - `device` — `Net`: the `VirtioDevice` and event-loop subscriber: RX
//!   queue 0, TX queue 1, the TAP, and the link services.
//!
//! Link services (`LinkServices`): before a guest frame goes to the TAP,
//! the VMM's own services on the link (DHCP, the instance metadata service
//! on 169.254.169.254) may take it; their answers are delivered to the
//! guest like frames from the TAP. Frames they take never reach the host.

mod device;
mod frames;
pub mod tap;

use std::time::{Duration, Instant};

pub use device::{Net, NetError, NetMetrics};

/// Size of both queues (the maximum; the driver may pick less).
pub const QUEUE_SIZE: u16 = 256;
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
/// The largest frame either way: a 64 KiB GSO packet plus its Ethernet
/// header, after the vnet header.
pub const MAX_FRAME_LEN: usize = 65_535 + 14;
/// Frames the link services may have waiting for the guest; more are
/// dropped (they are TCP segments and DHCP replies: the peer retries).
pub const MAX_LOCAL_FRAMES: usize = 256;

/// Services the VMM answers itself on the guest's link.
pub trait LinkServices: Send {
    /// Offers an Ethernet frame the guest sent (checksums complete, no
    /// GSO). Returns true when a service took it: it must not go to the
    /// host then.
    fn take_frame(&mut self, frame: &[u8], now: Instant) -> bool;
    /// Runs timers and returns the next frame for the guest, if any.
    fn next_frame(&mut self, now: Instant) -> Option<Vec<u8>>;
    /// How long until the services need `next_frame` called again for
    /// their timers (`None`: not until the next guest frame).
    fn poll_delay(&mut self, now: Instant) -> Option<Duration>;
}

/// No link services: every frame goes to the TAP.
pub struct NoServices;

impl LinkServices for NoServices {
    fn take_frame(&mut self, _frame: &[u8], _now: Instant) -> bool {
        false
    }
    fn next_frame(&mut self, _now: Instant) -> Option<Vec<u8>> {
        None
    }
    fn poll_delay(&mut self, _now: Instant) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests;
