//! fw_cfg: items, file directory, DMA against guest memory, table-loader.

use super::*;
use crate::acpi::{AcpiConfig, build_acpi_tables};
use crate::firmware::smbios::{build_smbios, tests::config as smbios_config};
use crate::layout::{FOUR_GIB, HIGH_RAM_START, PCI_HOLE_START};

const MIB: usize = 1 << 20;

fn mem(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).unwrap()
}

fn select(dev: &mut FwCfg, key: u16) {
    dev.write(OFFSET_SELECTOR, &key.to_le_bytes());
}

fn read_port(dev: &mut FwCfg, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            let mut b = [0u8; 1];
            dev.read(OFFSET_DATA, &mut b);
            b[0]
        })
        .collect()
}

/// Writes a descriptor at `desc` and triggers it as SeaBIOS does: only
/// the low half of the address, big-endian.
fn dma(dev: &mut FwCfg, m: &GuestMemoryMmap, desc: u64, control: u32, len: u32, addr: u64) -> u32 {
    let mut d = Vec::new();
    d.extend_from_slice(&control.to_be_bytes());
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&addr.to_be_bytes());
    m.write_slice(&d, GuestAddress(desc)).unwrap();
    trigger(dev, desc);
    let mut c = [0u8; 4];
    m.read_slice(&mut c, GuestAddress(desc)).unwrap();
    u32::from_be_bytes(c)
}

fn trigger(dev: &mut FwCfg, desc: u64) {
    dev.write(OFFSET_DMA_HIGH, &((desc >> 32) as u32).to_be_bytes());
    dev.write(OFFSET_DMA_LOW, &(desc as u32).to_be_bytes());
}

fn device_with_files() -> (FwCfg, GuestMemoryMmap) {
    let m = mem(4 * MIB);
    let mut dev = FwCfg::new(m.clone());
    dev.add_file("etc/zeta", b"last".to_vec()).unwrap();
    dev.add_file("bootorder", b"/pci@i0cf8/scsi@4\0".to_vec())
        .unwrap();
    dev.add_file("etc/alpha", (0..=255u8).cycle().take(1000).collect())
        .unwrap();
    (dev, m)
}

#[test]
fn signature_and_id_through_the_data_port() {
    let (mut dev, _) = device_with_files();
    select(&mut dev, FW_CFG_SIGNATURE);
    assert_eq!(read_port(&mut dev, 4), b"QEMU");
    // Past the end: zeros.
    assert_eq!(read_port(&mut dev, 2), [0, 0]);
    select(&mut dev, FW_CFG_ID);
    let id = read_port(&mut dev, 4);
    assert_eq!(u32::from_le_bytes(id.try_into().unwrap()), 3);
    // Unknown key: zeros.
    select(&mut dev, 0x1234);
    assert_eq!(read_port(&mut dev, 3), [0, 0, 0]);
    // The DMA register reads as the DMA signature, at any width.
    let mut sig = [0u8; 8];
    dev.read(OFFSET_DMA_HIGH, &mut sig);
    assert_eq!(&sig, b"QEMU CFG");
    let mut low = [0u8; 4];
    dev.read(OFFSET_DMA_LOW, &mut low);
    assert_eq!(&low, b" CFG");
}

