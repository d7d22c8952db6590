//! RunInstances: validates everything, then in one transaction replays a
//! known ClientToken or creates the reservation's instances (each with its
//! address, root volume and tags); the supervisor launches them after the
//! commit. The reply shows them pending, as EC2's does.

use super::super::{ActionSpec, Call, DryRun, Registry};
use super::describe::extras;
use super::{render, supervisor};
use crate::api::admission_error;
use crate::api::codec;
use crate::api::volumes::rules as volume_rules;
use crate::store::StoreError;
use crate::store::images::ImageState;
use crate::store::instances::{InstanceRecord, ShutdownBehavior};
use crate::store::modifications::VolumeSpec;
use crate::supervisor::network::derived_id;
use crate::supervisor::records::{self, LaunchRequest};
use crate::supervisor::{admission, types, volume};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};
use ec2_wire::request::Scope;
use flint_contract::ebs::{VolumeType, max_size_gib};
use flint_contract::metadata::{HttpTokens, MAX_USER_DATA, MetadataOptions, Toggle};

/// Instances one request may launch (one host, small guests).
pub const MAX_COUNT: i64 = 20;
const DEFAULT_TYPE: &str = "t3.micro";
const ROOT_DEVICES: [&str; 2] = ["/dev/xvda", "/dev/sda1"];

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "RunInstances",
        params: &[
            "ImageId",
            "InstanceType",
            "MinCount",
            "MaxCount",
            "KeyName",
            "UserData",
            "ClientToken",
            "InstanceInitiatedShutdownBehavior",
            "BlockDeviceMapping.N.DeviceName",
            "BlockDeviceMapping.N.Ebs.VolumeSize",
            "BlockDeviceMapping.N.Ebs.VolumeType",
            "BlockDeviceMapping.N.Ebs.DeleteOnTermination",
            "BlockDeviceMapping.N.Ebs.Iops",
            "BlockDeviceMapping.N.Ebs.Throughput",
            "BlockDeviceMapping.N.Ebs.Encrypted",
            "TagSpecification.N.ResourceType",
            "TagSpecification.N.Tag.N.Key",
            "TagSpecification.N.Tag.N.Value",
            "MetadataOptions.HttpTokens",
            "MetadataOptions.HttpPutResponseHopLimit",
            "MetadataOptions.HttpEndpoint",
            "MetadataOptions.HttpProtocolIpv6",
            "MetadataOptions.InstanceMetadataTags",
            "SubnetId",
            "Placement.AvailabilityZone",
            "Monitoring.Enabled",
            "EbsOptimized",
            "SecurityGroupId.N",
        ],
        dry_run: DryRun::Handler,
        handler: run_instances,
    });
}

