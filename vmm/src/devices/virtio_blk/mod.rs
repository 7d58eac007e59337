//! virtio-blk as a modern (virtio 1.x, non-transitional) virtio-pci function.
//!
//! PCI identity: vendor 0x1af4, device 0x1042 (0x1040 + virtio device id 2), revision 1,
//! class 0x018000 (mass storage, other), subsystem 0x1af4/0x0040. INTA#, no MSI-X: Linux's
//! virtio-pci falls back to INTx and reads the ISR register in its handler.
//!
//! BAR0 (32-bit memory, 16 KiB), one 4 KiB page per virtio structure, each announced by a
//! vendor-specific capability (`virtio_pci_cap`) in config space:
//!
//! | offset | structure |
//! |---|---|
//! | 0x0000 | common configuration (`virtio_pci_common_cfg`, 0x38 bytes) |
//! | 0x1000 | ISR status (one byte; reading it clears it and lowers INTx) |
//! | 0x2000 | device configuration (`virtio_blk_config`) |
//! | 0x3000 | notifications (`notify_off_multiplier` 4, queue 0 at offset 0) |
//!
//! One request queue of at most 256 entries, served by the device's own I/O thread
//! ([`io_thread`]): a write of the notify register wakes it (through `KVM_IOEVENTFD` when the
//! PHB routes the doorbell, else from the vCPU's MMIO exit), and the thread completes the
//! requests and raises INTx itself.
//!
//! Features offered: VERSION_1, BLK_F_FLUSH, BLK_F_SEG_MAX, and BLK_F_RO for read-only disks.
//! No ACCESS_PLATFORM: the guest puts guest-physical addresses in the rings (no IOMMU/TCE
//! window is needed).

pub mod disk;
pub mod io_thread;
mod lanes;
pub mod request;

#[cfg(test)]
mod tests;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use log::debug;
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_ID_BYTES,
};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
    VIRTIO_F_VERSION_1,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use crate::devices::phb::config::{BarSpec, ConfigSpace, PciId};
use crate::devices::phb::intx::IntxLine;
use crate::devices::{DeviceCounters, Doorbell, PciDevice};
use disk::Disk;
use io_thread::IoThread;

pub const VIRTIO_VENDOR: u16 = 0x1af4;
pub const VIRTIO_BLK_DEVICE_ID: u16 = 0x1042;
/// Largest queue the device offers.
pub const QUEUE_MAX: u16 = 256;

/// BAR0 layout.
pub const BAR: usize = 0;
pub const BAR_SIZE: u32 = 0x4000;
pub const COMMON_OFFSET: u64 = 0x0000;
pub const ISR_OFFSET: u64 = 0x1000;
pub const DEVICE_OFFSET: u64 = 0x2000;
pub const NOTIFY_OFFSET: u64 = 0x3000;
const REGION_LEN: u64 = 0x1000;
pub const NOTIFY_MULTIPLIER: u32 = 4;

/// `virtio_pci_cap.cfg_type` values.
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;
const PCI_CAP_ID_VNDR: u8 = 0x09;

/// `virtio_pci_common_cfg` register offsets.
pub mod common {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0c;
    pub const MSIX_CONFIG: u64 = 0x10;
    pub const NUM_QUEUES: u64 = 0x12;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const CONFIG_GENERATION: u64 = 0x15;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1a;
    pub const QUEUE_ENABLE: u64 = 0x1c;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1e;
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DRIVER: u64 = 0x28;
    pub const QUEUE_DEVICE: u64 = 0x30;
}

/// "No MSI-X vector" (`VIRTIO_MSI_NO_VECTOR`).
const NO_VECTOR: u16 = 0xffff;
/// ISR bits.
pub const ISR_QUEUE: u8 = 1;
pub const ISR_CONFIG: u8 = 2;

