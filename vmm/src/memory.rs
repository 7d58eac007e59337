//! Guest memory as the VMM maps it.
//!
//! * here: the mapping's type, the host's page and huge-page sizes, transparent-huge-page advice;
//! * [`remap`]: fadump's zero-copy preservation, moving host pages under the fixed guest mapping
//!   instead of copying them;
//! * [`staged`]: boot images kept in host pages of their own and moved under guest RAM when a
//!   boot needs them.

pub mod remap;
pub mod staged;

use log::{debug, warn};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Guest memory as the VMM maps it.
pub type GuestMemory = GuestMemoryMmap<()>;

/// The host's base page size (what backs anonymous guest RAM), for aligning advice ranges and
/// sizing the hash MMU's real-mode area.
pub fn host_page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(ps).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// The host's transparent huge page (PMD) size, from
/// `/sys/kernel/mm/transparent_hugepage/hpage_pmd_size` (2 MiB on x86 and radix ppc64, 16 MiB
/// on hash 64K hosts); `None` without THP.
pub fn host_huge_page_size() -> Option<u64> {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|g: &u64| g.is_power_of_two())
}

/// Asks for transparent huge pages over all of guest RAM (`MADV_HUGEPAGE`: hosts set to THP
/// "madvise" back it with huge pages only when asked; "always" hosts already do) and warns
/// when a region's host address is not congruent to its guest address modulo `huge`: KVM maps
/// huge pages into the guest only where they are, and fadump's page moves stay at PMD level
/// only then.
pub fn advise_huge_pages(mem: &GuestMemory, huge: u64) {
    for region in mem.iter() {
        let host = region.as_ptr() as u64;
        let gpa = region.start_addr().0;
        if huge > 0 && host % huge != gpa % huge {
            warn!(
                "guest RAM at {gpa:#x} is mapped at host {host:#x}, not congruent modulo the \
                 {huge:#x}-byte huge page: KVM maps it with small pages"
            );
        }
        // SAFETY: [host, host + len) is exactly one anonymous mapping of guest RAM;
        // MADV_HUGEPAGE only changes how the kernel may back it, never its content.
        let rc = unsafe {
            libc::madvise(
                region.as_ptr().cast(),
                region.len() as usize,
                libc::MADV_HUGEPAGE,
            )
        };
        if rc != 0 {
            debug!(
                "MADV_HUGEPAGE on guest RAM at {gpa:#x}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
