//! Engine and call-layer tests on a small machine (the Linux-faithful bench lives in
//! `integration-tests`).

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::*;
use crate::cpu::{CpuState, Reg};
use crate::memory;
use crate::opal::config::{ConfigError, REGDATA_OFFSET};
use crate::opal::engine::EngineError;
use crate::opal::regdata::{decode_thread, THREAD_SIZE};
use crate::range::GuestRange;

const MIB: u64 = 1 << 20;
const VA: u64 = 0xc000_0000_0000_0000;

fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), (128 * MIB) as usize)]).unwrap()
}

fn config() -> MpiplConfig {
    MpiplConfig {
        opal_memory: Some(OpalMemory {
            src: GuestRange::new(120 * MIB, MIB).unwrap(),
            dest: 121 * MIB,
        }),
        dump_area: GuestRange::new(122 * MIB, MIB).unwrap(),
        max_threads: 8,
        fw_load_area: MpiplConfig::skiboot_fw_load_area(),
    }
}

fn opal(m: &GuestMemoryMmap) -> Opal {
    Opal::new(MpiplEngine::new(config(), m).unwrap())
}

fn call(o: &mut Opal, m: &GuestMemoryMmap, token: OpalToken, args: &[u64]) -> OpalReturn {
    o.call(m, &OpalCall::new(token.number(), args, 0x11))
}

fn code(o: &mut Opal, m: &GuestMemoryMmap, token: OpalToken, args: &[u64]) -> OpalStatus {
    call(o, m, token, args).status_code().unwrap()
}

fn cpus() -> Vec<CpuState> {
    (0x10..0x14u32)
        .map(|pir| {
            let mut c = CpuState::new(pir);
            for (i, g) in c.gpr.iter_mut().enumerate() {
                *g = ((pir as u64) << 40) | i as u64;
            }
            c.set(Reg::Nia, 0xc000_0000_0000_1000 + pir as u64)
                .set(Reg::Msr, 0x9000_0000_0000_1033)
                .set(Reg::Cr, 0x4400_0000 | pir as u64)
                .set(Reg::Lr, 0xc000_0000_0000_2000 + pir as u64);
            c
        })
        .collect()
}

#[test]
fn unknown_call_is_unsupported() {
    let m = mem();
    let mut o = opal(&m);
    let r = o.call(&m, &OpalCall::new(9999, &[], 0));
    assert_eq!(r.status_code(), Some(OpalStatus::Unsupported));
    assert_eq!(r.action, None);
    let r = call(&mut o, &m, OpalToken::CheckToken, &[173]);
    assert_eq!(r.r3, 1);
    let r = call(&mut o, &m, OpalToken::CheckToken, &[9999]);
    assert_eq!(r.r3, 0);
}

#[test]
fn reboot_types() {
    let m = mem();
    let mut o = opal(&m);
    assert_eq!(
        call(&mut o, &m, OpalToken::CecReboot2, &[0, 0]).action,
        Some(OpalAction::Reboot)
    );
    let r = call(&mut o, &m, OpalToken::CecReboot2, &[5, 0]);
    assert_eq!(r.status_code(), Some(OpalStatus::Unsupported));
    assert_eq!(r.action, None);
    // an unreadable message does not stop an MPIPL
    let r = call(
        &mut o,
        &m,
        OpalToken::CecReboot2,
        &[3, 0x8000_0000_0000_0000],
    );
    assert_eq!(r.action, Some(OpalAction::Mpipl { crashing_pir: 0x11 }));
}

