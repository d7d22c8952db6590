//! The VMM's side of the VM config (`contract::config`): the equivalent
//! command-line flags, and the checks of a config before any VM is
//! created — the contract's own rules (disk ids, serials, EBS limits,
//! NICs, identity, metadata) and what only the VMM can check: files on
//! this host, the firmware, the limits of this VMM (vCPUs, memory, the
//! kernel command line).

mod flags;

pub use flags::VmmArgs;

use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

use flint_contract::config::{
    BootMode, IdentityError, ImageConfig, KernelConfig, MAX_DISK_ID_LEN, MAX_DISKS, MAX_SERIAL_LEN,
    NetConfigError, VmConfig, net, valid_disk_id, valid_serial,
};
use flint_contract::ebs::LimitsError;

/// Below this the Debian kernel cannot even unpack its initramfs.
pub const MIN_MEMORY_MIB: u64 = 64;
/// Bounded by what one host may sensibly give one VM here.
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
/// x2APIC ids are not set up, so xAPIC's 8-bit ids bound the count.
pub const MAX_VCPUS: u8 = 254;
/// NICs occupy fixed PCI slots from here (slot 5 is the primary ENI's on
/// EC2 Nitro instances: `ens5`), so attaching disks never renames them.
pub const NIC_SLOT_FIRST: u8 = 5;
/// A disk smaller than one sector cannot hold a boot record.
const SECTOR: u64 = 512;
/// The BIOS is mapped below 4 GiB and its last 128 KiB aliased at 0xE0000.
pub const FIRMWARE_MIN_BYTES: u64 = 128 << 10;
/// Room below 4 GiB above the IOAPIC/LAPIC and KVM's TSS pages.
pub const FIRMWARE_MAX_BYTES: u64 = 16 << 20;

#[derive(Debug, Error)]
pub enum ImageError {
    #[error(
        "disk image {0} is empty or smaller than one 512-byte sector: nothing can boot from it"
    )]
    Empty(PathBuf),
    #[error(
        "boot mode uefi is not available yet (Flint's UEFI firmware is a later milestone); use legacy-bios"
    )]
    UefiUnavailable,
    #[error(
        "firmware {path} is {size} bytes; a BIOS image is a multiple of 64 KiB between 128 KiB and 16 MiB"
    )]
    FirmwareSize { path: PathBuf, size: u64 },
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("vcpus must be between 1 and {MAX_VCPUS}, got {0}")]
    Vcpus(u64),
    #[error("memory must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, got {0}")]
    Memory(u64),
    #[error("nothing to boot: give a kernel (--kernel) or an AMI disk image (--image)")]
    NoBootSource,
    #[error("give either a kernel (--kernel) or a disk image (--image), not both")]
    TwoBootSources,
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Net(#[from] NetConfigError),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("kernel command line is {0} bytes, the limit is {max}", max = crate::layout::CMDLINE_MAX_SIZE - 1)]
    CmdlineTooLong(usize),
    #[error("kernel command line contains a NUL byte")]
    CmdlineNul,
    #[error("at most {MAX_DISKS} disks, got {0}")]
    TooManyDisks(usize),
    #[error("disk serial {0:?} is longer than {MAX_SERIAL_LEN} bytes or not printable ASCII")]
    Serial(String),
    #[error("disk {0} is given twice")]
    DuplicateDisk(PathBuf),
    #[error("disk id {0:?} must be 1 to {MAX_DISK_ID_LEN} characters of A-Z a-z 0-9 . _ -")]
    DiskId(String),
    #[error("disk id {0:?} is given twice")]
    DuplicateDiskId(String),
    #[error("disk {path}: limits: {source}")]
    Limits { path: PathBuf, source: LimitsError },
    #[error("bad flag value: {0}")]
    Flag(String),
    #[error("console file {0} is a directory")]
    ConsoleDir(PathBuf),
}

/// Reading and checking a VM config, as `flint vmm` does.
pub trait VmConfigExt: Sized {
    fn from_file(path: &Path) -> Result<Self, ConfigError>;
    /// Checks everything that can be checked before creating the VM.
    fn validate(&self) -> Result<(), ConfigError>;
}

