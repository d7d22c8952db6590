//! An i8042 keyboard controller, as much of it as firmware and Linux need:
//! the reset line (command 0xFE, the "reboot=k" path), the probing commands
//! that SeaBIOS's ps2port.c and Linux's i8042/atkbd drivers issue, and a
//! keyboard that acknowledges its commands but never types anything.
//!
//! There is no AUX (mouse) port: commands addressed to it answer at once
//! with a transmit timeout, so that Linux's `i8042_check_aux()` decides
//! "no AUX port" in two commands instead of waiting 250 ms for an IRQ 12
//! that would never come.
//!
//! The keyboard interrupt (IRQ 1) is an [`EventFd`]: register
//! [`I8042::kbd_interrupt_evt`] as an irqfd for GSI [`IRQ_KBD`]. Each write
//! to it is one edge, raised whenever a byte for the keyboard side reaches
//! the head of the output buffer with interrupts enabled in the command
//! byte; Linux's atkbd waits for its ACKs through that interrupt.
//!
//! The device sits on the port bus twice, at `PORT_I8042_DATA` (offset 0 =
//! data) and at `PORT_I8042_COMMAND` (offset 0 = status/command), each one
//! port long; share one `Arc<Mutex<I8042>>` between them through the two
//! [`I8042Port`] views.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use thiserror::Error;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::bus::BusDevice;
use crate::power::{PowerAction, PowerControl};

/// ISA IRQ of the keyboard port (not in `layout.rs`; the PC fixes it).
pub const IRQ_KBD: u32 = 1;

// Status register bits.
const SR_OBF: u8 = 0x01; // output buffer full
const SR_SYS: u8 = 0x04; // system flag (mirrors the command byte)
const SR_CMD: u8 = 0x08; // last write went to the command port
const SR_UNLOCKED: u8 = 0x10; // keyboard not inhibited (no keylock)
const SR_AUX: u8 = 0x20; // the byte in the output buffer is from AUX
const SR_TIMEOUT: u8 = 0x40;

// Command byte (controller RAM byte 0) bits.
const CTR_KBDINT: u8 = 0x01;
const CTR_SYS: u8 = 0x04;
const CTR_KBDDIS: u8 = 0x10;
const CTR_AUXDIS: u8 = 0x20;
const CTR_XLATE: u8 = 0x40;

/// What a PC BIOS leaves behind: translation on, mouse disabled, system
/// flag set, keyboard interrupt on. Seen by directly booted kernels.
const DEFAULT_CTR: u8 = CTR_XLATE | CTR_AUXDIS | CTR_SYS | CTR_KBDINT;

/// Output port: bit 0 = reset line (active low), bit 1 = A20 gate.
const OUTP_RESET_INACTIVE: u8 = 0x01;
const DEFAULT_OUTPUT_PORT: u8 = 0x03;

// Controller commands.
const CMD_READ_RAM_FIRST: u8 = 0x20; // 0x20 = read command byte
const CMD_READ_RAM_LAST: u8 = 0x3f;
const CMD_WRITE_RAM_FIRST: u8 = 0x60; // 0x60 = write command byte
const CMD_WRITE_RAM_LAST: u8 = 0x7f;
const CMD_AUX_DISABLE: u8 = 0xa7;
const CMD_AUX_ENABLE: u8 = 0xa8;
const CMD_AUX_TEST: u8 = 0xa9;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_KBD_TEST: u8 = 0xab;
const CMD_KBD_DISABLE: u8 = 0xad;
const CMD_KBD_ENABLE: u8 = 0xae;
const CMD_READ_INPUT_PORT: u8 = 0xc0;
const CMD_READ_OUTPUT_PORT: u8 = 0xd0;
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
const CMD_WRITE_KBD_OUTBUF: u8 = 0xd2;
const CMD_WRITE_AUX_OUTBUF: u8 = 0xd3;
const CMD_WRITE_AUX: u8 = 0xd4;
const CMD_READ_TEST_INPUTS: u8 = 0xe0;
const CMD_PULSE_FIRST: u8 = 0xf0; // 0xf0..=0xff pulse output lines

