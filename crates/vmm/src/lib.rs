//! One virtual machine (`flint vmm`): KVM setup, vCPUs, memory, boot and
//! devices. It depends on `flint_contract` for everything it shares with
//! the daemon, and never on the daemon itself.

pub mod acpi;
pub mod api;
pub mod boot;
pub mod bus;
pub mod config;
pub mod cpu;
pub mod device_manager;
pub mod devices;
pub mod dhcp;
pub mod disks;
pub mod events;
pub mod firmware;
pub mod imds;
pub mod instance;
pub mod irq;
pub mod jail;
pub mod kvm_check;
pub mod layout;
pub mod lifecycle;
pub mod loop_policy;
pub mod memory;
pub mod netsvc;
pub mod pci;
pub mod power;
pub mod runtime;
pub mod seccomp;
pub mod vcpu;
pub mod vm;

#[cfg(test)]
mod tiny_guest_tests;
