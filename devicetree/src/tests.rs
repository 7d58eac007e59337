//! Unit tests: the properties Linux parses, read back from the built blob, and the refusal of
//! bad descriptions.

use firmware::fadump::FadumpConfig;
use firmware::rtas::tokens::RtasCall;
use firmware::rtas::Rtas;
use firmware::{GuestRange, PropValue, Property};

use crate::blob::{boot_cpuid_phys, find_property, node_paths, reservations};
use crate::vec5::*;
use crate::*;

const MIB: u64 = 1 << 20;

fn range(start: u64, len: u64) -> GuestRange {
    GuestRange::new(start, len).unwrap()
}

fn desc() -> MachineDescription {
    let mmu = Mmu::Radix { gtse: true };
    MachineDescription {
        topology: CpuTopology::single_threaded(2),
        cpu: CpuModel::new("POWER9", 0x004e_1202),
        mmu,
        memory: vec![range(0, 512 * MIB)],
        cmdline: "console=hvc0".into(),
        initrd: Some(range(64 * MIB, 3 * MIB)),
        rtas: range(512 * MIB - 0x10000, 0x1000),
        reservations: vec![],
        hypertas_functions: HypertasFunction::implemented(mmu),
        interrupt_controller: InterruptController::KvmXics,
        vty_irq: None,
        event_sources: None,
        rtas_properties: vec![
            Property::u32("start-cpu", 0x2006),
            Property::new("ibm,extended-os-term", PropValue::Empty),
        ],
    }
}

fn prop(blob: &[u8], path: &str, name: &str) -> Vec<u8> {
    find_property(blob, path, name).unwrap_or_else(|| panic!("{path} has no {name}"))
}

