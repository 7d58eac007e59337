//! virtio-blk through a real split virtqueue laid out in guest memory, driven the way Linux's
//! virtio-pci modern driver does it, against a temporary backing file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use virtio_bindings::virtio_blk::*;
use virtio_bindings::virtio_config::*;
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::common::*;
use super::disk::Disk;
use super::*;
use crate::devices::PciDevice;

const RAM: u64 = 16 << 20;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const QSIZE: u16 = 16;
const BUF: u64 = 0x10_0000;
const SECTORS: u64 = 64;

const R: u16 = 0;
const W: u16 = VRING_DESC_F_WRITE as u16;

/// A backing file removed on drop.
struct TempDisk(PathBuf);

impl TempDisk {
    fn new(sectors: u64) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "vmm-virtio-blk-{}-{}.img",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        // A recognisable pattern: byte i = i * 7 mod 251.
        let data: Vec<u8> = (0..sectors * 512).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, data).unwrap();
        TempDisk(p)
    }

    fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The guest side: memory, the device, the next free descriptor and avail index.
struct Driver {
    mem: GuestMemoryMmap,
    dev: VirtioBlk,
    avail_idx: u16,
    next_desc: u16,
}

impl Driver {
    fn new(file: &TempDisk, readonly: bool) -> Self {
        Self::on(Disk::open(&file.0, readonly).unwrap())
    }

    /// The device on an already opened disk.
    fn on(disk: Disk) -> Self {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap();
        let dev = VirtioBlk::new(mem.clone(), disk, "disk-serial-0").unwrap();
        Self {
            mem,
            dev,
            avail_idx: 0,
            next_desc: 0,
        }
    }

    fn read(&mut self, off: u64, len: usize) -> u64 {
        let mut b = vec![0u8; len];
        self.dev.mmio_read(BAR, off, &mut b);
        let mut w = [0u8; 8];
        w[..len].copy_from_slice(&b);
        u64::from_le_bytes(w)
    }

    fn write(&mut self, off: u64, len: usize, v: u64) {
        self.dev.mmio_write(BAR, off, &v.to_le_bytes()[..len]);
    }

    fn features(&mut self) -> u64 {
        self.write(DEVICE_FEATURE_SELECT, 4, 0);
        let lo = self.read(DEVICE_FEATURE, 4);
        self.write(DEVICE_FEATURE_SELECT, 4, 1);
        lo | self.read(DEVICE_FEATURE, 4) << 32
    }

    /// ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns the status read back.
    fn negotiate(&mut self, features: u64) -> u8 {
        self.write(DEVICE_STATUS, 1, 0);
        self.write(DEVICE_STATUS, 1, u64::from(VIRTIO_CONFIG_S_ACKNOWLEDGE));
        let s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
        self.write(DEVICE_STATUS, 1, u64::from(s));
        self.write(DRIVER_FEATURE_SELECT, 4, 0);
        self.write(DRIVER_FEATURE, 4, features & 0xffff_ffff);
        self.write(DRIVER_FEATURE_SELECT, 4, 1);
        self.write(DRIVER_FEATURE, 4, features >> 32);
        self.write(DEVICE_STATUS, 1, u64::from(s | VIRTIO_CONFIG_S_FEATURES_OK));
        self.read(DEVICE_STATUS, 1) as u8
    }

    /// The whole Linux bring-up: negotiate, program queue 0 (64-bit fields as two 32-bit
    /// halves, as `vp_iowrite64_twopart` does), enable it, DRIVER_OK.
    fn start(&mut self) {
        let f = self.features() & !(1 << VIRTIO_BLK_F_SEG_MAX);
        assert_ne!(
            self.negotiate(f) & VIRTIO_CONFIG_S_FEATURES_OK as u8,
            0,
            "FEATURES_OK refused"
        );
        self.write(QUEUE_SELECT, 2, 0);
        assert_eq!(self.read(QUEUE_SIZE, 2), u64::from(QUEUE_MAX));
        self.write(QUEUE_SIZE, 2, u64::from(QSIZE));
        for (reg, addr) in [
            (QUEUE_DESC, DESC),
            (QUEUE_DRIVER, AVAIL),
            (QUEUE_DEVICE, USED),
        ] {
            self.write(reg, 4, addr & 0xffff_ffff);
            self.write(reg + 4, 4, addr >> 32);
        }
        self.write(QUEUE_ENABLE, 2, 1);
        assert_eq!(self.read(QUEUE_ENABLE, 2), 1);
        let s = VIRTIO_CONFIG_S_ACKNOWLEDGE
            | VIRTIO_CONFIG_S_DRIVER
            | VIRTIO_CONFIG_S_FEATURES_OK
            | VIRTIO_CONFIG_S_DRIVER_OK;
        self.write(DEVICE_STATUS, 1, u64::from(s));
    }

    fn put_desc(&self, idx: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = GuestAddress(DESC + 16 * u64::from(idx));
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&addr.to_le_bytes());
        b[8..12].copy_from_slice(&len.to_le_bytes());
        b[12..14].copy_from_slice(&flags.to_le_bytes());
        b[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem.write_slice(&b, at).unwrap();
    }

