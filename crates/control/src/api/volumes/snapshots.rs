//! CreateSnapshot, DescribeSnapshots, DeleteSnapshot.
//!
//! A snapshot is a copy of the volume's file under DATA_DIR/snapshots,
//! made on a thread after the request (pending → completed):
//! `ioctl(FICLONE)` where the filesystem can reflink, which is one atomic
//! point-in-time copy, i.e. crash-consistent even while the guest writes;
//! elsewhere a sparse copy (data extents only), which is crash-consistent
//! only for a volume no running guest writes to while it is copied.

use super::super::filters::Filters;
use super::super::paging::{PageRequest, paginate};
use super::super::tags::{TAG_SPEC_PARAMS, tag_specifications, tags_for};
use super::super::{ActionSpec, Call, DryRun, Registry};
use super::{id_list, live_volume, one_id, render, supervisor};
use crate::api::admission_error;
use crate::store::now_ms;
use crate::store::snapshots::{SnapshotRecord, SnapshotState};
use crate::supervisor::{admission, volume};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};
use tracing::warn;

const MAX_DESCRIPTION: usize = 255;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "CreateSnapshot",
        params: &[
            "Description",
            "OutpostArn",
            "VolumeId",
            TAG_SPEC_PARAMS[0],
            TAG_SPEC_PARAMS[1],
            TAG_SPEC_PARAMS[2],
            "Location",
        ],
        dry_run: DryRun::Handler,
        handler: create_snapshot,
    });
    r.add(ActionSpec {
        name: "DescribeSnapshots",
        params: &[
            "MaxResults",
            "NextToken",
            "Owner.N",
            "RestorableBy.N",
            "SnapshotId.N",
            "Filter.N.Name",
            "Filter.N.Value.N",
        ],
        dry_run: DryRun::Generic,
        handler: describe_snapshots,
    });
    r.add(ActionSpec {
        name: "DeleteSnapshot",
        params: &["SnapshotId"],
        dry_run: DryRun::Handler,
        handler: delete_snapshot,
    });
}

fn create_snapshot(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let cfg = sup.config().clone();
    let volume_id = one_id(call, "VolumeId", ResourceKind::Volume)?;
    let description = call.req.string("Description").unwrap_or("").to_string();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(Ec2Error::invalid_parameter_value(
            "Description",
            &description,
            "Descriptions are at most 255 characters.",
        ));
    }
    if let Some(arn) = call.req.string("OutpostArn") {
        return Err(Ec2Error::invalid_parameter_value(
            "OutpostArn",
            arn,
            "This host is not an Outpost.",
        ));
    }
    if let Some(location) = call.req.string("Location")
        && location != "regional"
    {
        return Err(Ec2Error::invalid_parameter_value(
            "Location",
            location,
            "Snapshots are stored regionally on this host.",
        ));
    }
    let tags = tags_for(&tag_specifications(call.req, &["snapshot"])?, "snapshot");
    let mut store = call.ctx.store()?;
    let record = store.write(|t| {
        let v = live_volume(
            t,
            &volume_id,
            "snapshots are taken of available or in-use volumes.",
        )?;
        call.check_dry_run()?;
        // A snapshot is a copy of the volume's data.
        let need = volume::allocated_bytes(std::path::Path::new(&v.path));
        admission::check_disk(&cfg.layout.snapshots_dir(), need)
            .map_err(|e| admission_error(e, Ec2Error::insufficient_capacity))?;
        let id = ids::new_id(ResourceKind::Snapshot);
        let record = SnapshotRecord {
            id: id.clone(),
            volume_id: volume_id.clone(),
            volume_size_gib: v.size_gib,
            description: description.clone(),
            path: cfg.layout.snapshot(&id).to_string_lossy().into_owned(),
            state: SnapshotState::Pending,
            progress: 0,
            state_message: None,
            start_ms: now_ms(),
            completion_ms: None,
        };
        t.insert_snapshot(&record)?;
        if !tags.is_empty() {
            t.set_tags(&id, &tags)?;
        }
        Ok::<_, Ec2Error>(record)
    })?;
    sup.take_snapshot(&record.id);
    call.reply(|x| render::snapshot(x, &record, &cfg, &tags))
}

