//! A type-0 PCI configuration space (256 bytes): identity registers, a
//! 32-bit memory BAR the guest can size and move, and a capability list.

/// Standard header offsets.
const VENDOR_ID: usize = 0x00;
const DEVICE_ID: usize = 0x02;
pub const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const REVISION: usize = 0x08;
const CLASS_PROG: usize = 0x09;
const HEADER_TYPE: usize = 0x0e;
pub const BAR0: usize = 0x10;
const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
const SUBSYSTEM_ID: usize = 0x2e;
const CAPABILITIES_POINTER: usize = 0x34;
const INTERRUPT_LINE: usize = 0x3c;
const STATUS_CAPABILITIES: u16 = 1 << 4;
pub const COMMAND_MEMORY: u16 = 1 << 1;
const FIRST_CAPABILITY: usize = 0x40;
const BAR_COUNT: usize = 6;

pub struct PciIds {
    pub vendor: u16,
    pub device: u16,
    pub revision: u8,
    /// class << 16 | subclass << 8 | prog-if
    pub class: u32,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
}

/// A BAR whose address the guest changed (while decoding is enabled or
/// not: the bus follows the register, as hardware decodes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarMove {
    pub index: usize,
    pub old: u64,
    pub new: u64,
    pub len: u64,
}

pub struct ConfigSpace {
    regs: [u8; 256],
    /// Bits the guest may change.
    writable: [u8; 256],
    bar_sizes: [u64; BAR_COUNT],
    next_capability: usize,
    last_capability: Option<usize>,
}

impl ConfigSpace {
    pub fn new(ids: &PciIds) -> Self {
        let mut c = ConfigSpace {
            regs: [0; 256],
            writable: [0; 256],
            bar_sizes: [0; BAR_COUNT],
            next_capability: FIRST_CAPABILITY,
            last_capability: None,
        };
        c.set_u16(VENDOR_ID, ids.vendor);
        c.set_u16(DEVICE_ID, ids.device);
        c.regs[REVISION] = ids.revision;
        c.regs[CLASS_PROG] = ids.class as u8;
        c.regs[CLASS_PROG + 1] = (ids.class >> 8) as u8;
        c.regs[CLASS_PROG + 2] = (ids.class >> 16) as u8;
        c.regs[HEADER_TYPE] = 0;
        c.set_u16(SUBSYSTEM_VENDOR_ID, ids.subsystem_vendor);
        c.set_u16(SUBSYSTEM_ID, ids.subsystem);
        // I/O, memory, bus master, INTx disable are the guest's to set.
        c.writable[COMMAND] = 0x07;
        c.writable[COMMAND + 1] = 0x04;
        c.writable[INTERRUPT_LINE] = 0xff;
        c
    }

    /// Lets the guest change the bits of `mask` from `offset` on (a
    /// device-specific register the device only stores).
    pub fn set_writable(&mut self, offset: usize, mask: &[u8]) {
        for (i, m) in mask.iter().enumerate() {
            if let Some(w) = self.writable.get_mut(offset + i) {
                *w = *m;
            }
        }
    }

    fn set_u16(&mut self, offset: usize, value: u16) {
        self.regs[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    }

    pub fn u16_at(&self, offset: usize) -> u16 {
        u16::from_le_bytes([self.regs[offset], self.regs[offset + 1]])
    }

    pub fn u32_at(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.regs[offset..offset + 4].try_into().unwrap_or([0; 4]))
    }

    /// Declares a 32-bit, non-prefetchable memory BAR of `len` bytes (a
    /// power of two) at `addr`.
    pub fn add_memory_bar(&mut self, index: usize, addr: u32, len: u32) {
        debug_assert!(len.is_power_of_two() && index < BAR_COUNT);
        let offset = BAR0 + 4 * index;
        self.regs[offset..offset + 4].copy_from_slice(&addr.to_le_bytes());
        let mask = !(len - 1);
        self.writable[offset..offset + 4].copy_from_slice(&mask.to_le_bytes());
        self.bar_sizes[index] = u64::from(len);
    }

    pub fn bar_address(&self, index: usize) -> u64 {
        u64::from(self.u32_at(BAR0 + 4 * index) & !0xf)
    }

