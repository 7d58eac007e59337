//! Where our tree and QEMU's overlap, names and values must agree.
//!
//! The lines below are copied verbatim from QEMU 11.1's tree for a 2-vCPU pseries guest
//! (`shared/spec/reference/qemu-11.1-pseries-2cpu-first-boot.dts`, decompiled with `dtc`),
//! grouped under the path of the matching node in our tree. The machine described here mimics
//! that run (2 vCPUs, 2 GiB, logical PVR 0x0f000005, QEMU's initrd and RTAS placement).
//! Properties where we differ on purpose are left out:
//!
//! * `vty@30000000` instead of `vty@71000000` (the unit address is ours to choose; it is the
//!   H_PUT_TERM_CHAR terminal number);
//! * XICS `interrupt-controller` instead of XIVE's `interrupt-controller@...` (vec5 byte 23 = 0);
//! * vec5 bytes 2, 5, 6 and 22 (dynamic reconfiguration, NUMA affinity, hot-plug events,
//!   DRMEM v2) are 0: we implement none of them;
//! * no `ibm,pft-size` on a radix guest (only hash reads it);
//! * no DRC, NUMA, NVRAM, PCI or event-source properties yet.

use devicetree::blob::find_property;
use devicetree::{
    build, CpuModel, CpuTopology, HypertasFunction, InterruptController, MachineDescription, Mmu,
};
use firmware::GuestRange;

mod common;