#[test]
fn file_directory_is_sorted_big_endian() {
    let (mut dev, _) = device_with_files();
    select(&mut dev, FW_CFG_FILE_DIR);
    let count = u32::from_be_bytes(read_port(&mut dev, 4).try_into().unwrap());
    assert_eq!(count, 3);
    let mut entries = Vec::new();
    for _ in 0..count {
        let e = read_port(&mut dev, 64);
        let size = u32::from_be_bytes(e[0..4].try_into().unwrap());
        let select = u16::from_be_bytes([e[4], e[5]]);
        assert_eq!(&e[6..8], &[0, 0]);
        let name_len = e[8..].iter().position(|b| *b == 0).unwrap();
        let name = String::from_utf8(e[8..8 + name_len].to_vec()).unwrap();
        assert!(e[8 + name_len..].iter().all(|b| *b == 0));
        entries.push((name, size, select));
    }
    assert_eq!(
        entries,
        vec![
            ("bootorder".to_owned(), 18, 0x20),
            ("etc/alpha".to_owned(), 1000, 0x21),
            ("etc/zeta".to_owned(), 4, 0x22),
        ]
    );
    assert_eq!(dev.file_key("etc/zeta"), Some(0x22));
    // The directory's selectors reach the files.
    select(&mut dev, 0x22);
    assert_eq!(read_port(&mut dev, 5), b"last\0");
}

#[test]
fn reading_a_file_byte_by_byte() {
    let (mut dev, _) = device_with_files();
    let key = dev.file_key("etc/alpha").unwrap();
    // The write-channel bit is ignored for reads.
    select(&mut dev, key | FW_CFG_WRITE_CHANNEL);
    let data = read_port(&mut dev, 1010);
    let want: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    assert_eq!(&data[..1000], &want[..]);
    assert!(data[1000..].iter().all(|b| *b == 0));
    // Reselecting rewinds; data-port writes change nothing.
    select(&mut dev, key);
    dev.write(OFFSET_DATA, &[0xaa]);
    assert_eq!(read_port(&mut dev, 3), [0, 1, 2]);
}

#[test]
fn dma_select_read_skip() {
    let (mut dev, m) = device_with_files();
    let key = u32::from(dev.file_key("etc/alpha").unwrap());
    let desc = 0x1000;
    // SELECT + READ of the whole file.
    let status = dma(
        &mut dev,
        &m,
        desc,
        (key << 16) | DMA_CTL_SELECT | DMA_CTL_READ,
        1000,
        0x2000,
    );
    assert_eq!(status, 0);
    let mut buf = vec![0u8; 1000];
    m.read_slice(&mut buf, GuestAddress(0x2000)).unwrap();
    let want: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    assert_eq!(buf, want);

    // SELECT alone, then SKIP 300, then READ 10 at offset 300.
    assert_eq!(
        dma(&mut dev, &m, desc, (key << 16) | DMA_CTL_SELECT, 0, 0),
        0
    );
    assert_eq!(dma(&mut dev, &m, desc, DMA_CTL_SKIP, 300, 0), 0);
    assert_eq!(dma(&mut dev, &m, desc, DMA_CTL_READ, 10, 0x3000), 0);
    let mut buf = [0u8; 10];
    m.read_slice(&mut buf, GuestAddress(0x3000)).unwrap();
    assert_eq!(buf.to_vec(), want[300..310].to_vec());
    // The data port continues from where DMA stopped.
    assert_eq!(read_port(&mut dev, 1), [want[310]]);

    // READ past the end: the rest of the file, then zeros.
    m.write_slice(&[0xff; 64], GuestAddress(0x4000)).unwrap();
    let status = dma(
        &mut dev,
        &m,
        desc,
        (key << 16) | DMA_CTL_SELECT | DMA_CTL_SKIP,
        990,
        0,
    );
    assert_eq!(status, 0);
    assert_eq!(dma(&mut dev, &m, desc, DMA_CTL_READ, 64, 0x4000), 0);
    let mut buf = [0u8; 64];
    m.read_slice(&mut buf, GuestAddress(0x4000)).unwrap();
    assert_eq!(buf[..10].to_vec(), want[990..].to_vec());
    assert!(buf[10..].iter().all(|b| *b == 0));

    // A 64-bit trigger at 0x514 works too.
    let mut d = Vec::new();
    d.extend_from_slice(
        &((u32::from(FW_CFG_SIGNATURE) << 16) | DMA_CTL_SELECT | DMA_CTL_READ).to_be_bytes(),
    );
    d.extend_from_slice(&4u32.to_be_bytes());
    d.extend_from_slice(&0x5000u64.to_be_bytes());
    m.write_slice(&d, GuestAddress(desc)).unwrap();
    dev.write(OFFSET_DMA_HIGH, &(desc).to_be_bytes());
    let mut sig = [0u8; 4];
    m.read_slice(&mut sig, GuestAddress(0x5000)).unwrap();
    assert_eq!(&sig, b"QEMU");
}

