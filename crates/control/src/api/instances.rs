//! Instance actions (RunInstances, DescribeInstances, Start/Stop/Reboot/
//! TerminateInstances, DescribeInstanceStatus, GetConsoleOutput,
//! ModifyInstanceMetadataOptions, ModifyInstanceAttribute)
//! on top of the VM supervisor (crates/control/src/supervisor/).
//!
//! The handlers validate, change the records in one transaction (EC2's
//! state machine), and then kick the supervisor, which makes the VM
//! processes follow. Hooks called by `flint serve`: [`start`] (builds the
//! supervisor, re-adopts running VMs), [`register`], [`stop`].
//!
//! The supervisor is built here, once, from `flint serve`'s options
//! (`Config`: `--vmm-command`, `--stop-timeout`, `--terminate-timeout`,
//! `--nat`; `--bridge none` runs without host networking: no bridge, no
//! TAPs).

mod attribute;
mod describe;
mod lifecycle;
mod modify;
mod render;
mod run;

use std::sync::Arc;
use tracing::{info, warn};

use super::super::store::Tx;
use super::super::store::instances::InstanceRecord;
use super::super::store::ips::Subnet;
use super::super::supervisor::{Supervisor, SupervisorConfig};
use super::{Call, Context, Registry};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};
use flint_contract::metadata::MetadataUpdate;

/// Builds the supervisor (bridge, re-adoption of VMs that outlived the
/// last daemon) and installs it in the context.
pub fn start(ctx: &Context) -> Result<(), String> {
    let subnet = Subnet::parse(&ctx.config.subnet).map_err(|e| e.to_string())?;
    let mut cfg = SupervisorConfig::new(&ctx.data_dir, subnet);
    cfg.region = ctx.config.region.clone();
    cfg.availability_zone = ctx.config.availability_zone();
    cfg.owner_id = ctx.config.owner_id.clone();
    cfg.bridge = match ctx.config.bridge.as_str() {
        "" | "none" => None,
        name => Some(name.to_string()),
    };
    cfg.nat = ctx.config.nat;
    cfg.stop_timeout = std::time::Duration::from_secs(ctx.config.stop_timeout_s);
    cfg.terminate_timeout = std::time::Duration::from_secs(ctx.config.terminate_timeout_s);
    if let Some(command) = &ctx.config.vmm_command {
        cfg.vmm_command = command.clone();
    }
    cfg.max_memory_mib = ctx.config.max_instance_memory_mib.map(u64::from);
    cfg.direct_io = ctx.config.direct_io;
    cfg.jail = ctx.config.jail.clone();
    cfg.console_log_max_bytes = ctx.config.console_log_max_bytes;
    cfg.admission = ctx.config.admission;
    let sup = Supervisor::new(cfg).map_err(|e| e.to_string())?;
    let report = sup.adopt_all().map_err(|e| e.to_string())?;
    if report != Default::default() {
        info!(
            "flint serve: re-adopted {} running VM(s), reconciled {} record(s), relaunched {}",
            report.adopted.len(),
            report.reconciled.len(),
            report.launched.len()
        );
    }
    sup.recover_volumes().map_err(|e| e.to_string())?;
    sup.start_janitor();
    ctx.supervisor
        .set(sup)
        .map_err(|_| "the supervisor was already started".to_string())
}

/// Registers the instance actions.
pub fn register(registry: &mut Registry) {
    run::register(registry);
    attribute::register(registry);
    describe::register(registry);
    lifecycle::register(registry);
    modify::register(registry);
}

/// The daemon is exiting: the instances keep running (their processes
/// are in sessions of their own) and are re-adopted by the next daemon.
pub fn stop(_ctx: &Context) {}

/// For other actions (CreateTags / DeleteTags): the instance's tags
/// changed; push them to its metadata service if it runs. Failures are
/// logged, never an API error (the next start writes them anyway).
pub fn tags_changed(ctx: &Context, resource_id: &str) {
    if !resource_id.starts_with("i-") {
        return;
    }
    let (Some(sup), Ok(mut store)) = (ctx.supervisor(), ctx.store()) else {
        return;
    };
    let Ok(tags) = store.read(|t| t.tags_of(resource_id)) else {
        return;
    };
    let update = MetadataUpdate {
        tags: Some(tags.into_iter().collect()),
        ..MetadataUpdate::default()
    };
    if let Err(e) = sup.push_metadata(resource_id, &update) {
        warn!(instance_id = %resource_id, "flint serve: instance {resource_id}: cannot push tags: {e}");
    }
}

fn supervisor(call: &Call<'_>) -> Result<Arc<Supervisor>, Ec2Error> {
    call.ctx
        .supervisor()
        .ok_or_else(|| Ec2Error::internal_error("the instance supervisor is not running"))
}

/// `InstanceId.N`, each well-formed (else `InvalidInstanceID.Malformed`).
fn instance_ids(call: &Call<'_>, name: &str) -> Result<Vec<String>, Ec2Error> {
    let list = call.req.string_list(name)?;
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for id in list {
        ids::validate(ResourceKind::Instance, id)
            .map_err(|_| Ec2Error::instance_id_malformed(id))?;
        if !out.iter().any(|seen| seen == id) {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

/// A required, non-empty list of instance ids.
fn required_instance_ids(call: &Call<'_>) -> Result<Vec<String>, Ec2Error> {
    let ids = instance_ids(call, "InstanceId")?;
    if ids.is_empty() {
        return Err(Ec2Error::missing_parameter("InstanceId"));
    }
    Ok(ids)
}

/// One required instance id (`InstanceId=`).
fn one_instance_id(call: &Call<'_>) -> Result<String, Ec2Error> {
    let id = call.req.required_string("InstanceId")?;
    ids::validate(ResourceKind::Instance, id).map_err(|_| Ec2Error::instance_id_malformed(id))?;
    Ok(id.to_string())
}

/// The records of `ids`, in that order; every missing one is named in
/// one `InvalidInstanceID.NotFound`.
fn existing(t: &Tx<'_>, ids: &[String]) -> Result<Vec<InstanceRecord>, Ec2Error> {
    let mut found = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for id in ids {
        match t.get_instance(id)? {
            Some(r) => found.push(r),
            None => missing.push(id.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(Ec2Error::instance_not_found(&missing));
    }
    Ok(found)
}
