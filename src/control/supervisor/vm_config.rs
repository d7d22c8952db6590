//! The `flint vmm --config` document of an instance, built from its
//! records: the root volume as the AMI disk (serial = the volume id as
//! EC2's NVMe serial spells it), the NIC with the instance's MAC and
//! private address, the metadata service's contents, console and socket.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::network::{derived_id, tap_name};
use super::{SupervisorConfig, SupervisorError, types};
use crate::control::ec2::clock;
use crate::control::store::images::ImageRecord;
use crate::control::store::instances::InstanceRecord;
use crate::control::store::volumes::VolumeRecord;
use crate::vmm::config::{
    BootMode, ConsoleConfig, Identity, ImageConfig, NetConfig, RebootAction, VmConfig,
};
use crate::vmm::imds::metadata::PublicKey;
use crate::vmm::imds::{MetadataConfig, MetadataOptions};

/// The root device name Flint's instances (and AMIs) report.
pub const ROOT_DEVICE: &str = "/dev/xvda";

/// Everything about one instance the VM config is made from.
pub struct LaunchSpec<'a> {
    pub instance: &'a InstanceRecord,
    pub root: &'a VolumeRecord,
    /// None when the AMI has been deregistered since (it still boots).
    pub image: Option<&'a ImageRecord>,
    /// The key pair's name and OpenSSH public key.
    pub public_key: Option<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// The volume id as the disk serial: EC2 NVMe volumes show `vol0123…`
/// (no dash), which also fits virtio-blk's 20-byte ID.
pub fn disk_serial(volume_id: &str) -> String {
    volume_id.replacen('-', "", 1)
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
    let mut image = ImageConfig::new(PathBuf::from(&spec.root.path));
    image.boot_mode = boot_mode;
    image.serial = Some(disk_serial(&spec.root.id));
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
        disks: Vec::new(),
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
        },
        api_socket: Some(layout.socket(id)),
        on_reboot: RebootAction::Restart,
        shutdown_timeout_s: cfg.stop_timeout.as_secs().max(1),
        seccomp: true,
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
        block_device_mapping: BTreeMap::from([
            ("ami".to_string(), ROOT_DEVICE.to_string()),
            ("root".to_string(), ROOT_DEVICE.to_string()),
        ]),
        pending_time,
        metadata_options: metadata_options(instance),
        ..MetadataConfig::default()
    }
}