fn cells(b: &[u8]) -> Vec<u32> {
    assert_eq!(b.len() % 4, 0, "not a cell array: {b:?}");
    b.chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

fn strings(b: &[u8]) -> Vec<String> {
    b.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

fn cpu_nodes(blob: &[u8]) -> Vec<String> {
    node_paths(blob)
        .unwrap()
        .into_iter()
        .filter(|p| p.starts_with("/cpus/"))
        .collect()
}

#[test]
fn vec5_advertises_radix_and_gtse_at_the_bytes_linux_reads() {
    let blob = build(&desc()).unwrap();
    let v = prop(&blob, "/chosen", "ibm,architecture-vec-5");
    // early_check_vec5() turns radix off for a property of 24 bytes or fewer.
    assert!(v.len() > 24);
    assert_eq!(v.len(), VEC5_LEN);
    assert_eq!(usize::from(v[0]), v.len() - 2, "header = vector bytes - 1");
    assert_eq!(v[24] & 0xc0, 0x40, "radix only");
    assert_eq!(v[26] & 0x40, 0x40, "radix GTSE");
    assert_eq!(v[23], 0x00, "legacy XICS");
    // Nothing else is claimed (no NUMA affinity, no DRMEM, no hot-plug).
    let others: Vec<usize> = (1..v.len())
        .filter(|&i| v[i] != 0 && i != 24 && i != 26)
        .collect();
    assert!(others.is_empty(), "unexpected vec5 bytes {others:?}");
}

#[test]
fn vec5_for_hash_and_for_radix_without_gtse() {
    let hash = architecture_vec5(Mmu::Hash { htab_shift: 24 }, InterruptController::KvmXics);
    assert_eq!(hash[VEC5_MMU_BYTE] & 0xc0, 0x00);
    assert_eq!(hash[VEC5_RADIX_GTSE_BYTE], 0);
    let no_gtse = architecture_vec5(Mmu::Radix { gtse: false }, InterruptController::KvmXics);
    assert_eq!(no_gtse[VEC5_MMU_BYTE], VEC5_MMU_RADIX);
    assert_eq!(no_gtse[VEC5_RADIX_GTSE_BYTE] & 0x40, 0);
}

#[test]
fn pa_features_carry_the_radix_bit_only_for_radix() {
    let blob = build(&desc()).unwrap();
    for node in cpu_nodes(&blob) {
        let pa = prop(&blob, &node, "ibm,pa-features");
        assert_eq!(
            usize::from(pa[0]),
            pa.len() - 2,
            "byte 0 = feature byte count"
        );
        assert_eq!(pa[1], 0, "descriptor type");
        assert!(pa.len() - 2 > PA_RADIX_BYTE);
        assert_eq!(pa[2 + PA_RADIX_BYTE] & PA_RADIX_BIT, PA_RADIX_BIT, "{node}");
        // True little-endian (byte 5 bit 0) must stay on for an LE guest.
        assert_eq!(pa[2 + 5] & 0x80, 0x80);
    }
    let mut d = desc();
    d.mmu = Mmu::Hash { htab_shift: 24 };
    d.hypertas_functions = HypertasFunction::implemented(d.mmu);
    let blob = build(&d).unwrap();
    let pa = prop(&blob, "/cpus/PowerPC,POWER9@0", "ibm,pa-features");
    assert_eq!(pa[2 + PA_RADIX_BYTE] & PA_RADIX_BIT, 0);
    assert_eq!(
        cells(&prop(&blob, "/cpus/PowerPC,POWER9@0", "ibm,pft-size")),
        vec![0, 24]
    );
    assert!(find_property(
        &blob,
        "/cpus/PowerPC,POWER9@0",
        "ibm,processor-radix-AP-encodings"
    )
    .is_none());
}

#[test]
fn radix_cpus_list_their_page_sizes_and_no_hash_table() {
    let blob = build(&desc()).unwrap();
    let n = "/cpus/PowerPC,POWER9@1";
    // 32 characters: written through the long-name pass.
    assert_eq!(
        cells(&prop(&blob, n, "ibm,processor-radix-AP-encodings")),
        RADIX_AP_ENCODINGS.to_vec()
    );
    assert!(find_property(&blob, n, "ibm,pft-size").is_none());
    assert_eq!(cells(&prop(&blob, n, "ibm,slb-size")), vec![32]);
    assert_eq!(
        cells(&prop(&blob, n, "timebase-frequency")),
        vec![512_000_000]
    );
    assert_eq!(cells(&prop(&blob, n, "d-cache-block-size")), vec![128]);
}

#[test]
fn interrupt_servers_are_numbered_by_core_and_thread() {
    let mut d = desc();
    d.topology = CpuTopology {
        vcpus: 8,
        threads_per_core: 4,
        boot_vcpu: 5,
    };
    let blob = build(&d).unwrap();
    assert_eq!(
        cpu_nodes(&blob),
        vec!["/cpus/PowerPC,POWER9@0", "/cpus/PowerPC,POWER9@4"]
    );
    let core1 = "/cpus/PowerPC,POWER9@4";
    assert_eq!(cells(&prop(&blob, core1, "reg")), vec![4]);
    assert_eq!(
        cells(&prop(&blob, core1, "ibm,ppc-interrupt-server#s")),
        vec![4, 5, 6, 7]
    );
    assert_eq!(
        cells(&prop(&blob, core1, "ibm,ppc-interrupt-gserver#s")),
        vec![4, 0, 5, 0, 6, 0, 7, 0]
    );
    assert_eq!(
        cells(&prop(
            &blob,
            "/interrupt-controller",
            "ibm,interrupt-server-ranges"
        )),
        vec![0, 8]
    );
    assert_eq!(boot_cpuid_phys(&blob), Some(5));
}

#[test]
fn one_thread_per_core_gives_one_node_per_vcpu() {
    let blob = build(&desc()).unwrap();
    let nodes = cpu_nodes(&blob);
    assert_eq!(
        nodes,
        vec!["/cpus/PowerPC,POWER9@0", "/cpus/PowerPC,POWER9@1"]
    );
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(
            cells(&prop(&blob, n, "ibm,ppc-interrupt-server#s")),
            vec![i as u32]
        );
        assert_eq!(strings(&prop(&blob, n, "device_type")), vec!["cpu"]);
        assert_eq!(strings(&prop(&blob, n, "status")), vec!["okay"]);
    }
    assert_eq!(boot_cpuid_phys(&blob), Some(0));
}

#[test]
fn initrd_cells_are_32_bit_below_4g_and_64_bit_above() {
    let blob = build(&desc()).unwrap();
    assert_eq!(
        prop(&blob, "/chosen", "linux,initrd-start"),
        (64 * MIB as u32).to_be_bytes()
    );
    assert_eq!(
        prop(&blob, "/chosen", "linux,initrd-end"),
        (67 * MIB as u32).to_be_bytes()
    );

    let mut d = desc();
    d.memory = vec![range(0, 512 * MIB), range(8 << 30, 1 << 30)];
    d.initrd = Some(range((8 << 30) + MIB, 2 * MIB));
    let blob = build(&d).unwrap();
    assert_eq!(
        prop(&blob, "/chosen", "linux,initrd-start"),
        ((8u64 << 30) + MIB).to_be_bytes()
    );
    assert_eq!(
        prop(&blob, "/chosen", "linux,initrd-end"),
        ((8u64 << 30) + 3 * MIB).to_be_bytes()
    );
    // Both memory ranges, in address order.
    assert_eq!(
        prop(&blob, "/memory@200000000", "reg"),
        [8u64 << 30, 1 << 30]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<_>>()
    );

    let mut d = desc();
    d.initrd = None;
    let blob = build(&d).unwrap();
    assert!(find_property(&blob, "/chosen", "linux,initrd-start").is_none());
}

#[test]
fn chosen_names_the_console_and_the_command_line() {
    let blob = build(&desc()).unwrap();
    assert_eq!(
        strings(&prop(&blob, "/chosen", "bootargs")),
        vec!["console=hvc0"]
    );
    for p in ["linux,stdout-path", "stdout-path"] {
        assert_eq!(
            strings(&prop(&blob, "/chosen", p)),
            vec!["/vdevice/vty@30000000"]
        );
    }
    assert_eq!(
        strings(&prop(&blob, "/aliases", "serial0")),
        vec!["/vdevice/vty@30000000"]
    );
    let vty = "/vdevice/vty@30000000";
    assert_eq!(cells(&prop(&blob, vty, "reg")), vec![VTY_REG]);
    assert_eq!(strings(&prop(&blob, vty, "compatible")), vec!["hvterm1"]);
    assert!(find_property(&blob, vty, "interrupts").is_none());
    let mut d = desc();
    d.vty_irq = Some(0x1000);
    let blob = build(&d).unwrap();
    assert_eq!(cells(&prop(&blob, vty, "interrupts")), vec![0x1000, 0]);
}

#[test]
fn event_sources_resolve_to_an_interrupt_controller() {
    let blob = build(&desc()).unwrap();
    assert!(find_property(&blob, "/event-sources", "#interrupt-cells").is_none());
    let mut d = desc();
    d.event_sources = Some(EventSourceIrqs {
        epow: 0x1000,
        hotplug: 0x1001,
    });
    let blob = build(&d).unwrap();
    assert!(find_property(&blob, "/event-sources", "interrupt-controller").is_some());
    assert_eq!(
        cells(&prop(&blob, "/event-sources", "#interrupt-cells")),
        vec![2]
    );
    assert_eq!(
        cells(&prop(&blob, "/event-sources", "interrupt-ranges")),
        vec![0x1000, 1, 0x1001, 1]
    );
    assert_eq!(
        cells(&prop(&blob, EPOW_EVENTS_PATH, "interrupts")),
        vec![0x1000, 0]
    );
    assert_eq!(
        cells(&prop(&blob, HOTPLUG_EVENTS_PATH, "interrupts")),
        vec![0x1001, 0]
    );
}

#[test]
fn rtas_node_places_the_blob_and_every_firmware_token() {
    let mut rtas = Rtas::new(FadumpConfig {
        max_cpus: 2,
        hpte_capacity: 0,
        rma_size: 512 * MIB,
        firmware_reserved: vec![],
    });
    for c in [
        RtasCall::StartCpu,
        RtasCall::StopSelf,
        RtasCall::QueryCpuStoppedState,
        RtasCall::IbmSetXive,
        RtasCall::IbmGetXive,
        RtasCall::IbmIntOn,
        RtasCall::IbmIntOff,
        RtasCall::IbmQueryInterruptSourceNumber,
    ] {
        rtas.enable_machine_call(c);
    }
    let mut d = desc();
    d.rtas_properties = rtas.properties();
    let blob = build(&d).unwrap();

    let base = 512 * MIB as u32 - 0x10000;
    assert_eq!(cells(&prop(&blob, "/rtas", "linux,rtas-base")), vec![base]);
    assert_eq!(cells(&prop(&blob, "/rtas", "linux,rtas-entry")), vec![base]);
    assert_eq!(cells(&prop(&blob, "/rtas", "rtas-size")), vec![0x1000]);
    assert_eq!(
        cells(&prop(&blob, "/rtas", "rtas-error-log-max")),
        vec![2048]
    );
    for call in rtas.published_calls() {
        assert_eq!(
            cells(&prop(&blob, "/rtas", call.name())),
            vec![call.token()],
            "{}",
            call.name()
        );
    }
    // Every firmware property is there, byte for byte, including names longer than 31.
    for p in &d.rtas_properties {
        assert_eq!(
            prop(&blob, "/rtas", &p.name),
            p.value.to_fdt_bytes(),
            "{}",
            p.name
        );
    }
    assert!(d
        .rtas_properties
        .iter()
        .any(|p| p.name.len() > 31 && find_property(&blob, "/rtas", &p.name).is_some()));
    // The RTAS stub is reserved; nothing else was asked for.
    assert_eq!(reservations(&blob), Some(vec![(u64::from(base), 0x1000)]));
}

#[test]
fn kernel_dump_property_is_placed_when_the_firmware_gives_it() {
    let blob = build(&desc()).unwrap();
    assert!(find_property(&blob, "/rtas", "ibm,kernel-dump").is_none());

    let dump = vec![0u8, 1, 2, 3, 0xff, 0xee, 0xdd, 0xcc];
    let mut d = desc();
    d.rtas_properties.push(Property::new(
        "ibm,kernel-dump",
        PropValue::Bytes(dump.clone()),
    ));
    let blob = build(&d).unwrap();
    assert_eq!(prop(&blob, "/rtas", "ibm,kernel-dump"), dump);
}

#[test]
fn firmware_error_log_size_wins_over_the_default() {
    let mut d = desc();
    d.rtas_properties
        .push(Property::u32("rtas-error-log-max", 4096));
    let blob = build(&d).unwrap();
    assert_eq!(
        cells(&prop(&blob, "/rtas", "rtas-error-log-max")),
        vec![4096]
    );
}

#[test]
fn hypertas_functions_list_what_the_vmm_implements() {
    let blob = build(&desc()).unwrap();
    let got = strings(&prop(&blob, "/rtas", "ibm,hypertas-functions"));
    for needed in [
        "hcall-term",
        "hcall-set-mode",
        "hcall-splpar",
        "hcall-interrupt",
    ] {
        assert!(
            got.iter().any(|g| g == needed),
            "{needed} missing from {got:?}"
        );
    }
    assert!(
        !got.iter().any(|g| g == "hcall-pft"),
        "no hash hcalls for radix"
    );
    let hash = HypertasFunction::implemented(Mmu::Hash { htab_shift: 24 });
    assert!(hash.contains(&HypertasFunction::Pft) && hash.contains(&HypertasFunction::Bulk));
}

#[test]
fn reservations_are_sorted_and_include_rtas() {
    let mut d = desc();
    d.reservations = vec![range(300 * MIB, MIB), range(100 * MIB, 2 * MIB)];
    let blob = build(&d).unwrap();
    assert_eq!(
        reservations(&blob),
        Some(vec![
            (100 * MIB, 2 * MIB),
            (300 * MIB, MIB),
            (512 * MIB - 0x10000, 0x1000)
        ])
    );
}

#[test]
fn xics_node_is_found_the_way_linux_looks() {
    let blob = build(&desc()).unwrap();
    let n = "/interrupt-controller";
    assert_eq!(strings(&prop(&blob, n, "compatible")), vec!["IBM,ppc-xicp"]);
    assert_eq!(
        strings(&prop(&blob, n, "device_type")),
        vec!["PowerPC-External-Interrupt-Presentation"]
    );
    assert_eq!(cells(&prop(&blob, n, "phandle")), vec![XICS_PHANDLE]);
    assert_eq!(cells(&prop(&blob, n, "linux,phandle")), vec![XICS_PHANDLE]);
    assert!(find_property(&blob, n, "interrupt-controller").is_some());
    // No XIVE node: Linux must take the XICS path.
    assert!(!node_paths(&blob)
        .unwrap()
        .iter()
        .any(|p| p.contains("ivpe")));
}

#[test]
fn root_is_a_chrp_machine_with_64_bit_cells() {
    let blob = build(&desc()).unwrap();
    assert_eq!(strings(&prop(&blob, "/", "device_type")), vec!["chrp"]);
    assert_eq!(cells(&prop(&blob, "/", "#address-cells")), vec![2]);
    assert_eq!(cells(&prop(&blob, "/", "#size-cells")), vec![2]);
    assert_eq!(
        prop(&blob, "/memory@0", "reg"),
        [0u64, 512 * MIB]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        strings(&prop(&blob, "/hypervisor", "compatible")),
        vec!["linux,kvm"]
    );
}

/// Every way of getting it wrong ends in the matching error.
#[test]
fn bad_descriptions_are_refused() {
    type Mutation = fn(&mut MachineDescription);
    type Expect = fn(&Error) -> bool;
    let cases: Vec<(&str, Mutation, Expect)> = vec![
        ("0 CPUs", |d| d.topology.vcpus = 0, |e| *e == Error::NoCpus),
        (
            "too many CPUs",
            |d| d.topology.vcpus = MAX_VCPUS + 1,
            |e| matches!(e, Error::TooManyCpus(_)),
        ),
        (
            "3 threads",
            |d| {
                d.topology.threads_per_core = 3;
                d.topology.vcpus = 3;
            },
            |e| *e == Error::BadThreadsPerCore(3),
        ),
        (
            "0 threads",
            |d| d.topology.threads_per_core = 0,
            |e| *e == Error::BadThreadsPerCore(0),
        ),
        (
            "partial core",
            |d| {
                d.topology.threads_per_core = 4;
                d.topology.vcpus = 6;
            },
            |e| matches!(e, Error::PartialCore { .. }),
        ),
        (
            "missing boot cpu",
            |d| d.topology.boot_vcpu = 2,
            |e| matches!(e, Error::BootCpuMissing { boot: 2, vcpus: 2 }),
        ),
        ("no memory", |d| d.memory.clear(), |e| *e == Error::NoMemory),
        (
            "empty memory",
            |d| d.memory.push(range(1 << 30, 0)),
            |e| matches!(e, Error::EmptyMemoryRange(_)),
        ),
        (
            "overlapping RAM",
            |d| d.memory.push(range(256 * MIB, 512 * MIB)),
            |e| matches!(e, Error::OverlappingMemory(..)),
        ),
        (
            "no RAM at 0",
            |d| d.memory = vec![range(MIB, 1 << 30)],
            |e| *e == Error::NoMemoryAtZero,
        ),
        (
            "RTAS outside RAM",
            |d| d.rtas = range(512 * MIB, 0x1000),
            |e| matches!(e, Error::OutsideMemory { .. }),
        ),
        (
            "RTAS straddling the end of RAM",
            |d| d.rtas = range(512 * MIB - 0x800, 0x1000),
            |e| matches!(e, Error::OutsideMemory { .. }),
        ),
        (
            "empty RTAS",
            |d| d.rtas = range(0x10000, 0),
            |e| matches!(e, Error::EmptyRange { .. }),
        ),
        (
            "RTAS above 4 GiB",
            |d| {
                d.memory = vec![range(0, 8 << 30)];
                d.rtas = range(5 << 30, 0x1000);
            },
            |e| matches!(e, Error::RtasAbove4GiB(_)),
        ),
        (
            "initrd outside RAM",
            |d| d.initrd = Some(range(510 * MIB, 4 * MIB)),
            |e| matches!(e, Error::OutsideMemory { .. }),
        ),
        (
            "initrd over RTAS",
            |d| d.initrd = Some(range(500 * MIB, 12 * MIB)),
            |e| matches!(e, Error::Overlap { .. }),
        ),
        (
            "reservation over RTAS",
            |d| d.reservations = vec![range(511 * MIB, MIB)],
            |e| matches!(e, Error::Overlap { .. }),
        ),
        (
            "overlapping reservations",
            |d| d.reservations = vec![range(MIB, 2 * MIB), range(2 * MIB, MIB)],
            |e| matches!(e, Error::Overlap { .. }),
        ),
        (
            "NUL in cmdline",
            |d| d.cmdline = "a\0b".into(),
            |e| matches!(e, Error::NulInString { .. }),
        ),
        (
            "cmdline too long",
            |d| d.cmdline = "x".repeat(2048),
            |e| *e == Error::CmdlineTooLong(2048),
        ),
        (
            "radix without GTSE or rpt-invalidate",
            |d| d.mmu = Mmu::Radix { gtse: false },
            |e| *e == Error::RadixNeedsTlbInvalidation,
        ),
        (
            "tiny hash table",
            |d| d.mmu = Mmu::Hash { htab_shift: 10 },
            |e| *e == Error::BadHtabShift(10),
        ),
        (
            "bad model name",
            |d| d.cpu.name = "POWER 9".into(),
            |e| matches!(e, Error::BadCpuModelName(_)),
        ),
        (
            "zero timebase",
            |d| d.cpu.timebase_frequency = 0,
            |e| *e == Error::ZeroFrequency("timebase"),
        ),
        (
            "odd cache block",
            |d| d.cpu.dcache.block_size = 96,
            |e| matches!(e, Error::BadCacheGeometry { value: 96, .. }),
        ),
        (
            "firmware repeats linux,rtas-base",
            |d| d.rtas_properties.push(Property::u32("linux,rtas-base", 0)),
            |e| matches!(e, Error::DuplicateProperty { .. }),
        ),
        (
            "firmware repeats a token",
            |d| d.rtas_properties.push(Property::u32("start-cpu", 0x2006)),
            |e| matches!(e, Error::DuplicateProperty { .. }),
        ),
        (
            "firmware property with a bad name",
            |d| d.rtas_properties.push(Property::u32("bad name", 1)),
            |e| matches!(e, Error::BadPropertyName(_)),
        ),
        (
            "firmware property named like an alias",
            |d| d.rtas_properties.push(Property::u32("x-long-name-0", 1)),
            |e| matches!(e, Error::BadPropertyName(_)),
        ),
    ];
    for (what, mutate, expected) in cases {
        let mut d = desc();
        mutate(&mut d);
        match build(&d) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(expected(&e), "{what}: wrong error {e:?}"),
        }
    }
}

