//! Guest memory as the VMM maps it.

use vm_memory::GuestMemoryMmap;

/// Guest memory as the VMM maps it.
pub type GuestMemory = GuestMemoryMmap<()>;
