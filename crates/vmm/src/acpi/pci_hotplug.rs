//! The ACPI PCI hotplug controller: the registers the DSDT's PCNT method and
//! slot `_EJ0` methods use (QEMU's PIIX4 layout, which Linux's built-in
//! acpiphp drives through ACPI notifications), at `PORT_PCI_HOTPLUG`:
//!
//! ```text
//! +0 PCIU  u32, read: slots with a new device (Device Check); reading clears
//! +4 PCID  u32, read: slots the host asks the guest to eject (Eject Request);
//!          stays set until the guest ejects the slot
//! +8 B0EJ  u32, write: slot bits the guest has let go of (from _EJ0)
//! ```
//! The host side ([`PciHotplug::request_insert`] / [`PciHotplug::request_eject`])
//! sets a bit and raises GPE [`GPE_PCI_HOTPLUG`]; `\_GPE._E01` runs PCNT,
//! which notifies the slots. An eject takes the device off PCI bus 0 at
//! once, in the vCPU thread that wrote B0EJ, so the guest sees an empty
//! slot immediately; the VMM's main loop, woken through [`PciHotplug::event`],
//! then finishes the removal (event loop, host resources).
//!
//! A GPE can be missed: one raised while firmware or a bootloader runs is
//! never looked at, and ACPICA clears a GPE's status when the OS enables
//! it, so one raised before the guest's ACPI is up is lost. PCIU and PCID
//! keep the requests, so [`PciHotplug::resignal`] raises the GPE again
//! (after 1 s, then backing off to 16 s) until the guest has acted on them.
//!
//! Only a slot the host asked to eject is ejected: a B0EJ write for any
//! other slot (a guest that powers a slot off by itself, or a late second
//! eject notification for a slot that has a new device by now) changes
//! nothing. Whether a disk is attached is the host's decision, as on EC2.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thiserror::Error;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::dsdt::GPE_PCI_HOTPLUG;
use super::pm::PmDevice;
use crate::bus::BusDevice;
use crate::layout::{PCI_HOTPLUG_LEN, PCI_SLOTS};
use crate::pci::PciRoot;

const PCIU: u64 = 0;
const PCID: u64 = 4;
const B0EJ: u64 = 8;

const _: () = assert!(PCI_HOTPLUG_LEN == 12 && PCI_SLOTS <= 32);

#[derive(Debug, Error)]
pub enum HotplugError {
    #[error("PCI slot {0} is not a hot-plug slot")]
    NotHotplug(u8),
    #[error("cannot raise the hot-plug GPE: {0}")]
    Gpe(#[from] super::pm::PmError),
    #[error("cannot create an eventfd: {0}")]
    EventFd(std::io::Error),
}

/// The first wait before a request the guest has not acted on is
/// signalled again; each later wait doubles, up to [`RESIGNAL_MAX`].
const RESIGNAL_FIRST: Duration = Duration::from_secs(1);
const RESIGNAL_MAX: Duration = Duration::from_secs(16);

#[derive(Default)]
struct Registers {
    up: u32,
    down: u32,
    /// Slots whose eject request the guest has read (PCID) since it was made.
    down_seen: u32,
    /// Slots the guest ejected that the main loop has not collected yet.
    ejected: u32,
    /// When pending requests were last signalled, and the wait before the
    /// next signal.
    signalled: Option<Instant>,
    backoff: Duration,
}

impl Registers {
    fn signalled_now(&mut self) {
        self.signalled = Some(Instant::now());
        self.backoff = RESIGNAL_FIRST;
    }
}

/// Why an eject the host asked for has not happened yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectWait {
    /// The guest does not listen for hot-plug events: firmware or a
    /// bootloader runs, its OS has not enabled ACPI hot-plug yet, or it
    /// masked the event. The request is signalled again until it listens.
    GuestNotListening,
    /// Signalled; the guest has not read the request yet.
    NotRead,
    /// The guest read the request and has not ejected the device: it is
    /// unbinding its driver, or holding the device.
    GuestHolding,
}

