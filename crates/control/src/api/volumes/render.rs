//! The XML of volumes, attachments, snapshots and volume modifications,
//! as botocore's `Volume`, `VolumeAttachment`, `Snapshot` and
//! `VolumeModification` shapes name their members.

use super::super::XmlWriter;
use super::super::tags::write_tag_set;
use crate::store::modifications::{ModificationRecord, VolumeSpec};
use crate::store::snapshots::SnapshotRecord;
use crate::store::volumes::{AttachmentState, VolumeRecord};
use crate::supervisor::SupervisorConfig;
use crate::supervisor::limits::{effective_iops, effective_throughput};

/// The attachment's members; `status` as stored unless given (a reply
/// reporting "detached" for an attachment that is gone now).
pub fn attachment(x: &mut XmlWriter, v: &VolumeRecord, status: Option<&str>) {
    let status = status.unwrap_or_else(|| {
        v.attachment_state
            .map_or("attached", AttachmentState::as_str)
    });
    x.text("volumeId", &v.id)
        .text("instanceId", v.instance_id.as_deref().unwrap_or(""))
        .text("device", v.device.as_deref().unwrap_or(""))
        .text("status", status)
        .timestamp_ms("attachTime", v.attach_time_ms.unwrap_or(v.created_ms))
        .bool("deleteOnTermination", v.delete_on_termination);
}

pub fn volume(
    x: &mut XmlWriter,
    v: &VolumeRecord,
    cfg: &SupervisorConfig,
    tag_list: &[(String, String)],
) {
    x.text("volumeId", &v.id)
        .int("size", v.size_gib)
        .text("snapshotId", v.snapshot_id.as_deref().unwrap_or(""))
        .text("availabilityZone", &cfg.availability_zone)
        .text("status", v.state.as_str())
        .timestamp_ms("createTime", v.created_ms)
        .list("attachmentSet", v.instance_id.iter(), |x, _| {
            attachment(x, v, None);
        })
        .text("volumeType", &v.volume_type)
        .bool("encrypted", false)
        .bool("multiAttachEnabled", false)
        .text("ownerId", &cfg.owner_id);
    if let Some(iops) = effective_iops(v) {
        x.int("iops", iops);
    }
    if let Some(throughput) = effective_throughput(v) {
        x.int("throughput", throughput);
    }
    write_tag_set(x, tag_list);
}

pub fn snapshot(
    x: &mut XmlWriter,
    s: &SnapshotRecord,
    cfg: &SupervisorConfig,
    tag_list: &[(String, String)],
) {
    x.text("snapshotId", &s.id)
        .text("volumeId", &s.volume_id)
        .text("status", s.state.as_str())
        .opt_text("statusMessage", s.state_message.as_deref())
        .timestamp_ms("startTime", s.start_ms)
        .text("progress", &format!("{}%", s.progress))
        .text("ownerId", &cfg.owner_id)
        .text("description", &s.description)
        .int("volumeSize", s.volume_size_gib)
        .bool("encrypted", false)
        .text("storageTier", "standard");
    if let Some(done) = s.completion_ms {
        x.timestamp_ms("completionTime", done);
    }
    write_tag_set(x, tag_list);
}

fn spec(x: &mut XmlWriter, which: &str, s: &VolumeSpec) {
    x.int(&format!("{which}Size"), s.size_gib)
        .text(&format!("{which}VolumeType"), &s.volume_type);
    let as_volume = VolumeRecord {
        size_gib: s.size_gib,
        volume_type: s.volume_type.clone(),
        iops: s.iops,
        throughput: s.throughput,
        ..VolumeRecord::default()
    };
    if let Some(iops) = effective_iops(&as_volume) {
        x.int(&format!("{which}Iops"), iops);
    }
    if let Some(throughput) = effective_throughput(&as_volume) {
        x.int(&format!("{which}Throughput"), throughput);
    }
    x.bool(&format!("{which}MultiAttachEnabled"), false);
}

pub fn modification(x: &mut XmlWriter, m: &ModificationRecord) {
    x.text("volumeId", &m.volume_id)
        .text("modificationState", m.state.as_str())
        .opt_text("statusMessage", m.status_message.as_deref());
    spec(x, "target", &m.target);
    spec(x, "original", &m.original);
    x.int("progress", m.progress)
        .timestamp_ms("startTime", m.start_ms);
    if let Some(end) = m.end_ms {
        x.timestamp_ms("endTime", end);
    }
}
