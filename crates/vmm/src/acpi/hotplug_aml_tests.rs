//! The hot-plug AML run by ACPICA's own interpreter (acpiexec, from
//! acpica-tools like iasl): a GPE 1 event notifies exactly the hot-plug
//! slots whose bits are up in PCIU (Device Check) and PCID (Eject Request),
//! and a slot's `_EJ0` writes that slot's bit to B0EJ. acpiexec backs the
//! SystemIO region with memory, so a test table can set the registers.

use std::process::Command;

use super::config::AcpiConfig;
use super::dsdt::build_dsdt;
use super::tables::tests::{run_iasl, scratch_dir};
use crate::pci::slots::hotplug_slots;

/// A test SSDT: TST1 raises PCIU/PCID bits and runs the GPE handler; TST2
/// ejects slot 3 and returns what B0EJ got.
const TEST_TABLE: &str = r#"
DefinitionBlock ("", "SSDT", 2, "FLINT", "HPTEST", 1)
{
    External (\_SB.PCI0.PCIU, FieldUnitObj)
    External (\_SB.PCI0.PCID, FieldUnitObj)
    External (\_SB.PCI0.B0EJ, FieldUnitObj)
    External (\_SB.PCI0.S03._EJ0, MethodObj)
    External (\_GPE._E01, MethodObj)
    Method (TST1, 0)
    {
        // Slots 3 and 5 (a NIC slot) up, slots 9 and 6 (NIC) down.
        \_SB.PCI0.PCIU = 0x28
        \_SB.PCI0.PCID = 0x240
        \_GPE._E01 ()
    }
    Method (TST2, 0)
    {
        \_SB.PCI0.S03._EJ0 (Zero)
        Return (\_SB.PCI0.B0EJ)
    }
}
"#;

#[test]
fn acpica_runs_the_hotplug_notifications_and_eject() {
    let dir = scratch_dir("hotplug-aml");
    let config = AcpiConfig {
        pci_hotplug: true,
        pci_hotplug_slots: hotplug_slots(),
        ..AcpiConfig::new(1)
    };
    std::fs::write(dir.join("dsdt.aml"), build_dsdt(&config)).unwrap();
    std::fs::write(dir.join("test.asl"), TEST_TABLE).unwrap();
    let (ok, out) = run_iasl(&dir, &["-p", "test", "test.asl"]);
    assert!(ok, "the test table does not compile:\n{out}");
    let output = Command::new("acpiexec")
        .args(["-b", "execute TST1; execute TST2", "dsdt.aml", "test.aml"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run acpiexec ({e}): install it with `apt-get install -y acpica-tools`")
        });
    let out = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    // ACPICA dispatches notifies on its own thread: in either order.
    let notifies: Vec<&str> = out.lines().filter(|l| l.contains("Notify on")).collect();
    assert_eq!(notifies.len(), 2, "{out}");
    let notified = |slot: &str, what: &str| {
        notifies
            .iter()
            .any(|l| l.contains(slot) && l.contains(what))
    };
    assert!(notified("[S03_]", "Device Check"), "{out}");
    assert!(notified("[S09_]", "Eject Request"), "{out}");
    assert!(out.contains("[Integer] = 0000000000000008"), "B0EJ:\n{out}");
    assert!(!out.contains("AE_"), "an ACPICA error:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
