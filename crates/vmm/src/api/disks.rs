//! The control socket's disk endpoints (`contract::socket`):
//!
//! ```text
//! GET    /vm/disks                 200 [DiskInfo...]
//! PUT    /vm/disks                 AttachRequest {"id","path","read_only","serial","limits","direct"}
//!                                  200 DiskInfo (hot-plugged); 400 / 409 / 422 / 507
//! GET    /vm/disks/{id}            200 DiskInfo; 404
//! GET    /vm/disks/{id}/metrics    200 VolumeMetrics {"VolumeReadOps": n, ..., "BurstBalance": pct|null}; 404
//! DELETE /vm/disks/{id}            202 DiskInfo, "detaching" until the guest ejects
//! DELETE /vm/disks/{id}?force=true 200 DiskInfo, "detached": removed now
//! PATCH  /vm/disks/{id}            DiskPatch {"resize":true} 200 Resized {"size_bytes":N}
//!                                  {"limits":LIMITS|null} 200 DiskInfo (applied live)
//!                                  both: 200 DiskInfo; 400 bad limits, 404
//! ```
//! DiskInfo = {"id","path","read_only","direct","serial","slot","state","size_bytes","limits"},
//! state "attached" or "detaching" ("detached" only in a forced removal's reply);
//! LIMITS = {"volume_type": "gp2|gp3|io1|io2|st1|sc1|standard", "size_gib": N,
//! "iops": N?, "throughput_mibps": N?}, checked by EBS's rules for the type.
//!
//! Reads, metrics and limits are answered from the disk table here (a
//! disk's volume takes new limits from any thread); attach, detach and
//! resize go to the VMM's main loop, which answers within `COMMAND_TIMEOUT`
//! (503 otherwise: no boot is running to take them).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::http::Request;
use super::{ApiShared, Reply, method_not_allowed};
use crate::disks::{DiskOp, DiskOpError, DiskReply, DiskTable};
use flint_contract::socket::{self, AttachRequest, DiskPatch, ErrorReply, Resized};

/// How long a disk command may wait for the main loop (it answers within
/// milliseconds while a boot runs). Together with the grace below, under
/// the daemon's 5 s socket timeout: the caller gets the real answer, and
/// this one-connection-at-a-time socket is not held for long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Extra wait for a command the main loop started just before its deadline.
const COMMAND_GRACE: Duration = Duration::from_secs(1);

/// A disk command on its way to the main loop, with where to answer.
pub struct DiskCommand {
    pub op: DiskOp,
    /// The main loop skips commands past this: their caller gave up.
    pub deadline: Instant,
    pub reply: mpsc::Sender<Result<DiskReply, DiskOpError>>,
}

fn json<T: Serialize>(status: u16, value: &T) -> Reply {
    (
        status,
        None,
        serde_json::to_string(value).unwrap_or_default(),
    )
}

fn error(status: u16, message: impl std::fmt::Display) -> Reply {
    json(status, &ErrorReply::new(message))
}

/// Answers a request under /vm/disks.
pub(super) fn route(request: &Request, shared: &ApiShared) -> Reply {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target.as_str(), ""));
    let Some(table) = shared.disk_table() else {
        return error(404, "this VM has no disks table");
    };
    let rest = path.strip_prefix(socket::DISKS).unwrap_or("");
    if rest.is_empty() {
        return match request.method.as_str() {
            "GET" => json(200, &table.list()),
            "PUT" => match serde_json::from_slice::<AttachRequest>(&request.body) {
                Ok(attach) => match attach.validate() {
                    Ok(()) => run(shared, DiskOp::Attach(attach)),
                    Err(e) => error(e.status(), e),
                },
                Err(e) => error(400, format!("bad disk: {e}")),
            },
            _ => method_not_allowed("GET, PUT"),
        };
    }
    let id = rest.strip_prefix('/').unwrap_or("");
    if let Some(id) = id.strip_suffix("/metrics")
        && !id.is_empty()
        && !id.contains('/')
    {
        if request.method != "GET" {
            return method_not_allowed("GET");
        }
        return match table.get(id) {
            Some(entry) => json(200, &entry.volume.metrics()),
            None => error(404, DiskOpError::NotFound(id.to_string())),
        };
    }
    if id.is_empty() || id.contains('/') {
        return error(404, format!("no such path: {path}"));
    }
    let id = id.to_string();
    match request.method.as_str() {
        "GET" => match table.get(&id) {
            Some(entry) => json(200, &entry),
            None => error(404, DiskOpError::NotFound(id)),
        },
        "DELETE" => match force_flag(query) {
            Ok(force) => run(shared, DiskOp::Detach { id, force }),
            Err(reason) => error(400, reason),
        },
        "PATCH" => match serde_json::from_slice::<DiskPatch>(&request.body) {
            Ok(patch) => apply_patch(shared, &table, id, patch),
            Err(e) => error(400, format!("bad disk change: {e}")),
        },
        _ => method_not_allowed("GET, DELETE, PATCH"),
    }
}

/// `force=true|false` from the query string; nothing else is understood.
fn force_flag(query: &str) -> Result<bool, String> {
    let mut force = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair {
            "force" | "force=true" => force = true,
            "force=false" => force = false,
            _ => return Err(format!("unknown query parameter {pair:?} (force=true)")),
        }
    }
    Ok(force)
}

/// A resize (on the main loop), then the limits (here): a patch whose
/// limits are bad, or whose resize fails, changes nothing.
fn apply_patch(shared: &ApiShared, table: &DiskTable, id: String, patch: DiskPatch) -> Reply {
    if let Err(e) = patch.validate() {
        return error(e.status(), e);
    }
    let Some(limits) = patch.limits else {
        return run(shared, DiskOp::Resize { id });
    };
    if patch.resize {
        let resized = run(shared, DiskOp::Resize { id: id.clone() });
        if resized.0 != 200 {
            return resized;
        }
    }
    match table.set_limits(&id, limits) {
        Ok(entry) => json(200, &entry),
        Err(e) => error(e.status(), e),
    }
}

/// Hands `op` to the main loop and turns its answer into a reply.
fn run(shared: &ApiShared, op: DiskOp) -> Reply {
    let (tx, rx) = mpsc::channel();
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    shared.push_disk_command(DiskCommand {
        op,
        deadline,
        reply: tx,
    });
    match rx.recv_timeout(COMMAND_TIMEOUT + COMMAND_GRACE) {
        Ok(Ok(DiskReply::Entry(entry))) => json(200, &entry),
        Ok(Ok(DiskReply::EjectRequested(entry))) => json(202, &entry),
        Ok(Ok(DiskReply::Removed(entry))) => json(200, &entry),
        Ok(Ok(DiskReply::Resized(size_bytes))) => json(200, &Resized { size_bytes }),
        Ok(Err(e)) => error(e.status(), e),
        Err(_) => error(
            503,
            "the VM did not take the request (it is not running, or between boots)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_flag_parsing() {
        assert_eq!(force_flag(""), Ok(false));
        assert_eq!(force_flag("force=true"), Ok(true));
        assert_eq!(force_flag("force"), Ok(true));
        assert_eq!(force_flag("force=false"), Ok(false));
        assert!(force_flag("force=yes").is_err());
        assert!(force_flag("nuke=true").is_err());
    }
}
