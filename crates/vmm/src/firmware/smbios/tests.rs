use super::*;
use crate::layout::SMBIOS_START;

pub fn config(vcpus: u32, memory_bytes: u64) -> SmbiosConfig {
    SmbiosConfig {
        instance_type: "t3.micro".to_owned(),
        instance_id: "i-0123456789abcdef0".to_owned(),
        vcpus,
        memory_bytes,
        uuid: None,
    }
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

/// Linux's `%pUl`: the first three fields byte-swapped, lower case.
fn linux_pul(d: &[u8]) -> String {
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut s = String::new();
    for (i, idx) in order.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{:02x}", d[*idx]));
    }
    s
}

/// A parsed structure.
#[derive(Debug)]
pub struct Parsed {
    pub kind: u8,
    pub handle: u16,
    pub formatted: Vec<u8>,
    pub strings: Vec<String>,
}

impl Parsed {
    /// The string a field at `offset` refers to ("" for index 0).
    pub fn str_at(&self, offset: usize) -> &str {
        match self.formatted[offset] {
            0 => "",
            i => &self.strings[usize::from(i) - 1],
        }
    }
}

/// Walks the structure table the way dmidecode does; panics on any
/// malformed structure.
pub fn walk(tables: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < tables.len() {
        let len = usize::from(tables[pos + 1]);
        assert!(len >= 4, "formatted length {len} at {pos}");
        let formatted = tables[pos..pos + len].to_vec();
        let mut p = pos + len;
        let mut strings = Vec::new();
        if tables[p] == 0 {
            assert_eq!(tables[p + 1], 0, "empty string set needs two NULs");
            p += 2;
        } else {
            loop {
                let end = p + tables[p..].iter().position(|b| *b == 0).unwrap();
                strings.push(String::from_utf8(tables[p..end].to_vec()).unwrap());
                p = end + 1;
                if tables[p] == 0 {
                    p += 1;
                    break;
                }
            }
        }
        out.push(Parsed {
            kind: formatted[0],
            handle: u16::from_le_bytes([formatted[2], formatted[3]]),
            formatted,
            strings,
        });
        pos = p;
    }
    assert_eq!(pos, tables.len());
    out
}

fn check_entry_point(ep: &[u8], built: &SmbiosTables, table_address: u32) {
    assert_eq!(ep.len(), ENTRY_POINT_LEN);
    assert_eq!(&ep[..4], b"_SM_");
    assert_eq!(usize::from(ep[5]), ENTRY_POINT_LEN);
    assert_eq!((ep[6], ep[7]), (2, 7));
    assert_eq!(sum(ep), 0, "entry point checksum");
    assert_eq!(sum(&ep[..16]), 0, "first 16 bytes (SeaBIOS's check)");
    assert_eq!(&ep[16..21], b"_DMI_");
    assert_eq!(sum(&ep[16..]), 0, "intermediate checksum");
    assert_eq!(
        usize::from(u16::from_le_bytes([ep[22], ep[23]])),
        built.tables.len()
    );
    assert_eq!(
        u32::from_le_bytes(ep[24..28].try_into().unwrap()),
        table_address
    );
    let structs = walk(&built.tables);
    assert_eq!(
        usize::from(u16::from_le_bytes([ep[28], ep[29]])),
        structs.len()
    );
    assert_eq!(ep[30], 0x27);
}

#[test]
fn tables_walk_cleanly_with_unique_handles_and_end_last() {
    let built = build_smbios(&config(2, 1 << 30)).unwrap();
    let structs = walk(&built.tables);
    let kinds: Vec<u8> = structs.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![0, 1, 2, 3, 4, 16, 17, 127]);
    let mut handles: Vec<u16> = structs.iter().map(|s| s.handle).collect();
    handles.sort_unstable();
    handles.dedup();
    assert_eq!(handles.len(), structs.len(), "handles must be unique");
    let end = structs.last().unwrap();
    assert_eq!((end.kind, end.formatted.len()), (127, 4));
    // Formatted lengths of the 2.7 layouts.
    let lens: Vec<usize> = structs.iter().map(|s| s.formatted.len()).collect();
    assert_eq!(lens, vec![0x18, 0x1b, 0x0f, 0x16, 0x2a, 0x17, 0x22, 4]);
    assert_eq!(usize::from(built.number_of_structures), structs.len());
    // The largest structure, strings included.
    let mut pos = 0;
    let mut max = 0;
    for s in &structs {
        let strings: usize = s.strings.iter().map(|x| x.len() + 1).sum();
        let size = s.formatted.len() + strings.max(1) + 1;
        max = max.max(size);
        pos += size;
    }
    assert_eq!(pos, built.tables.len());
    assert_eq!(usize::from(built.max_structure_size), max);
}

