//! Golden test: the tree for a fixed 2-vCPU / 512 MiB machine, decompiled by `dtc`, must
//! match `tests/golden/pseries-2cpu.dts`, and `dtc` must accept every tree we build without a
//! single warning.
//!
//! Needs `dtc` (Debian package `device-tree-compiler`). After an intended change to the tree,
//! regenerate the golden file and review its diff:
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p devicetree --test golden
//! git diff devicetree/tests/golden/
//! ```

use std::path::{Path, PathBuf};

use common::decompile;
use devicetree::{
    build, CpuModel, CpuTopology, HypertasFunction, InterruptController, MachineDescription, Mmu,
};
use firmware::rtas::tokens::RtasCall;
use firmware::{GuestRange, PropValue, Property};

mod common;

const MIB: u64 = 1 << 20;

fn range(start: u64, len: u64) -> GuestRange {
    GuestRange::new(start, len).unwrap()
}

/// The golden machine: what our VMM boots in the nested test (2 vCPUs, 512 MiB, radix, the
/// RTAS calls it implements). The `/rtas` firmware properties are spelled out here rather than
/// taken from `firmware::rtas::Rtas`, so that this file changes only when the tree builder
/// does; `src/tests.rs` checks the real firmware output separately.
fn golden_machine() -> MachineDescription {
    let mmu = Mmu::Radix { gtse: true };
    let mut rtas_properties = common::rtas_token_properties();
    rtas_properties.push(Property::new(
        "ibm,configure-kernel-dump-sizes",
        PropValue::U32Cells(vec![1, 0, 0xa00, 2, 0, 0]),
    ));
    rtas_properties.push(Property::new(
        "ibm,configure-kernel-dump-version",
        PropValue::Bytes(vec![0, 1, 0, 1]),
    ));
    MachineDescription {
        topology: CpuTopology::single_threaded(2),
        cpu: CpuModel::new("POWER9", 0x004e_1202),
        mmu,
        memory: vec![range(0, 512 * MIB)],
        cmdline: "console=hvc0 fadump=on crashkernel=256M".into(),
        initrd: Some(range(0x0400_0000, 0x0013_4000)),
        rtas: range(0x1fff_0000, 0x1000),
        reservations: vec![],
        hypertas_functions: HypertasFunction::implemented(mmu),
        interrupt_controller: InterruptController::KvmXics,
        vty_irq: None,
        event_sources: None,
        rtas_properties,
    }
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pseries-2cpu.dts")
}

#[test]
fn two_cpu_tree_matches_the_golden_dts() {
    let blob = build(&golden_machine()).expect("golden machine builds");
    let dts = decompile(&blob, "pseries-2cpu");
    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, &dts).unwrap();
        eprintln!("updated {}", path.display());
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; create it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    if dts != want {
        let mut diff = String::new();
        let (g, w): (Vec<&str>, Vec<&str>) = (dts.lines().collect(), want.lines().collect());
        for i in 0..g.len().max(w.len()) {
            let (a, b) = (w.get(i).copied(), g.get(i).copied());
            if a != b {
                diff.push_str(&format!(
                    "line {}:\n  golden: {}\n  built:  {}\n",
                    i + 1,
                    a.unwrap_or("<none>"),
                    b.unwrap_or("<none>")
                ));
            }
        }
        panic!(
            "the built tree differs from {}:\n{diff}\nIf the change is intended, run \
             UPDATE_GOLDEN=1 cargo test -p devicetree --test golden and review the diff.",
            path.display()
        );
    }
}

/// Other shapes of machine are not in the golden file but must still be clean for dtc:
/// SMT, hash, several memory ranges, an initrd above 4 GiB, a console interrupt, the
/// firmware's own property list (with names longer than 31 characters) and a dump present.
#[test]
fn dtc_accepts_other_machines_without_warnings() {
    let mut smt_hash = golden_machine();
    smt_hash.topology = CpuTopology {
        vcpus: 8,
        threads_per_core: 4,
        boot_vcpu: 0,
    };
    smt_hash.mmu = Mmu::Hash { htab_shift: 24 };
    smt_hash.hypertas_functions = HypertasFunction::implemented(smt_hash.mmu);
    smt_hash.vty_irq = Some(0x1000);
    smt_hash.reservations = vec![range(0x100_0000, 0x1_0000)];

    let mut big = golden_machine();
    big.memory = vec![range(4 << 30, 4 << 30), range(0, 2 << 30)];
    big.initrd = Some(range(5 << 30, 8 * MIB));
    big.cpu = CpuModel::new("POWER10", 0x0080_0200);
    big.cpu.large_decrementer_bits = Some(56);
    big.rtas_properties.push(Property::new(
        "ibm,kernel-dump",
        PropValue::Bytes((0..0x40).collect()),
    ));

    let mut real_firmware = golden_machine();
    let mut rtas = firmware::rtas::Rtas::new(firmware::fadump::FadumpConfig {
        max_cpus: 2,
        hpte_capacity: 0,
        rma_size: 512 * MIB,
        firmware_reserved: vec![],
    });
    for c in RtasCall::ALL {
        rtas.enable_machine_call(c);
    }
    real_firmware.rtas_properties = rtas.properties();

    for (name, m) in [
        ("smt-hash", smt_hash),
        ("big", big),
        ("real-firmware", real_firmware),
    ] {
        let blob = build(&m).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dts = decompile(&blob, name);
        assert!(dts.contains("ibm,architecture-vec-5"), "{name}");
    }
}
