//! Settling an instance's records once its VM process has ended (or a
//! launch failed before one ran): the next state, the attachments left
//! mid-hot-plug, and on termination the DeleteOnTermination volumes and
//! the private address.

use std::sync::Arc;
use tracing::{error, warn};

use super::outcome::{self, Exit};
use super::{Supervisor, SupervisorError, network, volume};
use crate::store::instances::InstanceState;
use crate::store::volumes::AttachmentState;
use crate::store::{StoreError, Tx};

/// A launch that failed before a process ran: a first launch (RunInstances)
/// ends terminated, as EC2 does for an instance that cannot start; a
/// StartInstances goes back to stopped. Either way with the reason.
pub(super) fn fail_launch(
    sup: &Arc<Supervisor>,
    id: &str,
    first: bool,
    error: &SupervisorError,
) -> Result<(), SupervisorError> {
    error!(instance_id = %id, "flint serve: instance {id}: launch failed: {error}");
    let reason = outcome::internal_error(&format!("launch failed: {error}"));
    let to = if first {
        InstanceState::Terminated
    } else {
        InstanceState::Stopped
    };
    if sup.cfg.bridge.is_some() {
        let _ = network::delete_tap(&network::tap_name(id));
    }
    if let Some(settings) = &sup.cfg.jail {
        super::jail::release(&sup.cfg, settings, id);
    }
    let changed = sup.store().write(|t| {
        let state = t.instance(id)?.state;
        // A terminate that came in meanwhile wins.
        let to = if state == InstanceState::ShuttingDown {
            InstanceState::Terminated
        } else {
            to
        };
        t.transition_instance(id, &[state], to, Some(&reason))?;
        t.set_vmm_process(id, None)?;
        let deleted = if to == InstanceState::Terminated {
            terminate_records(t, id)?
        } else {
            Vec::new()
        };
        Ok::<_, StoreError>(deleted)
    })?;
    delete_files(&changed);
    Ok(())
}

/// The records a termination deletes, in the caller's transaction: the
/// DeleteOnTermination volumes (their files are returned for deletion
/// after the commit) and the private address.
fn terminate_records(t: &Tx<'_>, id: &str) -> Result<Vec<String>, StoreError> {
    let mut files = Vec::new();
    for v in t.list_volumes(&[], &[id.to_string()])? {
        if v.delete_on_termination {
            t.delete_volume(&v.id)?;
            files.push(v.path);
        } else {
            t.detach_volume(&v.id)?;
        }
    }
    t.release_ips(id)?;
    Ok(files)
}

fn delete_files(paths: &[String]) {
    for path in paths {
        if let Err(e) = volume::delete(std::path::Path::new(path)) {
            warn!("flint serve: {e}");
        }
    }
}

/// With no VM process, no hot-plug is under way: a detaching volume is
/// off the VM (detached), an attaching one is recorded for the next start
/// (attached).
fn settle_attachments(t: &Tx<'_>, id: &str) -> Result<(), StoreError> {
    for v in t.list_volumes(&[], &[id.to_string()])? {
        match v.attachment_state {
            Some(AttachmentState::Detaching) => t.detach_volume(&v.id)?,
            Some(AttachmentState::Attaching) => {
                t.set_attachment_state(&v.id, AttachmentState::Attached)?
            }
            _ => {}
        }
    }
    Ok(())
}

/// The process of `id` has ended (or, with no process, is known not to
/// run): move the record on, in one transaction with reading it, then
/// clean up the TAP, the socket and, on termination, the volumes.
pub(super) fn settle(
    sup: &Arc<Supervisor>,
    id: &str,
    exit: &Exit,
    last_words: Option<&str>,
) -> Result<(), SupervisorError> {
    let files = sup.store().write(|t| {
        let Some(record) = t.get_instance(id)? else {
            return Ok(Vec::new());
        };
        t.set_vmm_process(id, None)?;
        settle_attachments(t, id)?;
        let Some((to, reason)) =
            outcome::after_exit(record.state, exit, record.shutdown_behavior, last_words)
        else {
            return Ok(Vec::new());
        };
        t.transition_instance(id, &[record.state], to, Some(&reason))?;
        // Why a VM ended is the first thing an operator looks for.
        tracing::info!(instance_id = id, state = ?to, code = %reason.code, "instance {id}: {}", reason.message);
        if to == InstanceState::Terminated {
            terminate_records(t, id)
        } else {
            Ok::<_, StoreError>(Vec::new())
        }
    })?;
    if sup.cfg.bridge.is_some() {
        network::delete_tap(&network::tap_name(id))?;
    }
    let _ = std::fs::remove_file(sup.layout().socket(id));
    if let Some(settings) = &sup.cfg.jail {
        super::jail::release(&sup.cfg, settings, id);
    }
    delete_files(&files);
    Ok(())
}