#[test]
fn radix_without_gtse_is_fine_with_rpt_invalidate() {
    let mut d = desc();
    d.mmu = Mmu::Radix { gtse: false };
    d.hypertas_functions.push(HypertasFunction::RptInvalidate);
    let blob = build(&d).unwrap();
    let got = strings(&prop(&blob, "/rtas", "ibm,hypertas-functions"));
    assert!(got.iter().any(|g| g == "hcall-rpt-invalidate"));
}

/// A guest with a hotplug window: the drconf node after `/memory@0` with the firmware's
/// properties verbatim (the long names included), the root's DRC lists, the DLPAR vec5 bits;
/// without one, the blob is the plain one.
#[test]
fn drconf_node_root_drc_lists_and_vec5_bits_for_a_hotplug_window() {
    use firmware::dlpar::table::LmbTable;
    use firmware::dlpar::tree::{drc_root_properties, DrconfFormat};
    let mut d = desc();
    d.memory = vec![range(0, 1536 * MIB)];
    d.rtas = range(256 * MIB - 0x10000, 0x1000);
    d.initrd = None;
    let plain = build(&d).unwrap();
    assert_eq!(build_with(&d, &[], None).unwrap(), plain);
    let t = LmbTable::new(1536 * MIB, 0x6000_0000, 512 * MIB).unwrap();
    let drconf = Drconf {
        properties: firmware::dlpar::tree::drconf_properties(&t, DrconfFormat::V2),
        root_properties: drc_root_properties(&t),
    };
    let b = build_with(&d, &[], Some(&drconf)).unwrap();
    let node = "/ibm,dynamic-reconfiguration-memory";
    let paths = node_paths(&b).unwrap();
    let at = |p: &str| {
        paths
            .iter()
            .position(|q| q == p)
            .unwrap_or_else(|| panic!("{p}"))
    };
    assert_eq!(at(node), at("/memory@0") + 1);
    assert_eq!(cells(&prop(&b, node, "ibm,lmb-size")), [0, 0x1000_0000]);
    assert_eq!(
        cells(&prop(&b, node, "ibm,dynamic-memory-v2")),
        [
            2,
            6,
            0,
            0,
            0,
            u32::MAX,
            0xa0,
            2,
            0,
            0x6000_0000,
            0x8000_0006,
            u32::MAX,
            0
        ]
    );
    assert_eq!(
        cells(&prop(&b, node, "ibm,associativity-lookup-arrays")),
        [1, 4, 0, 0, 0, 0]
    );
    assert_eq!(
        cells(&prop(&b, "/", "ibm,drc-indexes")),
        [2, 0x8000_0006, 0x8000_0007]
    );
    let v5 = prop(&b, "/chosen", "ibm,architecture-vec-5");
    assert_eq!((v5[2], v5[6], v5[22]), (0x20, 0x04, 0x80));
    let v5_plain = prop(&plain, "/chosen", "ibm,architecture-vec-5");
    assert_eq!((v5_plain[2], v5_plain[6], v5_plain[22]), (0, 0, 0));
}
