//! The PHB and virtio-blk together, the way the guest reaches them: config space through the
//! RTAS calls, the BAR through MMIO exits at guest-physical addresses, the interrupt through
//! the LSI, and the device tree the kernel reads.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use firmware::rtas::{RtasArgs, RtasCall};
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_config::*;
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::phb::config::{COMMAND, COMMAND_MEMORY};
use super::phb::rtas::{handle_config_call, ConfigAddr};
use super::phb::{IoEvents, IrqLine, Phb, PhbConfig, BASE_BUID, MEM32_CPU_BASE, MEM32_PCI_BASE};
use super::virtio_blk::common::*;
use super::virtio_blk::disk::Disk;
use super::virtio_blk::{VirtioBlk, ISR_OFFSET, NOTIFY_OFFSET};

#[derive(Default)]
struct Lines(Mutex<Vec<(u32, bool)>>);

impl IrqLine for Lines {
    fn set_level(&self, irq: u32, level: bool) {
        self.0.lock().unwrap().push((irq, level));
    }
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const ARGS: u64 = 0x800;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const BUF: u64 = 0x10000;

struct Guest {
    mem: GuestMemoryMmap,
    phbs: Vec<Phb>,
    lines: Arc<Lines>,
}

impl Guest {
    fn rtas(&mut self, call: RtasCall, a: &[u32], nret: u32) -> Vec<u32> {
        let mut cells = vec![call.token(), a.len() as u32, nret];
        cells.extend_from_slice(a);
        cells.extend(std::iter::repeat_n(0, nret as usize));
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.mem.write_slice(&bytes, GuestAddress(ARGS)).unwrap();
        let args = RtasArgs::read(&self.mem, ARGS).unwrap();
        assert!(handle_config_call(&mut self.phbs, &self.mem, call, &args));
        let at = ARGS + 12 + 4 * a.len() as u64;
        (0..u64::from(nret))
            .map(|i| {
                let mut b = [0u8; 4];
                self.mem
                    .read_slice(&mut b, GuestAddress(at + 4 * i))
                    .unwrap();
                u32::from_be_bytes(b)
            })
            .collect()
    }

    fn cfg_read(&mut self, devfn: u8, reg: u32, size: u32) -> u32 {
        let a = [
            ConfigAddr::encode(0, devfn, reg),
            (BASE_BUID >> 32) as u32,
            BASE_BUID as u32,
            size,
        ];
        let r = self.rtas(RtasCall::IbmReadPciConfig, &a, 2);
        assert_eq!(r[0], 0);
        r[1]
    }

    fn cfg_write(&mut self, devfn: u8, reg: u32, size: u32, v: u32) {
        let a = [
            ConfigAddr::encode(0, devfn, reg),
            (BASE_BUID >> 32) as u32,
            BASE_BUID as u32,
            size,
            v,
        ];
        assert_eq!(self.rtas(RtasCall::IbmWritePciConfig, &a, 1), [0]);
    }

    /// An MMIO store; returns once the device's I/O thread has served what it started.
    fn mmio_w(&mut self, gpa: u64, len: usize, v: u64) {
        assert!(self.phbs[0].mmio_write(gpa, &v.to_le_bytes()[..len]));
        assert!(self.phbs[0].settle(), "I/O thread did not settle");
    }

    fn mmio_r(&mut self, gpa: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        assert!(self.phbs[0].mmio_read(gpa, &mut b[..len]));
        u64::from_le_bytes(b)
    }

