//! CPUID for each vCPU: what KVM supports, with the topology of this VM and
//! the hypervisor bit, and without hardware virtualization (VMX/SVM): EC2
//! instances do not offer nested virtualization, and a guest that loads
//! kvm_amd/kvm_intel on a nested hypervisor widens what the host's KVM must
//! get right for nothing the instance needs.

use kvm_bindings::CpuId;

const LEAF_FEATURES: u32 = 1;
const LEAF_CACHE_PARAMS: u32 = 4;
const LEAF_EXT_TOPOLOGY: u32 = 0xb;
const LEAF_EXT_TOPOLOGY_V2: u32 = 0x1f;
const LEAF_AMD_SIZE_IDS: u32 = 0x8000_0008;
const LEAF_AMD_EXT_APIC_ID: u32 = 0x8000_001e;
const LEAF_AMD_EXT_FEATURES: u32 = 0x8000_0001;
const LEAF_AMD_SVM: u32 = 0x8000_000a;
const ECX_HYPERVISOR: u32 = 1 << 31;
const ECX_VMX: u32 = 1 << 5;
const ECX_AMD_SVM: u32 = 1 << 2;
const EDX_HTT: u32 = 1 << 28;
/// Leaf 0xb/0x1f level types.
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;

const ECX_TSC_DEADLINE: u32 = 1 << 24;

/// Offers (or hides) the TSC-deadline LAPIC timer mode (CPUID.01H:ECX[24]),
/// which KVM_GET_SUPPORTED_CPUID never reports. Without it a guest falls
/// back to one-shot LAPIC timer mode, calibrated against the PM timer (an
/// exit to the VMM per read) and programmed through TMICT on every tick.
pub fn set_tsc_deadline(cpuid: &mut CpuId, on: bool) {
    for entry in cpuid.as_mut_slice() {
        if entry.function == LEAF_FEATURES {
            if on {
                entry.ecx |= ECX_TSC_DEADLINE;
            } else {
                entry.ecx &= !ECX_TSC_DEADLINE;
            }
        }
    }
}

/// One socket of `vcpus` single-thread cores; the APIC id is the index.
pub fn filter_cpuid(cpuid: &mut CpuId, vcpu_index: u8, vcpus: u8) {
    let apic_id = u32::from(vcpu_index);
    let count = u32::from(vcpus);
    // Bits needed to number the cores of the socket.
    let core_bits = 32 - (count.max(1) - 1).leading_zeros();
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            LEAF_FEATURES => {
                // EBX: [31:24] initial APIC id, [23:16] logical processors.
                entry.ebx = (entry.ebx & 0xffff) | (apic_id << 24) | ((count & 0xff) << 16);
                entry.ecx |= ECX_HYPERVISOR;
                entry.ecx &= !ECX_VMX;
                if count > 1 {
                    entry.edx |= EDX_HTT;
                } else {
                    entry.edx &= !EDX_HTT;
                }
            }
            LEAF_CACHE_PARAMS => {
                // EAX[31:26]: cores per package - 1; [25:14]: threads sharing
                // the cache - 1 (one thread per core; L3 shared by all).
                let cache_level = (entry.eax >> 5) & 0x7;
                let sharing = if cache_level >= 3 { count - 1 } else { 0 };
                entry.eax = (entry.eax & 0x3fff) | ((count - 1) << 26) | (sharing << 14);
            }
            LEAF_EXT_TOPOLOGY | LEAF_EXT_TOPOLOGY_V2 => {
                entry.edx = apic_id;
                match entry.index {
                    0 => {
                        entry.eax = 0; // no SMT bits
                        entry.ebx = 1;
                        entry.ecx = (LEVEL_SMT << 8) | entry.index;
                    }
                    1 => {
                        entry.eax = core_bits;
                        entry.ebx = count;
                        entry.ecx = (LEVEL_CORE << 8) | entry.index;
                    }
                    _ => {
                        entry.eax = 0;
                        entry.ebx = 0;
                        entry.ecx = entry.index;
                    }
                }
            }
            LEAF_AMD_SIZE_IDS => {
                // ECX[15:12]: APIC id size; [7:0]: cores - 1.
                entry.ecx = (core_bits << 12) | (count - 1);
            }
            LEAF_AMD_EXT_FEATURES => entry.ecx &= !ECX_AMD_SVM,
            LEAF_AMD_SVM => {
                entry.eax = 0;
                entry.ebx = 0;
                entry.ecx = 0;
                entry.edx = 0;
            }
            LEAF_AMD_EXT_APIC_ID => {
                entry.eax = apic_id;
                entry.ebx = 0; // one thread per core, core id 0 per node
                entry.ecx = 0;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    fn leaf(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ..Default::default()
        }
    }

    #[test]
    fn topology_and_hypervisor_bit() {
        let mut cpuid = CpuId::from_entries(&[
            leaf(LEAF_FEATURES, 0),
            leaf(LEAF_EXT_TOPOLOGY, 0),
            leaf(LEAF_EXT_TOPOLOGY, 1),
            leaf(LEAF_AMD_SIZE_IDS, 0),
        ])
        .unwrap();
        filter_cpuid(&mut cpuid, 2, 4);
        let e = cpuid.as_slice();
        assert_eq!(e[0].ebx >> 24, 2);
        assert_eq!((e[0].ebx >> 16) & 0xff, 4);
        assert_ne!(e[0].ecx & ECX_HYPERVISOR, 0);
        assert_ne!(e[0].edx & EDX_HTT, 0);
        assert_eq!(e[1].edx, 2);
        assert_eq!((e[2].eax, e[2].ebx), (2, 4));
        assert_eq!(e[3].ecx & 0xff, 3);
    }

    #[test]
    fn no_hardware_virtualization_for_the_guest() {
        let mut features = leaf(LEAF_FEATURES, 0);
        features.ecx = ECX_VMX | 1;
        let mut ext = leaf(LEAF_AMD_EXT_FEATURES, 0);
        ext.ecx = ECX_AMD_SVM | 1;
        let mut svm = leaf(LEAF_AMD_SVM, 0);
        svm.eax = 1;
        svm.edx = 0xff;
        let mut cpuid = CpuId::from_entries(&[features, ext, svm]).unwrap();
        filter_cpuid(&mut cpuid, 0, 1);
        let e = cpuid.as_slice();
        assert_eq!(e[0].ecx & ECX_VMX, 0);
        assert_eq!(e[0].ecx & 1, 1, "other bits stay");
        assert_eq!(e[1].ecx, 1);
        assert_eq!((e[2].eax, e[2].edx), (0, 0));
    }

    #[test]
    fn tsc_deadline_is_offered_only_when_kvm_has_it() {
        let mut features = leaf(LEAF_FEATURES, 0);
        features.ecx = 1;
        let mut cpuid = CpuId::from_entries(&[features, leaf(LEAF_EXT_TOPOLOGY, 0)]).unwrap();
        set_tsc_deadline(&mut cpuid, true);
        assert_eq!(cpuid.as_slice()[0].ecx, 1 | ECX_TSC_DEADLINE);
        assert_eq!(cpuid.as_slice()[1].ecx, 0, "only leaf 1");
        set_tsc_deadline(&mut cpuid, false);
        assert_eq!(cpuid.as_slice()[0].ecx, 1);
    }

    #[test]
    fn the_local_kvm_offers_the_tsc_deadline_timer() {
        // What instance.rs asks before setting the bit.
        let kvm = kvm_ioctls::Kvm::new().unwrap();
        assert!(kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer));
    }
}
