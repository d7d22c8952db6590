//! Legacy PC devices: 8250 serial console, i8042, CMOS RTC.
//!
//! Where each goes on the port bus (see `layout.rs`):
//! - [`serial::SerialDevice`] at `PORT_COM1`, length [`serial::SERIAL_PORT_LEN`];
//!   its `interrupt_evt()` is the irqfd for GSI `IRQ_COM1`.
//! - [`i8042::I8042Port`] (Data) at `PORT_I8042_DATA` and (Command) at
//!   `PORT_I8042_COMMAND`, length 1 each, sharing one [`i8042::I8042`];
//!   its `kbd_interrupt_evt()` is the irqfd for GSI [`i8042::IRQ_KBD`].
//! - [`cmos::Cmos`] at `PORT_CMOS`, length [`cmos::CMOS_PORT_LEN`]; no
//!   interrupt.

pub mod cmos;
pub mod console_log;
pub mod i8042;
pub mod serial;
