//! The `/pci@<buid>` node: `dtc` accepts it without a warning (its PCI checks include the
//! bridge's `bus-range`/`ranges` and each child's `reg` against its unit address), it matches
//! QEMU 11.1's PHB node property for property where they overlap
//! (`tests/golden/qemu-11.1-phb.txt`, lines copied from the reference run), and the device
//! child carries what Linux's `of_create_pci_dev()` reads.
//!
//! Needs `dtc` (Debian package `device-tree-compiler`).

use common::decompile;
use devicetree::blob::find_property;
use devicetree::pci::{
    BarAssignment, DdwTokens, DmaWindowDescription, PciDeviceDescription, PciWindow, PhbDescription,
};
use devicetree::{
    build, build_with_pci, CpuModel, CpuTopology, Error, HypertasFunction, InterruptController,
    MachineDescription, Mmu,
};
use firmware::GuestRange;

mod common;

const MIB: u64 = 1 << 20;

fn machine() -> MachineDescription {
    let mmu = Mmu::Radix { gtse: true };
    MachineDescription {
        topology: CpuTopology::single_threaded(2),
        cpu: CpuModel::new("POWER9", 0x004e_1202),
        mmu,
        memory: vec![GuestRange::new(0, 512 * MIB).unwrap()],
        cmdline: "console=hvc0".into(),
        initrd: None,
        rtas: GuestRange::new(0x1fff_0000, 0x1000).unwrap(),
        reservations: vec![],
        hypertas_functions: HypertasFunction::implemented(mmu),
        interrupt_controller: InterruptController::KvmXics,
        vty_irq: None,
        event_sources: None,
        rtas_properties: vec![],
    }
}

/// QEMU's first PHB with one modern virtio-blk function in slot 1 (BAR0 16 KiB at the start
/// of the 32-bit window), as `vmm::devices::phb::Phb::description` produces it.
fn phb() -> PhbDescription {
    PhbDescription {
        buid: 0x0800_0000_2000_0000,
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
            size: 0x4000_0000,
        },
        ddw: Some(DdwTokens {
            query: 0x2026,
            create: 0x2027,
            remove: 0x2028,
            reset: 0x2029,
        }),
        devices: vec![PciDeviceDescription {
            slot: 1,
            vendor_id: 0x1af4,
            device_id: 0x1042,
            revision_id: 1,
            class_code: 0x01_80_00,
            subsystem_vendor_id: 0x1af4,
            subsystem_id: 0x40,
            interrupt_pin: 1,
            bars: vec![BarAssignment {
                register: 0x10,
                pci_addr: 0x8000_0000,
                size: 0x4000,
            }],
        }],
    }
}

/// The property lines (tabs stripped) of the node whose line is `\t<name> {`.
fn node_lines(dts: &str, name: &str) -> Vec<String> {
    let open = format!("\t{name} {{");
    let start = dts
        .lines()
        .position(|l| l == open)
        .unwrap_or_else(|| panic!("no node {name} in\n{dts}"));
    dts.lines()
        .skip(start + 1)
        .take_while(|l| *l != "\t};")
        .filter(|l| l.starts_with("\t\t") && !l.starts_with("\t\t\t"))
        .map(|l| l.trim().to_string())
        .filter(|l| l.ends_with(';'))
        .collect()
}

#[test]
fn dtc_accepts_the_phb_and_its_device_without_warnings() {
    let blob = build_with_pci(&machine(), &[phb()]).unwrap();
    let dts = decompile(&blob, "pci");
    assert!(dts.contains("\t\tpci1af4,1042@1 {"), "{dts}");
    if std::env::var_os("PRINT_DTS").is_some() {
        println!("{dts}");
    }
}

