//! The DMA windows: TCE hcalls and DDW RTAS calls, including every hostile input.

use std::sync::Arc;

use firmware::rtas::{RtasCall, RtasStatus};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::ddw::handle_ddw_call;
use super::dma::{liobn, DmaWindows, DDW_BUS, DEFAULT_WINDOW_SIZE};
use super::tce::*;
use super::tests::{args, buid_cells, phb_with, rets};
use super::Phb;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const RW: u64 = TCE_PCI_READ | TCE_PCI_WRITE;
const DEFAULT: u64 = 0x8000_0000;
const DDW: u64 = 0x8000_0001;

/// Guest RAM of `size` bytes (mapped without reserve: only touched pages cost memory).
fn ram(size: u64) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)]).unwrap()
}

fn windows() -> DmaWindows {
    DmaWindows::new(0, Arc::new(NoKernelTces))
}

fn put(
    w: &mut DmaWindows,
    m: &GuestMemoryMmap,
    liobn: u64,
    ioba: u64,
    tce: u64,
) -> Result<u64, TceError> {
    w.tce_call(m, TceCall::Put { liobn, ioba, tce })
}

fn get(w: &mut DmaWindows, m: &GuestMemoryMmap, liobn: u64, ioba: u64) -> Result<u64, TceError> {
    w.tce_call(m, TceCall::Get { liobn, ioba })
}

/// Writes `tces` big-endian at `at` and calls H_PUT_TCE_INDIRECT with `npages` of them.
fn indirect(
    w: &mut DmaWindows,
    m: &GuestMemoryMmap,
    ioba: u64,
    at: u64,
    tces: &[u64],
    npages: u64,
) -> Result<u64, TceError> {
    let bytes: Vec<u8> = tces.iter().flat_map(|t| t.to_be_bytes()).collect();
    m.write_slice(&bytes, GuestAddress(at)).unwrap();
    w.tce_call(
        m,
        TceCall::PutIndirect {
            liobn: DEFAULT,
            ioba,
            list: at,
            npages,
        },
    )
}

#[test]
fn the_power_on_window_is_the_default_one_qemu_announces() {
    let w = windows();
    let g = w.default_geometry();
    assert_eq!((g.liobn, g.bus_offset, g.page_shift), (0x8000_0000, 0, 12));
    assert_eq!(g.size(), DEFAULT_WINDOW_SIZE);
    assert_eq!(w.active().count(), 1);
    assert_eq!(liobn(1, 1), 0x8000_0101);
    let (phb, _) = phb_with(vec![]);
    let d = phb.description().dma_window;
    assert_eq!((d.liobn, d.bus_addr, d.size), (0x8000_0000, 0, 1 << 30));
    let t = phb.description().ddw.unwrap();
    assert_eq!(
        [t.query, t.create, t.remove, t.reset],
        [0x2026, 0x2027, 0x2028, 0x2029],
        "QEMU 11.1's tokens"
    );
}

#[test]
fn put_get_stuff_and_indirect_fill_the_table() {
    let m = ram(64 * MIB);
    let mut w = windows();
    assert_eq!(put(&mut w, &m, DEFAULT, 0x5000, 0x20_0000 | RW), Ok(0));
    assert_eq!(get(&mut w, &m, DEFAULT, 0x5000), Ok(0x20_0000 | RW));
    assert_eq!(get(&mut w, &m, DEFAULT, 0x6000), Ok(0));
    // 512 entries from a 4 KiB-aligned list: the most one call may carry.
    let list: Vec<u64> = (0..512).map(|i| (i << 12) | TCE_PCI_READ).collect();
    assert_eq!(
        indirect(&mut w, &m, 0x10_0000, 0x30_0000, &list, 512),
        Ok(0)
    );
    assert_eq!(
        get(&mut w, &m, DEFAULT, 0x10_0000 + 511 * 4096),
        Ok((511 << 12) | 1)
    );
    // Stuff unmaps a range (the clear Linux does at boot, 512 entries a call).
    let stuff = TceCall::Stuff {
        liobn: DEFAULT,
        ioba: 0x10_0000,
        value: 0,
        npages: 512,
    };
    assert_eq!(w.tce_call(&m, stuff), Ok(0));
    assert_eq!(get(&mut w, &m, DEFAULT, 0x10_0000 + 4096), Ok(0));
    // An unmapped TCE's address is not looked at (KVM allows such "poison" values).
    assert_eq!(put(&mut w, &m, DEFAULT, 0x5000, 1 << 60), Ok(0));
}

