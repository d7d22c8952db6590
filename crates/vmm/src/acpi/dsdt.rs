//! DSDT: the AML namespace of a Flint VM.
//!
//! ```text
//! \_SB.PCI0        PCI root bridge (conf1 at 0xcf8), _CRS windows, _PRT
//! \_SB.PCI0.Snn    one object per slot 1..31 (_ADR, _SUN [, _EJ0])
//! \_SB.COM1        8250 UART at 0x3f8, IRQ 4
//! \_SB.RTC_        CMOS RTC at 0x70 (no IRQ: no alarm interrupts)
//! \_SB.KBD_        i8042 keyboard controller at 0x60/0x64, IRQ 1
//! \_S5_            soft-off sleep type, matching the PM device
//! \_PIC            accepts the OS's interrupt model (APIC only here)
//! ```
//! With `AcpiConfig::pci_hotplug`, PCI0 also gets the hotplug registers
//! (QEMU PIIX4 style: PCIU/PCID/B0EJ at `PORT_PCI_HOTPLUG`), a PCNT method
//! that notifies slots, `_EJ0` on each slot of `pci_hotplug_slots`, and
//! `\_GPE._E01` calling PCNT; Linux's acpiphp drives hotplug from those
//! notifications (a slot without `_EJ0` is not a hotplug slot to it).

use acpi_tables::aml::{
    AddressSpace, AddressSpaceCacheable, And, Device, EISAName, Field, FieldAccessType, FieldEntry,
    FieldLockRule, FieldUpdateRule, IO, If, Local, Method, MethodCall, Name, Notify, ONE, OpRegion,
    OpRegionSpace, Package, PackageBuilder, Path, ResourceTemplate, Scope, Store, ZERO,
};
use acpi_tables::{Aml, AmlSink};

use super::config::{AcpiConfig, sdt};
use super::pm::SLP_TYP_S5;
// The hotplug registers (PCIU/PCID/B0EJ) are the `pci_hotplug` device's.
use crate::layout::{
    IOAPIC_PINS, IRQ_COM1, IRQ_RTC, MSI_GSI_START, PCI_HOTPLUG_LEN, PCI_MMIO32_SIZE,
    PCI_MMIO32_START, PCI_SLOTS, PORT_CMOS, PORT_COM1, PORT_I8042_COMMAND, PORT_I8042_DATA,
    PORT_PCI_CONFIG_ADDRESS, PORT_PCI_HOTPLUG,
};

/// DSDT revision 2: AML integers are 64 bits wide.
const DSDT_REVISION: u8 = 2;

/// GPE0 bit the PCI hotplug controller raises; `\_GPE._E01` handles it.
pub const GPE_PCI_HOTPLUG: u8 = 1;

/// PCI INTx lines end on IOAPIC pins 16..23.
const PCI_INTX_GSI_BASE: u32 = 16;
const PCI_INTX_GSI_COUNT: u32 = 8;
const PCI_INTX_PINS: u8 = 4;

const I8042_IRQ: u8 = 1;

// Compile-time checks of the layout the AML encodes, so the conversions
// below cannot truncate.
const _: () = assert!(PCI_INTX_GSI_BASE + PCI_INTX_GSI_COUNT <= IOAPIC_PINS);
const _: () = assert!(PCI_INTX_GSI_BASE + PCI_INTX_GSI_COUNT <= MSI_GSI_START);
const _: () = assert!(PCI_MMIO32_SIZE > 0 && PCI_MMIO32_START + PCI_MMIO32_SIZE <= 1 << 32);
// Slot bitmaps in the hotplug registers are 32 bits.
const _: () = assert!(PCI_SLOTS <= 32);
const _: () = assert!(IRQ_COM1 < 16 && IRQ_RTC < 16);

/// The IOAPIC GSI that INTx `pin` (0 = INTA .. 3 = INTD) of the device in
/// `slot` on bus 0 raises: the usual swizzle, spread over 8 GSIs. The PCI
/// device manager must wire INTx with this same function.
pub fn pci_intx_gsi(slot: u8, pin: u8) -> u32 {
    PCI_INTX_GSI_BASE + (u32::from(slot) + u32::from(pin % PCI_INTX_PINS)) % PCI_INTX_GSI_COUNT
}

