//! A PHB's DMA window slots: the default window and one dynamic DMA window (DDW), their
//! LIOBNs and bus addresses, and what the DDW RTAS calls do to them ([`super::ddw`] decodes
//! the calls).
//!
//! Layout (QEMU's spapr PHB): slot 0 is the default window, 1 GiB of 4 KiB IOMMU pages at
//! bus address 0, announced by `ibm,dma-window`; slot 1 is for the DDW, at bus address
//! `2^59`. LIOBN of slot `w` on PHB `n`: `0x8000_0000 | n << 8 | w` (QEMU's
//! `SPAPR_PCI_LIOBN`). A window created while no window is active gets bus address 0.
//!
//! Sizes offered to a DDW: IOMMU pages of 4 KiB, 64 KiB or 16 MiB, and a window of up to
//! `2^ceil(log2(RAM))` bytes, which is what Linux's `enable_ddw()` asks for to map all of RAM
//! directly (it takes the largest page size offered and the window `order_base_2(RAM end)`).

use super::tce::{KernelTces, TceCall, TceError, TceTable, WindowGeometry};
use std::sync::Arc;
use vm_memory::GuestMemoryBackend;

/// Bus address of the default window.
pub const DEFAULT_WINDOW_BUS: u64 = 0;
/// Size of the default window (QEMU's `SPAPR_PCI_DMA32_SIZE`).
pub const DEFAULT_WINDOW_SIZE: u64 = 1 << 30;
/// IOMMU page shift of the default window.
pub const DEFAULT_PAGE_SHIFT: u32 = 12;
/// Bus address of a DDW created beside the default window (QEMU's `dma64_win_addr`).
pub const DDW_BUS: u64 = 1 << 59;
/// IOMMU page shifts a DDW may use.
pub const DDW_PAGE_SHIFTS: [u32; 3] = [12, 16, 24];
/// Window slots per PHB (QEMU's `SPAPR_PCI_DMA_MAX_WINDOWS`).
pub const WINDOWS: usize = 2;

/// `ibm,query-pe-dma-window`'s "IO page sizes" bits (LoPAR): 4 KiB, 64 KiB, 16 MiB, 32 MiB,
/// 64 MiB, 128 MiB, 256 MiB, 16 GiB, then 2 MiB.
const LOPAR_PAGE_BITS: [(u32, u32); 9] = [
    (12, 1 << 0),
    (16, 1 << 1),
    (24, 1 << 2),
    (25, 1 << 3),
    (26, 1 << 4),
    (27, 1 << 5),
    (28, 1 << 6),
    (34, 1 << 7),
    (21, 1 << 8),
];

/// The LIOBN of window slot `slot` on PHB `index`.
pub fn liobn(index: u32, slot: usize) -> u32 {
    0x8000_0000 | (index & 0xff_ffff) << 8 | slot as u32
}

/// What `ibm,query-pe-dma-window` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DdwQuery {
    /// Windows that can still be created.
    pub windows_available: u32,
    /// Largest window, in IOMMU pages of the largest page size offered.
    pub largest_block: u64,
    /// LoPAR page-size bits.
    pub page_sizes: u32,
}

/// Why a DDW call is refused; [`DdwError::rtas_parameter`] tells the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DdwError {
    #[error("IOMMU page shift {0} is not offered")]
    PageShift(u32),
    #[error("window of 2^{window_shift} bytes with pages of 2^{page_shift}: smaller than a page or larger than offered (2^{max_shift})")]
    WindowShift {
        window_shift: u32,
        page_shift: u32,
        max_shift: u32,
    },
    #[error("no free window slot")]
    NoFreeWindow,
    #[error("the window needs {entries} TCEs, more than a table may hold")]
    TableTooLarge { entries: u64 },
    #[error("no active window has LIOBN {0:#x}")]
    UnknownLiobn(u32),
}

impl DdwError {
    /// RTAS parameter error (-3) for bad arguments; hardware error (-1) for a request we
    /// cannot satisfy (no slot, no table), as QEMU answers those.
    pub fn rtas_parameter(&self) -> bool {
        !matches!(
            self,
            DdwError::NoFreeWindow | DdwError::TableTooLarge { .. }
        )
    }
}

/// The window slots of one PHB.
pub struct DmaWindows {
    index: u32,
    slots: [Option<TceTable>; WINDOWS],
    kernel: Arc<dyn KernelTces>,
}

impl std::fmt::Debug for DmaWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaWindows")
            .field("index", &self.index)
            .field("slots", &self.slots)
            .finish()
    }
}

fn log2_ceil(v: u64) -> u32 {
    if v <= 1 {
        0
    } else {
        64 - (v - 1).leading_zeros()
    }
}

