//! The LMB state across add, remove, the fadump reset and a plain reboot, as each boot's
//! device tree shows it: the firmware driven through RTAS the way Linux drives it, the
//! machine's reset steps, and the tree `boot::load` writes for the next kernel.

use std::cell::RefCell;

use devicetree::blob::find_property;
use devicetree::{CpuModel, Mmu};
use firmware::dlpar::table::{LmbTable, ResetKind};
use firmware::dlpar::{Dlpar, LMB_SIZE};
use firmware::fadump::FadumpConfig;
use firmware::rtas::{CpuRunState, HotplugAction, Platform, Rtas, RtasArgs, RtasCall, TimeOfDay};
use firmware::{memory, GuestRange};
use vm_memory::{Bytes, GuestAddress};

use crate::boot::{load, BootImages, BootSpec};
use crate::loader::tests::make_elf;
use crate::memory::GuestMemory;

const M: u64 = 1 << 20;
const BOOT: u64 = 256 * M;
const WINDOW: u64 = 0x1000_0000;
const ARGS: u64 = 0x10_0000;
const WA: u64 = 0x11_0000;

#[derive(Default)]
struct Guest {
    mapped: RefCell<Vec<u64>>,
}

impl Platform for Guest {
    fn time_of_day(&self) -> TimeOfDay {
        TimeOfDay::default()
    }
    fn cpu_run_state(&self, _: u32) -> Option<CpuRunState> {
        Some(CpuRunState::Running)
    }
    fn map_memory(&self, r: GuestRange) -> bool {
        self.mapped.borrow_mut().push(r.start());
        true
    }
    fn unmap_memory(&self, r: GuestRange) {
        self.mapped.borrow_mut().retain(|&a| a != r.start());
    }
}

fn rtas_call(mem: &GuestMemory, rtas: &mut Rtas, p: &Guest, c: RtasCall, args: &[u32]) -> i32 {
    let b = RtasArgs::block_bytes(c.token(), args, 1, 0);
    memory::write_bytes(mem, ARGS, &b).unwrap();
    rtas.dispatch(mem, ARGS, p).unwrap();
    let at = ARGS + 12 + 4 * args.len() as u64;
    i32::from_be_bytes(memory::read_bytes(mem, at, 4).unwrap().try_into().unwrap())
}

/// `dlpar_acquire_drc` + `dlpar_add_lmb`'s configure-connector.
fn linux_add(mem: &GuestMemory, rtas: &mut Rtas, p: &Guest, index: u32) {
    assert_eq!(
        rtas_call(mem, rtas, p, RtasCall::SetIndicator, &[9003, index, 1]),
        0
    );
    assert_eq!(
        rtas_call(mem, rtas, p, RtasCall::SetIndicator, &[9001, index, 1]),
        0
    );
    loop {
        let mut wa = index.to_be_bytes().to_vec();
        wa.extend([0; 16]);
        memory::write_bytes(mem, WA, &wa).unwrap();
        match rtas_call(
            mem,
            rtas,
            p,
            RtasCall::IbmConfigureConnector,
            &[WA as u32, 0],
        ) {
            0 => break,
            2 | 3 => {}
            rc => panic!("configure-connector {rc}"),
        }
    }
}

/// `dlpar_release_drc` after `dlpar_remove_lmb`.
fn linux_remove(mem: &GuestMemory, rtas: &mut Rtas, p: &Guest, index: u32) {
    assert_eq!(
        rtas_call(mem, rtas, p, RtasCall::SetIndicator, &[9001, index, 0]),
        0
    );
    assert_eq!(
        rtas_call(mem, rtas, p, RtasCall::SetIndicator, &[9003, index, 0]),
        0
    );
}

