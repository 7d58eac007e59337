//! Fuzz harness: OPAL call sequences with MPIPL preserve and the boots after it.
//!
//! A program of up to 24 steps: raw OPAL calls (any token, any registers), structured
//! `MPIPL_UPDATE` / `REGISTER_TAG` / `QUERY_TAG` calls with addresses near RAM, the crash
//! (`CEC_REBOOT2(MPIPL)` followed by `preserve` with fuzzed threads, as the machine does), and
//! normal boots. After every step:
//!
//! * a call writes guest memory only where `QUERY_TAG` was told to (8 bytes at `out`);
//! * a refused MPIPL call changes neither the registration nor the dump state;
//! * the registration only holds kernel ranges that are RAM, disjoint from each other, from
//!   their sources and from firmware memory, each under 4 GiB, at most the table's capacity;
//! * `preserve` writes only registered destinations and the dump area, copies every range it
//!   reports as copied, keeps the crashing thread's registers, presents the registered tags and
//!   leaves a fresh registration; a second MPIPL while a dump is presented keeps that dump.

use firmware::cpu::CpuState;
use firmware::opal::table::RangeTable;
use firmware::opal::{
    MpiplConfig, MpiplEngine, MpiplState, Opal, OpalAction, OpalCall, OpalMemory, OpalToken,
};
use firmware::{memory, GuestRange};
use vm_memory::GuestMemoryMmap;

use crate::input::Input;
use crate::ram;

/// RAM: [0, 64 KiB) and [128 KiB, 192 KiB), a hole between (small: every step compares it).
const RAM: [(u64, usize); 2] = [(0, 0x1_0000), (0x2_0000, 0x1_0000)];
const TOP: u64 = 0x3_0000;
const OPAL_SRC: (u64, u64) = (0xc000, 0x1000);
const OPAL_DEST: u64 = 0xe000;
const DUMP_AREA: (u64, u64) = (0x2_c000, 0x4000);
const MAX_THREADS: usize = 4;
const VA: u64 = 0xc000_0000_0000_0000;

/// How deep one input got.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    pub ranges_added: u32,
    pub preserves: u32,
    pub preserves_with_kernel_ranges: u32,
    pub queries: u32,
}

fn config() -> MpiplConfig {
    MpiplConfig {
        opal_memory: Some(OpalMemory {
            src: GuestRange::new(OPAL_SRC.0, OPAL_SRC.1).unwrap(),
            dest: OPAL_DEST,
        }),
        dump_area: GuestRange::new(DUMP_AREA.0, DUMP_AREA.1).unwrap(),
        max_threads: MAX_THREADS,
        fw_load_area: MpiplConfig::skiboot_fw_load_area(),
    }
}

/// An address argument: mostly near RAM (with or without the kernel's linear-map prefix),
/// sometimes anything.
fn addr(input: &mut Input) -> u64 {
    match input.u8() % 8 {
        0 => input.u64(),
        1 => VA | (u64::from(input.u16()) << 2),
        2 => TOP - u64::from(input.u8()),
        _ => u64::from(input.u16()) << 2,
    }
}

fn size(input: &mut Input) -> u64 {
    match input.u8() % 4 {
        0 => input.u64(),
        _ => u64::from(input.u16()) << 2,
    }
}

