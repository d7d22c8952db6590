//! AMI disk boot (the image, its boot mode, the firmware that boots it) and
//! the EC2 identity a VM shows its guest.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::DiskConfig;
use crate::ebs::Limits;

/// SeaBIOS from Debian's `seabios` package.
pub const DEFAULT_FIRMWARE: &str = "/usr/share/seabios/bios-256k.bin";
/// The instance type shown when none is configured.
const DEFAULT_INSTANCE_TYPE: &str = "flint.custom";
const MAX_IDENTITY_LEN: usize = 64;

#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("instance id {0:?} is not of the form i-<8 to 17 hex digits>")]
    InstanceId(String),
    #[error("instance type {0:?} must be 1 to {MAX_IDENTITY_LEN} printable ASCII characters")]
    InstanceType(String),
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BootMode {
    /// EC2's default for x86_64 AMIs: SeaBIOS runs the image's own GRUB.
    #[default]
    LegacyBios,
    Uefi,
}

impl std::str::FromStr for BootMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "legacy-bios" => Ok(BootMode::LegacyBios),
            "uefi" => Ok(BootMode::Uefi),
            other => Err(format!(
                "boot mode wants legacy-bios or uefi, got {other:?}"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// A raw disk: partition table, bootloader, kernel, root filesystem.
    pub path: PathBuf,
    #[serde(default)]
    pub boot_mode: BootMode,
    /// The BIOS image (SeaBIOS).
    #[serde(default = "default_firmware")]
    pub firmware: PathBuf,
    /// The root volume's id, shown as the disk serial.
    pub serial: Option<String>,
    /// The root disk's name on the control socket (see DiskConfig::id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The root volume's EBS limits (see DiskConfig::limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// O_DIRECT for aligned requests (see DiskConfig::direct).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
}

fn default_firmware() -> PathBuf {
    PathBuf::from(DEFAULT_FIRMWARE)
}

impl ImageConfig {
    pub fn new(path: PathBuf) -> Self {
        ImageConfig {
            path,
            boot_mode: BootMode::default(),
            firmware: default_firmware(),
            serial: None,
            id: None,
            limits: None,
            direct: false,
        }
    }

    /// The image as the VM's first (boot) disk.
    pub fn disk(&self) -> DiskConfig {
        DiskConfig {
            serial: self.serial.clone(),
            id: self.id.clone(),
            limits: self.limits,
            direct: self.direct,
            ..DiskConfig::new(self.path.clone())
        }
    }
}

/// What EC2 calls the instance: its id and type.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// `i-` and 8 or 17 hex digits; a random one when not given.
    #[serde(default = "random_instance_id")]
    pub instance_id: String,
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            instance_id: random_instance_id(),
            instance_type: default_instance_type(),
        }
    }
}

fn default_instance_type() -> String {
    DEFAULT_INSTANCE_TYPE.to_string()
}

/// A fresh `i-` + 17 hex digits id, as EC2 issues them today.
pub fn random_instance_id() -> String {
    let mut bytes = [0u8; 9];
    let read = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No urandom: the time and pid still make ids distinct per run.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mixed = nanos ^ (u128::from(std::process::id()) << 64);
        bytes.copy_from_slice(&mixed.to_le_bytes()[..9]);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("i-{}", &hex[..17])
}

impl Identity {
    pub fn validate(&self) -> Result<(), IdentityError> {
        let id = &self.instance_id;
        let digits = id.strip_prefix("i-").unwrap_or("");
        let hex = digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex || !(8..=17).contains(&digits.len()) {
            return Err(IdentityError::InstanceId(id.clone()));
        }
        let t = &self.instance_type;
        if t.is_empty() || t.len() > MAX_IDENTITY_LEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdentityError::InstanceType(t.clone()));
        }
        Ok(())
    }
}
