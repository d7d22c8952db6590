//! `GET /metrics` on the daemon's socket (and its TCP listener): volume
//! metrics in the Prometheus text format (version 0.0.4), for scrapers and
//! `curl --unix-socket /run/flint/flint.sock http://flint/metrics`.
//!
//! - `flint_volume_size_bytes`, `flint_volume_info` (state, type,
//!   attachment) for every volume the daemon knows;
//! - for each volume attached to a running VM, the VMM's counters from
//!   `GET /vm/disks/{id}/metrics`, named after EBS's CloudWatch metrics
//!   as the VMM's own `/vm/metrics` names them (the contract's
//!   `METRIC_FAMILIES`), with an `instance_id` label:
//!
//! | VMM (CloudWatch) name | Prometheus name                         | type    |
//! |-----------------------|-----------------------------------------|---------|
//! | VolumeReadOps         | flint_volume_read_ops_total             | counter |
//! | VolumeWriteOps        | flint_volume_write_ops_total            | counter |
//! | VolumeReadBytes       | flint_volume_read_bytes_total           | counter |
//! | VolumeWriteBytes      | flint_volume_write_bytes_total          | counter |
//! | VolumeTotalReadTime   | flint_volume_read_time_seconds_total    | counter |
//! | VolumeTotalWriteTime  | flint_volume_write_time_seconds_total   | counter |
//! | VolumeQueueLength     | flint_volume_queue_length               | gauge   |
//! | VolumeIdleTime        | flint_volume_idle_time_seconds_total    | counter |
//! | BurstBalance          | flint_volume_burst_balance_percent      | gauge (absent when null) |
//! | VolumeThrottledOps    | flint_volume_throttled_ops_total        | counter |
//! | VolumeThrottledBytes  | flint_volume_throttled_bytes_total      | counter |
//!
//! `GET /metrics/volumes[?VolumeId=ID…]` gives the same VMM documents as
//! JSON (see [`json`]; `flint describe-volume-metrics --volume-ids …`).
//!
//! A VM that does not answer is left out (and counted in
//! `flint_volume_metrics_errors`). Like the metrics endpoints of node
//! exporters, it takes no SigV4 signature: the socket's mode and the
//! loopback-only listener are its protection.

use std::fmt::Write as _;

use super::super::Context;
use crate::store::volumes::{AttachmentState, VolumeRecord, VolumeState};
use crate::supervisor::Supervisor;
use crate::supervisor::volume::GIB;
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};
use flint_contract::socket::{METRIC_FAMILIES, VolumeMetrics};

/// Label values are ids and names we made or validated, but escape anyway.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One volume's metrics from its VM.
struct Sample {
    volume_id: String,
    instance_id: String,
    metrics: VolumeMetrics,
}

/// Asks the VM of every attached volume in `volumes` for its counters;
/// returns them and how many VMs did not answer.
fn sample(sup: Option<&Supervisor>, volumes: &[VolumeRecord]) -> (Vec<Sample>, u64) {
    let mut samples = Vec::new();
    let mut errors = 0u64;
    let Some(sup) = sup else {
        return (samples, errors);
    };
    for v in volumes {
        let (Some(instance), Some(AttachmentState::Attached | AttachmentState::Detaching)) =
            (v.instance_id.as_deref(), v.attachment_state)
        else {
            continue;
        };
        // The socket, not has_process: that takes the instance's slot,
        // which a launch holds while it clones a root volume.
        if !sup.layout().socket(instance).exists() {
            continue;
        }
        match sup.disk_metrics(instance, &v.id) {
            Ok(Some(metrics)) => samples.push(Sample {
                volume_id: v.id.clone(),
                instance_id: instance.to_string(),
                metrics,
            }),
            Ok(None) => {}
            Err(_) => errors += 1,
        }
    }
    (samples, errors)
}

/// `GET /metrics/volumes[?VolumeId=…&VolumeId=…]`, what `flint
/// describe-volume-metrics` prints: `{"VolumeMetrics": [{"VolumeId",
/// "State", "InstanceId", "AttachmentState", "Metrics": the VMM's document
/// or null}]}` for the volumes asked (all when none is named; an unknown
/// id is an error).
pub fn json(ctx: &Context, wanted: &[String]) -> Result<String, Ec2Error> {
    for id in wanted {
        ids::validate(ResourceKind::Volume, id)
            .map_err(|_| Ec2Error::malformed_id(ResourceKind::Volume, id))?;
    }
    let mut store = ctx.store()?;
    let volumes = store.read(|t| t.list_volumes(wanted, &[]))?;
    drop(store);
    super::all_found(wanted, &volumes)?;
    let sup = ctx.supervisor();
    let (samples, _) = sample(sup.as_deref(), &volumes);
    let list: Vec<serde_json::Value> = volumes
        .iter()
        .filter(|v| v.state != VolumeState::Deleted)
        .map(|v| {
            let metrics = samples
                .iter()
                .find(|s| s.volume_id == v.id)
                .map(|s| s.metrics.clone());
            serde_json::json!({
                "VolumeId": v.id,
                "State": v.state.as_str(),
                "InstanceId": v.instance_id,
                "AttachmentState": v.attachment_state.map(AttachmentState::as_str),
                "Metrics": metrics,
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "VolumeMetrics": list }))
        .map_err(|e| Ec2Error::internal_error(e.to_string()))
}

/// The whole exposition.
pub fn prometheus(ctx: &Context) -> Result<String, Ec2Error> {
    let mut store = ctx.store()?;
    let volumes = store.read(|t| t.list_volumes(&[], &[]))?;
    drop(store);
    let sup = ctx.supervisor();
    let mut out = String::new();
    let _ = writeln!(out, "# HELP flint_volume_size_bytes The volume's size.");
    let _ = writeln!(out, "# TYPE flint_volume_size_bytes gauge");
    for v in volumes.iter().filter(|v| v.state != VolumeState::Deleted) {
        let _ = writeln!(
            out,
            "flint_volume_size_bytes{{volume_id=\"{}\"}} {}",
            label(&v.id),
            v.size_gib.saturating_mul(GIB)
        );
    }
    let _ = writeln!(
        out,
        "# HELP flint_volume_info The volume's state, type and attachment."
    );
    let _ = writeln!(out, "# TYPE flint_volume_info gauge");
    for v in volumes.iter().filter(|v| v.state != VolumeState::Deleted) {
        let _ = writeln!(
            out,
            "flint_volume_info{{volume_id=\"{}\",state=\"{}\",volume_type=\"{}\",instance_id=\"{}\",device=\"{}\",attachment_state=\"{}\"}} 1",
            label(&v.id),
            v.state,
            label(&v.volume_type),
            label(v.instance_id.as_deref().unwrap_or("")),
            label(v.device.as_deref().unwrap_or("")),
            v.attachment_state.map_or("", AttachmentState::as_str)
        );
    }
    let (samples, errors) = sample(sup.as_deref(), &volumes);
    for (i, f) in METRIC_FAMILIES.iter().enumerate() {
        let (name, kind, help) = (f.prometheus, f.kind, f.help);
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in &samples {
            let Some(value) = s.metrics.values()[i] else {
                continue;
            };
            let _ = writeln!(
                out,
                "{name}{{volume_id=\"{}\",instance_id=\"{}\"}} {value}",
                label(&s.volume_id),
                label(&s.instance_id)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP flint_volume_metrics_errors VMs that did not answer this scrape."
    );
    let _ = writeln!(out, "# TYPE flint_volume_metrics_errors gauge");
    let _ = writeln!(out, "flint_volume_metrics_errors {errors}");
    Ok(out)
}