    /// Publishes the head `head` in the avail ring.
    fn publish(&mut self, head: u16) {
        let slot = u64::from(self.avail_idx % QSIZE);
        self.mem
            .write_obj(head.to_le(), GuestAddress(AVAIL + 4 + 2 * slot))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx.to_le(), GuestAddress(AVAIL + 2))
            .unwrap();
    }

    /// Lays out a chain of (addr, len, direction) buffers in consecutive descriptors,
    /// publishes it and notifies. Returns the head index.
    fn submit(&mut self, bufs: &[(u64, u32, u16)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, dir)) in bufs.iter().enumerate() {
            let idx = (head + i as u16) % QSIZE;
            let last = i + 1 == bufs.len();
            let flags = dir | if last { 0 } else { VRING_DESC_F_NEXT as u16 };
            self.put_desc(idx, addr, len, flags, (idx + 1) % QSIZE);
        }
        self.next_desc = (head + bufs.len() as u16) % QSIZE;
        self.publish(head);
        self.notify();
        head
    }

    /// Notifies and waits until the I/O thread has served it.
    fn notify(&mut self) {
        self.write(NOTIFY_OFFSET, 2, 0);
        assert!(self.dev.settle(), "the I/O thread did not serve the notify");
    }

    fn used_idx(&self) -> u16 {
        u16::from_le(self.mem.read_obj(GuestAddress(USED + 2)).unwrap())
    }

    /// The used element `n` (id, len).
    fn used(&self, n: u16) -> (u32, u32) {
        let at = USED + 4 + 8 * u64::from(n % QSIZE);
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        (u32::from_le(id), u32::from_le(len))
    }

    /// Writes a request header at `at`.
    fn header(&self, at: u64, kind: u32, sector: u64) {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&h, GuestAddress(at)).unwrap();
    }

    fn byte(&self, at: u64) -> u8 {
        self.mem.read_obj(GuestAddress(at)).unwrap()
    }

    fn fill(&self, at: u64, data: &[u8]) {
        self.mem.write_slice(data, GuestAddress(at)).unwrap();
    }

    fn bytes(&self, at: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.mem.read_slice(&mut b, GuestAddress(at)).unwrap();
        b
    }

    /// A request of `kind` at `sector` with one data buffer (`dir`) of `len` bytes; the
    /// status byte is pre-set to 0xee so an untouched status is visible.
    fn request(&mut self, kind: u32, sector: u64, len: u32, dir: u16) -> (u8, (u32, u32)) {
        let (hdr, data, status) = (BUF, BUF + 0x1000, BUF + 0x1000 + u64::from(len));
        self.header(hdr, kind, sector);
        self.fill(status, &[0xee]);
        let before = self.used_idx();
        let head = if len == 0 {
            self.submit(&[(hdr, 16, R), (status, 1, W)])
        } else {
            self.submit(&[(hdr, 16, R), (data, len, dir), (status, 1, W)])
        };
        assert_eq!(
            self.used_idx(),
            before.wrapping_add(1),
            "request not completed"
        );
        let used = self.used(before);
        assert_eq!(used.0, u32::from(head));
        (self.byte(status), used)
    }
}

const S_OK: u8 = VIRTIO_BLK_S_OK as u8;
const S_IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
const S_UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

