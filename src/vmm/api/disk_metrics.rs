//! The control socket's volume endpoints (this VM's disks, by id):
//!
//! ```text
//! GET   /vm/disks/{id}/metrics  200 {"VolumeReadOps": n, ..., "BurstBalance": pct|null}
//!                               404 unknown disk id
//! GET   /vm/metrics             200 text/plain: Prometheus exposition, one
//!                               series per disk, label volume_id
//! PATCH /vm/disks/{id}          body {"limits": LIMITS|null}: applied live;
//!                               200 the disk's entry, 400 bad limits, 404
//! ```
//! LIMITS = {"volume_type": "gp2|gp3|io1|io2|st1|sc1|standard",
//! "size_gib": N, "iops": N?, "throughput_mibps": N?}.
//!
//! `route` answers only what is its own and returns None for the rest, so
//! that other handlers of /vm/disks (hot-plug, PATCH {"resize": true}) can
//! sit beside it.

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::ApiShared;
use super::http::Request;
use crate::vmm::devices::virtio::block::throttle::Limits;
use crate::vmm::devices::virtio::block::{Volume, VolumeMetrics};

/// (status, Allow header, body, content type).
pub type Reply = (u16, Option<&'static str>, String, &'static str);

const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The VM's disks by id, shared by the API thread and whoever attaches or
/// detaches disks.
#[derive(Default)]
pub struct Volumes(Mutex<Vec<Arc<Volume>>>);

impl Volumes {
    /// Adds a disk (replacing one with the same id).
    pub fn insert(&self, volume: Arc<Volume>) {
        let mut all = self.lock();
        all.retain(|v| v.id() != volume.id());
        all.push(volume);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Volume>> {
        let mut all = self.lock();
        let at = all.iter().position(|v| v.id() == id)?;
        Some(all.remove(at))
    }

    pub fn get(&self, id: &str) -> Option<Arc<Volume>> {
        self.lock().iter().find(|v| v.id() == id).cloned()
    }

    /// In the order they were added.
    pub fn list(&self) -> Vec<Arc<Volume>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Volume>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One disk as GET /vm/disks lists it.
#[derive(Debug, Serialize)]
pub struct DiskEntry {
    pub id: String,
    pub path: PathBuf,
    pub read_only: bool,
    pub serial: Option<String>,
    pub slot: Option<u8>,
    pub state: &'static str,
    pub size_bytes: u64,
    pub limits: Option<Limits>,
}

impl DiskEntry {
    pub fn of(volume: &Volume) -> Self {
        let info = volume.info();
        DiskEntry {
            id: volume.id().to_string(),
            path: info.path.clone(),
            read_only: info.read_only,
            serial: info.serial.clone(),
            slot: info.slot,
            state: "attached",
            size_bytes: volume.size_bytes(),
            limits: volume.limits(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsUpdate {
    limits: Option<Limits>,
}

fn json_error(status: u16, message: String) -> Reply {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, None, body, JSON)
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let body = serde_json::json!({ "error": format!("method not allowed; use {allow}") });
    (405, Some(allow), body.to_string(), JSON)
}

fn no_such_disk(id: &str) -> Reply {
    json_error(404, format!("no disk with id {id:?}"))
}

pub fn route(request: &Request, shared: &ApiShared) -> Option<Reply> {
    let path = request.path.split('?').next().unwrap_or("");
    if path == "/vm/metrics" {
        return Some(if request.method == "GET" {
            (200, None, prometheus(&shared.volumes.list()), PROMETHEUS)
        } else {
            method_not_allowed("GET")
        });
    }
    let rest = path.strip_prefix("/vm/disks/")?;
    if let Some(id) = rest.strip_suffix("/metrics")
        && !id.is_empty()
        && !id.contains('/')
    {
        if request.method != "GET" {
            return Some(method_not_allowed("GET"));
        }
        return Some(match shared.volumes.get(id) {
            Some(v) => (
                200,
                None,
                serde_json::to_string(&v.metrics()).unwrap_or_default(),
                JSON,
            ),
            None => no_such_disk(id),
        });
    }
    if request.method == "PATCH" && !rest.is_empty() && !rest.contains('/') {
        return patch_limits(rest, &request.body, shared);
    }
    None
}

/// PATCH /vm/disks/{id} with a "limits" member; other bodies (a resize)
/// are not ours.
fn patch_limits(id: &str, body: &[u8], shared: &ApiShared) -> Option<Reply> {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(json_error(400, format!("bad request body: {e}"))),
    };
    // No "limits" member: another PATCH (a resize), not ours.
    value.get("limits")?;
    let update: LimitsUpdate = match serde_json::from_value(value) {
        Ok(u) => u,
        Err(e) => return Some(json_error(400, format!("bad limits: {e}"))),
    };
    let Some(volume) = shared.volumes.get(id) else {
        return Some(no_such_disk(id));
    };
    Some(match volume.set_limits(update.limits) {
        Ok(()) => (
            200,
            None,
            serde_json::to_string(&DiskEntry::of(&volume)).unwrap_or_default(),
            JSON,
        ),
        Err(e) => json_error(400, format!("bad limits: {e}")),
    })
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
