//! FADT and FACS: the fixed-hardware description of a PC (not hardware
//! reduced). The registers named here are the ones `pm.rs` and `reset.rs`
//! emulate, at the ports from `layout`.

use std::mem::offset_of;

use acpi_tables::Aml;
use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags, PmProfile};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};

use super::config::AcpiConfig;
use super::reset::RESET_VALUE;
use crate::layout::{
    GPE0_BLOCK_LEN, IRQ_SCI, PORT_GPE0, PORT_PM_TIMER, PORT_PM1A_CONTROL, PORT_PM1A_EVENT,
    PORT_RESET,
};

/// Register block lengths in bytes (FADT PM1_EVT_LEN etc.).
const PM1_EVT_LEN: u8 = 4;
const PM1_CNT_LEN: u8 = 2;
/// 32-bit PM timer (TMR_VAL_EXT).
const PM_TMR_LEN: u8 = 4;

/// IAPC_BOOT_ARCH flags (ACPI 6.5, table 5.11).
const IAPC_LEGACY_DEVICES: u16 = 1 << 0;
const IAPC_8042: u16 = 1 << 1;
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;

/// Latencies above 100 / 1000 us tell the OS that C2 / C3 do not exist.
const NO_C2_LATENCY: u16 = 101;
const NO_C3_LATENCY: u16 = 1001;

/// FACS version for the 64-byte layout with X_FIRMWARE_WAKING_VECTOR.
const FACS_VERSION: u8 = 2;

/// The FADT's pointer fields, as (offset, width): FIRMWARE_CTRL, DSDT,
/// X_FIRMWARE_CTRL, X_DSDT. Taken from the crate's struct so they cannot
/// drift from the bytes it emits.
pub(super) const POINTER_FIELDS: [(usize, u8); 4] = [
    (offset_of!(FADTBuilder, firmware_ctrl), 4),
    (offset_of!(FADTBuilder, dsdt), 4),
    (offset_of!(FADTBuilder, x_firmware_ctrl), 8),
    (offset_of!(FADTBuilder, x_dsdt), 8),
];

// The GPE0 block is split into equal status and enable halves; the FADT
// length field is one byte.
const _: () = assert!(GPE0_BLOCK_LEN.is_multiple_of(2) && GPE0_BLOCK_LEN <= 255);

fn io_gas(port: u16, len: u8, access: AccessSize) -> GAS {
    GAS::new(AddressSpace::SystemIo, len * 8, 0, access, u64::from(port))
}

pub(super) fn build_facs() -> Vec<u8> {
    let mut facs = FACS::new();
    facs.version = FACS_VERSION;
    let mut bytes = Vec::new();
    facs.to_aml_bytes(&mut bytes);
    bytes
}

