//! ACPI fixed hardware: the PM1 event/control block with the PM timer, and
//! the GPE0 block. Both raise the one SCI, so they share their state: the
//! VMM inserts [`PmDevice`] at `PORT_PM1A_EVENT` (length `PM_BLOCK_LEN`) and
//! its [`GpeDevice`] view at `PORT_GPE0` (length `GPE0_BLOCK_LEN`).
//!
//! Register layout, offsets from `PORT_PM1A_EVENT` (ACPI 6.5, 4.8.3):
//!   0  PM1 status  u16, write 1 to clear
//!   2  PM1 enable  u16
//!   4  PM1 control u16 (at `PORT_PM1A_CONTROL`)
//!   8  PM timer    u32, read-only (at `PORT_PM_TIMER`)
//! and from `PORT_GPE0`: status bytes (write 1 to clear), then as many
//! enable bytes.
//!
//! Every access is split into bytes so that byte, word and dword accesses at
//! any offset behave like the hardware's (ACPICA, SeaBIOS and GRUB use
//! different widths); bytes that no register backs read as 0 and ignore
//! writes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::bus::BusDevice;
use crate::irq::IrqLine;
use crate::layout::{
    GPE0_BLOCK_LEN, PM_BLOCK_LEN, PORT_PM_TIMER, PORT_PM1A_CONTROL, PORT_PM1A_EVENT,
};
use crate::power::{PowerAction, PowerControl};

/// The PM timer's frequency (ACPI 6.5, 4.8.3.3).
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// SLP_TYP value for S5 (soft off). The DSDT's `\_S5_` package carries it,
/// and writing it with SLP_EN powers the VM off. Any 3-bit value would do;
/// a non-zero one keeps a stray zero write with SLP_EN from powering off.
pub const SLP_TYP_S5: u8 = 5;

// PM1 status bits.
const PM1_STS_TMR: u16 = 1 << 0;
const PM1_STS_GBL: u16 = 1 << 5;
const PM1_STS_PWRBTN: u16 = 1 << 8;
const PM1_STS_SLPBTN: u16 = 1 << 9;
const PM1_STS_RTC: u16 = 1 << 10;
/// Enable bits with a matching status bit: the events that can raise the SCI.
const PM1_SCI_EVENTS: u16 =
    PM1_STS_TMR | PM1_STS_GBL | PM1_STS_PWRBTN | PM1_STS_SLPBTN | PM1_STS_RTC;
/// PCIEXP_WAKE_DIS: a writable enable bit that disables rather than enables.
const PM1_EN_PCIEXP_WAKE_DIS: u16 = 1 << 14;
const PM1_EN_WRITABLE: u16 = PM1_SCI_EVENTS | PM1_EN_PCIEXP_WAKE_DIS;

// PM1 control bits.
const PM1_CNT_SCI_EN: u16 = 1 << 0;
const PM1_CNT_BM_RLD: u16 = 1 << 1;
const PM1_CNT_SLP_TYP_SHIFT: u16 = 10;
const PM1_CNT_SLP_TYP_MASK: u16 = 0b111 << PM1_CNT_SLP_TYP_SHIFT;
const PM1_CNT_SLP_EN: u16 = 1 << 13;
/// What the control register keeps; GBL_RLS and SLP_EN are write-only and
/// read as 0, SCI_EN is forced to 1 on reads.
const PM1_CNT_STORED: u16 = PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP_MASK;

// Register offsets inside the PM1 block.
const PM1_STS: u64 = 0;
const PM1_EN: u64 = 2;
const PM1_CNT: u64 = (PORT_PM1A_CONTROL - PORT_PM1A_EVENT) as u64;
const PM_TMR: u64 = (PORT_PM_TIMER - PORT_PM1A_EVENT) as u64;
const PM1_BLOCK: usize = PM_BLOCK_LEN as usize;

