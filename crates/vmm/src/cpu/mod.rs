//! vCPU set-up: CPUID, MSRs, LAPIC, and the boot vCPU's registers.

mod cpuid;
pub use cpuid::set_tsc_deadline;
mod msrs;
mod regs;

use kvm_bindings::CpuId;
use kvm_ioctls::VcpuFd;
use thiserror::Error;

use crate::boot::EntryPoint;
use crate::memory::GuestMemoryMmap;

#[derive(Debug, Error)]
pub enum CpuError {
    #[error("vCPU {index}: cannot set {what}: {source}")]
    Kvm {
        index: u8,
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("vCPU {index}: only {set} of {total} MSRs were accepted")]
    Msrs { index: u8, set: usize, total: usize },
    #[error("cannot build the MSR list: {0:?}")]
    MsrList(vmm_sys_util::fam::Error),
    #[error("cannot write boot page tables/GDT: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// LAPIC register offsets and delivery modes (Intel SDM vol. 3, 10.5.1).
const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// Configures vCPU `index` of `vcpus`. Only the boot vCPU (index 0) of a
/// direct boot gets registers (`entry`); a firmware boot keeps KVM's reset
/// state (CS:IP = F000:FFF0 at the top of 4 GiB). The others wait for
/// INIT/SIPI from the guest, as on hardware.
pub fn configure_vcpu(
    vcpu: &VcpuFd,
    index: u8,
    vcpus: u8,
    supported_cpuid: &CpuId,
    mem: &GuestMemoryMmap,
    entry: Option<EntryPoint>,
) -> Result<(), CpuError> {
    let kvm_err = |what| {
        move |source| CpuError::Kvm {
            index,
            what,
            source,
        }
    };
    let mut cpuid = supported_cpuid.clone();
    cpuid::filter_cpuid(&mut cpuid, index, vcpus);
    vcpu.set_cpuid2(&cpuid).map_err(kvm_err("CPUID"))?;

    let msrs = msrs::boot_msrs().map_err(CpuError::MsrList)?;
    let set = vcpu.set_msrs(&msrs).map_err(kvm_err("MSRs"))?;
    if set != msrs.as_slice().len() {
        return Err(CpuError::Msrs {
            index,
            set,
            total: msrs.as_slice().len(),
        });
    }

    let mut lapic = vcpu.get_lapic().map_err(kvm_err("LAPIC"))?;
    set_lvt_mode(&mut lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
    set_lvt_mode(&mut lapic.regs, APIC_LVT1, APIC_MODE_NMI);
    vcpu.set_lapic(&lapic).map_err(kvm_err("LAPIC"))?;

    if index == 0
        && let Some(entry) = entry
    {
        let mut sregs = vcpu.get_sregs().map_err(kvm_err("special registers"))?;
        regs::setup_sregs(mem, entry, &mut sregs)?;
        vcpu.set_sregs(&sregs)
            .map_err(kvm_err("special registers"))?;
        vcpu.set_regs(&regs::boot_regs(entry))
            .map_err(kvm_err("registers"))?;
        vcpu.set_fpu(&regs::boot_fpu()).map_err(kvm_err("FPU"))?;
    }
    Ok(())
}

/// Sets the delivery mode (bits 8-10) of a LAPIC LVT register, held as
/// little-endian bytes in the KVM LAPIC state page.
fn set_lvt_mode(regs: &mut [std::os::raw::c_char], offset: usize, mode: u32) {
    let mut bytes = [0u8; 4];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = regs[offset + i] as u8;
    }
    let value = (u32::from_le_bytes(bytes) & !0x700) | (mode << 8);
    for (i, b) in value.to_le_bytes().iter().enumerate() {
        regs[offset + i] = *b as std::os::raw::c_char;
    }
}
