//! The VM supervisor of `flint serve`: maps instance records onto `flint
//! vmm` processes.
//!
//! - The API handlers change an instance's state in the store (EC2's state
//!   machine, one transaction) and then [`Supervisor::kick`] it. A kick
//!   looks at the record as it now is and makes the processes match:
//!   pending without a process → launch one (clone the root volume on the
//!   first launch, TAP, `vm.json`, spawn); stopping / shutting-down with a
//!   process → ask it to shut down, escalating to a hard stop and then
//!   SIGKILL; without one → finish the stop or the termination.
//! - Every process has a watcher thread; when the process ends,
//!   [`outcome::after_exit`] decides the next state, in one transaction
//!   with reading the current one, so a racing API request is seen.
//! - Per instance, one mutex (its "slot") serialises launching, exit
//!   handling and stopping, so a start racing the last stop's clean-up
//!   cannot lose its TAP.
//! - VM processes live in their own session and survive the daemon; on
//!   start [`Supervisor::adopt_all`] finds them again (pid + start time +
//!   control socket) or reconciles their records (adopt.rs).

pub mod admission;
mod adopt;
pub mod disks;
pub mod jail;
pub mod layout;
pub mod limits;
pub mod network;
pub mod outcome;
pub mod process;
pub mod records;
mod settle;
pub mod types;
pub mod vm_config;
pub mod vmm_client;
pub mod volume;
mod volume_jobs;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing::{error, warn};

use thiserror::Error;

use crate::store::ips::Subnet;
use crate::store::{Store, StoreError};
use flint_contract::metadata::MetadataUpdate;
use flint_contract::socket::VmAction;
use layout::Layout;

pub use adopt::AdoptReport;

/// EC2 keeps terminated instances describable for about an hour.
pub const TERMINATED_RETENTION_MS: i64 = 60 * 60 * 1000;
/// Deleted volumes stay describable (state `deleted`) this long.
pub const DELETED_VOLUME_RETENTION_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("host networking: {0}")]
    Network(String),
    #[error("cannot start the VM process: {0}")]
    Spawn(String),
    #[error("the VM's control socket: {0}")]
    Control(String),
    #[error("instance {0} has no VM process")]
    NotRunning(String),
    #[error("VM config: {0}")]
    Config(String),
    #[error("jail: {0}")]
    Jail(String),
}

#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    pub layout: Layout,
    pub region: String,
    pub availability_zone: String,
    pub owner_id: String,
    pub subnet: Subnet,
    /// The host bridge the TAPs join; None: no host networking at all
    /// (tests with a stand-in VMM, which opens no TAP).
    pub bridge: Option<String>,
    /// Egress NAT for the subnet (network.rs); off by default.
    pub nat: bool,
    /// The program (and leading arguments) that runs one VM; the
    /// supervisor appends `--config vm.json`. Default: this binary + `vmm`.
    pub vmm_command: Vec<String>,
    /// No guest gets more memory than this (small hosts, the emulated
    /// test host), whatever its instance type says.
    pub max_memory_mib: Option<u64>,
    /// Volumes (root and data, boot-time and hot-plugged) use O_DIRECT.
    pub direct_io: bool,
    /// How long a graceful stop may take before the VMM hard-stops the VM
    /// (written into vm.json); the daemon SIGKILLs after `kill_grace` more.
    pub stop_timeout: Duration,
    /// The same for TerminateInstances (the disk is usually deleted, so
    /// waiting long for the guest buys little).
    pub terminate_timeout: Duration,
    pub kill_grace: Duration,
    /// Jail every VMM (uid, namespaces, cgroup; see jail.rs). None: VMMs
    /// run as the daemon's user (`flint serve --no-jail`, stand-in VMMs).
    pub jail: Option<jail::JailSettings>,
    /// Cap on each of an instance's two console log files (None: the
    /// VMM's default).
    pub console_log_max_bytes: Option<u64>,
    /// How far RunInstances / StartInstances may commit the host's memory
    /// and CPUs (admission.rs).
    pub admission: admission::AdmissionPolicy,
}

