//! `flint vmm` from start to exit: validates the config, boots the VM
//! (again after each guest reset, unless told to exit), and turns the way
//! it ended into the process exit code.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tracing::error;

use crate::api::{self, ApiShared};
use crate::config::VmConfigExt;
use crate::device_manager::HostResources;
use crate::devices::virtio::net::tap::Tap;
use crate::disks::DiskTable;
use crate::imds::Imds;
use crate::instance::{self, Controls, Outcome};
use crate::jail::{self, JailRequest};
use crate::runtime::TermSignals;
use crate::seccomp::{self, ThreadKind};
use crate::vcpu;
use flint_contract::config::{RebootAction, VmConfig};
use flint_contract::exit::{
    EXIT_CONFIG, EXIT_FAILURE, EXIT_HARD_STOP, EXIT_NO_OS, EXIT_POWEROFF, EXIT_REBOOT,
};
use flint_contract::socket::{VmState, VmStatus};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;

/// Firmware boots that reset before an OS started, in a row, before giving
/// up: one may be a bootloader's own reboot, two is SeaBIOS retrying a disk
/// that cannot boot.
const MAX_RESETS_BEFORE_OS: u32 = 2;

fn fail(code: u8, reason: &str) -> ExitCode {
    error!("flint vmm: {reason}");
    ExitCode::from(code)
}

pub fn run(mut config: VmConfig, jail: Option<JailRequest>) -> ExitCode {
    if let Err(e) = config.validate() {
        return fail(EXIT_CONFIG, &e.to_string());
    }
    // Jailed: the TAPs, the control socket and /dev/kvm are opened first,
    // as root in the host's namespaces; then the jail; then the rest, as
    // without a jail.
    let mut early_taps = None;
    let mut early_listener = None;
    if let Some(request) = &jail {
        match enter_jail(&mut config, request) {
            Ok((taps, listener)) => {
                early_taps = Some(taps);
                early_listener = listener;
            }
            Err(e) => return fail(EXIT_CONFIG, &format!("jail: {e}")),
        }
        if request.selftest {
            crate::jail::selftest::run(&request.deny);
        }
    }
    let term = match TermSignals::install() {
        Ok(t) => t,
        Err(e) => return fail(EXIT_CONFIG, &format!("cannot install signal handlers: {e}")),
    };
    if let Err(e) = vcpu::install_kick_handler() {
        return fail(
            EXIT_CONFIG,
            &format!("cannot install the vCPU kick handler: {e}"),
        );
    }
    // The disks outlive each boot: hot-plugged ones stay across reboots,
    // and every disk's volume (limits, counters) until it is detached.
    let disks = match DiskTable::from_config(&config) {
        Ok(t) => Arc::new(t),
        Err(e) => return fail(EXIT_CONFIG, &format!("disks: {e}")),
    };
    let api = match &config.api_socket {
        Some(path) => {
            let shared = match ApiShared::new(VmStatus {
                state: VmState::Starting,
                boots: 0,
                vcpus: config.vcpus,
                memory_mib: config.memory_mib,
                pid: std::process::id(),
                msi_gsis: 0,
            }) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &format!("cannot create an eventfd: {e}")),
            };
            shared.set_disks(disks.clone());
            let started = match early_listener.take() {
                Some(listener) => api::serve_on(listener, shared.clone(), config.seccomp),
                None => api::start(path, shared.clone(), config.seccomp),
            };
            if let Err(e) = started {
                return fail(EXIT_CONFIG, &e.to_string());
            }
            Some(shared)
        }
        None => None,
    };
    // TAPs and the metadata service live as long as the process (across
    // guest reboots); TAPs are opened before the seccomp filter forbids
    // sockets (setting a TAP's link up needs one).
    let taps = match early_taps.map_or_else(|| open_taps(&config), Ok) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let imds = match config.metadata.clone().map(Imds::new).transpose() {
        Ok(i) => i.map(|i| Arc::new(Mutex::new(i))),
        Err(e) => return fail(EXIT_CONFIG, &format!("metadata: {e}")),
    };
    if let (Some(api), Some(imds)) = (&api, &imds) {
        api.set_imds(imds.clone());
    }
    let host = HostResources {
        taps: &taps,
        imds: imds.as_ref(),
        disks: Some(&disks),
    };
    // After the API thread exists (it has its own filter) and before the
    // first boot, so a missing boot-path rule fails at once, not on reboot.
    if config.seccomp
        && let Err(e) = seccomp::install(ThreadKind::Vmm)
    {
        return fail(EXIT_CONFIG, &e.to_string());
    }
    let code = run_boots(&config, &term, api.as_deref(), host);
    if let Some(path) = &config.api_socket {
        let _ = std::fs::remove_file(path);
    }
    code
}

