use std::sync::{Arc, Mutex};

use firmware::rtas::{RtasArgs, RtasCall, RtasStatus};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::config::*;
use super::rtas::{handle_config_call, ConfigAddr};
use super::*;
use crate::devices::PciDevice;

/// Records every `set_level` call.
#[derive(Default)]
pub(super) struct Lines(Mutex<Vec<(u32, bool)>>);

impl IrqLine for Lines {
    fn set_level(&self, irq: u32, level: bool) {
        self.0.lock().unwrap().push((irq, level));
    }
}

impl Lines {
    fn take(&self) -> Vec<(u32, bool)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// What a [`Fake`] saw, shared with the test.
#[derive(Default)]
struct Seen {
    accesses: Vec<(usize, u64, usize, bool)>,
    pending: bool,
    resets: u32,
}

/// A device with the given BARs that records its accesses and raises INTx while `pending`.
pub(super) struct Fake {
    cfg: ConfigSpace,
    seen: Arc<Mutex<Seen>>,
}

impl Fake {
    fn new(device: u16, bar_sizes: &[(usize, u32)]) -> Box<Self> {
        Self::with_seen(device, bar_sizes).0
    }

    fn with_seen(device: u16, bar_sizes: &[(usize, u32)]) -> (Box<Self>, Arc<Mutex<Seen>>) {
        let bars: Vec<(usize, BarSpec)> = bar_sizes
            .iter()
            .map(|&(i, size)| (i, BarSpec { size }))
            .collect();
        let id = PciId {
            vendor: 0x1234,
            device,
            subsystem_vendor: 0x1234,
            subsystem: 0x5678,
            revision: 3,
            class: 0x01_80_00,
        };
        let seen = Arc::new(Mutex::new(Seen::default()));
        (
            Box::new(Self {
                cfg: ConfigSpace::new(id, true, &bars),
                seen: seen.clone(),
            }),
            seen,
        )
    }
}

impl PciDevice for Fake {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
    fn mmio_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        self.seen
            .lock()
            .unwrap()
            .accesses
            .push((bar, offset, data.len(), false));
        data.fill(0xab);
    }
    fn mmio_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        let mut s = self.seen.lock().unwrap();
        s.accesses.push((bar, offset, data.len(), true));
        // A write at offset 0 raises the interrupt (non-zero) or lowers it (zero).
        if offset == 0 {
            s.pending = data[0] != 0;
        }
    }
    fn interrupt_pending(&self) -> bool {
        self.seen.lock().unwrap().pending
    }
    fn reset(&mut self) {
        let mut s = self.seen.lock().unwrap();
        s.pending = false;
        s.resets += 1;
    }
}

pub(super) fn phb_with(devs: Vec<(u8, Box<Fake>)>) -> (Phb, Arc<Lines>) {
    let lines = Arc::new(Lines::default());
    let mut phb = Phb::new(PhbConfig::qemu_like(0), lines.clone());
    for (slot, d) in devs {
        phb.add_device(slot, d).unwrap();
    }
    (phb, lines)
}

// ---- RTAS plumbing -------------------------------------------------------------------------

pub(super) const ARGS_AT: u64 = 0x1000;

fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap()
}

/// Writes an argument block (token, nargs, nret, args, zeroed rets) and decodes it.
pub(super) fn args(m: &GuestMemoryMmap, call: RtasCall, a: &[u32], nret: u32) -> RtasArgs {
    let mut cells = vec![call.token(), a.len() as u32, nret];
    cells.extend_from_slice(a);
    cells.extend(std::iter::repeat_n(0xdead_beef, nret as usize));
    let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
    m.write_slice(&bytes, GuestAddress(ARGS_AT)).unwrap();
    RtasArgs::read(m, ARGS_AT).unwrap()
}

pub(super) fn rets(m: &GuestMemoryMmap, a: &RtasArgs) -> Vec<u32> {
    (0..a.nret)
        .map(|i| {
            let mut b = [0u8; 4];
            m.read_slice(
                &mut b,
                GuestAddress(ARGS_AT + 12 + 4 * u64::from(a.nargs + i)),
            )
            .unwrap();
            u32::from_be_bytes(b)
        })
        .collect()
}