/// Runs one input. Panics only when an invariant breaks.
pub fn run(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mem = ram::new(&RAM);
    let mut input = Input::new(data);
    // Recognisable RAM contents, so copies are checkable.
    for (s, l) in RAM {
        let pat: Vec<u8> = (0..l)
            .map(|i| (i as u64 ^ (s >> 12)).wrapping_mul(31) as u8)
            .collect();
        memory::write_bytes(&mem, s, &pat).unwrap();
    }
    let mut opal = Opal::new(MpiplEngine::new(config(), &mem).expect("valid config"));

    for _ in 0..24 {
        let Some(op) = input.op() else { break };
        let pir = u32::from(input.u8() % 8);
        let call = match op % 9 {
            0 => {
                let token = if op & 0x80 != 0 {
                    input.u64()
                } else {
                    input.pick(&OpalToken::ALL).number()
                };
                let args: Vec<u64> = (0..8).map(|_| input.u64()).collect();
                OpalCall::new(token, &args, pir)
            }
            1 | 2 => {
                let op_code = if op & 0x80 != 0 { input.u32() } else { 0 };
                let (src, dest, len) = (addr(&mut input), addr(&mut input), size(&mut input));
                OpalCall::new(
                    OpalToken::MpiplUpdate.number(),
                    &[u64::from(op_code), src, dest, len],
                    pir,
                )
            }
            3 => {
                let op_code = u64::from(input.u8() % 5);
                let (src, dest) = (addr(&mut input), addr(&mut input));
                OpalCall::new(
                    OpalToken::MpiplUpdate.number(),
                    &[op_code, src, dest, 0],
                    pir,
                )
            }
            4 => {
                let tag = u64::from(input.u8() % 6);
                let value = if input.bool() {
                    addr(&mut input)
                } else {
                    input.u64()
                };
                OpalCall::new(OpalToken::MpiplRegisterTag.number(), &[tag, value], pir)
            }
            5 => {
                let tag = u64::from(input.u8() % 6) | if op & 0x80 != 0 { 1 << 32 } else { 0 };
                OpalCall::new(
                    OpalToken::MpiplQueryTag.number(),
                    &[tag, addr(&mut input)],
                    pir,
                )
            }
            6 => {
                let kind = u64::from(input.u8() % 6);
                OpalCall::new(
                    OpalToken::CecReboot2.number(),
                    &[kind, addr(&mut input)],
                    pir,
                )
            }
            7 => {
                opal.mpipl.normal_boot();
                assert_eq!(opal.mpipl.state(), &MpiplState::Idle);
                assert!(!opal.mpipl.is_registered());
                continue;
            }
            _ => {
                // Properties and reservations are always well formed.
                for p in opal.mpipl.dump_node_properties() {
                    let _ = p.value.to_fdt_bytes();
                }
                let owned = opal.mpipl.reserved_ranges();
                assert!(owned.iter().all(|(_, r)| memory::is_backed(&mem, r)));
                continue;
            }
        };
        step(&mem, &mut opal, &call, &mut input, &mut reached);
        check_registration(&mem, opal.mpipl.registration().table.clone());
    }
    reached
}

fn step(
    mem: &GuestMemoryMmap,
    opal: &mut Opal,
    call: &OpalCall,
    input: &mut Input,
    reached: &mut Reached,
) {
    let before = ram::snapshot(mem, &RAM);
    let engine_before = opal.mpipl.clone();
    let r = opal.call(mem, call);
    let token = OpalToken::from_number(call.token);
    let ok = r.r3 == 0;
    let mut allowed = Vec::new();
    if token == Some(OpalToken::MpiplQueryTag) && ok {
        let out = firmware::opal::addr::real_addr(call.args[1], memory::top_of_ram(mem))
            .expect("accepted out");
        allowed.push((out, 8));
        reached.queries += 1;
    }
    ram::assert_writes_within("an OPAL call", mem, &RAM, &before, &allowed);
    match token {
        Some(OpalToken::MpiplUpdate | OpalToken::MpiplRegisterTag | OpalToken::MpiplQueryTag)
            if !ok =>
        {
            assert_eq!(
                opal.mpipl, engine_before,
                "a refused MPIPL call changed the engine"
            );
        }
        Some(OpalToken::MpiplUpdate) if call.args[0] as u32 == 0 => {
            reached.ranges_added += 1;
        }
        Some(OpalToken::CheckToken) => assert!(r.r3 == 0 || r.r3 == 1),
        None => assert_eq!(opal.mpipl, engine_before),
        _ => {}
    }
    match r.action {
        Some(OpalAction::Mpipl { crashing_pir }) => {
            assert_eq!(crashing_pir, call.caller_pir);
            preserve(mem, opal, crashing_pir, input, reached);
        }
        Some(OpalAction::Reboot) => opal.mpipl.normal_boot(),
        _ => {}
    }
}

