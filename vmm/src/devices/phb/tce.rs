//! The PHB's DMA windows: TCE (translation control entry) tables and the TCE hcalls.
//!
//! A PAPR PCI host bridge translates device DMA through TCE tables, one per DMA window, each
//! named by a LIOBN (logical I/O bus number). Our PHB has two window slots, like QEMU's: the
//! default 32-bit window the device tree announces (`ibm,dma-window`: 1 GiB of 4 KiB pages at
//! bus address 0), and one dynamic DMA window (DDW, see [`super::ddw`]) at bus address
//! `2^59`, which Linux creates big enough to map all of RAM ("direct mapping").
//!
//! The guest fills the tables with `H_PUT_TCE`, `H_PUT_TCE_INDIRECT` (up to 512 TCEs from a
//! 4 KiB-aligned list in guest memory) and `H_STUFF_TCE` (one value, only "unmapped", over a
//! range), and reads them with `H_GET_TCE`. A TCE is the guest-physical address of an IOMMU
//! page with the read (bit 0) and write (bit 1) permission bits; with neither bit set the
//! entry is unmapped and its address is not looked at.
//!
//! Where KVM offers `KVM_CAP_SPAPR_TCE_64`, each table lives in the kernel
//! ([`KernelTces`]) and KVM answers the hcalls itself. Only what KVM refuses reaches us: an
//! unknown LIOBN, or a call KVM's own checks reject with `H_TOO_HARD` (a TCE or list it cannot
//! translate). We check such a call against the same rules and answer with the PAPR code; a
//! call we would accept for a table only KVM holds is refused with
//! [`TceError::InKernelTable`] (`H_HARDWARE`), since the VMM has no copy to write. Without
//! the capability (and on the x86 test hosts) the tables are [`Backing::Vmm`] vectors here.
//!
//! Checks (KVM's `kvmppc_ioba_validate`/`kvmppc_tce_validate` and PAPR): the LIOBN must name
//! an active window; the I/O bus address must be IOMMU-page aligned and `npages` entries from
//! it must lie in the window; a mapped TCE's address must be IOMMU-page aligned and start in
//! guest RAM; an indirect list must be 4 KiB aligned, hold at most 512 entries and lie in RAM;
//! `H_STUFF_TCE` may only write unmapped values. Every TCE of an indirect list is checked
//! before any is written, so a rejected call changes nothing.
//!
//! # Virtio does not translate through these tables
//!
//! Our virtio devices do not offer `VIRTIO_F_ACCESS_PLATFORM`, so they DMA to guest-physical
//! addresses and nothing in the VMM reads a TCE. That is QEMU's pseries default
//! (`iommu_platform=off`), and it is what Linux expects there: without the feature its
//! virtio ring bypasses the DMA API (`vring_use_dma_api()` is false outside Xen), so the
//! guest never maps virtio buffers through the IOMMU and a translating device would see
//! addresses nobody mapped. Offering the feature would cost an `H_PUT_TCE` round trip per
//! mapping with the default window (or depend on the guest creating a direct-mapped DDW) for
//! no isolation gain: the device model is the VMM itself and may reach all of guest RAM
//! anyway. The windows are still real: Linux sets its PCI IOMMU tables up from them, creates
//! the DDW on `dma_set_mask(64)` (which virtio-pci calls whatever the feature), and any
//! driver that does use the DMA API gets correctly checked entries.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// TCE permission bits.
pub const TCE_PCI_READ: u64 = 1;
pub const TCE_PCI_WRITE: u64 = 2;
/// Most TCEs one `H_PUT_TCE_INDIRECT` carries (PAPR: the list fits one 4 KiB page).
pub const INDIRECT_MAX: u64 = 512;
/// Alignment of an indirect TCE list.
pub const INDIRECT_LIST_ALIGN: u64 = 4096;
/// Most entries a table the VMM holds may have: 2^21 entries are 16 MiB of host memory
/// (a 64 GiB window of 16 MiB pages needs 4096).
pub const VMM_TABLE_MAX_ENTRIES: u64 = 1 << 21;

/// Where a DMA window sits: `entries` IOMMU pages of `2^page_shift` bytes from bus address
/// `bus_offset`, named by `liobn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowGeometry {
    pub liobn: u32,
    pub bus_offset: u64,
    pub page_shift: u32,
    pub entries: u64,
}

