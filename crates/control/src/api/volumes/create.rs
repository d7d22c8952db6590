//! CreateVolume: an empty sparse file of the size asked, or a copy of a
//! snapshot (reflink where the filesystem can) grown to that size. The
//! record is inserted `creating` in the request's transaction (with its
//! tags and ClientToken); the file is made after the commit, on a thread,
//! and the volume becomes `available`.

use super::super::meta::short_region;
use super::super::tags::{TAG_SPEC_PARAMS, tag_specifications, tags_for};
use super::super::{ActionSpec, Call, DryRun, Registry};
use super::rules::{self, non_negative, small};
use super::{client_token, render, supervisor};
use crate::api::admission_error;
use crate::store::modifications::VolumeSpec;
use crate::store::snapshots::{SnapshotRecord, SnapshotState};
use crate::store::volumes::{VolumeRecord, VolumeState};
use crate::store::{Tx, now_ms};
use crate::supervisor::{admission, volume};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};

/// EC2's default type for CreateVolume.
const DEFAULT_TYPE: &str = "gp2";

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "CreateVolume",
        params: &[
            "AvailabilityZone",
            "AvailabilityZoneId",
            "Encrypted",
            "Iops",
            "KmsKeyId",
            "OutpostArn",
            "Size",
            "SnapshotId",
            "VolumeType",
            TAG_SPEC_PARAMS[0],
            TAG_SPEC_PARAMS[1],
            TAG_SPEC_PARAMS[2],
            "MultiAttachEnabled",
            "Throughput",
            "ClientToken",
            "VolumeInitializationRate",
        ],
        dry_run: DryRun::Handler,
        handler: create_volume,
    });
}

/// AvailabilityZone (or AvailabilityZoneId) is required, as on EC2, and
/// must be this host's one zone.
fn check_zone(call: &Call<'_>) -> Result<(), Ec2Error> {
    let config = &call.ctx.config;
    let zone = config.availability_zone();
    match (
        call.req.string("AvailabilityZone"),
        call.req.string("AvailabilityZoneId"),
    ) {
        (None, None) => Err(Ec2Error::missing_parameter("AvailabilityZone")),
        (Some(_), Some(_)) => Err(Ec2Error::invalid_parameter_combination(
            "The parameter AvailabilityZone cannot be used with the parameter AvailabilityZoneId",
        )),
        (Some(az), None) if az != zone => Err(Ec2Error::invalid_parameter_value(
            "AvailabilityZone",
            az,
            &format!("Invalid availability zone: [{az}]; this host has only {zone}."),
        )),
        (None, Some(id)) if id != format!("{}-az1", short_region(&config.region)) => {
            Err(Ec2Error::invalid_parameter_value(
                "AvailabilityZoneId",
                id,
                &format!("Invalid availability zone id: [{id}]."),
            ))
        }
        _ => Ok(()),
    }
}

/// What this host cannot do: encryption, multi-attach, Outposts.
fn check_unsupported(call: &Call<'_>) -> Result<(), Ec2Error> {
    let req = call.req;
    if req.bool("Encrypted")?.unwrap_or(false) || req.string("KmsKeyId").is_some() {
        return Err(Ec2Error::unsupported_operation(
            "Encrypted volumes are not supported on this host.",
        ));
    }
    if req.bool("MultiAttachEnabled")?.unwrap_or(false) {
        return Err(Ec2Error::unsupported_operation(
            "Multi-Attach is not supported on this host.",
        ));
    }
    if let Some(arn) = req.string("OutpostArn") {
        return Err(Ec2Error::invalid_parameter_value(
            "OutpostArn",
            arn,
            "This host is not an Outpost.",
        ));
    }
    Ok(())
}

