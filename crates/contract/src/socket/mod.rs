//! The per-VM control socket: JSON over HTTP/1.1 on a Unix socket, served
//! by `flint vmm` (`vmm::api`) and used by `flint serve`
//! (`control::supervisor::vmm_client`). Its paths, requests and replies:
//!
//! ```text
//! GET    /vm                      200 VmStatus
//! PUT    /vm/shutdown             202 Accepted  graceful: ACPI power button, hard stop after the timeout
//! PUT    /vm/stop                 202 Accepted  hard stop now
//! PUT    /vm/reboot               202 Accepted  hard reset (as the reset button)
//! GET    /vm/metadata             200 MetadataConfig  what the metadata service serves
//! PUT    /vm/metadata             MetadataUpdate -> 200 MetadataConfig (merged)
//! GET    /vm/disks                200 [DiskInfo...]
//! PUT    /vm/disks                AttachRequest -> 200 DiskInfo (hot-plugged); 400 / 409 / 422 / 507
//! GET    /vm/disks/{id}           200 DiskInfo; 404
//! GET    /vm/disks/{id}/metrics   200 VolumeMetrics; 404
//! DELETE /vm/disks/{id}           202 DiskInfo, "detaching" until the guest ejects
//!                                 (meanwhile its `eject_wait` says why)
//! DELETE /vm/disks/{id}?force=true 200 DiskInfo, "detached": removed now
//! PATCH  /vm/disks/{id}           DiskPatch {"resize":true} -> 200 Resized
//!                                 {"limits":LIMITS|null} -> 200 DiskInfo (applied live)
//!                                 both: 200 DiskInfo; 400 bad limits, 404
//! GET    /vm/metrics              200 text/plain: every disk's metrics, Prometheus
//! ```
//! Errors are `ErrorReply` with 400 (malformed), 404 (unknown path or
//! disk), 405 (method, with Allow), 409 (a disk already there, or the root
//! volume), 422 (cannot open the file), 503 (no boot running to take a disk
//! command), 507 (no free hot-plug slot). LIMITS is `ebs::Limits`.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use crate::config::{MAX_DISK_ID_LEN, MAX_SERIAL_LEN, valid_disk_id, valid_serial};
use crate::ebs::Limits;

#[cfg(test)]
mod tests;

pub const VM: &str = "/vm";
pub const METADATA: &str = "/vm/metadata";
pub const DISKS: &str = "/vm/disks";
pub const METRICS: &str = "/vm/metrics";

/// `/vm/disks/{id}`
pub fn disk_path(id: &str) -> String {
    format!("{DISKS}/{id}")
}

/// `/vm/disks/{id}/metrics`
pub fn disk_metrics_path(id: &str) -> String {
    format!("{DISKS}/{id}/metrics")
}

/// `DELETE` of a disk: `/vm/disks/{id}`, `?force=true` to remove it at
/// once without the guest.
pub fn detach_path(id: &str, force: bool) -> String {
    if force {
        format!("{DISKS}/{id}?force=true")
    } else {
        disk_path(id)
    }
}

/// `PUT /vm/{shutdown,stop,reboot}`: what to do with the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmAction {
    /// ACPI power button; a hard stop after the config's shutdown timeout.
    Shutdown,
    /// Hard stop now.
    Stop,
    /// Hard reset, as the reset button.
    Reboot,
}

impl VmAction {
    pub const ALL: [VmAction; 3] = [VmAction::Shutdown, VmAction::Stop, VmAction::Reboot];

    pub fn name(self) -> &'static str {
        match self {
            VmAction::Shutdown => "shutdown",
            VmAction::Stop => "stop",
            VmAction::Reboot => "reboot",
        }
    }

    pub fn path(self) -> String {
        format!("{VM}/{}", self.name())
    }

    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.path() == path)
    }
}

/// The 202 reply to a `VmAction`: `{"accepted": "shutdown"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub accepted: String,
}

/// Every error reply: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
}