/// The largest DDW page shift offered and the largest window for `ram` bytes of RAM, both as
/// log2 of bytes: the window covers all of RAM rounded up to a power of two.
fn max_shifts(ram: u64) -> (u32, u32) {
    let page = *DDW_PAGE_SHIFTS.iter().max().expect("nonempty");
    (page, log2_ceil(ram).max(page))
}

impl DmaWindows {
    /// The power-on state of PHB `index`: the default window only.
    pub fn new(index: u32, kernel: Arc<dyn KernelTces>) -> Self {
        let mut w = DmaWindows {
            index,
            slots: [None, None],
            kernel,
        };
        w.reset();
        w
    }

    /// The default window's geometry (what `ibm,dma-window` announces).
    pub fn default_geometry(&self) -> WindowGeometry {
        WindowGeometry {
            liobn: liobn(self.index, 0),
            bus_offset: DEFAULT_WINDOW_BUS,
            page_shift: DEFAULT_PAGE_SHIFT,
            entries: DEFAULT_WINDOW_SIZE >> DEFAULT_PAGE_SHIFT,
        }
    }

    /// Uses `kernel` for every table from now on and moves the power-on windows there.
    pub fn set_kernel_tces(&mut self, kernel: Arc<dyn KernelTces>) {
        self.kernel = kernel;
        self.reset();
    }

    /// Back to the default window alone, its entries all unmapped (power-on, reboot, fadump
    /// reboot, `ibm,reset-pe-dma-window`). The old tables are dropped first, so a new
    /// in-kernel table can take the LIOBN.
    pub fn reset(&mut self) {
        self.slots = [None, None];
        let g = self.default_geometry();
        // 2^18 entries: always fits a VMM table when KVM has none.
        self.slots[0] = TceTable::new(g, self.kernel.as_ref());
    }

    /// The active windows.
    pub fn active(&self) -> impl Iterator<Item = &TceTable> {
        self.slots.iter().flatten()
    }

    /// The active window named `liobn`.
    pub fn table_mut(&mut self, liobn: u64) -> Option<&mut TceTable> {
        self.slots
            .iter_mut()
            .flatten()
            .find(|t| u64::from(t.geometry.liobn) == liobn)
    }

    /// Whether `liobn` is one of this PHB's LIOBNs (active or not).
    pub fn owns(&self, liobn: u64) -> bool {
        (0..WINDOWS).any(|s| u64::from(self::liobn(self.index, s)) == liobn)
    }

    /// Serves a TCE hcall for one of this PHB's LIOBNs.
    pub fn tce_call<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        call: TceCall,
    ) -> Result<u64, TceError> {
        let liobn = call.liobn();
        self.table_mut(liobn)
            .ok_or(TceError::UnknownLiobn(liobn))?
            .call(mem, call)
    }

    /// `ibm,query-pe-dma-window` for a guest with `ram` bytes of RAM from address 0.
    pub fn query(&self, ram: u64) -> DdwQuery {
        let (page, window) = max_shifts(ram);
        let page_sizes = LOPAR_PAGE_BITS
            .iter()
            .filter(|(s, _)| DDW_PAGE_SHIFTS.contains(s))
            .fold(0, |m, (_, bit)| m | bit);
        DdwQuery {
            windows_available: self.slots.iter().filter(|s| s.is_none()).count() as u32,
            largest_block: 1u64 << (window - page),
            page_sizes,
        }
    }

    /// `ibm,create-pe-dma-window`: a window of `2^window_shift` bytes of `2^page_shift` pages
    /// in the first free slot, for a guest with `ram` bytes of RAM. Returns its geometry
    /// (LIOBN and bus address for the guest).
    pub fn create(
        &mut self,
        ram: u64,
        page_shift: u32,
        window_shift: u32,
    ) -> Result<WindowGeometry, DdwError> {
        if !DDW_PAGE_SHIFTS.contains(&page_shift) {
            return Err(DdwError::PageShift(page_shift));
        }
        let (_, max_shift) = max_shifts(ram);
        if window_shift < page_shift || window_shift > max_shift {
            return Err(DdwError::WindowShift {
                window_shift,
                page_shift,
                max_shift,
            });
        }
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(DdwError::NoFreeWindow)?;
        let bus_offset = if self.slots.iter().all(Option::is_none) {
            0
        } else {
            DDW_BUS
        };
        let g = WindowGeometry {
            liobn: liobn(self.index, slot),
            bus_offset,
            page_shift,
            entries: 1u64 << (window_shift - page_shift),
        };
        let table = TceTable::new(g, self.kernel.as_ref())
            .ok_or(DdwError::TableTooLarge { entries: g.entries })?;
        self.slots[slot] = Some(table);
        Ok(g)
    }

    /// `ibm,remove-pe-dma-window`.
    pub fn remove(&mut self, liobn: u32) -> Result<(), DdwError> {
        let slot = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|t| t.geometry.liobn == liobn))
            .ok_or(DdwError::UnknownLiobn(liobn))?;
        self.slots[slot] = None;
        Ok(())
    }
}
