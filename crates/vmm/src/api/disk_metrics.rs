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
use crate::devices::virtio::block::Volume;
use crate::disks::DiskTable;
use flint_contract::socket::METRIC_FAMILIES;

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

/// The text exposition format, version 0.0.4: the contract's families.
fn prometheus(volumes: &[Arc<Volume>]) -> String {
    let values: Vec<(String, [Option<f64>; 11])> = volumes
        .iter()
        .map(|v| (label(v.id()), v.metrics().values()))
        .collect();
    let mut out = String::new();
    for (i, f) in METRIC_FAMILIES.iter().enumerate() {
        let _ = writeln!(out, "# HELP {} {}", f.prometheus, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.prometheus, f.kind);
        for (id, values) in &values {
            if let Some(v) = values[i] {
                let _ = writeln!(out, "{}{{volume_id=\"{id}\"}} {v}", f.prometheus);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
