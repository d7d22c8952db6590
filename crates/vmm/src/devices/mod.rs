//! Emulated devices: legacy PC devices and virtio devices.

pub mod legacy;
pub mod virtio;