#[test]
fn phb_properties_match_qemu_where_they_overlap() {
    let blob = build_with_pci(&machine(), &[phb()]).unwrap();
    let ours = node_lines(&decompile(&blob, "pci"), "pci@800000020000000");
    let reference = include_str!("golden/qemu-11.1-phb.txt");
    let mut compared = 0;
    for want in reference.lines().filter(|l| !l.starts_with("//")) {
        let name = want.split([' ', ';']).next().unwrap();
        let got = ours
            .iter()
            .find(|l| l.split([' ', ';']).next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from our PHB node: {ours:#?}"));
        if name == "ranges" {
            // QEMU also has a 64-bit window; our IO and 32-bit entries must be its prefix.
            let prefix = got.trim_end_matches(">;");
            assert!(
                want.starts_with(prefix),
                "ranges:\n ours {got}\n qemu {want}"
            );
            assert_eq!(prefix.split(' ').count(), 2 + 14, "two 7-cell entries");
        } else {
            assert_eq!(got, want, "{name}");
        }
        compared += 1;
    }
    assert_eq!(compared, 17);
}

#[test]
fn the_device_node_has_what_of_create_pci_dev_reads() {
    let blob = build_with_pci(&machine(), &[phb()]).unwrap();
    let path = "/pci@800000020000000/pci1af4,1042@1";
    let cells = |name: &str| -> Vec<u32> {
        find_property(&blob, path, name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    };
    assert_eq!(cells("vendor-id"), [0x1af4]);
    assert_eq!(cells("device-id"), [0x1042]);
    assert_eq!(cells("class-code"), [0x01_80_00]);
    assert_eq!(cells("revision-id"), [1]);
    assert_eq!(cells("subsystem-id"), [0x40]);
    assert_eq!(cells("interrupts"), [1]);
    // reg: config space of devfn 0x08, then BAR0's size (relocatable, 32-bit memory).
    assert_eq!(
        cells("reg"),
        [0x0000_0800, 0, 0, 0, 0, 0x0200_0810, 0, 0, 0, 0x4000]
    );
    // assigned-addresses: BAR0 placed at PCI 0x8000_0000 (non-relocatable).
    assert_eq!(
        cells("assigned-addresses"),
        [0x8200_0810, 0, 0x8000_0000, 0, 0x4000]
    );
    // Slot 1 INTA# → 0x1201, level (interrupt-map entry for 0x800/pin 1).
    let map = find_property(&blob, "/pci@800000020000000", "interrupt-map").unwrap();
    let map: Vec<u32> = map
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    let entry = map
        .chunks_exact(7)
        .find(|e| e[0] == 0x800 && e[3] == 1)
        .unwrap();
    assert_eq!(entry[4..], [devicetree::XICS_PHANDLE, 0x1201, 1]);
}

#[test]
fn no_phb_gives_the_same_blob_as_build() {
    assert_eq!(
        build_with_pci(&machine(), &[]).unwrap(),
        build(&machine()).unwrap()
    );
}

/// A change that makes a PHB list invalid.
type Mutation = Box<dyn Fn(&mut Vec<PhbDescription>)>;

#[test]
fn bad_phb_descriptions_are_refused() {
    let cases: Vec<(&str, Mutation)> = vec![
        ("buid 0", Box::new(|p| p[0].buid = 0)),
        ("empty window", Box::new(|p| p[0].mem32.size = 0)),
        (
            "window above 4 GiB",
            Box::new(|p| p[0].mem32.size = 0x1_0000_0000),
        ),
        ("wrapping window", Box::new(|p| p[0].io.cpu_addr = u64::MAX)),
        ("slot 32", Box::new(|p| p[0].devices[0].slot = 32)),
        ("pin 5", Box::new(|p| p[0].devices[0].interrupt_pin = 5)),
        (
            "duplicate slot",
            Box::new(|p| {
                let d = p[0].devices[0].clone();
                p[0].devices.push(d)
            }),
        ),
        (
            "BAR outside window",
            Box::new(|p| p[0].devices[0].bars[0].pci_addr = 0x1000),
        ),
        (
            "misaligned BAR",
            Box::new(|p| p[0].devices[0].bars[0].pci_addr = 0x8000_1000),
        ),
        (
            "BAR size not a power of two",
            Box::new(|p| p[0].devices[0].bars[0].size = 0x3000),
        ),
        (
            "BAR register",
            Box::new(|p| p[0].devices[0].bars[0].register = 0x30),
        ),
        ("same BUID twice", Box::new(|p| p.push(p[0].clone()))),
        ("LIOBN 0", Box::new(|p| p[0].dma_window.liobn = 0)),
        ("empty DMA window", Box::new(|p| p[0].dma_window.size = 0)),
        (
            "unaligned DMA window",
            Box::new(|p| p[0].dma_window.bus_addr = 0x800),
        ),
        (
            "wrapping DMA window",
            Box::new(|p| p[0].dma_window.bus_addr = u64::MAX - 0xfff),
        ),
    ];
    for (what, f) in cases {
        let mut phbs = vec![phb()];
        f(&mut phbs);
        assert!(
            matches!(build_with_pci(&machine(), &phbs), Err(Error::Pci(_))),
            "{what} accepted"
        );
    }
}

#[test]
fn with_a_phb_the_guest_gets_a_dma_window_no_iommu_off_and_no_msi() {
    let with = build_with_pci(&machine(), &[phb()]).unwrap();
    assert_eq!(
        find_property(&with, "/chosen", "linux,iommu-off"),
        None,
        "with it, kernels whose early scan honours it ignore RAM above 2 GiB"
    );
    let cells = |name: &str| -> Vec<u32> {
        find_property(&with, "/pci@800000020000000", name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    };
    assert_eq!(cells("ibm,dma-window"), [0x8000_0000, 0, 0, 0, 0x4000_0000]);
    assert_eq!(cells("ibm,ddw-applicable"), [0x2026, 0x2027, 0x2028]);
    let mut no_ddw = phb();
    no_ddw.ddw = None;
    let blob = build_with_pci(&machine(), &[no_ddw]).unwrap();
    assert_eq!(
        find_property(&blob, "/pci@800000020000000", "ibm,ddw-applicable"),
        None
    );
    assert_eq!(
        find_property(&with, "/pci@800000020000000", "ibm,pe-total-#msi"),
        Some(vec![0, 0, 0, 0]),
        "virtio-pci's MSI-X attempt oopses unless the PHB has its own (empty) MSI domain"
    );
    let without = build(&machine()).unwrap();
    assert_eq!(find_property(&without, "/chosen", "linux,iommu-off"), None);
}