const SELF_TEST_OK: u8 = 0x55;
const INTERFACE_TEST_OK: u8 = 0x00;
/// AUX interface test result "clock line stuck high": nothing is wired.
const AUX_TEST_ABSENT: u8 = 0x02;

// Keyboard commands and replies.
const KBD_SET_LEDS: u8 = 0xed;
const KBD_ECHO: u8 = 0xee;
const KBD_SCANCODE_SET: u8 = 0xf0;
const KBD_GET_ID: u8 = 0xf2;
const KBD_SET_TYPEMATIC: u8 = 0xf3;
const KBD_RESET: u8 = 0xff;
const KBD_ACK: u8 = 0xfa;
const KBD_RESEND: u8 = 0xfe;
const KBD_BAT_OK: u8 = 0xaa;

/// The real controller holds one byte; we queue a few so that multi-byte
/// replies (ACK + BAT code) need no timers. Bounded: a guest spamming
/// commands without reading just loses replies.
const OUTPUT_QUEUE_LIMIT: usize = 16;

#[derive(Debug, Error)]
pub enum I8042Error {
    #[error("cannot create the keyboard interrupt eventfd: {0}")]
    EventFd(#[source] io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OutByte {
    value: u8,
    aux: bool,
    timeout: bool,
}

/// What the next byte written to the data port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataTarget {
    /// A command for the keyboard.
    Keyboard,
    /// The parameter of a keyboard command (0xED, 0xF0, 0xF3).
    KeyboardParam(u8),
    /// Controller RAM byte (0x60..=0x7f).
    WriteRam(u8),
    WriteOutputPort,
    WriteKbdOutbuf,
    WriteAuxOutbuf,
    WriteAux,
}

pub struct I8042 {
    power: PowerControl,
    kbd_interrupt: EventFd,
    /// Controller RAM; byte 0 is the command byte (CTR).
    ram: [u8; 32],
    output_port: u8,
    out: VecDeque<OutByte>,
    /// What the data port returns when the buffer is empty: the last byte,
    /// as real hardware does.
    last_out: u8,
    last_write_was_command: bool,
    data_target: DataTarget,
    scancode_set: u8,
    /// Interrupt edges we failed to signal (eventfd counter saturated).
    lost_interrupts: u64,
}

impl I8042 {
    pub fn new(power: PowerControl) -> Result<Self, I8042Error> {
        let kbd_interrupt = EventFd::new(EFD_NONBLOCK).map_err(I8042Error::EventFd)?;
        let mut ram = [0u8; 32];
        ram[0] = DEFAULT_CTR;
        Ok(I8042 {
            power,
            kbd_interrupt,
            ram,
            output_port: DEFAULT_OUTPUT_PORT,
            out: VecDeque::new(),
            last_out: 0,
            last_write_was_command: false,
            data_target: DataTarget::Keyboard,
            scancode_set: 2,
            lost_interrupts: 0,
        })
    }

    /// Register this with KVM as an irqfd for GSI [`IRQ_KBD`].
    pub fn kbd_interrupt_evt(&self) -> &EventFd {
        &self.kbd_interrupt
    }

    /// Reads the status register (command port).
    pub fn read_status(&self) -> u8 {
        let mut status = SR_UNLOCKED;
        if self.ctr() & CTR_SYS != 0 {
            status |= SR_SYS;
        }
        if self.last_write_was_command {
            status |= SR_CMD;
        }
        if let Some(head) = self.out.front() {
            status |= SR_OBF;
            if head.aux {
                status |= SR_AUX;
            }
            if head.timeout {
                status |= SR_TIMEOUT;
            }
        }
        status
    }

