//! Legacy PC devices: 8250 serial console, i8042, CMOS RTC.