fn pattern(at: u64, len: usize) -> Vec<u8> {
    (at..at + len as u64).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn pci_identity_and_capabilities_are_what_linux_virtio_pci_looks_for() {
    let f = TempDisk::new(SECTORS);
    let d = Driver::new(&f, false);
    let c = d.dev.config();
    assert_eq!(c.read(0, 4), 0x1042_1af4);
    assert_eq!(c.read(8, 1), 1, "modern devices have revision >= 1");
    assert_eq!(c.read(0x2e, 2), 0x40);
    assert_ne!(c.read(6, 2) & 0x10, 0, "capability list bit");
    // Walk the capability list: four vendor caps, types 1..4, all in BAR0 at our offsets.
    let mut at = c.read(0x34, 1) as usize;
    let mut found = vec![];
    while at != 0 {
        assert_eq!(c.read(at, 1), 0x09);
        let (ty, bar) = (c.read(at + 3, 1), c.read(at + 4, 1));
        let (off, len) = (c.read(at + 8, 4), c.read(at + 12, 4));
        assert_eq!(bar, 0);
        assert!(u64::from(off) + u64::from(len) <= u64::from(BAR_SIZE));
        if ty == 2 {
            assert_eq!(c.read(at + 2, 1), 20);
            assert_eq!(c.read(at + 16, 4), NOTIFY_MULTIPLIER);
        }
        found.push((ty, off));
        at = c.read(at + 1, 1) as usize;
    }
    found.sort();
    assert_eq!(found, vec![(1, 0), (2, 0x3000), (3, 0x1000), (4, 0x2000)]);
    assert_eq!(c.bar_spec(0).unwrap().size, BAR_SIZE);
}

#[test]
fn feature_negotiation_accepts_a_subset_with_version_1_only() {
    let f = TempDisk::new(SECTORS);
    let mut d = Driver::new(&f, false);
    let feats = d.features();
    assert_ne!(feats & (1 << VIRTIO_F_VERSION_1), 0);
    assert_ne!(feats & (1 << VIRTIO_BLK_F_FLUSH), 0);
    assert_eq!(feats & (1 << VIRTIO_BLK_F_RO), 0);
    assert_eq!(feats & (1 << VIRTIO_F_ACCESS_PLATFORM), 0);
    let ok = VIRTIO_CONFIG_S_FEATURES_OK as u8;
    // Without VERSION_1 (a legacy driver): refused.
    assert_eq!(d.negotiate(1 << VIRTIO_BLK_F_FLUSH) & ok, 0);
    // A feature we did not offer: refused.
    assert_eq!(
        d.negotiate((1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_F_ACCESS_PLATFORM)) & ok,
        0
    );
    // A proper subset: accepted and readable back; later feature writes are ignored.
    let want = (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_BLK_F_FLUSH);
    assert_ne!(d.negotiate(want) & ok, 0);
    assert_eq!(d.dev.driver_features(), want);
    d.write(DRIVER_FEATURE_SELECT, 4, 0);
    d.write(DRIVER_FEATURE, 4, 0);
    assert_eq!(d.dev.driver_features(), want);
    // No MSI-X: vectors always read "no vector"; one queue; device config holds capacity.
    assert_eq!(d.read(MSIX_CONFIG, 2), 0xffff);
    d.write(QUEUE_MSIX_VECTOR, 2, 0);
    assert_eq!(d.read(QUEUE_MSIX_VECTOR, 2), 0xffff);
    assert_eq!(d.read(NUM_QUEUES, 2), 1);
    assert_eq!(d.read(DEVICE_OFFSET, 8), SECTORS);
    assert_eq!(d.read(DEVICE_OFFSET + 4, 4), 0);
    assert_eq!(d.read(DEVICE_OFFSET + 12, 4), u64::from(QUEUE_MAX - 2));
    // A queue that does not exist has size 0.
    d.write(QUEUE_SELECT, 2, 1);
    assert_eq!(d.read(QUEUE_SIZE, 2), 0);
}

#[test]
fn read_write_flush_get_id_round_trip_through_the_queue() {
    let f = TempDisk::new(SECTORS);
    let mut d = Driver::new(&f, false);
    d.start();

    // IN: sectors 3..5 land in guest memory.
    let (st, (_, len)) = d.request(VIRTIO_BLK_T_IN, 3, 1024, W);
    assert_eq!((st, len), (S_OK, 1025));
    assert_eq!(d.bytes(BUF + 0x1000, 1024), pattern(3 * 512, 1024));
    assert_eq!(d.dev.isr(), ISR_QUEUE);
    // Reading the ISR clears it.
    assert_eq!(d.read(ISR_OFFSET, 1), u64::from(ISR_QUEUE));
    assert_eq!(d.dev.isr(), 0);

    // OUT: sector 10 gets new data, nothing else changes.
    let data: Vec<u8> = (0..512u32).map(|i| (i as u8) ^ 0x5a).collect();
    d.fill(BUF + 0x1000, &data);
    let (st, (_, len)) = d.request(VIRTIO_BLK_T_OUT, 10, 512, R);
    assert_eq!((st, len), (S_OK, 1));
    let mut want = pattern(0, (SECTORS * 512) as usize);
    want[10 * 512..11 * 512].copy_from_slice(&data);
    assert_eq!(f.contents(), want);

    // And reads back through IN.
    d.fill(BUF + 0x1000, &[0; 512]);
    assert_eq!(d.request(VIRTIO_BLK_T_IN, 10, 512, W).0, S_OK);
    assert_eq!(d.bytes(BUF + 0x1000, 512), data);

    // FLUSH: no data.
    assert_eq!(
        d.request(VIRTIO_BLK_T_FLUSH, 0, 0, W),
        (S_OK, (d.used(d.used_idx() - 1).0, 1))
    );

    // GET_ID: 20 bytes, NUL padded.
    let (st, (_, len)) = d.request(VIRTIO_BLK_T_GET_ID, 0, 20, W);
    assert_eq!((st, len), (S_OK, 21));
    let mut id = b"disk-serial-0".to_vec();
    id.resize(20, 0);
    assert_eq!(d.bytes(BUF + 0x1000, 20), id);

    // A data buffer split over several descriptors (scatter-gather) and a header split in two.
    d.header(BUF, VIRTIO_BLK_T_IN, 20);
    d.fill(BUF + 0x3000, &[0xee]);
    let before = d.used_idx();
    d.submit(&[
        (BUF, 6, R),
        (BUF + 6, 10, R),
        (BUF + 0x1000, 100, W),
        (BUF + 0x2000, 412, W),
        (BUF + 0x3000, 1, W),
    ]);
    assert_eq!(d.used(before).1, 513);
    assert_eq!(d.byte(BUF + 0x3000), S_OK);
    let mut got = d.bytes(BUF + 0x1000, 100);
    got.extend(d.bytes(BUF + 0x2000, 412));
    assert_eq!(got, pattern(20 * 512, 512));
}

#[test]
fn a_read_only_disk_advertises_ro_and_refuses_writes() {
    let f = TempDisk::new(SECTORS);
    let mut d = Driver::new(&f, true);
    assert_ne!(d.features() & (1 << VIRTIO_BLK_F_RO), 0);
    d.start();
    d.fill(BUF + 0x1000, &[0x11; 512]);
    let (st, (_, len)) = d.request(VIRTIO_BLK_T_OUT, 0, 512, R);
    assert_eq!((st, len), (S_IOERR, 1));
    assert_eq!(f.contents(), pattern(0, (SECTORS * 512) as usize));
    // Reads still work, and flush is harmless.
    assert_eq!(d.request(VIRTIO_BLK_T_IN, 0, 512, W).0, S_OK);
    assert_eq!(d.request(VIRTIO_BLK_T_FLUSH, 0, 0, W).0, S_OK);
}

#[test]
fn hostile_requests_get_an_error_status_and_never_touch_the_file() {
    let f = TempDisk::new(SECTORS);
    let original = f.contents();
    let mut d = Driver::new(&f, false);
    d.start();
    d.fill(BUF + 0x1000, &[0x66; 0x2000]);

    // Past the end of the disk, straddling it, and sector numbers that overflow.
    assert_eq!(d.request(VIRTIO_BLK_T_OUT, SECTORS, 512, R).0, S_IOERR);
    assert_eq!(d.request(VIRTIO_BLK_T_OUT, SECTORS - 1, 1024, R).0, S_IOERR);
    assert_eq!(d.request(VIRTIO_BLK_T_IN, SECTORS - 1, 1024, W).0, S_IOERR);
    assert_eq!(d.request(VIRTIO_BLK_T_OUT, u64::MAX, 512, R).0, S_IOERR);
    assert_eq!(
        d.request(VIRTIO_BLK_T_IN, u64::MAX / 512 + 1, 512, W).0,
        S_IOERR
    );
    // Lengths that are not whole sectors.
    assert_eq!(d.request(VIRTIO_BLK_T_OUT, 0, 100, R).0, S_IOERR);
    // Wrong directions: OUT data the device should write, IN data the device should read.
    assert_eq!(d.request(VIRTIO_BLK_T_OUT, 0, 512, W).0, S_IOERR);
    assert_eq!(d.request(VIRTIO_BLK_T_IN, 0, 512, R).0, S_IOERR);
    assert_eq!(d.request(VIRTIO_BLK_T_GET_ID, 0, 20, R).0, S_IOERR);
    // Unknown request type.
    assert_eq!(d.request(VIRTIO_BLK_T_DISCARD, 0, 16, R).0, S_UNSUPP);

    // A readable descriptor after a (here empty) writable one.
    d.header(BUF, VIRTIO_BLK_T_OUT, 0);
    d.fill(BUF + 0x3000, &[0xee]);
    d.submit(&[
        (BUF, 16, R),
        (BUF + 0x2000, 0, W),
        (BUF + 0x1000, 512, R),
        (BUF + 0x3000, 1, W),
    ]);
    assert_eq!(d.byte(BUF + 0x3000), S_IOERR);

    // Data buffers outside RAM: entirely, straddling its end, and with an address that
    // overflows when the length is added. For OUT the first buffer is valid: nothing may be
    // written before the whole chain is checked.
    for (addr, len) in [
        (0x1_0000_0000u64, 512u32),
        (RAM - 256, 512),
        (u64::MAX - 255, 512),
    ] {
        d.header(BUF, VIRTIO_BLK_T_OUT, 0);
        d.fill(BUF + 0x3000, &[0xee]);
        let before = d.used_idx();
        d.submit(&[
            (BUF, 16, R),
            (BUF + 0x1000, 512, R),
            (addr, len, R),
            (BUF + 0x3000, 1, W),
        ]);
        assert_eq!(d.used_idx(), before.wrapping_add(1));
        assert_eq!(d.byte(BUF + 0x3000), S_IOERR, "buffer {addr:#x}");
        d.header(BUF, VIRTIO_BLK_T_IN, 0);
        d.fill(BUF + 0x3000, &[0xee]);
        d.submit(&[(BUF, 16, R), (addr, len, W), (BUF + 0x3000, 1, W)]);
        assert_eq!(d.byte(BUF + 0x3000), S_IOERR, "buffer {addr:#x}");
    }

    // A header outside RAM / too short.
    d.fill(BUF + 0x3000, &[0xee]);
    d.submit(&[(RAM + 0x1000, 16, R), (BUF + 0x3000, 1, W)]);
    assert_eq!(d.byte(BUF + 0x3000), S_IOERR);
    d.fill(BUF + 0x3000, &[0xee]);
    d.submit(&[(BUF, 8, R), (BUF + 0x3000, 1, W)]);
    assert_eq!(d.byte(BUF + 0x3000), S_IOERR);

    // Lengths whose sum overflows 32 bits (virtio-queue stops the chain there).
    d.header(BUF, VIRTIO_BLK_T_IN, 0);
    d.fill(BUF + 0x3000, &[0xee]);
    let before = d.used_idx();
    d.submit(&[
        (BUF, 16, R),
        (BUF + 0x1000, u32::MAX, W),
        (BUF + 0x1000, u32::MAX, W),
        (BUF + 0x3000, 1, W),
    ]);
    assert_eq!(d.used_idx(), before.wrapping_add(1));
    assert_eq!(d.used(before).1, 0, "no bytes reported for a broken chain");

    // Descriptor loops: 0 → 1 → 0 …, and a writable descriptor pointing at itself (a GET_ID
    // that must fail rather than run on the truncated chain); then a next index past the
    // table.
    let before = d.used_idx();
    d.header(BUF, VIRTIO_BLK_T_IN, 0);
    d.put_desc(0, BUF, 16, VRING_DESC_F_NEXT as u16, 1);
    d.put_desc(1, BUF + 0x1000, 513, W | VRING_DESC_F_NEXT as u16, 0);
    d.publish(0);
    d.header(BUF + 0x100, VIRTIO_BLK_T_GET_ID, 0);
    d.fill(BUF + 0x2000, &[0x55; 21]);
    d.put_desc(2, BUF + 0x100, 16, VRING_DESC_F_NEXT as u16, 3);
    d.put_desc(3, BUF + 0x2000, 21, W | VRING_DESC_F_NEXT as u16, 3);
    d.publish(2);
    d.put_desc(4, BUF, 16, VRING_DESC_F_NEXT as u16, 999);
    d.publish(4);
    d.notify();
    assert_eq!(d.used_idx(), before.wrapping_add(3));
    assert_eq!(d.used(before).0, 0);
    assert_eq!(d.used(before.wrapping_add(1)), (2, 1));
    assert_eq!(d.byte(BUF + 0x2000 + 20), S_IOERR);
    assert_eq!(
        d.bytes(BUF + 0x2000, 20),
        vec![0x55; 20],
        "no data for a broken chain"
    );
    assert_eq!(d.used(before.wrapping_add(2)), (4, 0));
    d.next_desc = 5;

    // A chain with no writable status byte at all.
    let before = d.used_idx();
    d.submit(&[(BUF, 16, R), (BUF + 0x1000, 512, R)]);
    assert_eq!(d.used(before).1, 0);

    // Through all of this the device kept working and the file is untouched.
    assert_eq!(f.contents(), original);
    assert_eq!(d.request(VIRTIO_BLK_T_IN, 1, 512, W).0, S_OK);
    assert_eq!(d.bytes(BUF + 0x1000, 512), pattern(512, 512));
}

#[test]
fn a_queue_layout_outside_ram_is_not_enabled() {
    let f = TempDisk::new(SECTORS);
    let mut d = Driver::new(&f, false);
    let feats = d.features();
    d.negotiate(feats);
    d.write(QUEUE_SIZE, 2, u64::from(QSIZE));
    d.write(QUEUE_DESC, 8, RAM - 16);
    d.write(QUEUE_DRIVER, 8, AVAIL);
    d.write(QUEUE_DEVICE, 8, USED);
    d.write(QUEUE_ENABLE, 2, 1);
    assert_eq!(d.read(QUEUE_ENABLE, 2), 0);
    assert_ne!(d.dev.status() & VIRTIO_CONFIG_S_NEEDS_RESET as u8, 0);
    // Notifying anyway does nothing, even after DRIVER_OK.
    d.notify();
    d.write(DEVICE_STATUS, 1, 0x0f);
    d.notify();
    assert_eq!(d.used_idx(), 0);
    // Queue registers are ignored for queues that do not exist; an invalid size keeps the
    // previous one.
    d.write(DEVICE_STATUS, 1, 0);
    d.write(QUEUE_SIZE, 2, 100);
    assert_eq!(d.read(QUEUE_SIZE, 2), u64::from(QUEUE_MAX));
    d.write(QUEUE_SELECT, 2, 3);
    d.write(QUEUE_SIZE, 2, 8);
    d.write(QUEUE_ENABLE, 2, 1);
    d.write(QUEUE_SELECT, 2, 0);
    assert_eq!(d.read(QUEUE_SIZE, 2), u64::from(QUEUE_MAX));
    assert_eq!(d.read(QUEUE_ENABLE, 2), 0);
}

#[test]
fn reset_returns_to_power_on_and_stops_all_disk_writes() {
    let f = TempDisk::new(SECTORS);
    let mut d = Driver::new(&f, false);
    let fresh = (
        d.read(QUEUE_SIZE, 2),
        d.read(QUEUE_ENABLE, 2),
        d.read(QUEUE_DESC, 8),
        d.read(DEVICE_STATUS, 1),
    );
    d.start();
    d.fill(BUF + 0x1000, &[0x77; 512]);
    assert_eq!(d.request(VIRTIO_BLK_T_OUT, 5, 512, R).0, S_OK);
    let after_write = f.contents();
    assert_ne!(d.dev.isr(), 0);

    // Driver reset (status 0).
    d.write(DEVICE_STATUS, 1, 0);
    // Queue set up again but DRIVER_OK not yet given: notifications are not acted on.
    d.mem.write_obj(0u16, GuestAddress(USED + 2)).unwrap();
    let feats = d.features();
    d.negotiate(feats);
    d.write(QUEUE_SIZE, 2, u64::from(QSIZE));
    d.write(QUEUE_DESC, 8, DESC);
    d.write(QUEUE_DRIVER, 8, AVAIL);
    d.write(QUEUE_DEVICE, 8, USED);
    d.write(QUEUE_ENABLE, 2, 1);
    d.fill(BUF + 0x1000, &[0x88; 512]);
    d.header(BUF, VIRTIO_BLK_T_OUT, 7);
    d.submit(&[(BUF, 16, R), (BUF + 0x1000, 512, R), (BUF + 0x3000, 1, W)]);
    assert_eq!(d.used_idx(), 0);
    assert_eq!(f.contents(), after_write);
    d.write(DEVICE_STATUS, 1, 0);
    assert_eq!(
        (
            d.read(QUEUE_SIZE, 2),
            d.read(QUEUE_ENABLE, 2),
            d.read(QUEUE_DESC, 8),
            d.read(DEVICE_STATUS, 1),
        ),
        fresh
    );
    assert_eq!(d.read(QUEUE_DRIVER, 8), 0);
    assert_eq!(d.read(QUEUE_DEVICE, 8), 0);
    assert_eq!(d.dev.isr(), 0);
    assert_eq!(d.dev.driver_features(), 0);
    assert!(!d.dev.interrupt_pending());

    // A request left in the old ring, notified after the reset: not executed.
    d.fill(BUF + 0x1000, &[0x99; 512]);
    d.header(BUF, VIRTIO_BLK_T_OUT, 6);
    let used_before = d.used_idx();
    d.submit(&[(BUF, 16, R), (BUF + 0x1000, 512, R), (BUF + 0x3000, 1, W)]);
    assert_eq!(d.used_idx(), used_before);
    assert_eq!(f.contents(), after_write);

    // The PCI-level reset (system reboot) does the same and the device works again after a
    // fresh bring-up, starting from ring index 0.
    d.dev.reset();
    d.mem.write_obj(0u16, GuestAddress(AVAIL + 2)).unwrap();
    d.mem.write_obj(0u16, GuestAddress(USED + 2)).unwrap();
    d.avail_idx = 0;
    d.next_desc = 0;
    d.start();
    assert_eq!(d.request(VIRTIO_BLK_T_IN, 5, 512, W).0, S_OK);
    assert_eq!(d.bytes(BUF + 0x1000, 512), vec![0x77; 512]);
}

#[test]
fn oversized_requests_are_refused_before_any_io() {
    // A sparse 128 MiB disk, so only the per-request limit can refuse a 70 MiB read.
    let f = TempDisk::new(1);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f.0)
        .unwrap()
        .set_len(128 << 20)
        .unwrap();
    let mut d = Driver::new(&f, false);
    d.start();
    d.header(BUF, VIRTIO_BLK_T_IN, 0);
    d.fill(BUF + 0x3000, &[0xee]);
    // Five 14 MiB device-writable buffers over the same guest RAM: 70 MiB in all.
    let big = 14 << 20;
    let before = d.used_idx();
    d.submit(&[
        (BUF, 16, R),
        (0x10_0000 + 0x4000, big, W),
        (0x10_0000 + 0x4000, big, W),
        (0x10_0000 + 0x4000, big, W),
        (0x10_0000 + 0x4000, big, W),
        (0x10_0000 + 0x4000, big, W),
        (BUF + 0x3000, 1, W),
    ]);
    assert_eq!(d.used(before).1, 1);
    assert_eq!(d.byte(BUF + 0x3000), S_IOERR);
    // Just under the limit works (4 × 14 MiB = 56 MiB).
    d.fill(BUF + 0x3000, &[0xee]);
    d.submit(&[
        (BUF, 16, R),
        (0x10_0000 + 0x4000, big, W),
        (0x10_0000 + 0x4000, big, W),
        (0x10_0000 + 0x4000, big, W),
        (0x10_0000 + 0x4000, big, W),
        (BUF + 0x3000, 1, W),
    ]);
    assert_eq!(d.byte(BUF + 0x3000), S_OK);
    assert_eq!(d.used(before.wrapping_add(1)).1, 4 * big + 1);
}