fn preserve(
    mem: &GuestMemoryMmap,
    opal: &mut Opal,
    crashing_pir: u32,
    input: &mut Input,
    reached: &mut Reached,
) {
    let n = usize::from(input.u8() % 7);
    let first = u32::from(input.u8() % 8);
    let mut cpus: Vec<CpuState> = (0..n as u32)
        .map(|i| CpuState::new((first + i) % 8))
        .collect();
    for c in &mut cpus {
        c.gpr[1] = 0x5a5a_0000 | u64::from(c.id);
    }
    let previous = opal.mpipl.state().clone();
    let registration = opal.mpipl.registration().clone();
    let before = ram::snapshot(mem, &RAM);
    let dump = opal.mpipl.preserve(mem, &mut cpus, crashing_pir).clone();
    reached.preserves += 1;
    if registration.table.has_kernel_entries() {
        reached.preserves_with_kernel_ranges += 1;
    }
    assert!(
        !opal.mpipl.is_registered(),
        "registration survived the MPIPL"
    );
    assert!(opal.mpipl.is_dump_active());

    if let MpiplState::DumpActive(first) = previous {
        // A second MPIPL while the first dump is presented (the capture kernel crashed before
        // releasing it): the first dump, and the memory holding it, must survive.
        assert_eq!(dump, first, "a second MPIPL replaced the presented dump");
        assert!(
            ram::changed(mem, &RAM, &before).is_empty(),
            "a second MPIPL wrote memory"
        );
        return;
    }

    let mut allowed: Vec<(u64, u64)> = registration
        .table
        .entries()
        .iter()
        .map(|e| (e.dest.start(), e.dest.len()))
        .collect();
    allowed.push(DUMP_AREA);
    ram::assert_writes_within("preserve", mem, &RAM, &before, &allowed);

    assert_eq!(dump.results.len(), registration.table.entries().len());
    assert_eq!(dump.tags.kernel, registration.kernel_tag);
    assert_eq!(dump.tags.boot_mem, registration.boot_mem);
    assert!(dump.threads <= MAX_THREADS && dump.threads == n.min(MAX_THREADS));
    let area = GuestRange::new(DUMP_AREA.0, DUMP_AREA.1).unwrap();
    for t in [dump.tags.cpu, dump.tags.opal] {
        assert!(
            t == 0 || area.contains_addr(t),
            "tag {t:#x} outside the dump area"
        );
    }
    // Every range reported copied holds its source's bytes (unless an earlier copy wrote
    // into that source).
    let now = ram::snapshot(mem, &RAM);
    let read = |snap: &[Vec<u8>], r: &GuestRange| -> Vec<u8> {
        let (i, (s, _)) = RAM
            .iter()
            .enumerate()
            .find(|(_, (s, l))| r.start() >= *s && r.end() <= s + *l as u64)
            .expect("RAM");
        snap[i][(r.start() - s) as usize..(r.end() - s) as usize].to_vec()
    };
    let entries = registration.table.entries();
    for (i, (e, res)) in entries.iter().zip(&dump.results).enumerate() {
        if res.error.is_some() || entries[..i].iter().any(|p| p.dest.overlaps(&e.src)) {
            continue;
        }
        assert_eq!(
            read(&before, &e.src),
            read(&now, &e.dest),
            "range {} -> {} not copied",
            e.src,
            e.dest
        );
    }
    // The crashing thread's record is kept whenever it was online.
    if cpus.iter().any(|c| c.id == crashing_pir) && MAX_THREADS > 0 {
        let at = DUMP_AREA.0 + firmware::opal::config::REGDATA_OFFSET;
        let rec = firmware::opal::regdata::THREAD_SIZE as u64;
        let found = (0..dump.threads as u64).any(|k| {
            let r = GuestRange::new(at + k * rec, rec).unwrap();
            firmware::opal::regdata::decode_thread(&read(&now, &r))
                .is_ok_and(|t| t.pir == crashing_pir)
        });
        assert!(
            found,
            "the crashing thread {crashing_pir} lost its registers"
        );
    }
}

fn check_registration(mem: &GuestMemoryMmap, table: RangeTable) {
    let fw: Vec<GuestRange> = config()
        .firmware_owned()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let kernel: Vec<_> = table.kernel_entries().collect();
    assert!(kernel.len() <= RangeTable::kernel_capacity());
    for (i, e) in kernel.iter().enumerate() {
        assert!(memory::is_backed(mem, &e.src) && memory::is_backed(mem, &e.dest));
        assert_eq!(e.src.len(), e.dest.len());
        assert!(!e.src.is_empty() && e.src.len() <= u64::from(u32::MAX));
        assert!(!e.dest.overlaps(&e.src));
        assert!(
            !fw.iter().any(|f| f.overlaps(&e.dest)),
            "{} overlaps firmware memory",
            e.dest
        );
        for o in &kernel[i + 1..] {
            assert!(
                !o.dest.overlaps(&e.dest),
                "destinations {} and {} overlap",
                e.dest,
                o.dest
            );
            assert!(!o.src.overlaps(&e.dest) && !e.src.overlaps(&o.dest));
        }
    }
}