/// A virtio-blk function.
pub struct VirtioBlk {
    config: ConfigSpace,
    mem: GuestMemoryMmap,
    sectors: u64,
    readonly: bool,
    /// The thread that runs the requests (it owns the disk) and the state shared with it:
    /// ISR, the running queue, NEEDS_RESET from a broken ring.
    io: IoThread,
    /// The disk's count of requests the host's file failed ([`Disk::io_errors`]).
    io_errors: Arc<std::sync::atomic::AtomicU64>,
    /// GET_ID's serial as given (the device's name in `vm.counters`).
    name: String,
    /// The queue's configuration as the driver programs it (the thread runs a copy).
    queue: Queue,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    status: u8,
    queue_select: u16,
}

impl std::fmt::Debug for VirtioBlk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioBlk")
            .field("sectors", &self.sectors)
            .field("readonly", &self.readonly)
            .field("status", &self.status)
            .field("isr", &self.isr())
            .finish()
    }
}

/// A `virtio_pci_cap` (16 bytes) or `virtio_pci_notify_cap` (20 bytes).
fn virtio_cap(cfg_type: u8, offset: u64, len: u64, multiplier: Option<u32>) -> Vec<u8> {
    let cap_len: u8 = if multiplier.is_some() { 20 } else { 16 };
    let mut c = vec![PCI_CAP_ID_VNDR, 0, cap_len, cfg_type, BAR as u8, 0, 0, 0];
    c.extend_from_slice(&(offset as u32).to_le_bytes());
    c.extend_from_slice(&(len as u32).to_le_bytes());
    if let Some(m) = multiplier {
        c.extend_from_slice(&m.to_le_bytes());
    }
    c
}

impl VirtioBlk {
    /// A device over `disk`, reading and writing guest memory through `mem`; `serial` is what
    /// GET_ID returns (truncated to 20 bytes, NUL-padded). Starts the device's I/O thread.
    pub fn new(mem: GuestMemoryMmap, disk: Disk, serial: &str) -> std::io::Result<Self> {
        let id = PciId {
            vendor: VIRTIO_VENDOR,
            device: VIRTIO_BLK_DEVICE_ID,
            subsystem_vendor: VIRTIO_VENDOR,
            subsystem: 0x0040,
            revision: 1,
            class: 0x01_80_00,
        };
        let mut config = ConfigSpace::new(id, true, &[(BAR, BarSpec { size: BAR_SIZE })]);
        let caps = [
            virtio_cap(CAP_COMMON, COMMON_OFFSET, REGION_LEN, None),
            virtio_cap(CAP_ISR, ISR_OFFSET, REGION_LEN, None),
            virtio_cap(CAP_DEVICE, DEVICE_OFFSET, REGION_LEN, None),
            virtio_cap(
                CAP_NOTIFY,
                NOTIFY_OFFSET,
                REGION_LEN,
                Some(NOTIFY_MULTIPLIER),
            ),
        ];
        let mut at = 0x40;
        for c in caps {
            let ok = config.add_capability(at, &c);
            debug_assert!(ok, "virtio capabilities fit the header");
            at += c.len().next_multiple_of(4);
        }
        let mut s = [0u8; VIRTIO_BLK_ID_BYTES as usize];
        let n = serial.len().min(s.len());
        s[..n].copy_from_slice(&serial.as_bytes()[..n]);
        let (sectors, readonly) = (disk.sectors(), disk.readonly());
        let io_errors = disk.io_error_counter();
        let io = IoThread::spawn(mem.clone(), disk, s, format!("blk-{serial}"))?;
        Ok(Self {
            config,
            mem,
            sectors,
            readonly,
            io,
            io_errors,
            name: serial.to_string(),
            // QUEUE_MAX is a power of two ≤ 32768, which `Queue::new` accepts.
            queue: Queue::new(QUEUE_MAX).expect("valid queue size"),
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            status: 0,
            queue_select: 0,
        })
    }

    /// Requests the host's file failed so far (EIO, ENOSPC, ...), each completed with
    /// `VIRTIO_BLK_S_IOERR`.
    pub fn host_io_errors(&self) -> u64 {
        self.io_errors.load(Ordering::Relaxed)
    }