#[test]
fn indirect_tables_the_driver_was_not_offered_cannot_escape_ram() {
    use virtio_bindings::virtio_ring::VRING_DESC_F_INDIRECT;
    let f = TempDisk::new(SECTORS);
    let original = f.contents();
    let mut d = Driver::new(&f, false);
    d.start();
    let indirect = VRING_DESC_F_INDIRECT as u16;
    // Table outside RAM, a table whose length is not a multiple of 16, and a nested indirect
    // descriptor inside a valid table.
    let before = d.used_idx();
    d.put_desc(0, RAM + 0x1000, 48, indirect, 0);
    d.publish(0);
    d.put_desc(1, BUF + 0x4000, 20, indirect, 0);
    d.publish(1);
    let table = BUF + 0x5000;
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&(BUF + 0x4000).to_le_bytes());
    b[8..12].copy_from_slice(&32u32.to_le_bytes());
    b[12..14].copy_from_slice(&indirect.to_le_bytes());
    d.fill(table, &b);
    d.put_desc(2, table, 16, indirect, 0);
    d.publish(2);
    d.next_desc = 3;
    d.notify();
    assert_eq!(d.used_idx(), before.wrapping_add(3));
    for n in 0..3 {
        assert_eq!(d.used(before.wrapping_add(n)).1, 0);
    }
    assert_eq!(f.contents(), original);
    // The queue still works.
    assert_eq!(d.request(VIRTIO_BLK_T_IN, 2, 512, W).0, S_OK);
}

