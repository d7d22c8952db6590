//! Laying the ACPI tables out: which table goes where, which fields point at
//! which table, and writing the result into guest memory.
//!
//! The tables are built for a chosen base address as one contiguous blob
//! (FACS, DSDT, FADT, MADT, XSDT) plus a separate RSDP blob, because that is
//! what both consumers need:
//! - direct boot copies both blobs into guest RAM at fixed addresses;
//! - the firmware path hands them to SeaBIOS as fw_cfg files
//!   (etc/acpi/tables, etc/acpi/rsdp). SeaBIOS places them where it likes and
//!   then runs the table-loader script: ADD_POINTER adds the address it chose
//!   for the tables file to each pointer field, ADD_CHECKSUM fixes the
//!   checksums. Building with `tables_base = 0` makes every pointer field hold
//!   the offset of its target inside the tables blob, which is exactly what
//!   ADD_POINTER expects; [`AcpiTables::pointers`] and
//!   [`AcpiTables::checksums`] are the script's commands.

use acpi_tables::Aml;
use acpi_tables::rsdp::Rsdp;
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};

use super::config::{AcpiConfig, SDT_HEADER_LEN, sdt};
use super::{dsdt, fadt, madt};
use crate::layout::{ACPI_MAX_SIZE, ACPI_START, FOUR_GIB};
use crate::memory::GuestMemoryMmap;

/// The tables blob must start on this boundary: the FACS, first in the blob,
/// must be 64-byte aligned (ACPI 6.5, 5.2.10). The table-loader's ALLOCATE
/// for etc/acpi/tables must ask for this alignment.
pub const TABLES_ALIGN: u64 = 64;

/// Offset of the 8-byte checksum in every table header.
const SDT_CHECKSUM_OFFSET: usize = 9;
/// RSDP fields (ACPI 6.5, 5.2.5.3).
const RSDP_CHECKSUM_OFFSET: usize = 8;
const RSDP_V1_LEN: usize = 20;
const RSDP_XSDT_OFFSET: usize = 24;
const RSDP_EXT_CHECKSUM_OFFSET: usize = 32;
const XSDT_REVISION: u8 = 1;

#[derive(Debug, Error)]
pub enum AcpiError {
    #[error("a VM needs at least one vCPU")]
    NoVcpus,
    #[error("ACPI tables base {0:#x} is not {TABLES_ALIGN}-byte aligned (the FACS needs it)")]
    MisalignedBase(u64),
    #[error(
        "ACPI tables end above 4 GiB (base {base:#x}, {len:#x} bytes): 32-bit pointers cannot reach them"
    )]
    AboveFourGib { base: u64, len: u64 },
    #[error("ACPI tables need {size:#x} bytes but only {max:#x} are reserved for them")]
    TooLarge { size: u64, max: u64 },
    #[error("cannot write the ACPI tables to guest memory: {0}")]
    GuestMemory(#[from] vm_memory::GuestMemoryError),
}

/// Which of the two blobs a field lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blob {
    /// etc/acpi/tables: FACS, DSDT, FADT, MADT, XSDT.
    Tables,
    /// etc/acpi/rsdp.
    Rsdp,
}

/// A pointer field that holds `tables_base + offset of the target table`.
/// The target is always in the tables blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablePointer {
    /// Blob holding the field.
    pub blob: Blob,
    /// Offset of the field in that blob.
    pub offset: usize,
    /// Field width in bytes: 4 or 8.
    pub size: u8,
}

/// A checksum byte at `field` that makes `[start, start + len)` sum to zero.
/// Apply them in order (the RSDP's 20-byte checksum lies inside the range of
/// its extended checksum, so it comes first), after patching the pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableChecksum {
    pub blob: Blob,
    pub start: usize,
    pub len: usize,
    pub field: usize,
}

/// Where a table was placed inside the tables blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableEntry {
    pub signature: [u8; 4],
    pub offset: usize,
    pub len: usize,
}

/// The tables built for one base address.
#[derive(Debug, Clone)]
pub struct AcpiTables {
    /// Guest address the pointer fields assume for `tables`.
    pub tables_base: u64,
    pub tables: Vec<u8>,
    pub rsdp: Vec<u8>,
    pub entries: Vec<TableEntry>,
    pub pointers: Vec<TablePointer>,
    pub checksums: Vec<TableChecksum>,
}

