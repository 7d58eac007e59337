//! The fuzz harness over the RTAS argument block and the fadump registration path, shared by
//! the `cargo fuzz` target and the corpus replay in the normal test run
//! (`firmware/tests/fuzz_corpus.rs`).
//!
//! The input is a little program: each step picks an operation from one byte and takes its
//! operands from the following bytes, so the fuzzer can reach deep states (registered, dump
//! active) and then throw hostile blocks and structures at them. After every step the harness
//! checks invariants that must hold whatever the guest did.

use firmware::cpu::CpuState;
use firmware::fadump::{
    DumpSection, FadumpConfig, FadumpState, HptEntry, KernelDumpStructure, SectionType,
};
use firmware::memory;
use firmware::rtas::{CpuRunState, Platform, Rtas, RtasAction, RtasCall, TimeOfDay};
use firmware::GuestRange;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// RAM: [0, 256 KiB) and [512 KiB, 768 KiB), a hole between. The RMA is the first region.
/// Small on purpose: every input maps and compares it.
const RAM: [(u64, usize); 2] = [(0, 0x4_0000), (0x8_0000, 0x4_0000)];
const ARGS_AT: u64 = 0x100;
const BUF_AT: u64 = 0x1000;

struct P;
impl Platform for P {
    fn time_of_day(&self) -> TimeOfDay {
        TimeOfDay::default()
    }
    fn cpu_run_state(&self, cpu: u32) -> Option<CpuRunState> {
        (cpu < 2).then_some(CpuRunState::Stopped)
    }
}

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).first().copied()
    }
    fn u32(&mut self) -> u32 {
        let b = self.bytes(4);
        let mut a = [0u8; 4];
        a[..b.len()].copy_from_slice(b);
        u32::from_be_bytes(a)
    }
    fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }
}

/// A valid 6.12-style registration for this RAM, which steps then mutate.
fn template(cpu_len: u64) -> Vec<u8> {
    let sec = |t, src, len, dst| DumpSection::request(SectionType(t), src, len, dst);
    KernelDumpStructure::registration_bytes(&[
        sec(0x0001, 0, cpu_len, 0x2_0000),
        sec(0x0002, 0, 0, 0x2_0000 + cpu_len),
        sec(0x0011, 0, 0x1_0000, 0x2_8000),
        sec(0x0100, 0x3_f800, 0x800, 0x3_f800),
    ])
}

fn snapshot(mem: &GuestMemoryMmap) -> Vec<Vec<u8>> {
    RAM.iter()
        .map(|(s, l)| {
            let mut b = vec![0u8; *l];
            mem.read_slice(&mut b, GuestAddress(*s)).unwrap();
            b
        })
        .collect()
}

/// How deep one input got (lets the replay test prove the harness reaches real states).
#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    pub registrations: u32,
    pub dumps: u32,
}