/// xorshift64*: deterministic pseudo-random numbers for the garbage-ring test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

#[test]
fn garbage_rings_never_panic_and_never_write_a_read_only_disk() {
    let f = TempDisk::new(SECTORS);
    let original = f.contents();
    garbage_rounds(&f, true, 0x9e37_79b9_7f4a_7c15);
    assert_eq!(f.contents(), original);
}

#[test]
fn garbage_rings_never_grow_a_writable_disk() {
    for seed in [1u64, 0xdead_beef, 0x1234_5678_9abc_def0] {
        let f = TempDisk::new(SECTORS);
        garbage_rounds(&f, false, seed);
        assert_eq!(f.contents().len() as u64, SECTORS * 512, "seed {seed:#x}");
    }
}

/// 500 rounds of random descriptor tables and avail entries, with a proper read every fourth
/// round that must still succeed.
fn garbage_rounds(f: &TempDisk, readonly: bool, seed: u64) {
    let mut d = Driver::new(f, readonly);
    d.start();
    let mut rng = Rng(seed);
    let addrs = [
        BUF,
        BUF + 0x1000,
        RAM - 1,
        RAM - 16,
        RAM,
        u64::MAX - 7,
        0,
        DESC,
        USED,
    ];
    let lens = [0u32, 1, 15, 16, 512, 513, 4096, u32::MAX, 1 << 31];
    let kinds = [
        VIRTIO_BLK_T_IN,
        VIRTIO_BLK_T_OUT,
        VIRTIO_BLK_T_FLUSH,
        VIRTIO_BLK_T_GET_ID,
        0xdead,
    ];
    let sectors = [0u64, 1, SECTORS - 1, SECTORS, u64::MAX, u64::MAX / 512];
    let mut completed = 0u64;
    let mut good = 0;
    for round in 0..500 {
        for i in 0..QSIZE {
            let flags = (rng.next() & 0x7) as u16; // NEXT, WRITE, INDIRECT in any mix
            let next = if rng.next() % 8 == 0 {
                rng.next() as u16
            } else {
                (rng.next() % u64::from(QSIZE)) as u16
            };
            d.put_desc(i, rng.pick(&addrs), rng.pick(&lens), flags, next);
        }
        d.header(BUF, rng.pick(&kinds), rng.pick(&sectors));
        d.header(BUF + 0x1000, rng.pick(&kinds), rng.pick(&sectors));
        let n = 1 + rng.next() % 4;
        for _ in 0..n {
            let head = if rng.next() % 10 == 0 {
                rng.next() as u16
            } else {
                (rng.next() % u64::from(QSIZE)) as u16
            };
            d.publish(head);
        }
        let before = d.used_idx();
        d.notify();
        let done = d.used_idx().wrapping_sub(before);
        assert!(
            u64::from(done) <= n,
            "round {round}: {done} completions for {n}"
        );
        completed += u64::from(done);
        if d.dev.status() & VIRTIO_CONFIG_S_NEEDS_RESET as u8 != 0 {
            // An out-of-range head index makes the queue unusable: start over.
            d.write(DEVICE_STATUS, 1, 0);
            d.mem.write_obj(0u16, GuestAddress(AVAIL + 2)).unwrap();
            d.mem.write_obj(0u16, GuestAddress(USED + 2)).unwrap();
            d.avail_idx = 0;
            d.start();
        }
        if round % 4 == 0 {
            // A proper request among the garbage still works.
            d.next_desc = 0;
            let sector = rng.next() % SECTORS;
            let (st, (_, len)) = d.request(VIRTIO_BLK_T_IN, sector, 512, W);
            assert_eq!((st, len), (S_OK, 513), "round {round}");
            if readonly {
                assert_eq!(d.bytes(BUF + 0x1000, 512), pattern(sector * 512, 512));
            }
            good += 1;
        }
    }
    assert_eq!(good, 125);
    assert!(completed > 100, "only {completed} requests completed");
}

