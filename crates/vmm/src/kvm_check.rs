//! `flint kvm-check`: proves that /dev/kvm can run guest code.
//!
//! It runs a few real-mode instructions that write "OK" to the COM1 port and
//! halt. Small guest code like this runs even on KVM flavours that cannot
//! boot a full kernel, so it separates "KVM is missing or broken" from
//! "the VMM is wrong" when a boot fails.

use std::fmt;

use kvm_ioctls::{Kvm, VcpuExit};
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Where the test code is loaded and starts (real mode, CS base 0).
const CODE_ADDR: u64 = 0x1000;
const MEM_SIZE: usize = 0x10000;
const COM1: u16 = 0x3f8;
/// A guest that has not halted after this many exits is looping.
const MAX_EXITS: u32 = 64;

/// mov dx, 0x3f8; mov al, 'O'; out dx, al; mov al, 'K'; out dx, al; hlt
const GUEST_CODE: [u8; 10] = [0xba, 0xf8, 0x03, 0xb0, b'O', 0xee, 0xb0, b'K', 0xee, 0xf4];

#[derive(Debug, Error)]
pub enum KvmCheckError {
    #[error("cannot open /dev/kvm: {0}")]
    Open(kvm_ioctls::Error),
    #[error("KVM API version {0} is not 12")]
    ApiVersion(i32),
    #[error("cannot create a VM: {0}")]
    CreateVm(kvm_ioctls::Error),
    #[error("cannot allocate guest memory: {0}")]
    Memory(String),
    #[error("cannot register guest memory with KVM: {0}")]
    SetMemory(kvm_ioctls::Error),
    #[error("cannot create a vCPU: {0}")]
    CreateVcpu(kvm_ioctls::Error),
    #[error("cannot set vCPU registers: {0}")]
    Registers(kvm_ioctls::Error),
    #[error("vCPU run failed: {0}")]
    Run(kvm_ioctls::Error),
    #[error("unexpected exit from the guest: {0}")]
    UnexpectedExit(String),
    #[error("guest wrote {0:?} to COM1, expected \"OK\"")]
    WrongOutput(String),
    #[error("guest did not halt within {MAX_EXITS} exits")]
    NoHalt,
}

/// What a successful check observed.
#[derive(Debug)]
pub struct KvmCheckReport {
    pub api_version: i32,
    pub exits: u32,
    pub output: String,
}

impl fmt::Display for KvmCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kvm-check: ok api_version={} exits={} output={}",
            self.api_version, self.exits, self.output
        )
    }
}

pub fn run() -> Result<KvmCheckReport, KvmCheckError> {
    let kvm = Kvm::new().map_err(KvmCheckError::Open)?;
    let api_version = kvm.get_api_version();
    if api_version != 12 {
        return Err(KvmCheckError::ApiVersion(api_version));
    }
    // Declared before the VM so that it is dropped after it: KVM must never
    // hold a slot that points at unmapped memory.
    let memory = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)])
        .map_err(|e| KvmCheckError::Memory(e.to_string()))?;
    memory
        .write_slice(&GUEST_CODE, GuestAddress(CODE_ADDR))
        .map_err(|e| KvmCheckError::Memory(e.to_string()))?;
    let host_addr = memory
        .get_host_address(GuestAddress(0))
        .map_err(|e| KvmCheckError::Memory(e.to_string()))?;
    let vm = kvm.create_vm().map_err(KvmCheckError::CreateVm)?;
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: host_addr as u64,
        flags: 0,
    };
    // SAFETY: the region describes `memory`, a live mapping of MEM_SIZE
    // bytes that is dropped after `vm` (declared earlier), so the slot never
    // points at unmapped memory.
    unsafe { vm.set_user_memory_region(region) }.map_err(KvmCheckError::SetMemory)?;

    let mut vcpu = vm.create_vcpu(0).map_err(KvmCheckError::CreateVcpu)?;
    let mut sregs = vcpu.get_sregs().map_err(KvmCheckError::Registers)?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).map_err(KvmCheckError::Registers)?;
    let regs = kvm_bindings::kvm_regs {
        rip: CODE_ADDR,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(KvmCheckError::Registers)?;

    let mut output = String::new();
    for exits in 1..=MAX_EXITS {
        match vcpu.run().map_err(KvmCheckError::Run)? {
            VcpuExit::IoOut(COM1, data) => output.extend(data.iter().map(|&b| b as char)),
            VcpuExit::Hlt => {
                if output != "OK" {
                    return Err(KvmCheckError::WrongOutput(output));
                }
                return Ok(KvmCheckReport {
                    api_version,
                    exits,
                    output,
                });
            }
            other => return Err(KvmCheckError::UnexpectedExit(format!("{other:?}"))),
        }
    }
    Err(KvmCheckError::NoHalt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs /dev/kvm (any flavour: tiny guests run even on kvm_pvm).
    #[test]
    fn tiny_guest_writes_ok_and_halts() {
        let report = run().expect("kvm-check on this host's /dev/kvm");
        assert_eq!(report.output, "OK");
        assert_eq!(report.api_version, 12);
        // Two port writes, then the halt.
        assert_eq!(report.exits, 3);
    }
}
