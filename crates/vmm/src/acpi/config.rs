//! What every table is built from: the VM's description ([`AcpiConfig`])
//! and the standard table header ([`sdt`]). The table builders (DSDT, FADT,
//! MADT) and the assembler of the whole set (`tables`) all use these.

use acpi_tables::sdt::Sdt;

use crate::layout::PCI_MMIO32_START;

/// Size of the standard table header; XSDT entries follow it.
pub(super) const SDT_HEADER_LEN: usize = 36;

/// What the tables describe beyond the fixed layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiConfig {
    /// Number of vCPUs; vCPU `i` has APIC id `i` (ids 0..=254 are xAPIC ids,
    /// so a u8 count is exactly what a MADT without x2APIC entries can hold).
    pub vcpus: u8,
    /// OEM ID in every table header and in the RSDP.
    pub oem_id: [u8; 6],
    /// OEM table ID in every table header.
    pub oem_table_id: [u8; 8],
    pub oem_revision: u32,
    /// Emit the ACPI PCI hotplug AML (slot _EJ0 methods, the GPE0 bit 1
    /// handler and the registers at `PORT_PCI_HOTPLUG`, served by
    /// `acpi::PciHotplug`).
    pub pci_hotplug: bool,
    /// Bitmap of the slots that are hotplug slots (bit n = slot n).
    pub pci_hotplug_slots: u32,
    /// Start of the 32-bit PCI MMIO window (`layout::pci_window_start`);
    /// it ends below the IOAPIC.
    pub pci_window_start: u32,
}

impl AcpiConfig {
    pub fn new(vcpus: u8) -> Self {
        AcpiConfig {
            vcpus,
            oem_id: *b"FLINT ",
            oem_table_id: *b"FLINTVM ",
            oem_revision: 1,
            pci_hotplug: false,
            pci_hotplug_slots: !1,
            pci_window_start: PCI_MMIO32_START as u32,
        }
    }

    /// The tables of a VM with `memory_bytes` of RAM.
    pub fn for_vm(vcpus: u8, memory_bytes: u64) -> Self {
        AcpiConfig {
            // Both starts are below 4 GiB.
            pci_window_start: crate::layout::pci_window_start(memory_bytes) as u32,
            ..AcpiConfig::new(vcpus)
        }
    }
}

/// The header every SDT but the FACS starts with; `Sdt` keeps length and
/// checksum right as the body is appended.
pub(super) fn sdt(config: &AcpiConfig, signature: [u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    // 36 is the header length; Sdt::new only accepts lengths >= 36.
    let mut table = Sdt::new(
        signature,
        SDT_HEADER_LEN as u32,
        revision,
        config.oem_id,
        config.oem_table_id,
        config.oem_revision,
    );
    table.append_slice(body);
    table.as_slice().to_vec()
}