/// Runs one input. Panics (the fuzzer's finding) only when an invariant breaks.
pub fn run(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let ranges: Vec<(GuestAddress, usize)> =
        RAM.iter().map(|(s, l)| (GuestAddress(*s), *l)).collect();
    let mem = GuestMemoryMmap::from_ranges(&ranges).unwrap();
    let mut input = Input { data };
    let hpte_capacity = u64::from(input.u8().unwrap_or(0) & 0x0f);
    let config = FadumpConfig {
        max_cpus: 2,
        hpte_capacity,
        rma_size: 0x4_0000,
        firmware_reserved: vec![GuestRange::new(0x3_a000, 0x1000).unwrap()],
    };
    let cpu_len = config.cpu_state_size();
    let mut rtas = Rtas::new(config);
    let token = RtasCall::IbmConfigureKernelDump.token();

    for _ in 0..16 {
        let Some(op) = input.u8() else { break };
        match op % 7 {
            // A raw argument block at a fuzzed or fixed address.
            0 => {
                let at = if op & 0x80 != 0 { input.u64() } else { ARGS_AT };
                let block = input.bytes(76).to_vec();
                let _ = memory::write_bytes(&mem, ARGS_AT, &block);
                let before = snapshot(&mem);
                match rtas.dispatch(&mem, at, &P) {
                    Err(_) => assert_eq!(before, snapshot(&mem), "refused block wrote memory"),
                    Ok(RtasAction::FadumpCrash { .. }) => {
                        assert!(rtas.fadump().is_registered())
                    }
                    Ok(_) => {}
                }
            }
            // configure-kernel-dump with fuzzed cmd/addr/len over fuzzed structure bytes.
            1 => {
                let cmd = input.u32() % 5;
                let addr = input.u32();
                let len = input.u32() % 0x400;
                let bytes = input.bytes(512).to_vec();
                let _ = memory::write_bytes(&mem, BUF_AT, &bytes);
                call(&mem, &mut rtas, token, &[cmd, addr, len]);
            }
            // REGISTER a mutated valid structure (structure-aware path).
            2 => {
                let mut b = template(cpu_len);
                let flips = input.u8().unwrap_or(0) % 8;
                for _ in 0..flips {
                    let pos = input.u8().unwrap_or(0) as usize % b.len();
                    let v = input.u8().unwrap_or(0);
                    b[pos] ^= v;
                }
                let len = if op & 0x80 != 0 {
                    input.u32() % 0x300
                } else {
                    b.len() as u32
                };
                memory::write_bytes(&mem, BUF_AT, &b).unwrap();
                let was_idle = matches!(rtas.fadump().state(), FadumpState::Idle);
                let status = call(&mem, &mut rtas, token, &[1, BUF_AT as u32, len]);
                if status == 0 {
                    assert!(was_idle, "REGISTER succeeded outside Idle");
                    check_registration(&mem, &rtas);
                    reached.registrations += 1;
                }
            }
            // The crash.
            3 => {
                let dests = registered_destinations(&rtas);
                let before = snapshot(&mem);
                let mut cpus = vec![CpuState::new(0), CpuState::new(input.u32() % 4)];
                let mut hpt: Vec<HptEntry> = (0..input.u8().unwrap_or(0) % 24)
                    .map(|i| HptEntry {
                        index: u64::from(i),
                        dword0: 1,
                        dword1: 2,
                    })
                    .collect();
                let was_registered = rtas.fadump().is_registered();
                let state_before = rtas.fadump().state().clone();
                let r = rtas
                    .fadump_mut()
                    .perform_dump(&mem, &mut cpus, Some(&mut hpt));
                assert_eq!(r.is_ok(), was_registered);
                if r.is_err() {
                    assert_eq!(
                        rtas.fadump().state(),
                        &state_before,
                        "refused dump changed state"
                    );
                    assert!(before == snapshot(&mem), "refused dump wrote memory");
                }
                if r.is_ok() {
                    reached.dumps += 1;
                    assert!(rtas.fadump().is_dump_active());
                    assert!(rtas.fadump().kernel_dump_property().is_some());
                    // Nothing outside the registered destinations changed.
                    for ((start, _), (old, new)) in
                        RAM.iter().zip(before.iter().zip(snapshot(&mem)))
                    {
                        for (blk, (a, b)) in old.chunks(4096).zip(new.chunks(4096)).enumerate() {
                            if a == b {
                                continue;
                            }
                            for (i, _) in a.iter().zip(b).enumerate().filter(|(_, (x, y))| x != y) {
                                let addr = start + (blk * 4096 + i) as u64;
                                assert!(
                                    dests.iter().any(|d| d.contains_addr(addr)),
                                    "dump wrote {addr:#x} outside every destination"
                                );
                            }
                        }
                    }
                }
            }
            4 => rtas.fadump_mut().on_partition_reset(),
            // os-term with a fuzzed message pointer.
            5 => {
                let p = input.u32();
                let registered = rtas.fadump().is_registered();
                let a = call_action(&mem, &mut rtas, RtasCall::IbmOsTerm.token(), &[p]);
                assert_eq!(
                    matches!(a, Some(RtasAction::FadumpCrash { .. })),
                    registered
                );
            }
            // Properties must always be well formed.
            _ => {
                for p in rtas.properties() {
                    let _ = p.value.to_fdt_bytes();
                }
            }
        }
    }
    reached
}

fn call(mem: &GuestMemoryMmap, rtas: &mut Rtas, token: u32, args: &[u32]) -> i32 {
    call_action(mem, rtas, token, args);
    let mut b = [0u8; 4];
    mem.read_slice(&mut b, GuestAddress(ARGS_AT + 12 + 4 * args.len() as u64))
        .unwrap();
    i32::from_be_bytes(b)
}

fn call_action(
    mem: &GuestMemoryMmap,
    rtas: &mut Rtas,
    token: u32,
    args: &[u32],
) -> Option<RtasAction> {
    let mut cells = vec![token, args.len() as u32, 1];
    cells.extend_from_slice(args);
    cells.push(0x7777_7777);
    let b: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
    memory::write_bytes(mem, ARGS_AT, &b).unwrap();
    rtas.dispatch(mem, ARGS_AT, &P).ok()
}

fn registered_destinations(rtas: &Rtas) -> Vec<GuestRange> {
    match rtas.fadump().state() {
        FadumpState::Registered(s) => s
            .sections()
            .iter()
            .filter_map(|x| x.destination_range())
            .collect(),
        _ => Vec::new(),
    }
}

/// Invariants of every accepted registration, checked independently of the validator.
fn check_registration(mem: &GuestMemoryMmap, rtas: &Rtas) {
    let FadumpState::Registered(s) = rtas.fadump().state() else {
        panic!("status 0 but not registered");
    };
    let dests: Vec<GuestRange> = s
        .sections()
        .iter()
        .filter_map(|x| x.destination_range())
        .filter(|r| !r.is_empty())
        .collect();
    assert_eq!(
        dests.len(),
        s.sections().iter().filter(|x| x.source_len > 0).count(),
        "a destination overflowed"
    );
    for (i, a) in dests.iter().enumerate() {
        assert!(memory::is_backed(mem, a), "destination {a} not RAM");
        for b in &dests[i + 1..] {
            assert!(!a.overlaps(b), "destinations {a} and {b} overlap");
        }
    }
}
