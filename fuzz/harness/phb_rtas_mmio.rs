//! Fuzz harness: the PAPR PCI host bridge as the guest reaches it: the PCI config and dynamic
//! DMA window RTAS calls (through the firmware's dispatcher, as the machine routes them), MMIO
//! in and around the 32-bit window, the TCE hcalls on its DMA windows, and resets.
//!
//! Three recording devices sit in slots 1-3 (distinct LSIs) with fuzzed BAR sizes; an MMIO
//! write of an odd byte to offset 0 of a BAR raises the device's INTx, an even byte lowers it.
//! Checked after every step:
//!
//! * an RTAS call writes guest memory only in its own return cells; a TCE hcall not at all;
//! * the read-only header (IDs, class, header type, interrupt pin) never changes;
//! * a BAR decodes an address aligned to its size, and an MMIO access reaches a device only
//!   inside one of its BARs with memory decoding on;
//! * each device's LSI level is `pending && !INTx-disable`;
//! * at most the two DMA windows exist, each within the VMM's table cap;
//! * `reset()` restores every header to its power-on bytes, lowers every LSI and leaves only
//!   the default DMA window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use firmware::fadump::FadumpConfig;
use firmware::memory;
use firmware::rtas::{CpuRunState, Platform, Rtas, RtasAction, RtasCall, TimeOfDay};
use vm_memory::GuestMemoryMmap;
use vmm::devices::phb::config::{BarSpec, ConfigSpace, PciId, BAR_COUNT, CONFIG_SPACE_SIZE};
use vmm::devices::phb::ddw::{handle_ddw_call, DDW_CALLS};
use vmm::devices::phb::rtas::{handle_config_call, ConfigAddr, PCI_CONFIG_CALLS};
use vmm::devices::phb::tce::{TceCall, VMM_TABLE_MAX_ENTRIES};
use vmm::devices::phb::{IrqLine, Phb, PhbConfig};
use vmm::devices::PciDevice;

use crate::input::Input;
use crate::ram;

const RAM: [(u64, usize); 1] = [(0, 0x1_0000)];
const ARGS_AT: u64 = 0x100;
const LIST_AT: u64 = 0x2000;
const SLOTS: [u8; 3] = [1, 2, 3];

#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    pub config_calls_ok: u32,
    pub ddw_created: u32,
    pub mmio_to_device: u32,
    pub tce_ok: u32,
    pub irq_raised: u32,
    pub resets: u32,
}

#[derive(Default)]
struct Lines(Mutex<HashMap<u32, bool>>);

impl IrqLine for Lines {
    fn set_level(&self, irq: u32, level: bool) {
        self.0.lock().unwrap().insert(irq, level);
    }
}

#[derive(Default)]
struct Seen {
    /// (bar, offset, len) of every access the device got.
    accesses: Vec<(usize, u64, usize)>,
    pending: bool,
}

struct Dev {
    cfg: ConfigSpace,
    seen: Arc<Mutex<Seen>>,
}

impl PciDevice for Dev {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
    fn mmio_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        self.seen
            .lock()
            .unwrap()
            .accesses
            .push((bar, offset, data.len()));
        data.fill(0x5a);
    }
    fn mmio_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        let mut s = self.seen.lock().unwrap();
        s.accesses.push((bar, offset, data.len()));
        if offset == 0 {
            s.pending = data.first().is_some_and(|b| b & 1 != 0);
        }
    }
    fn interrupt_pending(&self) -> bool {
        self.seen.lock().unwrap().pending
    }
    fn reset(&mut self) {
        self.seen.lock().unwrap().pending = false;
    }
}

struct P;
impl Platform for P {
    fn time_of_day(&self) -> TimeOfDay {
        TimeOfDay::default()
    }
    fn cpu_run_state(&self, _: u32) -> Option<CpuRunState> {
        None
    }
}

fn header(cfg: &ConfigSpace) -> Vec<u8> {
    (0..CONFIG_SPACE_SIZE)
        .map(|o| cfg.read(o, 1) as u8)
        .collect()
}

/// The read-only identity bytes: vendor/device, revision/class, header type, subsystem, pin.
const READ_ONLY: [std::ops::Range<usize>; 5] = [0..4, 8..12, 0x0e..0x0f, 0x2c..0x30, 0x3d..0x3e];