    /// Reads the data port: pops the output buffer.
    pub fn read_data(&mut self) -> u8 {
        if let Some(byte) = self.out.pop_front() {
            self.last_out = byte.value;
            // The next byte (e.g. 0xAA after the ACK of a reset) is a new
            // "output buffer full" event of its own.
            self.head_changed();
        }
        self.last_out
    }

    /// Writes the command port.
    pub fn write_command(&mut self, cmd: u8) {
        self.last_write_was_command = true;
        // A new command abandons a half-written one, as on hardware.
        self.data_target = DataTarget::Keyboard;
        match cmd {
            CMD_READ_RAM_FIRST..=CMD_READ_RAM_LAST => {
                self.push_controller(self.ram[usize::from(cmd - CMD_READ_RAM_FIRST)]);
            }
            CMD_WRITE_RAM_FIRST..=CMD_WRITE_RAM_LAST => {
                self.data_target = DataTarget::WriteRam(cmd - CMD_WRITE_RAM_FIRST);
            }
            CMD_AUX_DISABLE => self.ram[0] |= CTR_AUXDIS,
            CMD_AUX_ENABLE => self.ram[0] &= !CTR_AUXDIS,
            CMD_AUX_TEST => self.push_controller(AUX_TEST_ABSENT),
            CMD_SELF_TEST => {
                // A passed self-test sets the system flag.
                self.ram[0] |= CTR_SYS;
                self.push_controller(SELF_TEST_OK);
            }
            CMD_KBD_TEST => self.push_controller(INTERFACE_TEST_OK),
            CMD_KBD_DISABLE => self.ram[0] |= CTR_KBDDIS,
            CMD_KBD_ENABLE => self.ram[0] &= !CTR_KBDDIS,
            // Input port: bit 7 = keyboard not inhibited, bit 5 = no
            // manufacturing jumper; the rest is board-specific.
            CMD_READ_INPUT_PORT => self.push_controller(0xa0),
            CMD_READ_OUTPUT_PORT => self.push_controller(self.output_port),
            CMD_WRITE_OUTPUT_PORT => self.data_target = DataTarget::WriteOutputPort,
            CMD_WRITE_KBD_OUTBUF => self.data_target = DataTarget::WriteKbdOutbuf,
            CMD_WRITE_AUX_OUTBUF => self.data_target = DataTarget::WriteAuxOutbuf,
            CMD_WRITE_AUX => self.data_target = DataTarget::WriteAux,
            CMD_READ_TEST_INPUTS => self.push_controller(0x00),
            // Bits 0-3 select output lines to pulse, active low; bit 0 is the
            // CPU reset line. 0xFE is the classic reboot.
            CMD_PULSE_FIRST..=0xff if cmd & 0x01 == 0 => {
                self.power.request(PowerAction::Reset);
            }
            // Unknown or vendor commands: ignored, no reply (a real
            // controller does the same).
            _ => {}
        }
    }

    /// Writes the data port.
    pub fn write_data(&mut self, value: u8) {
        self.last_write_was_command = false;
        let target = std::mem::replace(&mut self.data_target, DataTarget::Keyboard);
        match target {
            DataTarget::Keyboard => self.keyboard_command(value),
            DataTarget::KeyboardParam(cmd) => self.keyboard_param(cmd, value),
            DataTarget::WriteRam(index) => {
                self.ram[usize::from(index & 0x1f)] = value;
                if index == 0 {
                    // Enabling the keyboard interrupt with a reply waiting
                    // raises it, as the level-driven IRQ line would.
                    self.head_changed();
                }
            }
            DataTarget::WriteOutputPort => {
                self.output_port = value;
                if value & OUTP_RESET_INACTIVE == 0 {
                    self.power.request(PowerAction::Reset);
                }
            }
            DataTarget::WriteKbdOutbuf => self.push(OutByte {
                value,
                aux: false,
                timeout: false,
            }),
            // No AUX port: anything addressed to it (the loopback of 0xD3
            // included) comes back as a transmit timeout, with the AUX flag
            // so that drivers attribute it to the right port.
            DataTarget::WriteAuxOutbuf | DataTarget::WriteAux => self.push(OutByte {
                value: KBD_RESEND,
                aux: true,
                timeout: true,
            }),
        }
    }