/// AML already serialized. The crate's builders borrow their children, so
/// helpers return owned bytes that their parent then borrows.
struct Raw(Vec<u8>);

impl Aml for Raw {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(&self.0);
    }
}

fn raw(aml: &dyn Aml) -> Raw {
    let mut bytes = Vec::new();
    aml.to_aml_bytes(&mut bytes);
    Raw(bytes)
}

fn refs(items: &[Raw]) -> impl Iterator<Item = &dyn Aml> {
    items.iter().map(|r| r as &dyn Aml)
}

/// IRQNoFlags() descriptor: an ISA IRQ, edge-triggered, active high. The
/// crate only has the extended descriptor; this short one is what PC
/// firmware uses for legacy devices.
struct IrqNoFlags(u8);

impl Aml for IrqNoFlags {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.byte(0x22); // small resource, type 4 (IRQ), length 2
        sink.word(1u16.checked_shl(u32::from(self.0)).unwrap_or(0));
    }
}

/// Name of the slot object, e.g. "S1F_" (printed "S1F" by disassemblers).
fn slot_name(slot: u8) -> String {
    format!("S{slot:02X}_")
}

fn pci_crs(config: &AcpiConfig) -> Raw {
    let bus = AddressSpace::new_bus_number(0u16, 0u16);
    // The conf1 registers themselves.
    let conf1 = IO::new(PORT_PCI_CONFIG_ADDRESS, PORT_PCI_CONFIG_ADDRESS, 1, 8);
    // All other I/O ports are forwarded to the bus.
    let io_low = AddressSpace::new_io(0u16, PORT_PCI_CONFIG_ADDRESS - 1, None);
    let io_high = AddressSpace::new_io(PORT_PCI_CONFIG_ADDRESS + 8, 0xffffu16, None);
    // Checked at compile time above to end at or below 4 GiB; starts at
    // or below Flint's own BARs.
    let start = config.pci_window_start.min(PCI_MMIO32_START as u32);
    let mmio32 = AddressSpace::new_memory(
        AddressSpaceCacheable::NotCacheable,
        true,
        start,
        (PCI_MMIO32_START + PCI_MMIO32_SIZE - 1) as u32,
        None,
    );
    raw(&Name::new(
        "_CRS".into(),
        &ResourceTemplate::new(vec![&bus, &conf1, &io_low, &io_high, &mmio32]),
    ))
}

/// _PRT: every INTx of every slot straight to an IOAPIC GSI (no link
/// devices: the guest runs in APIC mode).
fn pci_prt() -> Raw {
    let mut prt = PackageBuilder::new();
    for slot in 1..PCI_SLOTS {
        // Device address with "any function".
        let address = (u32::from(slot) << 16) | 0xffff;
        for pin in 0..PCI_INTX_PINS {
            let gsi = pci_intx_gsi(slot, pin);
            // Source Zero: the last field is a GSI, not a link device index.
            prt.add_element(&Package::new(vec![&address, &pin, &ZERO, &gsi]));
        }
    }
    raw(&Name::new("_PRT".into(), &prt))
}

fn slot_device(slot: u8, hotplug: bool) -> Raw {
    let adr = Name::new("_ADR".into(), &(u32::from(slot) << 16));
    let sun = Name::new("_SUN".into(), &u32::from(slot));
    // _EJ0: tell the hotplug controller the guest let go of this slot.
    let eject_register = Path::new("\\_SB_.PCI0.B0EJ");
    let slot_bit = 1u32 << slot;
    let eject = Store::new(&eject_register, &slot_bit);
    let ej0 = Method::new("_EJ0".into(), 1, false, vec![&eject]);
    let mut children: Vec<&dyn Aml> = vec![&adr, &sun];
    if hotplug {
        children.push(&ej0);
    }
    raw(&Device::new(Path::new(&slot_name(slot)), children))
}