/// Publishes `n` one-sector OUT requests (request `i` writes sector `i` with byte `i + 1`,
/// its header, data and status in a 4 KiB block of its own) without notifying.
fn publish_writes(d: &mut Driver, n: u16) -> Vec<u64> {
    let mut status = Vec::new();
    for i in 0..n {
        let at = BUF + 0x1000 * u64::from(i);
        d.header(at, VIRTIO_BLK_T_OUT, u64::from(i));
        d.fill(at + 0x200, &[i as u8 + 1; 512]);
        d.fill(at + 0x400, &[0xee]);
        let head = 3 * i % QSIZE;
        for (k, &(addr, len, dir)) in [(at, 16, R), (at + 0x200, 512, R), (at + 0x400, 1, W)]
            .iter()
            .enumerate()
        {
            let idx = (head + k as u16) % QSIZE;
            let flags = dir | if k < 2 { VRING_DESC_F_NEXT as u16 } else { 0 };
            d.put_desc(idx, addr, len, flags, (idx + 1) % QSIZE);
        }
        d.publish(head);
        status.push(at + 0x400);
    }
    status
}

#[test]
fn several_requests_in_flight_complete_in_bounded_rounds_after_one_notify() {
    let f = TempDisk::new(SECTORS);
    let mut d = Driver::new(&f, false);
    d.start();
    // Five requests (15 of the 16 descriptors) in the ring at once, two per round.
    d.dev.io().set_budget(2);
    let rounds = d.dev.io().rounds();
    let status = publish_writes(&mut d, 5);
    d.notify();
    assert_eq!(d.used_idx(), 5, "every request completed");
    for at in &status {
        assert_eq!(d.byte(*at), S_OK);
    }
    // Independent requests run at once and complete in the order they finish: each head
    // once, each with its status byte counted.
    let mut used: Vec<(u32, u32)> = (0..5).map(|i| d.used(i)).collect();
    used.sort_unstable();
    let heads: Vec<(u32, u32)> = (0..5).map(|i| (3 * i % u32::from(QSIZE), 1)).collect();
    assert_eq!(used, heads);
    // 2 + 2 + 1: the thread gave up the queue between rounds and woke itself again.
    assert!(
        d.dev.io().rounds() - rounds >= 3,
        "rounds: {}",
        d.dev.io().rounds() - rounds
    );
    let disk = f.contents();
    for i in 0..5usize {
        assert_eq!(disk[i * 512..(i + 1) * 512], [i as u8 + 1; 512]);
    }
    assert_eq!(d.dev.isr(), ISR_QUEUE);
}

