//! The reset register: the PIIX3 Reset Control Register at `PORT_RESET`
//! (0xcf9), which the FADT also names as the ACPI reset register. Linux
//! reboots through it by default (reboot=acpi), SeaBIOS too.
//!
//! Insert at `PORT_RESET`, length 1. That port is inside the dword of the
//! PCI CONFIG_ADDRESS register (0xcf8..0xcfb); the bus dispatches by the
//! start of an access, so dword accesses at 0xcf8 still reach the PCI host
//! bridge, and only accesses that start at 0xcf9 come here.

use crate::bus::BusDevice;
use crate::power::{PowerAction, PowerControl};

/// Value the FADT tells the OS to write: reset CPU | hard reset.
pub const RESET_VALUE: u8 = 0x06;
/// RCR bit 2: reset the CPU. Any write with it set resets the VM (0x04 soft,
/// 0x06 hard, 0x0e full reset all end the same way for a VM).
const RCR_RESET_CPU: u8 = 1 << 2;

pub struct ResetDevice {
    power: PowerControl,
    value: u8,
}

impl ResetDevice {
    pub fn new(power: PowerControl) -> Self {
        ResetDevice { power, value: 0 }
    }
}

impl BusDevice for ResetDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset == 0
            && let Some(b) = data.first_mut()
        {
            *b = self.value;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset != 0 {
            return;
        }
        let Some(&value) = data.first() else { return };
        self.value = value;
        if value & RCR_RESET_CPU != 0 {
            self.power.request(PowerAction::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_bit_requests_reset() {
        for value in [0x06u8, 0x04, 0x0e] {
            let power = PowerControl::new().unwrap();
            let mut dev = ResetDevice::new(power.clone());
            dev.write(0, &[value]);
            assert_eq!(power.pending(), Some(PowerAction::Reset), "{value:#x}");
            let mut b = [0u8; 1];
            dev.read(0, &mut b);
            assert_eq!(b[0], value);
        }
    }

    #[test]
    fn other_writes_only_store_the_value() {
        let power = PowerControl::new().unwrap();
        let mut dev = ResetDevice::new(power.clone());
        // Linux's 0xcf9 reboot first writes the reset type without the
        // reset bit.
        dev.write(0, &[0x02]);
        dev.write(1, &[0x06]);
        dev.write(0, &[]);
        assert_eq!(power.pending(), None);
        let mut b = [0xffu8; 4];
        dev.read(0, &mut b);
        assert_eq!(b, [0x02, 0, 0, 0]);
        dev.read(1, &mut b[..1]);
        assert_eq!(b[0], 0);
    }
}
