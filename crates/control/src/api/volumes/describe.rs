//! DescribeVolumes: root volumes and volumes of CreateVolume, with their
//! attachment (in its own state: attaching, attached, detaching).

use super::super::filters::Filters;
use super::super::paging::{PageRequest, paginate};
use super::super::{ActionSpec, Call, DryRun, Registry};
use super::{all_found, id_list, render, supervisor};
use crate::store::volumes::{AttachmentState, VolumeRecord};
use ec2_wire::clock;
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::ResourceKind;

const VOLUME_FILTERS: &[&str] = &[
    "volume-id",
    "status",
    "size",
    "volume-type",
    "availability-zone",
    "attachment.instance-id",
    "attachment.device",
    "attachment.status",
    "attachment.delete-on-termination",
    "snapshot-id",
    "create-time",
    "attachment.attach-time",
    "encrypted",
    "multi-attach-enabled",
    "tag-key",
    "tag:",
];

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "DescribeVolumes",
        params: &[
            "VolumeId.N",
            "Filter.N.Name",
            "Filter.N.Value.N",
            "MaxResults",
            "NextToken",
        ],
        dry_run: DryRun::Generic,
        handler: describe_volumes,
    });
}

fn describe_volumes(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let cfg = sup.config();
    let wanted = id_list(call, "VolumeId", ResourceKind::Volume)?;
    let filters = Filters::parse(call.req, VOLUME_FILTERS)?;
    let page = PageRequest::parse(call.req, call.action(), 5..=500)?;
    if !wanted.is_empty() && page.max_results.is_some() {
        return Err(Ec2Error::invalid_parameter_combination(
            "The parameter volumeSet cannot be used with the parameter maxResults",
        ));
    }
    let mut store = call.ctx.store()?;
    let (volumes, tags) = store.read(|t| {
        let volumes = t.list_volumes(&wanted, &[])?;
        all_found(&wanted, &volumes)?;
        let ids: Vec<String> = volumes.iter().map(|v| v.id.clone()).collect();
        let tags = t.tags_of_many(&ids)?;
        Ok::<_, Ec2Error>((volumes, tags))
    })?;
    let no_tags = Vec::new();
    let matching: Vec<_> = volumes
        .into_iter()
        .filter(|v| {
            filters.matches("volume-id", &v.id)
                && filters.matches("status", v.state.as_str())
                && filters.matches("size", &v.size_gib.to_string())
                && filters.matches("volume-type", &v.volume_type)
                && filters.matches("availability-zone", &cfg.availability_zone)
                && filters.matches("snapshot-id", v.snapshot_id.as_deref().unwrap_or(""))
                && filters.matches("create-time", &clock::iso8601_millis(v.created_ms))
                && filters.matches("encrypted", "false")
                && filters.matches("multi-attach-enabled", "false")
                && attachment_matches(&filters, v)
                && filters.matches_tags(tags.get(&v.id).unwrap_or(&no_tags))
        })
        .collect();
    let (page_items, next) = paginate(matching, |v| v.id.clone(), &page, call.action());
    call.reply(|x| {
        x.list("volumeSet", &page_items, |x, v| {
            render::volume(x, v, cfg, tags.get(&v.id).unwrap_or(&no_tags));
        });
        x.opt_text("nextToken", next.as_deref());
    })
}

/// The `attachment.*` filters: a volume without an attachment matches
/// none of them.
fn attachment_matches(filters: &Filters, v: &VolumeRecord) -> bool {
    let names = [
        "attachment.attach-time",
        "attachment.instance-id",
        "attachment.device",
        "attachment.status",
        "attachment.delete-on-termination",
    ];
    if names.iter().all(|n| filters.values(n).is_empty()) {
        return true;
    }
    let Some(instance_id) = v.instance_id.as_deref() else {
        return false;
    };
    let status = v
        .attachment_state
        .map_or("attached", AttachmentState::as_str);
    let dot = if v.delete_on_termination {
        "true"
    } else {
        "false"
    };
    let attach_time = clock::iso8601_millis(v.attach_time_ms.unwrap_or(v.created_ms));
    filters.matches("attachment.instance-id", instance_id)
        && filters.matches("attachment.attach-time", &attach_time)
        && filters.matches("attachment.device", v.device.as_deref().unwrap_or(""))
        && filters.matches("attachment.status", status)
        && filters.matches("attachment.delete-on-termination", dot)
}
