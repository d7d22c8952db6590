//! ModifyVolume and DescribeVolumesModifications.
//!
//! A modification is checked with the type rules (rules.rs, from the
//! contract's table), recorded (`modifying`) together with the volume's
//! new size/type/IOPS/throughput in one transaction, and applied after the
//! commit: a larger size grows the file (sparse), and on a running VM
//! `PATCH /vm/disks/{id}` `{"resize":true}` makes the VMM and the guest see
//! it; new limits go with `{"limits":…}`. Then `optimizing` → `completed`
//! (EC2's states; a file grows at once, so there is no real optimizing
//! phase). A volume can be shrunk by no one; there is no six-hour
//! cool-down between modifications here, but one must finish before the
//! next.

use super::super::filters::Filters;
use super::super::paging::{PageRequest, paginate};
use super::super::{ActionSpec, Call, DryRun, Registry};
use super::rules::{self, non_negative, small};
use super::{all_found, id_list, live_volume, one_id, render, supervisor};
use crate::store::modifications::{ModificationRecord, ModificationState, VolumeSpec};
use crate::store::volumes::VolumeRecord;
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::ResourceKind;
use flint_contract::ebs::VolumeType;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "ModifyVolume",
        params: &[
            "VolumeId",
            "Size",
            "VolumeType",
            "Iops",
            "Throughput",
            "MultiAttachEnabled",
        ],
        dry_run: DryRun::Handler,
        handler: modify_volume,
    });
    r.add(ActionSpec {
        name: "DescribeVolumesModifications",
        params: &[
            "VolumeId.N",
            "Filter.N.Name",
            "Filter.N.Value.N",
            "MaxResults",
            "NextToken",
            "IncludeManagedResources",
        ],
        dry_run: DryRun::Generic,
        handler: describe_modifications,
    });
}

pub fn spec_of(v: &VolumeRecord) -> VolumeSpec {
    VolumeSpec {
        size_gib: v.size_gib,
        volume_type: v.volume_type.clone(),
        iops: v.iops,
        throughput: v.throughput,
    }
}

/// Whether `kind` (checked) takes provisioned throughput (gp3).
fn takes_throughput(kind: &str) -> bool {
    kind.parse::<VolumeType>()
        .is_ok_and(VolumeType::takes_throughput)
}

/// The volume after the change: what is not given is kept where the new
/// type has it, else dropped (the rules fill the new type's defaults).
fn target(
    current: &VolumeRecord,
    size: Option<u64>,
    kind: Option<&str>,
    iops: Option<u32>,
    throughput: Option<u32>,
) -> VolumeSpec {
    let kind = kind.unwrap_or(&current.volume_type).to_string();
    let same_family =
        |a: &str, b: &str| a == b || (matches!(a, "io1" | "io2") && matches!(b, "io1" | "io2"));
    let keeps = same_family(&kind, &current.volume_type);
    VolumeSpec {
        size_gib: size.unwrap_or(current.size_gib),
        iops: iops.or(if keeps { current.iops } else { None }),
        throughput: throughput.or(if keeps && takes_throughput(&kind) {
            current.throughput
        } else {
            None
        }),
        volume_type: kind,
    }
}

