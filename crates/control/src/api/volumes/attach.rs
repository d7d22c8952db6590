//! AttachVolume. To a stopped instance: recorded (attached) and in the VM
//! config at its next start. To a running one: recorded `attaching`, then
//! hot-plugged through the VM's control socket (`PUT /vm/disks`) and
//! `attached` once the VMM has it; a refusal undoes the attachment and is
//! the request's error. All of it with the instance's supervisor slot
//! held, so that a launch never reads the attachments half-way.
//!
//! Device names, as EC2 takes them on Linux instances: `/dev/sd[b-z]`,
//! `/dev/sd[b-z][1-15]`, `/dev/xvd[b-z]`, `/dev/xvd[b-c][a-z]`,
//! `/dev/hd[b-z]` (and the same without `/dev/`); `/dev/xvda` or
//! `/dev/sda1` only as the root of a stopped instance that has none.
//! `sdf` and `xvdf` are one attachment point.

use super::super::{ActionSpec, Call, DryRun, Registry};
use super::{one_id, render, supervisor};
use crate::store::StoreError;
use crate::store::instances::InstanceState;
use crate::store::volumes::{AttachmentState, VolumeRecord, VolumeState};
use crate::supervisor::Supervisor;
use crate::supervisor::vm_config::{ROOT_DEVICE, device_slot};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::ResourceKind;
use flint_contract::config::MAX_DISKS;
use tracing::error;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "AttachVolume",
        params: &["Device", "InstanceId", "VolumeId", "EbsCardIndex"],
        dry_run: DryRun::Handler,
        handler: attach_volume,
    });
}

/// Whether `device` names the root device (`/dev/xvda`, `/dev/sda1`).
pub fn is_root_device(device: &str) -> bool {
    matches!(device_slot(device), "a" | "a1")
}

/// Whether EC2 would take `device` as an EBS device name (module docs).
pub fn valid_device(device: &str) -> bool {
    let name = device.strip_prefix("/dev/").unwrap_or(device);
    let lower = |c: u8| c.is_ascii_lowercase();
    let slot = device_slot(device).as_bytes();
    if is_root_device(device) {
        return name == "xvda" || name == "sda1";
    }
    if name.starts_with("xvd") {
        return match slot {
            [a] => lower(*a),
            [a, b] => matches!(a, b'b' | b'c') && lower(*b),
            _ => false,
        };
    }
    if name.starts_with("sd") || name.starts_with("hd") {
        let partition = |digits: &[u8]| {
            std::str::from_utf8(digits)
                .ok()
                .filter(|d| !d.starts_with('0'))
                .and_then(|d| d.parse::<u8>().ok())
                .is_some_and(|n| (1..=15).contains(&n))
        };
        return match slot {
            [a] => lower(*a),
            [a, rest @ ..] if name.starts_with("sd") => lower(*a) && partition(rest),
            _ => false,
        };
    }
    false
}

fn not_running_or_stopped(instance_id: &str, state: InstanceState) -> Ec2Error {
    Ec2Error::new(
        "IncorrectInstanceState",
        400,
        format!(
            "Instance '{instance_id}' is not 'running' or 'stopped' (it is {}).",
            state.name()
        ),
    )
}

fn bad_device(device: &str) -> Ec2Error {
    Ec2Error::invalid_parameter_value(
        "device",
        device,
        &format!("{device:.64} is not a valid EBS device name."),
    )
}

fn device_in_use(device: &str) -> Ec2Error {
    Ec2Error::invalid_parameter_value(
        "device",
        device,
        &format!(
            "Invalid value '{device:.64}' for unixDevice. Attachment point {device:.64} is already in use"
        ),
    )
}

/// The checks of an attachment against the instance's others; returns the
/// device name to record (root aliases become the root device).
fn check_device(device: &str, others: &[VolumeRecord]) -> Result<String, Ec2Error> {
    let slot = device_slot(device);
    let root = is_root_device(device);
    let taken = others.iter().any(|v| {
        let d = v.device.as_deref().unwrap_or("");
        device_slot(d) == slot || (root && is_root_device(d))
    });
    if taken {
        return Err(device_in_use(device));
    }
    if others.len() >= MAX_DISKS {
        return Err(Ec2Error::new(
            "AttachmentLimitExceeded",
            400,
            format!("The instance has the maximum of {MAX_DISKS} volumes attached."),
        ));
    }
    Ok(if root {
        ROOT_DEVICE.to_string()
    } else {
        device.to_string()
    })
}