#[test]
fn bad_liobns_and_bus_addresses_are_refused() {
    let m = ram(64 * MIB);
    let mut w = windows();
    assert_eq!(
        put(&mut w, &m, 0x1234, 0, 0),
        Err(TceError::UnknownLiobn(0x1234))
    );
    assert_eq!(
        get(&mut w, &m, DDW, 0),
        Err(TceError::UnknownLiobn(DDW)),
        "no DDW yet"
    );
    assert_eq!(
        put(&mut w, &m, DEFAULT, 0x800, RW),
        Err(TceError::IobaUnaligned { ioba: 0x800 })
    );
    for ioba in [DEFAULT_WINDOW_SIZE, !0xfff_u64] {
        assert_eq!(
            get(&mut w, &m, DEFAULT, ioba),
            Err(TceError::IobaOutOfWindow { ioba, npages: 1 })
        );
    }
    // A range that starts inside and runs past the end, or whose count wraps.
    for npages in [2, u64::MAX] {
        let stuff = TceCall::Stuff {
            liobn: DEFAULT,
            ioba: DEFAULT_WINDOW_SIZE - 4096,
            value: 0,
            npages,
        };
        assert!(matches!(
            w.tce_call(&m, stuff),
            Err(TceError::IobaOutOfWindow { .. })
        ));
    }
}

#[test]
fn tces_must_be_aligned_and_point_into_ram() {
    let m = ram(64 * MIB);
    let mut w = windows();
    assert_eq!(
        put(&mut w, &m, DEFAULT, 0, 0x1800 | RW),
        Err(TceError::TceUnaligned { tce: 0x1800 | RW })
    );
    for tce in [(64 * MIB) | RW, (1 << 50) | TCE_PCI_WRITE] {
        assert_eq!(
            put(&mut w, &m, DEFAULT, 0, tce),
            Err(TceError::TceOutsideRam { tce })
        );
    }
    assert_eq!(get(&mut w, &m, DEFAULT, 0), Ok(0), "nothing written");
    // H_STUFF_TCE may only unmap.
    let stuff = TceCall::Stuff {
        liobn: DEFAULT,
        ioba: 0,
        value: 0x1000 | TCE_PCI_READ,
        npages: 1,
    };
    assert_eq!(
        w.tce_call(&m, stuff),
        Err(TceError::StuffMapped {
            value: 0x1000 | TCE_PCI_READ
        })
    );
}

