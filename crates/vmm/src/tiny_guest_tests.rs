//! Tiny guests on the local /dev/kvm (any flavour runs a few real-mode
//! instructions): the VMM's real device set-up, buses, vCPU thread and
//! power path, without booting a kernel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress};

use crate::device_manager::Devices;
use crate::memory;
use crate::power::{PowerAction, PowerControl};
use crate::runtime::Fault;
use crate::vcpu::{self, VcpuContext, VcpuThread};
use crate::vm::Vm;
use flint_contract::config::VmConfig;

const CODE: u64 = 0x1000;

/// Boots `code` in real mode at 0x1000 on one vCPU with the standard device
/// set; returns the power request it made (if any within 5 s), the fault
/// (if any) and the console output.
fn run_tiny_guest(code: &[u8]) -> (Option<PowerAction>, Option<String>, Vec<u8>) {
    let dir =
        std::env::temp_dir().join(format!("flint-tiny-{}-{}", std::process::id(), code.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let console = dir.join("console.log");
    let _ = std::fs::remove_file(&console);
    let mut config: VmConfig = serde_json::from_str("{}").unwrap();
    config.memory_mib = 64;
    config.console.file = Some(console.clone());

    let mem = memory::create_guest_memory(64 << 20).unwrap();
    mem.write_slice(code, GuestAddress(CODE)).unwrap();
    let vm = Arc::new(Vm::new(&mem).unwrap());
    let power = PowerControl::new().unwrap();
    let fault = Fault::new().unwrap();
    let devices = Devices::build(&vm, &mem, &config, &power, Default::default()).unwrap();

    let fd = vm.fd.create_vcpu(0).unwrap();
    let mut sregs = fd.get_sregs().unwrap();
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    fd.set_sregs(&sregs).unwrap();
    fd.set_regs(&kvm_bindings::kvm_regs {
        rip: CODE,
        rflags: 2,
        ..Default::default()
    })
    .unwrap();
    vcpu::install_kick_handler().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = VcpuContext {
        index: 0,
        pio: devices.pio.clone(),
        mmio: devices.mmio.clone(),
        power: power.clone(),
        fault: fault.clone(),
        stop: stop.clone(),
        long_mode: Arc::new(AtomicBool::new(false)),
    };
    let thread = VcpuThread::spawn(fd, ctx, Box::new(|| Ok(()))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while power.pending().is_none() && fault.get().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Release);
    thread.join();
    let output = std::fs::read(&console).unwrap_or_default();
    (power.pending(), fault.get(), output)
}

#[test]
fn guest_writes_the_console_and_powers_off_through_acpi_s5() {
    let code = [
        0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
        0xb0, b'F', 0xee, // mov al, 'F'; out dx, al
        0xb0, b'L', 0xee, // mov al, 'L'; out dx, al
        0xba, 0x04, 0x06, // mov dx, 0x604 (PM1a control)
        0xb8, 0x00, 0x34, // mov ax, SLP_EN | SLP_TYP(5) << 10
        0xef, // out dx, ax
        0xf4, // hlt
    ];
    let (power, fault, output) = run_tiny_guest(&code);
    assert_eq!(fault, None);
    assert_eq!(power, Some(PowerAction::PowerOff));
    assert_eq!(output, b"FL");
}

#[test]
fn reset_register_and_keyboard_controller_request_a_reset() {
    // outb 0x06 to 0xcf9, through the PCI root's port range.
    let cf9 = [0xba, 0xf9, 0x0c, 0xb0, 0x06, 0xee, 0xf4];
    assert_eq!(run_tiny_guest(&cf9).0, Some(PowerAction::Reset));
    // i8042 pulse reset: outb 0xfe to 0x64.
    let kbd = [0xb0, 0xfe, 0xe6, 0x64, 0xf4];
    assert_eq!(run_tiny_guest(&kbd).0, Some(PowerAction::Reset));
}

#[test]
fn guest_reads_cmos_and_pci_host_bridge() {
    // CMOS 0x5f (CPU count - 1) to COM1, then PCI 00:00.0 vendor ID low
    // byte, then S5.
    let code = [
        0xb0, 0x5f, 0xe6, 0x70, // mov al, 0x5f; out 0x70, al
        0xe4, 0x71, // in al, 0x71
        0x04, b'0', // add al, '0'
        0xba, 0xf8, 0x03, 0xee, // mov dx, 0x3f8; out dx, al
        0x66, 0xb8, 0x00, 0x00, 0x00, 0x80, // mov eax, 0x80000000
        0xba, 0xf8, 0x0c, 0x66, 0xef, // mov dx, 0xcf8; out dx, eax
        0xba, 0xfc, 0x0c, 0xec, // mov dx, 0xcfc; in al, dx (0x86)
        0xba, 0xf8, 0x03, 0xee, // out to COM1
        0xba, 0x04, 0x06, 0xb8, 0x00, 0x34, 0xef, // S5
        0xf4,
    ];
    let (power, _, output) = run_tiny_guest(&code);
    assert_eq!(power, Some(PowerAction::PowerOff));
    assert_eq!(output, b"0\x86");
}