impl SupervisorConfig {
    /// The defaults for `data_dir` (the caller sets what `flint serve`'s
    /// options change): this binary's `vmm`, 300 s to stop, 30 s to
    /// terminate.
    pub fn new(data_dir: &std::path::Path, subnet: Subnet) -> SupervisorConfig {
        let exe = std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "flint".into());
        let vmm_command = vec![exe, "vmm".into()];
        SupervisorConfig {
            layout: Layout::new(data_dir),
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            owner_id: "000000000000".into(),
            subnet,
            bridge: Some("flintbr0".into()),
            nat: false,
            vmm_command,
            max_memory_mib: None,
            direct_io: false,
            stop_timeout: Duration::from_secs(300),
            terminate_timeout: Duration::from_secs(30),
            kill_grace: Duration::from_secs(10),
            jail: None,
            console_log_max_bytes: None,
            admission: admission::AdmissionPolicy::default(),
        }
    }

    /// The subnet's prefix length (from its canonical `A.B.C.D/NN`).
    pub fn subnet_prefix(&self) -> u8 {
        self.subnet
            .to_string()
            .rsplit_once('/')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(24)
    }

    /// The bridge's address: the gateway with the subnet's prefix.
    pub fn gateway_cidr(&self) -> String {
        format!("{}/{}", self.subnet.gateway(), self.subnet_prefix())
    }
}

/// One VM process the supervisor knows about.
#[derive(Clone, Debug)]
struct Live {
    pid: i32,
    ticks: u64,
    /// Which launch (or adoption) this is: a watcher or poller of an
    /// earlier process finds a different one and stands down.
    generation: u64,
    /// A stop escalation is already under way for this process.
    stopping: bool,
}

#[derive(Default)]
struct Slot {
    process: Option<Live>,
}

pub struct Supervisor {
    cfg: SupervisorConfig,
    /// The supervisor's own connection, for background work (watchers,
    /// launches); API handlers use theirs.
    store: Mutex<Store>,
    slots: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
    generation: AtomicU64,
}

impl Supervisor {
    /// Opens the store and the data dir's folders and sets up the host
    /// bridge (and NAT if asked). Call [`Supervisor::adopt_all`] next.
    pub fn new(cfg: SupervisorConfig) -> Result<Arc<Supervisor>, SupervisorError> {
        let layout = &cfg.layout;
        for dir in [
            layout.instances_dir(),
            layout.volumes_dir(),
            layout.snapshots_dir(),
        ] {
            crate::private::create_private_dir(&dir).map_err(|source| SupervisorError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        if let Some(settings) = &cfg.jail {
            jail::check_host(settings)?;
        }
        if let Some(bridge) = &cfg.bridge {
            network::ensure_bridge(bridge, &cfg.gateway_cidr())?;
            if cfg.nat {
                network::enable_nat(&cfg.subnet.to_string(), bridge)?;
            }
        }
        let store = Store::open(layout.data_dir())?;
        Ok(Arc::new(Supervisor {
            cfg,
            store: Mutex::new(store),
            slots: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(1),
        }))
    }

    pub fn config(&self) -> &SupervisorConfig {
        &self.cfg
    }

    pub fn layout(&self) -> &Layout {
        &self.cfg.layout
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, id: &str) -> Arc<Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(id.to_string()).or_default().clone()
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether `generation` is still the live process of `id`.
    fn is_current(&self, id: &str, generation: u64) -> bool {
        let slot = self.slot(id);
        let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.process
            .as_ref()
            .is_some_and(|p| p.generation == generation)
    }

    /// Makes the processes of `id` match its record, on a thread of its
    /// own (a launch clones a disk; a request must not wait for that).
    /// `force`: a stop goes straight to a hard stop.
    pub fn kick(self: &Arc<Self>, id: &str, force: bool) {
        let sup = self.clone();
        let owned = id.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("kick-{id}"))
            .spawn(move || sup.reconcile(&owned, force));
        if let Err(e) = spawned {
            error!(instance_id = %id, "flint serve: cannot start a thread for an instance: {e}");
        }
    }

    /// What [`Supervisor::kick`] runs; callable directly (tests, adoption).
    pub fn reconcile(self: &Arc<Self>, id: &str, force: bool) {
        if let Err(e) = watch::reconcile(self, id, force) {
            error!(instance_id = %id, "flint serve: instance {id}: {e}");
        }
    }

    /// RebootInstances: a reset of the running VM (the VMM boots it again).
    pub fn reboot(&self, id: &str) -> Result<(), SupervisorError> {
        if !self.has_process(id) {
            return Err(SupervisorError::NotRunning(id.to_string()));
        }
        vmm_client::action(&self.layout().socket(id), VmAction::Reboot)
    }

    /// Pushes a `MetadataUpdate` to the running VM's metadata service.
    /// Without a process there is nothing to push: the next start writes
    /// the stored options into vm.json.
    pub fn push_metadata(
        &self,
        id: &str,
        update: &MetadataUpdate,
    ) -> Result<bool, SupervisorError> {
        if !self.has_process(id) {
            return Ok(false);
        }
        vmm_client::update_metadata(&self.layout().socket(id), update)?;
        Ok(true)
    }

    pub fn has_process(&self, id: &str) -> bool {
        let slot = self.slot(id);
        let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.process.is_some()
    }

    /// The last 64 KiB of the instance's serial console (what EC2's
    /// GetConsoleOutput returns), empty if it has none yet.
    pub fn console_output(&self, id: &str) -> Vec<u8> {
        let layout = self.layout();
        console_tail(&layout.console(id), &layout.console_rotated(id), 64 * 1024)
    }

    /// Deletes terminated records older than the retention (and their
    /// instance folders); runs from a janitor thread.
    pub fn purge_terminated(&self) -> Result<Vec<String>, SupervisorError> {
        let before = crate::store::now_ms() - TERMINATED_RETENTION_MS;
        let ids = self.store().write(|t| t.purge_terminated(before))?;
        for id in &ids {
            let _ = std::fs::remove_dir_all(self.layout().instance_dir(id));
            self.slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        }
        Ok(ids)
    }

    /// Starts the janitor: every minute, purge old terminated records.
    pub fn start_janitor(self: &Arc<Self>) {
        let sup = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("janitor".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(60));
                    let Some(sup) = sup.upgrade() else { return };
                    if let Err(e) = sup.purge_terminated() {
                        warn!("flint serve: purging terminated instances: {e}");
                    }
                    sup.purge_deleted_volumes();
                }
            });
    }
}

