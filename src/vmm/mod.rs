//! One virtual machine: KVM setup, vCPUs, memory, boot and devices.

// The VMM is being assembled module by module; items land before their users.
#![allow(dead_code)]

pub mod acpi;
pub mod bus;
pub mod devices;
pub mod irq;
pub mod kvm_check;
pub mod layout;
pub mod memory;
pub mod power;
