//! The VMM's event loop: what subscribes to it.

use event_manager::MutEventSubscriber;

/// An event-loop subscriber. Devices are shared with the vCPU threads,
/// which reach the same devices through the buses, so a device subscribes
/// as its `Arc<Mutex<_>>` (event-manager implements the trait for it).
pub type Subscriber = Box<dyn MutEventSubscriber + Send>;
