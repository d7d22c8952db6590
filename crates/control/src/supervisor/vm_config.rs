//! The `flint vmm --config` document of an instance (`contract::config`),
//! built from its records: the root volume as the AMI disk (serial = the
//! volume id as EC2's NVMe serial spells it), the other attached volumes
//! as `disks` in device-name order, the NIC with the instance's MAC and
//! private address, the metadata service's contents, console and socket.
//!
//! Each volume's disk (the `image` for the root volume, `disks[]` for the
//! others) is built from that volume's record: its id (the disk's name on
//! the per-VM socket), serial, EBS limits (type, size, IOPS, throughput;
//! see limits.rs) and O_DIRECT.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::network::{derived_id, tap_name};
use super::{SupervisorConfig, SupervisorError, limits, types};
use crate::store::images::ImageRecord;
use crate::store::instances::InstanceRecord;
use crate::store::volumes::{AttachmentState, VolumeRecord};
use ec2_wire::clock;
use flint_contract::config::{
    BootMode, ConsoleConfig, DiskConfig, Identity, ImageConfig, NetConfig, RebootAction, VmConfig,
};
use flint_contract::metadata::{MetadataConfig, MetadataOptions, PublicKey};

/// The root device name Flint's instances (and AMIs) report.
pub const ROOT_DEVICE: &str = "/dev/xvda";

/// Everything about one instance the VM config is made from.
pub struct LaunchSpec<'a> {
    pub instance: &'a InstanceRecord,
    pub root: &'a VolumeRecord,
    /// The other attached volumes, in any order.
    pub volumes: &'a [VolumeRecord],
    /// None when the AMI has been deregistered since (it still boots).
    pub image: Option<&'a ImageRecord>,
    /// The key pair's name and OpenSSH public key.
    pub public_key: Option<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// The volume id as the disk serial: EC2 NVMe volumes show `vol0123…`
/// (no dash), which also fits virtio-blk's 20-byte ID: a 21-character id
/// `vol-0123456789abcdef0` becomes the 20 bytes `vol0123456789abcdef0`
/// (all of its digits kept), and the guest sees
/// /dev/disk/by-id/virtio-vol0123456789abcdef0. Passed as is, the id would
/// be one byte too long (the VMM refuses serials over 20 bytes; a guest
/// would see it cut to `vol-0123456789abcdef`, losing the last digit).
pub fn disk_serial(volume_id: &str) -> String {
    volume_id.replacen('-', "", 1)
}

/// The letters that name a device slot, the same for `/dev/sdf`, `sdf`
/// and `/dev/xvdf` (EC2 treats sdX and xvdX as one attachment point).
pub fn device_slot(device: &str) -> &str {
    let name = device.strip_prefix("/dev/").unwrap_or(device);
    for prefix in ["xvd", "sd", "hd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return rest;
        }
    }
    name
}

/// The order volumes take on the VM's bus at boot: by device name (`f`
/// before `g` before `ba`), so a guest sees the same order every start.
pub fn device_order(device: &str) -> (usize, String) {
    let slot = device_slot(device);
    (slot.len(), slot.to_string())
}

/// Attached volumes other than the root, in [`device_order`].
fn data_volumes(volumes: &[VolumeRecord]) -> Vec<&VolumeRecord> {
    let mut data: Vec<&VolumeRecord> = volumes
        .iter()
        .filter(|v| v.device.as_deref().is_some_and(|d| d != ROOT_DEVICE))
        .filter(|v| v.attachment_state != Some(AttachmentState::Detaching))
        .collect();
    data.sort_by_key(|v| device_order(v.device.as_deref().unwrap_or("")));
    data
}

/// The metadata service's `block-device-mapping/`: `ami` and `root` for
/// the root device, `ebsN` (from 1, in device order) for each attached
/// volume, named as EC2 names them there (`sdf`, without `/dev/`).
pub fn block_device_mapping(volumes: &[VolumeRecord]) -> BTreeMap<String, String> {
    let mut mapping = BTreeMap::from([
        ("ami".to_string(), ROOT_DEVICE.to_string()),
        ("root".to_string(), ROOT_DEVICE.to_string()),
    ]);
    let attached: Vec<&VolumeRecord> = data_volumes(volumes)
        .into_iter()
        .filter(|v| v.attachment_state == Some(AttachmentState::Attached))
        .collect();
    for (n, v) in attached.iter().enumerate() {
        let device = v.device.as_deref().unwrap_or("");
        let name = device.strip_prefix("/dev/").unwrap_or(device);
        mapping.insert(format!("ebs{}", n + 1), name.to_string());
    }
    mapping
}