impl WindowGeometry {
    /// Bytes of bus address space the window spans (saturating).
    pub fn size(&self) -> u64 {
        self.entries.saturating_mul(1u64 << self.page_shift.min(63))
    }

    fn page_mask(&self) -> u64 {
        (1u64 << self.page_shift.min(63)) - 1
    }

    /// Index of the entry for bus address `ioba`, checked for `npages` entries from there.
    pub fn index(&self, ioba: u64, npages: u64) -> Result<u64, TceError> {
        if ioba & self.page_mask() != 0 {
            return Err(TceError::IobaUnaligned { ioba });
        }
        let first = ioba
            .checked_sub(self.bus_offset)
            .map(|o| o >> self.page_shift)
            .ok_or(TceError::IobaOutOfWindow { ioba, npages })?;
        match first.checked_add(npages) {
            Some(end) if end <= self.entries => Ok(first),
            _ => Err(TceError::IobaOutOfWindow { ioba, npages }),
        }
    }
}

/// Why a TCE call is refused. All map to `H_PARAMETER` except [`TceError::InKernelTable`]
/// (`H_HARDWARE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TceError {
    #[error("no active DMA window has LIOBN {0:#x}")]
    UnknownLiobn(u64),
    #[error("I/O bus address {ioba:#x} is not IOMMU-page aligned")]
    IobaUnaligned { ioba: u64 },
    #[error("{npages} entries from I/O bus address {ioba:#x} leave the window")]
    IobaOutOfWindow { ioba: u64, npages: u64 },
    #[error("TCE {tce:#x}: its address is not IOMMU-page aligned")]
    TceUnaligned { tce: u64 },
    #[error("TCE {tce:#x}: its page does not start in guest RAM")]
    TceOutsideRam { tce: u64 },
    #[error("indirect TCE list at {list:#x} is not 4 KiB aligned")]
    ListUnaligned { list: u64 },
    #[error("indirect TCE list of {npages} entries (at most {INDIRECT_MAX})")]
    ListTooLong { npages: u64 },
    #[error("indirect TCE list at {list:#x} ({npages} entries) is not in guest RAM")]
    ListOutsideRam { list: u64, npages: u64 },
    #[error("H_STUFF_TCE value {value:#x} has permission bits (only unmapping is allowed)")]
    StuffMapped { value: u64 },
    #[error("LIOBN {0:#x} has its table in KVM, which refused a call the VMM would accept")]
    InKernelTable(u32),
}

/// One TCE hcall, decoded from its registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TceCall {
    /// `H_PUT_TCE(liobn, ioba, tce)`.
    Put { liobn: u64, ioba: u64, tce: u64 },
    /// `H_GET_TCE(liobn, ioba)` → the TCE in r4.
    Get { liobn: u64, ioba: u64 },
    /// `H_PUT_TCE_INDIRECT(liobn, ioba, tce_list, npages)`.
    PutIndirect {
        liobn: u64,
        ioba: u64,
        list: u64,
        npages: u64,
    },
    /// `H_STUFF_TCE(liobn, ioba, value, npages)`.
    Stuff {
        liobn: u64,
        ioba: u64,
        value: u64,
        npages: u64,
    },
}

impl TceCall {
    pub fn liobn(&self) -> u64 {
        match *self {
            TceCall::Put { liobn, .. }
            | TceCall::Get { liobn, .. }
            | TceCall::PutIndirect { liobn, .. }
            | TceCall::Stuff { liobn, .. } => liobn,
        }
    }
}

/// Creates in-kernel TCE tables (`KVM_CREATE_SPAPR_TCE_64`). The machine implements it over
/// KVM; `None` from [`KernelTces::create`] means "keep the table in the VMM".
pub trait KernelTces: Send + Sync {
    /// An in-kernel table for `window`: a handle whose drop removes it, or `None`.
    fn create(&self, window: &WindowGeometry) -> Option<Box<dyn Send>>;
}

/// No in-kernel tables (tests, and hosts without `KVM_CAP_SPAPR_TCE_64`).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoKernelTces;

impl KernelTces for NoKernelTces {
    fn create(&self, _: &WindowGeometry) -> Option<Box<dyn Send>> {
        None
    }
}