/// Hotplug registers and PCNT, which notifies each hotplug slot whose bit
/// is set in PCIU (Device Check: scan it) or PCID (Eject Request).
fn pci_hotplug_objects(slots: u32) -> Vec<Raw> {
    let region = OpRegion::new(
        "PCST".into(),
        OpRegionSpace::SystemIO,
        &PORT_PCI_HOTPLUG,
        &PCI_HOTPLUG_LEN,
    );
    let fields = Field::new(
        "PCST".into(),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::WriteAsZeroes,
        vec![
            FieldEntry::Named(*b"PCIU", 32),
            FieldEntry::Named(*b"PCID", 32),
            FieldEntry::Named(*b"B0EJ", 32),
        ],
    );

    let mut body = vec![
        raw(&Store::new(&Local(0), &Path::new("PCIU"))),
        raw(&Store::new(&Local(1), &Path::new("PCID"))),
    ];
    const DEVICE_CHECK: u8 = 1;
    const EJECT_REQUEST: u8 = 3;
    for slot in (1..PCI_SLOTS).filter(|s| slots & (1 << s) != 0) {
        let mask = 1u32 << slot;
        let name = Path::new(&slot_name(slot));
        for (local, event) in [(0, DEVICE_CHECK), (1, EJECT_REQUEST)] {
            let local = Local(local);
            let test = And::new(&ZERO, &local, &mask);
            let notify = Notify::new(&name, &event);
            body.push(raw(&If::new(&test, vec![&notify])));
        }
    }
    // Serialized: two GPE runs must not interleave their register reads.
    let pcnt = Method::new("PCNT".into(), 0, true, refs(&body).collect());
    vec![raw(&region), raw(&fields), raw(&pcnt)]
}

fn pci_root(config: &AcpiConfig) -> Raw {
    // No _ADR: a device object has either a _HID or an _ADR (ACPI 6.5,
    // 6.1), and iasl warns about both (QEMU's PCI0 carries both).
    // PNP0A03 (PCI, not PCIe): config space is reached through conf1 only,
    // there is no ECAM/MCFG that PNP0A08 would imply. No _OSC either, so
    // hotplug stays with ACPI (acpiphp) rather than native PCIe hotplug.
    let hid = Name::new("_HID".into(), &EISAName::new("PNP0A03"));
    let seg = Name::new("_SEG".into(), &ZERO);
    let uid = Name::new("_UID".into(), &ZERO);
    let bbn = Name::new("_BBN".into(), &ZERO);
    let crs = pci_crs(config);
    let prt = pci_prt();
    let hotplug = if config.pci_hotplug {
        pci_hotplug_objects(config.pci_hotplug_slots)
    } else {
        Vec::new()
    };
    let slots: Vec<Raw> = (1..PCI_SLOTS)
        .map(|slot| {
            let ejectable = config.pci_hotplug && config.pci_hotplug_slots & (1 << slot) != 0;
            slot_device(slot, ejectable)
        })
        .collect();

    let mut children: Vec<&dyn Aml> = vec![&hid, &seg, &uid, &bbn, &crs, &prt];
    children.extend(refs(&hotplug));
    children.extend(refs(&slots));
    raw(&Device::new("PCI0".into(), children))
}

fn com1() -> Raw {
    let hid = Name::new("_HID".into(), &EISAName::new("PNP0501"));
    let uid = Name::new("_UID".into(), &ONE);
    let io = IO::new(PORT_COM1, PORT_COM1, 1, 8);
    let irq = IrqNoFlags(IRQ_COM1 as u8);
    let crs = Name::new("_CRS".into(), &ResourceTemplate::new(vec![&io, &irq]));
    raw(&Device::new("COM1".into(), vec![&hid, &uid, &crs]))
}

fn rtc() -> Raw {
    let hid = Name::new("_HID".into(), &EISAName::new("PNP0B00"));
    let io = IO::new(PORT_CMOS, PORT_CMOS, 1, 2);
    // No IRQ: the CMOS raises no alarm/update interrupts, and an RTC that
    // lists IRQ 8 makes hwclock wait for update interrupts that never come.
    let crs = Name::new("_CRS".into(), &ResourceTemplate::new(vec![&io]));
    raw(&Device::new("RTC_".into(), vec![&hid, &crs]))
}

/// The i8042 the FADT's IAPC_BOOT_ARCH 8042 flag announces. SeaBIOS skips
/// its PS/2 setup when the DSDT it parses lacks PNP0303.
fn keyboard() -> Raw {
    let hid = Name::new("_HID".into(), &EISAName::new("PNP0303"));
    let data = IO::new(PORT_I8042_DATA, PORT_I8042_DATA, 1, 1);
    let command = IO::new(PORT_I8042_COMMAND, PORT_I8042_COMMAND, 1, 1);
    let irq = IrqNoFlags(I8042_IRQ);
    let crs = Name::new(
        "_CRS".into(),
        &ResourceTemplate::new(vec![&data, &command, &irq]),
    );
    raw(&Device::new("KBD_".into(), vec![&hid, &crs]))
}