/// Opens what the jail cannot reach (TAPs, the control socket, /dev/kvm)
/// and enters the jail with them. Returns in the jailed VMM.
fn enter_jail(
    config: &mut VmConfig,
    request: &JailRequest,
) -> Result<(Vec<Arc<Tap>>, Option<UnixListener>), String> {
    let binds = jail::setup::prepare(config, request).map_err(|e| e.to_string())?;
    if let Some(path) = jail::setup::unreachable_file(&binds, request.uid, request.gid) {
        return Err(format!(
            "{} is not accessible to the jail uid {} (chown it)",
            path.display(),
            request.uid
        ));
    }
    let taps = open_taps(config)?;
    let listener = match &config.api_socket {
        Some(path) => Some(api::bind(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let kvm = jail::open_kvm().map_err(|e| e.to_string())?;
    let mut keep: Vec<RawFd> = taps.iter().map(|t| t.as_raw_fd()).collect();
    keep.extend(listener.as_ref().map(|l| l.as_raw_fd()));
    keep.push(kvm);
    let spec = jail::setup::spec(config, request, binds, keep);
    jail::enter(&spec).map_err(|e| e.to_string())?;
    Ok((taps, listener))
}

fn open_taps(config: &VmConfig) -> Result<Vec<Arc<Tap>>, String> {
    config
        .nics
        .iter()
        .map(|nic| Tap::open(&nic.tap).map(Arc::new).map_err(|e| e.to_string()))
        .collect()
}

fn run_boots(
    config: &VmConfig,
    term: &TermSignals,
    api: Option<&ApiShared>,
    host: HostResources,
) -> ExitCode {
    let controls = Controls { term, api, host };
    let mut boots = 0u32;
    let mut resets_before_os = 0u32;
    loop {
        boots += 1;
        if let Some(api) = api {
            let mut status = api.status.lock().unwrap_or_else(|e| e.into_inner());
            status.boots = boots;
            status.state = VmState::Starting;
        }
        let outcome = match instance::boot_and_run(config, &controls) {
            Ok(outcome) => outcome,
            // A boot that could not even be built: the first one is a
            // config/start-up problem; later ones are runtime failures.
            Err(e) if boots == 1 => return fail(EXIT_CONFIG, &e.to_string()),
            Err(e) => return fail(EXIT_FAILURE, &e.to_string()),
        };
        if outcome == Outcome::ResetBeforeOs {
            resets_before_os += 1;
            if resets_before_os >= MAX_RESETS_BEFORE_OS {
                return fail(
                    EXIT_NO_OS,
                    &format!(
                        "no operating system started: the firmware reset {resets_before_os} times \
                         before any vCPU reached 64-bit mode (no bootable disk? see the console)"
                    ),
                );
            }
        } else {
            resets_before_os = 0;
        }
        match outcome {
            Outcome::PoweredOff => return ExitCode::from(EXIT_POWEROFF),
            Outcome::ResetBeforeOs if config.on_reboot == RebootAction::Restart => continue,
            Outcome::Reset if config.on_reboot == RebootAction::Restart => continue,
            Outcome::Reset | Outcome::ResetBeforeOs => {
                return fail(EXIT_REBOOT, "the guest rebooted");
            }
            Outcome::HardStopped(reason) => {
                return fail(EXIT_HARD_STOP, &format!("hard stop: {reason}"));
            }
            Outcome::Faulted(reason) => return fail(EXIT_FAILURE, &reason),
        }
    }
}