/// The window LMBs the next boot's tree marks ASSIGNED, by address, from the
/// `ibm,dynamic-memory-v2` sets `boot::load` wrote.
fn assigned_in_tree(mem: &GuestMemory, rtas: &Rtas, images: &BootImages) -> Vec<u64> {
    let cpu = CpuModel::new("POWER9", 0x004e_1202);
    let d = rtas.dlpar().unwrap();
    let spec = BootSpec {
        images,
        cmdline: "console=hvc0",
        memory: BOOT,
        cpus: 1,
        cpu: &cpu,
        rtas_properties: rtas.properties(),
        pci: &[],
        mmu: Mmu::Radix { gtse: true },
        rma_size: BOOT,
        drconf: Some(devicetree::Drconf {
            properties: d.drconf_properties(),
            root_properties: firmware::dlpar::tree::drc_root_properties(d.table()),
        }),
    };
    let img = load(mem, &spec).unwrap();
    let mut dtb = vec![0u8; img.dtb_len];
    mem.read_slice(&mut dtb, GuestAddress(img.fdt_addr))
        .unwrap();
    let v2 = find_property(
        &dtb,
        "/ibm,dynamic-reconfiguration-memory",
        "ibm,dynamic-memory-v2",
    )
    .expect("the drconf node");
    let c: Vec<u32> = v2
        .chunks(4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        .collect();
    let mut out = vec![];
    for set in c[1..].chunks(6) {
        let (n, base, flags) = (
            set[0],
            (u64::from(set[1]) << 32) | u64::from(set[2]),
            set[5],
        );
        if flags & 0x08 != 0 {
            out.extend((0..u64::from(n)).map(|j| base + j * LMB_SIZE));
        }
    }
    // /memory@0 stays boot RAM only.
    let reg = find_property(&dtb, "/memory@0", "reg").unwrap();
    assert_eq!(&reg[8..16], &BOOT.to_be_bytes());
    out
}

#[test]
fn lmb_state_across_add_remove_fadump_reset_and_reboot() {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), BOOT as usize)]).unwrap();
    let images = BootImages {
        kernel_path: "vmlinux".into(),
        kernel: make_elf(0, &[0x60; 4096], 0x3000, 0x10),
        initramfs_path: None,
        initramfs: None,
    };
    let mut rtas = Rtas::new(FadumpConfig {
        max_cpus: 1,
        hpte_capacity: 0,
        rma_size: BOOT,
        firmware_reserved: vec![],
    });
    let mut table = LmbTable::new(BOOT, WINDOW, 3 * LMB_SIZE).unwrap();
    table.grant_all();
    rtas.set_dlpar(Dlpar::new(table));
    let guest = Guest::default();
    let lmb = |k: u32| 0x8000_0001 + k;
    let addr = |k: u64| WINDOW + k * LMB_SIZE;
    assert!(assigned_in_tree(&mem, &rtas, &images).is_empty());

    // The guest adds three LMBs itself, then removes the middle one.
    for k in 0..3 {
        linux_add(&mem, &mut rtas, &guest, lmb(k));
    }
    linux_remove(&mem, &mut rtas, &guest, lmb(1));
    assert_eq!(*guest.mapped.borrow(), [addr(0), addr(2)]);
    // The host asks for LMB 3 back and the guest crashes before it gives it up: the capture
    // kernel's tree lists exactly what the crashed kernel owned.
    rtas.memory_hotplug(HotplugAction::Remove, 1, TimeOfDay::default())
        .unwrap();
    assert_eq!(
        rtas.events().len(),
        1,
        "the remove event waits for the guest"
    );
    assert_eq!(
        rtas.dlpar_mut().unwrap().reset(ResetKind::Fadump),
        Vec::<usize>::new()
    );
    assert_eq!(assigned_in_tree(&mem, &rtas, &images), [addr(0), addr(2)]);

    // In the capture kernel: no changes while the dump is active (checked by the caller
    // against the fadump engine; here the flag).
    assert!(rtas.dlpar_mut().unwrap().add(1, true).is_err());
    // The host asks again and the machine reboots plainly: the unplug completes at the reset.
    rtas.dlpar_mut().unwrap().remove(1, false).unwrap();
    let released = rtas.dlpar_mut().unwrap().reset(ResetKind::Reboot);
    assert_eq!(released, [2]);
    assert_eq!(assigned_in_tree(&mem, &rtas, &images), [addr(0)]);
    // And again: what the guest owns stays through further reboots.
    assert!(rtas
        .dlpar_mut()
        .unwrap()
        .reset(ResetKind::Reboot)
        .is_empty());
    assert_eq!(assigned_in_tree(&mem, &rtas, &images), [addr(0)]);
    // The removed LMB is the host's again (not granted), the one the guest gave up is free.
    let t = rtas.dlpar().unwrap().table();
    assert!(!t.drc(2).attached() && t.drc(1).attached());
}