#[test]
fn full_cycle_tags_survive_until_free() {
    let m = mem();
    let mut o = opal(&m);
    let pattern: Vec<u8> = (0..16 * MIB).map(|i| (i % 251) as u8).collect();
    memory::write_bytes(&m, 0, &pattern).unwrap();
    memory::write_bytes(&m, 120 * MIB, b"OPAL image").unwrap();
    assert_eq!(
        code(&mut o, &m, OpalToken::MpiplRegisterTag, &[2, 100 * MIB]),
        OpalStatus::Success
    );
    assert_eq!(
        code(&mut o, &m, OpalToken::MpiplRegisterTag, &[3, 16 * MIB]),
        OpalStatus::Success
    );
    assert_eq!(
        code(
            &mut o,
            &m,
            OpalToken::MpiplUpdate,
            &[0, 0, 64 * MIB, 16 * MIB]
        ),
        OpalStatus::Success
    );
    assert!(o.mpipl.is_registered());
    // a normal boot answers 0 for every tag
    let out = 50 * MIB;
    assert_eq!(
        code(&mut o, &m, OpalToken::MpiplQueryTag, &[2, VA | out]),
        OpalStatus::Success
    );
    assert_eq!(memory::read_bytes(&m, out, 8).unwrap(), vec![0; 8]);

    let r = call(&mut o, &m, OpalToken::CecReboot2, &[3, 0]);
    let Some(OpalAction::Mpipl { crashing_pir }) = r.action else {
        panic!("no MPIPL action")
    };
    let mut source = cpus();
    let dump = o.mpipl.preserve(&m, &mut source, crashing_pir).clone();
    assert!(dump.all_copied());
    assert_eq!(dump.threads, 4);
    assert!(memory::read_bytes(&m, 64 * MIB, pattern.len()).unwrap() == pattern);
    assert_eq!(
        memory::read_bytes(&m, 121 * MIB, 10).unwrap(),
        b"OPAL image"
    );
    assert!(!o.mpipl.is_registered(), "the new boot starts unregistered");
    assert!(o.mpipl.is_dump_active());
    assert!(o
        .mpipl
        .dump_node_properties()
        .iter()
        .any(|p| p.name == "mpipl-boot"));

    // tags after the MPIPL
    let q = |o: &mut Opal, tag: u64| {
        assert_eq!(
            code(o, &m, OpalToken::MpiplQueryTag, &[tag, VA | out]),
            OpalStatus::Success
        );
        u64::from_be_bytes(memory::read_bytes(&m, out, 8).unwrap().try_into().unwrap())
    };
    assert_eq!(q(&mut o, 2), 100 * MIB);
    assert_eq!(q(&mut o, 3), 16 * MIB);
    let cpu_meta_at = q(&mut o, 0);
    let meta =
        metadata::MpiplFadump::from_be_bytes(&memory::read_bytes(&m, cpu_meta_at, 0x30).unwrap())
            .unwrap();
    assert_eq!(meta.cpu_data_size as usize, THREAD_SIZE);
    assert_eq!(meta.regions[0].size as usize, 4 * THREAD_SIZE);
    for (i, c) in cpus().iter().enumerate() {
        let rec = memory::read_bytes(
            &m,
            meta.regions[0].dest + (i * THREAD_SIZE) as u64,
            THREAD_SIZE,
        )
        .unwrap();
        assert!(rec == regdata::encode_thread(c));
        assert_eq!(decode_thread(&rec).unwrap().pir, c.id);
    }
    let opal_meta_at = q(&mut o, 1);
    let ometa =
        metadata::MpiplFadump::from_be_bytes(&memory::read_bytes(&m, opal_meta_at, 0x30).unwrap())
            .unwrap();
    assert_eq!(ometa.crashing_pir, 0x11);
    assert_eq!(ometa.regions[0].dest, 121 * MIB);

    // a kernel tag registered in the dump boot does not change what is presented
    code(&mut o, &m, OpalToken::MpiplRegisterTag, &[2, 0]);
    assert_eq!(q(&mut o, 2), 100 * MIB);

    // the state survives a serde round trip
    let json = serde_json::to_string(&o).unwrap();
    let back: Opal = serde_json::from_str(&json).unwrap();
    assert_eq!(back, o);

    assert_eq!(
        code(&mut o, &m, OpalToken::MpiplUpdate, &[3, 0, 0, 0]),
        OpalStatus::Success
    );
    assert_eq!(
        code(&mut o, &m, OpalToken::MpiplQueryTag, &[2, VA | out]),
        OpalStatus::Parameter
    );
    assert!(o.mpipl.is_mpipl_boot(), "still the MPIPL boot");
    assert!(!o.mpipl.is_dump_active());
    // re-register works after FREE
    assert_eq!(
        code(
            &mut o,
            &m,
            OpalToken::MpiplUpdate,
            &[0, 0, 64 * MIB, 16 * MIB]
        ),
        OpalStatus::Success
    );
    o.mpipl.normal_boot();
    assert!(!o.mpipl.is_registered());
    assert_eq!(o.mpipl.state(), &MpiplState::Idle);
    assert!(!o
        .mpipl
        .dump_node_properties()
        .iter()
        .any(|p| p.name == "mpipl-boot"));
}