#[test]
fn dma_errors_never_panic() {
    let (mut dev, m) = device_with_files();
    let key = u32::from(dev.file_key("etc/alpha").unwrap());
    let sel_read = (key << 16) | DMA_CTL_SELECT | DMA_CTL_READ;
    let desc = 0x1000;
    let end = (4 * MIB) as u64;
    // Buffer outside guest memory, straddling its end, wrapping around.
    for (addr, len) in [
        (end, 16),
        (end - 8, 16),
        (u64::MAX - 3, 16),
        (0x2000, u32::MAX),
        (1 << 40, 1),
    ] {
        let status = dma(&mut dev, &m, desc, sel_read, len, addr);
        assert_eq!(status, DMA_CTL_ERROR, "addr {addr:#x} len {len:#x}");
    }
    // A partial overlap writes nothing.
    let mut tail = [0u8; 8];
    m.read_slice(&mut tail, GuestAddress(end - 8)).unwrap();
    assert_eq!(tail, [0; 8]);
    // Writes are refused.
    let status = dma(
        &mut dev,
        &m,
        desc,
        (key << 16) | DMA_CTL_SELECT | DMA_CTL_WRITE,
        4,
        0x2000,
    );
    assert_eq!(status, DMA_CTL_ERROR);
    // No operation, or zero length: success without effect.
    assert_eq!(dma(&mut dev, &m, desc, 0, 4, 0x2000), 0);
    assert_eq!(dma(&mut dev, &m, desc, DMA_CTL_READ, 0, end + 100), 0);
    // Descriptor outside guest memory, or straddling its end: nothing to
    // write the status to, no panic.
    trigger(&mut dev, end);
    trigger(&mut dev, end - 8);
    trigger(&mut dev, u64::MAX - 7);
    dev.write(OFFSET_DMA_HIGH, &u64::MAX.to_be_bytes());
    // Odd-sized and unaligned accesses are ignored.
    dev.write(OFFSET_DMA_HIGH + 1, &[1, 2, 3, 4]);
    dev.write(OFFSET_DMA_LOW, &[1, 2]);
    dev.write(OFFSET_SELECTOR, &[1, 2, 3, 4]);
    dev.write(2, &[0; 2]);
    let mut b = [0xffu8; 2];
    dev.read(2, &mut b);
    assert_eq!(b, [0, 0]);
    // Still working afterwards.
    assert_eq!(dma(&mut dev, &m, desc, sel_read, 4, 0x2000), 0);
}

