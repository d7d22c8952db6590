//! RunInstances: validates everything, then in one transaction replays a
//! known ClientToken or creates the reservation's instances (each with its
//! address, root volume and tags); the supervisor launches them after the
//! commit. The reply shows them pending, as EC2's does.

use super::super::{ActionSpec, Call, DryRun, Registry};
use super::describe::extras;
use super::{render, supervisor};
use crate::api::admission_error;
use crate::api::codec;
use crate::api::volumes::attach;
use crate::api::volumes::create::completed_snapshot;
use crate::api::volumes::rules as volume_rules;
use crate::store::images::ImageState;
use crate::store::instances::{InstanceRecord, ShutdownBehavior};
use crate::store::modifications::VolumeSpec;
use crate::store::{StoreError, Tx};
use crate::supervisor::network::derived_id;
use crate::supervisor::records::{self, DataVolume, LaunchRequest};
use crate::supervisor::vm_config::device_slot;
use crate::supervisor::{admission, types, volume};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};
use ec2_wire::request::Scope;
use flint_contract::config::MAX_DISKS;
use flint_contract::ebs::{VolumeType, max_size_gib};
use flint_contract::metadata::{HttpTokens, MAX_USER_DATA, MetadataOptions, Toggle};

/// Instances one request may launch (one host, small guests).
pub const MAX_COUNT: i64 = 20;
const DEFAULT_TYPE: &str = "t3.micro";
const ROOT_DEVICES: [&str; 2] = ["/dev/xvda", "/dev/sda1"];
/// EC2's volume type for a data mapping without one.
const DEFAULT_DATA_TYPE: &str = "gp2";

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
            "BlockDeviceMapping.N.Ebs.KmsKeyId",
            "BlockDeviceMapping.N.Ebs.SnapshotId",
            "BlockDeviceMapping.N.NoDevice",
            "BlockDeviceMapping.N.VirtualName",
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
    let (root, data_mappings) = parse_mappings(&mappings)?;
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
        let spec = validate_mapping(&VolumeSpec {
            size_gib: launch.root_size_gib.unwrap_or(image_gib),
            volume_type: launch.root_volume_type.clone(),
            iops: root.iops,
            throughput: root.throughput,
        })?;
        launch.root_iops = spec.iops;
        launch.root_throughput = spec.throughput;
        launch.data_volumes = data_mappings
            .iter()
            .map(|m| data_volume(t, m))
            .collect::<Result<_, _>>()?;
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

/// One EBS mapping of the request (the root's or a data volume's).
#[derive(Default)]
struct EbsMapping {
    device: String,
    size: Option<u64>,
    volume_type: Option<String>,
    iops: Option<u32>,
    throughput: Option<u32>,
    delete_on_termination: Option<bool>,
    snapshot_id: Option<String>,
}

fn bad_mapping(message: String) -> Ec2Error {
    Ec2Error::new("InvalidBlockDeviceMapping", 400, message)
}

