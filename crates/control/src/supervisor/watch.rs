//! The moving parts behind [`Supervisor::kick`]: launching a VM process,
//! watching it, stopping it, and settling the record once it has ended.

use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, warn};

use super::outcome::Exit;
use super::process;
use super::settle::{fail_launch, settle};
use super::vm_config::{self, LaunchSpec};
use super::{Live, Slot, Supervisor, SupervisorError, jail, network, vmm_client, volume};
use crate::store::instances::InstanceState;
use crate::store::processes::VmmProcess;
use crate::store::{StoreError, Tx};
use flint_contract::socket::{VmAction, VmState};
use std::path::PathBuf;

/// How often a starting VM's control socket is asked whether it runs.
const RUNNING_POLL: Duration = Duration::from_millis(100);
const ESCALATION_TICK: Duration = Duration::from_millis(200);

pub(super) fn reconcile(
    sup: &Arc<Supervisor>,
    id: &str,
    force: bool,
) -> Result<(), SupervisorError> {
    let slot = sup.slot(id);
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    let Some(record) = sup.store().read(|t| t.get_instance(id))? else {
        return Ok(());
    };
    match (record.state, slot.process.clone()) {
        (InstanceState::Pending, None) => {
            // Before the launch clones it: no volume file yet means this
            // is the instance's first launch (RunInstances).
            let first = sup
                .store()
                .read(|t| t.list_volumes(&[], &[id.to_string()]))?
                .iter()
                .all(|v| !std::path::Path::new(&v.path).exists());
            if let Err(e) = launch(sup, id, &mut slot) {
                fail_launch(sup, id, first, &e)?;
            }
            Ok(())
        }
        (InstanceState::Stopping | InstanceState::ShuttingDown, Some(live)) => {
            stop_process(sup, id, &mut slot, &live, force, record.state);
            Ok(())
        }
        (InstanceState::Stopping | InstanceState::ShuttingDown, None) => {
            settle(sup, id, &Exit::Unknown { last_words: None }, None)
        }
        _ => Ok(()),
    }
}

/// Everything the VM config is made of, read in one snapshot.
fn launch(sup: &Arc<Supervisor>, id: &str, slot: &mut Slot) -> Result<(), SupervisorError> {
    let cfg = &sup.cfg;
    let layout = &cfg.layout;
    let (record, volumes, root, image, key, tags) = sup.store().read(|t: &Tx<'_>| {
        let record = t.instance(id)?;
        let volumes = t.list_volumes(&[], &[id.to_string()])?;
        let root = volumes
            .iter()
            .find(|v| v.device.as_deref() == Some(vm_config::ROOT_DEVICE))
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                kind: "root volume of instance",
                id: id.to_string(),
            })?;
        let image = t.get_image(&record.image_id)?;
        let key = match &record.key_name {
            Some(name) => t.get_key_pair(name)?.map(|k| (k.name, k.public_key)),
            None => None,
        };
        let tags = t.tags_of(id)?;
        Ok::<_, StoreError>((record, volumes, root, image, key, tags))
    })?;
    let dir = layout.instance_dir(id);
    crate::private::create_private_dir(&dir).map_err(|source| SupervisorError::Io {
        path: dir.clone(),
        source,
    })?;
    let root_path = std::path::PathBuf::from(&root.path);
    if !root_path.exists() {
        // The first launch: the data volumes RunInstances mapped are made
        // first (empty or from their snapshots), so that a root file
        // means they all are there.
        for v in &volumes {
            if v.id != root.id && !std::path::Path::new(&v.path).exists() {
                sup.make_volume_file(&v.id)?;
            }
        }
        let image = image.as_ref().ok_or_else(|| {
            SupervisorError::Config(format!("image {} is no longer registered", record.image_id))
        })?;
        volume::clone_image(
            std::path::Path::new(&image.path),
            &root_path,
            root.size_gib.saturating_mul(volume::GIB),
        )?;
    }
    let spec = LaunchSpec {
        instance: &record,
        root: &root,
        volumes: &volumes,
        image: image.as_ref(),
        public_key: key,
        tags,
    };
    let vm = vm_config::build(cfg, &spec)?;
    let json =
        serde_json::to_string_pretty(&vm).map_err(|e| SupervisorError::Config(e.to_string()))?;
    let config_path = layout.vm_config(id);
    write_atomically(&config_path, json.as_bytes())?;
    if let Some(bridge) = &cfg.bridge {
        network::create_tap(&network::tap_name(id), bridge)?;
    }
    let socket = layout.socket(id);
    let _ = std::fs::remove_file(&socket);
    let jail_args = match &cfg.jail {
        Some(settings) => {
            let mut files: Vec<_> = volumes.iter().map(|v| PathBuf::from(&v.path)).collect();
            files.push(layout.console(id));
            files.push(layout.console_rotated(id));
            jail::prepare(cfg, settings, id, vm.vcpus, vm.memory_mib, &files)?.args()
        }
        None => Vec::new(),
    };
    // The journal entry first: a daemon that dies before the pid is
    // recorded leaves the token, by which the next one finds this VMM.
    let token = process::new_launch_token();
    sup.store()
        .write(|t| t.set_launch_token(id, Some(&token)))?;
    let spawned = process::spawn(
        &cfg.vmm_command,
        &jail_args,
        &config_path,
        &layout.vmm_log(id),
        &token,
    );
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            if let Some(settings) = &cfg.jail {
                jail::release(cfg, settings, id);
            }
            return Err(e);
        }
    };
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let ticks = process::start_ticks(pid).unwrap_or(0);
    let recorded = VmmProcess {
        pid,
        start_ticks: ticks,
        socket: socket.to_string_lossy().into_owned(),
    };
    let generation = sup.next_generation();
    slot.process = Some(Live {
        pid,
        ticks,
        generation,
        stopping: false,
    });
    // The watcher first, so that the process is reaped whatever happens
    // to the store write below.
    watch_child(sup, id, child, generation);
    sup.store()
        .write(|t| t.set_vmm_process(id, Some(&recorded)))?;
    poll_running(sup, id, generation);
    Ok(())
}

