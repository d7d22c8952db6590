//! Guest memory type used across the VMM.

/// The guest's RAM: mmap-backed regions. Cloning is cheap (shared regions).
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<()>;