    /// Interrupt edges that could not be signalled (eventfd saturated).
    pub fn lost_interrupts(&self) -> u64 {
        self.lost_interrupts
    }

    fn ctr(&self) -> u8 {
        self.ram[0]
    }

    fn keyboard_command(&mut self, cmd: u8) {
        match cmd {
            KBD_RESET => {
                self.scancode_set = 2;
                self.push_kbd(KBD_ACK);
                self.push_kbd(KBD_BAT_OK);
            }
            KBD_GET_ID => {
                self.push_kbd(KBD_ACK);
                self.push_kbd(0xab);
                // MF2 keyboard: 0xAB 0x83, or 0x41 once the controller
                // translates it to set 1 (what Linux's atkbd expects).
                self.push_kbd(if self.ctr() & CTR_XLATE != 0 {
                    0x41
                } else {
                    0x83
                });
            }
            KBD_ECHO => self.push_kbd(KBD_ECHO),
            KBD_SET_LEDS | KBD_SCANCODE_SET | KBD_SET_TYPEMATIC => {
                self.push_kbd(KBD_ACK);
                self.data_target = DataTarget::KeyboardParam(cmd);
            }
            // Enable/disable scanning, set defaults, typematic/make/break
            // modes, resend: nothing to do but acknowledge.
            0xf4..=0xfe => self.push_kbd(KBD_ACK),
            _ => self.push_kbd(KBD_RESEND),
        }
    }

    fn keyboard_param(&mut self, cmd: u8, value: u8) {
        self.push_kbd(KBD_ACK);
        if cmd == KBD_SCANCODE_SET {
            match value {
                0 => {
                    // Query: report the set, translated if translation is on
                    // (set 2 reads back as 0x41 through the controller).
                    let set = self.scancode_set;
                    let reply = if self.ctr() & CTR_XLATE != 0 {
                        match set {
                            1 => 0x43,
                            2 => 0x41,
                            _ => 0x3f,
                        }
                    } else {
                        set
                    };
                    self.push_kbd(reply);
                }
                1..=3 => self.scancode_set = value,
                _ => {}
            }
        }
    }

    fn push_kbd(&mut self, value: u8) {
        self.push(OutByte {
            value,
            aux: false,
            timeout: false,
        });
    }

    /// Replies of the controller itself go through the keyboard side of the
    /// output buffer, like on hardware (and QEMU).
    fn push_controller(&mut self, value: u8) {
        self.push_kbd(value);
    }

    fn push(&mut self, byte: OutByte) {
        if self.out.len() >= OUTPUT_QUEUE_LIMIT {
            return;
        }
        self.out.push_back(byte);
        if self.out.len() == 1 {
            self.head_changed();
        }
    }

    /// A new byte is at the head of the output buffer: raise IRQ 1 if it is
    /// a keyboard-side byte and the keyboard interrupt is enabled.
    fn head_changed(&mut self) {
        let Some(head) = self.out.front() else {
            return;
        };
        if !head.aux && self.ctr() & CTR_KBDINT != 0 && self.kbd_interrupt.write(1).is_err() {
            self.lost_interrupts = self.lost_interrupts.saturating_add(1);
        }
    }
}

/// Which of the two ports a bus range is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum I8042PortKind {
    /// `PORT_I8042_DATA` (0x60).
    Data,
    /// `PORT_I8042_COMMAND` (0x64): status on read, command on write.
    Command,
}

/// One port of a shared [`I8042`], for the port bus. Insert
/// `I8042Port::new(dev.clone(), Data)` at `PORT_I8042_DATA` with length 1
/// and `I8042Port::new(dev, Command)` at `PORT_I8042_COMMAND` with length 1.
pub struct I8042Port {
    device: Arc<Mutex<I8042>>,
    kind: I8042PortKind,
}