/// Runs one RTAS PCI config call against `phbs`: whether the PHB code claimed it, and the
/// return cells it wrote.
fn call(
    phbs: &mut [Phb],
    m: &GuestMemoryMmap,
    which: RtasCall,
    inputs: &[u32],
    nret: u32,
) -> (bool, Vec<u32>) {
    let a = args(m, which, inputs, nret);
    let handled = handle_config_call(phbs, m, which, &a);
    (handled, rets(m, &a))
}

pub(super) fn buid_cells() -> (u32, u32) {
    ((BASE_BUID >> 32) as u32, BASE_BUID as u32)
}

fn ibm_read(phb: &mut Phb, m: &GuestMemoryMmap, devfn: u8, reg: u32, size: u32) -> Vec<u32> {
    let (hi, lo) = buid_cells();
    let (handled, r) = call(
        std::slice::from_mut(phb),
        m,
        RtasCall::IbmReadPciConfig,
        &[ConfigAddr::encode(0, devfn, reg), hi, lo, size],
        2,
    );
    assert!(handled);
    r
}

fn ibm_write(phb: &mut Phb, m: &GuestMemoryMmap, devfn: u8, reg: u32, size: u32, v: u32) -> u32 {
    let (hi, lo) = buid_cells();
    let (handled, r) = call(
        std::slice::from_mut(phb),
        m,
        RtasCall::IbmWritePciConfig,
        &[ConfigAddr::encode(0, devfn, reg), hi, lo, size, v],
        1,
    );
    assert!(handled);
    r[0]
}

const OK: u32 = 0;
const PARAM: u32 = RtasStatus::ParameterError as i32 as u32;

#[test]
fn config_addr_encoding_matches_linux_rtas_config_addr() {
    // bus 0, slot 2 fn 0, register 0x104: ext nibble in bits 28..31.
    let cell = ConfigAddr::encode(0, 2 << 3, 0x104);
    assert_eq!(cell, 0x1000_1004);
    assert_eq!(
        ConfigAddr::decode(cell),
        ConfigAddr {
            bus: 0,
            devfn: 0x10,
            reg: 0x104
        }
    );
    assert_eq!(ConfigAddr::decode(0x00ff_0834).bus, 0xff);
}

#[test]
fn ibm_read_pci_config_returns_ids_at_every_width() {
    let (mut phb, _) = phb_with(vec![(1, Fake::new(0xbeef, &[(0, 0x1000)]))]);
    let m = mem();
    let devfn = 1 << 3;
    assert_eq!(ibm_read(&mut phb, &m, devfn, 0, 4), vec![OK, 0xbeef_1234]);
    assert_eq!(ibm_read(&mut phb, &m, devfn, 2, 2), vec![OK, 0xbeef]);
    assert_eq!(ibm_read(&mut phb, &m, devfn, 1, 1), vec![OK, 0x12]);
    assert_eq!(ibm_read(&mut phb, &m, devfn, 8, 4), vec![OK, 0x0180_0003]);
    assert_eq!(ibm_read(&mut phb, &m, devfn, 0x3d, 1), vec![OK, 1]);
}

#[test]
fn absent_devices_read_all_ones_and_ignore_writes() {
    let (mut phb, _) = phb_with(vec![(1, Fake::new(0xbeef, &[(0, 0x1000)]))]);
    let m = mem();
    // Empty slot, other function of a present slot, register past the 256-byte header.
    for (devfn, reg) in [(2 << 3, 0), ((1 << 3) | 1, 0), (1 << 3, 0x100)] {
        assert_eq!(ibm_read(&mut phb, &m, devfn, reg, 4), vec![OK, 0xffff_ffff]);
        assert_eq!(ibm_read(&mut phb, &m, devfn, reg, 2), vec![OK, 0xffff]);
        assert_eq!(ibm_read(&mut phb, &m, devfn, reg, 1), vec![OK, 0xff]);
        assert_eq!(ibm_write(&mut phb, &m, devfn, reg, 4, 0), OK);
    }
    // Other buses are empty too.
    let (hi, lo) = buid_cells();
    let (_, r) = call(
        std::slice::from_mut(&mut phb),
        &m,
        RtasCall::IbmReadPciConfig,
        &[ConfigAddr::encode(1, 1 << 3, 0), hi, lo, 4],
        2,
    );
    assert_eq!(r, vec![OK, 0xffff_ffff]);
}