impl ErrorReply {
    pub fn new(error: impl std::fmt::Display) -> Self {
        ErrorReply {
            error: error.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmState {
    Starting,
    Running,
    ShuttingDown,
    Stopped,
}

/// `GET /vm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStatus {
    pub state: VmState,
    /// Boots so far (a guest reboot starts another).
    pub boots: u32,
    pub vcpus: u8,
    pub memory_mib: u64,
    pub pid: u32,
    /// The running boot's MSI GSIs in use (a leak check).
    #[serde(default)]
    pub msi_gsis: u32,
}

/// A request the socket refuses before doing anything (400).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct BadRequest(pub String);

impl BadRequest {
    /// The control socket's status for it.
    pub fn status(&self) -> u16 {
        400
    }
}

fn check_limits(limits: Option<&Limits>) -> Result<(), BadRequest> {
    limits
        .map_or(Ok(()), Limits::validate)
        .map_err(|e| BadRequest(format!("bad limits: {e}")))
}

/// `PUT /vm/disks`: hot-plug a disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// Its name on the socket: the volume id on Flint.
    pub id: String,
    /// Absolute path of the backing file, as the VMM can open it.
    pub path: PathBuf,
    #[serde(default)]
    pub read_only: bool,
    /// The virtio-blk serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// O_DIRECT for aligned requests (see DiskConfig::direct).
    #[serde(default)]
    pub direct: bool,
}

impl AttachRequest {
    /// What can be checked without touching the host: the id, the path's
    /// form, the serial and the limits.
    pub fn validate(&self) -> Result<(), BadRequest> {
        if !valid_disk_id(&self.id) {
            return Err(BadRequest(format!(
                "id {:?} must be 1 to {MAX_DISK_ID_LEN} characters of A-Z a-z 0-9 . _ -",
                self.id,
            )));
        }
        if !self.path.is_absolute() {
            return Err(BadRequest(format!(
                "path {} is not absolute",
                self.path.display()
            )));
        }
        if let Some(serial) = &self.serial
            && !valid_serial(serial)
        {
            return Err(BadRequest(format!(
                "serial {serial:?} is longer than {MAX_SERIAL_LEN} bytes or not printable ASCII"
            )));
        }
        check_limits(self.limits.as_ref())
    }
}

/// `PATCH /vm/disks/{id}`: `{"resize": true}` and/or `{"limits": ...}`
/// (`"limits": null` lifts them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskPatch {
    /// Re-read the backing file's size and tell the guest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resize: bool,
    /// Absent: unchanged; `Some(None)`: unthrottled.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub limits: Option<Option<Limits>>,
}

/// Tells `"limits": null` (Some(None)) from an absent field (None).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Limits>>, D::Error> {
    Option::<Limits>::deserialize(d).map(Some)
}

impl DiskPatch {
    pub fn resize() -> Self {
        DiskPatch {
            resize: true,
            limits: None,
        }
    }

    /// New limits (None: unthrottled).
    pub fn limits(limits: Option<Limits>) -> Self {
        DiskPatch {
            resize: false,
            limits: Some(limits),
        }
    }

    /// Something to change, and limits that can be applied: checked before
    /// either half of the patch changes anything.
    pub fn validate(&self) -> Result<(), BadRequest> {
        if !self.resize && self.limits.is_none() {
            return Err(BadRequest(
                "nothing to change: give \"resize\": true and/or \"limits\"".into(),
            ));
        }
        check_limits(self.limits.as_ref().and_then(Option::as_ref))
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DiskState {
    Attached,
    /// Eject requested from the guest; the device stays until it ejects.
    Detaching,
    /// Only in the reply to a forced detach: the device is gone.
    Detached,
}

/// While a disk is detaching: why the guest has not ejected it yet.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EjectWait {
    /// The guest does not listen for hot-plug events (firmware or a
    /// bootloader runs, its OS has not enabled ACPI hot-plug yet, or it
    /// masked the event): the request is signalled again until it does.
    GuestNotListening,
    /// Signalled; the guest has not read the request yet.
    NotRead,
    /// The guest read the request and has not ejected the disk: it is
    /// unbinding its driver, or holding the disk.
    GuestHolding,
}

impl EjectWait {
    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            EjectWait::GuestNotListening => "guest-not-listening",
            EjectWait::NotRead => "not-read",
            EjectWait::GuestHolding => "guest-holding",
        }
    }
}

/// One disk as the socket shows it (`GET /vm/disks[/{id}]`, and the reply
/// to an attach, a detach or a change of limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskInfo {
    pub id: String,
    pub path: PathBuf,
    pub read_only: bool,
    /// O_DIRECT for aligned requests.
    #[serde(default)]
    pub direct: bool,
    pub serial: Option<String>,
    /// Its PCI slot.
    pub slot: u8,
    pub state: DiskState,
    /// What the guest sees: whole 512-byte sectors of the backing file (0
    /// until a boot has opened it).
    pub size_bytes: u64,
    pub limits: Option<Limits>,
    /// Only while detaching: why the guest has not ejected it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eject_wait: Option<EjectWait>,
}

/// The reply to `{"resize": true}`: the disk's size now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resized {
    pub size_bytes: u64,
}

