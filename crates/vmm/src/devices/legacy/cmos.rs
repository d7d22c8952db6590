//! An MC146818-compatible CMOS RTC with 128 bytes of NVRAM at `PORT_CMOS`
//! (offset 0 = index, offset 1 = data; two ports).
//!
//! Time: the registers show the host's UTC clock (CLOCK_REALTIME, via
//! `SystemTime`) plus a per-VM offset in whole seconds. A guest that sets
//! the clock moves only that offset; the host clock is never touched.
//! Because the offset is whole seconds, the guest's second boundaries are
//! the host's, which is what makes the update-in-progress bit honest: UIP
//! reads as set during the last 244 µs before each boundary, exactly the
//! window in which a real chip warns that the registers are about to
//! change, so guests that wait for UIP to clear see it clear within
//! 244 µs and never wait forever.
//!
//! Not modelled: alarm, periodic and update-ended *interrupts* (the chip's
//! IRQ 8 is never raised; the interrupt enable bits are stored only),
//! square-wave output, daylight-saving adjustment, and stopping the clock
//! through the divider bits of register A. Register C reports the
//! update-ended flag for guests that poll it; the alarm and periodic flags
//! stay clear.
//!
//! NVRAM: the memory-size and CPU-count bytes that SeaBIOS reads under
//! QEMU (QEMU's `pc_cmos_init`, SeaBIOS's `paravirt.c`), filled in by
//! [`Cmos::new`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bus::BusDevice;
use crate::layout::PCI_HOLE_START;

/// Number of I/O ports (index at `PORT_CMOS`, data at `PORT_CMOS + 1`).
pub const CMOS_PORT_LEN: u64 = 2;

const NVRAM_SIZE: usize = 128;

// Register indexes.
const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
/// Century, where the ACPI FADT's CENTURY field and SeaBIOS expect it.
const REG_CENTURY: u8 = 0x32;

// NVRAM bytes for firmware (QEMU's layout).
const NV_BASE_MEM_LO: usize = 0x15;
const NV_BASE_MEM_HI: usize = 0x16;
const NV_EXT_MEM_LO: usize = 0x17;
const NV_EXT_MEM_HI: usize = 0x18;
const NV_CHECKSUM_HI: usize = 0x2e;
const NV_CHECKSUM_LO: usize = 0x2f;
const NV_EXT_MEM2_LO: usize = 0x30;
const NV_EXT_MEM2_HI: usize = 0x31;
const NV_MEM_ABOVE_16M_LO: usize = 0x34;
const NV_MEM_ABOVE_16M_HI: usize = 0x35;
const NV_MEM_ABOVE_4G_LO: usize = 0x5b;
const NV_MEM_ABOVE_4G_MID: usize = 0x5c;
const NV_MEM_ABOVE_4G_HI: usize = 0x5d;
const NV_CPU_COUNT_MINUS_1: usize = 0x5f;

// Register A.
const A_UIP: u8 = 0x80;
const A_DIVIDER_MASK: u8 = 0x70;
/// 32.768 kHz time base, normal operation.
const A_DIVIDER_NORMAL: u8 = 0x20;
/// Normal divider, 1024 Hz periodic rate: what BIOSes program.
const A_DEFAULT: u8 = 0x26;

// Register B.
const B_SET: u8 = 0x80;
const B_UIE: u8 = 0x10;
const B_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const B_DEFAULT: u8 = B_24H; // 24 h, BCD

// Register C.
const C_IRQF: u8 = 0x80;
const C_UF: u8 = 0x10;

// Register D: valid RAM and time.
const D_VRT: u8 = 0x80;

const HOUR_PM: u8 = 0x80;

/// The chip raises UIP this long before each update.
const UIP_LEAD: Duration = Duration::from_micros(244);

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Broken-down UTC time, as the registers hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateTime {
    year: i64,
    month: u8,   // 1..=12
    day: u8,     // 1..=31
    weekday: u8, // 1..=7, Sunday = 1
    hour: u8,    // 0..=23
    minute: u8,
    second: u8,
}

