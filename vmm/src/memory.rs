//! Guest memory as the VMM maps it.

use vm_memory::GuestMemoryMmap;

/// Guest memory as the VMM maps it.
pub type GuestMemory = GuestMemoryMmap<()>;

/// The host's base page size (what backs anonymous guest RAM), for aligning advice ranges and
/// sizing the hash MMU's real-mode area.
pub fn host_page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(ps).ok().filter(|&p| p > 0).unwrap_or(4096)
}