pub fn run(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mut input = Input::new(data);
    let mem = ram::new(&RAM);
    let lines = Arc::new(Lines::default());
    let cfg = PhbConfig::qemu_like(0);
    let mut phbs = vec![Phb::new(cfg, lines.clone())];
    let mut seen = Vec::new();
    for (k, slot) in SLOTS.iter().enumerate() {
        let bars: Vec<(usize, BarSpec)> = (0..(input.u8() % 3))
            .map(|_| {
                (
                    usize::from(input.u8()) % BAR_COUNT,
                    BarSpec {
                        size: 1 << (4 + input.u8() % 20),
                    },
                )
            })
            .collect();
        let id = PciId {
            vendor: 0x1af4,
            device: 0x1040 + k as u16,
            subsystem_vendor: 0x1af4,
            subsystem: 2,
            revision: 1,
            class: 0x01_80_00,
        };
        let s = Arc::new(Mutex::new(Seen::default()));
        let dev = Dev {
            cfg: ConfigSpace::new(id, true, &bars),
            seen: s.clone(),
        };
        if phbs[0].add_device(*slot, Box::new(dev)).is_ok() {
            seen.push((*slot, s));
        }
    }
    let power_on: Vec<(u8, Vec<u8>)> = seen
        .iter()
        .map(|(slot, _)| (*slot, header(phbs[0].device(*slot).unwrap().config())))
        .collect();

    let mut rtas = Rtas::new(FadumpConfig {
        max_cpus: 1,
        hpte_capacity: 0,
        rma_size: 0x1_0000,
        firmware_reserved: vec![],
    });
    for c in PCI_CONFIG_CALLS.iter().chain(DDW_CALLS.iter()) {
        rtas.enable_machine_call(*c);
    }
    let calls: Vec<RtasCall> = PCI_CONFIG_CALLS
        .iter()
        .chain(DDW_CALLS.iter())
        .copied()
        .collect();
    let buid = cfg.buid;

    for _ in 0..32 {
        let Some(op) = input.op() else { break };
        match op % 8 {
            // An RTAS call: structured cells for one of the PHB calls, or raw ones.
            0..=2 => {
                let call = input.pick(&calls);
                let slot = input.pick(&[0u8, 1, 2, 3, 31]);
                let reg = match input.u8() % 4 {
                    0 => u32::from(input.u16()) & 0xfff,
                    _ => u32::from(input.u8() & 0x3f) * 4 + u32::from(input.u8() % 4),
                };
                let addr =
                    ConfigAddr::encode(if op & 0x80 != 0 { input.u8() } else { 0 }, slot << 3, reg);
                let (hi, lo) = if input.u8() % 8 == 0 {
                    (input.u32(), input.u32())
                } else {
                    ((buid >> 32) as u32, buid as u32)
                };
                let size = input.pick(&[1u32, 2, 4, 3, 0, 8]);
                let value = input.u32();
                let mut args = match call {
                    RtasCall::IbmReadPciConfig => vec![addr, hi, lo, size],
                    RtasCall::IbmWritePciConfig => vec![addr, hi, lo, size, value],
                    RtasCall::ReadPciConfig => vec![addr, size],
                    RtasCall::WritePciConfig => vec![addr, size, value],
                    RtasCall::IbmQueryPeDmaWindow | RtasCall::IbmResetPeDmaWindow => {
                        vec![addr, hi, lo]
                    }
                    RtasCall::IbmCreatePeDmaWindow => {
                        vec![
                            addr,
                            hi,
                            lo,
                            input.pick(&[12, 16, 24, 21, 0, 64]),
                            u32::from(input.u8() % 64),
                        ]
                    }
                    _ => vec![value],
                };
                let mut nret = match call {
                    RtasCall::IbmReadPciConfig | RtasCall::ReadPciConfig => 2,
                    RtasCall::IbmQueryPeDmaWindow => input.pick(&[6, 5]),
                    RtasCall::IbmCreatePeDmaWindow => 4,
                    _ => 1,
                };
                if op & 0x40 != 0 {
                    // Wrong counts.
                    args.truncate(usize::from(input.u8()) % (args.len() + 1));
                    nret = u32::from(input.u8() % 8);
                }
                if call == RtasCall::IbmRemovePeDmaWindow {
                    let dma = phbs[0].dma();
                    if let Some(t) = dma.active().last() {
                        if input.bool() {
                            args = vec![t.geometry.liobn];
                        }
                    }
                }
                let block =
                    firmware::rtas::RtasArgs::block_bytes(call.token(), &args, nret, 0x7777_7777);
                rtas_step(&mem, &mut rtas, &mut phbs, &block, &mut reached);
            }
            3 => {
                let n = usize::from(input.u8() % 80);
                let block = input.bytes(n).to_vec();
                rtas_step(&mem, &mut rtas, &mut phbs, &block, &mut reached);
            }
            // MMIO, mostly inside the window.
            4 | 5 => {
                let off = match input.u8() % 4 {
                    0 => input.u64(),
                    _ => cfg
                        .mem32_cpu_base
                        .wrapping_add(u64::from(input.u32()) & 0x1f_ffff),
                };
                let len = input.pick(&[1usize, 2, 4, 8, 3]);
                let before: Vec<usize> = seen
                    .iter()
                    .map(|(_, s)| s.lock().unwrap().accesses.len())
                    .collect();
                let claimed = if op % 8 == 4 {
                    let mut buf = vec![0u8; len];
                    phbs[0].mmio_read(off, &mut buf)
                } else {
                    let b: Vec<u8> = (0..len).map(|_| input.u8()).collect();
                    phbs[0].mmio_write(off, &b)
                };
                assert_eq!(
                    claimed,
                    phbs[0].in_window(off) || phbs[0].route(off, len as u64).is_some()
                );
                check_mmio(&phbs[0], &seen, &before, off, len, &mut reached);
            }
            // A TCE hcall on one of the PHB's windows.
            6 => {
                let liobns: Vec<u64> = phbs[0]
                    .dma()
                    .active()
                    .map(|t| u64::from(t.geometry.liobn))
                    .collect();
                let liobn = if liobns.is_empty() || input.u8() % 8 == 0 {
                    u64::from(input.u32())
                } else {
                    input.pick(&liobns)
                };
                let ioba = match input.u8() % 3 {
                    0 => input.u64(),
                    1 => u64::from(input.u16()) << 12,
                    _ => (1 << 59) + (u64::from(input.u16()) << 12),
                };
                let tce = (u64::from(input.u8() % 32) << 12) | u64::from(input.u8() % 4);
                let npages = u64::from(input.u16() % 600);
                let call = match input.u8() % 4 {
                    0 => TceCall::Put { liobn, ioba, tce },
                    1 => TceCall::Get { liobn, ioba },
                    2 => TceCall::Stuff {
                        liobn,
                        ioba,
                        value: tce,
                        npages,
                    },
                    _ => {
                        let list: Vec<u8> = (0..npages.min(512))
                            .flat_map(|i| (tce + (i << 12)).to_be_bytes())
                            .collect();
                        memory::write_bytes(&mem, LIST_AT, &list).unwrap();
                        let at = if input.bool() {
                            LIST_AT
                        } else {
                            u64::from(input.u32())
                        };
                        TceCall::PutIndirect {
                            liobn,
                            ioba,
                            list: at,
                            npages,
                        }
                    }
                };
                let before = ram::snapshot(&mem, &RAM);
                let owner = phbs[0].dma().owns(liobn);
                let r = phbs[0].dma_mut().tce_call(&mem, call);
                if r.is_ok() {
                    assert!(owner);
                    reached.tce_ok += 1;
                }
                ram::assert_writes_within("a TCE hcall", &mem, &RAM, &before, &[]);
            }
            _ => {
                phbs[0].reset();
                reached.resets += 1;
                for (slot, bytes) in &power_on {
                    assert_eq!(
                        &header(phbs[0].device(*slot).unwrap().config()),
                        bytes,
                        "slot {slot} after reset"
                    );
                    let lsi = cfg.lsi_for(*slot, 1);
                    assert_ne!(
                        lines.0.lock().unwrap().get(&lsi),
                        Some(&true),
                        "LSI {lsi:#x} high after reset"
                    );
                }
                let active: Vec<_> = phbs[0].dma().active().map(|t| t.geometry).collect();
                assert_eq!(active, vec![phbs[0].dma().default_geometry()]);
            }
        }
        check_state(&phbs[0], &power_on, &seen, &lines, &mut reached);
    }
    reached
}

