//! Fuzz harness: the device-tree builder fed hostile firmware properties and odd machines.
//!
//! Starts from a bootable description (2 vCPUs, 512 MiB, the firmware's real `/rtas`
//! properties) and applies up to 16 fuzzed changes: extra `/rtas` properties with hostile names
//! (ours repeated, longer than 31 characters, empty, with NUL, '/' or non-ASCII) and values
//! (up to 1 KiB, an `ibm,kernel-dump` up to 512 bytes and beyond), odd topologies, memory maps,
//! initrd/RTAS/reservation placements, command lines, MMU modes and PCI host bridges. Checked:
//!
//! * `build_with_pci` never panics; it returns an error or a blob;
//! * a blob is a well-formed flattened tree (it walks; header sizes match; at most 1 MiB),
//!   whose boot CPU is the described one, whose reservation map holds the RTAS region, and
//!   whose `/rtas` holds every firmware property verbatim under its real (long) name.

use devicetree::pci::{
    BarAssignment, DmaWindowDescription, PciDeviceDescription, PciWindow, PhbDescription,
};
use devicetree::{
    blob, build_with_pci, CpuModel, CpuTopology, EventSourceIrqs, HypertasFunction,
    InterruptController, MachineDescription, Mmu,
};
use firmware::fadump::FadumpConfig;
use firmware::rtas::Rtas;
use firmware::{GuestRange, PropValue, Property};

use crate::input::Input;

const MIB: u64 = 1 << 20;
/// A tree this builder makes for any input here stays far below this.
const BLOB_MAX: usize = 1 << 20;

#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    pub built: u32,
    pub refused: u32,
    pub extra_props_built: u32,
    pub phbs_built: u32,
}

const HOSTILE_NAMES: &[&str] = &[
    "linux,rtas-base",
    "rtas-size",
    "ibm,configure-kernel-dump",
    "ibm,kernel-dump",
    "ibm,configure-kernel-dump-sizes",
    "ibm,configure-kernel-dump-version",
    "ibm,a-property-name-much-longer-than-thirty-one-characters",
    "ibm,exactly-31-characters-long!",
    "ibm,exactly-32-characters-long!!",
    "",
    "name",
    "a/b",
    "nul\0inside",
    "caf\u{e9}",
    "#address-cells",
];

fn base(rtas_properties: Vec<Property>) -> MachineDescription {
    let ram = 512 * MIB;
    let mmu = Mmu::Radix { gtse: true };
    MachineDescription {
        topology: CpuTopology::single_threaded(2),
        cpu: CpuModel::new("POWER9", 0x004e_1202),
        mmu,
        memory: vec![GuestRange::new(0, ram).unwrap()],
        cmdline: "console=hvc0".into(),
        initrd: Some(GuestRange::new(64 * MIB, 4 * MIB).unwrap()),
        rtas: GuestRange::new(ram - 0x10000, 0x1000).unwrap(),
        reservations: vec![],
        hypertas_functions: HypertasFunction::implemented(mmu),
        interrupt_controller: InterruptController::KvmXics,
        vty_irq: None,
        event_sources: None,
        rtas_properties,
    }
}

fn range(input: &mut Input) -> Option<GuestRange> {
    let start = match input.u8() % 4 {
        0 => input.u64(),
        _ => u64::from(input.u16()) << 16,
    };
    let len = match input.u8() % 4 {
        0 => input.u64(),
        _ => u64::from(input.u16()) << 12,
    };
    GuestRange::new(start, len)
}

fn string(input: &mut Input, max: usize) -> String {
    let n = usize::from(input.u16()) % (max + 1);
    String::from_utf8_lossy(input.bytes(n)).into_owned()
}

fn phb(input: &mut Input) -> PhbDescription {
    let mut p = PhbDescription {
        buid: 0x800_0000_2000_0000 + u64::from(input.u8() % 4),
        mem32: PciWindow {
            pci_addr: 0x8000_0000,
            cpu_addr: 0x2000_8000_0000,
            size: 0x8000_0000,
        },
        io: PciWindow {
            pci_addr: 0,
            cpu_addr: 0x2000_0000_0000,
            size: 0x1_0000,
        },
        lsi_base: 0x1200,
        dma_window: DmaWindowDescription {
            liobn: 0x8000_0000,
            bus_addr: 0,
            size: 1 << 30,
        },
        ddw: input.bool().then_some(devicetree::pci::DdwTokens {
            query: 1,
            create: 2,
            remove: 3,
            reset: 4,
        }),
        devices: Vec::new(),
    };
    for _ in 0..(input.u8() % 4) {
        let bars = (0..(input.u8() % 3))
            .map(|_| BarAssignment {
                register: 0x10 + 4 * (input.u8() % 8),
                pci_addr: 0x8000_0000 + (u64::from(input.u16()) << 12),
                size: 1u64 << (input.u8() % 40),
            })
            .collect();
        p.devices.push(PciDeviceDescription {
            slot: input.u8() % 40,
            vendor_id: 0x1af4,
            device_id: 0x1042,
            revision_id: 1,
            class_code: 0x01_80_00,
            subsystem_vendor_id: 0x1af4,
            subsystem_id: 2,
            interrupt_pin: u32::from(input.u8() % 6),
            bars,
        });
    }
    match input.u8() % 8 {
        0 => p.buid = input.u64(),
        1 => {
            p.mem32 = PciWindow {
                pci_addr: input.u64(),
                cpu_addr: input.u64(),
                size: input.u64(),
            }
        }
        2 => {
            p.dma_window = DmaWindowDescription {
                liobn: input.u32(),
                bus_addr: input.u64(),
                size: input.u64(),
            }
        }
        3 => p.lsi_base = input.u32(),
        4 => p.io.size = input.u64(),
        _ => {}
    }
    p
}

