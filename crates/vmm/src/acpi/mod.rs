//! ACPI: the tables the VMM generates (acpi_tables crate) and the PM registers behind them.
//!
//! What the VMM core calls:
//! - [`create_acpi_tables`] for direct kernel boot: writes RSDP + XSDT, FADT,
//!   FACS, MADT and DSDT at `layout::ACPI_START` and returns the RSDP address
//!   (put it in the zero page's `acpi_rsdp_addr` too; Linux also finds it by
//!   scanning 0xE0000..0xFFFFF).
//! - [`build_acpi_tables`] for the firmware boot path: the same tables as two
//!   blobs (tables, RSDP) plus the pointer fields and checksums that fw_cfg's
//!   table-loader must patch.
//! - [`PmDevice`] on the PIO bus at `PORT_PM1A_EVENT`, length `PM_BLOCK_LEN`,
//!   and its [`GpeDevice`] view at `PORT_GPE0`, length `GPE0_BLOCK_LEN`.
//! - [`ResetDevice`] on the PIO bus at `PORT_RESET`, length 1.
//! - [`PciHotplug`] (its [`PciHotplugPorts`] on the PIO bus at
//!   `PORT_PCI_HOTPLUG`, length `PCI_HOTPLUG_LEN`): PCI slot hot-plug.
//!
//! The tables and the devices agree through the constants in `layout` and the
//! few exported here ([`SLP_TYP_S5`], [`GPE_PCI_HOTPLUG`], [`pci_intx_gsi`]).

mod config;
mod dsdt;
mod fadt;
#[cfg(test)]
mod hotplug_aml_tests;
mod madt;
mod pci_hotplug;
mod pm;
mod reset;
mod tables;

// The VMM core is wired up in a later change; until then nothing imports
// these (like `dead_code` in vmm/mod.rs, for items that land before users).
pub use config::AcpiConfig;
pub use dsdt::{GPE_PCI_HOTPLUG, pci_intx_gsi};
pub use pci_hotplug::{EjectWait, PciHotplug, PciHotplugPorts};
pub use pm::{GpeDevice, PM_TIMER_HZ, PmDevice, PmError, SLP_TYP_S5};
pub use reset::{RESET_VALUE, ResetDevice};
pub use tables::{
    AcpiError, AcpiTables, Blob, TABLES_ALIGN, TableChecksum, TableEntry, TablePointer,
    build_acpi_tables, create_acpi_tables, create_acpi_tables_at,
};
