//! Memory DLPAR through `Rtas::dispatch`, the way Linux's pseries hotplug code calls it.

use std::cell::RefCell;

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::event::HotplugAction;
use super::table::{LmbTable, ResetKind};
use super::*;
use crate::fadump::FadumpConfig;
use crate::memory;
use crate::range::GuestRange;
use crate::rtas::dlpar::DLPAR_CALLS;
use crate::rtas::events::MAX_PENDING_LOGS;
use crate::rtas::EventClass;
use crate::rtas::{CpuRunState, Platform, Rtas, RtasAction, RtasArgs, RtasCall, TimeOfDay};

const M: u64 = 1 << 20;
const ARGS: u64 = 0x1000;
const WA: u64 = 0x2000;
const BUF: u64 = 0x4000;

#[derive(Default)]
struct Recorder {
    mapped: RefCell<Vec<GuestRange>>,
    unmapped: RefCell<Vec<GuestRange>>,
    refuse_map: bool,
}

impl Platform for Recorder {
    fn time_of_day(&self) -> TimeOfDay {
        TimeOfDay::default()
    }
    fn cpu_run_state(&self, _: u32) -> Option<CpuRunState> {
        Some(CpuRunState::Running)
    }
    fn map_memory(&self, r: GuestRange) -> bool {
        self.mapped.borrow_mut().push(r);
        !self.refuse_map
    }
    fn unmap_memory(&self, r: GuestRange) {
        self.unmapped.borrow_mut().push(r);
    }
}

/// 64 MiB of real RAM for the argument blocks (the window is never touched here) and a
/// firmware whose table says 1536 MiB of boot RAM and window LMBs 6 and 7.
fn setup() -> (GuestMemoryMmap, Rtas) {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), (64 * M) as usize)]).unwrap();
    let mut rtas = Rtas::new(FadumpConfig {
        max_cpus: 2,
        hpte_capacity: 0,
        rma_size: 64 * M,
        firmware_reserved: vec![],
    });
    let table = LmbTable::new(1536 * M, 0x6000_0000, 512 * M).unwrap();
    rtas.set_dlpar(Dlpar::new(table));
    (mem, rtas)
}

fn call(
    mem: &GuestMemoryMmap,
    rtas: &mut Rtas,
    p: &Recorder,
    c: RtasCall,
    args: &[u32],
    nret: u32,
) -> Vec<i32> {
    let b = RtasArgs::block_bytes(c.token(), args, nret, 0xdead_beef);
    memory::write_bytes(mem, ARGS, &b).unwrap();
    assert_eq!(rtas.dispatch(mem, ARGS, p).unwrap(), RtasAction::None);
    let at = ARGS + 12 + 4 * args.len() as u64;
    (0..nret as u64)
        .map(|i| {
            let v = memory::read_bytes(mem, at + 4 * i, 4).unwrap();
            i32::from_be_bytes(v.try_into().unwrap())
        })
        .collect()
}

fn sense(mem: &GuestMemoryMmap, rtas: &mut Rtas, p: &Recorder, index: u32) -> Vec<i32> {
    call(
        mem,
        rtas,
        p,
        RtasCall::GetSensorState,
        &[SENSOR_DR_ENTITY_SENSE, index],
        2,
    )
}

fn indicator(
    mem: &GuestMemoryMmap,
    rtas: &mut Rtas,
    p: &Recorder,
    ind: u32,
    index: u32,
    v: u32,
) -> i32 {
    call(mem, rtas, p, RtasCall::SetIndicator, &[ind, index, v], 1)[0]
}

fn be32(mem: &GuestMemoryMmap, at: u64) -> u32 {
    u32::from_be_bytes(memory::read_bytes(mem, at, 4).unwrap().try_into().unwrap())
}

fn cstr(mem: &GuestMemoryMmap, at: u64) -> String {
    memory::read_c_string(mem, at, 64).unwrap()
}

/// dlpar.c `dlpar_configure_connector()`: the pieces until COMPLETE, as (response, name,
/// value).
fn configure(
    mem: &GuestMemoryMmap,
    rtas: &mut Rtas,
    p: &Recorder,
    index: u32,
) -> Vec<(i32, String, Vec<u8>)> {
    let mut out = vec![];
    for _ in 0..10 {
        let mut wa = index.to_be_bytes().to_vec();
        wa.extend([0u8; 16]);
        memory::write_bytes(mem, WA, &wa).unwrap();
        let rc = call(
            mem,
            rtas,
            p,
            RtasCall::IbmConfigureConnector,
            &[WA as u32, 0],
            1,
        )[0];
        match rc {
            2 => out.push((rc, cstr(mem, WA + u64::from(be32(mem, WA + 8))), vec![])),
            3 => {
                let name = cstr(mem, WA + u64::from(be32(mem, WA + 8)));
                let len = be32(mem, WA + 12) as usize;
                let value =
                    memory::read_bytes(mem, WA + u64::from(be32(mem, WA + 16)), len).unwrap();
                out.push((rc, name, value));
            }
            _ => {
                out.push((rc, String::new(), vec![]));
                return out;
            }
        }
    }
    panic!("configure-connector never completed: {out:?}")
}