/// Bytes in each half (status, enable) of the GPE0 block.
const GPE_HALF: usize = (GPE0_BLOCK_LEN / 2) as usize;
/// Number of general-purpose events.
const GPE_COUNT: u8 = (GPE_HALF * 8) as u8;

// The registers must sit where the FADT says and fit the block.
const _: () = assert!(PORT_PM1A_CONTROL >= PORT_PM1A_EVENT + 4);
const _: () = assert!(PORT_PM_TIMER >= PORT_PM1A_CONTROL + 2);
const _: () = assert!(PORT_PM_TIMER + 4 <= PORT_PM1A_EVENT + PM_BLOCK_LEN);
const _: () = assert!(GPE0_BLOCK_LEN.is_multiple_of(2) && GPE_HALF * 8 <= 255);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PmError {
    #[error("GPE {0} does not exist (the GPE0 block has {GPE_COUNT})")]
    NoSuchGpe(u8),
}

struct PmState {
    pm1_sts: u16,
    pm1_en: u16,
    pm1_cnt: u16,
    gpe_sts: [u8; GPE_HALF],
    gpe_en: [u8; GPE_HALF],
    /// The PM timer counts from here.
    clock_start: Instant,
    sci: Arc<dyn IrqLine>,
    power: PowerControl,
}

impl PmState {
    fn sci_pending(&self) -> bool {
        let pm1 = self.pm1_sts & self.pm1_en & PM1_SCI_EVENTS != 0;
        let gpe = self
            .gpe_sts
            .iter()
            .zip(self.gpe_en.iter())
            .any(|(s, e)| s & e != 0);
        pm1 || gpe
    }

    /// The SCI is a level: high exactly while an enabled event is pending.
    /// Driven on every change, not only on edges, so a line that was reset
    /// underneath (VM reset) is brought back in line.
    fn update_sci(&self) {
        self.sci.set_level(self.sci_pending());
    }

    fn pm1_snapshot(&self) -> [u8; PM1_BLOCK] {
        let mut regs = [0u8; PM1_BLOCK];
        let mut put = |offset: u64, bytes: &[u8]| {
            let start = offset as usize;
            regs[start..start + bytes.len()].copy_from_slice(bytes);
        };
        put(PM1_STS, &self.pm1_sts.to_le_bytes());
        put(PM1_EN, &self.pm1_en.to_le_bytes());
        put(PM1_CNT, &(self.pm1_cnt | PM1_CNT_SCI_EN).to_le_bytes());
        put(
            PM_TMR,
            &pm_timer_ticks(self.clock_start.elapsed()).to_le_bytes(),
        );
        regs
    }

    fn pm1_write(&mut self, offset: u64, data: &[u8]) {
        let mut cnt = self.pm1_cnt;
        let mut cnt_written = false;
        for (addr, byte) in bytes_in_block(offset, data, PM1_BLOCK) {
            let (reg, shift) = match addr {
                a if a < PM1_EN => (PM1_STS, a * 8),
                a if a < PM1_EN + 2 => (PM1_EN, (a - PM1_EN) * 8),
                a if (PM1_CNT..PM1_CNT + 2).contains(&a) => (PM1_CNT, (a - PM1_CNT) * 8),
                // The timer is read-only; the rest of the block is reserved.
                _ => continue,
            };
            let bits = u16::from(byte) << shift;
            let lane = 0xffu16 << shift;
            match reg {
                PM1_STS => self.pm1_sts &= !bits,
                PM1_EN => self.pm1_en = (self.pm1_en & !lane) | (bits & PM1_EN_WRITABLE),
                _ => {
                    cnt = (cnt & !lane) | bits;
                    cnt_written = true;
                }
            }
        }
        if cnt_written {
            self.pm1_cnt = cnt & PM1_CNT_STORED;
            // Evaluated on the whole register after the access, so SLP_TYP
            // and SLP_EN written together by a byte access to the high half
            // work as well as the usual word write.
            let slp_typ = (cnt & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT;
            if cnt & PM1_CNT_SLP_EN != 0 && slp_typ == u16::from(SLP_TYP_S5) {
                self.power.request(PowerAction::PowerOff);
            }
            // Other sleep types are not advertised (no _S1_.._S4_): ignored.
        }
        self.update_sci();
    }

    fn gpe_read_byte(&self, addr: usize) -> u8 {
        if addr < GPE_HALF {
            self.gpe_sts[addr]
        } else {
            self.gpe_en[addr - GPE_HALF]
        }
    }

    fn gpe_write(&mut self, offset: u64, data: &[u8]) {
        for (addr, byte) in bytes_in_block(offset, data, 2 * GPE_HALF) {
            let addr = addr as usize;
            if addr < GPE_HALF {
                self.gpe_sts[addr] &= !byte;
            } else {
                self.gpe_en[addr - GPE_HALF] = byte;
            }
        }
        self.update_sci();
    }
}

/// The (block offset, byte) pairs of an access that fall inside a block of
/// `len` bytes. Offsets past the block (or overflowing) are dropped.
fn bytes_in_block(offset: u64, data: &[u8], len: usize) -> impl Iterator<Item = (u64, u8)> + '_ {
    data.iter().enumerate().filter_map(move |(i, &b)| {
        let addr = offset.checked_add(i as u64)?;
        (addr < len as u64).then_some((addr, b))
    })
}

