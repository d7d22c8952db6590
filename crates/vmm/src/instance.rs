//! One boot of the VM: builds memory, the KVM VM, devices, ACPI tables and
//! the kernel; runs the vCPUs and the device event loop until the guest
//! powers off or resets, a stop is requested, or something breaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::loop_policy::LoopPolicy;
use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use thiserror::Error;
use vmm_sys_util::epoll::EventSet;

use crate::api::{ApiShared, VmRequest as Request};
use crate::boot::{self, BootError};
use crate::cpu::{self, CpuError};
use crate::device_manager::{DeviceError, Devices, HostResources};
use crate::events::Subscriber;
use crate::firmware::rom::{self, RomError};
use crate::memory::{self, MemoryError};
use crate::power::{PowerAction, PowerControl};
use crate::runtime::{Fault, TermSignals};
use crate::seccomp::{self, ThreadKind};
use crate::vcpu::{VcpuContext, VcpuThread};
use crate::vm::{Vm, VmError};
use flint_contract::config::VmConfig;
use flint_contract::socket::VmState;

#[derive(Debug, Error)]
pub enum InstanceError {
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Cpu(#[from] CpuError),
    #[error("cannot {what}: {source}")]
    Setup {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("KVM: {0}")]
    Kvm(kvm_ioctls::Error),
    #[error("event loop: {0:?}")]
    EventLoop(event_manager::Error),
    #[error("device set-up: {0}")]
    Device(String),
    #[error(transparent)]
    Devices(#[from] DeviceError),
    #[error(transparent)]
    Firmware(#[from] RomError),
}

/// How one boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    PoweredOff,
    Reset,
    /// A firmware boot reset before an operating system started.
    ResetBeforeOs,
    /// Stopped without the guest's cooperation.
    HardStopped(String),
    Faulted(String),
}

/// Wakes the main loop for the eventfds it cares about; the main loop then
/// looks at the state behind them.
struct Wakeup {
    fds: Vec<i32>,
}

impl MutEventSubscriber for Wakeup {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes from an eventfd we registered into a live
        // buffer of 8 bytes. The counter is just drained; errors
        // (EAGAIN) are harmless.
        unsafe { libc::read(events.fd(), buf.as_mut_ptr().cast(), 8) };
    }
    fn init(&mut self, ops: &mut EventOps) {
        for &fd in &self.fds {
            let _ = ops.add(Events::with_data_raw(fd, 0, EventSet::IN));
        }
    }
}

/// Things the main loop needs from outside one boot.
pub struct Controls<'a> {
    pub term: &'a TermSignals,
    pub api: Option<&'a ApiShared>,
    pub host: HostResources<'a>,
}