/// Linux's `dlpar_acquire_drc` + `dlpar_add_lmb` for one LMB.
fn guest_add(mem: &GuestMemoryMmap, rtas: &mut Rtas, p: &Recorder, index: u32) {
    assert_eq!(sense(mem, rtas, p, index), [0, 2]);
    assert_eq!(indicator(mem, rtas, p, INDICATOR_ALLOCATION, index, 1), 0);
    assert_eq!(indicator(mem, rtas, p, INDICATOR_ISOLATION, index, 1), 0);
    assert_eq!(configure(mem, rtas, p, index).last().unwrap().0, 0);
}

/// Linux's `dlpar_release_drc` after `dlpar_remove_lmb`.
fn guest_release(mem: &GuestMemoryMmap, rtas: &mut Rtas, p: &Recorder, index: u32) {
    assert_eq!(sense(mem, rtas, p, index), [0, 1]);
    assert_eq!(indicator(mem, rtas, p, INDICATOR_ISOLATION, index, 0), 0);
    assert_eq!(indicator(mem, rtas, p, INDICATOR_ALLOCATION, index, 0), 0);
}

#[test]
fn the_calls_are_published_only_with_a_window() {
    let (_, rtas) = setup();
    let plain = Rtas::new(rtas.fadump().config().clone());
    for c in DLPAR_CALLS {
        assert!(rtas.published_calls().contains(&c), "{c:?}");
        assert!(!plain.published_calls().contains(&c), "{c:?}");
    }
    assert!(rtas
        .properties()
        .iter()
        .any(|p| p.name == "ibm,lrdr-capacity"));
    assert!(!plain
        .properties()
        .iter()
        .any(|p| p.name == "ibm,lrdr-capacity"));
}

/// `echo "memory add count 1" > /sys/kernel/dlpar` with the window pre-granted, then the
/// guest's own removal: the node Linux reads, the memory mapped and unmapped.
#[test]
fn guest_initiated_add_streams_the_node_and_maps_the_lmb() {
    let (mem, mut rtas) = setup();
    let p = Recorder::default();
    rtas.dlpar_mut().unwrap().table_mut().grant_all();
    assert_eq!(sense(&mem, &mut rtas, &p, 0x8000_0006), [0, 2]);
    assert_eq!(
        indicator(&mem, &mut rtas, &p, INDICATOR_ALLOCATION, 0x8000_0006, 1),
        0
    );
    assert_eq!(
        *p.mapped.borrow(),
        [GuestRange::new(0x6000_0000, LMB_SIZE).unwrap()]
    );
    assert_eq!(
        indicator(&mem, &mut rtas, &p, INDICATOR_ISOLATION, 0x8000_0006, 1),
        0
    );
    let pieces = configure(&mem, &mut rtas, &p, 0x8000_0006);
    let be = |c: &[u32]| c.iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    assert_eq!(
        pieces,
        [
            (2, "memory@60000000".into(), vec![]),
            (3, "device_type".into(), b"memory\0".to_vec()),
            (3, "reg".into(), be(&[0, 0x6000_0000, 0, 0x1000_0000])),
            (3, "ibm,associativity".into(), be(&[4, 0, 0, 0, 0])),
            (0, String::new(), vec![]),
        ]
    );
    let d = rtas.dlpar().unwrap();
    assert_eq!(d.table().owned(), [0]);
    let v2 = d.drconf_properties()[1].value.to_fdt_bytes();
    assert_eq!(
        &v2[4 + 24 + 20..4 + 48],
        &0x108u32.to_be_bytes(),
        "ASSIGNED in the next tree"
    );
    guest_release(&mem, &mut rtas, &p, 0x8000_0006);
    assert_eq!(
        *p.unmapped.borrow(),
        [GuestRange::new(0x6000_0000, LMB_SIZE).unwrap()]
    );
    assert!(rtas.dlpar().unwrap().table().owned().is_empty());
}