#[test]
fn bad_indirect_lists_change_nothing() {
    let m = ram(64 * MIB);
    let mut w = windows();
    let good: Vec<u64> = (0..8).map(|i| (i << 12) | RW).collect();
    assert_eq!(
        indirect(&mut w, &m, 0, 0x30_0800, &good, 8),
        Err(TceError::ListUnaligned { list: 0x30_0800 })
    );
    assert_eq!(
        indirect(&mut w, &m, 0, 0x30_0000, &good, 513),
        Err(TceError::ListTooLong { npages: 513 })
    );
    // A list in RAM's last page is fine (4 KiB-aligned, 512 entries at most: a list cannot
    // straddle the end of RAM); one past the end, or far outside, is not.
    assert_eq!(indirect(&mut w, &m, 0, 64 * MIB - 4096, &good, 8), Ok(0));
    let beyond = TceCall::PutIndirect {
        liobn: DEFAULT,
        ioba: 0,
        list: 64 * MIB,
        npages: 8,
    };
    assert_eq!(
        w.tce_call(&m, beyond),
        Err(TceError::ListOutsideRam {
            list: 64 * MIB,
            npages: 8
        })
    );
    let far = TceCall::PutIndirect {
        liobn: DEFAULT,
        ioba: 0,
        list: !0xfff_u64,
        npages: 512,
    };
    assert!(matches!(
        w.tce_call(&m, far),
        Err(TceError::ListOutsideRam { .. })
    ));
    // One bad TCE among good ones: the call fails and no entry of it is written.
    let mut w = windows();
    let mut mixed = good.clone();
    mixed[5] = (1 << 40) | RW;
    assert_eq!(
        indirect(&mut w, &m, 0x8000, 0x30_0000, &mixed, 8),
        Err(TceError::TceOutsideRam {
            tce: (1 << 40) | RW
        })
    );
    assert_eq!(get(&mut w, &m, DEFAULT, 0x8000), Ok(0));
    // A list past the window's end.
    assert!(matches!(
        indirect(&mut w, &m, DEFAULT_WINDOW_SIZE - 4096, 0x30_0000, &good, 8),
        Err(TceError::IobaOutOfWindow { .. })
    ));
}

/// A KVM that makes every table.
struct InKernel;

impl KernelTces for InKernel {
    fn create(&self, _: &WindowGeometry) -> Option<Box<dyn Send>> {
        Some(Box::new(()))
    }
}

#[test]
fn calls_kvm_bounced_for_an_in_kernel_table_get_the_papr_code() {
    let m = ram(64 * MIB);
    let mut w = DmaWindows::new(0, Arc::new(InKernel));
    assert!(w.active().all(TceTable::in_kernel));
    // What KVM bounces (a TCE it cannot translate) is a parameter error here too...
    assert_eq!(
        put(&mut w, &m, DEFAULT, 0, (1 << 40) | RW),
        Err(TceError::TceOutsideRam {
            tce: (1 << 40) | RW
        })
    );
    // ...and a call we would accept, for a table only KVM holds, is a hardware error.
    assert_eq!(
        put(&mut w, &m, DEFAULT, 0, 0x1000 | RW),
        Err(TceError::InKernelTable(0x8000_0000))
    );
    assert_eq!(
        get(&mut w, &m, DEFAULT, 0),
        Err(TceError::InKernelTable(0x8000_0000))
    );
}

#[test]
fn a_ddw_maps_all_of_ram_the_way_linux_asks() {
    let m = ram(8 * GIB);
    let mut w = windows();
    let q = w.query(8 * GIB);
    // 4K | 64K | 16M; 2^33 bytes = 512 pages of 16 MiB.
    assert_eq!(
        (q.windows_available, q.largest_block, q.page_sizes),
        (1, 512, 0x7)
    );
    // enable_ddw(): the largest page size, window order_base_2(RAM end).
    let g = w.create(8 * GIB, 24, 33).unwrap();
    assert_eq!(
        (g.liobn, g.bus_offset, g.entries),
        (0x8000_0001, DDW_BUS, 512)
    );
    assert_eq!(w.query(8 * GIB).windows_available, 0);
    // Linux's direct mapping: TCE i -> RAM i << 24, in calls of up to 512.
    let list: Vec<u64> = (0..512).map(|i| (i << 24) | RW).collect();
    let bytes: Vec<u8> = list.iter().flat_map(|t| t.to_be_bytes()).collect();
    m.write_slice(&bytes, GuestAddress(0x10_0000)).unwrap();
    let call = TceCall::PutIndirect {
        liobn: DDW,
        ioba: DDW_BUS,
        list: 0x10_0000,
        npages: 512,
    };
    assert_eq!(w.tce_call(&m, call), Ok(0));
    assert_eq!(
        get(&mut w, &m, DDW, DDW_BUS + 511 * (1 << 24)),
        Ok((511 << 24) | RW)
    );
    // The DDW's pages are 16 MiB: a 4 KiB-aligned address is not enough.
    assert!(matches!(
        put(&mut w, &m, DDW, DDW_BUS, 0x1000 | RW),
        Err(TceError::TceUnaligned { .. })
    ));
}

