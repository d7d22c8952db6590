//! Volumes on a running VM, through its control socket (`/vm/disks`):
//! hot-plug, eject (the guest must let go: the attachment stays
//! `detaching` until the VMM reports the disk gone), resize, limits,
//! metrics; and the instance's block-device mapping in its metadata.
//!
//! The API handlers call these with the instance's slot held
//! ([`Supervisor::with_slot`]), so a hot-plug never races a launch that is
//! reading the attachments for vm.json.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

use serde::de::DeserializeOwned;

use super::vm_config::{self, disk_serial};
use super::{Supervisor, SupervisorError, limits, vmm_client};
use crate::store::StoreError;
use crate::store::volumes::{AttachmentState, VolumeRecord};
use flint_contract::metadata::MetadataUpdate;
use flint_contract::socket::{
    self, AttachRequest, DiskInfo, DiskPatch, EjectWait, Resized, VolumeMetrics,
};

/// How often a detaching disk is asked whether the guest has let it go.
const EJECT_POLL: Duration = Duration::from_millis(100);

/// What the VMM said to a hot-plug request it refused.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

/// The result of asking the VMM to let go of a disk.
#[derive(Debug, PartialEq, Eq)]
pub enum Eject {
    /// Removed (forced, or it was not there).
    Gone,
    /// The guest was asked; the disk goes when it has ejected it.
    Requested,
}

/// The `PUT /vm/disks` request for `v`: the volume id as the VMM's id and,
/// without its dash, as the serial (see [`disk_serial`]); its limits;
/// O_DIRECT if `direct`.
pub fn attach_request(v: &VolumeRecord, direct: bool) -> Result<AttachRequest, SupervisorError> {
    Ok(AttachRequest {
        id: v.id.clone(),
        path: PathBuf::from(&v.path),
        read_only: false,
        serial: Some(disk_serial(&v.id)),
        limits: Some(limits::limits(v)?),
        direct,
    })
}

impl Supervisor {
    /// Runs `f` with the instance's slot held; `f` learns whether a VM
    /// process runs for it.
    pub fn with_slot<T>(&self, id: &str, f: impl FnOnce(bool) -> T) -> T {
        let slot = self.slot(id);
        let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        f(slot.process.is_some())
    }

    /// Hot-plugs `v` into the running VM of `instance_id`. Ok(Err) is the
    /// VMM refusing (its status says why); a disk already there (409) is
    /// success: a retried attach after a daemon restart.
    pub fn plug(
        &self,
        instance_id: &str,
        v: &VolumeRecord,
    ) -> Result<Result<(), Refused>, SupervisorError> {
        let socket = self.layout().socket(instance_id);
        if self.config().jail.is_some() {
            super::jail::admit(self.config(), instance_id, std::path::Path::new(&v.path))?;
        }
        let request = attach_request(v, self.config().direct_io)?;
        let (status, reply) = vmm_client::send(&socket, "PUT", socket::DISKS, &request)?;
        Ok(match status {
            200 | 409 => Ok(()),
            _ => Err(Refused {
                status,
                message: reply.chars().take(200).collect(),
            }),
        })
    }

    /// Asks the VMM to remove the disk (`force`: at once, without the
    /// guest).
    pub fn unplug(
        &self,
        instance_id: &str,
        volume_id: &str,
        force: bool,
    ) -> Result<Eject, SupervisorError> {
        let socket = self.layout().socket(instance_id);
        let path = socket::detach_path(volume_id, force);
        let (status, body) = vmm_client::request(&socket, "DELETE", &path, None)?;
        match status {
            200 | 404 => Ok(Eject::Gone),
            202 => Ok(Eject::Requested),
            _ => Err(vmm_client::refused("DELETE", &path, status, &body)),
        }
    }

    /// `GET /vm/disks/{id}`: the entry, or None once it is gone.
    pub fn disk(
        &self,
        instance_id: &str,
        volume_id: &str,
    ) -> Result<Option<DiskInfo>, SupervisorError> {
        self.get(instance_id, &socket::disk_path(volume_id))
    }

    /// `GET {path}` on the VM's control socket: the reply, or None on 404.
    fn get<T: DeserializeOwned>(
        &self,
        instance_id: &str,
        path: &str,
    ) -> Result<Option<T>, SupervisorError> {
        let socket = self.layout().socket(instance_id);
        let (status, body) = vmm_client::request(&socket, "GET", path, None)?;
        match status {
            200 => vmm_client::parse("GET", path, &body).map(Some),
            404 => Ok(None),
            _ => Err(vmm_client::refused("GET", path, status, &body)),
        }
    }