fn modify_volume(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let req = call.req;
    let volume_id = one_id(call, "VolumeId", ResourceKind::Volume)?;
    let size = non_negative("Size", req.int("Size", i64::MIN..=i64::MAX)?)?;
    let kind = req.string("VolumeType");
    if let Some(kind) = kind {
        rules::check_type(kind)?;
    }
    let iops = small("Iops", req.int("Iops", i64::MIN..=i64::MAX)?)?;
    let throughput = small("Throughput", req.int("Throughput", i64::MIN..=i64::MAX)?)?;
    if req.bool("MultiAttachEnabled")?.unwrap_or(false) {
        return Err(Ec2Error::unsupported_operation(
            "Multi-Attach is not supported on this host.",
        ));
    }
    if size.is_none() && kind.is_none() && iops.is_none() && throughput.is_none() {
        return Err(Ec2Error::missing_parameter(
            "Size, VolumeType, Iops or Throughput",
        ));
    }
    let mut store = call.ctx.store()?;
    let (modification, volume) = store.write(|t| {
        let v = live_volume(
            t,
            &volume_id,
            "only available or in-use volumes can be modified.",
        )?;
        if let Some(last) = t
            .latest_modifications(std::slice::from_ref(&volume_id))?
            .first()
            && matches!(
                last.state,
                ModificationState::Modifying | ModificationState::Optimizing
            )
        {
            return Err(Ec2Error::new(
                "IncorrectModificationState",
                400,
                format!("A modification of volume '{volume_id}' is still in progress."),
            ));
        }
        let original = spec_of(&v);
        let wanted = rules::validate(&target(&v, size, kind, iops, throughput))?;
        if wanted.size_gib < original.size_gib {
            return Err(Ec2Error::invalid_parameter_value(
                "Size",
                &wanted.size_gib.to_string(),
                "New size cannot be smaller than existing size",
            ));
        }
        let effective = |s: &VolumeSpec| rules::validate(s).unwrap_or_else(|_| s.clone());
        if effective(&original) == wanted {
            return Err(Ec2Error::invalid_parameter_combination(
                "The modification request does not change the volume's configuration.",
            ));
        }
        call.check_dry_run()?;
        let seq = t.insert_modification(&volume_id, &original, &wanted)?;
        t.set_volume_spec(
            &volume_id,
            wanted.size_gib,
            &wanted.volume_type,
            wanted.iops,
            wanted.throughput,
        )?;
        let m = t
            .latest_modifications(std::slice::from_ref(&volume_id))?
            .into_iter()
            .find(|m| m.seq == seq)
            .ok_or_else(|| Ec2Error::internal_error("the modification vanished"))?;
        Ok::<_, Ec2Error>((m, v))
    })?;
    sup.apply_modification(&volume.id, modification.seq);
    call.reply(|x| {
        x.element("volumeModification", |x| {
            render::modification(x, &modification)
        });
    })
}

const MODIFICATION_FILTERS: &[&str] = &[
    "volume-id",
    "modification-state",
    "target-size",
    "target-iops",
    "target-volume-type",
    "target-throughput",
    "original-size",
    "original-iops",
    "original-volume-type",
    "original-throughput",
];

fn matches(filters: &Filters, m: &ModificationRecord) -> bool {
    let opt = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    filters.matches("volume-id", &m.volume_id)
        && filters.matches("modification-state", m.state.as_str())
        && filters.matches("target-size", &m.target.size_gib.to_string())
        && filters.matches("target-iops", &opt(m.target.iops))
        && filters.matches("target-volume-type", &m.target.volume_type)
        && filters.matches("target-throughput", &opt(m.target.throughput))
        && filters.matches("original-size", &m.original.size_gib.to_string())
        && filters.matches("original-iops", &opt(m.original.iops))
        && filters.matches("original-volume-type", &m.original.volume_type)
        && filters.matches("original-throughput", &opt(m.original.throughput))
}

fn describe_modifications(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let wanted = id_list(call, "VolumeId", ResourceKind::Volume)?;
    let filters = Filters::parse(call.req, MODIFICATION_FILTERS)?;
    let page = PageRequest::parse(call.req, call.action(), 5..=500)?;
    call.req.bool("IncludeManagedResources")?;
    let mut store = call.ctx.store()?;
    let list = store.read(|t| {
        let found = t.list_volumes(&wanted, &[])?;
        all_found(&wanted, &found)?;
        Ok::<_, Ec2Error>(t.latest_modifications(&wanted)?)
    })?;
    let matching: Vec<ModificationRecord> =
        list.into_iter().filter(|m| matches(&filters, m)).collect();
    let (items, next) = paginate(matching, |m| m.volume_id.clone(), &page, call.action());
    call.reply(|x| {
        x.list("volumeModificationSet", &items, |x, m| {
            render::modification(x, m)
        });
        x.opt_text("nextToken", next.as_deref());
    })
}
