//! Boot images staged in host pages of their own, moved under guest RAM in one `mremap` when a
//! boot needs them: the capture boot after a fadump crash then neither compares nor writes the
//! kernel and initramfs (about 9 MB), it swaps page tables.
//!
//! The staging mapping is laid out like guest RAM from address 0 (`[0, len)`), so the loader
//! fills it as it would fill guest memory. [`Staging::install`] moves its pages to guest RAM
//! `[0, len)`, whose old pages are freed, and leaves the staging mapping empty (it reads as
//! zeros) until it is filled again. Only with every vCPU stopped and no device running, like
//! [`super::remap`].

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use super::remap::{map_fresh_or_abort, mremap_fixed};
use super::{host_page_size, GuestMemory};

/// Why staged pages could not be installed; guest RAM `[0, len)` then holds zero pages and
/// the caller loads the images the ordinary way.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// Guest RAM does not start at 0 with at least `len` bytes in one region.
    #[error("guest RAM has no region covering [0, {0:#x})")]
    NoRegion(u64),
    /// The move failed.
    #[error("moving the staged pages: {0}")]
    Move(#[source] std::io::Error),
    /// The staging mapping could not be made.
    #[error("mapping the staging area: {0}")]
    Map(String),
}

/// `len` bytes of host pages laid out as guest RAM from 0.
#[derive(Debug)]
pub struct Staging {
    mem: GuestMemory,
    len: u64,
}

impl Staging {
    /// An empty (zero) staging area covering `[0, len)`, rounded up to whole huge pages of
    /// `huge` bytes (whole host pages without THP): the kernel then places it on a huge-page
    /// boundary and [`Staging::install`] moves whole PMDs, splitting none. The rounding is
    /// installed too: guest RAM up to the next huge-page boundary after the images reads as
    /// zeros after the install (it is the next kernel's free memory).
    pub fn new(len: u64, huge: u64) -> Result<Self, StagingError> {
        let unit = huge.max(host_page_size());
        let len = len.div_ceil(unit) * unit;
        let mapped = len;
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), mapped as usize)])
            .map_err(|e| StagingError::Map(e.to_string()))?;
        super::advise_huge_pages(&mem, huge);
        Ok(Staging { mem, len })
    }

    /// The staging pages, to load the images into as into guest memory.
    pub fn mem(&self) -> &GuestMemory {
        &self.mem
    }

    /// Bytes [`Staging::install`] moves.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the area covers nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Moves the staged pages under guest RAM `[0, len)`. Afterwards the staging area is
    /// empty (zeros) and `guest` holds what it held.
    pub fn install(&self, guest: &GuestMemory) -> Result<(), StagingError> {
        let region = guest
            .find_region(GuestAddress(0))
            .filter(|r| r.start_addr().0 == 0 && r.len() >= self.len)
            .ok_or(StagingError::NoRegion(self.len))?;
        let staged = self.mem.iter().next().expect("one region").as_ptr() as u64;
        let to = region.as_ptr() as u64;
        mremap_fixed(staged, self.len, to, true).map_err(|e| {
            // The target may have been unmapped before the move failed.
            map_fresh_or_abort(to, self.len);
            StagingError::Move(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn installed_pages_replace_the_start_of_guest_ram_and_leave_the_rest() {
        let guest = GuestMemory::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
        guest.write_slice(&[0x77; 64], GuestAddress(0)).unwrap();
        guest
            .write_slice(&[0x66; 64], GuestAddress(6 << 20))
            .unwrap();
        let s = Staging::new((5 << 20) + 100, 2 << 20).unwrap();
        assert_eq!(s.len(), 6 << 20, "whole huge pages");
        s.mem().write_slice(b"kernel", GuestAddress(0)).unwrap();
        s.mem()
            .write_slice(b"initrd", GuestAddress(5 << 20))
            .unwrap();
        s.install(&guest).unwrap();
        let mut b = [0u8; 6];
        guest.read_slice(&mut b, GuestAddress(0)).unwrap();
        assert_eq!(&b, b"kernel");
        guest.read_slice(&mut b, GuestAddress(5 << 20)).unwrap();
        assert_eq!(&b, b"initrd");
        guest.read_slice(&mut b, GuestAddress(64)).unwrap();
        assert_eq!(b, [0; 6], "the old pages are gone");
        guest.read_slice(&mut b, GuestAddress(6 << 20)).unwrap();
        assert_eq!(b, [0x66; 6], "past the staged length nothing changed");
        s.mem().read_slice(&mut b, GuestAddress(0)).unwrap();
        assert_eq!(b, [0; 6], "the staging area is empty until filled again");
        let too_big = Staging::new(32 << 20, 2 << 20).unwrap();
        assert!(matches!(
            too_big.install(&guest),
            Err(StagingError::NoRegion(_))
        ));
    }
}