/// The whole protocol through a PIO bus at the real port numbers.
#[test]
fn works_on_the_pio_bus_at_0x510() {
    use crate::bus::Bus;
    use std::sync::{Arc, Mutex};

    let m = mem(MIB);
    let mut dev = FwCfg::new(m.clone());
    dev.add_file("etc/hello", b"world".to_vec()).unwrap();
    let bus = Bus::new();
    bus.insert(
        Arc::new(Mutex::new(dev)),
        u64::from(PORT_FW_CFG_SELECTOR),
        FW_CFG_PORT_LEN,
    )
    .unwrap();
    let port = |p: u16| u64::from(p);
    assert!(bus.write(port(PORT_FW_CFG_SELECTOR), &FW_CFG_SIGNATURE.to_le_bytes()));
    let mut sig = Vec::new();
    for _ in 0..4 {
        let mut b = [0u8; 1];
        assert!(bus.read(port(PORT_FW_CFG_DATA), &mut b));
        sig.push(b[0]);
    }
    assert_eq!(sig, b"QEMU");
    let mut dma_sig = [0u8; 4];
    assert!(bus.read(port(PORT_FW_CFG_DMA), &mut dma_sig));
    assert_eq!(&dma_sig, b"QEMU");
    // DMA: SELECT + READ of the file by its directory key.
    let control = (u32::from(FW_CFG_FILE_FIRST) << 16) | DMA_CTL_SELECT | DMA_CTL_READ;
    let mut d = Vec::new();
    d.extend_from_slice(&control.to_be_bytes());
    d.extend_from_slice(&5u32.to_be_bytes());
    d.extend_from_slice(&0x3000u64.to_be_bytes());
    m.write_slice(&d, GuestAddress(0x2000)).unwrap();
    assert!(bus.write(port(PORT_FW_CFG_DMA) + 4, &0x2000u32.to_be_bytes()));
    let mut out = [0u8; 5];
    m.read_slice(&mut out, GuestAddress(0x3000)).unwrap();
    assert_eq!(&out, b"world");
    let mut status = [0xffu8; 4];
    m.read_slice(&mut status, GuestAddress(0x2000)).unwrap();
    assert_eq!(status, [0; 4]);
    // The range ends at 0x51b.
    assert!(!bus.read(port(PORT_FW_CFG_SELECTOR) + FW_CFG_PORT_LEN, &mut [0u8; 1]));
}

#[test]
fn files_and_keys_are_validated() {
    let (mut dev, _) = device_with_files();
    assert_eq!(
        dev.add_file("etc/alpha", vec![]),
        Err(FwCfgError::DuplicateFile("etc/alpha".into()))
    );
    for bad in ["", "a\0b", &"n".repeat(56)] {
        assert!(matches!(
            dev.add_file(bad, vec![]),
            Err(FwCfgError::BadFileName(_))
        ));
    }
    dev.add_file(&"n".repeat(55), vec![1]).unwrap();
    for key in [
        FW_CFG_SIGNATURE,
        FW_CFG_ID,
        FW_CFG_FILE_DIR,
        0x20,
        0x3fff,
        0x4020,
    ] {
        assert!(matches!(
            dev.add_key(key, vec![1]),
            Err(FwCfgError::ReservedKey(_))
        ));
    }
    dev.add_key(0x8003, vec![0; 4]).unwrap();
    // Adding a file sorting earlier moves the later ones.
    let before = dev.file_key("etc/zeta").unwrap();
    dev.add_file("aaa", vec![]).unwrap();
    assert_eq!(dev.file_key("etc/zeta"), Some(before + 1));
    assert_eq!(dev.file_key("aaa"), Some(FW_CFG_FILE_FIRST));
}