#[test]
fn a_paused_device_touches_neither_guest_memory_nor_the_disk_until_resumed() {
    let f = TempDisk::new(SECTORS);
    let before = f.contents();
    let mut d = Driver::new(&f, false);
    d.start();
    d.dev.pause();
    let status = publish_writes(&mut d, 3);
    d.notify();
    assert_eq!(d.used_idx(), 0);
    assert_eq!(d.byte(status[0]), 0xee, "status untouched");
    assert_eq!(f.contents(), before);
    assert_eq!(d.dev.isr(), 0);

    // Resumed: what was published meanwhile is served without another notify.
    d.dev.resume();
    assert!(d.dev.settle());
    assert_eq!(d.used_idx(), 3);
    assert_eq!(d.byte(status[2]), S_OK);
    assert_eq!(f.contents()[2 * 512], 3);
}

#[test]
fn a_reset_with_requests_queued_stops_the_thread_before_returning() {
    let f = TempDisk::new(SECTORS);
    let before = f.contents();
    let mut d = Driver::new(&f, false);
    d.start();
    d.dev.pause();
    publish_writes(&mut d, 4);
    d.notify();
    // The reset ends the pause too, but the queue is gone: nothing queued is ever run.
    d.dev.reset();
    d.dev.resume();
    assert!(d.dev.settle());
    assert_eq!(d.used_idx(), 0);
    assert_eq!(f.contents(), before);
    assert_eq!(d.read(DEVICE_STATUS, 1), 0);
}

#[test]
fn the_driver_is_told_not_to_notify_only_while_the_thread_works() {
    use virtio_bindings::virtio_ring::VRING_USED_F_NO_NOTIFY;
    let f = TempDisk::new(SECTORS);
    let mut d = Driver::new(&f, false);
    d.start();
    let flags = |d: &Driver| -> u16 { d.mem.read_obj(GuestAddress(USED)).unwrap() };
    publish_writes(&mut d, 3);
    d.notify();
    assert_eq!(d.used_idx(), 3);
    assert_eq!(
        flags(&d) & VRING_USED_F_NO_NOTIFY as u16,
        0,
        "idle again: notifications on"
    );
    // A ring whose avail index runs past its size yields nothing: the round ends (no spin)
    // and the next notify is still answered.
    d.mem.write_obj(0x7fffu16, GuestAddress(AVAIL + 2)).unwrap();
    d.notify();
    assert_eq!(d.used_idx(), 3);
}

#[test]
fn a_batch_runs_independent_requests_together_and_dependent_ones_in_ring_order() {
    let f = TempDisk::new(SECTORS);
    let mut d = Driver::new(&f, false);
    d.start();
    // Three writes to sectors 0..3, then a read of sector 1 (it must see write 1), then a
    // write over sector 0 again (after write 0), all in one notify.
    let status = publish_writes(&mut d, 3);
    let (rd, wr) = (BUF + 0x8000, BUF + 0x9000);
    d.header(rd, VIRTIO_BLK_T_IN, 1);
    d.fill(rd + 0x400, &[0xee]);
    d.header(wr, VIRTIO_BLK_T_OUT, 0);
    d.fill(wr + 0x200, &[0x99; 512]);
    d.fill(wr + 0x400, &[0xee]);
    for (head, at, dir) in [(9u16, rd, W), (12, wr, R)] {
        d.put_desc(head, at, 16, VRING_DESC_F_NEXT as u16, head + 1);
        d.put_desc(
            head + 1,
            at + 0x200,
            512,
            dir | VRING_DESC_F_NEXT as u16,
            head + 2,
        );
        d.put_desc(head + 2, at + 0x400, 1, W, 0);
        d.publish(head);
    }
    d.notify();
    assert_eq!(d.used_idx(), 5);
    for at in status.iter().chain([&(rd + 0x400), &(wr + 0x400)]) {
        assert_eq!(d.byte(*at), S_OK);
    }
    assert_eq!(
        d.bytes(rd + 0x200, 512),
        vec![2; 512],
        "the read saw write 1"
    );
    let disk = f.contents();
    assert_eq!(
        disk[..512],
        [0x99; 512],
        "the second write to sector 0 came last"
    );
    assert_eq!(disk[512..1024], [2; 512]);
    assert_eq!(disk[1024..1536], [3; 512]);
}