impl DateTime {
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            // 1970-01-01 was a Thursday (5 with Sunday = 1).
            weekday: ((days + 4).rem_euclid(7) + 1) as u8,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Seconds since the epoch. Fields a guest wrote out of range are
    /// clamped first; the weekday is ignored (the chip never checks it).
    fn to_unix(self) -> i64 {
        let month = self.month.clamp(1, 12);
        let day = self.day.clamp(1, 31);
        let days = days_from_civil(self.year, month, day);
        days * 86_400
            + i64::from(self.hour.min(23)) * 3600
            + i64::from(self.minute.min(59)) * 60
            + i64::from(self.second.min(59))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm; exact for any i64 year we can produce).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

/// Garbage in (non-decimal nibbles) gives out-of-range values, which the
/// date conversion clamps; never a panic.
fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0f)
}

/// Real time since the epoch; a host clock before 1970 reads as 1970.
fn host_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

type Clock = Box<dyn Fn() -> Duration + Send>;

pub struct Cmos {
    index: u8,
    /// Registers A-D and the NVRAM live here; the time registers are
    /// computed, their slots unused.
    nvram: [u8; NVRAM_SIZE],
    /// Guest time = host time + this, in seconds.
    offset_secs: i64,
    /// While register B's SET bit is on: the frozen time the guest is
    /// editing.
    frozen: Option<DateTime>,
    /// Guest second at the last read of register C (for the UF flag).
    last_c_read_second: i64,
    clock: Clock,
}

impl Cmos {
    /// `ram_below_4g`: guest RAM below the 32-bit PCI hole (bytes, from
    /// address 0); `ram_above_4g`: RAM from 4 GiB up; `vcpus`: at least 1.
    pub fn new(ram_below_4g: u64, ram_above_4g: u64, vcpus: u8) -> Self {
        Self::with_clock(ram_below_4g, ram_above_4g, vcpus, Box::new(host_clock))
    }

    /// Splits a guest's total RAM the way the address map does (RAM up to
    /// `PCI_HOLE_START`, the rest above 4 GiB).
    pub fn for_total_ram(total_ram: u64, vcpus: u8) -> Self {
        let below = total_ram.min(PCI_HOLE_START);
        Self::new(below, total_ram - below, vcpus)
    }

    fn with_clock(ram_below_4g: u64, ram_above_4g: u64, vcpus: u8, clock: Clock) -> Self {
        let mut nvram = [0u8; NVRAM_SIZE];
        nvram[usize::from(REG_A)] = A_DEFAULT;
        nvram[usize::from(REG_B)] = B_DEFAULT;
        nvram[usize::from(REG_D)] = D_VRT;

        let below = ram_below_4g.min(PCI_HOLE_START);
        let put16 = |nv: &mut [u8; NVRAM_SIZE], lo: usize, hi: usize, v: u64| {
            let v = v.min(0xffff);
            nv[lo] = v as u8;
            nv[hi] = (v >> 8) as u8;
        };
        // Conventional memory in KiB (640 on any VM big enough to boot).
        put16(
            &mut nvram,
            NV_BASE_MEM_LO,
            NV_BASE_MEM_HI,
            (below / KIB).min(640),
        );
        // KiB above 1 MiB, saturating at 0xffff (~64 MiB), twice.
        let ext_kib = below.saturating_sub(MIB) / KIB;
        put16(&mut nvram, NV_EXT_MEM_LO, NV_EXT_MEM_HI, ext_kib);
        put16(&mut nvram, NV_EXT_MEM2_LO, NV_EXT_MEM2_HI, ext_kib);
        // 64 KiB blocks between 16 MiB and the PCI hole.
        let above_16m = below.saturating_sub(16 * MIB) / (64 * KIB);
        put16(
            &mut nvram,
            NV_MEM_ABOVE_16M_LO,
            NV_MEM_ABOVE_16M_HI,
            above_16m,
        );
        // 64 KiB blocks above 4 GiB, 24 bits.
        let above_4g = (ram_above_4g / (64 * KIB)).min(0xff_ffff);
        nvram[NV_MEM_ABOVE_4G_LO] = above_4g as u8;
        nvram[NV_MEM_ABOVE_4G_MID] = (above_4g >> 8) as u8;
        nvram[NV_MEM_ABOVE_4G_HI] = (above_4g >> 16) as u8;
        nvram[NV_CPU_COUNT_MINUS_1] = vcpus.saturating_sub(1);
        // 0x10 (floppy types) and 0x12 (IDE disk types) stay 0: none.

        // The AT checksum over 0x10..=0x2d, for firmware that checks it.
        let sum: u16 = nvram[0x10..=0x2d].iter().map(|&b| u16::from(b)).sum();
        nvram[NV_CHECKSUM_HI] = (sum >> 8) as u8;
        nvram[NV_CHECKSUM_LO] = sum as u8;

        let mut cmos = Cmos {
            index: 0,
            nvram,
            offset_secs: 0,
            frozen: None,
            last_c_read_second: 0,
            clock,
        };
        cmos.last_c_read_second = cmos.guest_unix_time().0;
        cmos
    }