#[test]
fn bad_ddw_requests_are_refused() {
    let ram8 = 8 * GIB;
    let mut w = windows();
    for shift in [0, 11, 13, 21, 30, 64, u32::MAX] {
        assert_eq!(
            w.create(ram8, shift, 33),
            Err(super::dma::DdwError::PageShift(shift))
        );
    }
    for window_shift in [23, 34, 63, u32::MAX] {
        let e = w.create(ram8, 24, window_shift).unwrap_err();
        assert!(
            matches!(e, super::dma::DdwError::WindowShift { .. }) && e.rtas_parameter(),
            "{window_shift}: {e}"
        );
    }
    // A table the VMM would have to hold but may not: 2^22 entries of 4 KiB for 16 GiB.
    let e = w.create(16 * GIB, 12, 34).unwrap_err();
    assert_eq!(e, super::dma::DdwError::TableTooLarge { entries: 1 << 22 });
    assert!(!e.rtas_parameter());
    w.create(ram8, 16, 33).unwrap();
    assert_eq!(
        w.create(ram8, 16, 33),
        Err(super::dma::DdwError::NoFreeWindow)
    );
    assert_eq!(
        w.remove(0x8000_0007),
        Err(super::dma::DdwError::UnknownLiobn(0x8000_0007))
    );
    w.remove(DDW as u32).unwrap();
    assert_eq!(
        w.remove(DDW as u32),
        Err(super::dma::DdwError::UnknownLiobn(DDW as u32))
    );
    // With the default window removed too, a new window starts at bus address 0.
    w.remove(DEFAULT as u32).unwrap();
    assert_eq!(w.query(ram8).windows_available, 2);
    assert_eq!(w.create(ram8, 24, 33).unwrap().bus_offset, 0);
}

// ---- the RTAS calls -----------------------------------------------------------------------

fn rtas(phbs: &mut [Phb], m: &GuestMemoryMmap, which: RtasCall, a: &[u32], nret: u32) -> Vec<u32> {
    let block = args(m, which, a, nret);
    assert!(handle_ddw_call(phbs, m, which, &block));
    rets(m, &block)
}

const PARAM: u32 = RtasStatus::ParameterError as i32 as u32;
const HW: u32 = RtasStatus::HardwareError as i32 as u32;

#[test]
fn ddw_rtas_calls_answer_in_linux_formats() {
    let m = ram(8 * GIB);
    let (hi, lo) = buid_cells();
    let mut phbs = vec![phb_with(vec![]).0];
    // Bus 0, slot 1. The query in six cells (extension 2), and in the older five.
    let cfg = 1 << 11;
    let query = |phbs: &mut Vec<Phb>, nret| {
        rtas(
            phbs,
            &m,
            RtasCall::IbmQueryPeDmaWindow,
            &[cfg, hi, lo],
            nret,
        )
    };
    assert_eq!(query(&mut phbs, 6), [0, 1, 0, 512, 0x7, 0]);
    assert_eq!(query(&mut phbs, 5), [0, 1, 512, 0x7, 0]);
    let create = |phbs: &mut Vec<Phb>| {
        rtas(
            phbs,
            &m,
            RtasCall::IbmCreatePeDmaWindow,
            &[cfg, hi, lo, 24, 33],
            4,
        )
    };
    assert_eq!(create(&mut phbs), [0, 0x8000_0001, 0x0800_0000, 0]);
    assert_eq!(create(&mut phbs)[0], HW, "create twice: no free window");
    // A hostile remove, then the real one; then reset brings the default window back alone.
    assert_eq!(
        rtas(
            &mut phbs,
            &m,
            RtasCall::IbmRemovePeDmaWindow,
            &[0x8000_0009],
            1
        ),
        [PARAM]
    );
    assert_eq!(
        rtas(&mut phbs, &m, RtasCall::IbmRemovePeDmaWindow, &[0x1234], 1),
        [PARAM]
    );
    assert_eq!(
        rtas(
            &mut phbs,
            &m,
            RtasCall::IbmRemovePeDmaWindow,
            &[0x8000_0001],
            1
        ),
        [0]
    );
    assert_eq!(create(&mut phbs)[0], 0);
    assert_eq!(
        rtas(
            &mut phbs,
            &m,
            RtasCall::IbmResetPeDmaWindow,
            &[cfg, hi, lo],
            1
        ),
        [0]
    );
    let active: Vec<u32> = phbs[0].dma().active().map(|t| t.geometry.liobn).collect();
    assert_eq!(active, [0x8000_0000]);
}