#[test]
fn requests_run_on_the_lane_workers_started_once_with_the_device() {
    let f = TempDisk::new(SECTORS);
    let mut d = Driver::new(&f, false);
    d.start();
    // Every lane has its worker before the first request (they start with the I/O thread).
    let t = std::time::Instant::now();
    while d.dev.io().workers_started() < super::disk::LANES && t.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(d.dev.io().workers_started(), super::disk::LANES);
    for round in 0..20u8 {
        let status = publish_writes(&mut d, 5);
        d.notify();
        for at in status {
            assert_eq!(d.byte(at), S_OK, "round {round}");
        }
    }
    assert_eq!(d.used_idx(), 100);
    assert_eq!(
        d.dev.io().workers_started(),
        super::disk::LANES,
        "100 requests started no thread"
    );
}

/// A writable disk of `SECTORS` whose every write fails on the host as `/dev/full`'s does
/// (`ENOSPC`, a file system that filled up); its reads give zeros.
fn full_disk() -> Disk {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/full")
        .unwrap();
    Disk::sized(file, SECTORS, false)
}

/// The device status register says nothing is wrong with the device (no NEEDS_RESET).
fn healthy(d: &mut Driver) -> bool {
    d.read(DEVICE_STATUS, 1) as u8 & VIRTIO_CONFIG_S_NEEDS_RESET as u8 == 0
}

/// A host write error (ENOSPC) completes that request with IOERR and one used element; the
/// I/O thread goes on serving (a read right after succeeds, a flood of failing writes all
/// complete), the device never asks for a reset, and every failure is counted.
#[test]
fn a_host_write_error_completes_the_request_with_ioerr_and_the_thread_carries_on() {
    let mut d = Driver::on(full_disk());
    d.start();
    d.fill(BUF + 0x1000, &[0x77; 4096]);
    let (st, (_, len)) = d.request(VIRTIO_BLK_T_OUT, 8, 4096, R);
    assert_eq!(
        (st, len),
        (S_IOERR, 1),
        "ENOSPC must be IOERR, nothing written back"
    );
    assert_eq!(d.dev.host_io_errors(), 1);
    // The thread still serves: a read of the same sectors works (zeros from /dev/full).
    d.fill(BUF + 0x1000, &[0xcc; 512]);
    assert_eq!(
        d.request(VIRTIO_BLK_T_IN, 8, 512, W),
        (S_OK, (d.used(d.used_idx() - 1).0, 513))
    );
    assert_eq!(d.bytes(BUF + 0x1000, 512), vec![0; 512]);
    // Many more failing writes (more than the log lets through per site): each completes.
    for i in 0..300u64 {
        assert_eq!(d.request(VIRTIO_BLK_T_OUT, i % SECTORS, 512, R).0, S_IOERR);
    }
    assert_eq!(d.dev.host_io_errors(), 301);
    // A flush the host refuses (fsync of a character device) is an IOERR too, and counted.
    assert_eq!(d.request(VIRTIO_BLK_T_FLUSH, 0, 0, W).0, S_IOERR);
    assert_eq!(d.dev.host_io_errors(), 302);
    assert!(
        healthy(&mut d),
        "a host error is the request's, not the device's"
    );
    assert_eq!(d.request(VIRTIO_BLK_T_GET_ID, 0, 20, W).0, S_OK);
    // What the operator sees in vm.counters.
    assert_eq!(
        PciDevice::counters(&d.dev),
        Some(crate::devices::DeviceCounters {
            name: "disk-serial-0".into(),
            values: vec![("host_io_errors", 302)],
        })
    );
}

/// A writable file whose I/O fails with `EIO` on every byte of `SECTORS`: `/proc/self/mem`
/// below the lowest address a process may map (`vm.mmap_min_addr`, 4 KiB at least), the
/// kernel's answer for unmapped memory. None when this host answers otherwise (an emulator's
/// /proc), said on stderr.
fn eio_disk() -> Option<Disk> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .ok()?;
    let probe = std::os::unix::fs::FileExt::write_at(&file, &[0u8; 512], 0);
    if probe.as_ref().err().and_then(|e| e.raw_os_error()) != Some(libc::EIO) {
        eprintln!("/proc/self/mem at 0 answered {probe:?}, not EIO: no EIO disk here");
        return None;
    }
    Some(Disk::sized(file, 8, false))
}

/// EIO (a failing disk) on reads and writes: IOERR for each, nothing copied into the guest's
/// buffer, the thread keeps serving, and a later request is tried afresh (so once the fault
/// clears, a retry succeeds: here on the same device, the sectors past the failing ones).
#[test]
fn eio_on_reads_and_writes_is_ioerr_and_the_device_keeps_working() {
    let Some(disk) = eio_disk() else {
        // The ppc64le build's tests run under qemu-user, whose /proc/self/mem is the
        // emulator's (guest address 0 is not unmapped there); natively this must work.
        if cfg!(target_arch = "powerpc64") {
            return;
        }
        panic!("/proc/self/mem gives EIO below mmap_min_addr on Linux");
    };
    let mut d = Driver::on(disk);
    d.start();
    d.fill(BUF + 0x1000, &[0x99; 512]);
    assert_eq!(d.request(VIRTIO_BLK_T_OUT, 0, 512, R).0, S_IOERR);
    assert_eq!(
        d.request(VIRTIO_BLK_T_IN, 1, 512, W),
        (S_IOERR, (d.used(d.used_idx() - 1).0, 1))
    );
    assert_eq!(
        d.bytes(BUF + 0x1000, 512),
        vec![0x99; 512],
        "a failed read writes no data"
    );
    assert_eq!(d.dev.host_io_errors(), 2);
    assert!(healthy(&mut d));
    // Requests the disk never has to touch still work.
    assert_eq!(d.request(VIRTIO_BLK_T_GET_ID, 0, 20, W).0, S_OK);
    // A range past the end is the guest's error, not the host's: not counted.
    assert_eq!(d.request(VIRTIO_BLK_T_IN, 8, 512, W).0, S_IOERR);
    assert_eq!(d.dev.host_io_errors(), 2);
}