    /// Features offered to the driver.
    pub fn device_features(&self) -> u64 {
        let mut f =
            (1u64 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_BLK_F_FLUSH) | (1 << VIRTIO_BLK_F_SEG_MAX);
        if self.readonly {
            f |= 1 << VIRTIO_BLK_F_RO;
        }
        f
    }

    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// The device status register (NEEDS_RESET included when the I/O thread found the ring
    /// broken).
    pub fn status(&self) -> u8 {
        if self.io.shared().broken.load(Ordering::SeqCst) {
            self.status | VIRTIO_CONFIG_S_NEEDS_RESET as u8
        } else {
            self.status
        }
    }

    pub fn isr(&self) -> u8 {
        self.io.shared().isr.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until the requests of every notify so far are done; true if they are.
    pub fn settle(&self) -> bool {
        self.io.settle()
    }

    /// The device's I/O thread.
    pub fn io(&self) -> &IoThread {
        &self.io
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// `virtio_blk_config`: capacity (le64, sectors) at 0, seg_max (le32) at 12; the rest 0.
    fn device_config(&self) -> [u8; 0x3c] {
        let mut c = [0u8; 0x3c];
        c[0..8].copy_from_slice(&self.sectors.to_le_bytes());
        c[12..16].copy_from_slice(&u32::from(QUEUE_MAX - 2).to_le_bytes());
        c
    }

    fn reset_device(&mut self) {
        // The thread first: from here it touches neither guest memory nor the disk.
        self.io.deactivate();
        self.queue.reset();
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.driver_features = 0;
        self.status = 0;
        self.queue_select = 0;
    }

    fn read_common(&self, off: u64, len: usize) -> u64 {
        use common::*;
        let q = self.queue_select == 0;
        let v: u64 = match (off, len) {
            (DEVICE_FEATURE_SELECT, 4) => self.device_feature_select.into(),
            (DEVICE_FEATURE, 4) => match self.device_feature_select {
                0 => self.device_features() & 0xffff_ffff,
                1 => self.device_features() >> 32,
                _ => 0,
            },
            (DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select.into(),
            (DRIVER_FEATURE, 4) => match self.driver_feature_select {
                0 => self.driver_features & 0xffff_ffff,
                1 => self.driver_features >> 32,
                _ => 0,
            },
            (MSIX_CONFIG, 2) | (QUEUE_MSIX_VECTOR, 2) => NO_VECTOR.into(),
            (NUM_QUEUES, 2) => 1,
            (DEVICE_STATUS, 1) => self.status().into(),
            (CONFIG_GENERATION, 1) => 0,
            (QUEUE_SELECT, 2) => self.queue_select.into(),
            (QUEUE_SIZE, 2) if q => self.queue.size().into(),
            (QUEUE_ENABLE, 2) if q => u64::from(self.queue.ready()),
            (QUEUE_NOTIFY_OFF, 2) => 0,
            (QUEUE_DESC, 8) if q => self.queue.desc_table(),
            (QUEUE_DRIVER, 8) if q => self.queue.avail_ring(),
            (QUEUE_DEVICE, 8) if q => self.queue.used_ring(),
            (QUEUE_DESC | QUEUE_DRIVER | QUEUE_DEVICE, 4) if q => self.queue_addr(off),
            (o, 4) if q && matches!(o, 0x24 | 0x2c | 0x34) => self.queue_addr(o - 4) >> 32,
            // Registers of queues that do not exist read as 0 (queue_size 0 = no queue).
            (QUEUE_SIZE | QUEUE_ENABLE, 2) | (QUEUE_DESC | QUEUE_DRIVER | QUEUE_DEVICE, _) => 0,
            (0x24 | 0x2c | 0x34, 4) => 0,
            _ => {
                debug!("virtio-blk: common cfg read {off:#x}/{len} ignored");
                0
            }
        };
        v & (u64::MAX >> (64 - 8 * len as u32))
    }

    fn queue_addr(&self, off: u64) -> u64 {
        match off {
            common::QUEUE_DESC => self.queue.desc_table() & 0xffff_ffff,
            common::QUEUE_DRIVER => self.queue.avail_ring() & 0xffff_ffff,
            _ => self.queue.used_ring() & 0xffff_ffff,
        }
    }

    fn write_common(&mut self, off: u64, len: usize, v: u64) {
        use common::*;
        let q = self.queue_select == 0;
        // Queue layout may only change while the queue is disabled (virtio 4.1.4.3.2).
        let q_writable = q && !self.queue.ready();
        let lo = Some(v as u32);
        let hi = Some((v >> 32) as u32);
        match (off, len) {
            (DEVICE_FEATURE_SELECT, 4) => self.device_feature_select = v as u32,
            (DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select = v as u32,
            (DRIVER_FEATURE, 4) => {
                if self.status & VIRTIO_CONFIG_S_FEATURES_OK as u8 != 0 {
                    crate::guest_warn!(
                        "virtio-blk: driver features written after FEATURES_OK, ignored"
                    );
                    return;
                }
                match self.driver_feature_select {
                    0 => {
                        self.driver_features =
                            (self.driver_features & !0xffff_ffff) | (v & 0xffff_ffff)
                    }
                    1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (v << 32),
                    _ => {}
                }
            }
            (MSIX_CONFIG, 2) | (QUEUE_MSIX_VECTOR, 2) => {} // no MSI-X: always NO_VECTOR
            (DEVICE_STATUS, 1) => self.write_status(v as u8),
            (QUEUE_SELECT, 2) => self.queue_select = v as u16,
            (QUEUE_SIZE, 2) if q_writable => self.queue.set_size(v as u16),
            (QUEUE_ENABLE, 2) if q_writable && v == 1 => self.enable_queue(),
            (QUEUE_DESC, 8) if q_writable => self.queue.set_desc_table_address(lo, hi),
            (QUEUE_DRIVER, 8) if q_writable => self.queue.set_avail_ring_address(lo, hi),
            (QUEUE_DEVICE, 8) if q_writable => self.queue.set_used_ring_address(lo, hi),
            (QUEUE_DESC, 4) if q_writable => self.queue.set_desc_table_address(lo, None),
            (QUEUE_DRIVER, 4) if q_writable => self.queue.set_avail_ring_address(lo, None),
            (QUEUE_DEVICE, 4) if q_writable => self.queue.set_used_ring_address(lo, None),
            (0x24, 4) if q_writable => self.queue.set_desc_table_address(None, lo),
            (0x2c, 4) if q_writable => self.queue.set_avail_ring_address(None, lo),
            (0x34, 4) if q_writable => self.queue.set_used_ring_address(None, lo),
            _ => crate::guest_warn!("virtio-blk: common cfg write {off:#x}/{len} = {v:#x} ignored"),
        }
    }

    fn enable_queue(&mut self) {
        self.queue.set_ready(true);
        if !self.queue.is_valid(&self.mem) {
            crate::guest_warn!(
                "virtio-blk: queue enabled with an invalid layout (size {}, desc {:#x}, avail {:#x}, used {:#x})",
                self.queue.size(),
                self.queue.desc_table(),
                self.queue.avail_ring(),
                self.queue.used_ring()
            );
            self.queue.set_ready(false);
            self.needs_reset();
            return;
        }
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK as u8 != 0 {
            self.start_queue();
        }
    }

    fn needs_reset(&mut self) {
        self.status |= VIRTIO_CONFIG_S_NEEDS_RESET as u8;
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK as u8 != 0 {
            self.io.shared().isr.fetch_or(ISR_CONFIG, Ordering::SeqCst);
            self.io.shared().refresh_intx();
        }
    }

    /// Hands the ready queue to the I/O thread (DRIVER_OK given, nothing broken).
    fn start_queue(&mut self) {
        if self.queue.ready() && self.status() & VIRTIO_CONFIG_S_NEEDS_RESET as u8 == 0 {
            match Queue::try_from(self.queue.state()) {
                Ok(q) => {
                    debug!("virtio-blk: queue of {} entries running", q.size());
                    self.io.activate(q);
                }
                // The layout was checked when the queue was enabled.
                Err(e) => {
                    crate::guest_warn!("virtio-blk: queue not started: {e}");
                    self.needs_reset();
                }
            }
        }
    }

    fn write_status(&mut self, v: u8) {
        if v == 0 {
            debug!("virtio-blk: reset");
            self.reset_device();
            return;
        }
        let features_ok = VIRTIO_CONFIG_S_FEATURES_OK as u8;
        let mut v = v;
        if v & features_ok != 0 && self.status & features_ok == 0 {
            let unknown = self.driver_features & !self.device_features();
            let version_1 = self.driver_features & (1 << VIRTIO_F_VERSION_1) != 0;
            if unknown != 0 || !version_1 {
                crate::guest_warn!(
                    "virtio-blk: refusing features {:#x} (unknown {unknown:#x}, VERSION_1 {version_1})",
                    self.driver_features
                );
                v &= !features_ok;
            }
        }
        let driver_ok = VIRTIO_CONFIG_S_DRIVER_OK as u8;
        let starts = v & driver_ok != 0 && self.status & driver_ok == 0;
        // NEEDS_RESET is the device's to set; the driver cannot clear it but by a reset.
        self.status = v | (self.status & VIRTIO_CONFIG_S_NEEDS_RESET as u8);
        self.io
            .shared()
            .driver_ok
            .store(self.status & driver_ok != 0, Ordering::SeqCst);
        if starts {
            self.start_queue();
        }
    }
}

fn read_le(data: &[u8]) -> Option<u64> {
    if !matches!(data.len(), 1 | 2 | 4 | 8) {
        return None;
    }
    let mut b = [0u8; 8];
    b[..data.len()].copy_from_slice(data);
    Some(u64::from_le_bytes(b))
}

impl PciDevice for VirtioBlk {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    fn mmio_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if bar != BAR || !matches!(data.len(), 1 | 2 | 4 | 8) {
            return;
        }
        let len = data.len();
        match offset {
            o if o < ISR_OFFSET => {
                let v = self.read_common(o - COMMON_OFFSET, len);
                data.copy_from_slice(&v.to_le_bytes()[..len]);
            }
            ISR_OFFSET => {
                // Read-to-clear; the PHB lowers INTx after this access.
                data[0] = self.io.shared().isr.swap(0, Ordering::SeqCst);
            }
            o if o < DEVICE_OFFSET => {}
            o if o < NOTIFY_OFFSET => {
                let cfg = self.device_config();
                let start = (o - DEVICE_OFFSET) as usize;
                if let Some(src) = start.checked_add(len).and_then(|end| cfg.get(start..end)) {
                    data.copy_from_slice(src);
                }
            }
            _ => {}
        }
    }

    fn mmio_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        let Some(v) = read_le(data) else {
            crate::guest_warn!("virtio-blk: {}-byte MMIO write ignored", data.len());
            return;
        };
        if bar != BAR {
            return;
        }
        match offset {
            o if o < ISR_OFFSET => self.write_common(o - COMMON_OFFSET, data.len(), v),
            o if (NOTIFY_OFFSET..NOTIFY_OFFSET + REGION_LEN).contains(&o) => {
                // Queue 0's notify address is the start of the region; the value written is
                // the queue index.
                if o == NOTIFY_OFFSET && v & 0xffff == 0 {
                    self.io.kick();
                } else {
                    crate::guest_warn!(
                        "virtio-blk: notify of unknown queue (offset {o:#x}, value {v:#x})"
                    );
                }
            }
            _ => debug!("virtio-blk: write to read-only region at {offset:#x} ignored"),
        }
    }

    fn interrupt_pending(&self) -> bool {
        self.isr() != 0
    }

    fn reset(&mut self) {
        self.reset_device();
    }

    fn connect_intx(&mut self, line: Arc<IntxLine>) {
        self.io.connect_intx(line);
    }

    /// Queue 0's notify: Linux writes the queue index as 16 bits (`iowrite16`).
    fn doorbell(&self) -> Option<Doorbell<'_>> {
        Some(Doorbell {
            bar: BAR,
            offset: NOTIFY_OFFSET,
            len: 2,
            value: 0,
            fd: self.io.kick_fd(),
        })
    }

    fn pause(&mut self) {
        self.io.pause();
    }

    fn resume(&mut self) {
        self.io.resume();
    }

    fn settle(&self) -> bool {
        self.io.settle()
    }

    fn counters(&self) -> Option<DeviceCounters> {
        Some(DeviceCounters {
            name: self.name.clone(),
            values: vec![("host_io_errors", self.host_io_errors())],
        })
    }
}
