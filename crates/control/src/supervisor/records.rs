//! The records a launch creates, in the caller's transaction: the
//! instance (pending, with its MAC and private address), its root volume
//! (attached at the root device, its file made later by the launch), the
//! data volumes of its other block-device mappings (attached, their files
//! made by the launch too) and the tags of all.

use super::SupervisorConfig;
use super::network::mac_for;
use super::vm_config::ROOT_DEVICE;
use super::volume::gib_for;
use crate::store::images::ImageRecord;
use crate::store::instances::{InstanceRecord, InstanceState, ShutdownBehavior};
use crate::store::modifications::VolumeSpec;
use crate::store::volumes::{AttachmentState, VolumeRecord, VolumeState};
use crate::store::{StoreError, Tx, now_ms};
use ec2_wire::ids::{self, ResourceKind};
use flint_contract::metadata::MetadataOptions;

/// One RunInstances' choices, shared by every instance it launches.
#[derive(Clone, Debug)]
pub struct LaunchRequest {
    pub instance_type: String,
    pub key_name: Option<String>,
    pub user_data: Option<Vec<u8>>,
    pub shutdown_behavior: ShutdownBehavior,
    pub metadata_options: MetadataOptions,
    /// None: the image's size, rounded up to GiB.
    pub root_size_gib: Option<u64>,
    pub root_volume_type: String,
    pub delete_on_termination: bool,
    /// The root volume's provisioned IOPS and throughput (None: defaults).
    pub root_iops: Option<u32>,
    pub root_throughput: Option<u32>,
    pub client_token: Option<String>,
    pub request_hash: Option<String>,
    pub instance_tags: Vec<(String, String)>,
    pub volume_tags: Vec<(String, String)>,
    /// The data volumes made at launch and attached before the VM starts.
    pub data_volumes: Vec<DataVolume>,
}

/// A volume RunInstances makes beside the root (a non-root mapping).
#[derive(Clone, Debug)]
pub struct DataVolume {
    pub device: String,
    /// Validated, defaults filled.
    pub spec: VolumeSpec,
    /// Its contents; None: empty.
    pub snapshot_id: Option<String>,
    pub delete_on_termination: bool,
}

impl LaunchRequest {
    pub fn new(instance_type: &str) -> LaunchRequest {
        LaunchRequest {
            instance_type: instance_type.to_string(),
            key_name: None,
            user_data: None,
            shutdown_behavior: ShutdownBehavior::Stop,
            metadata_options: MetadataOptions::default(),
            root_size_gib: None,
            root_volume_type: "gp3".into(),
            delete_on_termination: true,
            root_iops: None,
            root_throughput: None,
            client_token: None,
            request_hash: None,
            instance_tags: Vec::new(),
            volume_tags: Vec::new(),
            data_volumes: Vec::new(),
        }
    }
}

/// Inserts one pending instance of `image` with its root volume; the
/// caller kicks the supervisor after the commit.
pub fn insert_instance(
    t: &Tx<'_>,
    cfg: &SupervisorConfig,
    image: &ImageRecord,
    req: &LaunchRequest,
    reservation_id: &str,
    launch_index: u32,
) -> Result<InstanceRecord, StoreError> {
    let id = ids::new_id(ResourceKind::Instance);
    let now = now_ms();
    let mut record = InstanceRecord {
        seq: 0,
        id: id.clone(),
        reservation_id: reservation_id.to_string(),
        image_id: image.id.clone(),
        instance_type: req.instance_type.clone(),
        state: InstanceState::Pending,
        state_reason: None,
        state_changed_ms: now,
        private_ip: None,
        mac: mac_for(&id),
        key_name: req.key_name.clone(),
        user_data: req.user_data.clone(),
        shutdown_behavior: req.shutdown_behavior,
        metadata_options: serde_json::to_value(req.metadata_options)
            .unwrap_or(serde_json::Value::Null),
        launch_index,
        launch_time_ms: now,
        client_token: req.client_token.clone(),
        request_hash: req.request_hash.clone(),
        pid: None,
        vmm_socket: None,
        terminated_at_ms: None,
    };
    // The address row's reference to the instance is checked at commit.
    record.private_ip = Some(t.allocate_ip(&cfg.subnet, &id)?);
    t.insert_instance(&record)?;
    let volume_id = ids::new_id(ResourceKind::Volume);
    t.insert_volume(&VolumeRecord {
        id: volume_id.clone(),
        size_gib: req
            .root_size_gib
            .unwrap_or_else(|| gib_for(image.size_bytes)),
        volume_type: req.root_volume_type.clone(),
        path: cfg.layout.volume(&volume_id).to_string_lossy().into_owned(),
        state: VolumeState::InUse,
        instance_id: Some(id.clone()),
        device: Some(ROOT_DEVICE.to_string()),
        delete_on_termination: req.delete_on_termination,
        created_ms: now,
        attach_time_ms: Some(now),
        iops: req.root_iops,
        throughput: req.root_throughput,
        ..VolumeRecord::default()
    })?;
    if !req.instance_tags.is_empty() {
        t.set_tags(&id, &req.instance_tags)?;
    }
    if !req.volume_tags.is_empty() {
        t.set_tags(&volume_id, &req.volume_tags)?;
    }
    // Their files are made by the first launch, before the root's clone.
    for data in &req.data_volumes {
        let volume_id = ids::new_id(ResourceKind::Volume);
        t.insert_volume(&VolumeRecord {
            id: volume_id.clone(),
            size_gib: data.spec.size_gib,
            volume_type: data.spec.volume_type.clone(),
            iops: data.spec.iops,
            throughput: data.spec.throughput,
            snapshot_id: data.snapshot_id.clone(),
            path: cfg.layout.volume(&volume_id).to_string_lossy().into_owned(),
            state: VolumeState::InUse,
            instance_id: Some(id.clone()),
            device: Some(data.device.clone()),
            attachment_state: Some(AttachmentState::Attached),
            delete_on_termination: data.delete_on_termination,
            created_ms: now,
            attach_time_ms: Some(now),
            ..VolumeRecord::default()
        })?;
        if !req.volume_tags.is_empty() {
            t.set_tags(&volume_id, &req.volume_tags)?;
        }
    }
    Ok(record)
}
