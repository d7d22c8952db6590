//! What one VM is made of: the JSON document of `flint vmm --config`,
//! which `flint serve` writes for each instance (vm.json) and `flint vmm`
//! reads. The VMM's own checks of it (files on the host, its limits on
//! vCPUs and memory) are `vmm::config`'s; the rules here are the ones both
//! sides need.

pub mod image;
pub mod net;
#[cfg(test)]
mod tests;

pub use image::{BootMode, Identity, IdentityError, ImageConfig};
pub use net::{MAX_NICS, MAX_TAP_NAME_LEN, NetConfig, NetConfigError, valid_tap_name};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ebs::Limits;
use crate::metadata::MetadataConfig;

/// Disks occupy PCI slots; the rest stay free for hot-plug and NICs. The
/// AMI image (root volume) counts: an instance has at most this many
/// volumes attached.
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
    /// NICs, in order, on fixed PCI slots (the first is `ens5`).
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
    /// The disk's name on the control socket (GET /vm/disks): the volume
    /// id on Flint; default: the serial, else `disk<N>` by position (the
    /// AMI image counts as 0).
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
    /// Append the serial console to this file (and `FILE.1`: the log
    /// rotates between the two, each at most `log_max_bytes`).
    pub file: Option<PathBuf>,
    /// Also connect the console to the VMM's stdin/stdout.
    #[serde(default)]
    pub stdio: bool,
    /// Cap on each of the two log files (None: the VMM's default, 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_max_bytes: Option<u64>,
    /// Console bytes per second written to the log, above a burst (None:
    /// the VMM's default, 64 KiB/s; 0: unlimited); the rest is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_rate_bytes_per_s: Option<u64>,
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
/// The kernel command line when none is given.
pub fn default_cmdline() -> String {
    "console=ttyS0 reboot=k panic=1".to_string()
}
fn default_shutdown_timeout() -> u64 {
    30
}
fn default_true() -> bool {
    true
}

impl VmConfig {
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
