//! What one VM is made of: the JSON config file of `flint vmm --config`,
//! the equivalent command-line flags, and validation of both before any VM
//! is created.

mod flags;
pub mod image;
pub mod net;

pub use flags::VmmArgs;
pub use image::{BootMode, Identity, ImageConfig};
pub use net::{MAX_NICS, NIC_SLOT_FIRST, NetConfig};

use crate::contract::ebs::{Limits, LimitsError};
use crate::vmm::imds::MetadataConfig;

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Below this the Debian kernel cannot even unpack its initramfs.
pub const MIN_MEMORY_MIB: u64 = 64;
/// Bounded by what one host may sensibly give one VM here.
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
/// x2APIC ids are not set up, so xAPIC's 8-bit ids bound the count.
pub const MAX_VCPUS: u8 = 254;
/// Disks occupy PCI slots; the rest stay free for hot-plug and NICs.
pub const MAX_DISKS: usize = 16;
/// virtio-blk's ID field is 20 bytes.
pub const MAX_SERIAL_LEN: usize = 20;
/// A disk id names the disk in control-socket paths (/vm/disks/{id}).
pub const MAX_DISK_ID_LEN: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    #[serde(default = "default_vcpus")]
    pub vcpus: u8,
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Direct kernel boot.
    pub kernel: Option<KernelConfig>,
    /// AMI disk boot through firmware: the image is the first disk.
    pub image: Option<ImageConfig>,
    /// Who the VM is, as EC2 would say (SMBIOS; later the metadata service).
    #[serde(default)]
    pub identity: Identity,
    #[serde(default)]
    pub disks: Vec<DiskConfig>,
    /// NICs, in order, on PCI slots from NIC_SLOT_FIRST.
    #[serde(default)]
    pub nics: Vec<NetConfig>,
    /// What the instance metadata service on 169.254.169.254 serves (on
    /// the first NIC). None: no metadata service.
    pub metadata: Option<MetadataConfig>,
    #[serde(default)]
    pub console: ConsoleConfig,
    /// The per-VM control socket (JSON over HTTP).
    pub api_socket: Option<PathBuf>,
    #[serde(default)]
    pub on_reboot: RebootAction,
    /// How long a graceful shutdown (SIGTERM, API) may take before a hard stop.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_s: u64,
    #[serde(default = "default_true")]
    pub seccomp: bool,
    /// Let the event loop batch block I/O when that pays (see
    /// `vmm::loop_policy`); false: every kick and completion is served as
    /// soon as the scheduler allows.
    #[serde(default = "default_true")]
    pub io_batching: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// bzImage or ELF vmlinux.
    pub path: PathBuf,
    pub initrd: Option<PathBuf>,
    #[serde(default = "default_cmdline")]
    pub cmdline: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub read_only: bool,
    /// The disk's serial (virtio-blk ID): the volume id on Flint.
    pub serial: Option<String>,
    /// The disk's name on the control socket (GET /vm/disks); default: the
    /// serial, else `disk<N>` by position (the AMI image counts as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// EBS volume-type performance limits; None: as fast as the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Bypass the host page cache (O_DIRECT) for aligned requests; the
    /// image's filesystem must support it (tmpfs before Linux 6.6 does
    /// not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
}

impl DiskConfig {
    pub fn new(path: PathBuf) -> Self {
        DiskConfig {
            path,
            ..DiskConfig::default()
        }
    }
}

/// Whether `id` can name a disk: 1 to MAX_DISK_ID_LEN of `[A-Za-z0-9._-]`,
/// so it needs no escaping in a URL path or a Prometheus label.
pub fn valid_disk_id(id: &str) -> bool {
    (1..=MAX_DISK_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `serial` fits virtio-blk's ID field: printable ASCII, at most
/// MAX_SERIAL_LEN bytes.
pub fn valid_serial(serial: &str) -> bool {
    serial.len() <= MAX_SERIAL_LEN && serial.bytes().all(|b| b.is_ascii_graphic())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Append the serial console to this file.
    pub file: Option<PathBuf>,
    /// Also connect the console to the VMM's stdin/stdout.
    #[serde(default)]
    pub stdio: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RebootAction {
    /// Reset the VM and boot again, as a PC does.
    #[default]
    Restart,
    /// Exit with EXIT_REBOOT so a supervisor can decide.
    Exit,
}

fn default_vcpus() -> u8 {
    1
}
fn default_memory_mib() -> u64 {
    512
}
fn default_cmdline() -> String {
    "console=ttyS0 reboot=k panic=1".to_string()
}
fn default_shutdown_timeout() -> u64 {
    30
}
fn default_true() -> bool {
    true
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
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Net(#[from] net::NetConfigError),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("kernel command line is {0} bytes, the limit is {max}", max = crate::vmm::layout::CMDLINE_MAX_SIZE - 1)]
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

impl VmConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks everything that can be checked before creating the VM.
    pub fn validate(&self) -> Result<(), ConfigError> {
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
            (None, Some(image)) => image.validate()?,
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

    /// Every disk in PCI slot order: the AMI image (the root volume) first,
    /// then the extra disks.
    pub fn all_disks(&self) -> Vec<DiskConfig> {
        let root = self.image.as_ref().map(ImageConfig::disk);
        root.into_iter().chain(self.disks.iter().cloned()).collect()
    }

    /// The control-socket id of each of `all_disks()`: its own, else its
    /// serial (when that can name a disk), else `disk<N>`.
    pub fn disk_ids(&self) -> Vec<String> {
        self.all_disks()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                d.id.clone()
                    .or_else(|| d.serial.clone().filter(|s| valid_disk_id(s)))
                    .unwrap_or_else(|| format!("disk{i}"))
            })
            .collect()
    }

    /// True when the VM starts in firmware (SeaBIOS) rather than in the
    /// kernel.
    pub fn boots_firmware(&self) -> bool {
        self.kernel.is_none() && self.image.is_some()
    }
}

fn validate_kernel(kernel: &KernelConfig) -> Result<(), ConfigError> {
    check_file("kernel", &kernel.path, false)?;
    if let Some(initrd) = &kernel.initrd {
        check_file("initrd", initrd, false)?;
    }
    if kernel.cmdline.len() >= crate::vmm::layout::CMDLINE_MAX_SIZE {
        return Err(ConfigError::CmdlineTooLong(kernel.cmdline.len()));
    }
    if kernel.cmdline.contains('\0') {
        return Err(ConfigError::CmdlineNul);
    }
    Ok(())
}

/// A regular file (or block device) that can be opened as needed.
pub(super) fn check_file(
    what: &'static str,
    path: &Path,
    writable: bool,
) -> Result<(), ConfigError> {
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