/// Bad input from the guest: unknown DRC indexes (boot RAM's drc 0 among them), the wrong
/// indicator or sensor, the wrong state, an LMB not granted: PAPR codes, nothing changes.
#[test]
fn unknown_indexes_and_wrong_states_get_papr_codes() {
    let (mem, mut rtas) = setup();
    let p = Recorder::default();
    for bad in [0, 0x8000_0005, 0x8000_0008, 0x1000_0000, u32::MAX] {
        assert_eq!(sense(&mem, &mut rtas, &p, bad), [-3, 0], "{bad:#x}");
        assert_eq!(
            indicator(&mem, &mut rtas, &p, INDICATOR_ALLOCATION, bad, 1),
            -3
        );
        let mut wa = bad.to_be_bytes().to_vec();
        wa.extend([0u8; 16]);
        memory::write_bytes(&mem, WA, &wa).unwrap();
        assert_eq!(
            call(
                &mem,
                &mut rtas,
                &p,
                RtasCall::IbmConfigureConnector,
                &[WA as u32, 0],
                1
            ),
            [-3]
        );
    }
    assert_eq!(
        call(
            &mem,
            &mut rtas,
            &p,
            RtasCall::GetSensorState,
            &[9, 0x8000_0006],
            2
        ),
        [-3, 0]
    );
    assert_eq!(
        indicator(&mem, &mut rtas, &p, INDICATOR_DR, 0x8000_0006, 1),
        -3
    );
    // Not granted: the guest may not take it.
    assert_eq!(
        indicator(&mem, &mut rtas, &p, INDICATOR_ALLOCATION, 0x8000_0006, 1),
        -3
    );
    assert_eq!(
        indicator(&mem, &mut rtas, &p, INDICATOR_ISOLATION, 0x8000_0006, 1),
        -3
    );
    let mut wa = 0x8000_0006u32.to_be_bytes().to_vec();
    wa.extend([0u8; 16]);
    memory::write_bytes(&mem, WA, &wa).unwrap();
    assert_eq!(
        call(
            &mem,
            &mut rtas,
            &p,
            RtasCall::IbmConfigureConnector,
            &[WA as u32, 0],
            1
        ),
        [-9003]
    );
    // A work area outside RAM.
    assert_eq!(
        call(
            &mem,
            &mut rtas,
            &p,
            RtasCall::IbmConfigureConnector,
            &[0xffff_f000, 0],
            1
        ),
        [-1]
    );
    // Wrong counts.
    assert_eq!(
        call(
            &mem,
            &mut rtas,
            &p,
            RtasCall::SetIndicator,
            &[9003, 0x8000_0006],
            1
        ),
        [-3]
    );
    assert!(p.mapped.borrow().is_empty());
    assert!(rtas.dlpar().unwrap().table().owned().is_empty());
    // A mapping the platform cannot make fails the call and leaves the LMB free.
    let refusing = Recorder {
        refuse_map: true,
        ..Recorder::default()
    };
    rtas.dlpar_mut().unwrap().table_mut().grant_all();
    assert_eq!(
        indicator(
            &mem,
            &mut rtas,
            &refusing,
            INDICATOR_ALLOCATION,
            0x8000_0006,
            1
        ),
        -1
    );
    assert_eq!(sense(&mem, &mut rtas, &p, 0x8000_0006), [0, 2]);
}

/// `check-exception` for hot-plug events into the buffer at BUF: (status, what the machine
/// must do).
fn check_exception(
    mem: &GuestMemoryMmap,
    rtas: &mut Rtas,
    p: &Recorder,
    len: u32,
) -> (i32, RtasAction) {
    let mask = EventClass::HotPlug.mask();
    let b = RtasArgs::block_bytes(
        RtasCall::CheckException.token(),
        &[0x500, 0x1001, mask, 0, BUF as u32, len],
        1,
        0xdead_beef,
    );
    memory::write_bytes(mem, ARGS, &b).unwrap();
    let action = rtas.dispatch(mem, ARGS, p).unwrap();
    let st = memory::read_bytes(mem, ARGS + 12 + 24, 4).unwrap();
    (i32::from_be_bytes(st.try_into().unwrap()), action)
}

