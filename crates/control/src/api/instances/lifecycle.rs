//! StartInstances, StopInstances, RebootInstances, TerminateInstances.
//!
//! Each changes every named instance in one transaction (all or nothing:
//! one instance in a wrong state fails the request with
//! IncorrectInstanceState and changes none), then kicks the supervisor.
//! As on EC2, asking for the state an instance is already in or heading
//! to succeeds and reports it unchanged.

use super::super::{ActionSpec, Call, DryRun, Registry};
use super::{existing, render, required_instance_ids, supervisor};
use crate::api::admission_error;
use crate::store::Tx;
use crate::store::instances::{InstanceRecord, InstanceState, StateChange};
use crate::supervisor::outcome;
use crate::supervisor::vm_config::ROOT_DEVICE;
use InstanceState::*;
use ec2_wire::error::Ec2Error;
use tracing::warn;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "StartInstances",
        params: &["InstanceId.N", "AdditionalInfo"],
        dry_run: DryRun::Handler,
        handler: start_instances,
    });
    r.add(ActionSpec {
        name: "StopInstances",
        params: &["InstanceId.N", "Force", "Hibernate"],
        dry_run: DryRun::Handler,
        handler: stop_instances,
    });
    r.add(ActionSpec {
        name: "RebootInstances",
        params: &["InstanceId.N"],
        dry_run: DryRun::Handler,
        handler: reboot_instances,
    });
    r.add(ActionSpec {
        name: "TerminateInstances",
        params: &["InstanceId.N"],
        dry_run: DryRun::Handler,
        handler: terminate_instances,
    });
}

/// What a request does to an instance in a given state.
enum Move {
    To(InstanceState),
    Stay,
    Refuse,
}

/// Applies `plan` to every instance of the request in one transaction.
fn change(
    call: &Call<'_>,
    wanted: &str,
    plan: impl Fn(InstanceState) -> Move,
) -> Result<Vec<StateChange>, Ec2Error> {
    change_admitted(call, wanted, plan, |_, _| Ok(()))
}

/// [`change`], with `admit` asked (in the same transaction, after the
/// dry-run check) whether the host takes the records that move.
fn change_admitted(
    call: &Call<'_>,
    wanted: &str,
    plan: impl Fn(InstanceState) -> Move,
    admit: impl Fn(&Tx<'_>, &[&InstanceRecord]) -> Result<(), Ec2Error>,
) -> Result<Vec<StateChange>, Ec2Error> {
    let ids = required_instance_ids(call)?;
    let mut store = call.ctx.store()?;
    store.write(|t: &Tx<'_>| {
        let records = existing(t, &ids)?;
        for r in &records {
            if let Move::Refuse = plan(r.state) {
                return Err(Ec2Error::incorrect_instance_state(
                    &r.id,
                    r.state.name(),
                    wanted,
                ));
            }
        }
        call.check_dry_run()?;
        let moving: Vec<&InstanceRecord> = records
            .iter()
            .filter(|r| matches!(plan(r.state), Move::To(_)))
            .collect();
        admit(t, &moving)?;
        let mut changes = Vec::with_capacity(records.len());
        for r in &records {
            changes.push(match plan(r.state) {
                Move::To(to) => {
                    let reason = matches!(to, Stopping | ShuttingDown).then(outcome::user_shutdown);
                    t.transition_instance(&r.id, &[r.state], to, reason.as_ref())?
                }
                Move::Stay | Move::Refuse => StateChange {
                    id: r.id.clone(),
                    previous: r.state,
                    current: r.state,
                },
            });
        }
        Ok(changes)
    })
}

fn reply_changes(call: &Call<'_>, changes: &[StateChange]) -> Result<Vec<u8>, Ec2Error> {
    call.reply(|x| render::state_changes(x, changes))
}

/// A stopped instance whose root volume was detached cannot start.
fn check_root_volumes(call: &Call<'_>) -> Result<(), Ec2Error> {
    let ids = required_instance_ids(call)?;
    let mut store = call.ctx.store()?;
    store.read(|t| {
        for r in existing(t, &ids)? {
            if r.state != Stopped {
                continue;
            }
            let has_root = t
                .list_volumes(&[], std::slice::from_ref(&r.id))?
                .iter()
                .any(|v| v.device.as_deref() == Some(ROOT_DEVICE));
            if !has_root {
                return Err(Ec2Error::new(
                    "IncorrectInstanceState",
                    400,
                    format!(
                        "The instance '{}' does not have a volume attached at root ({ROOT_DEVICE})",
                        r.id
                    ),
                ));
            }
        }
        Ok(())
    })
}

fn start_instances(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    check_root_volumes(call)?;
    // Every instance that starts must fit, or none starts (EC2 answers
    // InsufficientInstanceCapacity for the request).
    let admit = |t: &Tx<'_>, starting: &[&InstanceRecord]| {
        let capacity = |e| admission_error(e, Ec2Error::insufficient_instance_capacity);
        let demands = starting
            .iter()
            .map(|r| sup.demand_of(&r.instance_type))
            .collect::<Result<Vec<_>, _>>()
            .map_err(capacity)?;
        sup.admit_in(t, &demands, demands.len())
            .map(drop)
            .map_err(capacity)
    };
    let changes = change_admitted(
        call,
        "started",
        |s| match s {
            Stopped => Move::To(Pending),
            Pending | Running => Move::Stay,
            _ => Move::Refuse,
        },
        admit,
    )?;
    for c in &changes {
        sup.kick(&c.id, false);
    }
    reply_changes(call, &changes)
}

fn stop_instances(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let force = call.req.bool("Force")?.unwrap_or(false);
    if call.req.bool("Hibernate")?.unwrap_or(false) {
        return Err(Ec2Error::unsupported_operation(
            "Hibernation is not supported.",
        ));
    }
    let changes = change(call, "stopped", |s| match s {
        Running | Pending => Move::To(Stopping),
        Stopping | Stopped => Move::Stay,
        ShuttingDown | Terminated => Move::Refuse,
    })?;
    for c in &changes {
        // A forced stop of one already stopping upgrades it to a hard stop.
        if c.current == Stopping {
            sup.kick(&c.id, force);
        }
    }
    reply_changes(call, &changes)
}

fn terminate_instances(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let changes = change(call, "terminated", |s| match s {
        Pending | Running | Stopping | Stopped => Move::To(ShuttingDown),
        ShuttingDown | Terminated => Move::Stay,
    })?;
    for c in &changes {
        if c.current == ShuttingDown {
            sup.kick(&c.id, false);
        }
    }
    reply_changes(call, &changes)
}

fn reboot_instances(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let ids = required_instance_ids(call)?;
    let mut store = call.ctx.store()?;
    let records = store.read(|t| existing(t, &ids))?;
    for r in &records {
        if r.state != Running {
            return Err(Ec2Error::incorrect_instance_state(
                &r.id,
                r.state.name(),
                "rebooted",
            ));
        }
    }
    call.check_dry_run()?;
    for r in &records {
        if let Err(e) = sup.reboot(&r.id) {
            warn!(instance_id = %r.id, "flint serve: instance {}: reboot: {e}", r.id);
        }
    }
    call.reply(|x| {
        x.bool("return", true);
    })
}