/// PM timer value after `elapsed`: 3.579545 MHz ticks, wrapping at 32 bits.
fn pm_timer_ticks(elapsed: Duration) -> u32 {
    let ticks = elapsed.as_nanos() * u128::from(PM_TIMER_HZ) / 1_000_000_000;
    // The counter is 32 bits wide (TMR_VAL_EXT) and wraps.
    (ticks & u128::from(u32::MAX)) as u32
}

/// The PM1 block (PM1 event + control registers and the PM timer). Cheap to
/// clone: keep one clone to press the power button and signal GPEs, put
/// another on the bus.
#[derive(Clone)]
pub struct PmDevice {
    state: Arc<Mutex<PmState>>,
}

/// The GPE0 block, sharing the PM device's state and SCI.
#[derive(Clone)]
pub struct GpeDevice {
    state: Arc<Mutex<PmState>>,
}

fn lock(state: &Mutex<PmState>) -> MutexGuard<'_, PmState> {
    // A panic elsewhere while holding the lock leaves plain register values
    // behind; they are still consistent enough to keep serving the guest.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl PmDevice {
    /// `sci` is the line of GSI `IRQ_SCI`; `power` receives S5 requests.
    pub fn new(sci: Arc<dyn IrqLine>, power: PowerControl) -> Self {
        PmDevice {
            state: Arc::new(Mutex::new(PmState {
                pm1_sts: 0,
                pm1_en: 0,
                pm1_cnt: 0,
                gpe_sts: [0; GPE_HALF],
                gpe_en: [0; GPE_HALF],
                clock_start: Instant::now(),
                sci,
                power,
            })),
        }
    }

    /// The GPE0 block's bus device.
    pub fn gpe_device(&self) -> GpeDevice {
        GpeDevice {
            state: self.state.clone(),
        }
    }

    /// A press of the fixed-feature power button: sets PWRBTN_STS; the SCI
    /// rises if the guest enabled PWRBTN_EN (Linux does, for its "Power
    /// Button" device, and then shuts down in an orderly way).
    pub fn press_power_button(&self) {
        let mut s = lock(&self.state);
        s.pm1_sts |= PM1_STS_PWRBTN;
        s.update_sci();
    }

    /// Sets GPE0 status bit `gpe` (e.g. [`super::GPE_PCI_HOTPLUG`]); the SCI
    /// rises if the guest enabled that GPE.
    pub fn set_gpe(&self, gpe: u8) -> Result<(), PmError> {
        if gpe >= GPE_COUNT {
            return Err(PmError::NoSuchGpe(gpe));
        }
        let mut s = lock(&self.state);
        s.gpe_sts[usize::from(gpe / 8)] |= 1 << (gpe % 8);
        s.update_sci();
        Ok(())
    }

    /// Whether the guest has enabled GPE0 bit `gpe` (its OS listens for
    /// that event: ACPI is up and the GPE is not masked).
    pub fn gpe_enabled(&self, gpe: u8) -> bool {
        gpe < GPE_COUNT && lock(&self.state).gpe_en[usize::from(gpe / 8)] & (1 << (gpe % 8)) != 0
    }

    /// Back to power-on state (VM reset): nothing enabled or pending, SCI low.
    /// The PM timer keeps running, as it does across a reset on hardware.
    pub fn reset(&self) {
        let mut s = lock(&self.state);
        s.pm1_sts = 0;
        s.pm1_en = 0;
        s.pm1_cnt = 0;
        s.gpe_sts = [0; GPE_HALF];
        s.gpe_en = [0; GPE_HALF];
        s.update_sci();
    }

    /// Whether the SCI is currently asserted.
    pub fn sci_pending(&self) -> bool {
        lock(&self.state).sci_pending()
    }
}