#[test]
fn bad_rtas_config_requests_get_parameter_error() {
    let (mut phb, _) = phb_with(vec![(1, Fake::new(0xbeef, &[(0, 0x1000)]))]);
    let m = mem();
    let devfn = 1 << 3;
    assert_eq!(ibm_read(&mut phb, &m, devfn, 0, 3)[0], PARAM);
    assert_eq!(ibm_read(&mut phb, &m, devfn, 0, 8)[0], PARAM);
    assert_eq!(ibm_read(&mut phb, &m, devfn, 2, 4)[0], PARAM);
    assert_eq!(ibm_read(&mut phb, &m, devfn, 1, 2)[0], PARAM);
    assert_eq!(ibm_write(&mut phb, &m, devfn, 0x11, 4, 0), PARAM);
    // Unknown BUID.
    let (_, r) = call(
        std::slice::from_mut(&mut phb),
        &m,
        RtasCall::IbmReadPciConfig,
        &[ConfigAddr::encode(0, devfn, 0), 0x0800_0000, 0x2000_0001, 4],
        2,
    );
    assert_eq!(r[0], PARAM);
    // Wrong argument count.
    let (_, r) = call(
        std::slice::from_mut(&mut phb),
        &m,
        RtasCall::IbmReadPciConfig,
        &[0, 0x0800_0000, 0x2000_0000],
        2,
    );
    assert_eq!(r[0], PARAM);
    // A call that is not ours is left alone.
    let (handled, r) = call(
        std::slice::from_mut(&mut phb),
        &m,
        RtasCall::GetTimeOfDay,
        &[],
        8,
    );
    assert!(!handled);
    assert_eq!(r[0], 0xdead_beef);
}

#[test]
fn plain_read_and_write_pci_config_address_the_first_phb() {
    let (mut phb, _) = phb_with(vec![(3, Fake::new(0xbeef, &[(0, 0x1000)]))]);
    let m = mem();
    let addr = ConfigAddr::encode(0, 3 << 3, COMMAND as u32);
    let (_, r) = call(
        std::slice::from_mut(&mut phb),
        &m,
        RtasCall::WritePciConfig,
        &[addr, 2, 0x0002],
        1,
    );
    assert_eq!(r, vec![OK]);
    let (_, r) = call(
        std::slice::from_mut(&mut phb),
        &m,
        RtasCall::ReadPciConfig,
        &[addr, 2],
        2,
    );
    assert_eq!(r, vec![OK, 0x0002]);
    // No PHB at all: parameter error.
    let (_, r) = call(&mut [], &m, RtasCall::ReadPciConfig, &[addr, 2], 2);
    assert_eq!(r[0], PARAM);
}

#[test]
fn bar_sizing_reads_back_the_size_mask_and_read_only_fields_stay() {
    let (mut phb, _) = phb_with(vec![(1, Fake::new(0xbeef, &[(0, 0x4000), (2, 0x100)]))]);
    let m = mem();
    let d = 1 << 3;
    let placed = ibm_read(&mut phb, &m, d, 0x10, 4)[1];
    assert_eq!(placed, 0x8000_0000);
    assert_eq!(ibm_write(&mut phb, &m, d, 0x10, 4, 0xffff_ffff), OK);
    assert_eq!(ibm_read(&mut phb, &m, d, 0x10, 4)[1], 0xffff_c000);
    ibm_write(&mut phb, &m, d, 0x18, 4, 0xffff_ffff);
    assert_eq!(ibm_read(&mut phb, &m, d, 0x18, 4)[1], 0xffff_ff00);
    // Unimplemented BARs stay zero.
    ibm_write(&mut phb, &m, d, 0x14, 4, 0xffff_ffff);
    assert_eq!(ibm_read(&mut phb, &m, d, 0x14, 4)[1], 0);
    // Restore, with stray low bits that must not stick.
    ibm_write(&mut phb, &m, d, 0x10, 4, placed | 0x1234);
    assert_eq!(ibm_read(&mut phb, &m, d, 0x10, 4)[1], placed);
    // Byte writes land in the right byte of the BAR.
    ibm_write(&mut phb, &m, d, 0x13, 1, 0x90);
    assert_eq!(ibm_read(&mut phb, &m, d, 0x10, 4)[1], 0x9000_0000);
    // IDs, class and pin are read-only; command keeps only its writable bits.
    ibm_write(&mut phb, &m, d, 0, 4, 0);
    ibm_write(&mut phb, &m, d, 8, 4, 0);
    ibm_write(&mut phb, &m, d, 0x3d, 1, 4);
    assert_eq!(ibm_read(&mut phb, &m, d, 0, 4)[1], 0xbeef_1234);
    assert_eq!(ibm_read(&mut phb, &m, d, 8, 4)[1], 0x0180_0003);
    assert_eq!(ibm_read(&mut phb, &m, d, 0x3d, 1)[1], 1);
    ibm_write(&mut phb, &m, d, COMMAND as u32, 2, 0xffff);
    assert_eq!(
        ibm_read(&mut phb, &m, d, COMMAND as u32, 2)[1],
        u32::from(COMMAND_IO | COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE)
    );
    ibm_write(&mut phb, &m, d, 0x3c, 1, 0x42);
    assert_eq!(ibm_read(&mut phb, &m, d, 0x3c, 1)[1], 0x42);
}