/// `\_GPE._Exx` for the hotplug GPE: run PCNT.
fn gpe_scope() -> Raw {
    let hid = Name::new("_HID".into(), &"ACPI0006");
    let call = MethodCall::new("\\_SB_.PCI0.PCNT".into(), vec![]);
    let handler = Method::new(
        Path::new(&format!("_E{GPE_PCI_HOTPLUG:02X}")),
        0,
        false,
        vec![&call],
    );
    raw(&Scope::new("\\_GPE".into(), vec![&hid, &handler]))
}

pub(super) fn build_dsdt(config: &AcpiConfig) -> Vec<u8> {
    let pci0 = pci_root(config);
    let (com1, rtc, kbd) = (com1(), rtc(), keyboard());
    let sb = Scope::new("\\_SB_".into(), vec![&pci0, &com1, &rtc, &kbd]);

    // \_S5_: Package {SLP_TYPa, SLP_TYPb, reserved, reserved}; there is no
    // PM1b block, but SLP_TYPb is set alike, as is customary.
    let s5 = Name::new(
        "_S5_".into(),
        &Package::new(vec![&SLP_TYP_S5, &SLP_TYP_S5, &ZERO, &ZERO]),
    );
    // _PIC(model): the interrupt routing does not depend on it.
    let pic = Method::new("_PIC".into(), 1, false, vec![]);

    let mut body = Vec::new();
    sb.to_aml_bytes(&mut body);
    if config.pci_hotplug {
        gpe_scope().to_aml_bytes(&mut body);
    }
    s5.to_aml_bytes(&mut body);
    pic.to_aml_bytes(&mut body);
    sdt(config, *b"DSDT", DSDT_REVISION, &body)
}

#[cfg(test)]
mod tests {
    use super::super::tables::tests::{check_sdt, run_iasl, scratch_dir};
    use super::*;

