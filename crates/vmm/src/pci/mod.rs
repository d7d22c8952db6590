//! PCI: bus 0 behind configuration mechanism #1 (ports 0xcf8/0xcfc), the
//! host bridge, MSI-X and the virtio-pci transport.

mod config_space;
mod msix;
mod root;
pub mod slots;
pub mod virtio_pci;

pub use config_space::{BarMove, ConfigSpace, PciIds};
pub use msix::MsixTable;
pub use root::{PciRoot, PciRootError};
pub use virtio_pci::{VirtioPciDevice, VirtioPciError};

/// A device on the PCI bus (function 0 of its slot).
pub trait PciDevice: Send {
    fn config_read(&mut self, offset: usize, data: &mut [u8]);
    /// Returns a BAR the write moved, so the bus can follow.
    fn config_write(&mut self, offset: usize, data: &[u8]) -> Option<BarMove>;
    /// Where its memory BAR currently points (base, length), for unplugging.
    fn bar_window(&self) -> Option<(u64, u64)> {
        None
    }
}