impl AcpiTables {
    /// The bytes of the table with this signature.
    pub fn table(&self, signature: &[u8; 4]) -> Option<&[u8]> {
        let entry = self.entries.iter().find(|e| &e.signature == signature)?;
        self.tables.get(entry.offset..entry.offset + entry.len)
    }

    /// Guest address of the table with this signature.
    pub fn address_of(&self, signature: &[u8; 4]) -> Option<u64> {
        let entry = self.entries.iter().find(|e| &e.signature == signature)?;
        Some(self.tables_base + entry.offset as u64)
    }
}

/// Accumulates tables into one blob, each at an aligned offset.
struct BlobBuilder {
    base: u64,
    data: Vec<u8>,
    entries: Vec<TableEntry>,
}

impl BlobBuilder {
    /// Appends a table and returns its guest address.
    fn push(&mut self, table: &[u8], align: usize) -> u64 {
        let offset = self.data.len().next_multiple_of(align);
        self.data.resize(offset, 0);
        self.data.extend_from_slice(table);
        let mut signature = [0u8; 4];
        if let Some(sig) = table.get(..4) {
            signature.copy_from_slice(sig);
        }
        self.entries.push(TableEntry {
            signature,
            offset,
            len: table.len(),
        });
        self.base + offset as u64
    }

    fn next_address(&self, align: usize) -> u64 {
        self.base + self.data.len().next_multiple_of(align) as u64
    }
}

/// Builds every table for a tables blob placed at `tables_base` (use 0 for
/// fw_cfg's table-loader). The RSDP blob can go anywhere: nothing points at it.
pub fn build_acpi_tables(config: &AcpiConfig, tables_base: u64) -> Result<AcpiTables, AcpiError> {
    if config.vcpus == 0 {
        return Err(AcpiError::NoVcpus);
    }
    if !tables_base.is_multiple_of(TABLES_ALIGN) {
        return Err(AcpiError::MisalignedBase(tables_base));
    }
    // The FADT's 32-bit pointers must reach every table. Checking the base
    // first also keeps the address arithmetic below far from overflowing.
    if tables_base >= FOUR_GIB {
        return Err(AcpiError::AboveFourGib {
            base: tables_base,
            len: 0,
        });
    }

    let mut blob = BlobBuilder {
        base: tables_base,
        data: Vec::new(),
        entries: Vec::new(),
    };
    let mut pointers = Vec::new();

    // Tables are placed so that every table is built after the tables it
    // points at, so each pointer is known when its table is built.
    let facs_addr = blob.push(&fadt::build_facs(), TABLES_ALIGN as usize);
    let dsdt_addr = blob.push(&dsdt::build_dsdt(config), 8);

    let fadt_addr = blob.next_address(8);
    let fadt = fadt::build_fadt(
        config,
        u32_addr(dsdt_addr, &blob)?,
        u32_addr(facs_addr, &blob)?,
    );
    let fadt_offset = (fadt_addr - tables_base) as usize;
    for (offset, size) in fadt::POINTER_FIELDS {
        pointers.push(TablePointer {
            blob: Blob::Tables,
            offset: fadt_offset + offset,
            size,
        });
    }
    blob.push(&fadt, 8);

    let madt_addr = blob.push(&madt::build_madt(config), 8);

    let xsdt_entries = [fadt_addr, madt_addr];
    let xsdt_body: Vec<u8> = xsdt_entries.iter().flat_map(|a| a.to_le_bytes()).collect();
    let xsdt_addr = blob.next_address(8);
    let xsdt_offset = (xsdt_addr - tables_base) as usize;
    for i in 0..xsdt_entries.len() {
        pointers.push(TablePointer {
            blob: Blob::Tables,
            offset: xsdt_offset + SDT_HEADER_LEN + 8 * i,
            size: 8,
        });
    }
    blob.push(&sdt(config, *b"XSDT", XSDT_REVISION, &xsdt_body), 8);

    if tables_base + blob.data.len() as u64 > FOUR_GIB {
        return Err(AcpiError::AboveFourGib {
            base: tables_base,
            len: blob.data.len() as u64,
        });
    }

    let mut rsdp = Vec::new();
    Rsdp::new(config.oem_id, xsdt_addr).to_aml_bytes(&mut rsdp);
    pointers.push(TablePointer {
        blob: Blob::Rsdp,
        offset: RSDP_XSDT_OFFSET,
        size: 8,
    });

    let mut checksums: Vec<TableChecksum> = blob
        .entries
        .iter()
        // The FACS has no checksum.
        .filter(|e| &e.signature != b"FACS")
        .map(|e| TableChecksum {
            blob: Blob::Tables,
            start: e.offset,
            len: e.len,
            field: e.offset + SDT_CHECKSUM_OFFSET,
        })
        .collect();
    checksums.push(TableChecksum {
        blob: Blob::Rsdp,
        start: 0,
        len: RSDP_V1_LEN,
        field: RSDP_CHECKSUM_OFFSET,
    });
    checksums.push(TableChecksum {
        blob: Blob::Rsdp,
        start: 0,
        len: rsdp.len(),
        field: RSDP_EXT_CHECKSUM_OFFSET,
    });

    Ok(AcpiTables {
        tables_base,
        tables: blob.data,
        rsdp,
        entries: blob.entries,
        pointers,
        checksums,
    })
}