fn attach_volume(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let volume_id = one_id(call, "VolumeId", ResourceKind::Volume)?;
    let instance_id = one_id(call, "InstanceId", ResourceKind::Instance)?;
    let device = call.req.required_string("Device")?.to_string();
    if !valid_device(&device) {
        return Err(bad_device(&device));
    }
    if let Some(index) = call.req.int("EbsCardIndex", 0..=i64::from(i32::MAX))?
        && index != 0
    {
        return Err(Ec2Error::invalid_parameter_value(
            "EbsCardIndex",
            &index.to_string(),
            "This host has one EBS card (index 0).",
        ));
    }
    let mut store = call.ctx.store()?;
    // Checked before taking the instance's slot too: a pending instance's
    // launch holds it while it clones the root volume.
    if let Some(i) = store.read(|t| t.get_instance(&instance_id))?
        && !matches!(i.state, InstanceState::Running | InstanceState::Stopped)
    {
        return Err(not_running_or_stopped(&instance_id, i.state));
    }
    sup.with_slot(&instance_id, |has_process| {
        let record = store.write(|t| {
            let instance = t
                .get_instance(&instance_id)?
                .ok_or_else(|| Ec2Error::instance_not_found(&[&instance_id]))?;
            let volume = t
                .get_volume(&volume_id)?
                .filter(|v| v.state != VolumeState::Deleted)
                .ok_or_else(|| Ec2Error::volume_not_found(&[&volume_id]))?;
            match volume.state {
                VolumeState::Available => {}
                VolumeState::InUse => {
                    return Err(Ec2Error::new(
                        "VolumeInUse",
                        400,
                        format!("{volume_id} is already attached to an instance"),
                    ));
                }
                other => {
                    return Err(Ec2Error::incorrect_state(format!(
                        "Volume '{volume_id}' is not 'available' (it is {other})."
                    )));
                }
            }
            let hotplug = match instance.state {
                InstanceState::Running => has_process,
                InstanceState::Stopped => false,
                other => return Err(not_running_or_stopped(&instance_id, other)),
            };
            let others = t.list_volumes(&[], std::slice::from_ref(&instance_id))?;
            let device = check_device(&device, &others)?;
            if device == ROOT_DEVICE && instance.state != InstanceState::Stopped {
                return Err(device_in_use(&device));
            }
            call.check_dry_run()?;
            let state = if hotplug {
                AttachmentState::Attaching
            } else {
                AttachmentState::Attached
            };
            t.attach_volume(&volume_id, &instance_id, &device, false, state)
                .map_err(|e| match e {
                    StoreError::Duplicate { .. } => device_in_use(&device),
                    e => e.into(),
                })?;
            Ok::<_, Ec2Error>((t.get_volume(&volume_id)?, hotplug))
        })?;
        let (Some(record), hotplug) = record else {
            return Err(Ec2Error::volume_not_found(&[&volume_id]));
        };
        if hotplug {
            hot_plug(call, &sup, &record)?;
        }
        call.reply(|x| render::attachment(x, &record, Some("attaching")))
    })
}

/// `PUT /vm/disks`; on success the attachment is `attached` and the
/// guest's metadata follows, on failure it is undone.
fn hot_plug(call: &Call<'_>, sup: &Supervisor, v: &VolumeRecord) -> Result<(), Ec2Error> {
    let instance_id = v.instance_id.clone().unwrap_or_default();
    let error = match sup.plug(&instance_id, v) {
        Ok(Ok(())) => {
            let mut store = call.ctx.store()?;
            store.write(|t| t.set_attachment_state(&v.id, AttachmentState::Attached))?;
            sup.push_block_devices(&instance_id);
            return Ok(());
        }
        Ok(Err(refused)) if refused.status == 507 => Ec2Error::new(
            "AttachmentLimitExceeded",
            400,
            format!("The instance {instance_id} has no free hot-plug slot."),
        ),
        Ok(Err(refused)) => Ec2Error::internal_error(format!(
            "the VM did not take the volume (status {}): {}",
            refused.status, refused.message
        )),
        Err(e) => Ec2Error::internal_error(format!("the VM did not take the volume: {e}")),
    };
    let mut store = call.ctx.store()?;
    if let Err(e) = store.write(|t| t.detach_volume(&v.id)) {
        error!(volume_id = %v.id, "flint serve: volume {}: undoing a failed attach: {e}", v.id);
    }
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_as_ec2_takes_them() {
        for good in [
            "/dev/sdf",
            "sdf",
            "/dev/xvdf",
            "xvdh",
            "/dev/xvdba",
            "/dev/xvdcz",
            "/dev/sdf1",
            "/dev/sdp15",
            "/dev/hdb",
            "/dev/xvda",
            "/dev/sda1",
        ] {
            assert!(valid_device(good), "{good}");
        }
        for bad in [
            "/dev/foo",
            "",
            "/dev/sd",
            "/dev/xvdda",
            "/dev/sdf0",
            "/dev/sdf16",
            "/dev/sdf01",
            "/dev/SDF",
            "/dev/xvdf1",
            "/dev/sda",
            "/dev/nvme1n1",
            "/dev/sdf/../x",
        ] {
            assert!(!valid_device(bad), "{bad}");
        }
        assert_eq!(device_slot("/dev/sdf"), device_slot("xvdf"));
        assert!(is_root_device("/dev/sda1") && is_root_device("/dev/xvda"));
    }
}