/// The host adds 512 MiB: one count-indexed event for the two consecutive LMBs, its log in
/// the guest's buffer as Linux parses it; then a removal the guest completes and one it
/// refuses.
#[test]
fn host_add_and_remove_through_check_exception() {
    let (mem, mut rtas) = setup();
    let p = Recorder::default();
    let req = rtas
        .memory_hotplug(HotplugAction::Add, 2, TimeOfDay::default())
        .unwrap();
    assert_eq!(req.lmbs, [0, 1]);
    assert_eq!(
        req.events.len(),
        1,
        "consecutive LMBs: one count-indexed event"
    );
    assert_eq!(rtas.events().len(), 1);
    assert_eq!(
        check_exception(&mem, &mut rtas, &p, 2048),
        (0, RtasAction::None)
    );
    let log = memory::read_bytes(&mem, BUF, 116).unwrap();
    assert_eq!(
        &log[0..4],
        &[6, 0x34, 0, 0xe5],
        "v6, event, not recovered, hot-plug"
    );
    assert_eq!(u32::from_be_bytes(log[4..8].try_into().unwrap()), 108);
    assert_eq!(&log[96..98], b"HP");
    assert_eq!(&log[104..116], [2, 1, 4, 0, 0, 0, 0, 2, 0x80, 0, 0, 6]);
    assert_eq!(
        check_exception(&mem, &mut rtas, &p, 2048).0,
        1,
        "delivered once"
    );
    guest_add(&mem, &mut rtas, &p, 0x8000_0006);
    guest_add(&mem, &mut rtas, &p, 0x8000_0007);
    assert_eq!(rtas.dlpar().unwrap().table().guest_ram_size(), 2048 * M);

    // Adding past the window changes nothing.
    assert_eq!(
        rtas.memory_hotplug(HotplugAction::Add, 1, TimeOfDay::default()),
        Err(Some(DlparError::Table(TableError::NotEnoughFree {
            wanted: 1,
            free: 0
        })))
    );
    assert!(rtas.events().is_empty());
    // Remove one (the highest), and the guest gives it up.
    let req = rtas
        .memory_hotplug(HotplugAction::Remove, 1, TimeOfDay::default())
        .unwrap();
    assert_eq!(req.events[0].index, 0x8000_0007);
    assert_eq!(check_exception(&mem, &mut rtas, &p, 2048).0, 0);
    assert_eq!(
        memory::read_bytes(&mem, BUF + 105, 1).unwrap(),
        [2],
        "remove"
    );
    assert_eq!(
        indicator(&mem, &mut rtas, &p, INDICATOR_ALLOCATION, 0x8000_0007, 1),
        0,
        "no-op while owned"
    );
    guest_release(&mem, &mut rtas, &p, 0x8000_0007);
    assert_eq!(
        indicator(&mem, &mut rtas, &p, INDICATOR_ALLOCATION, 0x8000_0007, 1),
        -3,
        "removed: no longer granted"
    );
    // Removing memory the guest still uses: it cannot offline it, unisolates again
    // (Linux's hint), and the LMB stays its own.
    rtas.memory_hotplug(HotplugAction::Remove, 1, TimeOfDay::default())
        .unwrap();
    assert_eq!(
        indicator(&mem, &mut rtas, &p, INDICATOR_ISOLATION, 0x8000_0006, 1),
        0
    );
    let t = rtas.dlpar().unwrap().table();
    assert_eq!(t.owned(), [0]);
    assert!(!t.drc(0).unplug_requested());
    assert_eq!(t.guest_ram_size(), 1792 * M);
}

#[test]
fn no_change_while_a_dump_is_active_and_the_grant_survives_a_reset() {
    let (_, mut rtas) = setup();
    let d = rtas.dlpar_mut().unwrap();
    assert_eq!(d.add(1, true), Err(DlparError::DumpActive));
    assert_eq!(d.remove(1, true), Err(DlparError::DumpActive));
    assert!(d.table().free().len() == 2 && !d.table().drc(0).attached());
    d.add(1, false).unwrap();
    assert_eq!(d.reset(ResetKind::Fadump), Vec::<usize>::new());
    // The grant survives: the guest of the next boot may still take the LMB.
    assert!(d.table().drc(0).attached());
    let plain = &mut Rtas::new(rtas.fadump().config().clone());
    assert_eq!(
        plain.memory_hotplug(HotplugAction::Add, 1, TimeOfDay::default()),
        Err(None)
    );
}

#[test]
fn a_full_event_queue_refuses_and_changes_nothing() {
    let (_, mut rtas) = setup();
    let table = LmbTable::new(1 << 30, 1 << 30, 128 * LMB_SIZE).unwrap();
    rtas.set_dlpar(Dlpar::new(table));
    for _ in 0..MAX_PENDING_LOGS {
        // One event per request; none fetched by the guest.
        rtas.memory_hotplug(HotplugAction::Add, 1, TimeOfDay::default())
            .unwrap();
    }
    assert_eq!(rtas.events().len(), MAX_PENDING_LOGS);
    let free = rtas.dlpar().unwrap().table().free();
    assert_eq!(
        rtas.memory_hotplug(HotplugAction::Add, 1, TimeOfDay::default()),
        Err(Some(DlparError::QueueFull))
    );
    assert_eq!(
        rtas.dlpar().unwrap().table().free(),
        free,
        "nothing offered"
    );
    assert!(!rtas.dlpar().unwrap().table().drc(free[0]).attached());
}