impl VmConfigExt for VmConfig {
    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return Err(ConfigError::Vcpus(self.vcpus.into()));
        }
        if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(ConfigError::Memory(self.memory_mib));
        }
        match (&self.kernel, &self.image) {
            (None, None) => return Err(ConfigError::NoBootSource),
            (Some(_), Some(_)) => return Err(ConfigError::TwoBootSources),
            (Some(kernel), None) => validate_kernel(kernel)?,
            (None, Some(image)) => validate_image(image)?,
        }
        self.identity.validate()?;
        net::validate_nics(&self.nics)?;
        if let Some(metadata) = &self.metadata {
            metadata
                .validate()
                .map_err(|e| ConfigError::Metadata(e.to_string()))?;
            if metadata.instance_id != self.identity.instance_id
                || metadata.instance_type != self.identity.instance_type
            {
                return Err(ConfigError::Metadata(format!(
                    "instance {} ({}) in the metadata differs from the VM's identity {} ({})",
                    metadata.instance_id,
                    metadata.instance_type,
                    self.identity.instance_id,
                    self.identity.instance_type
                )));
            }
            if self.nics.is_empty() {
                return Err(ConfigError::Metadata(
                    "the metadata service needs a NIC (--net)".into(),
                ));
            }
        }
        let disks = self.all_disks();
        if disks.len() > MAX_DISKS {
            return Err(ConfigError::TooManyDisks(disks.len()));
        }
        let mut seen = Vec::new();
        for disk in &disks {
            if let Some(limits) = &disk.limits {
                limits.validate().map_err(|source| ConfigError::Limits {
                    path: disk.path.clone(),
                    source,
                })?;
            }
            check_file("disk", &disk.path, !disk.read_only)?;
            let canonical = fs::canonicalize(&disk.path).unwrap_or(disk.path.clone());
            if seen.contains(&canonical) {
                return Err(ConfigError::DuplicateDisk(disk.path.clone()));
            }
            seen.push(canonical);
            if let Some(serial) = &disk.serial
                && !valid_serial(serial)
            {
                return Err(ConfigError::Serial(serial.clone()));
            }
            if let Some(id) = &disk.id
                && !valid_disk_id(id)
            {
                return Err(ConfigError::DiskId(id.clone()));
            }
        }
        let ids = self.disk_ids();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(ConfigError::DuplicateDiskId(id.clone()));
            }
        }
        if let Some(file) = &self.console.file
            && file.is_dir()
        {
            return Err(ConfigError::ConsoleDir(file.clone()));
        }
        Ok(())
    }
}

/// The image's contents are the guest's: only its size is looked at.
fn validate_image(image: &ImageConfig) -> Result<(), ConfigError> {
    check_file("disk image", &image.path, true)?;
    let size = fs::metadata(&image.path).map(|m| m.len()).unwrap_or(0);
    if size < SECTOR && !is_block_device(&image.path) {
        return Err(ImageError::Empty(image.path.clone()).into());
    }
    if image.boot_mode == BootMode::Uefi {
        return Err(ImageError::UefiUnavailable.into());
    }
    check_file("firmware", &image.firmware, false)?;
    let size = fs::metadata(&image.firmware).map(|m| m.len()).unwrap_or(0);
    let fits = (FIRMWARE_MIN_BYTES..=FIRMWARE_MAX_BYTES).contains(&size);
    if !fits || !size.is_multiple_of(64 << 10) {
        return Err(ImageError::FirmwareSize {
            path: image.firmware.clone(),
            size,
        }
        .into());
    }
    Ok(())
}

fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

fn validate_kernel(kernel: &KernelConfig) -> Result<(), ConfigError> {
    check_file("kernel", &kernel.path, false)?;
    if let Some(initrd) = &kernel.initrd {
        check_file("initrd", initrd, false)?;
    }
    if kernel.cmdline.len() >= crate::layout::CMDLINE_MAX_SIZE {
        return Err(ConfigError::CmdlineTooLong(kernel.cmdline.len()));
    }
    if kernel.cmdline.contains('\0') {
        return Err(ConfigError::CmdlineNul);
    }
    Ok(())
}

/// A regular file (or block device) that can be opened as needed.
fn check_file(what: &'static str, path: &Path, writable: bool) -> Result<(), ConfigError> {
    let err = |reason: String| ConfigError::File {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.is_dir() {
        return Err(err("is a directory".into()));
    }
    fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
