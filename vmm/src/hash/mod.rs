//! The hash MMU (`--mmu hash`, powernv hosts): everything the VMM does with a hash page table
//! lives here.
//!
//! * [`sizing`]: how big the HPT is, the real-mode area it gives, the page sizes a guest may
//!   use on this host.
//! * [`stream`]: KVM's HPT save stream (`KVM_PPC_GET_HTAB_FD`) turned into the firmware's HPTE
//!   entries, and the check that the dump's HPTE section holds them.
//! * Here: allocating the HPT at start-up ([`setup_mmu`]), clearing it ([`clear`], used by the
//!   machine reset and by the guest's `H_CLEAR_HPT` alike) and reading it for a dump
//!   ([`read`], [`UnreadableHpt`]).
//!
//! A radix guest (the default) has no HPT: [`setup_mmu`] allocates nothing and the dump's HPTE
//! section is empty.

pub mod sizing;
pub mod stream;

use crate::config::MmuMode;
use crate::error::{kvm_err, Error};
use crate::kvm::bindings::kvm_get_htab_fd;
use crate::kvm::VmFd;
use crate::layout::LOW_TOP_MAX;
use devicetree::Mmu;
use log::info;
use std::time::Instant;

/// Radix needs nothing (a new VM on a POWER9 host starts radix). Hash: allocate the HPT, sized
/// so that the real-mode area covers the firmware region; returns the MMU for the device tree
/// and the real-mode area's size. The HPT is sized for `max_ram` (boot RAM plus the memory
/// hotplug window: without `hcall-hpt-resize`, which we do not offer, Linux cannot grow it
/// after a hot-add, as QEMU sizes it from maxram); the real-mode area comes from boot RAM.
pub fn setup_mmu(vm: &VmFd, mode: MmuMode, memory: u64, max_ram: u64) -> Result<(Mmu, u64), Error> {
    match mode {
        MmuMode::Radix => Ok((Mmu::Radix { gtse: true }, memory)),
        MmuMode::Hash => {
            let page_shift = sizing::host_page_shift();
            let want = sizing::order_for(memory.max(max_ram), page_shift, LOW_TOP_MAX);
            let order = vm.allocate_htab(want).map_err(kvm_err(
                "KVM_PPC_ALLOCATE_HTAB (hash guests need a bare-metal KVM-HV host; a nested \
                 pseries L1 runs radix guests only)",
            ))?;
            if !(sizing::MIN_ORDER..=sizing::MAX_ORDER).contains(&order) {
                return Err(Error::Runtime(format!(
                    "KVM_PPC_ALLOCATE_HTAB returned order {order}"
                )));
            }
            let rma = sizing::rma_size(memory, order, page_shift);
            info!(
                "hash MMU: HPT of 2^{order} bytes ({} entries; asked 2^{want}), host pages 2^{page_shift}: \
                 real-mode area {} MiB of {} MiB (sized for {} MiB with the hotplug window)",
                sizing::entries(order),
                rma >> 20,
                memory >> 20,
                memory.max(max_ram) >> 20
            );
            Ok((Mmu::Hash { htab_shift: order }, rma))
        }
    }
}

/// Why the HPT could not be cleared.
#[derive(Debug, thiserror::Error)]
pub enum ClearError {
    /// `KVM_PPC_ALLOCATE_HTAB` failed.
    #[error("KVM_PPC_ALLOCATE_HTAB: {0}")]
    Kvm(#[from] vmm_sys_util::errno::Error),
    /// KVM kept a table of another size.
    #[error("KVM_PPC_ALLOCATE_HTAB returned order {got}, expected {want}")]
    Order { got: u32, want: u32 },
}

impl ClearError {
    /// The errno an hcall handler reports for it.
    pub fn errno(&self) -> i32 {
        match self {
            ClearError::Kvm(e) => e.errno(),
            ClearError::Order { .. } => libc::EIO,
        }
    }
}

/// Clears the HPT of `2^order` bytes: KVM empties the table when asked to allocate one of the
/// size it already has (and sets the VRMA up again on the next entry). Every vCPU must be
/// stopped, or be the caller of `H_CLEAR_HPT` itself.
pub fn clear(vm: &VmFd, order: u32) -> Result<(), ClearError> {
    let got = vm.allocate_htab(order)?;
    if got != order {
        return Err(ClearError::Order { got, want: order });
    }
    Ok(())
}

/// One full pass of KVM's HPT (every vCPU is stopped), logged with its size and checksum.
pub fn read(vm: &VmFd, order: u32) -> Result<stream::HptSnapshot, String> {
    let t = Instant::now();
    let args = kvm_get_htab_fd::default();
    let mut fd = vm
        .get_htab_fd(&args)
        .map_err(|e| format!("KVM_PPC_GET_HTAB_FD: {e}"))?;
    let snap = stream::HptSnapshot::read(&mut fd).map_err(|e| e.to_string())?;
    let area = snap.save_area();
    info!(
        "fadump: HPT read from KVM in {:.1} ms: table 2^{order} bytes ({} entries), stream {} \
         bytes (fnv1a64 {:#018x}), {} valid entries -> save area {} bytes (fnv1a64 {:#018x})",
        t.elapsed().as_secs_f64() * 1e3,
        sizing::entries(order),
        snap.stream_len,
        snap.stream_sum,
        snap.entries.len(),
        area.len(),
        stream::fnv1a64(&area)
    );
    Ok(snap)
}

/// The HPT could not be read: the firmware flags the dump's HPTE section with this reason.
pub struct UnreadableHpt(pub String);

impl firmware::fadump::HptSource for UnreadableHpt {
    fn valid_entries(&mut self) -> Result<Vec<firmware::fadump::HptEntry>, String> {
        Err(self.0.clone())
    }
}