/// skiboot keeps its image, the copy of it and the register-data area at 0x30000000..0x338f0000,
/// inside the first 768 MiB+ that Linux registers as boot memory with one `ADD_RANGE(0, dest,
/// size)`. skiboot accepts that (it checks no overlaps at all), and Linux's registration of the
/// QEMU 11.1 powernv run (integration-tests/tests/opal_conformance.rs) relies on it: a kernel
/// source that covers OPAL's own entry (its source and its destination) must be accepted. The
/// copy order (OPAL's entry first) makes the kernel's copy hold the fresh OPAL copy.
#[test]
fn kernel_source_may_cover_the_firmware_areas() {
    let m = mem();
    let low = MpiplConfig {
        opal_memory: Some(OpalMemory {
            src: GuestRange::new(8 * MIB, MIB).unwrap(),
            dest: 9 * MIB,
        }),
        dump_area: GuestRange::new(10 * MIB, MIB).unwrap(),
        max_threads: 8,
        fw_load_area: MpiplConfig::skiboot_fw_load_area(),
    };
    let mut o = Opal::new(MpiplEngine::new(low, &m).unwrap());
    memory::write_bytes(&m, 8 * MIB, b"OPAL image").unwrap();
    memory::write_bytes(&m, 9 * MIB, b"stale copy").unwrap();
    assert_eq!(
        code(
            &mut o,
            &m,
            OpalToken::MpiplUpdate,
            &[0, 0, 64 * MIB, 32 * MIB]
        ),
        OpalStatus::Success,
        "boot memory [0, 32M) covers OPAL's image, its copy and the dump area"
    );
    // A kernel range still may not take a destination that is firmware-owned.
    assert_eq!(
        code(
            &mut o,
            &m,
            OpalToken::MpiplUpdate,
            &[0, 40 * MIB, 9 * MIB, MIB]
        ),
        OpalStatus::Parameter
    );
    let r = call(&mut o, &m, OpalToken::CecReboot2, &[3, 0]);
    let Some(OpalAction::Mpipl { crashing_pir }) = r.action else {
        panic!("no MPIPL action")
    };
    let dump = o.mpipl.preserve(&m, &mut cpus(), crashing_pir).clone();
    assert!(dump.all_copied());
    assert_eq!(dump.results.len(), 2);
    assert_eq!(
        memory::read_bytes(&m, 9 * MIB, 10).unwrap(),
        b"OPAL image",
        "OPAL's entry copied"
    );
    assert_eq!(
        memory::read_bytes(&m, 64 * MIB + 9 * MIB, 10).unwrap(),
        b"OPAL image",
        "the kernel's copy was made after OPAL's"
    );
}

#[test]
fn tag_refusals() {
    let m = mem();
    let mut o = opal(&m);
    for (args, want) in [
        (vec![0, 5], OpalStatus::Parameter),
        (vec![1, 5], OpalStatus::Parameter),
        (vec![4, 5], OpalStatus::Parameter),
        (vec![3, 0], OpalStatus::Parameter),
        (vec![3, 128 * MIB + 1], OpalStatus::Parameter),
        (vec![3, 128 * MIB], OpalStatus::Success),
    ] {
        assert_eq!(
            code(&mut o, &m, OpalToken::MpiplRegisterTag, &args),
            want,
            "{args:?}"
        );
    }
    let before = memory::read_bytes(&m, 128 * MIB - 8, 8).unwrap();
    for out in [
        0x8000_0000_0000_0000,
        128 * MIB + 8,
        128 * MIB - 4,
        VA | (128 * MIB - 4),
    ] {
        assert_eq!(
            code(&mut o, &m, OpalToken::MpiplQueryTag, &[2, out]),
            OpalStatus::Parameter,
            "{out:#x}"
        );
    }
    assert_eq!(
        code(&mut o, &m, OpalToken::MpiplQueryTag, &[4, 0x1000]),
        OpalStatus::Parameter
    );
    assert_eq!(memory::read_bytes(&m, 128 * MIB - 8, 8).unwrap(), before);
}