impl I8042Port {
    pub fn new(device: Arc<Mutex<I8042>>, kind: I8042PortKind) -> Self {
        I8042Port { device, kind }
    }
}

impl BusDevice for I8042Port {
    /// The registers are one byte wide. A wider access reads the register
    /// in its first byte and 0xff (an undriven ISA bus) in the rest, and
    /// takes the first byte of a wide write; anything beyond the port is
    /// undriven too.
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if offset != 0 || data.is_empty() {
            return;
        }
        let mut dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        data[0] = match self.kind {
            I8042PortKind::Data => dev.read_data(),
            I8042PortKind::Command => dev.read_status(),
        };
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (0, Some(&value)) = (offset, data.first()) else {
            return;
        };
        let mut dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        match self.kind {
            I8042PortKind::Data => dev.write_data(value),
            I8042PortKind::Command => dev.write_command(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> (I8042, PowerControl) {
        let power = PowerControl::new().unwrap();
        (I8042::new(power.clone()).unwrap(), power)
    }

    /// Sends a controller command (and parameter) and collects the reply
    /// bytes by polling the status register, as a driver does.
    fn command(dev: &mut I8042, cmd: u8, param: Option<u8>) -> Vec<u8> {
        dev.write_command(cmd);
        if let Some(p) = param {
            dev.write_data(p);
        }
        read_all(dev)
    }

    fn kbd(dev: &mut I8042, byte: u8) -> Vec<u8> {
        dev.write_data(byte);
        read_all(dev)
    }

    fn read_all(dev: &mut I8042) -> Vec<u8> {
        let mut out = Vec::new();
        while dev.read_status() & SR_OBF != 0 {
            out.push(dev.read_data());
            assert!(out.len() <= OUTPUT_QUEUE_LIMIT);
        }
        out
    }

    #[test]
    fn pulse_reset_requests_a_reset() {
        let (mut dev, power) = device();
        assert_eq!(power.pending(), None);
        dev.write_command(0xff); // pulses nothing
        assert_eq!(power.pending(), None);
        dev.write_command(0xfe);
        assert_eq!(power.pending(), Some(PowerAction::Reset));
    }

    #[test]
    fn output_port_reset_bit_requests_a_reset() {
        let (mut dev, power) = device();
        command(&mut dev, CMD_WRITE_OUTPUT_PORT, Some(0xdf)); // A20 on
        assert_eq!(power.pending(), None);
        assert_eq!(command(&mut dev, CMD_READ_OUTPUT_PORT, None), [0xdf]);
        command(&mut dev, CMD_WRITE_OUTPUT_PORT, Some(0xde));
        assert_eq!(power.pending(), Some(PowerAction::Reset));
    }

    #[test]
    fn reset_through_the_bus_port() {
        let power = PowerControl::new().unwrap();
        let dev = Arc::new(Mutex::new(I8042::new(power.clone()).unwrap()));
        let mut cmd_port = I8042Port::new(dev.clone(), I8042PortKind::Command);
        let mut data_port = I8042Port::new(dev, I8042PortKind::Data);
        let mut status = [0u8];
        cmd_port.read(0, &mut status);
        assert_eq!(status[0] & 0x02, 0, "input buffer never busy");
        cmd_port.write(0, &[0xfe]);
        assert_eq!(power.pending(), Some(PowerAction::Reset));
        let mut b = [0u8; 2];
        data_port.read(0, &mut b);
        assert_eq!(b[1], 0xff);
    }

    #[test]
    fn linux_controller_probe_sequence() {
        let (mut dev, _power) = device();
        // i8042_controller_check: flush finds nothing.
        assert_eq!(read_all(&mut dev), Vec::<u8>::new());
        // i8042_controller_selftest.
        assert_eq!(command(&mut dev, CMD_SELF_TEST, None), [SELF_TEST_OK]);
        // i8042_controller_init: two identical CTR reads, then write back.
        let ctr = command(&mut dev, CMD_READ_RAM_FIRST, None);
        assert_eq!(command(&mut dev, CMD_READ_RAM_FIRST, None), ctr);
        assert_eq!(ctr, [DEFAULT_CTR]);
        assert_ne!(dev.read_status() & SR_UNLOCKED, 0, "no keylock warning");
        let new_ctr = (ctr[0] | CTR_KBDDIS) & !CTR_KBDINT;
        command(&mut dev, CMD_WRITE_RAM_FIRST, Some(new_ctr));
        assert_eq!(command(&mut dev, CMD_READ_RAM_FIRST, None), [new_ctr]);
        // i8042_check_aux: loopback comes back wrong (with AUX+timeout),
        // the AUX test says "nothing wired": no AUX port, no 250 ms wait.
        dev.write_command(CMD_WRITE_AUX_OUTBUF);
        dev.write_data(0x5a);
        let status = dev.read_status();
        assert_eq!(status & (SR_OBF | SR_AUX), SR_OBF | SR_AUX);
        assert_ne!(dev.read_data(), 0x5a);
        let aux_test = command(&mut dev, CMD_AUX_TEST, None);
        assert!(aux_test[0] != 0 && aux_test[0] != 0xfa && aux_test[0] != 0xff);
        // Port toggles are reflected in the command byte.
        command(&mut dev, CMD_AUX_ENABLE, None);
        assert_eq!(command(&mut dev, 0x20, None)[0] & CTR_AUXDIS, 0);
        command(&mut dev, CMD_AUX_DISABLE, None);
        assert_ne!(command(&mut dev, 0x20, None)[0] & CTR_AUXDIS, 0);
        command(&mut dev, CMD_KBD_ENABLE, None);
        assert_eq!(command(&mut dev, 0x20, None)[0] & CTR_KBDDIS, 0);
        command(&mut dev, CMD_KBD_DISABLE, None);
        assert_ne!(command(&mut dev, 0x20, None)[0] & CTR_KBDDIS, 0);
        // Interface test.
        assert_eq!(command(&mut dev, CMD_KBD_TEST, None), [0x00]);
        // Data sent to the (absent) mouse is answered, flagged timeout.
        dev.write_command(CMD_WRITE_AUX);
        dev.write_data(0xff);
        assert_ne!(dev.read_status() & SR_TIMEOUT, 0);
        assert_eq!(read_all(&mut dev), [KBD_RESEND]);
        assert_eq!(dev.read_status() & (SR_TIMEOUT | SR_AUX), 0);
    }

    #[test]
    fn seabios_keyboard_setup_sequence() {
        let (mut dev, _power) = device();
        assert_eq!(command(&mut dev, CMD_SELF_TEST, None), [0x55]);
        assert_eq!(command(&mut dev, CMD_KBD_TEST, None), [0x00]);
        // Each keyboard command is wrapped in CTR writes.
        let polled = CTR_KBDDIS | CTR_AUXDIS;
        command(&mut dev, 0x60, Some(polled));
        command(&mut dev, 0x60, Some(polled & !CTR_KBDDIS));
        // Reset: ACK then BAT OK, on the keyboard side.
        dev.write_data(KBD_RESET);
        assert_eq!(dev.read_status() & (SR_OBF | SR_AUX), SR_OBF);
        assert_eq!(read_all(&mut dev), [KBD_ACK, KBD_BAT_OK]);
        assert_eq!(kbd(&mut dev, 0xf5), [KBD_ACK]); // reset + disable
        assert_eq!(kbd(&mut dev, KBD_SCANCODE_SET), [KBD_ACK]);
        assert_eq!(kbd(&mut dev, 0x02), [KBD_ACK]);
        assert_eq!(kbd(&mut dev, 0xf4), [KBD_ACK]); // enable
        command(&mut dev, 0x60, Some(CTR_AUXDIS | CTR_XLATE | CTR_KBDINT));
        assert_eq!(read_all(&mut dev), Vec::<u8>::new());
    }

    #[test]
    fn atkbd_probe_gets_acks_through_irq1() {
        let (mut dev, _power) = device();
        // Linux enables the keyboard port and its interrupt, then sends.
        command(
            &mut dev,
            0x60,
            Some(CTR_XLATE | CTR_AUXDIS | CTR_SYS | CTR_KBDINT),
        );
        let _ = dev.kbd_interrupt_evt().read();
        dev.write_data(KBD_GET_ID);
        // One edge per byte as each reaches the head of the buffer.
        assert_eq!(dev.kbd_interrupt_evt().read().unwrap(), 1);
        assert_eq!(dev.read_data(), KBD_ACK);
        assert_eq!(dev.kbd_interrupt_evt().read().unwrap(), 1);
        assert_eq!(dev.read_data(), 0xab);
        assert_eq!(dev.kbd_interrupt_evt().read().unwrap(), 1);
        assert_eq!(dev.read_data(), 0x41);
        assert!(dev.kbd_interrupt_evt().read().is_err());
        // Set LEDs with its parameter.
        assert_eq!(kbd(&mut dev, KBD_SET_LEDS), [KBD_ACK]);
        assert_eq!(kbd(&mut dev, 0x00), [KBD_ACK]);
        // Query scan code set (translated set 2).
        assert_eq!(kbd(&mut dev, KBD_SCANCODE_SET), [KBD_ACK]);
        assert_eq!(kbd(&mut dev, 0x00), [KBD_ACK, 0x41]);
        assert_eq!(kbd(&mut dev, KBD_SET_TYPEMATIC), [KBD_ACK]);
        assert_eq!(kbd(&mut dev, 0x20), [KBD_ACK]);
        assert_eq!(kbd(&mut dev, KBD_ECHO), [KBD_ECHO]);
        assert_eq!(kbd(&mut dev, 0x01), [KBD_RESEND]);
    }

    #[test]
    fn no_interrupt_when_keyboard_interrupt_disabled() {
        let (mut dev, _power) = device();
        command(&mut dev, 0x60, Some(CTR_KBDDIS));
        let _ = dev.kbd_interrupt_evt().read();
        dev.write_data(KBD_RESET);
        assert!(dev.kbd_interrupt_evt().read().is_err());
        // Turning it on with bytes waiting raises it.
        dev.write_command(0x60);
        dev.write_data(CTR_KBDINT);
        assert_eq!(dev.kbd_interrupt_evt().read().unwrap(), 1);
    }

    #[test]
    fn empty_buffer_reads_repeat_the_last_byte() {
        let (mut dev, _power) = device();
        assert_eq!(command(&mut dev, CMD_SELF_TEST, None), [0x55]);
        assert_eq!(dev.read_data(), 0x55);
        assert_eq!(dev.read_status() & SR_OBF, 0);
    }

    #[test]
    fn any_write_of_any_width_never_panics() {
        let power = PowerControl::new().unwrap();
        let dev = Arc::new(Mutex::new(I8042::new(power.clone()).unwrap()));
        let mut ports = [
            I8042Port::new(dev.clone(), I8042PortKind::Command),
            I8042Port::new(dev.clone(), I8042PortKind::Data),
        ];
        for first in 0..=255u8 {
            for second in [0u8, 0x5a, 0xfe, 0xff] {
                for width in [0usize, 1, 2, 4, 8] {
                    for offset in [0u64, 1, 3, u64::MAX] {
                        let mut buf = vec![second; width];
                        ports[0].write(offset, &[first]);
                        ports[1].write(offset, &buf);
                        ports[1].write(offset, &[first]);
                        ports[0].read(offset, &mut buf);
                        ports[1].read(offset, &mut buf);
                    }
                }
            }
        }
        // The queue stays bounded whatever the guest did.
        assert!(dev.lock().unwrap().out.len() <= OUTPUT_QUEUE_LIMIT);
        assert_eq!(power.pending(), Some(PowerAction::Reset));
    }
}
