//! DescribeInstances (reservations, filters, pages) and
//! DescribeInstanceStatus.

use super::super::filters::Filters;
use super::super::paging::{self, PageRequest};
use super::super::{ActionSpec, Call, DryRun, Registry};
use super::render::{self, Extras};
use super::{existing, instance_ids, supervisor};
use crate::store::Tx;
use crate::store::instances::{InstanceFilter, InstanceRecord, InstanceState};
use crate::supervisor::SupervisorConfig;
use ec2_wire::error::Ec2Error;

const INSTANCE_FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "image-id",
    "instance-type",
    "private-ip-address",
    "reservation-id",
    "key-name",
    "availability-zone",
    "tag-key",
    "tag:",
];

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "DescribeInstances",
        params: &[
            "InstanceId.N",
            "Filter.N.Name",
            "Filter.N.Value.N",
            "MaxResults",
            "NextToken",
        ],
        dry_run: DryRun::Generic,
        handler: describe_instances,
    });
    r.add(ActionSpec {
        name: "DescribeInstanceStatus",
        params: &[
            "InstanceId.N",
            "Filter.N.Name",
            "Filter.N.Value.N",
            "MaxResults",
            "NextToken",
            "IncludeAllInstances",
        ],
        dry_run: DryRun::Generic,
        handler: describe_instance_status,
    });
}

/// Tags and volumes of `ids`, for rendering them.
pub fn extras<'a>(
    t: &Tx<'_>,
    cfg: &'a SupervisorConfig,
    ids: &[String],
) -> Result<Extras<'a>, Ec2Error> {
    Ok(Extras {
        cfg,
        tags: t.tags_of_many(ids)?,
        volumes: if ids.is_empty() {
            Vec::new()
        } else {
            t.list_volumes(&[], ids)?
        },
    })
}

/// The store filter for the request's `Filter.N`s (all of ours map onto
/// store columns; availability-zone has one value here).
fn store_filter(
    filters: &Filters,
    cfg: &SupervisorConfig,
) -> Result<Option<InstanceFilter>, Ec2Error> {
    let mut f = InstanceFilter {
        ids: filters.values("instance-id"),
        states: filters.values("instance-state-name"),
        image_ids: filters.values("image-id"),
        instance_types: filters.values("instance-type"),
        reservation_ids: filters.values("reservation-id"),
        private_ips: filters.values("private-ip-address"),
        key_names: filters.values("key-name"),
        tags: filters.tags(),
        tag_keys: filters.values("tag-key"),
        ..InstanceFilter::default()
    };
    for code in filters.values("instance-state-code") {
        let state = code
            .parse::<i64>()
            .ok()
            .and_then(InstanceState::from_code)
            .ok_or_else(|| {
                Ec2Error::invalid_parameter_value(
                    "instance-state-code",
                    &code,
                    "Not an instance state code.",
                )
            })?;
        f.states.push(state.name().to_string());
    }
    if !filters.matches("availability-zone", &cfg.availability_zone) {
        return Ok(None);
    }
    Ok(Some(f))
}

fn seq_key(seq: i64) -> String {
    format!("{seq:020}")
}

/// Matching records, one page of them, and the next page's token.
fn page_of(
    call: &Call<'_>,
    t: &Tx<'_>,
    cfg: &SupervisorConfig,
    extra: impl Fn(&InstanceRecord) -> bool,
) -> Result<(Vec<InstanceRecord>, Option<String>), Ec2Error> {
    let ids = instance_ids(call, "InstanceId")?;
    let page = PageRequest::parse(call.req, call.action(), 5..=1000)?;
    if !ids.is_empty() && page.max_results.is_some() {
        return Err(Ec2Error::invalid_parameter_combination(
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    let filters = Filters::parse(call.req, INSTANCE_FILTERS)?;
    let Some(mut filter) = store_filter(&filters, cfg)? else {
        return Ok((Vec::new(), None));
    };
    if !ids.is_empty() {
        // Every id asked for must exist, filtered out or not.
        existing(t, &ids)?;
        filter.ids = if filter.ids.is_empty() {
            ids
        } else {
            ids.into_iter()
                .filter(|id| filter.ids.contains(id))
                .collect()
        };
        if filter.ids.is_empty() {
            return Ok((Vec::new(), None));
        }
    }
    if let Some(after) = &page.after {
        let seq = after.parse::<i64>().map_err(|_| {
            Ec2Error::invalid_pagination_token(call.req.string("NextToken").unwrap_or(""))
        })?;
        filter.after_seq = Some(seq);
    }
    let mut records = t.list_instances(&filter)?;
    records.retain(|r| extra(r));
    let mut next = None;
    if let Some(max) = page.max_results
        && records.len() > max
    {
        records.truncate(max);
        next = records
            .last()
            .map(|r| paging::encode_token(call.action(), &seq_key(r.seq)));
    }
    Ok((records, next))
}

fn describe_instances(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let cfg = sup.config();
    let mut store = call.ctx.store()?;
    let (records, next, extras) = store.read(|t| {
        let (records, next) = page_of(call, t, cfg, |_| true)?;
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let extras = extras(t, cfg, &ids)?;
        Ok::<_, Ec2Error>((records, next, extras))
    })?;
    // Reservations in the order their first instance appears.
    let mut reservations: Vec<(String, Vec<&InstanceRecord>)> = Vec::new();
    for r in &records {
        match reservations
            .iter_mut()
            .find(|(id, _)| *id == r.reservation_id)
        {
            Some((_, list)) => list.push(r),
            None => reservations.push((r.reservation_id.clone(), vec![r])),
        }
    }
    call.reply(|x| {
        x.list("reservationSet", &reservations, |x, (id, list)| {
            x.text("reservationId", id)
                .text("ownerId", &cfg.owner_id)
                .list("groupSet", std::iter::empty::<()>(), |_, _| {})
                .list("instancesSet", list, |x, r| render::instance(x, r, &extras));
        });
        x.opt_text("nextToken", next.as_deref());
    })
}

fn describe_instance_status(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let cfg = sup.config();
    let all = call.req.bool("IncludeAllInstances")?.unwrap_or(false);
    let mut store = call.ctx.store()?;
    let (records, next) =
        store.read(|t| page_of(call, t, cfg, |r| all || r.state == InstanceState::Running))?;
    call.reply(|x| {
        x.list("instanceStatusSet", &records, |x, r| {
            let status = if r.state == InstanceState::Running {
                "ok"
            } else {
                "not-applicable"
            };
            x.text("instanceId", &r.id)
                .text("availabilityZone", &cfg.availability_zone);
            render::state(x, "instanceState", r.state);
            for name in ["systemStatus", "instanceStatus"] {
                x.element(name, |x| {
                    x.text("status", status).list("details", [()], |x, ()| {
                        x.text("name", "reachability")
                            .text("status", if status == "ok" { "passed" } else { status });
                    });
                });
            }
            x.list("eventsSet", std::iter::empty::<()>(), |_, _| {});
        });
        x.opt_text("nextToken", next.as_deref());
    })
}