    fn lines(&self) -> Vec<(u32, bool)> {
        std::mem::take(&mut self.lines.0.lock().unwrap())
    }
}

#[test]
fn a_disk_behind_the_phb_from_config_space_to_interrupt_and_device_tree() {
    let file =
        TempFile(std::env::temp_dir().join(format!("vmm-phb-blk-{}.img", std::process::id())));
    let image: Vec<u8> = (0..32 * 512u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&file.0, &image).unwrap();

    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap();
    let lines = Arc::new(Lines::default());
    let mut phb = Phb::new(PhbConfig::qemu_like(0), lines.clone());
    let dev = VirtioBlk::new(mem.clone(), Disk::open(&file.0, false).unwrap(), "vda").unwrap();
    phb.add_device(1, Box::new(dev)).unwrap();
    let mut g = Guest {
        mem,
        phbs: vec![phb],
        lines,
    };
    let devfn = 1 << 3;

    // What the device tree promises is what config space says.
    let desc = g.phbs[0].description();
    let bar = g.cfg_read(devfn, 0x10, 4);
    assert_eq!(desc.devices[0].bars[0].pci_addr, u64::from(bar));
    assert_eq!(g.cfg_read(devfn, 0, 4), 0x1042_1af4);
    let blob = devicetree::build_with_pci(&dt_machine(), &[desc]).unwrap();
    let assigned = devicetree::blob::find_property(
        &blob,
        "/pci@800000020000000/pci1af4,1042@1",
        "assigned-addresses",
    )
    .unwrap();
    assert_eq!(assigned[8..12], bar.to_be_bytes());

    // pci_enable_device: memory decoding on.
    g.cfg_write(devfn, COMMAND as u32, 2, u32::from(COMMAND_MEMORY));
    let base = MEM32_CPU_BASE + (u64::from(bar) - MEM32_PCI_BASE);

    // virtio bring-up through MMIO exits.
    g.mmio_w(base + DEVICE_STATUS, 1, 0);
    let s = u64::from(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    g.mmio_w(base + DEVICE_STATUS, 1, s);
    g.mmio_w(base + DRIVER_FEATURE_SELECT, 4, 1);
    g.mmio_w(base + DRIVER_FEATURE, 4, 1); // VERSION_1 (bit 32)
    g.mmio_w(
        base + DEVICE_STATUS,
        1,
        s | u64::from(VIRTIO_CONFIG_S_FEATURES_OK),
    );
    assert_ne!(
        g.mmio_r(base + DEVICE_STATUS, 1) & u64::from(VIRTIO_CONFIG_S_FEATURES_OK),
        0
    );
    g.mmio_w(base + QUEUE_SIZE, 2, 8);
    g.mmio_w(base + QUEUE_DESC, 8, DESC);
    g.mmio_w(base + QUEUE_DRIVER, 8, AVAIL);
    g.mmio_w(base + QUEUE_DEVICE, 8, USED);
    g.mmio_w(base + QUEUE_ENABLE, 2, 1);
    let s = s | u64::from(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    g.mmio_w(base + DEVICE_STATUS, 1, s);

    // One OUT then one IN request.
    let put_desc = |m: &GuestMemoryMmap, i: u64, addr: u64, len: u32, flags: u16, next: u16| {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&addr.to_le_bytes());
        b[8..12].copy_from_slice(&len.to_le_bytes());
        b[12..14].copy_from_slice(&flags.to_le_bytes());
        b[14..16].copy_from_slice(&next.to_le_bytes());
        m.write_slice(&b, GuestAddress(DESC + 16 * i)).unwrap();
    };
    let next = VRING_DESC_F_NEXT as u16;
    let wr = VRING_DESC_F_WRITE as u16;
    for (n, kind) in [(0u16, VIRTIO_BLK_T_OUT), (1, VIRTIO_BLK_T_IN)] {
        let hdr = BUF + 0x100 * u64::from(n);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&4u64.to_le_bytes());
        g.mem.write_slice(&h, GuestAddress(hdr)).unwrap();
        let data = BUF + 0x1000 + 0x1000 * u64::from(n);
        let (d0, d1, d2) = (3 * n, 3 * n + 1, 3 * n + 2);
        put_desc(&g.mem, d0.into(), hdr, 16, next, d1);
        let dir = if kind == VIRTIO_BLK_T_IN { wr } else { 0 };
        put_desc(&g.mem, d1.into(), data, 512, dir | next, d2);
        put_desc(&g.mem, d2.into(), hdr + 0x80, 1, wr, 0);
        g.mem
            .write_obj(d0, GuestAddress(AVAIL + 4 + 2 * u64::from(n)))
            .unwrap();
    }
    g.mem
        .write_slice(&[0xc3; 512], GuestAddress(BUF + 0x1000))
        .unwrap();
    g.mem.write_obj(2u16, GuestAddress(AVAIL + 2)).unwrap();
    g.mmio_w(base + NOTIFY_OFFSET, 2, 0);

    assert_eq!(g.lines(), vec![(0x1201, true)], "INTA# of slot 1 raised");
    let used: u16 = g.mem.read_obj(GuestAddress(USED + 2)).unwrap();
    assert_eq!(used, 2);
    for n in 0..2u64 {
        let st: u8 = g
            .mem
            .read_obj(GuestAddress(BUF + 0x100 * n + 0x80))
            .unwrap();
        assert_eq!(st, VIRTIO_BLK_S_OK as u8);
    }
    let mut back = [0u8; 512];
    g.mem
        .read_slice(&mut back, GuestAddress(BUF + 0x2000))
        .unwrap();
    assert_eq!(back, [0xc3; 512]);
    assert_eq!(
        std::fs::read(&file.0).unwrap()[4 * 512..5 * 512],
        [0xc3; 512]
    );

    // The interrupt handler reads the ISR: the line drops.
    assert_eq!(g.mmio_r(base + ISR_OFFSET, 1), 1);
    assert_eq!(g.lines(), vec![(0x1201, false)]);

    // Raise it again, then reboot: the line is lowered, config space is back to the placed
    // BAR with decoding off, and the device's MMIO is no longer reachable.
    g.mem.write_obj(0u16, GuestAddress(AVAIL + 4 + 4)).unwrap();
    g.mem.write_obj(3u16, GuestAddress(AVAIL + 2)).unwrap();
    g.mmio_w(base + NOTIFY_OFFSET, 2, 0);
    assert_eq!(g.lines(), vec![(0x1201, true)]);
    let before = std::fs::read(&file.0).unwrap();
    g.phbs[0].reset();
    assert_eq!(g.lines(), vec![(0x1201, false)]);
    assert_eq!(g.cfg_read(devfn, COMMAND as u32, 2), 0);
    assert_eq!(g.cfg_read(devfn, 0x10, 4), bar);
    assert_eq!(g.phbs[0].route(base, 4), None);
    // With decoding back on, the device is at power-on: status 0, queue disabled, and a
    // notify does not touch the disk.
    g.cfg_write(devfn, COMMAND as u32, 2, u32::from(COMMAND_MEMORY));
    assert_eq!(g.mmio_r(base + DEVICE_STATUS, 1), 0);
    assert_eq!(g.mmio_r(base + QUEUE_ENABLE, 2), 0);
    g.mmio_w(base + NOTIFY_OFFSET, 2, 0);
    assert_eq!(std::fs::read(&file.0).unwrap(), before);
    assert_eq!(g.lines(), vec![]);
}

fn dt_machine() -> devicetree::MachineDescription {
    use devicetree::*;
    use firmware::GuestRange;
    let mmu = Mmu::Radix { gtse: true };
    MachineDescription {
        topology: CpuTopology::single_threaded(1),
        cpu: CpuModel::new("POWER9", 0x004e_1202),
        mmu,
        memory: vec![GuestRange::new(0, 256 << 20).unwrap()],
        cmdline: String::new(),
        initrd: None,
        rtas: GuestRange::new(0x0fff_0000, 0x1000).unwrap(),
        reservations: vec![],
        hypertas_functions: HypertasFunction::implemented(mmu),
        interrupt_controller: InterruptController::KvmXics,
        vty_irq: None,
        event_sources: None,
        rtas_properties: vec![],
    }
}

/// Doorbell (un)registrations as the PHB asks for them: (registered, gpa, len, value).
#[derive(Default)]
struct Doorbells(Mutex<Vec<(bool, u64, u32, u64)>>);

impl IoEvents for Doorbells {
    fn register(&self, _: &EventFd, gpa: u64, len: u32, value: u64) -> std::io::Result<()> {
        self.0.lock().unwrap().push((true, gpa, len, value));
        Ok(())
    }
    fn unregister(&self, _: &EventFd, gpa: u64, len: u32, value: u64) -> std::io::Result<()> {
        self.0.lock().unwrap().push((false, gpa, len, value));
        Ok(())
    }
}

#[test]
fn the_notify_doorbell_follows_the_bar_and_an_eventfd_kick_alone_serves_the_queue() {
    let file =
        TempFile(std::env::temp_dir().join(format!("vmm-phb-bell-{}.img", std::process::id())));
    std::fs::write(&file.0, vec![0u8; 32 * 512]).unwrap();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap();
    let lines = Arc::new(Lines::default());
    let mut phb = Phb::new(PhbConfig::qemu_like(0), lines.clone());
    let dev = VirtioBlk::new(mem.clone(), Disk::open(&file.0, false).unwrap(), "vdb").unwrap();
    phb.add_device(1, Box::new(dev)).unwrap();
    let bells = Arc::new(Doorbells::default());
    phb.use_io_events(bells.clone());
    let taken = || std::mem::take(&mut *bells.0.lock().unwrap());
    let mut g = Guest {
        mem,
        phbs: vec![phb],
        lines,
    };
    let devfn = 1 << 3;
    let bar = g.cfg_read(devfn, 0x10, 4);
    let gpa = |bar: u32| MEM32_CPU_BASE + (u64::from(bar) - MEM32_PCI_BASE);
    let bell = gpa(bar) + NOTIFY_OFFSET;
    assert_eq!(
        taken(),
        vec![(true, bell, 2, 0)],
        "registered where the BAR was placed"
    );

    // Decoding on and off (every boot's enable, the reset) costs no (de)registration.
    g.cfg_write(devfn, COMMAND as u32, 2, u32::from(COMMAND_MEMORY));
    g.cfg_write(devfn, COMMAND as u32, 2, 0);
    g.cfg_write(devfn, COMMAND as u32, 2, u32::from(COMMAND_MEMORY));
    assert_eq!(taken(), vec![]);
    // Moving the BAR moves the doorbell.
    let moved = bar + 0x10_0000;
    g.cfg_write(devfn, 0x10, 4, moved);
    assert_eq!(g.cfg_read(devfn, 0x10, 4), moved);
    let bell2 = gpa(moved) + NOTIFY_OFFSET;
    assert_eq!(taken(), vec![(false, bell, 2, 0), (true, bell2, 2, 0)]);
    assert_eq!(g.phbs[0].doorbell_route(1), Some((bell2, 2, 0)));

    // Bring-up at the moved BAR, one FLUSH in the ring, and only the eventfd signalled (what
    // KVM does for the guest's store): the I/O thread completes it and raises INTA#.
    let base = gpa(moved);
    let s = u64::from(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    g.mmio_w(base + DEVICE_STATUS, 1, s);
    g.mmio_w(base + DRIVER_FEATURE_SELECT, 4, 1);
    g.mmio_w(base + DRIVER_FEATURE, 4, 1);
    let s = s | u64::from(VIRTIO_CONFIG_S_FEATURES_OK);
    g.mmio_w(base + DEVICE_STATUS, 1, s);
    g.mmio_w(base + QUEUE_SIZE, 2, 8);
    g.mmio_w(base + QUEUE_DESC, 8, DESC);
    g.mmio_w(base + QUEUE_DRIVER, 8, AVAIL);
    g.mmio_w(base + QUEUE_DEVICE, 8, USED);
    g.mmio_w(base + QUEUE_ENABLE, 2, 1);
    g.mmio_w(
        base + DEVICE_STATUS,
        1,
        s | u64::from(VIRTIO_CONFIG_S_DRIVER_OK),
    );
    let _ = g.lines();
    let mut d = [0u8; 32];
    d[0..8].copy_from_slice(&BUF.to_le_bytes());
    d[8..12].copy_from_slice(&16u32.to_le_bytes());
    d[12..14].copy_from_slice(&(VRING_DESC_F_NEXT as u16).to_le_bytes());
    d[14..16].copy_from_slice(&1u16.to_le_bytes());
    d[16..24].copy_from_slice(&(BUF + 0x80).to_le_bytes());
    d[24..28].copy_from_slice(&1u32.to_le_bytes());
    d[28..30].copy_from_slice(&(VRING_DESC_F_WRITE as u16).to_le_bytes());
    g.mem.write_slice(&d, GuestAddress(DESC)).unwrap();
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&VIRTIO_BLK_T_FLUSH.to_le_bytes());
    g.mem.write_slice(&h, GuestAddress(BUF)).unwrap();
    g.mem.write_obj(0xeeu8, GuestAddress(BUF + 0x80)).unwrap();
    g.mem.write_obj(0u16, GuestAddress(AVAIL + 4)).unwrap();
    g.mem.write_obj(1u16, GuestAddress(AVAIL + 2)).unwrap();
    let dev = g.phbs[0].device(1).unwrap();
    dev.doorbell().unwrap().fd.write(1).unwrap();
    // Bounded wait for the thread (not a timing assertion: only whether it happened).
    let mut used = 0u16;
    for _ in 0..2000 {
        used = g.mem.read_obj(GuestAddress(USED + 2)).unwrap();
        if used == 1 && !g.lines.0.lock().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(used, 1);
    let st: u8 = g.mem.read_obj(GuestAddress(BUF + 0x80)).unwrap();
    assert_eq!(st, VIRTIO_BLK_S_OK as u8);
    assert_eq!(g.lines(), vec![(0x1201, true)]);

    // A reset puts the BAR back where it was placed, and the doorbell with it; a second
    // reset changes nothing.
    g.phbs[0].reset();
    assert_eq!(taken(), vec![(false, bell2, 2, 0), (true, bell, 2, 0)]);
    assert_eq!(g.lines(), vec![(0x1201, false)]);
    g.phbs[0].reset();
    assert_eq!(taken(), vec![]);
}