#[test]
fn config_is_checked() {
    let m = mem();
    let mut c = config();
    c.dump_area = GuestRange::new(122 * MIB, 0x1000).unwrap();
    assert!(MpiplEngine::new(c, &m).is_err());
    let mut c = config();
    c.dump_area = GuestRange::new(120 * MIB + 4096, MIB).unwrap();
    assert!(MpiplEngine::new(c, &m).is_err(), "overlaps OPAL memory");
    let mut c = config();
    c.fw_load_area = vec![GuestRange::new(0x2800_0000, 0x0900_0000).unwrap()];
    assert!(MpiplEngine::new(c, &m).is_err(), "Linux would refuse it");
    let mut c = config();
    c.dump_area = GuestRange::new(127 * MIB, 2 * MIB).unwrap();
    assert!(MpiplEngine::new(c, &m).is_err(), "past RAM");
}

#[test]
fn absurd_thread_count_is_a_config_error() {
    let m = mem();
    for threads in [
        usize::MAX,
        usize::MAX / THREAD_SIZE + 1,
        usize::MAX / THREAD_SIZE,
    ] {
        let mut c = config();
        c.max_threads = threads;
        assert!(
            matches!(
                MpiplEngine::new(c, &m),
                Err(EngineError::Config(ConfigError::TooManyThreads(t))) if t == threads
            ),
            "{threads} threads"
        );
    }
}

#[test]
fn dump_node() {
    let props = dt::dump_node_properties(&MpiplConfig::skiboot_fw_load_area(), false);
    assert_eq!(props[0].value.to_fdt_bytes(), b"ibm,opal-dump\0");
    assert_eq!(props[1].name, "fw-load-area");
    let cells: Vec<u8> = [0x2000_0000u64, 0x0800_0000, 0x2800_0000, 0x0800_0000]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    assert_eq!(props[1].value.to_fdt_bytes(), cells);
    assert_eq!(props.len(), 2);
}