fn rtas_step(
    mem: &GuestMemoryMmap,
    rtas: &mut Rtas,
    phbs: &mut [Phb],
    block: &[u8],
    reached: &mut Reached,
) {
    memory::write_bytes(mem, ARGS_AT, &[0u8; 128]).unwrap();
    memory::write_bytes(mem, ARGS_AT, block).unwrap();
    let before = ram::snapshot(mem, &RAM);
    let ddw_before = phbs[0].dma().active().count();
    match rtas.dispatch(mem, ARGS_AT, &P) {
        Ok(RtasAction::Machine { call, args }) => {
            let served = handle_config_call(phbs, mem, call, &args)
                || handle_ddw_call(phbs, mem, call, &args);
            assert!(served, "{call:?} enabled but not served");
            let rets_at = ARGS_AT + 12 + 4 * u64::from(args.nargs);
            let rets = (rets_at, 4 * u64::from(args.nret.min(16)));
            ram::assert_writes_within("a PHB RTAS call", mem, &RAM, &before, &[rets]);
            let status = firmware::memory::read_bytes(mem, rets_at, 4).ok();
            if args.nret > 0 && status.as_deref() == Some(&[0, 0, 0, 0][..]) {
                if PCI_CONFIG_CALLS.contains(&call) {
                    reached.config_calls_ok += 1;
                }
                if call == RtasCall::IbmCreatePeDmaWindow {
                    assert_eq!(phbs[0].dma().active().count(), ddw_before + 1);
                    reached.ddw_created += 1;
                }
            }
        }
        Ok(_) | Err(_) => {
            // Firmware calls are fuzzed elsewhere (rtas_fadump); here only the PHB's matter.
        }
    }
}