/// The FADT pointing at the DSDT and FACS. Both the 32-bit and the X_
/// fields are filled with the same addresses: old firmware (SeaBIOS reads
/// the 32-bit ones) and current OSes (which prefer X_) agree, and ACPICA
/// only complains when the two differ.
pub(super) fn build_fadt(config: &AcpiConfig, dsdt: u32, facs: u32) -> Vec<u8> {
    let mut f = FADTBuilder::new(config.oem_id, config.oem_table_id, config.oem_revision)
        .preferred_pm_profile(PmProfile::EnterpriseServer)
        // Processor supports WBINVD and HLT (C1) like any x86 CPU.
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        // PWR_BUTTON stays clear: the power button is the fixed-feature one
        // (PM1 PWRBTN_STS), which Linux turns into its "Power Button" input
        // device. SLP_BUTTON set means there is no fixed sleep button, and
        // the DSDT has no control-method one either.
        .flag(Flags::SlpButton)
        .flag(Flags::TmrValExt)
        .flag(Flags::ResetRegSup);

    f.dsdt = dsdt.into();
    f.x_dsdt = u64::from(dsdt).into();
    f.firmware_ctrl = facs.into();
    f.x_firmware_ctrl = u64::from(facs).into();

    f.sci_int = (IRQ_SCI as u16).into();
    // No SMI command port: the platform is always in ACPI mode, so SCI_EN
    // reads 1 and ACPI_ENABLE/ACPI_DISABLE must be zero.
    f.smi_cmd = 0.into();
    f.acpi_enable = 0;
    f.acpi_disable = 0;

    f.pm1a_evt_blk = u32::from(PORT_PM1A_EVENT).into();
    f.pm1a_cnt_blk = u32::from(PORT_PM1A_CONTROL).into();
    f.pm_tmr_blk = u32::from(PORT_PM_TIMER).into();
    f.gpe0_blk = u32::from(PORT_GPE0).into();
    f.pm1_evt_len = PM1_EVT_LEN;
    f.pm1_cnt_len = PM1_CNT_LEN;
    f.pm_tmr_len = PM_TMR_LEN;
    f.gpe0_blk_len = GPE0_BLOCK_LEN as u8;

    f.x_pm1a_evt_blk = io_gas(PORT_PM1A_EVENT, PM1_EVT_LEN, AccessSize::WordAccess);
    f.x_pm1a_cnt_blk = io_gas(PORT_PM1A_CONTROL, PM1_CNT_LEN, AccessSize::WordAccess);
    f.x_pm_tmr_blk = io_gas(PORT_PM_TIMER, PM_TMR_LEN, AccessSize::DwordAccess);
    f.x_gpe0_blk = io_gas(PORT_GPE0, GPE0_BLOCK_LEN as u8, AccessSize::ByteAccess);

    f.p_lvl2_lat = NO_C2_LATENCY.into();
    f.p_lvl3_lat = NO_C3_LATENCY.into();
    f.iapc_boot_arch = (IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_VGA_NOT_PRESENT).into();
    // CMOS index of the century byte (devices::legacy::cmos keeps it there).
    f.century = 0x32;

    f.reset_reg = io_gas(PORT_RESET, 1, AccessSize::ByteAccess);
    f.reset_value = RESET_VALUE;

    let mut bytes = Vec::new();
    f.finalize().to_aml_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::super::tables::tests::{check_sdt, u16_at, u32_at, u64_at};
    use super::*;

    /// Reads a GAS: (space, bit width, access size, address).
    fn gas(b: &[u8], off: usize) -> (u8, u8, u8, u64) {
        (b[off], b[off + 1], b[off + 3], u64_at(b, off + 4))
    }

    #[test]
    fn fadt_describes_the_pm_registers() {
        let fadt = build_fadt(&AcpiConfig::new(1), 0x1234_5678, 0x0abc_de40);
        let fadt = check_sdt(&fadt, b"FACP", 6);
        assert_eq!(fadt.len(), 276);
        assert_eq!(fadt[131], 5, "minor version");

        assert_eq!(u32_at(fadt, 36), 0x0abc_de40, "FIRMWARE_CTRL");
        assert_eq!(u32_at(fadt, 40), 0x1234_5678, "DSDT");
        assert_eq!(u64_at(fadt, 132), 0x0abc_de40, "X_FIRMWARE_CTRL");
        assert_eq!(u64_at(fadt, 140), 0x1234_5678, "X_DSDT");
        assert_eq!(POINTER_FIELDS, [(36, 4), (40, 4), (132, 8), (140, 8)]);

        assert_eq!(u16_at(fadt, 46), 9, "SCI_INT");
        assert_eq!(u32_at(fadt, 48), 0, "SMI_CMD");
        assert_eq!((fadt[52], fadt[53]), (0, 0), "ACPI_ENABLE/DISABLE");
        assert_eq!(u32_at(fadt, 56), 0x600, "PM1a_EVT_BLK");
        assert_eq!(u32_at(fadt, 60), 0, "PM1b_EVT_BLK");
        assert_eq!(u32_at(fadt, 64), 0x604, "PM1a_CNT_BLK");
        assert_eq!(u32_at(fadt, 76), 0x608, "PM_TMR_BLK");
        assert_eq!(u32_at(fadt, 80), 0xafe0, "GPE0_BLK");
        assert_eq!(&fadt[88..93], &[4, 2, 0, 4, 4], "block lengths");
        assert_eq!(u16_at(fadt, 109), 0b111, "IAPC_BOOT_ARCH");

        let flags = u32_at(fadt, 112);
        assert_eq!(
            flags & (1 << 4),
            0,
            "PWR_BUTTON must be clear (fixed button)"
        );
        assert_ne!(flags & (1 << 5), 0, "SLP_BUTTON (no sleep button)");
        assert_ne!(flags & (1 << 8), 0, "TMR_VAL_EXT");
        assert_ne!(flags & (1 << 10), 0, "RESET_REG_SUP");
        assert_eq!(flags & (1 << 20), 0, "not HW_REDUCED");

        assert_eq!(gas(fadt, 116), (1, 8, 1, 0xcf9), "RESET_REG");
        assert_eq!(fadt[128], 0x06, "RESET_VALUE");
        assert_eq!(gas(fadt, 148), (1, 32, 2, 0x600), "X_PM1a_EVT_BLK");
        assert_eq!(gas(fadt, 172), (1, 16, 2, 0x604), "X_PM1a_CNT_BLK");
        assert_eq!(gas(fadt, 208), (1, 32, 3, 0x608), "X_PM_TMR_BLK");
        assert_eq!(gas(fadt, 220), (1, 32, 1, 0xafe0), "X_GPE0_BLK");
    }

    #[test]
    fn facs_is_64_bytes() {
        let facs = build_facs();
        assert_eq!(&facs[..4], b"FACS");
        assert_eq!(facs.len(), 64);
        assert_eq!(u32_at(&facs, 4), 64);
        assert_eq!(facs[32], FACS_VERSION);
    }
}