pub fn boot_and_run(config: &VmConfig, controls: &Controls) -> Result<Outcome, InstanceError> {
    let setup = |what| move |source| InstanceError::Setup { what, source };
    let memory_bytes = config.memory_mib << 20;
    let mem = memory::create_guest_memory(memory_bytes)?;
    let vm = Vm::new(&mem)?;
    let power = PowerControl::new().map_err(setup("create an eventfd"))?;
    let fault = Fault::new().map_err(setup("create an eventfd"))?;
    let vm = Arc::new(vm);
    if let Some(api) = controls.api {
        api.set_vm(&vm);
    }
    let mut devices = Devices::build(&vm, &mem, config, &power, controls.host)?;
    let rsdp = devices.rsdp;
    let (pio, mmio) = (devices.pio.clone(), devices.mmio.clone());
    let mut subscribers: Vec<Subscriber> = std::mem::take(&mut devices.subscribers);

    // A direct boot starts in the kernel; a firmware boot at the reset
    // vector of the BIOS, which must stay mapped until the vCPUs are gone.
    let (entry, _rom) = match (&config.kernel, rsdp, &config.image) {
        (Some(kernel), Some(rsdp), _) => (
            Some(boot::load_kernel(&mem, kernel, memory_bytes, rsdp)?),
            None,
        ),
        (None, None, Some(image)) => (None, Some(rom::load(&vm, &mem, &image.firmware)?)),
        _ => return Err(InstanceError::Device("no boot source configured".into())),
    };

    let mut supported = vm
        .kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(InstanceError::Kvm)?;
    // KVM emulates the TSC-deadline timer in its in-kernel LAPIC but leaves
    // advertising it to userspace (KVM_CAP_TSC_DEADLINE_TIMER).
    let tsc_deadline = vm.kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
    crate::cpu::set_tsc_deadline(&mut supported, tsc_deadline);
    let stop = Arc::new(AtomicBool::new(false));
    let long_mode = Arc::new(AtomicBool::new(false));
    let mut vcpus = Vec::new();
    for index in 0..config.vcpus {
        let fd = vm
            .fd
            .create_vcpu(u64::from(index))
            .map_err(InstanceError::Kvm)?;
        cpu::configure_vcpu(&fd, index, config.vcpus, &supported, &mem, entry)?;
        let ctx = VcpuContext {
            index,
            pio: pio.clone(),
            mmio: mmio.clone(),
            power: power.clone(),
            fault: fault.clone(),
            stop: stop.clone(),
            long_mode: long_mode.clone(),
        };
        vcpus.push(
            VcpuThread::spawn(fd, ctx, vcpu_filter(config.seccomp))
                .map_err(setup("start a vCPU thread"))?,
        );
    }

    let mut events: EventManager<Subscriber> =
        EventManager::new().map_err(InstanceError::EventLoop)?;
    use std::os::fd::AsRawFd;
    events.add_subscriber(Box::new(Wakeup {
        fds: vec![
            power.event().as_raw_fd(),
            fault.event().as_raw_fd(),
            controls.term.event().as_raw_fd(),
            devices.hotplug.event().as_raw_fd(),
        ]
        .into_iter()
        .chain(controls.api.map(|a| a.event().as_raw_fd()))
        .collect(),
    }));
    for s in subscribers.drain(..) {
        events.add_subscriber(s);
    }
    devices.disks.register(&mut events);

    if let Some(api) = controls.api {
        api.set_state(VmState::Running);
    }
    let outcome = main_loop(&mut events, config, &power, &fault, controls, &mut devices);
    stop.store(true, Ordering::Release);
    for vcpu in vcpus {
        vcpu.join();
    }
    // Firmware and bootloaders run in 16/32-bit mode; an x86_64 OS resets
    // from 64-bit mode. A firmware boot that resets before any vCPU got
    // there never started an OS (SeaBIOS: "No bootable device").
    match outcome {
        Ok(Outcome::Reset) if config.boots_firmware() && !long_mode.load(Ordering::Acquire) => {
            Ok(Outcome::ResetBeforeOs)
        }
        other => other,
    }
}

fn main_loop(
    events: &mut EventManager<Subscriber>,
    config: &VmConfig,
    power: &PowerControl,
    fault: &Fault,
    controls: &Controls,
    devices: &mut Devices,
) -> Result<Outcome, InstanceError> {
    let mut shutdown_deadline: Option<Instant> = None;
    let mut policy = LoopPolicy::new(devices.io_work.clone(), config.io_batching);
    loop {
        policy.before_sleep();
        events
            .run_with_timeout(200)
            .map_err(InstanceError::EventLoop)?;
        if let Some(reason) = fault.get() {
            return Ok(Outcome::Faulted(reason));
        }
        match power.pending() {
            Some(PowerAction::PowerOff) => return Ok(Outcome::PoweredOff),
            Some(PowerAction::Reset) => return Ok(Outcome::Reset),
            None => {}
        }
        // Ejections first: a slot the guest let go of is free for an attach.
        devices.disks.collect_ejected(events);
        devices.disks.poll_hotplug(Instant::now());
        while let Some(command) = controls.api.and_then(|a| a.next_disk_command()) {
            let result = devices.disks.execute(command.op, events);
            // The caller may have given up; nothing to undo then.
            let _ = command.reply.send(result);
        }
        let mut request = controls.api.and_then(|a| a.next_request());
        if controls.term.event().read().is_ok() {
            request = Some(Request::GracefulShutdown);
        }
        match request {
            Some(Request::HardStop) => {
                return Ok(Outcome::HardStopped("stop requested".into()));
            }
            Some(Request::Reset) => return Ok(Outcome::Reset),
            Some(Request::GracefulShutdown) if shutdown_deadline.is_none() => {
                if let Some(api) = controls.api {
                    api.set_state(VmState::ShuttingDown);
                }
                devices.pm.press_power_button();
                shutdown_deadline =
                    Some(Instant::now() + Duration::from_secs(config.shutdown_timeout_s));
            }
            _ => {}
        }
        if shutdown_deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Outcome::HardStopped(format!(
                "the guest did not shut down within {} s",
                config.shutdown_timeout_s
            )));
        }
    }
}

/// What a vCPU thread does before its first KVM_RUN.
fn vcpu_filter(enabled: bool) -> Box<dyn FnOnce() -> Result<(), String> + Send> {
    if enabled {
        Box::new(|| seccomp::install(ThreadKind::Vcpu).map_err(|e| e.to_string()))
    } else {
        Box::new(|| Ok(()))
    }
}