/// A small deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 ^ (self.0 >> 29)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Hostile call storm: random calls with boundary-heavy arguments never panic, only ever
/// write the 8 bytes a successful `QUERY_TAG` names (or, in a preservation, registered
/// destinations and the dump area), and always answer a known code.
#[test]
fn random_calls_never_panic_or_write_elsewhere() {
    const K: u64 = 1024;
    // [0, 1M) + hole + [2M, 3M); firmware in the top 192K.
    let m = GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), MIB as usize),
        (GuestAddress(2 * MIB), MIB as usize),
    ])
    .unwrap();
    let top = 3 * MIB;
    let config = MpiplConfig {
        opal_memory: Some(OpalMemory {
            src: GuestRange::new(top - 192 * K, 64 * K).unwrap(),
            dest: top - 128 * K,
        }),
        dump_area: GuestRange::new(top - 64 * K, 64 * K).unwrap(),
        max_threads: 8,
        fw_load_area: vec![],
    };
    let mut o = Opal::new(MpiplEngine::new(config, &m).unwrap());
    let fill: Vec<u8> = (0..MIB).map(|i| (i * 7 % 253) as u8).collect();
    memory::write_bytes(&m, 0, &fill).unwrap();
    memory::write_bytes(&m, 2 * MIB, &fill).unwrap();
    let snapshot = |m: &GuestMemoryMmap| {
        let mut v = memory::read_bytes(m, 0, MIB as usize).unwrap();
        v.extend(memory::read_bytes(m, 2 * MIB, MIB as usize).unwrap());
        v
    };
    let addr_of = |i: usize| {
        let i = i as u64;
        if i >= MIB {
            i + MIB
        } else {
            i
        }
    };
    let addrs = [
        0,
        4096,
        512 * K,
        MIB - 8,
        MIB - 4,
        MIB + 4096,
        2 * MIB,
        2 * MIB + 256 * K,
        top - 256 * K,
        top - 64 * K,
        top - 8,
        top,
        u64::MAX,
        1 << 63,
        VA | 0x2000,
        VA | (top - 4),
        0xd000_0000_0000_0000,
    ];
    let sizes = [
        0,
        1,
        4096,
        64 * K,
        256 * K,
        MIB,
        u32::MAX as u64,
        1 << 32,
        u64::MAX,
    ];
    let tokens = [
        5, 6, 80, 116, 173, 173, 173, 173, 174, 174, 175, 175, 175, 0, 9999,
    ];
    let small = [0, 0, 1, 2, 3, 4, 5, 0xffff_ffff, u64::MAX];
    let mut rng = Lcg(0x5eed);
    let mut before = snapshot(&m);
    let mut successes = 0;
    let mut added = 0;
    for _ in 0..1500 {
        let token = rng.pick(&tokens);
        let mut args = [
            rng.pick(&small),
            rng.pick(&addrs),
            rng.pick(&addrs),
            rng.pick(&sizes),
        ];
        // The copy path is checked at the end; here an MPIPL request only asks.
        if token == 116 && args[0] as u32 == 3 {
            args[0] = 0;
        }
        let r = o.call(&m, &OpalCall::new(token, &args, 1));
        if token != 80 {
            assert!(r.status_code().is_some(), "unknown r3 {}", r.r3);
        }
        successes += usize::from(r.r3 == 0);
        added += usize::from(r.r3 == 0 && token == 173 && args[0] == 0);
        let after = snapshot(&m);
        if after != before {
            assert_eq!(token, 175, "only QUERY_TAG writes");
            assert_eq!(r.status_code(), Some(OpalStatus::Success));
            let real = args[1] & ((1 << 60) - 1);
            let changed: Vec<u64> = (0..after.len())
                .filter(|&i| after[i] != before[i])
                .map(addr_of)
                .collect();
            assert!(
                changed.iter().all(|&a| a >= real && a < real + 8),
                "QUERY_TAG wrote outside its 8 bytes"
            );
            before = after;
        }
        if matches!(r.action, Some(OpalAction::Reboot)) {
            o.mpipl.normal_boot();
        }
    }
    assert!(
        successes > 100,
        "the storm must also exercise success paths"
    );
    assert!(added > 0, "some ranges must get registered");
    // Whatever got registered, a preservation stays inside destinations and the dump area.
    let mut allowed: Vec<GuestRange> = o
        .mpipl
        .registration()
        .table
        .entries()
        .iter()
        .map(|e| e.dest)
        .collect();
    allowed.push(o.mpipl.config().dump_area);
    let mut source = cpus();
    let dump = o.mpipl.preserve(&m, &mut source, 1).clone();
    assert!(dump.all_copied());
    let after = snapshot(&m);
    for i in (0..after.len()).filter(|&i| after[i] != before[i]) {
        let addr = addr_of(i);
        assert!(
            allowed.iter().any(|r| r.contains_addr(addr)),
            "preservation wrote outside destinations at {addr:#x}"
        );
    }
}

#[test]
fn crashing_thread_is_kept_when_threads_exceed_the_dump_area() {
    let m = mem();
    let mut c = config();
    c.max_threads = 2;
    let area = c.dump_area;
    for (crashing, want) in [
        (0x13, [0x10, 0x13]),
        (0x11, [0x10, 0x11]),
        (0x10, [0x10, 0x11]),
    ] {
        let mut e = MpiplEngine::new(c.clone(), &m).unwrap();
        assert_eq!(e.preserve(&m, &mut cpus(), crashing).threads, 2);
        let pirs: Vec<u32> = (0..2)
            .map(|i| {
                let at = area.start() + REGDATA_OFFSET + (i * THREAD_SIZE) as u64;
                let rec = memory::read_bytes(&m, at, THREAD_SIZE).unwrap();
                decode_thread(&rec).unwrap().pir
            })
            .collect();
        assert_eq!(pirs, want, "crashing PIR {crashing:#x}");
    }
}