fn check_mmio(
    phb: &Phb,
    seen: &[(u8, Arc<Mutex<Seen>>)],
    before: &[usize],
    gpa: u64,
    len: usize,
    reached: &mut Reached,
) {
    for ((slot, s), n) in seen.iter().zip(before) {
        let s = s.lock().unwrap();
        for &(bar, offset, l) in &s.accesses[*n..] {
            reached.mmio_to_device += 1;
            assert_eq!(l, len);
            let c = phb.device(*slot).unwrap().config();
            assert!(
                c.memory_enabled(),
                "MMIO reached slot {slot} with decoding off"
            );
            let size = u64::from(c.bar_spec(bar).expect("an implemented BAR").size);
            assert!(
                offset + len as u64 <= size,
                "access at {offset:#x}+{len} past BAR{bar} ({size:#x})"
            );
            let base = c.bar_address(bar).unwrap();
            let cfg = phb.config();
            assert_eq!(
                cfg.mem32_cpu_base + (base - cfg.mem32_pci_base) + offset,
                gpa
            );
        }
    }
}

fn check_state(
    phb: &Phb,
    power_on: &[(u8, Vec<u8>)],
    seen: &[(u8, Arc<Mutex<Seen>>)],
    lines: &Lines,
    reached: &mut Reached,
) {
    for ((slot, p), (_, s)) in power_on.iter().zip(seen) {
        let c = phb.device(*slot).unwrap().config();
        let now = header(c);
        for r in READ_ONLY {
            assert_eq!(
                now[r.clone()],
                p[r.clone()],
                "slot {slot}: read-only bytes {r:?} changed"
            );
        }
        for bar in 0..BAR_COUNT {
            if let (Some(spec), Some(a)) = (c.bar_spec(bar), c.bar_address(bar)) {
                assert_eq!(
                    a % u64::from(spec.size),
                    0,
                    "slot {slot} BAR{bar} at {a:#x} unaligned"
                );
            }
        }
        let want = s.lock().unwrap().pending && !c.intx_disabled();
        let lsi = phb.config().lsi_for(*slot, 1);
        let level = lines.0.lock().unwrap().get(&lsi).copied().unwrap_or(false);
        assert_eq!(
            level, want,
            "slot {slot}: LSI {lsi:#x} level {level}, device pending and INTx enabled: {want}"
        );
        if level {
            reached.irq_raised += 1;
        }
    }
    let windows: Vec<_> = phb.dma().active().collect();
    assert!(windows.len() <= 2);
    for t in windows {
        assert!(t.geometry.entries <= VMM_TABLE_MAX_ENTRIES || t.in_kernel());
    }
}