    /// The guest's current time: (seconds since the epoch, nanoseconds into
    /// the second).
    fn guest_unix_time(&self) -> (i64, u32) {
        let now = (self.clock)();
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        (secs.saturating_add(self.offset_secs), now.subsec_nanos())
    }

    fn current(&self) -> DateTime {
        self.frozen
            .unwrap_or_else(|| DateTime::from_unix(self.guest_unix_time().0))
    }

    fn reg_b(&self) -> u8 {
        self.nvram[usize::from(REG_B)]
    }

    fn encode(&self, v: u8) -> u8 {
        if self.reg_b() & B_BINARY != 0 {
            v
        } else {
            to_bcd(v)
        }
    }

    fn decode(&self, v: u8) -> u8 {
        if self.reg_b() & B_BINARY != 0 {
            v
        } else {
            from_bcd(v)
        }
    }

    fn encode_hour(&self, hour: u8) -> u8 {
        if self.reg_b() & B_24H != 0 {
            return self.encode(hour);
        }
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        let pm = if hour >= 12 { HOUR_PM } else { 0 };
        self.encode(h12) | pm
    }

    fn decode_hour(&self, v: u8) -> u8 {
        if self.reg_b() & B_24H != 0 {
            return self.decode(v);
        }
        let h12 = self.decode(v & !HOUR_PM) % 12; // 12 o'clock is 0
        if v & HOUR_PM != 0 { h12 + 12 } else { h12 }
    }

    fn read_register(&mut self, index: u8) -> u8 {
        match index {
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_WEEKDAY | REG_DAY | REG_MONTH
            | REG_YEAR | REG_CENTURY => {
                let t = self.current();
                match index {
                    REG_SECONDS => self.encode(t.second),
                    REG_MINUTES => self.encode(t.minute),
                    REG_HOURS => self.encode_hour(t.hour),
                    REG_WEEKDAY => self.encode(t.weekday),
                    REG_DAY => self.encode(t.day),
                    REG_MONTH => self.encode(t.month),
                    REG_YEAR => self.encode(t.year.rem_euclid(100) as u8),
                    _ => self.encode(t.year.div_euclid(100).clamp(0, 99) as u8),
                }
            }
            REG_A => {
                let a = self.nvram[usize::from(REG_A)] & !A_UIP;
                a | if self.update_in_progress() { A_UIP } else { 0 }
            }
            REG_C => {
                let (second, _) = self.guest_unix_time();
                let mut c = 0;
                if self.frozen.is_none() && second != self.last_c_read_second {
                    c |= C_UF;
                    if self.reg_b() & B_UIE != 0 {
                        c |= C_IRQF;
                    }
                }
                self.last_c_read_second = second;
                c
            }
            REG_D => D_VRT,
            _ => self.nvram[usize::from(index) % NVRAM_SIZE],
        }
    }

