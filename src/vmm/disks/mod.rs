//! The VM's disks as the control socket sees them (GET /vm/disks): which
//! backing file is attached under which id, in which PCI slot. The table
//! outlives one boot: a disk attached while the guest runs is there again
//! after a guest reboot, in the same slot.
//!
//! - [`DiskTable`]: the list, shared by the API thread (reads) and the
//!   VMM's main loop (the only writer).
//! - `plug`: one boot's disk devices; executes the control socket's disk
//!   commands ([`DiskOp`]) on the main loop, where the event loop and the
//!   seccomp filter that allows opening files are.

pub mod plug;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::vmm::config::{VmConfig, VolumeLimits, valid_disk_id, valid_serial};
use crate::vmm::device_manager::disk_slot;
use crate::vmm::devices::virtio::block::BlockMetrics;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DiskState {
    Attached,
    /// Eject requested from the guest; the device stays until it ejects.
    Detaching,
    /// Only in the reply to a forced detach: the device is gone.
    Detached,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiskEntry {
    pub id: String,
    pub path: PathBuf,
    pub read_only: bool,
    pub serial: Option<String>,
    pub slot: u8,
    pub state: DiskState,
    /// What the guest sees: whole 512-byte sectors of the backing file.
    pub size_bytes: u64,
    pub limits: Option<VolumeLimits>,
    /// The firmware boots from it (the AMI image): not detachable while the
    /// VM runs, as EC2 refuses to detach a running instance's root volume.
    #[serde(skip)]
    pub root: bool,
    /// Attached through the control socket (not in the VM's config).
    #[serde(skip)]
    pub hotplugged: bool,
}

/// PUT /vm/disks
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    pub id: String,
    pub path: PathBuf,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub limits: Option<VolumeLimits>,
}

impl AttachRequest {
    /// What can be checked without touching the host: the id, the path's
    /// form and the serial.
    pub fn validate(&self) -> Result<(), DiskOpError> {
        if !valid_disk_id(&self.id) {
            return Err(DiskOpError::BadRequest(format!(
                "id {:?} must be 1 to {} characters of A-Z a-z 0-9 . _ -",
                self.id,
                crate::vmm::config::MAX_DISK_ID_LEN
            )));
        }
        if !self.path.is_absolute() {
            return Err(DiskOpError::BadRequest(format!(
                "path {} is not absolute",
                self.path.display()
            )));
        }
        if let Some(serial) = &self.serial
            && !valid_serial(serial)
        {
            return Err(DiskOpError::BadRequest(format!(
                "serial {serial:?} is longer than {} bytes or not printable ASCII",
                crate::vmm::config::MAX_SERIAL_LEN
            )));
        }
        Ok(())
    }
}

/// PATCH /vm/disks/{id}: `{"resize": true}` and/or `{"limits": ...}`
/// (`"limits": null` lifts them).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiskPatch {
    #[serde(default)]
    pub resize: bool,
    /// Absent: unchanged; `Some(None)`: unthrottled.
    #[serde(default, deserialize_with = "present")]
    pub limits: Option<Option<VolumeLimits>>,
}

/// Tells `"limits": null` (Some(None)) from an absent field (None).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<VolumeLimits>>, D::Error> {
    Option::<VolumeLimits>::deserialize(d).map(Some)
}

/// What the main loop is asked to do with a disk.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskOp {
    Attach(AttachRequest),
    Detach { id: String, force: bool },
    Patch { id: String, patch: DiskPatch },
}

/// How a disk command went.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskReply {
    /// Attached, or new limits applied: the entry now.
    Entry(DiskEntry),
    /// The guest was asked to eject it.
    EjectRequested(DiskEntry),
    /// Removed at once (forced).
    Removed(DiskEntry),
    /// Resized: the new size in bytes.
    Resized(u64),
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DiskOpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no disk {0:?} is attached")]
    NotFound(String),
    #[error("disk {0:?} is already attached")]
    AlreadyAttached(String),
    #[error("disk {0:?} is the root volume: it cannot be detached while the VM runs")]
    RootVolume(String),
    #[error("{0}")]
    CannotOpen(String),
    #[error("no free hot-plug PCI slot")]
    NoFreeSlot,
    #[error("{0}")]
    Device(String),
}

impl DiskOpError {
    /// The control socket's status for it.
    pub fn status(&self) -> u16 {
        match self {
            DiskOpError::BadRequest(_) => 400,
            DiskOpError::NotFound(_) => 404,
            DiskOpError::AlreadyAttached(_) | DiskOpError::RootVolume(_) => 409,
            DiskOpError::CannotOpen(_) => 422,
            DiskOpError::NoFreeSlot => 507,
            DiskOpError::Device(_) => 500,
        }
    }
}

/// The disks of the VM, in the order they were attached.
pub struct DiskTable {
    entries: Mutex<Vec<DiskEntry>>,
    /// The running boot's device counters by disk id, for the API thread.
    metrics: Mutex<BTreeMap<String, Arc<BlockMetrics>>>,
}

impl DiskTable {
    /// The boot-time disks of `config`, in their fixed slots. Sizes are
    /// filled in when the first boot opens them.
    pub fn from_config(config: &VmConfig) -> Self {
        let entries = config
            .all_disks()
            .into_iter()
            .zip(config.disk_ids())
            .enumerate()
            .map(|(i, (disk, id))| DiskEntry {
                id,
                path: disk.path,
                read_only: disk.read_only,
                serial: disk.serial,
                slot: disk_slot(i),
                state: DiskState::Attached,
                size_bytes: 0,
                limits: disk.limits,
                root: i == 0 && config.image.is_some(),
                hotplugged: false,
            })
            .collect();
        DiskTable {
            entries: Mutex::new(entries),
            metrics: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<DiskEntry>> {
        // Plain data: consistent enough whatever a panicking holder left.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn list(&self) -> Vec<DiskEntry> {
        self.lock().clone()
    }

    pub fn get(&self, id: &str) -> Option<DiskEntry> {
        self.lock().iter().find(|e| e.id == id).cloned()
    }

    /// The counters of disk `id`'s device in the running boot.
    pub fn metrics(&self, id: &str) -> Option<Arc<BlockMetrics>> {
        self.metrics_lock().get(id).cloned()
    }

    pub(crate) fn metrics_lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<BlockMetrics>>> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }
}