pub fn run(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mut input = Input::new(data);
    let ram = 512 * MIB;
    let mut firmware = Rtas::new(FadumpConfig {
        max_cpus: 2,
        hpte_capacity: 0,
        rma_size: ram,
        firmware_reserved: vec![GuestRange::new(ram - 0x10000, 0x1000).unwrap()],
    });
    for call in vmm_free_machine_calls() {
        if input.bool() {
            firmware.enable_machine_call(call);
        }
    }
    let mut desc = base(firmware.properties());
    let mut phbs = Vec::new();
    let mut extra = 0;

    for _ in 0..16 {
        let Some(op) = input.op() else { break };
        match op % 12 {
            0..=2 => {
                let name = if op & 0x80 != 0 {
                    string(&mut input, 48)
                } else {
                    input.pick(HOSTILE_NAMES).to_string()
                };
                let value = match input.u8() % 5 {
                    0 => PropValue::Empty,
                    1 => PropValue::U32Cells((0..input.u8() % 64).map(|_| input.u32()).collect()),
                    2 => PropValue::U64Cells((0..input.u8() % 32).map(|_| input.u64()).collect()),
                    3 => PropValue::Str(string(&mut input, 256)),
                    _ => {
                        let n = usize::from(input.u16()) % 1025;
                        PropValue::Bytes(input.bytes(n).to_vec())
                    }
                };
                desc.rtas_properties.push(Property { name, value });
                extra += 1;
            }
            3 => {
                desc.topology = CpuTopology {
                    vcpus: match input.u8() % 4 {
                        0 => input.u32(),
                        _ => u32::from(input.u8()),
                    },
                    threads_per_core: u32::from(input.u8() % 10),
                    boot_vcpu: u32::from(input.u8()),
                }
            }
            4 => {
                desc.memory = (0..input.u8() % 4)
                    .filter_map(|_| range(&mut input))
                    .collect();
                if input.bool() {
                    desc.memory
                        .insert(0, GuestRange::new(0, u64::from(input.u16()) << 16).unwrap());
                }
            }
            5 => {
                desc.initrd = if input.bool() {
                    range(&mut input)
                } else {
                    None
                }
            }
            6 => {
                if let Some(r) = range(&mut input) {
                    desc.rtas = r;
                }
            }
            7 => {
                desc.reservations = (0..input.u8() % 4)
                    .filter_map(|_| range(&mut input))
                    .collect()
            }
            8 => desc.cmdline = string(&mut input, 4096),
            9 => {
                desc.mmu = match input.u8() % 3 {
                    0 => Mmu::Radix { gtse: input.bool() },
                    _ => Mmu::Hash {
                        htab_shift: u32::from(input.u8()),
                    },
                };
                if input.bool() {
                    desc.hypertas_functions = HypertasFunction::implemented(desc.mmu);
                }
                desc.vty_irq = input.bool().then(|| input.u32());
                desc.event_sources = input.bool().then(|| EventSourceIrqs {
                    epow: if input.bool() { input.u32() } else { 0x1000 },
                    hotplug: input.pick(&[0x1001, 0x1000]),
                });
            }
            10 => {
                if phbs.len() < 3 {
                    phbs.push(phb(&mut input));
                }
            }
            _ => {
                desc.cpu.name = string(&mut input, 40);
                desc.cpu
                    .segment_page_sizes
                    .truncate(usize::from(input.u8() % 3));
                desc.cpu.large_decrementer_bits = input.bool().then(|| u32::from(input.u8()));
            }
        }
    }

    let Ok(dtb) = build_with_pci(&desc, &phbs) else {
        reached.refused += 1;
        return reached;
    };
    reached.built += 1;
    if extra > 0 {
        reached.extra_props_built += 1;
    }
    if !phbs.is_empty() {
        reached.phbs_built += 1;
    }
    assert!(dtb.len() <= BLOB_MAX, "a {} byte tree", dtb.len());
    assert_eq!(&dtb[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
    let paths = blob::node_paths(&dtb).expect("the built tree walks");
    assert!(paths.iter().any(|p| p == "/rtas"));
    assert_eq!(blob::boot_cpuid_phys(&dtb), Some(desc.topology.boot_vcpu));
    let res = blob::reservations(&dtb).expect("reservation map");
    assert!(
        res.contains(&(desc.rtas.start(), desc.rtas.len())),
        "RTAS not reserved"
    );
    for p in &desc.rtas_properties {
        let got = blob::find_property(&dtb, "/rtas", &p.name);
        assert_eq!(
            got.as_deref(),
            Some(&p.value.to_fdt_bytes()[..]),
            "/rtas/{} differs",
            p.name
        );
    }
    reached
}

/// The RTAS calls a machine may enable (the PCI config and DDW calls), named by token only so
/// the harness does not need the VMM.
fn vmm_free_machine_calls() -> Vec<firmware::rtas::RtasCall> {
    use firmware::rtas::RtasCall;
    vec![
        RtasCall::IbmReadPciConfig,
        RtasCall::IbmWritePciConfig,
        RtasCall::ReadPciConfig,
        RtasCall::WritePciConfig,
        RtasCall::IbmQueryPeDmaWindow,
        RtasCall::IbmCreatePeDmaWindow,
        RtasCall::IbmRemovePeDmaWindow,
        RtasCall::IbmResetPeDmaWindow,
    ]
}
