//! MADT: the interrupt controllers (one LAPIC per vCPU, the in-kernel
//! IOAPIC) and how ISA IRQs map onto IOAPIC inputs.
//!
//! Built by hand on top of `Sdt` because the crate's MADT cannot set the
//! PCAT_COMPAT flag nor emit interrupt source overrides or LAPIC NMI entries.

use super::config::{AcpiConfig, sdt};
use crate::layout::{IOAPIC_START, IRQ_SCI, LAPIC_START};

pub(super) const MADT_REVISION: u8 = 5;

/// MADT flags: the 8259 PICs are present too (KVM's in-kernel irqchip has
/// them), so the OS must mask them before using the IOAPIC.
const PCAT_COMPAT: u32 = 1;

/// Interrupt controller structure types (ACPI 6.5, table 5.21).
const TYPE_LOCAL_APIC: u8 = 0;
const TYPE_IO_APIC: u8 = 1;
const TYPE_INTERRUPT_OVERRIDE: u8 = 2;
const TYPE_LOCAL_APIC_NMI: u8 = 4;

const LAPIC_ENABLED: u32 = 1;

/// MPS INTI flags: polarity bits 1:0, trigger mode bits 3:2.
const INTI_CONFORMS: u16 = 0;
const INTI_ACTIVE_HIGH: u16 = 0b01;
const INTI_LEVEL: u16 = 0b11 << 2;

/// All processors, in a LAPIC NMI entry.
const ALL_PROCESSORS: u8 = 0xff;
/// NMI arrives on LINT1, as on every PC.
const NMI_LINT: u8 = 1;

// The MADT's 32-bit address fields.
const _: () = assert!(LAPIC_START <= u32::MAX as u64);
const _: () = assert!(IOAPIC_START <= u32::MAX as u64);

fn interrupt_override(source: u8, gsi: u32, flags: u16) -> [u8; 10] {
    let mut e = [0u8; 10];
    e[0] = TYPE_INTERRUPT_OVERRIDE;
    e[1] = 10;
    e[2] = 0; // bus: ISA
    e[3] = source;
    e[4..8].copy_from_slice(&gsi.to_le_bytes());
    e[8..10].copy_from_slice(&flags.to_le_bytes());
    e
}

pub(super) fn build_madt(config: &AcpiConfig) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(LAPIC_START as u32).to_le_bytes());
    body.extend_from_slice(&PCAT_COMPAT.to_le_bytes());

    // vCPU i has APIC id i (the VMM sets the vCPU's APIC id the same way) and
    // ACPI processor UID i.
    for i in 0..config.vcpus {
        body.extend_from_slice(&[TYPE_LOCAL_APIC, 8, i, i]);
        body.extend_from_slice(&LAPIC_ENABLED.to_le_bytes());
    }

    // The IOAPIC id lives in a namespace of its own for Linux on x86_64 (it
    // only needs to be unique among IOAPICs); using the vCPU count keeps it
    // clear of every LAPIC id anyway.
    body.extend_from_slice(&[TYPE_IO_APIC, 12, config.vcpus, 0]);
    body.extend_from_slice(&(IOAPIC_START as u32).to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes()); // GSI base

    // The PIT's IRQ0 is wired to IOAPIC pin 2 on PCs (and in KVM).
    body.extend_from_slice(&interrupt_override(0, 2, INTI_CONFORMS));
    // The SCI is level-triggered, active high (ACPI 6.5, 5.2.12.5); without
    // this override an ISA IRQ would be taken as edge-triggered.
    body.extend_from_slice(&interrupt_override(
        IRQ_SCI as u8,
        IRQ_SCI,
        INTI_ACTIVE_HIGH | INTI_LEVEL,
    ));

    body.extend_from_slice(&[TYPE_LOCAL_APIC_NMI, 6, ALL_PROCESSORS]);
    body.extend_from_slice(&INTI_CONFORMS.to_le_bytes());
    body.push(NMI_LINT);

    sdt(config, *b"APIC", MADT_REVISION, &body)
}

#[cfg(test)]
mod tests {
    use super::super::tables::tests::{check_sdt, u16_at, u32_at};
    use super::*;

    #[test]
    fn madt_has_one_lapic_per_vcpu() {
        for vcpus in [1u8, 2, 255] {
            let madt = build_madt(&AcpiConfig::new(vcpus));
            let madt = check_sdt(&madt, b"APIC", MADT_REVISION);
            assert_eq!(u32_at(madt, 36) as u64, LAPIC_START);
            assert_eq!(u32_at(madt, 40) & 1, 1, "PCAT_COMPAT");
            let mut lapics = Vec::new();
            let mut ioapics = Vec::new();
            let mut overrides = Vec::new();
            let mut nmis = Vec::new();
            let mut off = 44;
            while off < madt.len() {
                let (kind, len) = (madt[off], madt[off + 1] as usize);
                let s = &madt[off..off + len];
                match kind {
                    0 => {
                        assert_eq!(len, 8);
                        lapics.push((s[2], s[3], u32_at(s, 4)));
                    }
                    1 => ioapics.push((s[2], u32_at(s, 4), u32_at(s, 8))),
                    2 => overrides.push((s[2], s[3], u32_at(s, 4), u16_at(s, 8))),
                    4 => nmis.push((s[2], u16_at(s, 3), s[5])),
                    other => panic!("unexpected MADT entry type {other}"),
                }
                off += len;
            }
            assert_eq!(off, madt.len());
            let expected: Vec<_> = (0..vcpus).map(|i| (i, i, 1)).collect();
            assert_eq!(lapics, expected, "{vcpus} vCPUs");
            assert_eq!(ioapics, vec![(vcpus, IOAPIC_START as u32, 0)]);
            assert_eq!(overrides, vec![(0, 0, 2, 0), (0, 9, 9, 0x000d)]);
            assert_eq!(nmis, vec![(0xff, 0, 1)]);
        }
    }
}