    /// Disassembles the DSDT with iasl, then compiles the result again.
    /// Returns (disassembly, compiler output).
    fn iasl_round_trip(config: &AcpiConfig, name: &str) -> (String, String) {
        let dsdt = build_dsdt(config);
        check_sdt(&dsdt, b"DSDT", DSDT_REVISION);
        let dir = scratch_dir(name);
        std::fs::write(dir.join("dsdt.aml"), &dsdt).unwrap();
        let (ok, out) = run_iasl(&dir, &["-d", "dsdt.aml"]);
        assert!(ok, "iasl -d failed:\n{out}");
        let dsl = std::fs::read_to_string(dir.join("dsdt.dsl"))
            .unwrap_or_else(|e| panic!("iasl wrote no disassembly ({e}):\n{out}"));
        // Recompiling checks the AML for what the disassembler tolerates.
        let (ok, compiled) = run_iasl(&dir, &["-p", "again", "dsdt.dsl"]);
        assert!(
            ok,
            "iasl could not recompile the disassembly:\n{compiled}\n{dsl}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        (dsl, compiled)
    }

    fn assert_clean(dsl: &str, compiled: &str) {
        assert!(
            compiled.contains("0 Errors, 0 Warnings"),
            "iasl complained:\n{compiled}"
        );
        assert!(!dsl.contains("Error"), "{dsl}");
    }

    #[test]
    fn iasl_decompiles_the_dsdt() {
        let (dsl, compiled) = iasl_round_trip(&AcpiConfig::new(2), "dsdt");
        assert_clean(&dsl, &compiled);
        for needle in [
            "Device (PCI0)",
            "Name (_HID, EisaId (\"PNP0A03\")",
            "Name (_SEG, Zero)",
            "Name (_BBN, Zero)",
            "Name (_PRT, Package (0x7C)",
            "Name (_CRS, ResourceTemplate ()",
            "WordBusNumber (ResourceProducer",
            "0x0CF8,             // Range Minimum",
            "0x0CF7,             // Range Maximum",
            "0x0D00,             // Range Minimum",
            "0xC0000000,         // Range Minimum",
            "0xFEBFFFFF,         // Range Maximum",
            "Device (COM1)",
            "Name (_HID, EisaId (\"PNP0501\")",
            "0x03F8,             // Range Minimum",
            "IRQNoFlags ()\n                    {4}",
            "Device (RTC)",
            "Name (_HID, EisaId (\"PNP0B00\")",
            "Name (_HID, EisaId (\"PNP0303\")",
            "Name (_S5, Package (0x04)",
            "Method (_PIC, 1",
        ] {
            assert!(dsl.contains(needle), "no {needle:?} in:\n{dsl}");
        }
        for slot in 1..PCI_SLOTS {
            let device = format!("Device (S{slot:02X})");
            assert!(dsl.contains(&device), "no {device}");
            let adr = format!("Name (_ADR, 0x00{slot:02X}0000)");
            assert!(dsl.contains(&adr), "no {adr}");
        }
        assert!(!dsl.contains("_EJ0") && !dsl.contains("_GPE"));
        // 4 _PRT entries per slot.
        assert_eq!(dsl.matches("FFFF, \n").count(), 124);
    }

    #[test]
    fn iasl_decompiles_the_hotplug_dsdt() {
        let mut config = AcpiConfig::new(1);
        config.pci_hotplug = true;
        let (dsl, compiled) = iasl_round_trip(&config, "dsdt-hotplug");
        assert_clean(&dsl, &compiled);
        for needle in [
            "OperationRegion (PCST, SystemIO, 0xAE00, 0x0C)",
            "PCIU,   32",
            "B0EJ,   32",
            "Method (PCNT, 0, Serialized)",
            "Notify (S1F, One)",
            "Notify (S1F, 0x03)",
            "Scope (\\_GPE)",
            "Method (_E01, 0, NotSerialized)",
            "\\_SB.PCI0.PCNT ()",
            "Method (_EJ0, 1, NotSerialized)",
            "\\_SB.PCI0.B0EJ = 0x80000000",
        ] {
            assert!(dsl.contains(needle), "no {needle:?} in:\n{dsl}");
        }
        assert_eq!(dsl.matches("Method (_EJ0").count(), 31);
    }

    #[test]
    fn only_hotplug_slots_get_ej0_and_notifications() {
        let mut config = AcpiConfig::new(1);
        config.pci_hotplug = true;
        config.pci_hotplug_slots = (1 << 2) | (1 << 9);
        let (dsl, compiled) = iasl_round_trip(&config, "dsdt-hotplug-slots");
        assert_clean(&dsl, &compiled);
        assert_eq!(dsl.matches("Method (_EJ0").count(), 2);
        assert_eq!(dsl.matches("Notify (S").count(), 4);
        for needle in ["Notify (S02, One)", "Notify (S09, 0x03)", "B0EJ = 0x0200"] {
            assert!(dsl.contains(needle), "no {needle:?} in:\n{dsl}");
        }
        assert!(!dsl.contains("Notify (S05"));
    }

    #[test]
    fn s5_package_matches_the_pm_device() {
        let dsdt = build_dsdt(&AcpiConfig::new(1));
        let at = dsdt.windows(4).position(|w| w == b"_S5_").unwrap();
        // NameOp _S5_ PackageOp PkgLength NumElements BytePrefix value
        assert_eq!(dsdt[at - 1], 0x08);
        assert_eq!(
            &dsdt[at + 4..at + 10],
            &[0x12, 0x08, 0x04, 0x0a, SLP_TYP_S5, 0x0a]
        );
    }

    #[test]
    fn intx_swizzle_spreads_over_gsis_16_to_23() {
        assert_eq!(pci_intx_gsi(1, 0), 17);
        assert_eq!(pci_intx_gsi(1, 3), 20);
        assert_eq!(pci_intx_gsi(7, 1), 16);
        assert_eq!(pci_intx_gsi(31, 3), 18);
        for slot in 0..PCI_SLOTS {
            for pin in 0..4 {
                assert!((16..24).contains(&pci_intx_gsi(slot, pin)));
            }
            // The four pins of one slot use four different GSIs.
            let mut gsis: Vec<u32> = (0..4).map(|p| pci_intx_gsi(slot, p)).collect();
            gsis.dedup();
            assert_eq!(gsis.len(), 4);
        }
    }
}
