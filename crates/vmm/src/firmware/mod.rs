//! Firmware interfaces: the BIOS ROM of an AMI boot, QEMU's fw_cfg device
//! (what SeaBIOS reads its configuration, ACPI and SMBIOS tables from) and
//! EC2-flavoured SMBIOS.
//!
//! [`install_platform_tables`] puts the ACPI and SMBIOS tables where the
//! boot path wants them:
//! - firmware boot (SeaBIOS): handed over through fw_cfg (etc/acpi/*,
//!   etc/table-loader, etc/smbios/*), with everything else SeaBIOS reads;
//!   SeaBIOS places them itself.
//! - direct kernel boot: written into the BIOS area (RSDP at 0xE0000,
//!   SMBIOS at 0xF0000), which `memory::e820_map` reserves, so the guest
//!   finds them by the usual scans and leaves them alone.

pub mod fw_cfg;
pub mod rom;
pub mod smbios;

use std::sync::{Arc, Mutex};

use thiserror::Error;
use vm_memory::GuestAddress;

use crate::acpi::{self, AcpiConfig};
use crate::bus::{Bus, BusError};
use crate::layout::SMBIOS_START;
use crate::memory::GuestMemoryMmap;
use flint_contract::config::VmConfig;
use fw_cfg::{FW_CFG_PORT_LEN, FwCfg, FwCfgError, PORT_FW_CFG_SELECTOR, pci_boot_path};
use smbios::{SmbiosConfig, SmbiosError};

#[derive(Debug, Error)]
pub enum FirmwareError {
    #[error("ACPI tables: {0}")]
    Acpi(#[from] acpi::AcpiError),
    #[error("SMBIOS: {0}")]
    Smbios(#[from] SmbiosError),
    #[error("fw_cfg: {0}")]
    FwCfg(#[from] FwCfgError),
    #[error("cannot place fw_cfg on the bus: {0}")]
    Bus(#[from] BusError),
}

/// PCI slot of the boot disk (the AMI image is the first disk).
pub const BOOT_DISK_SLOT: u8 = 1;

/// Installs the ACPI and SMBIOS tables for `config`'s boot path (see the
/// module doc). Returns the RSDP's address for a direct boot (the kernel's
/// boot parameters carry it), `None` for a firmware boot.
/// What the platform tables describe: the few facts of a VM the firmware
/// and the tables need (not the whole VM config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub vcpus: u8,
    pub memory_bytes: u64,
    /// EC2's identity in SMBIOS.
    pub instance_type: String,
    pub instance_id: String,
    /// Firmware (SeaBIOS) boots the VM and reads the tables over fw_cfg;
    /// otherwise they are written into guest memory for a direct boot.
    pub firmware: bool,
}

impl Platform {
    pub fn of(config: &VmConfig) -> Platform {
        Platform {
            vcpus: config.vcpus,
            memory_bytes: config.memory_mib << 20,
            instance_type: config.identity.instance_type.clone(),
            instance_id: config.identity.instance_id.clone(),
            firmware: config.boots_firmware(),
        }
    }
}

pub fn install_platform_tables(
    pio: &Bus,
    mem: &GuestMemoryMmap,
    platform: &Platform,
) -> Result<Option<GuestAddress>, FirmwareError> {
    let memory_bytes = platform.memory_bytes;
    let acpi_config = AcpiConfig {
        pci_hotplug: true,
        pci_hotplug_slots: crate::pci::slots::hotplug_slots(),
        ..AcpiConfig::for_vm(platform.vcpus, memory_bytes)
    };
    let smbios_config = SmbiosConfig {
        instance_type: platform.instance_type.clone(),
        instance_id: platform.instance_id.clone(),
        vcpus: u32::from(platform.vcpus),
        memory_bytes,
        uuid: None,
    };
    if !platform.firmware {
        smbios::write_smbios(mem, &smbios_config, GuestAddress(SMBIOS_START))?;
        return Ok(Some(acpi::create_acpi_tables(mem, &acpi_config)?));
    }
    let tables = acpi::build_acpi_tables(&acpi_config, 0)?;
    let smbios = smbios::build_smbios(&smbios_config)?;
    let mut device = FwCfg::new(mem.clone());
    // SeaBIOS matches "/pci@i0cf8/*@1" against this: any device name.
    // "HALT" (QEMU's -boot strict=on): boot nothing but the image, as EC2
    // boots only the root volume (no floppy or other-disk fallbacks).
    let bootorder = [
        format!("{}/disk@0,0", pci_boot_path("scsi", BOOT_DISK_SLOT, 0)),
        "HALT".to_string(),
    ];
    device.add_seabios_items(
        u16::from(platform.vcpus),
        memory_bytes,
        &bootorder,
        &smbios,
        &tables,
    )?;
    pio.insert(
        Arc::new(Mutex::new(device)),
        u64::from(PORT_FW_CFG_SELECTOR),
        FW_CFG_PORT_LEN,
    )?;
    Ok(None)
}