pub struct PciHotplug {
    regs: Mutex<Registers>,
    /// Slot bits that may be hot-plugged (and ejected by the guest).
    slots: u32,
    pm: PmDevice,
    pci: Arc<Mutex<PciRoot>>,
    event: EventFd,
}

impl PciHotplug {
    /// `slots` is the bitmap of hot-plug slots (the DSDT gives exactly
    /// these an `_EJ0`); slot 0, the host bridge, never is one.
    pub fn new(slots: u32, pm: PmDevice, pci: Arc<Mutex<PciRoot>>) -> Result<Self, HotplugError> {
        Ok(PciHotplug {
            regs: Mutex::new(Registers::default()),
            slots: slots & !1,
            pm,
            pci,
            event: EventFd::new(EFD_NONBLOCK).map_err(HotplugError::EventFd)?,
        })
    }

    fn regs(&self) -> MutexGuard<'_, Registers> {
        // Plain bitmaps: consistent whatever a panicking holder left.
        self.regs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bit(&self, slot: u8) -> Result<u32, HotplugError> {
        let bit = 1u32.checked_shl(u32::from(slot)).unwrap_or(0);
        if bit & self.slots == 0 {
            return Err(HotplugError::NotHotplug(slot));
        }
        Ok(bit)
    }

    pub fn is_hotplug_slot(&self, slot: u8) -> bool {
        self.bit(slot).is_ok()
    }

    /// Tells the guest a device appeared in `slot` (already on the bus).
    pub fn request_insert(&self, slot: u8) -> Result<(), HotplugError> {
        let bit = self.bit(slot)?;
        {
            let mut regs = self.regs();
            regs.up |= bit;
            regs.signalled_now();
        }
        Ok(self.pm.set_gpe(GPE_PCI_HOTPLUG)?)
    }

    /// Asks the guest to let go of `slot`; asking again re-sends the request.
    pub fn request_eject(&self, slot: u8) -> Result<(), HotplugError> {
        let bit = self.bit(slot)?;
        {
            let mut regs = self.regs();
            regs.down |= bit;
            regs.down_seen &= !bit;
            regs.signalled_now();
        }
        Ok(self.pm.set_gpe(GPE_PCI_HOTPLUG)?)
    }

    /// Forgets a pending request for `slot` (the host removed the device
    /// itself).
    pub fn cancel(&self, slot: u8) {
        if let Ok(bit) = self.bit(slot) {
            let mut regs = self.regs();
            regs.up &= !bit;
            regs.down &= !bit;
            regs.down_seen &= !bit;
        }
    }

    /// Raises the GPE again if requests are pending and the guest has not
    /// acted on them since the last signal (see the module docs). Called
    /// by the main loop, at least every few hundred milliseconds.
    pub fn resignal(&self, now: Instant) {
        {
            let mut regs = self.regs();
            if regs.up | regs.down == 0 {
                regs.signalled = None;
                return;
            }
            let due = regs
                .signalled
                .is_none_or(|at| now.saturating_duration_since(at) >= regs.backoff);
            if !due {
                return;
            }
            regs.signalled = Some(now);
            regs.backoff = (regs.backoff * 2).clamp(RESIGNAL_FIRST, RESIGNAL_MAX);
        }
        // The hot-plug GPE is a valid GPE number: this cannot fail.
        let _ = self.pm.set_gpe(GPE_PCI_HOTPLUG);
    }

    /// Why the eject of `slot` is still pending (None: none is).
    pub fn eject_wait(&self, slot: u8) -> Option<EjectWait> {
        let bit = self.bit(slot).ok()?;
        let (down, seen) = {
            let regs = self.regs();
            (regs.down & bit != 0, regs.down_seen & bit != 0)
        };
        Some(match (down, seen) {
            (false, _) => return None,
            (true, true) => EjectWait::GuestHolding,
            (true, false) if !self.pm.gpe_enabled(GPE_PCI_HOTPLUG) => EjectWait::GuestNotListening,
            (true, false) => EjectWait::NotRead,
        })
    }

    /// The slots the guest ejected since the last call.
    pub fn take_ejected(&self) -> u32 {
        let _ = self.event.read();
        std::mem::take(&mut self.regs().ejected)
    }

