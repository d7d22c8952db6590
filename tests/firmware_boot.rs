//! `flint vmm --image` on the local /dev/kvm with a tiny hand-written BIOS
//! (any KVM flavour runs a few real-mode instructions): the ROM mapping at
//! the top of 4 GiB and its low alias, the reset-state boot vCPU, fw_cfg,
//! and how a firmware boot that never starts an OS ends. Real SeaBIOS +
//! GRUB + Linux boots are in tests/ami.rs (emulated KVM host).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROM_SIZE: usize = 128 << 10;
/// F000:E05B, where a PC BIOS's reset vector jumps (in the low alias).
const ENTRY_LOW: usize = 0xf_e05b;

/// A 128 KiB ROM: the reset vector jumps far to F000:E05B, which prints
/// 'R', the fw_cfg signature and CPU count on COM1, then runs `tail`.
fn tiny_rom(tail: &[u8]) -> Vec<u8> {
    let mut rom = vec![0xf4u8; ROM_SIZE]; // hlt everywhere else
    let mut code = vec![
        0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, b'R', 0xee, // mov al, 'R'; out dx, al
        0xba, 0x10, 0x05, 0x31, 0xc0, 0xef, // mov dx, 0x510; xor ax, ax; out dx, ax
        0xb9, 0x04, 0x00, // mov cx, 4
        0xba, 0x11, 0x05, 0xec, // loop: mov dx, 0x511; in al, dx
        0xba, 0xf8, 0x03, 0xee, // mov dx, 0x3f8; out dx, al
        0xe2, 0xf6, // loop
        0xba, 0x10, 0x05, 0xb8, 0x05, 0x00, 0xef, // select FW_CFG_NB_CPUS
        0xba, 0x11, 0x05, 0xec, 0x04, b'0', // in al, dx; add al, '0'
        0xba, 0xf8, 0x03, 0xee, // out to COM1
    ];
    code.extend_from_slice(tail);
    let at = ROM_SIZE - (0x10_0000 - ENTRY_LOW);
    rom[at..at + code.len()].copy_from_slice(&code);
    // Reset vector (0xffff_fff0): jmp far F000:E05B.
    rom[ROM_SIZE - 16..ROM_SIZE - 11].copy_from_slice(&[0xea, 0x5b, 0xe0, 0x00, 0xf0]);
    rom
}

/// mov dx, 0x604; mov ax, SLP_EN | SLP_TYP(5); out dx, ax; hlt
const POWER_OFF: [u8; 8] = [0xba, 0x04, 0x06, 0xb8, 0x00, 0x34, 0xef, 0xf4];
/// mov dx, 0xcf9; mov al, 6; out dx, al; hlt (a reset from 16-bit mode)
const RESET: [u8; 7] = [0xba, 0xf9, 0x0c, 0xb0, 0x06, 0xee, 0xf4];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flint-fw-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn flint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flint"))
        .args(args)
        .output()
        .expect("run flint")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `flint vmm --image` with the ROM; returns (output, console log).
fn boot(name: &str, rom: &[u8], extra: &[&str]) -> (Output, String) {
    let dir = scratch(name);
    let (image, firmware, console) = (
        dir.join("disk.img"),
        dir.join("bios.bin"),
        dir.join("console.log"),
    );
    std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
    std::fs::write(&firmware, rom).unwrap();
    let _ = std::fs::remove_file(&console);
    let mut args = vec![
        "vmm",
        "--image",
        s(&image),
        "--firmware",
        s(&firmware),
        "--console",
        s(&console),
        "--memory",
        "128",
    ];
    args.extend_from_slice(extra);
    let out = flint(&args);
    let log = std::fs::read_to_string(&console).unwrap_or_default();
    (out, log)
}

#[test]
fn firmware_starts_at_the_reset_vector_and_reads_fw_cfg() {
    let (out, log) = boot("poweroff", &tiny_rom(&POWER_OFF), &["--vcpus", "2"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(log, "RQEMU2");
}

#[test]
fn a_firmware_that_keeps_resetting_ends_the_vmm_with_no_os() {
    let (out, log) = boot("reset", &tiny_rom(&RESET), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "stderr: {stderr}");
    assert!(stderr.contains("no operating system started"), "{stderr}");
    // Booted twice (one retry), then gave up.
    assert_eq!(log, "RQEMU1RQEMU1");
}

#[test]
fn bad_images_and_firmware_are_clear_config_errors() {
    let dir = scratch("bad");
    let empty = dir.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 4096]).unwrap();
    let missing = dir.join("missing.img");
    let small_rom = dir.join("small.bin");
    std::fs::write(&small_rom, vec![0u8; 4096]).unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--image", s(&empty)],
            "is empty or smaller than one 512-byte sector",
        ),
        (&["--image", s(&missing)], "disk image"),
        (
            &["--image", s(&disk), "--boot-mode", "uefi"],
            "boot mode uefi is not available yet",
        ),
        (
            &["--image", s(&disk), "--firmware", s(&small_rom)],
            "a BIOS image is a multiple of 64 KiB",
        ),
        (
            &["--image", s(&disk), "--instance-id", "i-xyz"],
            "instance id \"i-xyz\"",
        ),
        (&[], "nothing to boot"),
    ];
    for (args, wanted) in cases {
        let mut all = vec!["vmm"];
        all.extend_from_slice(args);
        let out = flint(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(wanted),
            "{args:?}: wanted {wanted:?} in {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
    // --image and --kernel together: clap refuses (exit 2, usage).
    let out = flint(&["vmm", "--image", s(&disk), "--kernel", s(&disk)]);
    assert!(!out.status.success());
}