#[test]
fn ec2_identity_strings() {
    let built = build_smbios(&config(2, 1 << 30)).unwrap();
    let s = walk(&built.tables);
    assert_eq!(s[0].str_at(4), "Amazon EC2"); // BIOS vendor
    assert_eq!(s[0].str_at(5), "1.0");
    assert_eq!(s[0].str_at(8), "10/16/2017");
    assert_eq!(s[1].str_at(4), "Amazon EC2"); // system manufacturer
    assert_eq!(s[1].str_at(5), "t3.micro"); // product name
    assert_eq!(s[1].str_at(6), ""); // version: Not Specified
    assert_eq!(s[2].str_at(4), "Amazon EC2"); // board vendor
    assert_eq!(s[2].str_at(8), "i-0123456789abcdef0"); // board asset tag
    let chassis_handle = u16::from_le_bytes([s[2].formatted[11], s[2].formatted[12]]);
    assert_eq!(chassis_handle, s[3].handle);
    assert_eq!(s[3].str_at(4), "Amazon EC2"); // chassis vendor
    assert_eq!(s[3].str_at(8), "Amazon EC2"); // chassis asset tag
}

#[test]
fn uuid_prints_as_ec2_and_equals_the_serial() {
    for id in ["i-0123456789abcdef0", "i-0fedcba9876543210", "i-1"] {
        let mut c = config(1, 512 << 20);
        c.instance_id = id.to_owned();
        let built = build_smbios(&c).unwrap();
        let s = walk(&built.tables);
        let stored = &s[1].formatted[TYPE1_UUID_OFFSET..TYPE1_UUID_OFFSET + 16];
        let printed = linux_pul(stored);
        assert!(printed.starts_with("ec2"), "{printed}");
        // ds-identify 22.4: uuid and serial both start with ec2 and are
        // equal (it compares case-insensitively; ours are identical).
        assert_eq!(s[1].str_at(7), printed);
        assert_eq!(built.uuid_string, printed);
        assert_eq!(printed.len(), 36);
        assert_eq!(printed, printed.to_lowercase());
        // Deterministic per instance.
        assert_eq!(build_smbios(&c).unwrap().uuid, built.uuid);
    }
    let a = build_smbios(&config(1, 512 << 20)).unwrap().uuid;
    let mut c = config(1, 512 << 20);
    c.instance_id = "i-0123456789abcdef1".to_owned();
    assert_ne!(build_smbios(&c).unwrap().uuid, a);
}

#[test]
fn explicit_uuid_is_used_in_printed_order() {
    let mut c = config(1, 512 << 20);
    let uuid = [
        0xec, 0x24, 0xf7, 0xa0, 0x03, 0x4a, 0xac, 0x60, 0x1c, 0x01, 0xd0, 0x3e, 0xd0, 0xae, 0x04,
        0x84,
    ];
    c.uuid = Some(uuid);
    let built = build_smbios(&c).unwrap();
    assert_eq!(built.uuid_string, "ec24f7a0-034a-ac60-1c01-d03ed0ae0484");
    let s = walk(&built.tables);
    let stored = &s[1].formatted[TYPE1_UUID_OFFSET..TYPE1_UUID_OFFSET + 16];
    assert_eq!(&stored[..4], &[0xa0, 0xf7, 0x24, 0xec]);
    assert_eq!(linux_pul(stored), built.uuid_string);
    assert_eq!(s[1].str_at(7), built.uuid_string);
}

fn memory_device_mib(s: &[Parsed]) -> Vec<u64> {
    s.iter()
        .filter(|p| p.kind == 17)
        .map(|p| u64::from(u16::from_le_bytes([p.formatted[12], p.formatted[13]])))
        .collect()
}

#[test]
fn memory_devices_sum_to_ram() {
    for (mem, count) in [
        (512u64 << 20, 1usize),
        (16 << 30, 1),
        (24 << 30, 2),
        (64 << 30, 4),
        ((3 << 40) + (5 << 20), 193),
    ] {
        let built = build_smbios(&config(2, mem)).unwrap();
        let s = walk(&built.tables);
        let sizes = memory_device_mib(&s);
        assert_eq!(sizes.len(), count, "{mem:#x}");
        assert!(sizes.iter().all(|m| *m > 0 && *m <= 16384));
        assert_eq!(sizes.iter().sum::<u64>() << 20, mem);
        let array = s.iter().find(|p| p.kind == 16).unwrap();
        let n = u16::from_le_bytes([array.formatted[13], array.formatted[14]]);
        assert_eq!(usize::from(n), count);
        let max_kib = u32::from_le_bytes(array.formatted[7..11].try_into().unwrap());
        let ext = u64::from_le_bytes(array.formatted[15..23].try_into().unwrap());
        if mem < 2 << 40 {
            assert_eq!((u64::from(max_kib) << 10, ext), (mem, 0));
        } else {
            assert_eq!((max_kib, ext), (0x8000_0000, mem));
        }
        // Each device points at the array.
        for d in s.iter().filter(|p| p.kind == 17) {
            assert_eq!(
                u16::from_le_bytes([d.formatted[4], d.formatted[5]]),
                array.handle
            );
        }
    }
}

