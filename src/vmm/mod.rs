//! One virtual machine: KVM setup, vCPUs, memory, boot and devices.

pub mod kvm_check;