/// BlockDeviceMapping: the root device's (its size, type, limits and
/// DeleteOnTermination; its contents come from the AMI) and data
/// volumes', each made at launch (empty, or from its SnapshotId) and
/// attached before the VM starts. NoDevice leaves a device out (this
/// host's AMIs map no other device, so it only names one); instance store
/// (VirtualName) does not exist on this host.
fn parse_mappings(mappings: &[Scope<'_>]) -> Result<(EbsMapping, Vec<EbsMapping>), Ec2Error> {
    let mut root = EbsMapping::default();
    let mut data: Vec<EbsMapping> = Vec::new();
    let mut slots: Vec<String> = Vec::new();
    for m in mappings {
        let device = m.required_string("DeviceName")?;
        let is_root = ROOT_DEVICES.contains(&device);
        if !is_root && (attach::is_root_device(device) || !attach::valid_device(device)) {
            return Err(bad_mapping(format!(
                "{device:.64} is not a valid EBS device name."
            )));
        }
        let slot = device_slot(device).to_string();
        if slots.contains(&slot) || (is_root && slots.iter().any(|s| s == "a" || s == "a1")) {
            return Err(bad_mapping(format!(
                "The device '{device:.64}' is used in more than one block-device mapping"
            )));
        }
        slots.push(slot);
        let has_ebs = m.child("Ebs").is_present();
        let virtual_name = m.string("VirtualName").filter(|v| !v.is_empty());
        let no_device = m.string("NoDevice").is_some();
        if usize::from(has_ebs) + usize::from(virtual_name.is_some()) + usize::from(no_device) > 1 {
            return Err(Ec2Error::invalid_parameter_combination(format!(
                "The mapping of {device:.64} may have one of Ebs, VirtualName and NoDevice."
            )));
        }
        if let Some(name) = virtual_name {
            return Err(Ec2Error::unsupported_operation(format!(
                "Instance store volumes ({name:.32}) are not supported on this host; map EBS volumes instead."
            )));
        }
        if no_device {
            if is_root {
                return Err(bad_mapping(format!(
                    "The root device {device:.64} cannot be left out with NoDevice."
                )));
            }
            continue;
        }
        let ebs = m.child("Ebs");
        let mut mapping = EbsMapping {
            device: device.to_string(),
            ..EbsMapping::default()
        };
        // Any size some type takes; the type's own range is checked with
        // the rest of its rules.
        let max_size = i64::try_from(max_size_gib()).unwrap_or(i64::MAX);
        mapping.size = ebs.int("VolumeSize", 1..=max_size)?.map(|s| s as u64);
        if let Some(kind) = ebs.string("VolumeType") {
            if kind.parse::<VolumeType>().is_err() {
                return Err(Ec2Error::invalid_parameter_value(
                    &ebs.wire_name("VolumeType"),
                    kind,
                    "",
                ));
            }
            mapping.volume_type = Some(kind.to_string());
        }
        mapping.delete_on_termination = ebs.bool("DeleteOnTermination")?;
        // Checked against the volume type's rules once the size is known.
        mapping.iops = ebs
            .int("Iops", 1..=i64::from(u32::MAX))?
            .and_then(|n| u32::try_from(n).ok());
        mapping.throughput = ebs
            .int("Throughput", 1..=i64::from(u32::MAX))?
            .and_then(|n| u32::try_from(n).ok());
        if ebs.bool("Encrypted")?.unwrap_or(false) || ebs.string("KmsKeyId").is_some() {
            return Err(Ec2Error::unsupported_operation(
                "Encrypted volumes are not supported on this host.",
            ));
        }
        if let Some(id) = ebs.string("SnapshotId").filter(|s| !s.is_empty()) {
            ids::validate(ResourceKind::Snapshot, id)
                .map_err(|_| Ec2Error::malformed_id(ResourceKind::Snapshot, id))?;
            if is_root {
                return Err(bad_mapping(format!(
                    "The root device {device:.64} is made from the AMI; it takes no SnapshotId."
                )));
            }
            mapping.snapshot_id = Some(id.to_string());
        }
        if is_root {
            root = mapping;
        } else {
            if mapping.size.is_none() && mapping.snapshot_id.is_none() {
                return Err(bad_mapping(format!(
                    "The mapping of {device:.64} must contain VolumeSize or SnapshotId."
                )));
            }
            data.push(mapping);
        }
    }
    if data.len() + 1 > MAX_DISKS {
        return Err(Ec2Error::new(
            "AttachmentLimitExceeded",
            400,
            format!(
                "An instance has at most {MAX_DISKS} volumes attached (the root device and {} more).",
                MAX_DISKS - 1
            ),
        ));
    }
    Ok((root, data))
}

/// A launch volume's spec checked by CreateVolume's rules, its errors
/// as RunInstances answers them.
fn validate_mapping(spec: &VolumeSpec) -> Result<VolumeSpec, Ec2Error> {
    volume_rules::validate(spec).map_err(|e| {
        let code = if e.code == "InvalidParameterCombination" {
            e.code
        } else {
            "InvalidBlockDeviceMapping"
        };
        Ec2Error::new(code, 400, e.message)
    })
}

/// A data mapping's volume: its snapshot (completed), size (at least the
/// snapshot's) and limits.
fn data_volume(t: &Tx<'_>, m: &EbsMapping) -> Result<DataVolume, Ec2Error> {
    let snapshot = m
        .snapshot_id
        .as_deref()
        .map(|id| completed_snapshot(t, id))
        .transpose()?;
    let size_gib = match (m.size, &snapshot) {
        (Some(size), Some(s)) if size < s.volume_size_gib => {
            return Err(bad_mapping(format!(
                "Volume of size {size}GB is smaller than snapshot '{}', expect size >= {}GB",
                s.id, s.volume_size_gib
            )));
        }
        (Some(size), _) => size,
        (None, Some(s)) => s.volume_size_gib,
        (None, None) => 0,
    };
    let spec = validate_mapping(&VolumeSpec {
        size_gib,
        volume_type: m
            .volume_type
            .clone()
            .unwrap_or_else(|| DEFAULT_DATA_TYPE.to_string()),
        iops: m.iops,
        throughput: m.throughput,
    })?;
    Ok(DataVolume {
        device: m.device.clone(),
        spec,
        snapshot_id: m.snapshot_id.clone(),
        // EC2's default for volumes made at launch.
        delete_on_termination: m.delete_on_termination.unwrap_or(true),
    })
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