const QEMU: &[(&str, &str)] = &[
    ("/", r#"#size-cells = <0x02>;"#),
    ("/", r#"#address-cells = <0x02>;"#),
    ("/", r#"compatible = "qemu,pseries";"#),
    ("/", r#"device_type = "chrp";"#),
    ("/chosen", r#"linux,initrd-end = <0xe2cdb8>;"#),
    ("/chosen", r#"linux,initrd-start = <0xcf0000>;"#),
    ("/rtas", r#"linux,rtas-entry = <0x2fff0000>;"#),
    ("/rtas", r#"linux,rtas-base = <0x2fff0000>;"#),
    ("/rtas", r#"ibm,configure-kernel-dump = <0x202d>;"#),
    ("/rtas", r#"ibm,os-term = <0x201f>;"#),
    ("/rtas", r#"ibm,int-on = <0x200d>;"#),
    ("/rtas", r#"ibm,int-off = <0x200c>;"#),
    ("/rtas", r#"ibm,get-xive = <0x200b>;"#),
    ("/rtas", r#"ibm,set-xive = <0x200a>;"#),
    ("/rtas", r#"event-scan = <0x200f>;"#),
    ("/rtas", r#"check-exception = <0x200e>;"#),
    ("/rtas", r#"stop-self = <0x2007>;"#),
    ("/rtas", r#"start-cpu = <0x2006>;"#),
    ("/rtas", r#"query-cpu-stopped-state = <0x2005>;"#),
    ("/rtas", r#"system-reboot = <0x2004>;"#),
    ("/rtas", r#"power-off = <0x2003>;"#),
    ("/rtas", r#"set-time-of-day = <0x2002>;"#),
    ("/rtas", r#"get-time-of-day = <0x2001>;"#),
    ("/rtas", r#"display-character = <0x2000>;"#),
    ("/rtas", r#"ibm,extended-os-term;"#),
    ("/rtas", r#"rtas-error-log-max = <0x800>;"#),
    ("/rtas", r#"rtas-size = <0x83c>;"#),
    ("/cpus", r#"#size-cells = <0x00>;"#),
    ("/cpus", r#"#address-cells = <0x01>;"#),
    (
        "/cpus/PowerPC,POWER9@1",
        r#"ibm,processor-radix-AP-encodings = <0x0c 0xa0000010 0x20000015 0x4000001e>;"#,
    ),
    (
        "/cpus/PowerPC,POWER9@1",
        r#"ibm,ppc-interrupt-gserver#s = <0x01 0x00>;"#,
    ),
    (
        "/cpus/PowerPC,POWER9@1",
        r#"ibm,ppc-interrupt-server#s = <0x01>;"#,
    ),
    ("/cpus/PowerPC,POWER9@1", r#"ibm,chip-id = <0x00>;"#),
    (
        "/cpus/PowerPC,POWER9@1",
        r#"ibm,pa-features = <0x4200f63f 0xc7c000f0 0x80000000 0x00 0x8000 0x80008000 0x8000 0x80008000 0x8000 0xc0000000 0x8000 0x80008000 0x80008000 0x80008000 0x80008000 0x80008000 0x80000000>;"#,
    ),
    (
        "/cpus/PowerPC,POWER9@1",
        r#"ibm,segment-page-sizes = <0x0c 0x00 0x01 0x0c 0x00 0x10 0x110 0x01 0x10 0x01>;"#,
    ),
    ("/cpus/PowerPC,POWER9@1", r#"ibm,dfp = <0x01>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"ibm,vmx = <0x02>;"#),
    (
        "/cpus/PowerPC,POWER9@1",
        r#"ibm,processor-segment-sizes = <0x1c 0x28 0xffffffff 0xffffffff>;"#,
    ),
    ("/cpus/PowerPC,POWER9@1", r#"ibm,spurr = <0x01>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"ibm,purr = <0x01>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"64-bit;"#),
    ("/cpus/PowerPC,POWER9@1", r#"status = "okay";"#),
    ("/cpus/PowerPC,POWER9@1", r#"ibm,slb-size = <0x20>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"slb-size = <0x20>;"#),
    (
        "/cpus/PowerPC,POWER9@1",
        r#"clock-frequency = <0x3b9aca00>;"#,
    ),
    (
        "/cpus/PowerPC,POWER9@1",
        r#"timebase-frequency = <0x1e848000>;"#,
    ),
    ("/cpus/PowerPC,POWER9@1", r#"i-cache-size = <0x8000>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"d-cache-size = <0x8000>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"i-cache-line-size = <0x80>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"i-cache-block-size = <0x80>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"d-cache-line-size = <0x80>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"d-cache-block-size = <0x80>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"cpu-version = <0xf000005>;"#),
    ("/cpus/PowerPC,POWER9@1", r#"device_type = "cpu";"#),
    ("/cpus/PowerPC,POWER9@1", r#"reg = <0x01>;"#),
    ("/vdevice", r#"interrupt-controller;"#),
    ("/vdevice", r#"#interrupt-cells = <0x02>;"#),
    ("/vdevice", r#"#size-cells = <0x00>;"#),
    ("/vdevice", r#"#address-cells = <0x01>;"#),
    ("/vdevice", r#"compatible = "IBM,vdevice";"#),
    ("/vdevice", r#"device_type = "vdevice";"#),
    ("/vdevice/vty@30000000", r#"compatible = "hvterm1";"#),
    ("/vdevice/vty@30000000", r#"device_type = "serial";"#),
    ("/memory@0", r#"reg = <0x00 0x00 0x00 0x80000000>;"#),
    ("/memory@0", r#"device_type = "memory";"#),
];

/// QEMU's `ibm,architecture-vec-5` from the same run.
const QEMU_VEC5: &str =
    "[19 00 20 00 00 a0 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 80 40 40 00 40]";

/// Parses the value of one dts property line: `<cells>`, `"string"`, `[bytes]` or nothing.
fn parse_line(line: &str) -> (String, Vec<u8>) {
    let line = line.trim().trim_end_matches(';');
    let Some((name, value)) = line.split_once(" = ") else {
        return (line.to_string(), Vec::new());
    };
    let value = value.trim();
    let bytes = if let Some(c) = value.strip_prefix('<') {
        c.trim_end_matches('>')
            .split_whitespace()
            .flat_map(|x| {
                u32::from_str_radix(x.trim_start_matches("0x"), 16)
                    .unwrap()
                    .to_be_bytes()
            })
            .collect()
    } else if let Some(s) = value.strip_prefix('"') {
        let mut b = s.trim_end_matches('"').as_bytes().to_vec();
        b.push(0);
        b
    } else {
        parse_bytes(value)
    };
    (name.to_string(), bytes)
}

fn parse_bytes(value: &str) -> Vec<u8> {
    value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split_whitespace()
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect()
}

fn qemu_like_machine() -> MachineDescription {
    let mmu = Mmu::Radix { gtse: true };
    let props = common::rtas_token_properties();
    MachineDescription {
        topology: CpuTopology::single_threaded(2),
        cpu: CpuModel::new("POWER9", 0x0f00_0005),
        mmu,
        memory: vec![GuestRange::new(0, 0x8000_0000).unwrap()],
        cmdline: "console=hvc0".into(),
        initrd: Some(GuestRange::from_bounds(0xcf_0000, 0xe2_cdb8).unwrap()),
        rtas: GuestRange::new(0x2fff_0000, 0x83c).unwrap(),
        reservations: vec![],
        hypertas_functions: HypertasFunction::implemented(mmu),
        interrupt_controller: InterruptController::KvmXics,
        vty_irq: None,
        event_sources: None,
        rtas_properties: props,
    }
}

#[test]
fn overlapping_properties_agree_with_qemu() {
    let blob = build(&qemu_like_machine()).unwrap();
    let mut mismatches = Vec::new();
    for (path, line) in QEMU {
        let (name, want) = parse_line(line);
        match find_property(&blob, path, &name) {
            None => mismatches.push(format!("{path}: missing {name}")),
            Some(got) if got != want => {
                mismatches.push(format!("{path}: {name} = {got:02x?}, QEMU has {want:02x?}"))
            }
            Some(_) => {}
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn vec5_agrees_with_qemu_on_length_and_mmu_bytes() {
    let blob = build(&qemu_like_machine()).unwrap();
    let ours = find_property(&blob, "/chosen", "ibm,architecture-vec-5").unwrap();
    let qemu = parse_bytes(QEMU_VEC5);
    assert_eq!(ours.len(), qemu.len());
    assert_eq!(ours[0], qemu[0]);
    // Radix only, radix GTSE.
    for i in [24, 25, 26] {
        assert_eq!(ours[i], qemu[i], "vec5 byte {i}");
    }
}
