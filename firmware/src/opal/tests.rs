//! Engine and call-layer tests on a small machine (the Linux-faithful bench lives in
//! `integration-tests`).

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::*;
use crate::cpu::{CpuState, Reg};
use crate::memory;
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