/// A volume's counters under the names of EBS's CloudWatch metrics
/// (`GET /vm/disks/{id}/metrics`). Totals since the VMM started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeMetrics {
    #[serde(rename = "VolumeReadOps")]
    pub read_ops: u64,
    #[serde(rename = "VolumeWriteOps")]
    pub write_ops: u64,
    #[serde(rename = "VolumeReadBytes")]
    pub read_bytes: u64,
    #[serde(rename = "VolumeWriteBytes")]
    pub write_bytes: u64,
    /// Seconds, summed over completed reads (from the guest's request
    /// leaving the avail ring to its completion, throttling included).
    #[serde(rename = "VolumeTotalReadTime")]
    pub total_read_time: f64,
    #[serde(rename = "VolumeTotalWriteTime")]
    pub total_write_time: f64,
    /// Requests taken from the guest and not yet completed.
    #[serde(rename = "VolumeQueueLength")]
    pub queue_length: u64,
    /// Seconds with no request in flight.
    #[serde(rename = "VolumeIdleTime")]
    pub idle_time: f64,
    /// Percent of the burst bucket left; null for types without one.
    #[serde(rename = "BurstBalance")]
    pub burst_balance: Option<f64>,
    /// Requests the limits held back (each counted once).
    #[serde(rename = "VolumeThrottledOps")]
    pub throttled_ops: u64,
    #[serde(rename = "VolumeThrottledBytes")]
    pub throttled_bytes: u64,
}

/// One of a volume's metrics: its CloudWatch name (the key in
/// [`VolumeMetrics`]' JSON), its Prometheus family (in the VMM's
/// `/vm/metrics` and the daemon's `/metrics`), type and help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricFamily {
    pub name: &'static str,
    pub prometheus: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
}

const fn family(
    name: &'static str,
    prometheus: &'static str,
    kind: &'static str,
    help: &'static str,
) -> MetricFamily {
    MetricFamily {
        name,
        prometheus,
        kind,
        help,
    }
}

/// The metrics in the order of the JSON (and of [`VolumeMetrics::values`]).
pub const METRIC_FAMILIES: [MetricFamily; 11] = [
    family(
        "VolumeReadOps",
        "flint_volume_read_ops_total",
        "counter",
        "Completed read operations (EBS VolumeReadOps).",
    ),
    family(
        "VolumeWriteOps",
        "flint_volume_write_ops_total",
        "counter",
        "Completed write operations (EBS VolumeWriteOps).",
    ),
    family(
        "VolumeReadBytes",
        "flint_volume_read_bytes_total",
        "counter",
        "Bytes read (EBS VolumeReadBytes).",
    ),
    family(
        "VolumeWriteBytes",
        "flint_volume_write_bytes_total",
        "counter",
        "Bytes written (EBS VolumeWriteBytes).",
    ),
    family(
        "VolumeTotalReadTime",
        "flint_volume_read_time_seconds_total",
        "counter",
        "Summed latency of completed reads (EBS VolumeTotalReadTime).",
    ),
    family(
        "VolumeTotalWriteTime",
        "flint_volume_write_time_seconds_total",
        "counter",
        "Summed latency of completed writes (EBS VolumeTotalWriteTime).",
    ),
    family(
        "VolumeQueueLength",
        "flint_volume_queue_length",
        "gauge",
        "Requests in flight (EBS VolumeQueueLength).",
    ),
    family(
        "VolumeIdleTime",
        "flint_volume_idle_time_seconds_total",
        "counter",
        "Time with no request in flight (EBS VolumeIdleTime).",
    ),
    family(
        "BurstBalance",
        "flint_volume_burst_balance_percent",
        "gauge",
        "Burst bucket left, percent (EBS BurstBalance; gp2, st1, sc1 only).",
    ),
    family(
        "VolumeThrottledOps",
        "flint_volume_throttled_ops_total",
        "counter",
        "Requests held back by the volume's limits.",
    ),
    family(
        "VolumeThrottledBytes",
        "flint_volume_throttled_bytes_total",
        "counter",
        "Bytes of the requests held back by the volume's limits.",
    ),
];

impl VolumeMetrics {
    /// Each metric's value, in [`METRIC_FAMILIES`]' order (None:
    /// BurstBalance of a type without a bucket).
    pub fn values(&self) -> [Option<f64>; 11] {
        [
            Some(self.read_ops as f64),
            Some(self.write_ops as f64),
            Some(self.read_bytes as f64),
            Some(self.write_bytes as f64),
            Some(self.total_read_time),
            Some(self.total_write_time),
            Some(self.queue_length as f64),
            Some(self.idle_time),
            self.burst_balance,
            Some(self.throttled_ops as f64),
            Some(self.throttled_bytes as f64),
        ]
    }
}
