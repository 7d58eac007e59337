//! Pre-faulting guest RAM on the host: `MADV_POPULATE_WRITE` over the destinations of a
//! fadump registration, so the copy at crash time writes to pages the host already backs
//! (the firmware bench measured first-touch copies at 4–8× a warm memcpy). Guest RAM is not
//! written: the pages are only allocated and mapped.

use firmware::range::GuestRange;
use log::{debug, warn};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

use crate::machine::GuestMemory;

/// `MADV_POPULATE_WRITE` (Linux 5.14); spelled out because libc only has it on some targets.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Host page size, for aligning the advice range.
pub(crate) fn host_page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(ps).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Populates every page of `ranges` that lies in guest RAM; returns the bytes advised. Parts
/// outside RAM are skipped (the firmware validated the ranges, this stays safe regardless).
pub fn populate_write(mem: &GuestMemory, ranges: &[GuestRange]) -> u64 {
    let page = host_page_size();
    let mut done = 0;
    for r in ranges {
        let mut at = r.start();
        let end = r.end();
        while at < end {
            let Some(region) = mem.find_region(GuestAddress(at)) else {
                break;
            };
            let region_start = region.start_addr().0;
            let region_end = region_start.saturating_add(region.len());
            let chunk_end = end.min(region_end);
            let off = at - region_start;
            let Ok(host) = region.get_host_address(MemoryRegionAddress(off)) else {
                break;
            };
            let host = host as usize as u64;
            let start = host & !(page - 1);
            let stop = (host + (chunk_end - at)).div_ceil(page) * page;
            // Stay inside the region's mapping after rounding.
            let map_start = host - off;
            let map_end = map_start + region.len().div_ceil(page) * page;
            let (start, stop) = (start.max(map_start), stop.min(map_end));
            // SAFETY: [start, stop) lies inside the mmap'd region backing guest RAM (clamped
            // above); MADV_POPULATE_WRITE only faults pages in and never changes their content.
            let rc = unsafe {
                libc::madvise(
                    start as usize as *mut libc::c_void,
                    (stop - start) as usize,
                    MADV_POPULATE_WRITE,
                )
            };
            if rc != 0 {
                warn!(
                    "fadump: pre-faulting {:#x}..{:#x}: {}",
                    at,
                    chunk_end,
                    std::io::Error::last_os_error()
                );
                break;
            }
            debug!("fadump: pre-faulted {at:#x}..{chunk_end:#x}");
            done += chunk_end - at;
            at = chunk_end;
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemory {
        GuestMemory::from_ranges(&[(GuestAddress(0), 4 << 20), (GuestAddress(8 << 20), 4 << 20)])
            .unwrap()
    }

    /// Resident bytes of the mapping behind guest range [at, at+len), via mincore.
    fn resident(mem: &GuestMemory, at: u64, len: u64) -> u64 {
        let host = mem.get_host_address(GuestAddress(at)).unwrap() as usize;
        let page = host_page_size();
        let pages = len.div_ceil(page) as usize;
        let mut vec = vec![0u8; pages];
        // SAFETY: the range is inside one mapped region of `mem`; `vec` has one byte per page.
        let rc =
            unsafe { libc::mincore(host as *mut libc::c_void, len as usize, vec.as_mut_ptr()) };
        assert_eq!(rc, 0);
        vec.iter().filter(|&&b| b & 1 == 1).count() as u64 * page
    }

    // qemu-user (how CI runs the powerpc64 unit tests) accepts madvise hints and ignores them.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user ignores MADV_POPULATE_WRITE; runs on x86_64 and real ppc64 hosts"
    )]
    #[test]
    fn populates_only_the_given_ranges_and_keeps_content() {
        let m = mem();
        let r = GuestRange::new(0x10_0000, 0x4_0000).unwrap();
        assert_eq!(resident(&m, 0x10_0000, 0x4_0000), 0);
        assert_eq!(populate_write(&m, &[r]), 0x4_0000);
        assert_eq!(resident(&m, 0x10_0000, 0x4_0000), 0x4_0000);
        assert_eq!(resident(&m, 0x20_0000, 0x4_0000), 0);
        let mut b = [0xffu8; 16];
        vm_memory::Bytes::read_slice(&m, &mut b, GuestAddress(0x10_0000)).unwrap();
        assert_eq!(b, [0u8; 16]);
    }

    #[test]
    fn a_range_across_a_hole_populates_the_ram_part_and_stops() {
        let m = mem();
        let r = GuestRange::new(0x3f_0000, 0x2_0000).unwrap();
        assert_eq!(populate_write(&m, &[r]), 0x1_0000);
    }
}
