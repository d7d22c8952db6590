//! Guest-initiated power actions (ACPI S5, reset register, i8042 reset
//! pulse) travel from the device that saw them to the VMM's main loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// The guest powered off (ACPI S5).
    PowerOff = 1,
    /// The guest asked for a reset (reboot).
    Reset = 2,
}

/// Cheap to clone; every clone signals the same main loop.
#[derive(Clone)]
pub struct PowerControl {
    inner: Arc<Inner>,
}

struct Inner {
    action: AtomicU8,
    event: EventFd,
}

impl PowerControl {
    pub fn new() -> std::io::Result<Self> {
        Ok(PowerControl {
            inner: Arc::new(Inner {
                action: AtomicU8::new(0),
                event: EventFd::new(EFD_NONBLOCK)?,
            }),
        })
    }

    /// Records the request and wakes the main loop. A power-off wins over a
    /// reset requested at the same time.
    pub fn request(&self, action: PowerAction) {
        self.inner.action.fetch_or(action as u8, Ordering::SeqCst);
        let _ = self.inner.event.write(1);
    }

    /// The request made so far, if any (not cleared).
    pub fn pending(&self) -> Option<PowerAction> {
        let requested = self.inner.action.load(Ordering::SeqCst);
        if requested & PowerAction::PowerOff as u8 != 0 {
            Some(PowerAction::PowerOff)
        } else if requested & PowerAction::Reset as u8 != 0 {
            Some(PowerAction::Reset)
        } else {
            None
        }
    }

    /// Clears the request (after a reset has been carried out).
    pub fn clear(&self) {
        self.inner.action.store(0, Ordering::SeqCst);
        let _ = self.inner.event.read();
    }

    /// Readable when a request is pending.
    pub fn event(&self) -> &EventFd {
        &self.inner.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_off_wins_over_reset_and_clear_forgets() {
        let power = PowerControl::new().unwrap();
        assert_eq!(power.pending(), None);
        power.request(PowerAction::Reset);
        assert_eq!(power.pending(), Some(PowerAction::Reset));
        power.clone().request(PowerAction::PowerOff);
        assert_eq!(power.pending(), Some(PowerAction::PowerOff));
        assert_eq!(power.event().read().unwrap(), 2);
        power.clear();
        assert_eq!(power.pending(), None);
    }
}