/// Who holds a table's entries.
pub enum Backing {
    /// The VMM: one host-endian `u64` per entry (zero-filled memory, so an unused window
    /// costs no resident memory).
    Vmm(Vec<u64>),
    /// KVM; the handle keeps the table alive.
    Kernel(Box<dyn Send>),
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backing::Vmm(v) => write!(f, "Vmm({} entries)", v.len()),
            Backing::Kernel(_) => write!(f, "Kernel"),
        }
    }
}

/// One active DMA window.
#[derive(Debug)]
pub struct TceTable {
    pub geometry: WindowGeometry,
    pub backing: Backing,
}

impl TceTable {
    /// A table for `geometry`, in KVM when `kernel` can make one, else in the VMM. `None`
    /// when neither can: KVM refused and the window has more than [`VMM_TABLE_MAX_ENTRIES`].
    pub fn new(geometry: WindowGeometry, kernel: &dyn KernelTces) -> Option<Self> {
        let backing = match kernel.create(&geometry) {
            Some(handle) => Backing::Kernel(handle),
            None if geometry.entries <= VMM_TABLE_MAX_ENTRIES => {
                Backing::Vmm(vec![0; geometry.entries as usize])
            }
            None => return None,
        };
        Some(TceTable { geometry, backing })
    }

    pub fn in_kernel(&self) -> bool {
        matches!(self.backing, Backing::Kernel(_))
    }

    /// Checks one TCE value for this window.
    fn check_tce<M: GuestMemoryBackend>(&self, mem: &M, tce: u64) -> Result<(), TceError> {
        if tce & (TCE_PCI_READ | TCE_PCI_WRITE) == 0 {
            return Ok(());
        }
        let gpa = tce & !(TCE_PCI_READ | TCE_PCI_WRITE);
        if gpa & self.geometry.page_mask() != 0 {
            return Err(TceError::TceUnaligned { tce });
        }
        if !mem.address_in_range(GuestAddress(gpa)) {
            return Err(TceError::TceOutsideRam { tce });
        }
        Ok(())
    }

    /// The entries `first..first + n` to write, or the in-kernel refusal.
    fn entries_mut(&mut self, first: u64, n: u64) -> Result<&mut [u64], TceError> {
        match &mut self.backing {
            // `index` checked first + n <= entries = len.
            Backing::Vmm(v) => Ok(&mut v[first as usize..(first + n) as usize]),
            Backing::Kernel(_) => Err(TceError::InKernelTable(self.geometry.liobn)),
        }
    }

    /// Serves `call` (its LIOBN is this table's); `Ok` carries `H_GET_TCE`'s value (0 for the
    /// others).
    pub fn call<M: GuestMemoryBackend>(&mut self, mem: &M, call: TceCall) -> Result<u64, TceError> {
        let g = self.geometry;
        match call {
            TceCall::Put { ioba, tce, .. } => {
                let i = g.index(ioba, 1)?;
                self.check_tce(mem, tce)?;
                self.entries_mut(i, 1)?[0] = tce;
                Ok(0)
            }
            TceCall::Get { ioba, .. } => {
                let i = g.index(ioba, 1)?;
                match &self.backing {
                    Backing::Vmm(v) => Ok(v[i as usize]),
                    Backing::Kernel(_) => Err(TceError::InKernelTable(g.liobn)),
                }
            }
            TceCall::Stuff {
                ioba,
                value,
                npages,
                ..
            } => {
                let i = g.index(ioba, npages)?;
                if value & (TCE_PCI_READ | TCE_PCI_WRITE) != 0 {
                    return Err(TceError::StuffMapped { value });
                }
                self.entries_mut(i, npages)?.fill(value);
                Ok(0)
            }
            TceCall::PutIndirect {
                ioba, list, npages, ..
            } => {
                if npages > INDIRECT_MAX {
                    return Err(TceError::ListTooLong { npages });
                }
                if list % INDIRECT_LIST_ALIGN != 0 {
                    return Err(TceError::ListUnaligned { list });
                }
                let i = g.index(ioba, npages)?;
                let mut raw = vec![0u8; 8 * npages as usize];
                mem.read_slice(&mut raw, GuestAddress(list))
                    .map_err(|_| TceError::ListOutsideRam { list, npages })?;
                let tces: Vec<u64> = raw
                    .chunks_exact(8)
                    .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                for &t in &tces {
                    self.check_tce(mem, t)?;
                }
                self.entries_mut(i, npages)?.copy_from_slice(&tces);
                Ok(0)
            }
        }
    }
}