#[test]
fn bars_are_placed_aligned_inside_the_window_without_overlap() {
    let (phb, _) = phb_with(vec![
        (1, Fake::new(1, &[(0, 0x100)])),
        (2, Fake::new(2, &[(0, 0x4000), (1, 0x100)])),
        (5, Fake::new(3, &[(3, 0x10_0000)])),
    ]);
    let mut spans = vec![];
    for slot in [1u8, 2, 5] {
        let c = phb.device(slot).unwrap().config();
        for bar in 0..BAR_COUNT {
            if let (Some(s), Some(a)) = (c.bar_spec(bar), c.bar_address(bar)) {
                let size = u64::from(s.size);
                assert_eq!(a % size, 0, "slot {slot} BAR{bar} misaligned");
                assert!(a >= MEM32_PCI_BASE && a + size <= MEM32_PCI_BASE + MEM32_SIZE);
                spans.push((a, a + size));
            }
        }
    }
    spans.sort();
    assert_eq!(spans.len(), 4);
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:x?}");
    // The description the device tree gets says the same.
    let d = phb.description();
    assert_eq!(d.buid, BASE_BUID);
    assert_eq!(d.devices.len(), 3);
    assert_eq!(d.devices[1].slot, 2);
    assert_eq!(d.devices[1].bars.len(), 2);
    assert_eq!(d.devices[1].bars[1].register, 0x14);
    assert_eq!(
        d.devices[1].bars[1].pci_addr,
        phb.device(2).unwrap().config().bar_address(1).unwrap()
    );
    assert_eq!(d.devices[2].class_code, 0x01_80_00);
}

#[test]
fn a_full_window_and_a_taken_slot_are_refused() {
    let lines = Arc::new(Lines::default());
    let mut cfg = PhbConfig::qemu_like(0);
    cfg.mem32_size = 0x8000;
    let mut phb = Phb::new(cfg, lines);
    phb.add_device(0, Fake::new(1, &[(0, 0x4000)])).unwrap();
    assert_eq!(
        phb.add_device(0, Fake::new(2, &[(0, 0x10)])),
        Err(PhbError::SlotUnavailable(0))
    );
    assert_eq!(
        phb.add_device(32, Fake::new(2, &[(0, 0x10)])),
        Err(PhbError::SlotUnavailable(32))
    );
    phb.add_device(1, Fake::new(2, &[(0, 0x4000)])).unwrap();
    assert_eq!(
        phb.add_device(2, Fake::new(3, &[(0, 0x10)])),
        Err(PhbError::WindowFull { size: 0x10 })
    );
    assert!(phb.device(2).is_none());
}