    /// UIP: set in the last 244 µs before a second boundary, unless the
    /// clock is frozen (SET) or the divider is not running normally.
    fn update_in_progress(&self) -> bool {
        if self.frozen.is_some()
            || self.nvram[usize::from(REG_A)] & A_DIVIDER_MASK != A_DIVIDER_NORMAL
        {
            return false;
        }
        let (_, nanos) = self.guest_unix_time();
        Duration::from_nanos(u64::from(nanos)) >= Duration::from_secs(1) - UIP_LEAD
    }

    fn write_register(&mut self, index: u8, value: u8) {
        match index {
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_WEEKDAY | REG_DAY | REG_MONTH
            | REG_YEAR | REG_CENTURY => self.write_time(index, value),
            REG_A => {
                // UIP is read-only.
                self.nvram[usize::from(REG_A)] = value & !A_UIP;
            }
            REG_B => {
                let old = self.reg_b();
                let mut new = value;
                if new & B_SET != 0 {
                    // The datasheet: setting SET clears UIE.
                    new &= !B_UIE;
                    if old & B_SET == 0 {
                        self.frozen = Some(self.current());
                    }
                } else if let Some(t) = self.frozen.take() {
                    self.set_guest_time(t);
                }
                self.nvram[usize::from(REG_B)] = new;
            }
            // C and D are read-only.
            REG_C | REG_D => {}
            _ => self.nvram[usize::from(index) % NVRAM_SIZE] = value,
        }
    }

    fn write_time(&mut self, index: u8, value: u8) {
        let mut t = self.current();
        match index {
            REG_SECONDS => t.second = self.decode(value),
            REG_MINUTES => t.minute = self.decode(value),
            REG_HOURS => t.hour = self.decode_hour(value),
            REG_WEEKDAY => t.weekday = self.decode(value),
            REG_DAY => t.day = self.decode(value),
            REG_MONTH => t.month = self.decode(value),
            REG_YEAR => t.year = t.year.div_euclid(100) * 100 + i64::from(self.decode(value) % 100),
            _ => t.year = i64::from(self.decode(value)) * 100 + t.year.rem_euclid(100),
        }
        match &mut self.frozen {
            Some(frozen) => *frozen = t,
            // Without SET the chip would take the value at the next update;
            // we apply it at once.
            None => self.set_guest_time(t),
        }
    }

    /// Moves the guest clock so that it reads `t` now.
    fn set_guest_time(&mut self, t: DateTime) {
        let host_secs = i64::try_from((self.clock)().as_secs()).unwrap_or(i64::MAX);
        self.offset_secs = t.to_unix().saturating_sub(host_secs);
    }

    /// Seconds the guest clock is ahead of the host (negative: behind).
    pub fn offset_secs(&self) -> i64 {
        self.offset_secs
    }
}