#[test]
fn processor_counts_for_1_and_64_vcpus() {
    for vcpus in [1u32, 64, 254] {
        let built = build_smbios(&config(vcpus, 1 << 30)).unwrap();
        let s = walk(&built.tables);
        let cpus: Vec<&Parsed> = s.iter().filter(|p| p.kind == 4).collect();
        assert_eq!(cpus.len(), 1);
        let f = &cpus[0].formatted;
        assert_eq!(u32::from(f[0x23]), vcpus, "core count");
        assert_eq!(u32::from(f[0x24]), vcpus, "cores enabled");
        assert_eq!(u32::from(f[0x25]), vcpus, "thread count");
        assert_eq!(f[0x18], 0x41, "populated and enabled");
    }
}

#[test]
fn bad_configs_are_refused() {
    assert!(matches!(
        build_smbios(&config(0, 1 << 30)),
        Err(SmbiosError::NoVcpus)
    ));
    assert!(matches!(
        build_smbios(&config(255, 1 << 30)),
        Err(SmbiosError::TooManyVcpus(255))
    ));
    assert!(matches!(
        build_smbios(&config(1, 0)),
        Err(SmbiosError::BadMemorySize(0))
    ));
    assert!(matches!(
        build_smbios(&config(1, (1 << 30) + 1)),
        Err(SmbiosError::BadMemorySize(_))
    ));
    for bad in ["", "t3.micro\0", "t3.\u{e9}", &"x".repeat(65)] {
        let mut c = config(1, 1 << 30);
        c.instance_type = bad.to_owned();
        let err = build_smbios(&c).unwrap_err();
        assert!(matches!(err, SmbiosError::BadString { .. }), "{err}");
    }
}

#[test]
fn fw_cfg_anchor_is_a_valid_entry_point_without_an_address() {
    let built = build_smbios(&config(4, 2 << 30)).unwrap();
    let anchor = built.fw_cfg_anchor();
    check_entry_point(&anchor, &built, 0);
}

fn mem(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).unwrap()
}

#[test]
fn direct_boot_entry_point_is_found_by_a_linux_style_scan() {
    let m = mem(0x20_0000);
    let c = config(64, 4 << 30);
    let placed = write_smbios(&m, &c, GuestAddress(SMBIOS_START)).unwrap();
    assert_eq!(placed.entry_point, GuestAddress(SMBIOS_START));
    assert_eq!(placed.tables.0 % 16, 0);
    let built = build_smbios(&c).unwrap();

    // Scan 0xF0000..0xFFFFF on 16-byte boundaries as Linux does.
    let mut area = vec![0u8; 0x1_0000];
    m.read_slice(&mut area, GuestAddress(0xf_0000)).unwrap();
    let found = (0..area.len())
        .step_by(16)
        .find(|o| &area[*o..*o + 4] == b"_SM_" && sum(&area[*o..*o + ENTRY_POINT_LEN]) == 0)
        .unwrap();
    let ep = &area[found..found + ENTRY_POINT_LEN];
    check_entry_point(ep, &built, placed.tables.0 as u32);

    let mut tables = vec![0u8; built.tables.len()];
    m.read_slice(&mut tables, placed.tables).unwrap();
    assert_eq!(tables, built.tables);
    assert!(placed.entry_point.0 + placed.len <= 0x10_0000);
}

#[test]
fn direct_boot_placement_errors() {
    let m = mem(0x20_0000);
    let c = config(1, 1 << 30);
    assert!(matches!(
        write_smbios(&m, &c, GuestAddress(SMBIOS_START + 8)),
        Err(SmbiosError::Misaligned(_))
    ));
    assert!(matches!(
        write_smbios(&m, &c, GuestAddress(0xf_ff00)),
        Err(SmbiosError::DoesNotFit { .. })
    ));
    assert!(matches!(
        write_smbios(&m, &c, GuestAddress(u64::MAX - 15)),
        Err(SmbiosError::DoesNotFit { .. })
    ));
    // Outside guest memory.
    let small = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
    assert!(matches!(
        write_smbios(&small, &c, GuestAddress(SMBIOS_START)),
        Err(SmbiosError::GuestMemory(_))
    ));
}