    /// Readable when the guest ejected a slot.
    pub fn event(&self) -> &EventFd {
        &self.event
    }

    fn eject(&self, bits: u32) {
        let bits = {
            let mut regs = self.regs();
            // Only the slots the host asked to eject (module docs).
            let bits = bits & self.slots & regs.down;
            regs.down &= !bits;
            regs.down_seen &= !bits;
            regs.up &= !bits;
            regs.ejected |= bits;
            bits
        };
        if bits == 0 {
            return;
        }
        // Lock order: this register lock is released before the bus's.
        let mut pci = self.pci.lock().unwrap_or_else(|e| e.into_inner());
        for slot in (0..PCI_SLOTS).filter(|s| bits & (1 << s) != 0) {
            // The main loop drops the device; here it only leaves the bus.
            let _ = pci.unplug(slot);
        }
        drop(pci);
        let _ = self.event.write(1);
    }
}

/// The register block on the PIO bus.
pub struct PciHotplugPorts(pub Arc<PciHotplug>);

impl BusDevice for PciHotplugPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let mut bytes = [0u8; PCI_HOTPLUG_LEN as usize];
        {
            let mut regs = self.0.regs();
            bytes[PCIU as usize..][..4].copy_from_slice(&regs.up.to_le_bytes());
            bytes[PCID as usize..][..4].copy_from_slice(&regs.down.to_le_bytes());
            // Reading PCIU (any of its bytes) hands the insertions over;
            // reading PCID tells that the guest has seen the eject requests.
            let end = offset.saturating_add(data.len() as u64);
            if offset < PCID && !data.is_empty() {
                regs.up = 0;
            }
            if offset < PCID + 4 && end > PCID {
                regs.down_seen |= regs.down;
            }
        }
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|a| usize::try_from(a).ok())
                .and_then(|a| bytes.get(a).copied())
                .unwrap_or(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        // B0EJ only; the other registers are read-only.
        let mut bits = 0u32;
        for (i, &b) in data.iter().enumerate() {
            let Some(at) = offset.checked_add(i as u64) else {
                break;
            };
            if (B0EJ..B0EJ + 4).contains(&at) {
                bits |= u32::from(b) << (8 * (at - B0EJ));
            }
        }
        self.0.eject(bits);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::bus::Bus;
    use crate::irq::test_util::FakeIrqLine;
    use crate::pci::{BarMove, PciDevice};
    use crate::power::PowerControl;

    struct Dummy;
    impl PciDevice for Dummy {
        fn config_read(&mut self, _: usize, data: &mut [u8]) {
            data.fill(0x11);
        }
        fn config_write(&mut self, _: usize, _: &[u8]) -> Option<BarMove> {
            None
        }
        fn bar_window(&self) -> Option<(u64, u64)> {
            Some((0x10_0000, 0x1000))
        }
    }
    impl BusDevice for Dummy {
        fn read(&mut self, _: u64, _: &mut [u8]) {}
        fn write(&mut self, _: u64, _: &[u8]) {}
    }

    fn read32(ports: &mut PciHotplugPorts, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        ports.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn setup(slots: u32) -> (PciHotplugPorts, Arc<FakeIrqLine>, PmDevice, Arc<Bus>) {
        let sci = Arc::new(FakeIrqLine::default());
        let pm = PmDevice::new(sci.clone(), PowerControl::new().unwrap());
        let mmio = Arc::new(Bus::new());
        let pci = Arc::new(Mutex::new(PciRoot::new(mmio.clone())));
        let hp = PciHotplug::new(slots, pm.clone(), pci).unwrap();
        (PciHotplugPorts(Arc::new(hp)), sci, pm, mmio)
    }

    /// A dummy device in `slot`, its BAR at 1 MiB; returns the bus.
    fn plug_dummy(ports: &PciHotplugPorts, mmio: &Bus, slot: u8) -> Arc<Mutex<PciRoot>> {
        let pci = ports.0.pci.clone();
        let dev = Arc::new(Mutex::new(Dummy));
        mmio.insert(dev.clone(), 0x10_0000, 0x1000).unwrap();
        pci.lock()
            .unwrap()
            .add_device(slot, dev.clone(), Some(dev))
            .unwrap();
        pci
    }

    #[test]
    fn insert_raises_the_gpe_and_pciu_clears_on_read() {
        let (mut ports, sci, pm, _) = setup(0b110);
        let mut gpe = pm.gpe_device();
        // The guest enabled GPE 1 (the hotplug GPE).
        gpe.write(2, &[1 << GPE_PCI_HOTPLUG]);
        assert!(!sci.level.load(Ordering::SeqCst));
        ports.0.request_insert(2).unwrap();
        assert!(sci.level.load(Ordering::SeqCst));
        assert_eq!(read32(&mut ports, PCIU), 1 << 2);
        assert_eq!(read32(&mut ports, PCIU), 0, "handed over once");
        assert!(matches!(
            ports.0.request_insert(3),
            Err(HotplugError::NotHotplug(3))
        ));
        assert!(ports.0.request_insert(40).is_err());
        assert!(ports.0.request_eject(0).is_err());
    }

    #[test]
    fn eject_request_stays_until_the_guest_ejects() {
        let (mut ports, _, _, mmio) = setup(0b100);
        let pci = plug_dummy(&ports, &mmio, 2);
        ports.0.request_eject(2).unwrap();
        assert_eq!(read32(&mut ports, PCID), 1 << 2);
        assert_eq!(read32(&mut ports, PCID), 1 << 2, "not cleared by reads");
        assert_eq!(ports.0.take_ejected(), 0);
        // _EJ0 writes the slot's bit to B0EJ (a dword; a byte write works too).
        ports.write(B0EJ, &(1u32 << 2).to_le_bytes());
        assert_eq!(read32(&mut ports, PCID), 0);
        assert!(!pci.lock().unwrap().occupied(2), "off the bus at once");
        assert!(mmio.is_free(0x10_0000, 0x1000), "BAR unmapped");
        assert_eq!(ports.0.event().read().unwrap(), 1);
        let _ = ports.0.event().write(1);
        assert_eq!(ports.0.take_ejected(), 1 << 2);
        assert_eq!(ports.0.take_ejected(), 0);
    }

    #[test]
    fn an_eject_the_host_did_not_ask_for_changes_nothing() {
        let (mut ports, _, _, mmio) = setup(0b1100);
        let pci = plug_dummy(&ports, &mmio, 2);
        // A guest that powers slot 2 off by itself (acpiphp's sysfs
        // "power" file runs _EJ0 too), and a late second notification.
        ports.write(B0EJ, &(1u32 << 2).to_le_bytes());
        assert!(pci.lock().unwrap().occupied(2), "still attached");
        assert!(!mmio.is_free(0x10_0000, 0x1000), "BAR still mapped");
        assert_eq!(ports.0.take_ejected(), 0);
        // Asked for slot 3, the guest writes slot 2's bit as well.
        ports.0.request_eject(3).unwrap();
        ports.write(B0EJ, &0b1100u32.to_le_bytes());
        assert!(pci.lock().unwrap().occupied(2));
        assert_eq!(ports.0.take_ejected(), 1 << 3);
        // Ejected once: a second _EJ0 for slot 3 is nothing.
        ports.write(B0EJ, &(1u32 << 3).to_le_bytes());
        assert_eq!(ports.0.take_ejected(), 0);
    }

    #[test]
    fn missed_requests_are_signalled_again_with_backoff() {
        let (mut ports, sci, pm, _) = setup(0b100);
        let mut gpe = pm.gpe_device();
        let clear = |gpe: &mut crate::acpi::GpeDevice| gpe.write(0, &[1 << GPE_PCI_HOTPLUG]);
        let pending = |gpe: &mut crate::acpi::GpeDevice| {
            let mut b = [0u8];
            gpe.read(0, &mut b);
            b[0] & (1 << GPE_PCI_HOTPLUG) != 0
        };
        // Raised while the guest's OS is not listening (firmware, early
        // boot): then ACPICA clears the status as it enables the GPE.
        ports.0.request_eject(2).unwrap();
        assert_eq!(ports.0.eject_wait(2), Some(EjectWait::GuestNotListening));
        clear(&mut gpe);
        gpe.write(2, &[1 << GPE_PCI_HOTPLUG]);
        assert!(!sci.level.load(Ordering::SeqCst), "lost");
        assert_eq!(ports.0.eject_wait(2), Some(EjectWait::NotRead));
        let t0 = Instant::now();
        ports.0.resignal(t0);
        assert!(!pending(&mut gpe), "not before the first wait");
        ports.0.resignal(t0 + RESIGNAL_FIRST);
        assert!(
            pending(&mut gpe) && sci.level.load(Ordering::SeqCst),
            "signalled again"
        );
        clear(&mut gpe);
        // The waits double: 2 s after that one, not 1 s.
        ports.0.resignal(t0 + RESIGNAL_FIRST * 2);
        assert!(!pending(&mut gpe));
        ports.0.resignal(t0 + RESIGNAL_FIRST * 3);
        assert!(pending(&mut gpe));
        clear(&mut gpe);
        // The guest's PCNT reads PCID: it has seen the request.
        assert_eq!(read32(&mut ports, PCID), 1 << 2);
        assert_eq!(ports.0.eject_wait(2), Some(EjectWait::GuestHolding));
        // Capped at RESIGNAL_MAX.
        let mut t = t0 + RESIGNAL_FIRST * 3;
        for _ in 0..10 {
            t += RESIGNAL_MAX;
            ports.0.resignal(t);
            assert!(pending(&mut gpe));
            clear(&mut gpe);
        }
        // Ejected: nothing more to signal or wait for.
        ports.write(B0EJ, &(1u32 << 2).to_le_bytes());
        assert_eq!(ports.0.eject_wait(2), None);
        ports.0.resignal(t + RESIGNAL_MAX * 2);
        assert!(!pending(&mut gpe));
        // An insertion the guest never read (PCIU) is signalled again too.
        ports.0.request_insert(2).unwrap();
        clear(&mut gpe);
        ports.0.resignal(Instant::now() + RESIGNAL_FIRST);
        assert!(pending(&mut gpe));
        clear(&mut gpe);
        assert_eq!(read32(&mut ports, PCIU), 1 << 2);
        ports.0.resignal(Instant::now() + RESIGNAL_MAX * 4);
        assert!(!pending(&mut gpe), "handed over");
        assert_eq!(ports.0.eject_wait(9), None, "not a hot-plug slot");
    }

    #[test]
    fn guest_cannot_eject_other_slots_and_odd_accesses_are_harmless() {
        let (mut ports, _, _, _) = setup(0b100);
        let pci = ports.0.pci.clone();
        pci.lock()
            .unwrap()
            .add_device(3, Arc::new(Mutex::new(Dummy)), None)
            .unwrap();
        ports.write(B0EJ, &u32::MAX.to_le_bytes());
        assert!(pci.lock().unwrap().occupied(3), "slot 3 is not hot-plug");
        assert_eq!(ports.0.take_ejected(), 0, "nothing was asked to be ejected");
        ports.0.request_eject(2).unwrap();
        ports.write(B0EJ, &u32::MAX.to_le_bytes());
        assert!(pci.lock().unwrap().occupied(3), "slot 3 is not hot-plug");
        assert_eq!(ports.0.take_ejected(), 1 << 2, "only the requested slot");
        ports.write(B0EJ + 3, &[0xff, 0xff]);
        ports.write(u64::MAX, &[0xff; 4]);
        ports.write(PCIU, &[0xff; 4]);
        assert_eq!(read32(&mut ports, PCIU), 0, "read-only");
        let mut b = [0xaa; 8];
        ports.read(10, &mut b);
        assert_eq!(b, [0; 8]);
        ports.read(u64::MAX, &mut b[..2]);
        ports.0.request_eject(2).unwrap();
        ports.0.cancel(2);
        assert_eq!(read32(&mut ports, PCID), 0);
    }
}