const SNAPSHOT_FILTERS: &[&str] = &[
    "snapshot-id",
    "volume-id",
    "status",
    "owner-id",
    "owner-alias",
    "description",
    "volume-size",
    "progress",
    "encrypted",
    "storage-tier",
    "tag-key",
    "tag:",
];

fn describe_snapshots(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let cfg = sup.config();
    let wanted = id_list(call, "SnapshotId", ResourceKind::Snapshot)?;
    let filters = Filters::parse(call.req, SNAPSHOT_FILTERS)?;
    let page = PageRequest::parse(call.req, call.action(), 5..=1000)?;
    if !wanted.is_empty() && page.max_results.is_some() {
        return Err(Ec2Error::invalid_parameter_combination(
            "The parameter snapshotSet cannot be used with the parameter maxResults",
        ));
    }
    // Every snapshot here is the host account's: Owner=self or the owner
    // id selects them all, any other owner (amazon, another account) none.
    let owners = call.req.string_list("Owner")?;
    let ours = owners.is_empty()
        || owners
            .iter()
            .any(|o| *o == "self" || *o == cfg.owner_id.as_str());
    call.req.string_list("RestorableBy")?;
    let mut store = call.ctx.store()?;
    let (snapshots, tags) = store.read(|t| {
        let snapshots = t.list_snapshots(&wanted)?;
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|id| !snapshots.iter().any(|s| &s.id == *id))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Ec2Error::not_found(ResourceKind::Snapshot, &missing));
        }
        let ids: Vec<String> = snapshots.iter().map(|s| s.id.clone()).collect();
        let tags = t.tags_of_many(&ids)?;
        Ok::<_, Ec2Error>((snapshots, tags))
    })?;
    let no_tags = Vec::new();
    let matching: Vec<SnapshotRecord> = snapshots
        .into_iter()
        .filter(|_| ours)
        .filter(|s| {
            filters.matches("snapshot-id", &s.id)
                && filters.matches("volume-id", &s.volume_id)
                && filters.matches("status", s.state.as_str())
                && filters.matches("owner-id", &cfg.owner_id)
                && filters.matches("owner-alias", "")
                && filters.matches("description", &s.description)
                && filters.matches("volume-size", &s.volume_size_gib.to_string())
                && filters.matches("progress", &format!("{}%", s.progress))
                && filters.matches("encrypted", "false")
                && filters.matches("storage-tier", "standard")
                && filters.matches_tags(tags.get(&s.id).unwrap_or(&no_tags))
        })
        .collect();
    let (items, next) = paginate(matching, |s| s.id.clone(), &page, call.action());
    call.reply(|x| {
        x.list("snapshotSet", &items, |x, s| {
            render::snapshot(x, s, cfg, tags.get(&s.id).unwrap_or(&no_tags));
        });
        x.opt_text("nextToken", next.as_deref());
    })
}

fn delete_snapshot(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let snapshot_id = one_id(call, "SnapshotId", ResourceKind::Snapshot)?;
    let mut store = call.ctx.store()?;
    let path = store.write(|t| {
        let s = t
            .get_snapshot(&snapshot_id)?
            .ok_or_else(|| Ec2Error::not_found(ResourceKind::Snapshot, &[&snapshot_id]))?;
        if s.state == SnapshotState::Pending {
            return Err(Ec2Error::incorrect_state(format!(
                "Snapshot '{snapshot_id}' is still pending."
            )));
        }
        if t.volumes_creating_from(&snapshot_id)? > 0 {
            return Err(Ec2Error::new(
                "InvalidSnapshot.InUse",
                400,
                format!("The snapshot {snapshot_id} is in use by a volume being created from it."),
            ));
        }
        call.check_dry_run()?;
        t.delete_snapshot(&snapshot_id)?;
        Ok::<_, Ec2Error>(s.path)
    })?;
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(snapshot_id = %snapshot_id, "flint serve: snapshot {snapshot_id}: removing {path}: {e}");
    }
    call.reply(|x| {
        x.bool("return", true);
    })
}
