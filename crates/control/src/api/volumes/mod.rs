//! The EBS actions: CreateVolume, DescribeVolumes, AttachVolume,
//! DetachVolume, DeleteVolume, ModifyVolume, DescribeVolumesModifications,
//! CreateSnapshot, DescribeSnapshots, DeleteSnapshot; and the daemon's
//! `GET /metrics` (metrics.rs).
//!
//! Volume states are EC2's (creating → available ⇄ in-use → deleting →
//! deleted), and so are attachment states (attaching → attached →
//! detaching → detached): file work (creating a volume, copying a
//! snapshot, deleting) runs on a thread after the request's transaction
//! commits (supervisor/volume_jobs.rs), hot-plug goes through the VM's
//! control socket (supervisor/disks.rs), so boto3's volume_available,
//! volume_in_use, volume_deleted and snapshot_completed waiters see the
//! states move.

pub mod attach;
pub mod create;
mod describe;
mod detach;
pub mod metrics;
mod modify;
pub mod render;
pub mod rules;
mod snapshots;

use std::sync::Arc;

use super::{Call, Registry};
use crate::store::Tx;
use crate::store::volumes::{VolumeRecord, VolumeState};
use crate::supervisor::Supervisor;
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};

pub fn register(r: &mut Registry) {
    create::register(r);
    describe::register(r);
    attach::register(r);
    detach::register(r);
    modify::register(r);
    snapshots::register(r);
}

/// `Err(InvalidVolume.NotFound)` naming the ids in `wanted` that are not
/// among `volumes`.
fn all_found(wanted: &[String], volumes: &[VolumeRecord]) -> Result<(), Ec2Error> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|id| !volumes.iter().any(|v| &v.id == *id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Ec2Error::volume_not_found(&missing));
    }
    Ok(())
}

/// The volume `volume_id` (not deleted) if it is available or in use;
/// otherwise IncorrectState, "Volume '…' is {state}; {only}".
fn live_volume(t: &Tx<'_>, volume_id: &str, only: &str) -> Result<VolumeRecord, Ec2Error> {
    let v = t
        .get_volume(volume_id)?
        .filter(|v| v.state != VolumeState::Deleted)
        .ok_or_else(|| Ec2Error::volume_not_found(&[volume_id]))?;
    if !matches!(v.state, VolumeState::Available | VolumeState::InUse) {
        return Err(Ec2Error::incorrect_state(format!(
            "Volume '{volume_id}' is {}; {only}",
            v.state
        )));
    }
    Ok(v)
}

fn supervisor(call: &Call<'_>) -> Result<Arc<Supervisor>, Ec2Error> {
    call.ctx
        .supervisor()
        .ok_or_else(|| Ec2Error::internal_error("the volume supervisor is not running"))
}

/// One required, well-formed id of `kind` named `name`.
fn one_id(call: &Call<'_>, name: &str, kind: ResourceKind) -> Result<String, Ec2Error> {
    let id = call.req.required_string(name)?;
    ids::validate(kind, id).map_err(|_| Ec2Error::malformed_id(kind, id))?;
    Ok(id.to_string())
}

/// `Name.N`, each a well-formed id of `kind`, without repeats.
fn id_list(call: &Call<'_>, name: &str, kind: ResourceKind) -> Result<Vec<String>, Ec2Error> {
    let mut out: Vec<String> = Vec::new();
    for id in call.req.string_list(name)? {
        ids::validate(kind, id).map_err(|_| Ec2Error::malformed_id(kind, id))?;
        if !out.iter().any(|seen| seen == id) {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

/// An optional ClientToken: at most 64 printable ASCII characters.
fn client_token<'a>(call: &Call<'a>) -> Result<Option<&'a str>, Ec2Error> {
    let token = call.req.string("ClientToken").filter(|t| !t.is_empty());
    if let Some(t) = token
        && (t.len() > 64 || !t.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(Ec2Error::invalid_parameter_value(
            "ClientToken",
            t,
            "At most 64 printable ASCII characters.",
        ));
    }
    Ok(token)
}
