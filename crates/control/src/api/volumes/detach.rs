//! DetachVolume and DeleteVolume.
//!
//! Detaching from a VM that runs asks its VMM to eject the disk (`DELETE
//! /vm/disks/{id}`): the attachment is `detaching` until the guest lets
//! go, which the supervisor watches for (`GET /vm/disks/{id}` → 404), and
//! only then `detached` (the volume `available`). `Force` removes the disk
//! at once, also from a guest that never lets go. Without a VM process
//! the attachment simply ends. The root volume of an instance that is not
//! stopped cannot be detached, as on EC2.
//!
//! DeleteVolume: an attached volume is `VolumeInUse`; otherwise the
//! volume goes `deleting`, its file is removed on a thread, and it is
//! `deleted` (describable for a few minutes, then gone).

use std::sync::Arc;
use tracing::warn;

use super::super::{ActionSpec, Call, DryRun, Registry};
use super::{one_id, render, supervisor};
use crate::store::instances::InstanceState;
use crate::store::volumes::{AttachmentState, VolumeRecord, VolumeState};
use crate::supervisor::Supervisor;
use crate::supervisor::disks::Eject;
use crate::supervisor::vm_config::{ROOT_DEVICE, device_slot};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "DetachVolume",
        params: &["Device", "Force", "InstanceId", "VolumeId"],
        dry_run: DryRun::Handler,
        handler: detach_volume,
    });
    r.add(ActionSpec {
        name: "DeleteVolume",
        params: &["VolumeId"],
        dry_run: DryRun::Handler,
        handler: delete_volume,
    });
}

/// What a detach does once the checks pass.
enum Plan {
    /// No VM process: the attachment ends now.
    Now,
    /// Ask the VMM (again, for a repeated request).
    Eject,
}

fn not_attached_to(volume_id: &str, instance_id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidAttachment.NotFound",
        400,
        format!("The volume '{volume_id}' is not attached to instance '{instance_id:.64}'"),
    )
}

fn detach_volume(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let volume_id = one_id(call, "VolumeId", ResourceKind::Volume)?;
    let force = call.req.bool("Force")?.unwrap_or(false);
    let wanted_instance = call.req.string("InstanceId").filter(|s| !s.is_empty());
    if let Some(i) = wanted_instance {
        ids::validate(ResourceKind::Instance, i).map_err(|_| Ec2Error::instance_id_malformed(i))?;
    }
    let wanted_device = call.req.string("Device").filter(|s| !s.is_empty());
    let mut store = call.ctx.store()?;
    let current = store
        .read(|t| t.get_volume(&volume_id))?
        .filter(|v| v.state != VolumeState::Deleted)
        .ok_or_else(|| Ec2Error::volume_not_found(&[&volume_id]))?;
    let Some(instance_id) = current.instance_id.clone() else {
        if let Some(i) = wanted_instance {
            return Err(not_attached_to(&volume_id, i));
        }
        return Err(Ec2Error::incorrect_state(format!(
            "Volume '{volume_id}' is in the '{}' state.",
            current.state
        )));
    };
    sup.with_slot(&instance_id, |has_process| {
        let (record, plan) = store.write(|t| {
            let v = t
                .get_volume(&volume_id)?
                .ok_or_else(|| Ec2Error::volume_not_found(&[&volume_id]))?;
            if !v.is_on(&instance_id) {
                return Err(Ec2Error::incorrect_state(format!(
                    "Volume '{volume_id}' is in the '{}' state.",
                    v.state
                )));
            }
            if let Some(i) = wanted_instance
                && i != instance_id
            {
                return Err(not_attached_to(&volume_id, i));
            }
            let device = v.device.clone().unwrap_or_default();
            if let Some(d) = wanted_device
                && device_slot(d) != device_slot(&device)
            {
                return Err(not_attached_to(&volume_id, &instance_id));
            }
            let instance = t.instance(&instance_id)?;
            if device == ROOT_DEVICE && instance.state != InstanceState::Stopped {
                return Err(Ec2Error::new(
                    "OperationNotPermitted",
                    400,
                    format!(
                        "Unable to detach root volume '{volume_id}' from instance '{instance_id}'"
                    ),
                ));
            }
            call.check_dry_run()?;
            let plan = if has_process {
                if v.attachment_state != Some(AttachmentState::Detaching) {
                    t.set_attachment_state(&volume_id, AttachmentState::Detaching)?;
                }
                Plan::Eject
            } else {
                t.detach_volume(&volume_id)?;
                Plan::Now
            };
            Ok::<_, Ec2Error>((v, plan))
        })?;
        let status = match plan {
            Plan::Now => "detached",
            Plan::Eject => eject(&sup, &instance_id, &record, force),
        };
        call.reply(|x| render::attachment(x, &record, Some(status)))
    })
}

/// Asks the VMM to let go of the disk; a disk that is gone at once ends
/// the attachment now, one the guest must eject is watched.
fn eject(sup: &Arc<Supervisor>, instance_id: &str, v: &VolumeRecord, force: bool) -> &'static str {
    match sup.unplug(instance_id, &v.id, force) {
        Ok(Eject::Gone) => {
            sup.finish_detach(instance_id, &v.id);
            "detached"
        }
        Ok(Eject::Requested) => {
            sup.watch_eject(instance_id, &v.id);
            "detaching"
        }
        Err(e) => {
            // Still detaching: the watcher finds out when the VMM answers
            // (or the VM ends, which finishes the detach too).
            warn!(volume_id = %v.id, instance_id = %instance_id, "flint serve: volume {}: eject: {e}", v.id);
            sup.watch_eject(instance_id, &v.id);
            "detaching"
        }
    }
}

fn delete_volume(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let volume_id = one_id(call, "VolumeId", ResourceKind::Volume)?;
    let mut store = call.ctx.store()?;
    store.write(|t| {
        let v = t
            .get_volume(&volume_id)?
            .filter(|v| !matches!(v.state, VolumeState::Deleted | VolumeState::Deleting))
            .ok_or_else(|| Ec2Error::volume_not_found(&[&volume_id]))?;
        match v.state {
            VolumeState::InUse => {
                return Err(Ec2Error::new(
                    "VolumeInUse",
                    400,
                    format!(
                        "Volume {volume_id} is currently attached to {}",
                        v.instance_id.as_deref().unwrap_or("an instance")
                    ),
                ));
            }
            VolumeState::Creating => {
                return Err(Ec2Error::incorrect_state(format!(
                    "Volume '{volume_id}' is still being created."
                )));
            }
            _ => {}
        }
        call.check_dry_run()?;
        t.transition_volume(
            &volume_id,
            &[VolumeState::Available, VolumeState::Error],
            VolumeState::Deleting,
        )?;
        Ok::<_, Ec2Error>(())
    })?;
    sup.delete_volume_file(&volume_id);
    call.reply(|x| {
        x.bool("return", true);
    })
}