#[test]
fn hostile_ddw_rtas_calls_get_parameter_or_hardware_errors() {
    let m = ram(8 * GIB);
    let (hi, lo) = buid_cells();
    let mut phbs = vec![phb_with(vec![]).0];
    let cases: &[(RtasCall, &[u32], u32, u32)] = &[
        // Wrong counts.
        (RtasCall::IbmQueryPeDmaWindow, &[0, hi, lo], 4, PARAM),
        (RtasCall::IbmQueryPeDmaWindow, &[0, hi], 5, PARAM),
        (RtasCall::IbmCreatePeDmaWindow, &[0, hi, lo, 24], 4, PARAM),
        (RtasCall::IbmRemovePeDmaWindow, &[], 1, PARAM),
        (RtasCall::IbmResetPeDmaWindow, &[0, hi, lo], 2, PARAM),
        // Unknown BUID.
        (RtasCall::IbmQueryPeDmaWindow, &[0, hi, lo + 1], 6, PARAM),
        (RtasCall::IbmCreatePeDmaWindow, &[0, 0, 0, 24, 33], 4, PARAM),
        (
            RtasCall::IbmResetPeDmaWindow,
            &[0, u32::MAX, u32::MAX],
            1,
            PARAM,
        ),
        // Bad page shift, window too large or smaller than a page.
        (
            RtasCall::IbmCreatePeDmaWindow,
            &[0, hi, lo, 13, 33],
            4,
            PARAM,
        ),
        (
            RtasCall::IbmCreatePeDmaWindow,
            &[0, hi, lo, 24, 40],
            4,
            PARAM,
        ),
        (
            RtasCall::IbmCreatePeDmaWindow,
            &[0, hi, lo, 24, 20],
            4,
            PARAM,
        ),
        (
            RtasCall::IbmCreatePeDmaWindow,
            &[0, hi, lo, u32::MAX, u32::MAX],
            4,
            PARAM,
        ),
    ];
    for &(call, a, nret, want) in cases {
        assert_eq!(
            rtas(&mut phbs, &m, call, a, nret)[0],
            want,
            "{} {a:x?}",
            call.name()
        );
    }
    assert_eq!(phbs[0].dma().active().count(), 1, "nothing created");
    // Not a DDW call: left for someone else, nothing written.
    let block = args(&m, RtasCall::IbmReadPciConfig, &[0, hi, lo, 4], 2);
    assert!(!handle_ddw_call(
        &mut phbs,
        &m,
        RtasCall::IbmReadPciConfig,
        &block
    ));
    assert_eq!(rets(&m, &block), [0xdead_beef, 0xdead_beef]);
}

#[test]
fn a_phb_reset_drops_the_ddw_and_unmaps_every_tce() {
    let m = ram(GIB);
    let (mut phb, _) = phb_with(vec![]);
    phb.dma_mut().create(GIB, 24, 30).unwrap();
    put(phb.dma_mut(), &m, DEFAULT, 0, 0x1000 | RW).unwrap();
    phb.reset();
    assert_eq!(phb.dma().active().count(), 1);
    assert_eq!(get(phb.dma_mut(), &m, DEFAULT, 0), Ok(0));
    assert_eq!(
        get(phb.dma_mut(), &m, DDW, DDW_BUS),
        Err(TceError::UnknownLiobn(DDW))
    );
}