impl BusDevice for PmDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // One snapshot per access, so a multi-byte timer read is consistent.
        let regs = lock(&self.state).pm1_snapshot();
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|a| usize::try_from(a).ok())
                .and_then(|a| regs.get(a).copied())
                .unwrap_or(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        lock(&self.state).pm1_write(offset, data);
    }
}

impl BusDevice for GpeDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let s = lock(&self.state);
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|a| usize::try_from(a).ok())
                .filter(|&a| a < 2 * GPE_HALF)
                .map_or(0, |a| s.gpe_read_byte(a));
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        lock(&self.state).gpe_write(offset, data);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::irq::test_util::FakeIrqLine;

    fn setup() -> (PmDevice, Arc<FakeIrqLine>, PowerControl) {
        let sci = Arc::new(FakeIrqLine::default());
        let power = PowerControl::new().unwrap();
        (PmDevice::new(sci.clone(), power.clone()), sci, power)
    }

    fn read(dev: &mut dyn BusDevice, offset: u64, len: usize) -> u64 {
        let mut data = [0u8; 8];
        dev.read(offset, &mut data[..len]);
        u64::from_le_bytes(data)
    }

    fn write(dev: &mut dyn BusDevice, offset: u64, len: usize, value: u64) {
        dev.write(offset, &value.to_le_bytes()[..len]);
    }

    fn level(sci: &FakeIrqLine) -> bool {
        sci.level.load(Ordering::SeqCst)
    }

    #[test]
    fn power_button_raises_sci_only_when_enabled() {
        let (mut pm, sci, _) = setup();
        pm.press_power_button();
        assert_eq!(read(&mut pm, PM1_STS, 2), u64::from(PM1_STS_PWRBTN));
        assert!(!level(&sci), "not enabled yet");

        write(&mut pm, PM1_EN, 2, u64::from(PM1_STS_PWRBTN));
        assert_eq!(read(&mut pm, PM1_EN, 2), u64::from(PM1_STS_PWRBTN));
        assert!(level(&sci), "enabling a pending event raises the SCI");
        assert!(pm.sci_pending());

        // Writing 0 to the status bit leaves it; writing 1 clears it.
        write(&mut pm, PM1_STS, 2, 0);
        assert!(level(&sci));
        write(&mut pm, PM1_STS, 2, u64::from(PM1_STS_PWRBTN));
        assert_eq!(read(&mut pm, PM1_STS, 2), 0);
        assert!(!level(&sci));

        // A second press with the event enabled raises it again.
        pm.press_power_button();
        assert!(level(&sci));
        assert_eq!(sci.raised.load(Ordering::SeqCst), 2);
        // Disabling drops the line while the status stays set.
        write(&mut pm, PM1_EN, 2, 0);
        assert!(!level(&sci));
        assert_eq!(read(&mut pm, PM1_STS, 2), u64::from(PM1_STS_PWRBTN));

        pm.reset();
        assert_eq!(read(&mut pm, PM1_STS, 4), 0);
    }

    #[test]
    fn sci_en_reads_one_and_s5_powers_off() {
        let (mut pm, _, power) = setup();
        assert_eq!(read(&mut pm, PM1_CNT, 2), u64::from(PM1_CNT_SCI_EN));

        // Linux writes SLP_TYP first, then SLP_TYP | SLP_EN.
        let s5 = u64::from(SLP_TYP_S5) << PM1_CNT_SLP_TYP_SHIFT;
        write(&mut pm, PM1_CNT, 2, s5);
        assert_eq!(power.pending(), None);
        assert_eq!(read(&mut pm, PM1_CNT, 2), s5 | 1, "SLP_TYP kept");
        write(&mut pm, PM1_CNT, 2, s5 | u64::from(PM1_CNT_SLP_EN));
        assert_eq!(power.pending(), Some(PowerAction::PowerOff));
        assert_eq!(read(&mut pm, PM1_CNT, 2) & u64::from(PM1_CNT_SLP_EN), 0);
    }

    #[test]
    fn other_sleep_types_do_not_power_off() {
        let (mut pm, _, power) = setup();
        for typ in (0..8u64).filter(|&t| t != u64::from(SLP_TYP_S5)) {
            write(&mut pm, PM1_CNT, 2, (typ << 10) | u64::from(PM1_CNT_SLP_EN));
        }
        assert_eq!(power.pending(), None);
    }

    #[test]
    fn byte_wide_s5_write_to_the_high_half_powers_off() {
        let (mut pm, _, power) = setup();
        let high = (u16::from(SLP_TYP_S5) << 10 | PM1_CNT_SLP_EN) >> 8;
        write(&mut pm, PM1_CNT + 1, 1, u64::from(high));
        assert_eq!(power.pending(), Some(PowerAction::PowerOff));
    }

    #[test]
    fn dword_access_covers_status_and_enable() {
        let (mut pm, sci, _) = setup();
        pm.press_power_button();
        // Status in the low word, enable in the high word, as one dword.
        let v = read(&mut pm, 0, 4);
        assert_eq!(v, u64::from(PM1_STS_PWRBTN));
        write(&mut pm, 0, 4, u64::from(PM1_STS_PWRBTN) << 16);
        assert!(level(&sci));
        assert_eq!(read(&mut pm, 3, 1), u64::from(PM1_STS_PWRBTN >> 8));
        // Byte write 1-to-clear on the status high byte.
        write(&mut pm, 1, 1, u64::from(PM1_STS_PWRBTN >> 8));
        assert!(!level(&sci));
        // Reserved enable bits are not kept.
        write(&mut pm, PM1_EN, 2, 0x8000);
        assert_eq!(read(&mut pm, PM1_EN, 2), 0);
    }

    #[test]
    fn odd_and_out_of_range_accesses_are_harmless() {
        let (mut pm, _, power) = setup();
        let mut gpe = pm.gpe_device();
        for offset in [0u64, 3, 5, 7, 11, 13, 15, 16, 100, u64::MAX - 2, u64::MAX] {
            for len in [1usize, 2, 3, 4, 8] {
                let mut buf = [0xaau8; 8];
                pm.read(offset, &mut buf[..len]);
                gpe.read(offset, &mut buf[..len]);
                pm.write(offset, &[0u8; 8][..len]);
                gpe.write(offset, &[0xffu8; 8][..len]);
            }
        }
        pm.read(0, &mut []);
        pm.write(0, &[]);
        assert_eq!(power.pending(), None);
        // Past the block reads as zero.
        assert_eq!(read(&mut pm, PM1_BLOCK as u64, 4), 0);
        assert_eq!(read(&mut gpe, 2 * GPE_HALF as u64, 1), 0);
    }

    #[test]
    fn gpe_status_enable_and_sci() {
        let (pm, sci, _) = setup();
        let mut gpe = pm.gpe_device();
        assert_eq!(pm.set_gpe(GPE_COUNT), Err(PmError::NoSuchGpe(GPE_COUNT)));

        pm.set_gpe(1).unwrap();
        pm.set_gpe(9).unwrap();
        assert_eq!(read(&mut gpe, 0, 2), 0b10_0000_0010);
        assert!(!level(&sci));
        // ACPICA enables GPEs with byte writes to the enable half.
        write(&mut gpe, GPE_HALF as u64, 1, 0b10);
        assert!(level(&sci));
        assert_eq!(read(&mut gpe, GPE_HALF as u64, 2), 0b10);
        // Clearing the other pending GPE keeps the line up.
        write(&mut gpe, 1, 1, 0b10);
        assert!(level(&sci));
        assert_eq!(read(&mut gpe, 0, 2), 0b10);
        // Clearing GPE 1 (word write) drops it.
        write(&mut gpe, 0, 2, 0b10);
        assert!(!level(&sci));
        // Set while enabled: rises at once. The whole block as one dword.
        pm.set_gpe(1).unwrap();
        assert!(level(&sci));
        assert_eq!(read(&mut gpe, 0, 4), (0b10 << 16) | 0b10);
        write(&mut gpe, 0, 4, 0b10);
        assert!(!level(&sci));
        // The PM1 and GPE sources are or-ed onto the one SCI.
        pm.set_gpe(1).unwrap();
        let mut pm1 = pm.clone();
        write(&mut pm1, PM1_EN, 2, u64::from(PM1_STS_PWRBTN));
        pm.press_power_button();
        write(&mut gpe, 0, 1, 0b10);
        assert!(level(&sci), "power button still pending");
        // Whether the guest listens for a GPE: its enable bit.
        write(&mut gpe, GPE_HALF as u64, 1, 0b10);
        assert!(pm.gpe_enabled(1));
        assert!(!pm.gpe_enabled(9));
        assert!(!pm.gpe_enabled(GPE_COUNT));
        write(&mut gpe, GPE_HALF as u64, 1, 0);
        assert!(!pm.gpe_enabled(1));
    }

    #[test]
    fn timer_ticks_at_3_579545_mhz_and_wraps() {
        assert_eq!(pm_timer_ticks(Duration::ZERO), 0);
        assert_eq!(pm_timer_ticks(Duration::from_secs(1)), 3_579_545);
        assert_eq!(pm_timer_ticks(Duration::from_millis(1)), 3_579);
        // 2^32 ticks take about 1199.8 s.
        let wrap = Duration::from_nanos((1u128 << 32) as u64 * 1_000_000_000 / PM_TIMER_HZ + 1);
        assert!(pm_timer_ticks(wrap) < 4);
        assert_eq!(
            pm_timer_ticks(Duration::from_secs(1200)),
            (1200 * PM_TIMER_HZ % (1 << 32)) as u32
        );
    }

    #[test]
    fn timer_advances_in_real_time() {
        let (mut pm, _, _) = setup();
        let t0 = read(&mut pm, PM_TMR, 4);
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        // Dword read, and the same value seen through two word reads.
        let t1 = read(&mut pm, PM_TMR, 4);
        let elapsed = start.elapsed();
        let delta = t1.wrapping_sub(t0) & 0xffff_ffff;
        let min = 20 * PM_TIMER_HZ / 1000;
        // Generous upper bound: the machine is shared, the thread may stall.
        let max = u64::from(pm_timer_ticks(elapsed)) + PM_TIMER_HZ / 100;
        assert!(delta >= min && delta <= max, "{delta} ticks in {elapsed:?}");
        let lo = read(&mut pm, PM_TMR, 2);
        let hi = read(&mut pm, PM_TMR + 2, 2);
        assert!((hi << 16 | lo) >= t1);
        // Writes to the timer are ignored.
        write(&mut pm, PM_TMR, 4, 0);
        assert!(read(&mut pm, PM_TMR, 4) >= t1);
    }
}