fn create_volume(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let cfg = sup.config().clone();
    let req = call.req;
    check_zone(call)?;
    check_unsupported(call)?;
    let volume_type = req.string("VolumeType").unwrap_or(DEFAULT_TYPE).to_string();
    rules::check_type(&volume_type)?;
    let size = non_negative("Size", req.int("Size", i64::MIN..=i64::MAX)?)?;
    let iops = small("Iops", req.int("Iops", i64::MIN..=i64::MAX)?)?;
    let throughput = small("Throughput", req.int("Throughput", i64::MIN..=i64::MAX)?)?;
    let snapshot_id = match req.string("SnapshotId").filter(|s| !s.is_empty()) {
        Some(id) => {
            ids::validate(ResourceKind::Snapshot, id)
                .map_err(|_| Ec2Error::malformed_id(ResourceKind::Snapshot, id))?;
            Some(id.to_string())
        }
        None => None,
    };
    if size.is_none() && snapshot_id.is_none() {
        return Err(Ec2Error::missing_parameter("Size or SnapshotId"));
    }
    if let Some(rate) = req.int("VolumeInitializationRate", 100..=300)?
        && snapshot_id.is_none()
    {
        return Err(Ec2Error::invalid_parameter_combination(format!(
            "VolumeInitializationRate ({rate}) can be given only with SnapshotId."
        )));
    }
    let tags = tags_for(&tag_specifications(req, &["volume"])?, "volume");
    let token = client_token(call)?;
    let hash = call.request_hash();

    let mut store = call.ctx.store()?;
    let (record, fresh) = store.write(|t| {
        if let Some(token) = token
            && let Some(done) = t.volume_by_client_token(token, &hash)?
        {
            return Ok::<_, Ec2Error>((done, false));
        }
        let snapshot = snapshot_id
            .as_deref()
            .map(|id| completed_snapshot(t, id))
            .transpose()?;
        let size_gib = match (size, &snapshot) {
            (Some(size), Some(s)) if size < s.volume_size_gib => {
                return Err(Ec2Error::invalid_parameter_value(
                    "Size",
                    &size.to_string(),
                    &format!(
                        "Volume of size {size}GB is smaller than snapshot '{}', expect size >= {}GB",
                        s.id, s.volume_size_gib
                    ),
                ));
            }
            (Some(size), _) => size,
            (None, Some(s)) => s.volume_size_gib,
            (None, None) => 0,
        };
        let spec = rules::validate(&VolumeSpec {
            size_gib,
            volume_type: volume_type.clone(),
            iops,
            throughput,
        })?;
        call.check_dry_run()?;
        // A new volume is sparse: it takes the snapshot's data, or nothing.
        let need = snapshot
            .as_ref()
            .map_or(0, |s| volume::allocated_bytes(std::path::Path::new(&s.path)));
        admission::check_disk(&cfg.layout.volumes_dir(), need)
            .map_err(|e| admission_error(e, Ec2Error::insufficient_volume_capacity))?;
        let id = ids::new_id(ResourceKind::Volume);
        let record = VolumeRecord {
            id: id.clone(),
            size_gib: spec.size_gib,
            volume_type: spec.volume_type,
            iops: spec.iops,
            throughput: spec.throughput,
            snapshot_id: snapshot_id.clone(),
            path: cfg.layout.volume(&id).to_string_lossy().into_owned(),
            state: VolumeState::Creating,
            created_ms: now_ms(),
            client_token: token.map(str::to_string),
            request_hash: token.map(|_| hash.clone()),
            ..VolumeRecord::default()
        };
        t.insert_volume(&record)?;
        if !tags.is_empty() {
            t.set_tags(&id, &tags)?;
        }
        Ok((record, true))
    })?;
    if fresh {
        sup.create_volume_file(&record.id);
    }
    let tags = store.read(|t| t.tags_of(&record.id))?;
    call.reply(|x| render::volume(x, &record, &cfg, &tags))
}

/// The snapshot a new volume is made from: it must exist and be completed.
pub fn completed_snapshot(t: &Tx<'_>, id: &str) -> Result<SnapshotRecord, Ec2Error> {
    let s = t
        .get_snapshot(id)?
        .ok_or_else(|| Ec2Error::not_found(ResourceKind::Snapshot, &[id]))?;
    if s.state != SnapshotState::Completed {
        return Err(Ec2Error::incorrect_state(format!(
            "Snapshot '{id}' is {}; a volume can be created from a completed snapshot only.",
            s.state.as_str()
        )));
    }
    Ok(s)
}
