//! Virtio devices and the contract between a device and its transport
//! (virtio-pci, in `crate::pci`).
//!
//! Life of a device: the transport offers `device_features()`, lets the
//! driver read/write the config space, and once the driver sets DRIVER_OK
//! calls `activate()` with the queues the driver set up, one ioeventfd per
//! queue (written by KVM when the guest notifies that queue) and the
//! interrupt to signal used buffers. The device is also an event-manager
//! subscriber: it is registered with the VMM's event loop when created and
//! must start watching the queue eventfds once activated (write an
//! "activate" eventfd of its own from `activate()` and add the queue fds in
//! `process()` when it fires). `reset()` stops the device and hands the
//! queue eventfds back so the transport can re-arm them.

pub mod block;
pub mod net;

use std::io;
use std::sync::Arc;

use event_manager::MutEventSubscriber;
use thiserror::Error;
use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use crate::memory::GuestMemoryMmap;

/// Virtio device IDs (virtio 1.2, section 5).
pub const TYPE_NET: u32 = 1;
pub const TYPE_BLOCK: u32 = 2;

/// Feature bits every modern device offers (virtio 1.2, section 6).
pub const FEATURE_VERSION_1: u64 = 1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
pub const FEATURE_RING_EVENT_IDX: u64 = 1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

/// How a device tells the guest about used buffers and config changes.
/// The transport maps these onto MSI-X vectors (and honours masking).
pub trait VirtioInterrupt: Send + Sync {
    fn notify_queue(&self, queue_index: u16) -> io::Result<()>;
    fn notify_config(&self) -> io::Result<()>;
}

/// One queue as the driver configured it, with the eventfd KVM writes when
/// the guest notifies it.
pub struct ActivatedQueue {
    /// Its index among the device's queues (`queue_max_sizes()`): a driver
    /// need not set up every queue of a multi-queue device.
    pub index: u16,
    pub queue: Queue,
    pub notify: EventFd,
}

#[derive(Debug, Error)]
pub enum ActivateError {
    #[error("the driver set up {got} queues, the device needs {want}")]
    QueueCount { got: usize, want: usize },
    #[error("queue {0} is not valid (size, addresses or alignment)")]
    InvalidQueue(usize),
    #[error("queue {index} set up out of order or twice, or does not exist")]
    QueueIndex { index: u16 },
    #[error("device is already active")]
    AlreadyActive,
    #[error("cannot start the device's I/O engine: {0}")]
    Engine(String),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Checks the queues a driver set up against what the device offers: all
/// of them, in order, and each one's size and ring addresses in guest
/// memory.
pub fn check_queues(
    queues: &[ActivatedQueue],
    mem: &GuestMemoryMmap,
    max_sizes: &[u16],
) -> Result<(), ActivateError> {
    if queues.len() != max_sizes.len() {
        return Err(ActivateError::QueueCount {
            got: queues.len(),
            want: max_sizes.len(),
        });
    }
    check_queue_subset(queues, mem, max_sizes)
}

/// Checks the queues a driver set up when it may leave some out (a
/// multi-queue device whose driver uses fewer queues, as Linux does with
/// fewer CPUs than queues, or firmware that drives queue 0 only): at least
/// one, each at most once, in increasing index order, each within the
/// device's queues and valid in guest memory.
pub fn check_queue_subset(
    queues: &[ActivatedQueue],
    mem: &GuestMemoryMmap,
    max_sizes: &[u16],
) -> Result<(), ActivateError> {
    use virtio_queue::QueueT;
    if queues.is_empty() {
        return Err(ActivateError::QueueCount {
            got: 0,
            want: max_sizes.len(),
        });
    }
    let mut next = 0usize;
    for q in queues {
        let index = usize::from(q.index);
        let Some(&max) = max_sizes.get(index).filter(|_| index >= next) else {
            return Err(ActivateError::QueueIndex { index: q.index });
        };
        next = index + 1;
        let size = q.queue.size();
        if !q.queue.is_valid(mem) || size == 0 || size > max {
            return Err(ActivateError::InvalidQueue(index));
        }
    }
    Ok(())
}

pub trait VirtioDevice: MutEventSubscriber + Send {
    /// Virtio device ID (`TYPE_*`).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Features offered to the driver (including FEATURE_VERSION_1).
    fn device_features(&self) -> u64;
    /// Reads the device-specific config space. Out-of-range bytes read as 0.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes the device-specific config space; out-of-range writes and
    /// read-only fields are ignored.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Starts the device with the features the driver accepted (a subset
    /// of `device_features()`).
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        acked_features: u64,
        queues: Vec<ActivatedQueue>,
        interrupt: Arc<dyn VirtioInterrupt>,
    ) -> Result<(), ActivateError>;
    /// Stops the device (driver reset). Returns the queue notify eventfds
    /// it held, if it was active.
    fn reset(&mut self) -> Option<Vec<EventFd>>;
    /// True after a fatal queue error: the device set DEVICE_NEEDS_RESET
    /// semantics and stopped processing until reset.
    fn needs_reset(&self) -> bool {
        false
    }
}