    pub fn memory_enabled(&self) -> bool {
        self.u16_at(COMMAND) & COMMAND_MEMORY != 0
    }

    /// Appends a capability: `body` starts after the ID and next-pointer
    /// bytes. `writable` marks guest-writable bits within the body. Returns
    /// the capability's offset.
    pub fn add_capability(&mut self, id: u8, body: &[u8], writable: &[u8]) -> usize {
        let offset = self.next_capability;
        let len = 2 + body.len();
        debug_assert!(offset + len <= 256);
        self.regs[offset] = id;
        self.regs[offset + 1] = 0;
        self.regs[offset + 2..offset + len].copy_from_slice(body);
        for (i, w) in writable.iter().enumerate() {
            self.writable[offset + 2 + i] = *w;
        }
        match self.last_capability {
            Some(last) => self.regs[last + 1] = offset as u8,
            None => {
                self.regs[CAPABILITIES_POINTER] = offset as u8;
                let status = self.u16_at(STATUS) | STATUS_CAPABILITIES;
                self.set_u16(STATUS, status);
            }
        }
        self.last_capability = Some(offset);
        // Capabilities are dword aligned.
        self.next_capability = (offset + len + 3) & !3;
        offset
    }

    pub fn read(&self, offset: usize, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.regs.get(offset + i).copied().unwrap_or(0xff);
        }
    }

    /// Writes through the write mask; reports a BAR the write moved.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Option<BarMove> {
        let before: [u64; BAR_COUNT] = std::array::from_fn(|i| self.bar_address(i));
        for (i, b) in data.iter().enumerate() {
            let at = offset + i;
            if at >= 256 {
                break;
            }
            let w = self.writable[at];
            self.regs[at] = (self.regs[at] & !w) | (b & w);
        }
        (0..BAR_COUNT)
            .filter(|&i| self.bar_sizes[i] != 0)
            .find(|&i| self.bar_address(i) != before[i])
            .map(|index| BarMove {
                index,
                old: before[index],
                new: self.bar_address(index),
                len: self.bar_sizes[index],
            })
    }

    /// The raw bytes (for capabilities the device reads back).
    pub fn bytes(&self) -> &[u8; 256] {
        &self.regs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> ConfigSpace {
        ConfigSpace::new(&PciIds {
            vendor: 0x1af4,
            device: 0x1042,
            revision: 1,
            class: 0x018000,
            subsystem_vendor: 0x1af4,
            subsystem: 0x40,
        })
    }

    #[test]
    fn bar_sizing_and_moves() {
        let mut c = space();
        c.add_memory_bar(0, 0xc000_0000, 0x1_0000);
        assert!(c.write(BAR0, &0xffff_ffffu32.to_le_bytes()).is_some());
        assert_eq!(c.u32_at(BAR0), 0xffff_0000);
        let moved = c.write(BAR0, &0xd000_0000u32.to_le_bytes()).unwrap();
        assert_eq!(
            (moved.old, moved.new, moved.len),
            (0xffff_0000, 0xd000_0000, 0x1_0000)
        );
        // Read-only identity registers stay.
        c.write(0, &[0, 0, 0, 0]);
        assert_eq!(c.u16_at(VENDOR_ID), 0x1af4);
        // Unused BARs read 0 and cannot be set.
        assert!(c.write(BAR0 + 4, &[0xff; 4]).is_none());
        assert_eq!(c.u32_at(BAR0 + 4), 0);
    }

    #[test]
    fn capability_chain() {
        let mut c = space();
        let a = c.add_capability(0x09, &[1, 2, 3], &[]);
        let b = c.add_capability(0x11, &[0; 10], &[0xff]);
        assert_eq!(c.bytes()[CAPABILITIES_POINTER] as usize, a);
        assert_eq!(c.bytes()[a + 1] as usize, b);
        assert_eq!(c.bytes()[b + 1], 0);
        assert_ne!(c.u16_at(STATUS) & STATUS_CAPABILITIES, 0);
        let mut out = [0u8; 4];
        c.read(252, &mut out);
        c.read(255, &mut out[..1]);
        c.write(b + 2, &[0xab, 0xcd]);
        assert_eq!(c.bytes()[b + 2..b + 4], [0xab, 0]);
    }
}
