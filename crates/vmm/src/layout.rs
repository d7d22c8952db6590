//! The guest-physical address map and the fixed I/O ports of a Flint VM
//! (x86_64). ACPI tables, e820, the device manager and the firmware paths
//! all read it from here.

// ---- Memory ----
/// Low RAM ends at the EBDA, as on a PC.
pub const LOW_RAM_END: u64 = 0x9_fc00;
/// GDT, IDT and page tables for 64-bit direct boot.
pub const BOOT_GDT_START: u64 = 0x500;
pub const BOOT_IDT_START: u64 = 0x520;
pub const PVH_INFO_START: u64 = 0x6000;
pub const ZERO_PAGE_START: u64 = 0x7000;
pub const PML4_START: u64 = 0x9000;
pub const PDPTE_START: u64 = 0xa000;
pub const PDE_START: u64 = 0xb000;
/// Initial stack pointer for direct boot.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
pub const CMDLINE_START: u64 = 0x2_0000;
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// ACPI tables (RSDP first) live in the BIOS area, where the guest also
/// searches for the RSDP.
pub const ACPI_START: u64 = 0xe_0000;
pub const ACPI_MAX_SIZE: u64 = 0x1_0000;
/// SMBIOS entry point and tables.
pub const SMBIOS_START: u64 = 0xf_0000;
/// Kernel load address for direct boot (1 MiB).
pub const HIGH_RAM_START: u64 = 0x10_0000;

/// The 32-bit PCI hole: RAM stops here and resumes at 4 GiB.
pub const PCI_HOLE_START: u64 = 0xc000_0000;
pub const FOUR_GIB: u64 = 0x1_0000_0000;
/// MMIO window for 32-bit PCI BARs (inside the hole, below the IOAPIC).
pub const PCI_MMIO32_START: u64 = 0xc000_0000;
pub const PCI_MMIO32_SIZE: u64 = 0x3ec0_0000; // up to 0xfec0_0000
/// Where the guest's view of the 32-bit PCI window starts (the DSDT's
/// _CRS). Flint's own BARs sit at PCI_MMIO32_START, but SeaBIOS reassigns
/// them as on an i440FX: from 2 GiB when RAM ends at or below 2 GiB, else
/// from 3 GiB. The window covers both, so Linux keeps either placement.
pub fn pci_window_start(memory_bytes: u64) -> u64 {
    const TWO_GIB: u64 = 0x8000_0000;
    if memory_bytes <= TWO_GIB {
        TWO_GIB
    } else {
        PCI_MMIO32_START
    }
}
pub const IOAPIC_START: u64 = 0xfec0_0000;
pub const LAPIC_START: u64 = 0xfee0_0000;
/// KVM's EPT identity-map page and real-mode TSS (3 pages), where QEMU puts
/// them: just below the 16 MiB of firmware space under 4 GiB.
pub const KVM_IDENTITY_MAP_START: u64 = 0xfeff_c000;
pub const KVM_TSS_START: u64 = 0xfeff_d000;
pub const KVM_RESERVED_END: u64 = 0xff00_0000;
/// The BIOS ROM ends at 4 GiB (reset vector at 0xffff_fff0) and may start
/// as low as this.
pub const FIRMWARE_LOWEST: u64 = KVM_RESERVED_END;
/// The last 128 KiB of the BIOS also appear at 0xE0000..1 MiB, where the
/// CPU's first far jump lands.
pub const BIOS_LOW_ALIAS_START: u64 = 0xe_0000;
pub const BIOS_LOW_ALIAS_LEN: u64 = 0x2_0000;

// ---- I/O ports ----
pub const PORT_I8042_DATA: u16 = 0x60;
pub const PORT_I8042_COMMAND: u16 = 0x64;
pub const PORT_CMOS: u16 = 0x70; // index 0x70, data 0x71
pub const PORT_COM1: u16 = 0x3f8;
pub const PORT_PCI_CONFIG_ADDRESS: u16 = 0xcf8;
pub const PORT_PCI_CONFIG_DATA: u16 = 0xcfc;
/// Reset control register (PIIX3 RCR); also the FADT reset register.
pub const PORT_RESET: u16 = 0xcf9;
/// ACPI PM1a event block (status u16, enable u16), PM1a control (u16), PM
/// timer (u32).
pub const PORT_PM1A_EVENT: u16 = 0x600;
pub const PORT_PM1A_CONTROL: u16 = 0x604;
pub const PORT_PM_TIMER: u16 = 0x608;
pub const PM_BLOCK_LEN: u16 = 0x10;
/// ACPI GPE0 block (status u16, enable u16), for PCI hotplug notification.
pub const PORT_GPE0: u16 = 0xafe0;
pub const GPE0_BLOCK_LEN: u16 = 4;
/// ACPI PCI hotplug registers (QEMU's PIIX4 layout): PCIU, PCID, B0EJ.
pub const PORT_PCI_HOTPLUG: u16 = 0xae00;
pub const PCI_HOTPLUG_LEN: u16 = 12;

// ---- Interrupts (GSIs of the in-kernel IOAPIC) ----
pub const IRQ_COM1: u32 = 4;
pub const IRQ_RTC: u32 = 8;
/// ACPI SCI: level-triggered, active high.
pub const IRQ_SCI: u32 = 9;
pub const IOAPIC_PINS: u32 = 24;
/// GSIs from here up are MSI routes.
pub const MSI_GSI_START: u32 = 24;

/// PCI slots on bus 0; slot 0 is the host bridge.
pub const PCI_SLOTS: u8 = 32;
