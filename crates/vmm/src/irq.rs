//! Interrupt lines as devices see them.

/// A level-triggered interrupt line into the in-kernel IOAPIC/PIC (the
/// ACPI SCI, for instance). The VMM implements it with KVM_IRQ_LINE.
pub trait IrqLine: Send + Sync {
    fn set_level(&self, high: bool);
}

#[cfg(test)]
pub mod test_util {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// Records the line's level and how often it was raised.
    #[derive(Default)]
    pub struct FakeIrqLine {
        pub level: AtomicBool,
        pub raised: AtomicU32,
    }

    impl super::IrqLine for FakeIrqLine {
        fn set_level(&self, high: bool) {
            if high && !self.level.load(Ordering::SeqCst) {
                self.raised.fetch_add(1, Ordering::SeqCst);
            }
            self.level.store(high, Ordering::SeqCst);
        }
    }
}