/// The last `max` bytes of a console log that rotates between `current`
/// and `rotated` (the VMM's console_log): the newer file (later mtime; on
/// a tie the shorter, as the VMM rotates as soon as a file is full) after
/// the older one's tail.
pub fn console_tail(current: &std::path::Path, rotated: &std::path::Path, max: u64) -> Vec<u8> {
    let stamp = |p: &std::path::Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), std::cmp::Reverse(m.len())))
    };
    let (newer, older) = match (stamp(current), stamp(rotated)) {
        (Some(a), Some(b)) if b > a => (rotated, Some(current)),
        (Some(_), Some(_)) => (current, Some(rotated)),
        (None, Some(_)) => (rotated, None),
        _ => (current, None),
    };
    let mut out = process::read_tail(newer, max).unwrap_or_default();
    let missing = max.saturating_sub(out.len() as u64);
    if missing > 0
        && let Some(older) = older
    {
        let mut head = process::read_tail(older, missing).unwrap_or_default();
        head.extend_from_slice(&out);
        out = head;
    }
    out
}

#[cfg(test)]
mod console_tail_tests {
    use super::console_tail;

    #[test]
    fn the_tail_spans_the_rotation_boundary_in_order() {
        let dir = std::env::temp_dir().join(format!("flint-console-tail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cur, rot) = (dir.join("console.log"), dir.join("console.log.1"));
        // The VMM rotated: console.log is the older, full one; .1 the newer.
        std::fs::write(&cur, b"aaaaaaaaaaOLDER").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&rot, b"NEWER").unwrap();
        assert_eq!(console_tail(&cur, &rot, 10), b"OLDERNEWER");
        assert_eq!(console_tail(&cur, &rot, 3), b"WER");
        // Equal mtimes: the shorter is the newer (the older one is full).
        let t = std::fs::metadata(&cur).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&rot)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert_eq!(console_tail(&cur, &rot, 10), b"OLDERNEWER");
        // Only one file (a stand-in VMM, or before the first rotation).
        std::fs::remove_file(&rot).unwrap();
        assert_eq!(console_tail(&cur, &rot, 5), b"OLDER");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