fn write_atomically(path: &std::path::Path, data: &[u8]) -> Result<(), SupervisorError> {
    let tmp = path.with_extension("json.tmp");
    let io = |source| SupervisorError::Io {
        path: path.to_path_buf(),
        source,
    };
    crate::private::write_private(&tmp, data).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// A process ended: unless a newer one has replaced it, settle the record.
pub(super) fn on_exit(sup: &Arc<Supervisor>, id: &str, generation: u64, exit: Exit) {
    let slot = sup.slot(id);
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if slot.process.as_ref().map(|p| p.generation) != Some(generation) {
        return;
    }
    slot.process = None;
    let words = process::last_words(&sup.layout().vmm_log(id));
    if let Err(e) = settle(sup, id, &exit, words.as_deref()) {
        error!(instance_id = %id, "flint serve: instance {id}: after the VM process ended: {e}");
    }
}

fn watch_child(sup: &Arc<Supervisor>, id: &str, mut child: Child, generation: u64) {
    let sup = sup.clone();
    let id = id.to_string();
    let _ = std::thread::Builder::new()
        .name(format!("wait-{id}"))
        .spawn(move || {
            let exit = match child.wait() {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) => Exit::Code(code),
                    (None, Some(signal)) => Exit::Signal(signal),
                    (None, None) => Exit::Unknown { last_words: None },
                },
                Err(_) => Exit::Unknown { last_words: None },
            };
            on_exit(&sup, &id, generation, exit);
        });
}

/// Watches a process that is not our child (adopted): no exit status.
pub(super) fn watch_foreign(
    sup: &Arc<Supervisor>,
    id: &str,
    pid: i32,
    ticks: u64,
    generation: u64,
) {
    let sup = sup.clone();
    let id = id.to_string();
    let _ = std::thread::Builder::new()
        .name(format!("watch-{id}"))
        .spawn(move || {
            process::wait_foreign(pid, ticks);
            let words = process::last_words(&sup.layout().vmm_log(&id));
            on_exit(&sup, &id, generation, Exit::Unknown { last_words: words });
        });
}

/// pending → running once the VMM says its vCPUs run.
pub(super) fn poll_running(sup: &Arc<Supervisor>, id: &str, generation: u64) {
    let sup = sup.clone();
    let id = id.to_string();
    let _ = std::thread::Builder::new()
        .name(format!("boot-{id}"))
        .spawn(move || {
            let socket = sup.layout().socket(&id);
            while sup.is_current(&id, generation) {
                if matches!(vmm_client::vm_state(&socket), Ok(VmState::Running)) {
                    let moved = sup.store().write(|t| {
                        t.transition_instance(
                            &id,
                            &[InstanceState::Pending],
                            InstanceState::Running,
                            None,
                        )
                    });
                    match moved {
                        Ok(_) | Err(StoreError::IncorrectInstanceState { .. }) => return,
                        Err(e) => error!(instance_id = %id, "flint serve: instance {id}: {e}"),
                    }
                }
                std::thread::sleep(RUNNING_POLL);
            }
        });
}

/// Asks the process to stop: graceful (ACPI power button; the VMM itself
/// hard-stops after the timeout in vm.json) unless `force`; the daemon
/// escalates to a hard stop and then SIGKILL if it is still there.
pub(super) fn stop_process(
    sup: &Arc<Supervisor>,
    id: &str,
    slot: &mut Slot,
    live: &Live,
    force: bool,
    state: InstanceState,
) {
    let socket = sup.layout().socket(id);
    let how = if force {
        VmAction::Stop
    } else {
        VmAction::Shutdown
    };
    if vmm_client::action(&socket, how).is_err() {
        // No control socket: SIGTERM is the VMM's graceful stop too.
        let signal = if force { libc::SIGKILL } else { libc::SIGTERM };
        process::signal_if_same(live.pid, live.ticks, signal);
    }
    if live.stopping && !force {
        return;
    }
    if let Some(p) = slot.process.as_mut() {
        p.stopping = true;
    }
    let timeout = match (force, state) {
        (true, _) => Duration::ZERO,
        (false, InstanceState::ShuttingDown) => sup.cfg.terminate_timeout,
        (false, _) => sup.cfg.stop_timeout,
    };
    let sup = sup.clone();
    let id = id.to_string();
    let live = live.clone();
    let _ = std::thread::Builder::new()
        .name(format!("stop-{id}"))
        .spawn(move || escalate(&sup, &id, &live, timeout));
}

fn escalate(sup: &Arc<Supervisor>, id: &str, live: &Live, timeout: Duration) {
    let wait = |d: Duration| {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            if !sup.is_current(id, live.generation) {
                return false;
            }
            std::thread::sleep(ESCALATION_TICK);
        }
        sup.is_current(id, live.generation)
    };
    if !wait(timeout) {
        return;
    }
    warn!(instance_id = %id, "flint serve: instance {id}: no shutdown within {timeout:?}: hard stop");
    let _ = vmm_client::action(&sup.layout().socket(id), VmAction::Stop);
    if !wait(sup.cfg.kill_grace) {
        return;
    }
    warn!(instance_id = %id, "flint serve: instance {id}: the VMM ignores a hard stop: SIGKILL");
    process::signal_if_same(live.pid, live.ticks, libc::SIGKILL);
}