impl BusDevice for Cmos {
    /// Byte-wide ports; wider accesses are split into consecutive byte
    /// accesses (so a 16-bit write at the index port writes index then
    /// data, as the ISA bus would).
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = match offset.checked_add(i as u64) {
                // The index port is write-only.
                Some(1) => self.read_register(self.index),
                _ => 0xff,
            };
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, &byte) in data.iter().enumerate() {
            match offset.checked_add(i as u64) {
                // Bit 7 of the index port is the NMI mask: we have no NMI
                // source to mask, so it is dropped.
                Some(0) => self.index = byte & 0x7f,
                Some(1) => self.write_register(self.index, byte),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    const GIB: u64 = 1024 * MIB;

    /// A clock the test moves by hand (nanoseconds since the epoch).
    fn fake_clock(nanos: u64) -> (Arc<AtomicU64>, Clock) {
        let t = Arc::new(AtomicU64::new(nanos));
        let t2 = t.clone();
        (
            t,
            Box::new(move || Duration::from_nanos(t2.load(Ordering::SeqCst))),
        )
    }

    fn cmos_at(unix_secs: u64) -> (Arc<AtomicU64>, Cmos) {
        let (t, clock) = fake_clock(unix_secs * 1_000_000_000 + 500_000_000);
        (t, Cmos::with_clock(512 * MIB, 0, 1, clock))
    }

    fn rd(c: &mut Cmos, index: u8) -> u8 {
        c.write(0, &[index]);
        let mut b = [0u8];
        c.read(1, &mut b);
        b[0]
    }

    fn wr(c: &mut Cmos, index: u8, value: u8) {
        c.write(0, &[index]);
        c.write(1, &[value]);
    }

    // 2024-05-06 15:04:05 UTC, a Monday.
    const T0: u64 = 1_715_007_845;

    #[test]
    fn bcd_24h_by_default() {
        let (_t, mut c) = cmos_at(T0);
        assert_eq!(rd(&mut c, REG_B), 0x02);
        assert_eq!(rd(&mut c, REG_SECONDS), 0x05);
        assert_eq!(rd(&mut c, REG_MINUTES), 0x04);
        assert_eq!(rd(&mut c, REG_HOURS), 0x15);
        assert_eq!(rd(&mut c, REG_WEEKDAY), 0x02);
        assert_eq!(rd(&mut c, REG_DAY), 0x06);
        assert_eq!(rd(&mut c, REG_MONTH), 0x05);
        assert_eq!(rd(&mut c, REG_YEAR), 0x24);
        assert_eq!(rd(&mut c, REG_CENTURY), 0x20);
        assert_eq!(rd(&mut c, REG_D), D_VRT);
        assert_eq!(rd(&mut c, REG_A), A_DEFAULT);
    }

    #[test]
    fn binary_mode() {
        let (_t, mut c) = cmos_at(T0);
        wr(&mut c, REG_B, B_24H | B_BINARY);
        assert_eq!(rd(&mut c, REG_HOURS), 15);
        assert_eq!(rd(&mut c, REG_YEAR), 24);
        assert_eq!(rd(&mut c, REG_CENTURY), 20);
        assert_eq!(rd(&mut c, REG_DAY), 6);
    }

    #[test]
    fn twelve_hour_mode() {
        let (t, mut c) = cmos_at(T0);
        wr(&mut c, REG_B, 0); // 12 h, BCD
        assert_eq!(rd(&mut c, REG_HOURS), HOUR_PM | 0x03);
        wr(&mut c, REG_B, B_BINARY); // 12 h, binary
        assert_eq!(rd(&mut c, REG_HOURS), HOUR_PM | 3);
        // 00:30 is 12 AM; 12:xx is 12 PM.
        t.store(1_714_955_400 * 1_000_000_000, Ordering::SeqCst);
        assert_eq!(rd(&mut c, REG_HOURS), 12);
        t.store(
            (1_714_955_400 + 12 * 3600) * 1_000_000_000,
            Ordering::SeqCst,
        );
        assert_eq!(rd(&mut c, REG_HOURS), HOUR_PM | 12);
    }

    #[test]
    fn uip_is_set_only_just_before_the_second_boundary() {
        let (t, mut c) = cmos_at(T0);
        assert_eq!(rd(&mut c, REG_A) & A_UIP, 0);
        t.store(T0 * 1_000_000_000 + 999_800_000, Ordering::SeqCst);
        assert_ne!(rd(&mut c, REG_A) & A_UIP, 0);
        t.store((T0 + 1) * 1_000_000_000 + 1_000, Ordering::SeqCst);
        assert_eq!(rd(&mut c, REG_A) & A_UIP, 0);
        // Frozen clock: no updates, no UIP.
        t.store(T0 * 1_000_000_000 + 999_900_000, Ordering::SeqCst);
        wr(&mut c, REG_B, B_SET | B_24H);
        assert_eq!(rd(&mut c, REG_A) & A_UIP, 0);
        // UIP itself cannot be written.
        wr(&mut c, REG_B, B_24H);
        wr(&mut c, REG_A, 0xa6);
        t.store(T0 * 1_000_000_000, Ordering::SeqCst);
        assert_eq!(rd(&mut c, REG_A), 0x26);
    }

    #[test]
    fn uip_clears_within_bounded_time_on_the_real_clock() {
        let mut c = Cmos::new(512 * MIB, 0, 1);
        let start = std::time::Instant::now();
        // Watch UIP across at least one second boundary: whenever it is
        // seen set, it must clear again within a few milliseconds.
        while start.elapsed() < Duration::from_millis(1100) {
            if rd(&mut c, REG_A) & A_UIP != 0 {
                let since = std::time::Instant::now();
                while rd(&mut c, REG_A) & A_UIP != 0 {
                    assert!(since.elapsed() < Duration::from_millis(5), "UIP stuck");
                }
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    #[test]
    fn time_matches_the_host_clock() {
        let mut c = Cmos::new(512 * MIB, 0, 1);
        wr(&mut c, REG_B, B_24H | B_BINARY);
        let t = DateTime {
            second: rd(&mut c, REG_SECONDS),
            minute: rd(&mut c, REG_MINUTES),
            hour: rd(&mut c, REG_HOURS),
            weekday: rd(&mut c, REG_WEEKDAY),
            day: rd(&mut c, REG_DAY),
            month: rd(&mut c, REG_MONTH),
            year: i64::from(rd(&mut c, REG_CENTURY)) * 100 + i64::from(rd(&mut c, REG_YEAR)),
        };
        let host = host_clock().as_secs() as i64;
        assert!((t.to_unix() - host).abs() <= 2, "{t:?} vs {host}");
        assert_eq!(DateTime::from_unix(t.to_unix()).weekday, t.weekday);
    }

    #[test]
    fn guest_set_time_moves_an_offset() {
        let (t, mut c) = cmos_at(T0);
        wr(&mut c, REG_B, B_SET | B_24H);
        // Frozen: time does not advance while SET.
        t.fetch_add(3_000_000_000, Ordering::SeqCst);
        assert_eq!(rd(&mut c, REG_SECONDS), 0x05);
        wr(&mut c, REG_YEAR, 0x30);
        wr(&mut c, REG_HOURS, 0x01);
        wr(&mut c, REG_SECONDS, 0x00);
        wr(&mut c, REG_B, B_24H);
        assert_eq!(rd(&mut c, REG_YEAR), 0x30);
        assert_eq!(rd(&mut c, REG_HOURS), 0x01);
        assert_eq!(rd(&mut c, REG_SECONDS), 0x00);
        // And it runs from there with the host clock.
        t.fetch_add(5_000_000_000, Ordering::SeqCst);
        assert_eq!(rd(&mut c, REG_SECONDS), 0x05);
        assert_eq!(rd(&mut c, REG_MINUTES), 0x04);
        assert_eq!(rd(&mut c, REG_DAY), 0x06);
        assert!(c.offset_secs() > 5 * 365 * 86_400);

        // A write without SET applies at once.
        wr(&mut c, REG_YEAR, 0x24);
        assert_eq!(rd(&mut c, REG_YEAR), 0x24);
    }

    #[test]
    fn register_c_reports_update_ended_and_clears() {
        let (t, mut c) = cmos_at(T0);
        assert_eq!(rd(&mut c, REG_C), 0);
        t.fetch_add(1_000_000_000, Ordering::SeqCst);
        assert_eq!(rd(&mut c, REG_C), C_UF);
        assert_eq!(rd(&mut c, REG_C), 0);
        wr(&mut c, REG_C, 0xff);
        wr(&mut c, REG_D, 0x00);
        assert_eq!(rd(&mut c, REG_D), D_VRT);
    }

    fn mem_bytes(c: &mut Cmos) -> (u16, u16, u16, u16, u32, u8) {
        let w = |c: &mut Cmos, lo: usize| {
            u16::from(rd(c, lo as u8)) | (u16::from(rd(c, lo as u8 + 1)) << 8)
        };
        let base = w(c, NV_BASE_MEM_LO);
        let ext = w(c, NV_EXT_MEM_LO);
        let ext2 = w(c, NV_EXT_MEM2_LO);
        let above16 = w(c, NV_MEM_ABOVE_16M_LO);
        let above4g =
            u32::from(rd(c, 0x5b)) | u32::from(rd(c, 0x5c)) << 8 | u32::from(rd(c, 0x5d)) << 16;
        (base, ext, ext2, above16, above4g, rd(c, 0x5f))
    }

    #[test]
    fn memory_size_bytes() {
        // 512 MiB: 496 MiB above 16 MiB = 7936 blocks of 64 KiB.
        let mut c = Cmos::for_total_ram(512 * MIB, 1);
        assert_eq!(mem_bytes(&mut c), (640, 0xffff, 0xffff, 7936, 0, 0));
        // 3 GiB fills exactly up to the PCI hole.
        let mut c = Cmos::for_total_ram(3 * GIB, 2);
        assert_eq!(mem_bytes(&mut c), (640, 0xffff, 0xffff, 0xbf00, 0, 1));
        // 8 GiB: 3 GiB below the hole, 5 GiB above 4 GiB = 0x14000 blocks.
        let mut c = Cmos::for_total_ram(8 * GIB, 4);
        assert_eq!(
            mem_bytes(&mut c),
            (640, 0xffff, 0xffff, 0xbf00, 0x1_4000, 3)
        );
        assert_eq!(
            (rd(&mut c, 0x5b), rd(&mut c, 0x5c), rd(&mut c, 0x5d)),
            (0x00, 0x40, 0x01)
        );
        // Tiny VM: extended memory not saturated.
        let mut c = Cmos::new(32 * MIB, 0, 1);
        assert_eq!(mem_bytes(&mut c), (640, 31 * 1024, 31 * 1024, 256, 0, 0));
    }

    #[test]
    fn index_bit7_is_the_nmi_mask_and_ignored() {
        let (_t, mut c) = cmos_at(T0);
        assert_eq!(rd(&mut c, 0x80 | REG_HOURS), rd(&mut c, REG_HOURS));
        wr(&mut c, 0x80 | 0x40, 0xab);
        assert_eq!(rd(&mut c, 0x40), 0xab);
        assert_eq!(rd(&mut c, 0xff), rd(&mut c, 0x7f));
    }

    #[test]
    fn odd_accesses_never_panic() {
        let (_t, mut c) = cmos_at(T0);
        for index in 0..=255u8 {
            for value in [0x00u8, 0x5a, 0x99, 0xff] {
                wr(&mut c, index, value);
                let _ = rd(&mut c, index);
            }
        }
        for offset in [0u64, 1, 2, 100, u64::MAX] {
            for width in [0usize, 1, 2, 4, 8] {
                let mut buf = vec![0xffu8; width];
                c.read(offset, &mut buf);
                c.write(offset, &buf);
            }
        }
        // Garbage time written by a guest still reads back sanely.
        wr(&mut c, REG_B, B_24H);
        for index in [
            REG_SECONDS,
            REG_MINUTES,
            REG_HOURS,
            REG_DAY,
            REG_MONTH,
            REG_YEAR,
            REG_CENTURY,
        ] {
            wr(&mut c, index, 0xff);
        }
        let _ = rd(&mut c, REG_SECONDS);
        // A 16-bit write at the index port writes index, then data.
        c.write(0, &[0x41, 0x77]);
        assert_eq!(rd(&mut c, 0x41), 0x77);
        // The index port reads as undriven.
        let mut b = [0u8];
        c.read(0, &mut b);
        assert_eq!(b[0], 0xff);
    }
}
