//! vCPU threads: run KVM_RUN and dispatch port-I/O and MMIO exits to the
//! buses. A vCPU stops when asked (a stop flag plus a signal that interrupts
//! KVM_RUN) or when the guest powers off, resets or breaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::warn;

use kvm_bindings::{KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

use crate::bus::Bus;
use crate::power::{PowerAction, PowerControl};
use crate::runtime::Fault;

const EFER_LMA: u64 = 1 << 10;

/// The signal that knocks a vCPU thread out of KVM_RUN.
pub fn kick_signal() -> i32 {
    SIGRTMIN()
}

/// Installs the (empty) kick handler: its only job is to make KVM_RUN
/// return EINTR. Must run once before vCPU threads start.
pub fn install_kick_handler() -> Result<(), vmm_sys_util::errno::Error> {
    extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}
    register_signal_handler(kick_signal(), on_kick)
}

pub struct VcpuContext {
    pub index: u8,
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub power: PowerControl,
    pub fault: Fault,
    pub stop: Arc<AtomicBool>,
    /// Set when this vCPU is found in 64-bit mode as it stops.
    pub long_mode: Arc<AtomicBool>,
}

pub struct VcpuThread {
    handle: JoinHandle<()>,
}

impl VcpuThread {
    pub fn spawn(
        mut fd: VcpuFd,
        ctx: VcpuContext,
        before_run: Box<dyn FnOnce() -> Result<(), String> + Send>,
    ) -> std::io::Result<Self> {
        let handle = std::thread::Builder::new()
            .name(format!("vcpu{}", ctx.index))
            .spawn(move || {
                if let Err(e) = before_run() {
                    ctx.fault.report(format!("vCPU {}: {e}", ctx.index));
                    return;
                }
                run_loop(&mut fd, &ctx);
                if fd.get_sregs().is_ok_and(|s| s.efer & EFER_LMA != 0) {
                    ctx.long_mode.store(true, Ordering::Release);
                }
            })?;
        Ok(VcpuThread { handle })
    }

    /// Stops the thread: the caller has set the shared stop flag; keep
    /// kicking until the thread has left KVM_RUN for good (a kick that lands
    /// between the flag check and KVM_RUN is simply repeated).
    pub fn join(self) {
        while !self.handle.is_finished() {
            let _ = self.handle.kill(kick_signal());
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.handle.join();
    }
}

fn run_loop(fd: &mut VcpuFd, ctx: &VcpuContext) {
    while !ctx.stop.load(Ordering::Acquire) {
        match fd.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                if !ctx.pio.read(u64::from(port), data) {
                    data.fill(0xff);
                }
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                ctx.pio.write(u64::from(port), data);
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if !ctx.mmio.read(addr, data) {
                    data.fill(0xff);
                }
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                ctx.mmio.write(addr, data);
            }
            Ok(VcpuExit::Shutdown) => {
                // A triple fault: a PC resets. Said on stderr, because
                // the guest cannot: a reset nobody asked for is a bug
                // somewhere, and this tells it from a requested reboot.
                warn!(
                    "flint vmm: vCPU {}: triple fault (KVM shutdown exit); resetting the VM",
                    ctx.index
                );
                ctx.power.request(PowerAction::Reset);
                return;
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => ctx.power.request(PowerAction::PowerOff),
                    KVM_SYSTEM_EVENT_RESET => ctx.power.request(PowerAction::Reset),
                    other => ctx
                        .fault
                        .report(format!("vCPU {}: unknown system event {other}", ctx.index)),
                }
                return;
            }
            Ok(VcpuExit::Hlt) => {
                // With the in-kernel LAPIC a halt never reaches us; if it
                // does, the guest is waiting for nothing we can deliver.
                ctx.fault
                    .report(format!("vCPU {}: halted with interrupts off", ctx.index));
                return;
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                ctx.fault.report(format!(
                    "vCPU {}: KVM failed to enter the guest (reason {reason:#x}, cpu {cpu})",
                    ctx.index
                ));
                return;
            }
            Ok(VcpuExit::InternalError) => {
                ctx.fault
                    .report(format!("vCPU {}: KVM internal error", ctx.index));
                return;
            }
            Ok(other) => {
                ctx.fault
                    .report(format!("vCPU {}: unexpected exit {other:?}", ctx.index));
                return;
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => {
                ctx.fault
                    .report(format!("vCPU {}: KVM_RUN failed: {e}", ctx.index));
                return;
            }
        }
    }
}
