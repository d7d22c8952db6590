//! Cross-thread plumbing of a running VMM: fatal faults reported by any
//! thread, and termination signals, each waking the main loop through an
//! eventfd.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::signal::register_signal_handler;

/// The first fatal error any thread hit; the main loop ends the VM with it.
#[derive(Clone)]
pub struct Fault {
    inner: Arc<(Mutex<Option<String>>, EventFd)>,
}

impl Fault {
    pub fn new() -> std::io::Result<Self> {
        Ok(Fault {
            inner: Arc::new((Mutex::new(None), EventFd::new(EFD_NONBLOCK)?)),
        })
    }

    pub fn report(&self, reason: String) {
        let mut slot = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(reason);
        let _ = self.inner.1.write(1);
    }

    pub fn get(&self) -> Option<String> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn event(&self) -> &EventFd {
        &self.inner.1
    }
}

/// The eventfd SIGTERM/SIGINT write to (a raw fd, because only write(2)
/// is safe in a signal handler).
static TERM_EVENT_FD: AtomicI32 = AtomicI32::new(-1);

/// Routes SIGTERM and SIGINT to an eventfd the main loop watches.
pub struct TermSignals {
    event: EventFd,
}

impl TermSignals {
    pub fn install() -> std::io::Result<Self> {
        extern "C" fn on_term(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
            let fd = TERM_EVENT_FD.load(Ordering::Relaxed);
            if fd >= 0 {
                let one: u64 = 1;
                // SAFETY: write(2) is async-signal-safe; `fd` is the eventfd
                // kept open by TermSignals for the life of the process, and
                // the buffer is a live u64 of the size eventfd expects.
                unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
            }
        }
        let event = EventFd::new(EFD_NONBLOCK)?;
        TERM_EVENT_FD.store(std::os::fd::AsRawFd::as_raw_fd(&event), Ordering::Relaxed);
        for signal in [libc::SIGTERM, libc::SIGINT] {
            register_signal_handler(signal, on_term)
                .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
        }
        Ok(TermSignals { event })
    }

    pub fn event(&self) -> &EventFd {
        &self.event
    }
}