/// The stored metadata options (the IMDS's own JSON shape), or EC2's
/// defaults for a record without any.
pub fn metadata_options(instance: &InstanceRecord) -> MetadataOptions {
    serde_json::from_value(instance.metadata_options.clone()).unwrap_or_default()
}

pub fn build(cfg: &SupervisorConfig, spec: &LaunchSpec<'_>) -> Result<VmConfig, SupervisorError> {
    let instance = spec.instance;
    let id = &instance.id;
    let (vcpus, mut memory_mib) = types::shape(&instance.instance_type).ok_or_else(|| {
        SupervisorError::Config(format!("unknown instance type {}", instance.instance_type))
    })?;
    if let Some(cap) = cfg.max_memory_mib {
        memory_mib = memory_mib.min(cap);
    }
    let ip = instance
        .private_ip
        .ok_or_else(|| SupervisorError::Config(format!("instance {id} has no private address")))?;
    let boot_mode = match spec.image.map(|i| i.boot_mode.parse::<BootMode>()) {
        Some(Ok(mode)) => mode,
        Some(Err(e)) => return Err(SupervisorError::Config(e)),
        None => BootMode::LegacyBios,
    };
    let root = spec.root;
    let image = ImageConfig {
        boot_mode,
        serial: Some(disk_serial(&root.id)),
        id: Some(root.id.clone()),
        limits: Some(limits::limits(root)?),
        direct: cfg.direct_io,
        ..ImageConfig::new(PathBuf::from(&root.path))
    };
    let disks = data_volumes(spec.volumes)
        .into_iter()
        .map(|v| {
            Ok(DiskConfig {
                path: PathBuf::from(&v.path),
                read_only: false,
                serial: Some(disk_serial(&v.id)),
                id: Some(v.id.clone()),
                limits: Some(limits::limits(v)?),
                direct: cfg.direct_io,
            })
        })
        .collect::<Result<_, SupervisorError>>()?;
    let layout = &cfg.layout;
    Ok(VmConfig {
        vcpus,
        memory_mib,
        kernel: None,
        image: Some(image),
        identity: Identity {
            instance_id: id.clone(),
            instance_type: instance.instance_type.clone(),
        },
        disks,
        nics: vec![NetConfig {
            tap: tap_name(id),
            mac: instance.mac.clone(),
            ip: Some(format!("{ip}/{}", cfg.subnet_prefix())),
            gateway: Some(cfg.subnet.gateway().to_string()),
        }],
        metadata: Some(metadata(cfg, spec, ip)),
        console: ConsoleConfig {
            file: Some(layout.console(id)),
            stdio: false,
            log_max_bytes: cfg.console_log_max_bytes,
            log_rate_bytes_per_s: None,
        },
        api_socket: Some(layout.socket(id)),
        on_reboot: RebootAction::Restart,
        shutdown_timeout_s: cfg.stop_timeout.as_secs().max(1),
        seccomp: true,
        io_batching: true,
    })
}

fn metadata(cfg: &SupervisorConfig, spec: &LaunchSpec<'_>, ip: Ipv4Addr) -> MetadataConfig {
    let instance = spec.instance;
    let subnet = cfg.subnet.to_string();
    let launch = clock::iso8601_millis(instance.launch_time_ms);
    // IMDS wants seconds: "2024-05-06T07:08:09Z".
    let pending_time = format!("{}Z", launch.get(..19).unwrap_or(&launch));
    MetadataConfig {
        instance_id: instance.id.clone(),
        ami_id: instance.image_id.clone(),
        ami_launch_index: instance.launch_index,
        instance_type: instance.instance_type.clone(),
        reservation_id: instance.reservation_id.clone(),
        account_id: cfg.owner_id.clone(),
        region: cfg.region.clone(),
        availability_zone: cfg.availability_zone.clone(),
        local_ipv4: ip,
        mac: instance.mac.clone(),
        interface_id: derived_id("eni-", &instance.id),
        subnet_id: derived_id("subnet-", &subnet),
        subnet_ipv4_cidr_block: subnet.clone(),
        vpc_id: derived_id("vpc-", &subnet),
        vpc_ipv4_cidr_block: subnet,
        public_keys: spec
            .public_key
            .iter()
            .map(|(name, key)| PublicKey {
                name: name.clone(),
                openssh_key: key.clone(),
            })
            .collect(),
        user_data: instance.user_data.clone().filter(|d| !d.is_empty()),
        tags: spec.tags.iter().cloned().collect::<BTreeMap<_, _>>(),
        block_device_mapping: block_device_mapping(spec.volumes),
        pending_time,
        metadata_options: metadata_options(instance),
        ..MetadataConfig::default()
    }
}
