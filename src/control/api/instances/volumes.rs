//! DescribeVolumes: root volumes (and, later, volumes of CreateVolume),
//! with their attachment.

use super::super::filters::Filters;
use super::super::paging::{PageRequest, paginate};
use super::super::{ActionSpec, Call, DryRun, Registry};
use super::{render, supervisor};
use crate::control::ec2::error::Ec2Error;
use crate::control::ec2::ids::{self, ResourceKind};

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
    let mut wanted = Vec::new();
    for id in call.req.string_list("VolumeId")? {
        ids::validate(ResourceKind::Volume, id)
            .map_err(|_| Ec2Error::malformed_id(ResourceKind::Volume, id))?;
        wanted.push(id.to_string());
    }
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
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|id| !volumes.iter().any(|v| &v.id == *id))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Ec2Error::volume_not_found(&missing));
        }
        let ids: Vec<String> = volumes.iter().map(|v| v.id.clone()).collect();
        let tags = t.tags_of_many(&ids)?;
        Ok::<_, Ec2Error>((volumes, tags))
    })?;
    let no_tags = Vec::new();
    let matching: Vec<_> = volumes
        .into_iter()
        .filter(|v| {
            let attached = v.instance_id.is_some();
            filters.matches("volume-id", &v.id)
                && filters.matches("status", v.state.as_str())
                && filters.matches("size", &v.size_gib.to_string())
                && filters.matches("volume-type", &v.volume_type)
                && filters.matches("availability-zone", &cfg.availability_zone)
                && (filters.values("attachment.instance-id").is_empty()
                    || filters.matches(
                        "attachment.instance-id",
                        v.instance_id.as_deref().unwrap_or(""),
                    ) && attached)
                && (filters.values("attachment.device").is_empty()
                    || filters.matches("attachment.device", v.device.as_deref().unwrap_or(""))
                        && attached)
                && (filters.values("attachment.status").is_empty()
                    || attached && filters.matches("attachment.status", "attached"))
                && (filters
                    .values("attachment.delete-on-termination")
                    .is_empty()
                    || attached
                        && filters.matches(
                            "attachment.delete-on-termination",
                            if v.delete_on_termination {
                                "true"
                            } else {
                                "false"
                            },
                        ))
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