#[test]
fn mmio_is_routed_only_when_memory_decoding_is_on() {
    let (two, seen) = Fake::with_seen(2, &[(0, 0x1000), (1, 0x1000)]);
    let (mut phb, _) = phb_with(vec![(1, Fake::new(1, &[(0, 0x1000)])), (2, two)]);
    let bar1_of_2 = phb.device(2).unwrap().config().bar_address(1).unwrap();
    let gpa = MEM32_CPU_BASE + (bar1_of_2 - MEM32_PCI_BASE) + 0x10;
    let mut data = [0u8; 4];
    // Decoding off: inside the window, unclaimed → all-ones, device not called.
    assert!(phb.mmio_read(gpa, &mut data));
    assert_eq!(data, [0xff; 4]);
    assert!(seen.lock().unwrap().accesses.is_empty());
    phb.config_write(0, 2 << 3, COMMAND as u32, 2, u32::from(COMMAND_MEMORY));
    assert_eq!(
        phb.route(gpa, 4),
        Some(MmioTarget {
            slot: 2,
            bar: 1,
            offset: 0x10
        })
    );
    assert!(phb.mmio_read(gpa, &mut data));
    assert_eq!(data, [0xab; 4]);
    assert!(phb.mmio_write(gpa, &[1, 2]));
    assert_eq!(
        seen.lock().unwrap().accesses,
        vec![(1, 0x10, 4, false), (1, 0x10, 2, true)]
    );
    // An access straddling the end of the BAR is not routed; outside the window is not ours.
    let bar_end = MEM32_CPU_BASE + (bar1_of_2 - MEM32_PCI_BASE) + 0x1000;
    assert_eq!(phb.route(bar_end - 2, 4), None);
    assert!(!phb.mmio_write(MEM32_CPU_BASE - 8, &[0; 8]));
    assert!(!phb.mmio_read(MEM32_CPU_BASE + MEM32_SIZE, &mut data));
    assert_eq!(phb.route(u64::MAX - 1, 8), None);
}

#[test]
fn intx_follows_the_device_through_the_swizzled_lsi() {
    let (mut phb, lines) = phb_with(vec![
        (1, Fake::new(1, &[(0, 0x1000)])),
        (4, Fake::new(2, &[(0, 0x1000)])),
    ]);
    assert_eq!(phb.irq_of(1), Some(0x1201));
    assert_eq!(phb.irq_of(4), Some(0x1200));
    assert_eq!(PhbConfig::qemu_like(0).lsi_for(3, 2), 0x1200);
    assert_eq!(PhbConfig::qemu_like(0).lsi_for(0, 4), 0x1203);
    phb.config_write(0, 4 << 3, COMMAND as u32, 2, u32::from(COMMAND_MEMORY));
    let base = phb.device(4).unwrap().config().bar_address(0).unwrap();
    let gpa = MEM32_CPU_BASE + (base - MEM32_PCI_BASE);
    phb.mmio_write(gpa, &[1]);
    assert_eq!(lines.take(), vec![(0x1200, true)]);
    // Status register shows the interrupt.
    assert_ne!(
        phb.config_read(0, 4 << 3, STATUS as u32, 2) & u32::from(STATUS_INTERRUPT),
        0
    );
    // No change → no call.
    phb.mmio_write(gpa + 4, &[1]);
    assert_eq!(lines.take(), vec![]);
    // INTx disable lowers the line while the device still wants it.
    phb.config_write(
        0,
        4 << 3,
        COMMAND as u32,
        2,
        u32::from(COMMAND_MEMORY | COMMAND_INTX_DISABLE),
    );
    assert_eq!(lines.take(), vec![(0x1200, false)]);
    phb.config_write(0, 4 << 3, COMMAND as u32, 2, u32::from(COMMAND_MEMORY));
    assert_eq!(lines.take(), vec![(0x1200, true)]);
    phb.mmio_write(gpa, &[0]);
    assert_eq!(lines.take(), vec![(0x1200, false)]);
}

#[test]
fn reset_restores_placed_bars_clears_command_and_lowers_lines() {
    let (one, seen) = Fake::with_seen(1, &[(0, 0x1000)]);
    let (mut phb, lines) = phb_with(vec![(1, one)]);
    let placed = phb.config_read(0, 1 << 3, 0x10, 4);
    phb.config_write(0, 1 << 3, COMMAND as u32, 2, u32::from(COMMAND_MEMORY));
    phb.config_write(0, 1 << 3, 0x10, 4, 0xffff_ffff);
    let gpa = MEM32_CPU_BASE + 0x1000_0000;
    phb.config_write(0, 1 << 3, 0x10, 4, 0x9000_0000);
    phb.mmio_write(gpa, &[1]);
    assert_eq!(lines.take(), vec![(0x1201, true)]);
    phb.reset();
    assert_eq!(lines.take(), vec![(0x1201, false)]);
    assert_eq!(seen.lock().unwrap().resets, 1);
    assert!(!seen.lock().unwrap().pending);
    assert_eq!(phb.config_read(0, 1 << 3, 0x10, 4), placed);
    assert_eq!(phb.config_read(0, 1 << 3, COMMAND as u32, 2), 0);
    assert_eq!(phb.route(gpa, 1), None);
}