#[test]
fn standard_files() {
    let m = mem(MIB);
    let mut dev = FwCfg::new(m);
    let mem_bytes = 6u64 << 30;
    let acpi = build_acpi_tables(&AcpiConfig::new(2), 0).unwrap();
    let smbios = build_smbios(&smbios_config(2, mem_bytes)).unwrap();
    dev.add_seabios_items(
        2,
        mem_bytes,
        &["/pci@i0cf8/scsi@4/disk@0,0"],
        &smbios,
        &acpi,
    )
    .unwrap();
    let file = |dev: &FwCfg, name: &str| dev.item(dev.file_key(name).unwrap()).unwrap().to_vec();

    // etc/e820: 20-byte packed entries.
    let e820 = file(&dev, FILE_E820);
    assert_eq!(e820.len() % 20, 0);
    let entries: Vec<(u64, u64, u32)> = e820
        .chunks(20)
        .map(|c| {
            (
                u64::from_le_bytes(c[0..8].try_into().unwrap()),
                u64::from_le_bytes(c[8..16].try_into().unwrap()),
                u32::from_le_bytes(c[16..20].try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (0, 0x9_fc00, E820_RAM),
            (HIGH_RAM_START, PCI_HOLE_START - HIGH_RAM_START, E820_RAM),
            (KVM_RESERVED_START, KVM_RESERVED_LEN, E820_RESERVED),
            (FOUR_GIB, mem_bytes - PCI_HOLE_START, E820_RAM),
        ]
    );

    assert_eq!(file(&dev, FILE_BOOTORDER), b"/pci@i0cf8/scsi@4/disk@0,0\0");
    assert_eq!(
        file(&dev, FILE_BOOT_FAIL_WAIT),
        SEABIOS_BOOT_FAIL_WAIT_MS.to_le_bytes()
    );
    assert_eq!(file(&dev, FILE_SERCON_PORT), [0xf8, 0x03]);
    assert_eq!(file(&dev, FILE_BOOT_CPUS), [2, 0]);
    assert_eq!(dev.item(FW_CFG_NB_CPUS).unwrap(), [2, 0]);
    assert_eq!(dev.item(FW_CFG_MAX_CPUS).unwrap(), [2, 0]);
    assert_eq!(dev.item(FW_CFG_BOOT_MENU).unwrap(), [0, 0]);
    assert_eq!(dev.item(FW_CFG_NOGRAPHIC).unwrap(), [1, 0]);
    assert_eq!(dev.item(FW_CFG_RAM_SIZE).unwrap(), mem_bytes.to_le_bytes());
    assert_eq!(file(&dev, FILE_SMBIOS_ANCHOR).len(), 31);
    assert_eq!(file(&dev, FILE_SMBIOS_TABLES), smbios.tables);
    assert_eq!(file(&dev, FILE_ACPI_TABLES), acpi.tables);
    assert_eq!(file(&dev, FILE_ACPI_RSDP), acpi.rsdp);
    // The smbios anchor's table length matches the tables file, which
    // SeaBIOS insists on.
    let anchor = file(&dev, FILE_SMBIOS_ANCHOR);
    assert_eq!(
        usize::from(u16::from_le_bytes([anchor[22], anchor[23]])),
        smbios.tables.len()
    );

    assert_eq!(bootorder_file(&["a", "b"]).unwrap(), b"a\nb\0".to_vec());
    assert!(bootorder_file(&["a\nb"]).is_err());
    assert_eq!(pci_boot_path("scsi", 0x1a, 0), "/pci@i0cf8/scsi@1a");
    assert_eq!(pci_boot_path("ethernet", 3, 1), "/pci@i0cf8/ethernet@3,1");
}

/// A decoded table-loader command.
#[derive(Debug, PartialEq)]
enum Command {
    Allocate {
        file: String,
        align: u32,
        zone: u8,
    },
    AddPointer {
        dest: String,
        src: String,
        offset: u32,
        size: u8,
    },
    AddChecksum {
        file: String,
        offset: u32,
        start: u32,
        len: u32,
    },
}

fn name(field: &[u8]) -> String {
    assert_eq!(field.len(), 56);
    assert_eq!(field[55], 0, "names are NUL-terminated");
    let n = field.iter().position(|b| *b == 0).unwrap();
    assert!(field[n..].iter().all(|b| *b == 0));
    String::from_utf8(field[..n].to_vec()).unwrap()
}

fn decode(loader: &[u8]) -> Vec<Command> {
    assert_eq!(loader.len() % LOADER_ENTRY_LEN, 0);
    let u32_at = |e: &[u8], o: usize| u32::from_le_bytes(e[o..o + 4].try_into().unwrap());
    loader
        .chunks(LOADER_ENTRY_LEN)
        .map(|e| match u32_at(e, 0) {
            LOADER_ALLOCATE => {
                assert!(e[65..].iter().all(|b| *b == 0));
                Command::Allocate {
                    file: name(&e[4..60]),
                    align: u32_at(e, 60),
                    zone: e[64],
                }
            }
            LOADER_ADD_POINTER => {
                assert!(e[121..].iter().all(|b| *b == 0));
                Command::AddPointer {
                    dest: name(&e[4..60]),
                    src: name(&e[60..116]),
                    offset: u32_at(e, 116),
                    size: e[120],
                }
            }
            LOADER_ADD_CHECKSUM => {
                assert!(e[72..].iter().all(|b| *b == 0));
                Command::AddChecksum {
                    file: name(&e[4..60]),
                    offset: u32_at(e, 60),
                    start: u32_at(e, 64),
                    len: u32_at(e, 68),
                }
            }
            other => panic!("unknown command {other}"),
        })
        .collect()
}

#[test]
fn table_loader_commands() {
    let acpi = build_acpi_tables(&AcpiConfig::new(4), 0).unwrap();
    let cmds = decode(&table_loader(&acpi).unwrap());
    assert_eq!(cmds.len(), 2 + acpi.pointers.len() + acpi.checksums.len());
    assert_eq!(
        cmds[0],
        Command::Allocate {
            file: FILE_ACPI_TABLES.into(),
            align: 64,
            zone: LOADER_ZONE_HIGH
        }
    );
    assert_eq!(
        cmds[1],
        Command::Allocate {
            file: FILE_ACPI_RSDP.into(),
            align: 16,
            zone: LOADER_ZONE_FSEG
        }
    );
    let pointers = &cmds[2..2 + acpi.pointers.len()];
    for (cmd, p) in pointers.iter().zip(&acpi.pointers) {
        assert_eq!(
            *cmd,
            Command::AddPointer {
                dest: blob_name(p.blob).into(),
                src: FILE_ACPI_TABLES.into(),
                offset: p.offset as u32,
                size: p.size,
            }
        );
    }
    // The RSDP's XSDT pointer is among them.
    assert!(pointers.contains(&Command::AddPointer {
        dest: FILE_ACPI_RSDP.into(),
        src: FILE_ACPI_TABLES.into(),
        offset: 24,
        size: 8,
    }));
    for (cmd, c) in cmds[2 + acpi.pointers.len()..].iter().zip(&acpi.checksums) {
        assert_eq!(
            *cmd,
            Command::AddChecksum {
                file: blob_name(c.blob).into(),
                offset: c.field as u32,
                start: c.start as u32,
                len: c.len as u32,
            }
        );
    }
    // Tables built for a fixed address cannot be relocated.
    let placed = build_acpi_tables(&AcpiConfig::new(1), 0x1000).unwrap();
    assert_eq!(
        table_loader(&placed),
        Err(FwCfgError::AcpiNotRelocatable(0x1000))
    );
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
}

/// Does what SeaBIOS's romfile_loader_execute does, reading everything
/// through the device's data port: allocate each file at an address of
/// our choosing, add the source's address to each pointer, subtract
/// each range's sum from its checksum byte. Then checks the result the
/// way a guest would: RSDP checksums, XSDT reached through the RSDP,
/// FADT reached through the XSDT, DSDT/FACS through the FADT.
#[test]
fn applying_the_loader_yields_valid_tables() {
    let m = mem(MIB);
    let mut dev = FwCfg::new(m);
    let mut config = AcpiConfig::new(8);
    config.pci_hotplug = true;
    dev.add_acpi(&build_acpi_tables(&config, 0).unwrap())
        .unwrap();

    let read_file = |dev: &mut FwCfg, name: &str| {
        let key = dev.file_key(name).unwrap();
        let len = dev.item(key).unwrap().len();
        select(dev, key);
        read_port(dev, len)
    };
    let loader = read_file(&mut dev, FILE_TABLE_LOADER);
    // A flat "guest memory" of 4 GiB addresses, sparse via a map.
    let mut placed: BTreeMap<String, (u64, Vec<u8>)> = BTreeMap::new();
    let mut next_high = 0x7fff_0000u64;
    let mut next_fseg = 0xf_5a30u64;
    for cmd in decode(&loader) {
        match cmd {
            Command::Allocate { file, align, zone } => {
                let data = read_file(&mut dev, &file);
                let cursor = if zone == LOADER_ZONE_HIGH {
                    &mut next_high
                } else {
                    &mut next_fseg
                };
                let addr = cursor.next_multiple_of(u64::from(align));
                *cursor = addr + data.len() as u64;
                placed.insert(file, (addr, data));
            }
            Command::AddPointer {
                dest,
                src,
                offset,
                size,
            } => {
                let src_addr = placed[&src].0;
                let d = &mut placed.get_mut(&dest).unwrap().1;
                let field = &mut d[offset as usize..offset as usize + size as usize];
                let mut v = [0u8; 8];
                v[..field.len()].copy_from_slice(field);
                let value = u64::from_le_bytes(v) + src_addr;
                field.copy_from_slice(&value.to_le_bytes()[..size as usize]);
            }
            Command::AddChecksum {
                file,
                offset,
                start,
                len,
            } => {
                let d = &mut placed.get_mut(&file).unwrap().1;
                let s = sum(&d[start as usize..(start + len) as usize]);
                d[offset as usize] = d[offset as usize].wrapping_sub(s);
            }
        }
    }
    let (tables_addr, tables) = placed[FILE_ACPI_TABLES].clone();
    let (rsdp_addr, rsdp) = placed[FILE_ACPI_RSDP].clone();
    assert_eq!(tables_addr % 64, 0);
    assert_eq!(rsdp_addr % 16, 0);
    assert!((0xe_0000..0x10_0000).contains(&rsdp_addr));

    assert_eq!(&rsdp[..8], b"RSD PTR ");
    assert_eq!(sum(&rsdp[..20]), 0, "RSDP checksum");
    assert_eq!(sum(&rsdp), 0, "RSDP extended checksum");
    let table_at = |addr: u64| {
        let off = (addr - tables_addr) as usize;
        let len = u32::from_le_bytes(tables[off + 4..off + 8].try_into().unwrap()) as usize;
        &tables[off..off + len]
    };
    let xsdt_addr = u64::from_le_bytes(rsdp[24..32].try_into().unwrap());
    let xsdt = table_at(xsdt_addr);
    assert_eq!(&xsdt[..4], b"XSDT");
    assert_eq!(sum(xsdt), 0, "XSDT checksum");
    let mut sigs = Vec::new();
    for entry in xsdt[36..].chunks(8) {
        let t = table_at(u64::from_le_bytes(entry.try_into().unwrap()));
        assert_eq!(sum(t), 0, "{:?} checksum", &t[..4]);
        sigs.push(t[..4].to_vec());
    }
    assert_eq!(sigs, vec![b"FACP".to_vec(), b"APIC".to_vec()]);
    let fadt = table_at(u64::from_le_bytes(xsdt[36..44].try_into().unwrap()));
    let dsdt_addr = u64::from_le_bytes(fadt[140..148].try_into().unwrap());
    assert_eq!(
        u64::from(u32::from_le_bytes(fadt[40..44].try_into().unwrap())),
        dsdt_addr
    );
    let dsdt = table_at(dsdt_addr);
    assert_eq!(&dsdt[..4], b"DSDT");
    assert_eq!(sum(dsdt), 0);
    let facs_addr = u64::from_le_bytes(fadt[132..140].try_into().unwrap());
    assert_eq!(facs_addr % 64, 0);
    let facs_off = (facs_addr - tables_addr) as usize;
    assert_eq!(&tables[facs_off..facs_off + 4], b"FACS");

    // Identical to the tables built directly for those addresses.
    let direct = build_acpi_tables(&config, tables_addr).unwrap();
    assert_eq!(tables, direct.tables);
    assert_eq!(rsdp, direct.rsdp);
}