    /// Watches a detaching disk until the VMM reports it gone, then ends
    /// the attachment. Stops watching when the VM process ends (settling
    /// the record finishes the detach then) or the attachment is no longer
    /// detaching (a forced detach finished it).
    pub fn watch_eject(self: &Arc<Self>, instance_id: &str, volume_id: &str) {
        let sup = self.clone();
        let instance_id = instance_id.to_string();
        let volume_id = volume_id.to_string();
        let _ = std::thread::Builder::new()
            .name(format!("eject-{volume_id}"))
            .spawn(move || {
                let mut last_error = Instant::now() - Duration::from_secs(60);
                let mut last_wait: Option<EjectWait> = None;
                loop {
                    if !sup.has_process(&instance_id) || !sup.is_detaching(&volume_id, &instance_id)
                    {
                        return;
                    }
                    match sup.disk(&instance_id, &volume_id) {
                        Ok(None) => {
                            sup.finish_detach(&instance_id, &volume_id);
                            return;
                        }
                        Ok(Some(entry)) => {
                            // Why the guest has not let go yet, when it changes.
                            let wait = entry.eject_wait;
                            if wait != last_wait {
                                info!(
                                    volume_id = %volume_id,
                                    instance_id = %instance_id,
                                    "flint serve: volume {volume_id}: detaching from {instance_id}: {}",
                                    wait.map_or("waiting", EjectWait::name)
                                );
                                last_wait = wait;
                            }
                        }
                        Err(e) if last_error.elapsed() > Duration::from_secs(30) => {
                            warn!(volume_id = %volume_id, instance_id = %instance_id, "flint serve: volume {volume_id}: {e}");
                            last_error = Instant::now();
                        }
                        Err(_) => {}
                    }
                    std::thread::sleep(EJECT_POLL);
                }
            });
    }

    fn is_detaching(&self, volume_id: &str, instance_id: &str) -> bool {
        matches!(
            self.store().read(|t| t.get_volume(volume_id)),
            Ok(Some(v)) if v.is_on(instance_id)
                && v.attachment_state == Some(AttachmentState::Detaching)
        )
    }

    /// The disk is off the VM: the attachment ends (if it is still the
    /// detaching one), and the guest's metadata follows.
    pub fn finish_detach(&self, instance_id: &str, volume_id: &str) {
        let done = self.store().write(|t| match t.get_volume(volume_id)? {
            Some(v)
                if v.is_on(instance_id)
                    && v.attachment_state == Some(AttachmentState::Detaching) =>
            {
                t.detach_volume(volume_id)?;
                Ok::<_, StoreError>(true)
            }
            _ => Ok(false),
        });
        match done {
            Ok(true) => {
                if self.config().jail.is_some() {
                    let path = self.layout().volume(volume_id);
                    super::jail::dismiss(self.config(), instance_id, &path);
                }
                self.push_block_devices(instance_id)
            }
            Ok(false) => {}
            Err(e) => {
                error!(volume_id = %volume_id, instance_id = %instance_id, "flint serve: volume {volume_id}: finishing the detach: {e}")
            }
        }
    }

    /// `PATCH /vm/disks/{id}` `{"resize":true}`: the VMM re-reads the
    /// file's size and tells the guest. Returns the new size in bytes.
    pub fn resize_disk(&self, instance_id: &str, volume_id: &str) -> Result<u64, SupervisorError> {
        let socket = self.layout().socket(instance_id);
        let path = socket::disk_path(volume_id);
        let (status, body) = vmm_client::send(&socket, "PATCH", &path, &DiskPatch::resize())?;
        if status != 200 {
            return Err(vmm_client::refused("PATCH", &path, status, &body));
        }
        let resized: Resized = vmm_client::parse("PATCH", &path, &body)?;
        Ok(resized.size_bytes)
    }

    /// `PATCH /vm/disks/{id}` `{"limits":…}` with the volume's current type,
    /// size, IOPS and throughput.
    pub fn set_disk_limits(
        &self,
        instance_id: &str,
        v: &VolumeRecord,
    ) -> Result<(), SupervisorError> {
        let socket = self.layout().socket(instance_id);
        let path = socket::disk_path(&v.id);
        let patch = DiskPatch::limits(Some(limits::limits(v)?));
        let (status, reply) = vmm_client::send(&socket, "PATCH", &path, &patch)?;
        if status != 200 {
            return Err(vmm_client::refused("PATCH", &path, status, &reply));
        }
        Ok(())
    }

    /// `GET /vm/disks/{id}/metrics`, None when the disk is not on the VM.
    pub fn disk_metrics(
        &self,
        instance_id: &str,
        volume_id: &str,
    ) -> Result<Option<VolumeMetrics>, SupervisorError> {
        self.get(instance_id, &socket::disk_metrics_path(volume_id))
    }

    /// Pushes the instance's block-device mapping (from its attachments)
    /// to its running metadata service (never takes the instance's slot). Failures are logged: the next
    /// start writes the mapping into vm.json anyway.
    pub fn push_block_devices(&self, instance_id: &str) {
        let volumes = match self
            .store()
            .read(|t| t.list_volumes(&[], &[instance_id.to_string()]))
        {
            Ok(v) => v,
            Err(e) => {
                error!(instance_id = %instance_id, "flint serve: instance {instance_id}: {e}");
                return;
            }
        };
        let update = MetadataUpdate {
            block_device_mapping: Some(vm_config::block_device_mapping(&volumes)),
            ..MetadataUpdate::default()
        };
        // Not push_metadata: callers may hold the instance's slot, which
        // has_process would take again. No socket means no VM to tell.
        let socket = self.layout().socket(instance_id);
        if !socket.exists() {
            return;
        }
        if let Err(e) = vmm_client::update_metadata(&socket, &update) {
            warn!(instance_id = %instance_id, "flint serve: instance {instance_id}: block-device mapping not pushed: {e}");
        }
    }
}