/// A restored engine skips [`MpiplConfig::validate`]: its dump area may be too small for the
/// records or sit at the top of the address space. The preservation must stay inside it.
#[test]
fn restored_engine_with_a_bad_dump_area_writes_nothing_outside_it() {
    let m = mem();
    for (start, len) in [
        (u64::MAX - 0x10, 0x10),
        (122 * MIB, 0x100),
        (122 * MIB, 0x1100),
    ] {
        let mut json = serde_json::to_value(MpiplEngine::new(config(), &m).unwrap()).unwrap();
        json["config"]["dump_area"] = serde_json::json!({ "start": start, "len": len });
        let mut e: MpiplEngine = serde_json::from_value(json).unwrap();
        memory::zero_fill(&m, 122 * MIB, MIB).unwrap();
        let dump = e.preserve(&m, &mut cpus(), 0x11).clone();
        assert_eq!(dump.tags.cpu, 0, "no register data at {start:#x}+{len:#x}");
        let past = (122 * MIB + len).min(123 * MIB);
        let after = memory::read_bytes(&m, past, (123 * MIB - past) as usize).unwrap();
        assert!(
            after.iter().all(|&b| b == 0),
            "wrote past {start:#x}+{len:#x}"
        );
    }
}

/// Review finding 13 (reproduced by the `opal_mpipl` fuzz target): the capture kernel crashes
/// again before it frees the dump. The first crash's dump (tags, thread records, OPAL copy)
/// must survive the second MPIPL untouched.
#[test]
fn second_mpipl_while_a_dump_is_presented_keeps_the_first_dump() {
    let m = mem();
    let mut o = opal(&m);
    assert_eq!(
        code(&mut o, &m, OpalToken::MpiplRegisterTag, &[2, 100 * MIB]),
        OpalStatus::Success
    );
    assert_eq!(
        code(&mut o, &m, OpalToken::MpiplUpdate, &[0, 0, 64 * MIB, MIB]),
        OpalStatus::Success
    );
    memory::write_bytes(&m, 120 * MIB, b"first OPAL").unwrap();
    let first = o.mpipl.preserve(&m, &mut cpus(), 0x12).clone();
    let area = config().dump_area;
    let area_bytes = memory::read_bytes(&m, area.start(), area.len() as usize).unwrap();

    // The capture kernel runs (OPAL memory changes), does not register, and crashes.
    memory::write_bytes(&m, 120 * MIB, b"later OPAL").unwrap();
    let r = call(&mut o, &m, OpalToken::CecReboot2, &[3, 0]);
    assert_eq!(r.action, Some(OpalAction::Mpipl { crashing_pir: 0x11 }));
    let mut capture_cpus = vec![CpuState::new(0x11)];
    let second = o.mpipl.preserve(&m, &mut capture_cpus, 0x11).clone();
    assert_eq!(second, first, "the presented dump was replaced");
    assert_eq!(second.tags.kernel, 100 * MIB);
    assert_eq!(
        memory::read_bytes(&m, area.start(), area.len() as usize).unwrap(),
        area_bytes,
        "the first crash's register data was overwritten"
    );
    assert_eq!(
        memory::read_bytes(&m, 121 * MIB, 10).unwrap(),
        b"first OPAL"
    );
    assert!(o.mpipl.is_dump_active() && !o.mpipl.is_registered());
    // Once freed, the next MPIPL preserves afresh.
    assert_eq!(
        code(&mut o, &m, OpalToken::MpiplUpdate, &[3, 0, 0, 0]),
        OpalStatus::Success
    );
    let third = o.mpipl.preserve(&m, &mut capture_cpus, 0x11).clone();
    assert_eq!((third.crashing_pir, third.threads), (0x11, 1));
}
