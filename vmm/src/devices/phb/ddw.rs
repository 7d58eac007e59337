//! The dynamic DMA window RTAS calls (LoPAR "Dynamic DMA Windows"; formats as Linux's
//! `arch/powerpc/platforms/pseries/iommu.c` and QEMU's `spapr_rtas_ddw.c` use them):
//!
//! * `ibm,query-pe-dma-window(config_addr, buid_hi, buid_lo)` → `status, windows available,
//!   largest block (IOMMU pages of the largest size), page sizes (LoPAR bits), migration
//!   capable (0)`: six return cells with the largest block as two (hi, lo), which extension 2
//!   of `ibm,ddw-extensions` announces and Linux then asks for, or the older five.
//! * `ibm,create-pe-dma-window(config_addr, buid_hi, buid_lo, page_shift, window_shift)` →
//!   `status, liobn, bus address hi, lo`.
//! * `ibm,remove-pe-dma-window(liobn)` → `status`.
//! * `ibm,reset-pe-dma-window(config_addr, buid_hi, buid_lo)` → `status` (the default window
//!   back, alone; published as extension 1 of `ibm,ddw-extensions`).
//!
//! Statuses: wrong argument counts, an unknown BUID or LIOBN, a page size not offered, a
//! window smaller than one page or larger than the largest block are parameter errors (-3);
//! a create with no free slot (a DDW exists already) or a table that cannot be made is a
//! hardware error (-1), as QEMU answers. The config address names the PE; every device on our
//! PHB is one PE, so only the BUID picks the windows (QEMU does the same).

use firmware::rtas::{RtasArgs, RtasCall, RtasStatus};
use vm_memory::GuestMemoryBackend;

use super::Phb;

/// The calls this module implements; the machine enables them with
/// `Rtas::enable_machine_call` when it has at least one PHB.
pub const DDW_CALLS: [RtasCall; 4] = [
    RtasCall::IbmQueryPeDmaWindow,
    RtasCall::IbmCreatePeDmaWindow,
    RtasCall::IbmRemovePeDmaWindow,
    RtasCall::IbmResetPeDmaWindow,
];

/// (nargs, nret) of each call; the query's nret may also be 5 (the form without extension 2).
fn counts(call: RtasCall) -> Option<(u32, u32)> {
    Some(match call {
        RtasCall::IbmQueryPeDmaWindow => (3, 6),
        RtasCall::IbmCreatePeDmaWindow => (5, 4),
        RtasCall::IbmRemovePeDmaWindow => (1, 1),
        RtasCall::IbmResetPeDmaWindow => (3, 1),
        _ => return None,
    })
}

/// Handles one of [`DDW_CALLS`] for the PHBs `phbs`, writing the return cells. Returns false
/// (and writes nothing) for any other call.
pub fn handle_ddw_call<M: GuestMemoryBackend>(
    phbs: &mut [Phb],
    mem: &M,
    call: RtasCall,
    args: &RtasArgs,
) -> bool {
    let Some((nargs, nret)) = counts(call) else {
        return false;
    };
    let query5 = call == RtasCall::IbmQueryPeDmaWindow && args.has_counts(3, 5);
    let rets = if args.has_counts(nargs, nret) || query5 {
        // Our RAM is one range from 0.
        let ram = mem.last_addr().0.saturating_add(1);
        answer(phbs, ram, call, args)
    } else {
        crate::guest_warn!(
            "rtas: {}: {} args / {} rets, expected {nargs}/{nret}",
            call.name(),
            args.nargs,
            args.nret
        );
        vec![RtasStatus::ParameterError.cell()]
    };
    if let Err(e) = args.write_rets(mem, &rets) {
        crate::guest_warn!("rtas: {}: cannot write return cells: {e}", call.name());
    }
    true
}

fn by_buid<'a>(phbs: &'a mut [Phb], call: RtasCall, args: &RtasArgs) -> Option<&'a mut Phb> {
    let buid = (u64::from(args.arg(1)) << 32) | u64::from(args.arg(2));
    let found = phbs.iter_mut().find(|p| p.config().buid == buid);
    if found.is_none() {
        crate::guest_warn!("rtas: {}: no PHB with BUID {buid:#x}", call.name());
    }
    found
}

fn answer(phbs: &mut [Phb], ram: u64, call: RtasCall, args: &RtasArgs) -> Vec<u32> {
    let param = vec![RtasStatus::ParameterError.cell()];
    let ok = RtasStatus::Success.cell();
    match call {
        RtasCall::IbmQueryPeDmaWindow => {
            let Some(phb) = by_buid(phbs, call, args) else {
                return param;
            };
            let q = phb.dma().query(ram);
            if args.nret == 5 {
                let block = u32::try_from(q.largest_block).unwrap_or(u32::MAX);
                vec![ok, q.windows_available, block, q.page_sizes, 0]
            } else {
                let b = q.largest_block;
                vec![
                    ok,
                    q.windows_available,
                    (b >> 32) as u32,
                    b as u32,
                    q.page_sizes,
                    0,
                ]
            }
        }
        RtasCall::IbmCreatePeDmaWindow => {
            let Some(phb) = by_buid(phbs, call, args) else {
                return param;
            };
            match phb.dma_mut().create(ram, args.arg(3), args.arg(4)) {
                Ok(g) => {
                    log::info!(
                        "pci {:#x}: DMA window LIOBN {:#x} created: 2^{} bytes of 2^{} pages at \
                         bus address {:#x}",
                        phb.config().buid,
                        g.liobn,
                        args.arg(4),
                        g.page_shift,
                        g.bus_offset
                    );
                    vec![
                        ok,
                        g.liobn,
                        (g.bus_offset >> 32) as u32,
                        g.bus_offset as u32,
                    ]
                }
                Err(e) => {
                    crate::guest_warn!("rtas: {}: {e}", call.name());
                    let s = if e.rtas_parameter() {
                        RtasStatus::ParameterError
                    } else {
                        RtasStatus::HardwareError
                    };
                    vec![s.cell()]
                }
            }
        }
        RtasCall::IbmRemovePeDmaWindow => {
            let liobn = args.arg(0);
            match phbs.iter_mut().find(|p| p.dma().owns(liobn.into())) {
                Some(phb) => match phb.dma_mut().remove(liobn) {
                    Ok(()) => {
                        log::info!("DMA window LIOBN {liobn:#x} removed");
                        vec![ok]
                    }
                    Err(e) => {
                        crate::guest_warn!("rtas: {}: {e}", call.name());
                        param
                    }
                },
                None => {
                    crate::guest_warn!("rtas: {}: unknown LIOBN {liobn:#x}", call.name());
                    param
                }
            }
        }
        RtasCall::IbmResetPeDmaWindow => {
            let Some(phb) = by_buid(phbs, call, args) else {
                return param;
            };
            phb.dma_mut().reset();
            log::info!("pci {:#x}: DMA windows reset", phb.config().buid);
            vec![ok]
        }
        _ => param,
    }
}
