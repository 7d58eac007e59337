//! Where things go in guest physical memory (the ppc64 "arch layout" facade).
//!
//! ```text
//! 0                 kernel image (PT_LOAD at p_paddr 0, including bss)
//! kernel_end↑64K    initramfs
//! ...               free (the kernel allocates from here)
//! low_top - 1M-64K  device tree (≤ 1 MiB)
//! low_top - 64K     RTAS stub (64 KiB reserved)
//! low_top           = min(RAM, 256 MiB, RMA): everything the firmware owns stays low, inside
//!                   what a hash guest's real-mode area reaches and below RTAS's 1 GiB cap
//! ```

use firmware::GuestRange;

/// Host pages may be 64 KiB on POWER: align everything we place to that.
pub const HOST_PAGE_MAX: u64 = 64 << 10;
/// The firmware region lives below this (or below the end of RAM if smaller).
pub const LOW_TOP_MAX: u64 = 256 << 20;
/// Room for the flattened device tree.
pub const FDT_MAX_SIZE: u64 = 1 << 20;
/// Room reserved for the RTAS blob (the stub is 20 bytes; the rest is slack for error logs).
pub const RTAS_SIZE: u64 = 64 << 10;
/// Smallest RAM we accept.
pub const MIN_RAM: u64 = 64 << 20;

/// Placement errors.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("guest RAM of {0} bytes is below the minimum of {MIN_RAM} bytes")]
    RamTooSmall(u64),
    #[error("real-mode area of {0:#x} bytes is below the minimum of {MIN_RAM} bytes (give a hash guest a larger HPT)")]
    RmaTooSmall(u64),
    #[error("guest RAM size {0:#x} is not a multiple of 64 KiB")]
    RamUnaligned(u64),
    #[error("kernel ({kernel_end:#x}) plus initramfs ({initrd:#x} bytes) do not fit below the firmware area at {limit:#x}; give the guest more memory")]
    NoRoom {
        kernel_end: u64,
        initrd: u64,
        limit: u64,
    },
}

/// Top of the firmware area for `ram_size` bytes of RAM of which `rma_size` are reachable in
/// real mode (all of RAM for radix guests; the VRMA for hash guests, see [`crate::hash::sizing`]).
pub fn low_top(ram_size: u64, rma_size: u64) -> u64 {
    ram_size.min(LOW_TOP_MAX).min(rma_size)
}

/// The computed placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub ram: GuestRange,
    pub initrd: Option<GuestRange>,
    pub fdt: GuestRange,
    pub rtas: GuestRange,
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    v.checked_add(a - 1).map(|x| x & !(a - 1))
}

impl Layout {
    /// Places the initramfs (if `initrd_size` is given), the FDT and RTAS for a kernel that
    /// ends at `kernel_end`, all below the first `rma_size` bytes.
    pub fn new(
        ram_size: u64,
        rma_size: u64,
        kernel_end: u64,
        initrd_size: Option<u64>,
    ) -> Result<Self, LayoutError> {
        if ram_size < MIN_RAM {
            return Err(LayoutError::RamTooSmall(ram_size));
        }
        if ram_size % HOST_PAGE_MAX != 0 {
            return Err(LayoutError::RamUnaligned(ram_size));
        }
        let low_top = low_top(ram_size, rma_size);
        if low_top < MIN_RAM {
            return Err(LayoutError::RmaTooSmall(rma_size));
        }
        let rtas = GuestRange::new(low_top - RTAS_SIZE, RTAS_SIZE).expect("in range");
        let fdt = GuestRange::new(rtas.start() - FDT_MAX_SIZE, FDT_MAX_SIZE).expect("in range");
        let no_room = LayoutError::NoRoom {
            kernel_end,
            initrd: initrd_size.unwrap_or(0),
            limit: fdt.start(),
        };
        let initrd_start = align_up(kernel_end, HOST_PAGE_MAX).ok_or(no_room.clone())?;
        let initrd = match initrd_size {
            Some(size) => {
                let end = initrd_start.checked_add(size).ok_or(no_room.clone())?;
                if end > fdt.start() {
                    return Err(no_room);
                }
                Some(GuestRange::new(initrd_start, size.max(1)).ok_or(no_room)?)
            }
            None if initrd_start > fdt.start() => return Err(no_room),
            None => None,
        };
        Ok(Layout {
            ram: GuestRange::new(0, ram_size).expect("nonzero"),
            initrd,
            fdt,
            rtas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_firmware_low_and_initrd_after_the_kernel() {
        let l = Layout::new(2 << 30, u64::MAX, 0x0234_5678, Some(5 << 20)).unwrap();
        assert_eq!(l.rtas.start(), (256 << 20) - RTAS_SIZE);
        assert_eq!(l.fdt.start(), l.rtas.start() - FDT_MAX_SIZE);
        let i = l.initrd.unwrap();
        assert_eq!(i.start(), 0x0235_0000);
        assert_eq!(i.len(), 5 << 20);
        let small = Layout::new(128 << 20, u64::MAX, 0x100000, None).unwrap();
        assert_eq!(small.rtas.start() + RTAS_SIZE, 128 << 20);
    }

    #[test]
    fn rejects_what_does_not_fit() {
        assert_eq!(
            Layout::new(32 << 20, u64::MAX, 0, None),
            Err(LayoutError::RamTooSmall(32 << 20))
        );
        assert_eq!(
            Layout::new((128 << 20) + 4096, u64::MAX, 0, None),
            Err(LayoutError::RamUnaligned((128 << 20) + 4096))
        );
        assert!(matches!(
            Layout::new(128 << 20, u64::MAX, 100 << 20, Some(40 << 20)),
            Err(LayoutError::NoRoom { .. })
        ));
        assert!(matches!(
            Layout::new(128 << 20, u64::MAX, 200 << 20, None),
            Err(LayoutError::NoRoom { .. })
        ));
        assert!(matches!(
            Layout::new(128 << 20, u64::MAX, 0, Some(u64::MAX)),
            Err(LayoutError::NoRoom { .. })
        ));
    }

    #[test]
    fn a_hash_guests_firmware_stays_inside_its_real_mode_area() {
        // 1 GiB with a 128 MiB VRMA: RTAS and the FDT end at 128 MiB, not 256 MiB.
        let l = Layout::new(1 << 30, 128 << 20, 0x0200_0000, Some(4 << 20)).unwrap();
        assert_eq!(l.rtas.start() + RTAS_SIZE, 128 << 20);
        assert_eq!(l.ram.len(), 1 << 30);
        assert_eq!(low_top(1 << 30, 512 << 20), LOW_TOP_MAX);
        assert_eq!(
            Layout::new(1 << 30, 16 << 20, 0, None),
            Err(LayoutError::RmaTooSmall(16 << 20))
        );
        // The kernel and initramfs must fit below the RMA's firmware area too.
        assert!(matches!(
            Layout::new(1 << 30, 128 << 20, 100 << 20, Some(40 << 20)),
            Err(LayoutError::NoRoom { .. })
        ));
    }
}
