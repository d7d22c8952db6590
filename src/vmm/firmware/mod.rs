//! Firmware interfaces: QEMU's fw_cfg device (what SeaBIOS reads its
//! configuration, ACPI and SMBIOS tables from) and EC2-flavoured SMBIOS.
//!
//! How the VMM core wires them:
//! - Firmware boot (SeaBIOS): build `acpi::build_acpi_tables(&config, 0)`
//!   and [`smbios::build_smbios`], create [`fw_cfg::FwCfg::new`] with the
//!   guest memory, call [`fw_cfg::FwCfg::add_seabios_items`] (or the
//!   individual `add_*`/`set_*` helpers), and insert it on the PIO bus at
//!   [`fw_cfg::PORT_FW_CFG_SELECTOR`], length [`fw_cfg::FW_CFG_PORT_LEN`].
//! - Direct kernel boot: [`smbios::write_smbios`] at
//!   `GuestAddress(layout::SMBIOS_START)`; that area is already reserved in
//!   `memory::e820_map` (640 KiB..1 MiB), so the guest leaves it alone.

pub mod fw_cfg;
pub mod smbios;