fn run_instances(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let cfg = sup.config().clone();
    let req = call.req;
    let image_id = req.required_string("ImageId")?;
    ids::validate(ResourceKind::Image, image_id)
        .map_err(|_| Ec2Error::ami_id_malformed(image_id))?;
    let min = req.int("MinCount", 1..=i64::from(u16::MAX))?;
    let max = req.int("MaxCount", 1..=i64::from(u16::MAX))?;
    let (min, max) = match (min, max) {
        (Some(min), Some(max)) => (min, max),
        (None, _) => return Err(Ec2Error::missing_parameter("MinCount")),
        (_, None) => return Err(Ec2Error::missing_parameter("MaxCount")),
    };
    if min > max {
        return Err(Ec2Error::invalid_parameter_value(
            "MinCount",
            &min.to_string(),
            "MinCount must be less than or equal to MaxCount",
        ));
    }
    if min > MAX_COUNT {
        return Err(Ec2Error::instance_limit_exceeded(MAX_COUNT as usize));
    }
    let count = max.min(MAX_COUNT);
    let mut launch = LaunchRequest::new(req.string("InstanceType").unwrap_or(DEFAULT_TYPE));
    if types::shape(&launch.instance_type).is_none() {
        return Err(Ec2Error::invalid_parameter_value(
            "InstanceType",
            &launch.instance_type,
            "The instance type is not supported on this host.",
        ));
    }
    launch.key_name = req.string("KeyName").map(str::to_string);
    launch.user_data = user_data(req.string("UserData"))?;
    if let Some(b) = req.string("InstanceInitiatedShutdownBehavior") {
        launch.shutdown_behavior = ShutdownBehavior::parse(b).ok_or_else(|| {
            Ec2Error::invalid_parameter_value(
                "InstanceInitiatedShutdownBehavior",
                b,
                "Expected stop or terminate.",
            )
        })?;
    }
    launch.metadata_options =
        metadata_options(&req.child("MetadataOptions"), MetadataOptions::default())?;
    tag_specifications(call, &mut launch)?;
    if let Some(subnet) = req.string("SubnetId")
        && subnet != derived_id("subnet-", &cfg.subnet.to_string())
    {
        return Err(Ec2Error::not_found(ResourceKind::Subnet, &[subnet]));
    }
    if let Some(az) = req.string("Placement.AvailabilityZone")
        && az != cfg.availability_zone
    {
        return Err(Ec2Error::invalid_parameter_value(
            "AvailabilityZone",
            az,
            &format!("This host has only {}.", cfg.availability_zone),
        ));
    }
    req.bool("Monitoring.Enabled")?;
    req.bool("EbsOptimized")?;
    let mappings = req.structs("BlockDeviceMapping")?;
    let root = root_mapping(&mappings)?;
    let token = req.string("ClientToken").filter(|t| !t.is_empty());
    if let Some(t) = token
        && (t.len() > 64 || !t.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(Ec2Error::invalid_parameter_value(
            "ClientToken",
            t,
            "At most 64 printable ASCII characters.",
        ));
    }
    launch.client_token = token.map(str::to_string);
    launch.request_hash = Some(call.request_hash());

    let mut store = call.ctx.store()?;
    let reservation_id = ids::new_id(ResourceKind::Reservation);
    let records: Vec<InstanceRecord> = store.write(|t| {
        if let Some(token) = token
            && let Some(done) = t.check_client_token(token, launch.request_hash.as_deref().unwrap_or(""))?
        {
            return Ok::<_, Ec2Error>(done);
        }
        let image = t
            .get_image(image_id)?
            .filter(|i| i.state == ImageState::Available)
            .ok_or_else(|| Ec2Error::ami_not_found(&[image_id]))?;
        if let Some(name) = &launch.key_name
            && t.get_key_pair(name)?.is_none()
        {
            return Err(Ec2Error::key_pair_not_found(name));
        }
        let image_gib = volume::gib_for(image.size_bytes);
        if let Some(size) = root.size {
            if size < image_gib {
                return Err(Ec2Error::new(
                    "InvalidBlockDeviceMapping",
                    400,
                    format!("Volume of size {size}GB is smaller than the image, expect size >= {image_gib}GB"),
                ));
            }
            launch.root_size_gib = Some(size);
        }
        if let Some(kind) = &root.volume_type {
            launch.root_volume_type = kind.clone();
        }
        if let Some(dot) = root.delete_on_termination {
            launch.delete_on_termination = dot;
        }
        let spec = volume_rules::validate(&VolumeSpec {
            size_gib: launch.root_size_gib.unwrap_or(image_gib),
            volume_type: launch.root_volume_type.clone(),
            iops: root.iops,
            throughput: root.throughput,
        })
        .map_err(|e| {
            let code = if e.code == "InvalidParameterCombination" {
                e.code
            } else {
                "InvalidBlockDeviceMapping"
            };
            Ec2Error::new(code, 400, e.message)
        })?;
        launch.root_iops = spec.iops;
        launch.root_throughput = spec.throughput;
        call.check_dry_run()?;
        // As many as the host has room for, down to MinCount (EC2 answers
        // InsufficientInstanceCapacity below that); each root volume starts
        // as a copy of the image's data.
        let capacity = |e| admission_error(e, Ec2Error::insufficient_instance_capacity);
        let demand = sup.demand_of(&launch.instance_type).map_err(capacity)?;
        let wanted = vec![demand; usize::try_from(count).unwrap_or(0)];
        let fits = sup
            .admit_in(t, &wanted, usize::try_from(min).unwrap_or(0))
            .map_err(capacity)?;
        let image_bytes = volume::allocated_bytes(std::path::Path::new(&image.path));
        admission::check_disk(
            &cfg.layout.volumes_dir(),
            image_bytes.saturating_mul(fits as u64),
        )
        .map_err(capacity)?;
        let mut made = Vec::new();
        for index in 0..fits {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            match records::insert_instance(t, &cfg, &image, &launch, &reservation_id, index) {
                Ok(r) => made.push(r),
                // Fewer than asked is fine down to MinCount, as on EC2.
                Err(StoreError::SubnetFull { .. }) if made.len() as i64 >= min => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(made)
    })?;
    for r in &records {
        sup.kick(&r.id, false);
    }
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let extras = store.read(|t| extras(t, &cfg, &ids))?;
    let reservation = records
        .first()
        .map(|r| r.reservation_id.clone())
        .unwrap_or(reservation_id);
    call.reply(|x| {
        x.text("reservationId", &reservation)
            .text("ownerId", &cfg.owner_id)
            .list("groupSet", std::iter::empty::<()>(), |_, _| {})
            .list("instancesSet", &records, |x, r| {
                render::instance(x, r, &extras)
            });
    })
}

/// UserData: base64 (botocore encodes it), at most 16 KiB decoded.
pub fn user_data(text: Option<&str>) -> Result<Option<Vec<u8>>, Ec2Error> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let data =
        codec::base64_decode(text).map_err(|e| Ec2Error::invalid_user_data(&e.to_string()))?;
    if data.len() > MAX_USER_DATA {
        return Err(Ec2Error::invalid_parameter_value(
            "UserData",
            "(user data)",
            &format!("User data is limited to {MAX_USER_DATA} bytes"),
        ));
    }
    Ok(Some(data))
}

/// MetadataOptions fields over `base` (EC2's defaults at launch, the
/// current options for ModifyInstanceMetadataOptions).
pub fn metadata_options(s: &Scope<'_>, base: MetadataOptions) -> Result<MetadataOptions, Ec2Error> {
    let mut o = base;
    let bad = |name: &str, value: &str, want: &str| {
        Ec2Error::invalid_parameter_value(&s.wire_name(name), value, &format!("Expected {want}."))
    };
    if let Some(v) = s.string("HttpTokens") {
        o.http_tokens = match v {
            "optional" => HttpTokens::Optional,
            "required" => HttpTokens::Required,
            _ => return Err(bad("HttpTokens", v, "optional or required")),
        };
    }
    if let Some(v) = s.string("HttpEndpoint") {
        o.http_endpoint = toggle(v).ok_or_else(|| bad("HttpEndpoint", v, "enabled or disabled"))?;
    }
    if let Some(v) = s.string("InstanceMetadataTags") {
        o.instance_metadata_tags =
            toggle(v).ok_or_else(|| bad("InstanceMetadataTags", v, "enabled or disabled"))?;
    }
    if let Some(v) = s.string("HttpProtocolIpv6")
        && toggle(v).is_none()
    {
        return Err(bad("HttpProtocolIpv6", v, "enabled or disabled"));
    }
    if let Some(hops) = s.int("HttpPutResponseHopLimit", 1..=64)? {
        o.http_put_response_hop_limit = u8::try_from(hops).unwrap_or(1);
    }
    Ok(o)
}

fn toggle(v: &str) -> Option<Toggle> {
    match v {
        "enabled" => Some(Toggle::Enabled),
        "disabled" => Some(Toggle::Disabled),
        _ => None,
    }
}

#[derive(Default)]
struct RootMapping {
    size: Option<u64>,
    volume_type: Option<String>,
    iops: Option<u32>,
    throughput: Option<u32>,
    delete_on_termination: Option<bool>,
}

/// Only the root device can be mapped (extra volumes come with
/// CreateVolume/AttachVolume).
fn root_mapping(mappings: &[Scope<'_>]) -> Result<RootMapping, Ec2Error> {
    let mut root = RootMapping::default();
    for m in mappings {
        let device = m.required_string("DeviceName")?;
        if !ROOT_DEVICES.contains(&device) {
            return Err(Ec2Error::new(
                "InvalidBlockDeviceMapping",
                400,
                format!(
                    "Only the root device ({}) can be mapped at launch, not {device:.64}",
                    ROOT_DEVICES[0]
                ),
            ));
        }
        let ebs = m.child("Ebs");
        // Any size some type takes; the type's own range is checked with
        // the rest of its rules.
        let max_size = i64::try_from(max_size_gib()).unwrap_or(i64::MAX);
        root.size = ebs.int("VolumeSize", 1..=max_size)?.map(|s| s as u64);
        if let Some(kind) = ebs.string("VolumeType") {
            if kind.parse::<VolumeType>().is_err() {
                return Err(Ec2Error::invalid_parameter_value(
                    &ebs.wire_name("VolumeType"),
                    kind,
                    "",
                ));
            }
            root.volume_type = Some(kind.to_string());
        }
        root.delete_on_termination = ebs.bool("DeleteOnTermination")?;
        // Checked against the volume type's rules once the size is known.
        root.iops = ebs
            .int("Iops", 1..=i64::from(u32::MAX))?
            .and_then(|n| u32::try_from(n).ok());
        root.throughput = ebs
            .int("Throughput", 1..=i64::from(u32::MAX))?
            .and_then(|n| u32::try_from(n).ok());
        ebs.bool("Encrypted")?;
    }
    Ok(root)
}

fn tag_specifications(call: &Call<'_>, launch: &mut LaunchRequest) -> Result<(), Ec2Error> {
    for spec in call.req.structs("TagSpecification")? {
        let kind = spec.required_string("ResourceType")?;
        let mut tags = Vec::new();
        for tag in spec.structs("Tag")? {
            let key = tag.required_string("Key")?;
            let value = tag.string("Value").unwrap_or("");
            if key.is_empty() || key.chars().count() > 128 || key.starts_with("aws:") {
                return Err(Ec2Error::invalid_parameter_value(
                    &tag.wire_name("Key"),
                    key,
                    "Tag keys are 1 to 128 characters and may not start with aws:.",
                ));
            }
            if value.chars().count() > 256 {
                return Err(Ec2Error::invalid_parameter_value(
                    &tag.wire_name("Value"),
                    value,
                    "Tag values are at most 256 characters.",
                ));
            }
            tags.push((key.to_string(), value.to_string()));
        }
        match kind {
            "instance" => launch.instance_tags.extend(tags),
            "volume" => launch.volume_tags.extend(tags),
            other => {
                return Err(Ec2Error::invalid_parameter_value(
                    &spec.wire_name("ResourceType"),
                    other,
                    "RunInstances tags only instance and volume resources.",
                ));
            }
        }
    }
    Ok(())
}
