//! `GET /metrics` on the daemon's socket (and its TCP listener): volume
//! metrics in the Prometheus text format (version 0.0.4), for scrapers and
//! `curl --unix-socket /run/flint/flint.sock http://flint/metrics`.
//!
//! - `flint_volume_size_bytes`, `flint_volume_info` (state, type,
//!   attachment) for every volume the daemon knows;
//! - for each volume attached to a running VM, the VMM's counters from
//!   `GET /vm/disks/{id}/metrics`, named after EBS's CloudWatch metrics:
//!
//! | VMM (CloudWatch) name | Prometheus name                         | type    |
//! |-----------------------|-----------------------------------------|---------|
//! | VolumeReadOps         | flint_volume_read_ops_total             | counter |
//! | VolumeWriteOps        | flint_volume_write_ops_total            | counter |
//! | VolumeReadBytes       | flint_volume_read_bytes_total           | counter |
//! | VolumeWriteBytes      | flint_volume_write_bytes_total          | counter |
//! | VolumeTotalReadTime   | flint_volume_read_time_seconds_total    | counter |
//! | VolumeTotalWriteTime  | flint_volume_write_time_seconds_total   | counter |
//! | VolumeIdleTime        | flint_volume_idle_time_seconds_total    | counter |
//! | VolumeQueueLength     | flint_volume_queue_length               | gauge   |
//! | BurstBalance          | flint_volume_burst_balance_percent      | gauge (absent when null) |
//! | VolumeThrottledOps    | flint_volume_throttled_ops_total        | counter |
//! | VolumeThrottledBytes  | flint_volume_throttled_bytes_total      | counter |
//!
//! A VM that does not answer is left out (and counted in
//! `flint_volume_metrics_errors`). Like the metrics endpoints of node
//! exporters, it takes no SigV4 signature: the socket's mode and the
//! loopback-only listener are its protection.

use std::fmt::Write as _;

use super::super::Context;
use crate::control::store::volumes::{AttachmentState, VolumeState};
use crate::control::supervisor::Supervisor;
use crate::control::supervisor::volume::GIB;

/// (VMM field, Prometheus name, type, help).
const VMM_METRICS: [(&str, &str, &str, &str); 11] = [
    (
        "VolumeReadOps",
        "flint_volume_read_ops_total",
        "counter",
        "Read operations completed.",
    ),
    (
        "VolumeWriteOps",
        "flint_volume_write_ops_total",
        "counter",
        "Write operations completed.",
    ),
    (
        "VolumeReadBytes",
        "flint_volume_read_bytes_total",
        "counter",
        "Bytes read.",
    ),
    (
        "VolumeWriteBytes",
        "flint_volume_write_bytes_total",
        "counter",
        "Bytes written.",
    ),
    (
        "VolumeTotalReadTime",
        "flint_volume_read_time_seconds_total",
        "counter",
        "Time spent on reads.",
    ),
    (
        "VolumeTotalWriteTime",
        "flint_volume_write_time_seconds_total",
        "counter",
        "Time spent on writes.",
    ),
    (
        "VolumeIdleTime",
        "flint_volume_idle_time_seconds_total",
        "counter",
        "Time with no I/O in flight.",
    ),
    (
        "VolumeQueueLength",
        "flint_volume_queue_length",
        "gauge",
        "Requests in flight.",
    ),
    (
        "BurstBalance",
        "flint_volume_burst_balance_percent",
        "gauge",
        "Burst bucket left (gp2, st1, sc1).",
    ),
    (
        "VolumeThrottledOps",
        "flint_volume_throttled_ops_total",
        "counter",
        "Operations delayed by the volume's limits.",
    ),
    (
        "VolumeThrottledBytes",
        "flint_volume_throttled_bytes_total",
        "counter",
        "Bytes delayed by the volume's limits.",
    ),
];

/// Label values are ids and names we made or validated, but escape anyway.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub fn prometheus(ctx: &Context) -> Result<String, String> {
    let mut store = ctx.store().map_err(|e| e.to_string())?;
    let volumes = store
        .read(|t| t.list_volumes(&[], &[]))
        .map_err(|e| e.to_string())?;
    drop(store);
    let sup = ctx.supervisor::<Supervisor>();
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
    // (volume, instance, the VMM's document)
    let mut samples = Vec::new();
    let mut errors = 0u64;
    if let Some(sup) = &sup {
        for v in &volumes {
            let (Some(instance), Some(AttachmentState::Attached | AttachmentState::Detaching)) =
                (v.instance_id.as_deref(), v.attachment_state)
            else {
                continue;
            };
            if !sup.has_process(instance) {
                continue;
            }
            match sup.disk_metrics(instance, &v.id) {
                Ok(Some(doc)) => samples.push((v.id.clone(), instance.to_string(), doc)),
                Ok(None) => {}
                Err(_) => errors += 1,
            }
        }
    }
    for (field, name, kind, help) in VMM_METRICS {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (volume, instance, doc) in &samples {
            let Some(value) = doc.get(field).and_then(serde_json::Value::as_f64) else {
                continue;
            };
            let _ = writeln!(
                out,
                "{name}{{volume_id=\"{}\",instance_id=\"{}\"}} {value}",
                label(volume),
                label(instance)
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
