//! The VM's disks as the control socket sees them (GET /vm/disks): which
//! backing file is attached under which id, in which PCI slot, and its
//! `Volume` (EBS limits, size, counters). The table outlives one boot: a
//! disk attached while the guest runs is there again after a guest reboot,
//! in the same slot, with its limits and counters; a disk's entry (and its
//! volume) goes when its detach completes.
//!
//! - [`DiskTable`]: the one registry of the VM's disks, boot-time and
//!   hot-plugged, shared by the API thread (reads, metrics, live limits)
//!   and the VMM's main loop (the only one that adds and removes disks).
//! - `plug`: one boot's disk devices; executes the control socket's disk
//!   commands ([`DiskOp`]) on the main loop, where the event loop and the
//!   seccomp filter that allows opening files are.

pub mod plug;
#[cfg(test)]
pub(crate) mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use thiserror::Error;

/// The disk requests and replies of the control socket.
pub use flint_contract::socket::{AttachRequest, DiskInfo, DiskState};

use crate::acpi::EjectWait;
use crate::devices::virtio::block::{Volume, VolumeError};
use crate::pci::slots::disk_slot;
use flint_contract::config::VmConfig;
use flint_contract::ebs::{Limits, LimitsError};
use flint_contract::socket::{self, BadRequest};

/// One disk of the VM. Its id, size and limits are its volume's.
#[derive(Debug, Clone)]
pub struct DiskEntry {
    pub path: PathBuf,
    pub read_only: bool,
    pub serial: Option<String>,
    /// O_DIRECT for aligned requests.
    pub direct: bool,
    pub slot: u8,
    pub state: DiskState,
    /// The firmware boots from it (the AMI image): not detachable while the
    /// VM runs, as EC2 refuses to detach a running instance's root volume.
    pub root: bool,
    /// Attached through the control socket (not in the VM's config).
    pub hotplugged: bool,
    /// While detaching: why the guest has not ejected it yet.
    pub eject_wait: Option<EjectWait>,
    /// Its id, limits, size and counters, handed to the block device of
    /// each boot.
    pub volume: Arc<Volume>,
}

impl DiskEntry {
    pub fn id(&self) -> &str {
        self.volume.id()
    }

    /// What the guest sees: whole 512-byte sectors of the backing file (0
    /// until a boot has opened it).
    pub fn size_bytes(&self) -> u64 {
        self.volume.size_bytes()
    }

    pub fn limits(&self) -> Option<Limits> {
        self.volume.limits()
    }

    /// The disk as the control socket shows it.
    pub fn info(&self) -> DiskInfo {
        DiskInfo {
            id: self.id().to_string(),
            path: self.path.clone(),
            read_only: self.read_only,
            direct: self.direct,
            serial: self.serial.clone(),
            slot: self.slot,
            state: self.state,
            size_bytes: self.size_bytes(),
            limits: self.limits(),
            eject_wait: self.eject_wait.map(|w| match w {
                EjectWait::GuestNotListening => socket::EjectWait::GuestNotListening,
                EjectWait::NotRead => socket::EjectWait::NotRead,
                EjectWait::GuestHolding => socket::EjectWait::GuestHolding,
            }),
        }
    }
}

/// The same disk (one volume) in the same place and state.
impl PartialEq for DiskEntry {
    fn eq(&self, other: &Self) -> bool {
        let key = |e: &Self| {
            let place = (e.path.clone(), e.read_only, e.serial.clone(), e.slot);
            (place, e.state, e.root, e.hotplugged)
        };
        Arc::ptr_eq(&self.volume, &other.volume) && key(self) == key(other)
    }
}

/// As [`DiskInfo`].
impl serde::Serialize for DiskEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.info().serialize(s)
    }
}

/// What the main loop is asked to do with a disk.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskOp {
    Attach(AttachRequest),
    Detach {
        id: String,
        force: bool,
    },
    /// Re-read the backing file's size and tell the guest.
    Resize {
        id: String,
    },
}

/// How a disk command went.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskReply {
    /// Attached: the entry now.
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

impl From<BadRequest> for DiskOpError {
    fn from(e: BadRequest) -> Self {
        DiskOpError::BadRequest(e.0)
    }
}

impl From<LimitsError> for DiskOpError {
    fn from(e: LimitsError) -> Self {
        DiskOpError::BadRequest(format!("bad limits: {e}"))
    }
}

impl From<VolumeError> for DiskOpError {
    fn from(e: VolumeError) -> Self {
        match e {
            VolumeError::Limits(e) => e.into(),
            other => DiskOpError::Device(other.to_string()),
        }
    }
}

/// The disks of the VM, in the order they were attached.
pub struct DiskTable {
    entries: Mutex<Vec<DiskEntry>>,
}

impl DiskTable {
    /// The boot-time disks of `config`, in their fixed slots, each on a
    /// volume with its limits. Sizes are filled in when the first boot
    /// opens them.
    pub fn from_config(config: &VmConfig) -> Result<Self, VolumeError> {
        let entries = config
            .all_disks()
            .into_iter()
            .zip(config.disk_ids())
            .enumerate()
            .map(|(i, (disk, id))| {
                Ok(DiskEntry {
                    volume: Volume::new(id, disk.limits)?,
                    path: disk.path,
                    read_only: disk.read_only,
                    serial: disk.serial,
                    direct: disk.direct,
                    slot: disk_slot(i),
                    state: DiskState::Attached,
                    root: i == 0 && config.image.is_some(),
                    hotplugged: false,
                    eject_wait: None,
                })
            })
            .collect::<Result<_, VolumeError>>()?;
        Ok(DiskTable {
            entries: Mutex::new(entries),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<DiskEntry>> {
        // Plain data: consistent enough whatever a panicking holder left.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn list(&self) -> Vec<DiskEntry> {
        self.lock().clone()
    }

    pub fn get(&self, id: &str) -> Option<DiskEntry> {
        self.lock().iter().find(|e| e.id() == id).cloned()
    }

    /// Applies new limits (None: unthrottled) to disk `id` at once, boot
    /// running or not: its device's queues look at them on their next
    /// request (a held one at once).
    pub fn set_limits(&self, id: &str, limits: Option<Limits>) -> Result<DiskEntry, DiskOpError> {
        let entry = self
            .get(id)
            .ok_or_else(|| DiskOpError::NotFound(id.to_string()))?;
        entry.volume.set_limits(limits)?;
        Ok(entry)
    }
}