/// A table address for a 32-bit pointer field.
fn u32_addr(addr: u64, blob: &BlobBuilder) -> Result<u32, AcpiError> {
    u32::try_from(addr).map_err(|_| AcpiError::AboveFourGib {
        base: blob.base,
        len: blob.data.len() as u64,
    })
}

/// Writes the tables for direct boot into `[ACPI_START, ACPI_START +
/// ACPI_MAX_SIZE)`: the RSDP at ACPI_START (16-byte aligned, inside the BIOS
/// area the guest scans), the other tables right after it. Returns the RSDP
/// address.
pub fn create_acpi_tables(
    mem: &GuestMemoryMmap,
    config: &AcpiConfig,
) -> Result<GuestAddress, AcpiError> {
    create_acpi_tables_at(mem, config, GuestAddress(ACPI_START), ACPI_MAX_SIZE)
}

/// As [`create_acpi_tables`], for a region `[start, start + max_size)`.
/// `start` must be 16-byte aligned for the guest's RSDP scan to find it.
pub fn create_acpi_tables_at(
    mem: &GuestMemoryMmap,
    config: &AcpiConfig,
    start: GuestAddress,
    max_size: u64,
) -> Result<GuestAddress, AcpiError> {
    let rsdp_len = Rsdp::len() as u64;
    let tables_base = start
        .0
        .checked_add(rsdp_len)
        .and_then(|a| a.checked_next_multiple_of(TABLES_ALIGN))
        .ok_or(AcpiError::AboveFourGib {
            base: start.0,
            len: rsdp_len,
        })?;
    let tables = build_acpi_tables(config, tables_base)?;
    let size = tables_base - start.0 + tables.tables.len() as u64;
    if size > max_size {
        return Err(AcpiError::TooLarge {
            size,
            max: max_size,
        });
    }
    mem.write_slice(&tables.rsdp, start)?;
    mem.write_slice(&tables.tables, GuestAddress(tables_base))?;
    Ok(start)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::layout::LAPIC_START;
    use std::path::PathBuf;
    use std::process::Command;

    pub fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
    }

    pub fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }

    pub fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    pub fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// Checks the generic SDT header; returns the table.
    pub fn check_sdt<'a>(table: &'a [u8], signature: &[u8; 4], revision: u8) -> &'a [u8] {
        assert_eq!(&table[..4], signature);
        assert_eq!(u32_at(table, 4) as usize, table.len(), "length field");
        assert_eq!(table[8], revision, "revision");
        assert_eq!(sum(table), 0, "checksum of {:?}", signature);
        assert_eq!(&table[10..16], b"FLINT ");
        table
    }

    /// A fresh scratch directory for tests that run iasl.
    pub fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flint-{}-{}", name, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Runs iasl with `args` in `dir`; fails the test clearly when iasl is
    /// missing. Returns (success, stdout + stderr).
    pub fn run_iasl(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
        let output = Command::new("iasl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run iasl ({e}): the ACPI tests need it; \
                     install it with `apt-get install -y acpica-tools`"
                )
            });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    fn mem(start: u64, size: usize) -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(start), size)]).unwrap()
    }

    #[test]
    fn direct_boot_tables_are_linked_and_checksummed() {
        let m = mem(0, 0x10_0000);
        let rsdp_addr = create_acpi_tables(&m, &AcpiConfig::new(2)).unwrap();
        assert_eq!(rsdp_addr, GuestAddress(ACPI_START));

        let mut rsdp = [0u8; 36];
        m.read_slice(&mut rsdp, rsdp_addr).unwrap();
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(rsdp[15], 2, "RSDP revision");
        assert_eq!(sum(&rsdp[..20]), 0, "RSDP checksum");
        assert_eq!(sum(&rsdp), 0, "RSDP extended checksum");
        assert_eq!(u32_at(&rsdp, 20), 36, "RSDP length");

        let read_table = |addr: u64| {
            let mut header = [0u8; 36];
            m.read_slice(&mut header, GuestAddress(addr)).unwrap();
            let mut t = vec![0u8; u32_at(&header, 4) as usize];
            m.read_slice(&mut t, GuestAddress(addr)).unwrap();
            t
        };

        let xsdt_addr = u64_at(&rsdp, RSDP_XSDT_OFFSET);
        let xsdt = read_table(xsdt_addr);
        check_sdt(&xsdt, b"XSDT", 1);
        assert_eq!(xsdt.len(), 36 + 16);
        let fadt_addr = u64_at(&xsdt, 36);
        let madt_addr = u64_at(&xsdt, 44);

        let fadt = read_table(fadt_addr);
        check_sdt(&fadt, b"FACP", 6);
        let madt = read_table(madt_addr);
        check_sdt(&madt, b"APIC", madt::MADT_REVISION);
        assert_eq!(u32_at(&madt, 36) as u64, LAPIC_START);

        // FADT -> DSDT and FACS, through both the 32-bit and the X_ fields.
        let dsdt_addr = u64::from(u32_at(&fadt, 40));
        assert_eq!(u64_at(&fadt, 140), dsdt_addr);
        let facs_addr = u64::from(u32_at(&fadt, 36));
        assert_eq!(u64_at(&fadt, 132), facs_addr);
        let dsdt = read_table(dsdt_addr);
        check_sdt(&dsdt, b"DSDT", 2);
        assert_eq!(facs_addr % 64, 0, "FACS alignment");
        let mut facs = [0u8; 64];
        m.read_slice(&mut facs, GuestAddress(facs_addr)).unwrap();
        assert_eq!(&facs[..4], b"FACS");
        assert_eq!(u32_at(&facs, 4), 64);

        // Everything inside the reserved region, nothing overlapping the RSDP.
        for addr in [xsdt_addr, fadt_addr, madt_addr, dsdt_addr, facs_addr] {
            assert!((ACPI_START + 36..ACPI_START + ACPI_MAX_SIZE).contains(&addr));
        }
    }

    #[test]
    fn tables_that_do_not_fit_are_refused() {
        let m = mem(0, 0x10_0000);
        let err = create_acpi_tables_at(&m, &AcpiConfig::new(255), GuestAddress(ACPI_START), 0x800)
            .unwrap_err();
        assert!(
            matches!(err, AcpiError::TooLarge { max: 0x800, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("only 0x800 are reserved"), "{err}");
        // The real region holds the largest configuration, with hotplug AML.
        let mut config = AcpiConfig::new(255);
        config.pci_hotplug = true;
        create_acpi_tables(&m, &config).unwrap();
    }

    #[test]
    fn guest_memory_errors_and_bad_configs_are_reported() {
        let m = mem(0x10_0000, 0x1000);
        assert!(matches!(
            create_acpi_tables(&m, &AcpiConfig::new(1)),
            Err(AcpiError::GuestMemory(_))
        ));
        assert!(matches!(
            build_acpi_tables(&AcpiConfig::new(0), 0),
            Err(AcpiError::NoVcpus)
        ));
        assert!(matches!(
            build_acpi_tables(&AcpiConfig::new(1), 0x1010),
            Err(AcpiError::MisalignedBase(0x1010))
        ));
        for base in [0xffff_ff00, FOUR_GIB, u64::MAX - 63] {
            assert!(matches!(
                build_acpi_tables(&AcpiConfig::new(1), base),
                Err(AcpiError::AboveFourGib { .. })
            ));
        }
        assert!(matches!(
            create_acpi_tables_at(&m, &AcpiConfig::new(1), GuestAddress(u64::MAX - 15), 0x1000),
            Err(AcpiError::AboveFourGib { .. })
        ));
    }

    /// Applies the table-loader's commands the way SeaBIOS does and checks
    /// the result equals the tables built directly for that address.
    #[test]
    fn loader_blobs_report_every_pointer() {
        let mut config = AcpiConfig::new(4);
        config.pci_hotplug = true;
        let blobs = build_acpi_tables(&config, 0).unwrap();
        let base = 0x7ffe_0000u64;
        let placed = build_acpi_tables(&config, base).unwrap();

        let (mut tables, mut rsdp) = (blobs.tables.clone(), blobs.rsdp.clone());
        for p in &blobs.pointers {
            let buf = match p.blob {
                Blob::Tables => &mut tables,
                Blob::Rsdp => &mut rsdp,
            };
            let field = &mut buf[p.offset..p.offset + p.size as usize];
            if p.size == 4 {
                let v = u32::from_le_bytes(field.try_into().unwrap()) + base as u32;
                field.copy_from_slice(&v.to_le_bytes());
            } else {
                let v = u64::from_le_bytes(field.try_into().unwrap()) + base;
                field.copy_from_slice(&v.to_le_bytes());
            }
        }
        for c in &blobs.checksums {
            let buf = match c.blob {
                Blob::Tables => &mut tables,
                Blob::Rsdp => &mut rsdp,
            };
            buf[c.field] = 0;
            buf[c.field] = 0u8.wrapping_sub(sum(&buf[c.start..c.start + c.len]));
        }
        assert_eq!(tables, placed.tables);
        assert_eq!(rsdp, placed.rsdp);

        // 2 XSDT entries, 4 FADT fields, 1 RSDP field; all checksummed tables.
        assert_eq!(blobs.pointers.len(), 7);
        assert_eq!(blobs.checksums.len(), 4 + 2);
        // Each pointer field in the base-0 blob holds the offset of a table.
        let starts: Vec<u64> = blobs.entries.iter().map(|e| e.offset as u64).collect();
        for p in &blobs.pointers {
            let buf = if p.blob == Blob::Tables {
                &blobs.tables
            } else {
                &blobs.rsdp
            };
            let v = if p.size == 4 {
                u64::from(u32_at(buf, p.offset))
            } else {
                u64_at(buf, p.offset)
            };
            assert!(starts.contains(&v), "{p:?} holds {v:#x}");
        }
        assert_eq!(placed.address_of(b"FACS").unwrap() % 64, 0);
    }

    /// iasl disassembles the data tables and checks their fields; a table
    /// with a bad length, checksum or field layout makes it complain.
    #[test]
    fn iasl_accepts_the_data_tables() {
        let t = build_acpi_tables(&AcpiConfig::new(2), 0xe_0040).unwrap();
        let dir = scratch_dir("acpi-data-tables");
        for sig in [b"FACP", b"APIC", b"XSDT", b"FACS"] {
            let name = String::from_utf8_lossy(sig).to_lowercase();
            let table = t.table(sig).unwrap();
            std::fs::write(dir.join(format!("{name}.dat")), table).unwrap();
            let (ok, out) = run_iasl(&dir, &["-d", &format!("{name}.dat")]);
            assert!(ok, "iasl -d {name}.dat failed:\n{out}");
            let dsl = std::fs::read_to_string(dir.join(format!("{name}.dsl"))).unwrap();
            for bad in ["Invalid", "Warning", "Error", "**** "] {
                assert!(!dsl.contains(bad), "{name}: iasl flagged {bad:?}:\n{dsl}");
                assert!(!out.contains(bad), "{name}: iasl flagged {bad:?}:\n{out}");
            }
        }
        // (iasl cannot disassemble a lone RSDP; its checksums are checked
        // in direct_boot_tables_are_linked_and_checksummed.)
        let _ = std::fs::remove_dir_all(&dir);
    }
}
