//! Re-adoption when the daemon starts: every instance whose record says a
//! VM process should exist (pending, running, stopping, shutting-down) is
//! matched with reality.
//!
//! - The recorded pid is alive and has the recorded start time: it is our
//!   VM (a recycled pid has another start time). Watch it; finish what the
//!   record says was under way (a stop, a boot).
//! - It is gone: the VM ended while nobody watched. Settle the record as
//!   if we had seen it end, from the VMM's last words on stderr (a crash
//!   → stopped with Server.InternalError; silence → a power-off).
//! - No process recorded, but a launch journalled: the daemon died between
//!   spawning a VMM and recording its pid. The VMM carries the launch's
//!   token in its environment: found, it is recorded and adopted as above.
//! - Pending with no process recorded or found: the daemon died
//!   mid-launch; launch again.

use std::sync::Arc;
use tracing::{error, warn};

use super::outcome::Exit;
use super::{Live, Supervisor, SupervisorError, process, settle, vmm_client, watch};
use crate::store::instances::{InstanceFilter, InstanceState};
use crate::store::processes::VmmProcess;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdoptReport {
    /// Live VM processes watched again.
    pub adopted: Vec<String>,
    /// Records settled because their process was gone.
    pub reconciled: Vec<String>,
    /// Pending records launched (again).
    pub launched: Vec<String>,
}

impl Supervisor {
    pub fn adopt_all(self: &Arc<Self>) -> Result<AdoptReport, SupervisorError> {
        let filter = InstanceFilter {
            states: ["pending", "running", "stopping", "shutting-down"]
                .map(String::from)
                .to_vec(),
            ..InstanceFilter::default()
        };
        let records = self.store().read(|t| t.list_instances(&filter))?;
        let mut report = AdoptReport::default();
        for record in records {
            let id = record.id.clone();
            match self.adopt_one(&id, record.state) {
                Ok(Adopted::Live) => report.adopted.push(id),
                Ok(Adopted::Settled) => report.reconciled.push(id),
                Ok(Adopted::Launched) => report.launched.push(id),
                Err(e) => error!(instance_id = %id, "flint serve: re-adopting {id}: {e}"),
            }
        }
        Ok(report)
    }

    fn adopt_one(
        self: &Arc<Self>,
        id: &str,
        state: InstanceState,
    ) -> Result<Adopted, SupervisorError> {
        // (The store's guard lives as long as a match on it: read first.)
        let stored = self.store().read(|t| t.vmm_process(id))?;
        let recorded = match stored {
            Some(recorded) => Some(recorded),
            None => self.find_journalled(id)?,
        };
        let Some(recorded) = recorded else {
            if state == InstanceState::Pending {
                self.reconcile(id, false);
                return Ok(Adopted::Launched);
            }
            settle::settle(self, id, &Exit::Unknown { last_words: None }, None)?;
            return Ok(Adopted::Settled);
        };
        let slot = self.slot(id);
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if !process::is_same_process(recorded.pid, recorded.start_ticks) {
            let words = process::last_words(&self.layout().vmm_log(id));
            let exit = Exit::Unknown {
                last_words: words.clone(),
            };
            settle::settle(self, id, &exit, words.as_deref())?;
            return Ok(Adopted::Settled);
        }
        if let Err(e) = vmm_client::vm_state(&self.layout().socket(id)) {
            // Alive with the right start time is our VM even if its socket
            // is slow to answer; it is watched (and stopped if asked).
            warn!(instance_id = %id, "flint serve: instance {id}: adopted, but {e}");
        }
        let generation = self.next_generation();
        let live = Live {
            pid: recorded.pid,
            ticks: recorded.start_ticks,
            generation,
            stopping: false,
        };
        slot.process = Some(live.clone());
        watch::watch_foreign(self, id, live.pid, live.ticks, generation);
        match state {
            InstanceState::Pending => watch::poll_running(self, id, generation),
            InstanceState::Stopping | InstanceState::ShuttingDown => {
                watch::stop_process(self, id, &mut slot, &live, false, state);
            }
            _ => {}
        }
        Ok(Adopted::Live)
    }
}

impl Supervisor {
    /// A VMM whose launch was journalled but whose pid never made it to
    /// the store (the daemon died in between): found by its launch token
    /// and recorded now, so that it is adopted rather than launched twice.
    fn find_journalled(&self, id: &str) -> Result<Option<VmmProcess>, SupervisorError> {
        // (Its own statement: the store's guard must be gone before the
        // writes below.)
        let journalled = self.store().read(|t| t.launch_token(id))?;
        let Some(token) = journalled else {
            return Ok(None);
        };
        let Some((pid, start_ticks)) = process::find_launched(&token) else {
            self.store().write(|t| t.set_launch_token(id, None))?;
            return Ok(None);
        };
        let found = VmmProcess {
            pid,
            start_ticks,
            socket: self.layout().socket(id).to_string_lossy().into_owned(),
        };
        self.store()
            .write(|t| t.set_vmm_process(id, Some(&found)))?;
        warn!(instance_id = %id, pid, "flint serve: instance {id}: found its VMM (pid {pid}) by the launch journal");
        Ok(Some(found))
    }
}

enum Adopted {
    Live,
    Settled,
    Launched,
}
