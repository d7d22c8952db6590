//! The disks' EBS metrics in Prometheus's text format:
//!
//! ```text
//! GET /vm/metrics   200 text/plain: one series per disk and metric, label
//!                   volume_id (the disk's id); BurstBalance only for the
//!                   types that have one
//! ```
//! (A disk's metrics as JSON, GET /vm/disks/{id}/metrics, are `disks`'s.)

use std::fmt::Write;
use std::sync::Arc;

use super::http::Request;
use super::{Reply, method_not_allowed};
use crate::contract::socket::VolumeMetrics;
use crate::vmm::devices::virtio::block::Volume;
use crate::vmm::disks::DiskTable;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// GET /vm/metrics: every disk in the table, detaching ones included.
pub fn route(request: &Request, table: Option<&DiskTable>) -> Reply {
    if request.method != "GET" {
        return method_not_allowed("GET");
    }
    let volumes: Vec<_> = table
        .map(DiskTable::list)
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.volume)
        .collect();
    (200, None, prometheus(&volumes))
}

/// A label value with Prometheus's escapes (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: name, type, help, and its value per volume (None:
/// no series for that volume).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&VolumeMetrics) -> Option<f64>,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "flint_volume_read_ops_total",
        kind: "counter",
        help: "Completed read operations (EBS VolumeReadOps).",
        value: |m| Some(m.read_ops as f64),
    },
    Family {
        name: "flint_volume_write_ops_total",
        kind: "counter",
        help: "Completed write operations (EBS VolumeWriteOps).",
        value: |m| Some(m.write_ops as f64),
    },
    Family {
        name: "flint_volume_read_bytes_total",
        kind: "counter",
        help: "Bytes read (EBS VolumeReadBytes).",
        value: |m| Some(m.read_bytes as f64),
    },
    Family {
        name: "flint_volume_write_bytes_total",
        kind: "counter",
        help: "Bytes written (EBS VolumeWriteBytes).",
        value: |m| Some(m.write_bytes as f64),
    },
    Family {
        name: "flint_volume_read_time_seconds_total",
        kind: "counter",
        help: "Summed latency of completed reads (EBS VolumeTotalReadTime).",
        value: |m| Some(m.total_read_time),
    },
    Family {
        name: "flint_volume_write_time_seconds_total",
        kind: "counter",
        help: "Summed latency of completed writes (EBS VolumeTotalWriteTime).",
        value: |m| Some(m.total_write_time),
    },
    Family {
        name: "flint_volume_queue_length",
        kind: "gauge",
        help: "Requests in flight (EBS VolumeQueueLength).",
        value: |m| Some(m.queue_length as f64),
    },
    Family {
        name: "flint_volume_idle_time_seconds_total",
        kind: "counter",
        help: "Time with no request in flight (EBS VolumeIdleTime).",
        value: |m| Some(m.idle_time),
    },
    Family {
        name: "flint_volume_burst_balance_percent",
        kind: "gauge",
        help: "Burst bucket left, percent (EBS BurstBalance; gp2, st1, sc1 only).",
        value: |m| m.burst_balance,
    },
    Family {
        name: "flint_volume_throttled_ops_total",
        kind: "counter",
        help: "Requests held back by the volume's limits.",
        value: |m| Some(m.throttled_ops as f64),
    },
    Family {
        name: "flint_volume_throttled_bytes_total",
        kind: "counter",
        help: "Bytes of the requests held back by the volume's limits.",
        value: |m| Some(m.throttled_bytes as f64),
    },
];

/// The text exposition format, version 0.0.4.
fn prometheus(volumes: &[Arc<Volume>]) -> String {
    let metrics: Vec<(String, VolumeMetrics)> = volumes
        .iter()
        .map(|v| (label(v.id()), v.metrics()))
        .collect();
    let mut out = String::new();
    for f in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (id, m) in &metrics {
            if let Some(v) = (f.value)(m) {
                let _ = writeln!(out, "{}{{volume_id=\"{id}\"}} {v}", f.name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
