//! A PAPR PCI host bridge (PHB): one PCI bus (bus 0) of up to 32 single-function devices, a
//! 32-bit MMIO window, and four LSIs (INTA#–INTD#) wired to XICS interrupt numbers.
//!
//! The bridge plays the part of the firmware too: pseries Linux in an LPAR builds its PCI
//! devices from the device tree (`pSeries_pci_probe_mode()` answers `PCI_PROBE_DEVTREE` and the
//! kernel does not reassign resources), so the BARs must already be placed and programmed when
//! the kernel starts, and each device needs a child node (see [`Phb::description`]).
//!
//! Addresses: the guest sees the window at `cpu_base..cpu_base + size`; PCI bus addresses are
//! `pci_base..pci_base + size` (QEMU's layout: PCI `0x8000_0000` at CPU
//! `0x2000_8000_0000`, 2 GiB).

pub mod config;
pub mod ddw;
pub mod dma;
pub mod intx;
pub mod rtas;
pub mod tce;

#[cfg(test)]
mod dma_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use log::debug;

use crate::devices::PciDevice;
use config::CONFIG_SPACE_SIZE;
use dma::DmaWindows;
use intx::IntxLine;
use tce::{KernelTces, NoKernelTces};
use vmm_sys_util::eventfd::EventFd;

/// BUID of the first PHB (QEMU's `SPAPR_PCI_BASE_BUID`); PHB `n` has BUID + n.
pub const BASE_BUID: u64 = 0x0800_0000_2000_0000;
/// The first PHB's 32-bit window as QEMU places it.
pub const MEM32_PCI_BASE: u64 = 0x8000_0000;
pub const MEM32_CPU_BASE: u64 = 0x2000_8000_0000;
pub const MEM32_SIZE: u64 = 0x8000_0000;
/// The first PHB's (unused) IO window, described only because QEMU does.
pub const IO_CPU_BASE: u64 = 0x2000_0000_0000;
pub const IO_SIZE: u64 = 0x1_0000;
/// First XICS interrupt number of the first PHB's LSIs (QEMU's `SPAPR_IRQ_PCI_LSI`).
pub const LSI_BASE: u32 = 0x1200;
/// Slots (device numbers) on bus 0.
pub const SLOTS: usize = 32;

/// Drives an interrupt line. The machine implements it over `KVM_IRQ_LINE` (XICS source
/// `irq`, level-triggered).
pub trait IrqLine: Send + Sync {
    fn set_level(&self, irq: u32, level: bool);
}

/// Routes guest stores at a guest-physical address to an eventfd inside the hypervisor (the
/// machine implements it over `KVM_IOEVENTFD`): a `len`-byte store of `value` at `gpa`
/// signals `fd` and does not exit.
pub trait IoEvents: Send + Sync {
    fn register(&self, fd: &EventFd, gpa: u64, len: u32, value: u64) -> std::io::Result<()>;
    fn unregister(&self, fd: &EventFd, gpa: u64, len: u32, value: u64) -> std::io::Result<()>;
}

/// Where the PHB sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhbConfig {
    /// Which PHB of the machine (0 for the first): picks its LIOBNs ([`dma::liobn`]).
    pub index: u32,
    pub buid: u64,
    pub mem32_pci_base: u64,
    pub mem32_cpu_base: u64,
    pub mem32_size: u64,
    pub io_cpu_base: u64,
    pub io_size: u64,
    pub lsi_base: u32,
}

impl PhbConfig {
    /// PHB `index` laid out like QEMU's spapr PHBs (only index 0 is QEMU-identical; later
    /// ones get their own 4 GiB-aligned windows above it and their own LSI block).
    pub fn qemu_like(index: u32) -> Self {
        let i = u64::from(index);
        Self {
            index,
            buid: BASE_BUID + i,
            mem32_pci_base: MEM32_PCI_BASE,
            mem32_cpu_base: MEM32_CPU_BASE + i * 0x1_0000_0000,
            mem32_size: MEM32_SIZE,
            io_cpu_base: IO_CPU_BASE + i * IO_SIZE,
            io_size: IO_SIZE,
            lsi_base: LSI_BASE + 4 * index,
        }
    }

    /// The XICS interrupt a device in `slot` raises on `pin` (1 = INTA# … 4 = INTD#): the
    /// usual swizzle, `lsi_base + (slot + pin - 1) mod 4`, as in QEMU's `interrupt-map`.
    pub fn lsi_for(&self, slot: u8, pin: u8) -> u32 {
        let pin = pin.clamp(1, 4);
        self.lsi_base + ((u32::from(slot) + u32::from(pin) - 1) % 4)
    }
}

/// Errors of [`Phb::add_device`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhbError {
    #[error("PCI slot {0} is taken or out of range")]
    SlotUnavailable(u8),
    #[error("the 32-bit MMIO window is full (BAR of {size:#x} bytes)")]
    WindowFull { size: u64 },
}

struct Slot {
    dev: Box<dyn PciDevice>,
    /// The INTx line (`None` for a device without an interrupt pin).
    intx: Option<Arc<IntxLine>>,
    /// Where the device's doorbell is routed through [`IoEvents`] now: (gpa, len, value).
    doorbell: Option<(u64, u32, u64)>,
}

/// The host bridge and its bus-0 devices.
pub struct Phb {
    cfg: PhbConfig,
    slots: Vec<Option<Slot>>,
    /// Next free PCI bus address in the 32-bit window.
    next_bar: u64,
    irq: Arc<dyn IrqLine>,
    /// The DMA windows and their TCE tables.
    dma: DmaWindows,
    /// Where device doorbells become eventfds (none: every notify is an MMIO exit).
    io_events: Option<Arc<dyn IoEvents>>,
}

impl std::fmt::Debug for Phb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phb")
            .field("cfg", &self.cfg)
            .field(
                "slots",
                &self
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.is_some())
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A decoded MMIO hit: which device, which BAR, how far in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioTarget {
    pub slot: u8,
    pub bar: usize,
    pub offset: u64,
}

impl Phb {
    pub fn new(cfg: PhbConfig, irq: Arc<dyn IrqLine>) -> Self {
        Self {
            cfg,
            slots: (0..SLOTS).map(|_| None).collect(),
            next_bar: cfg.mem32_pci_base,
            irq,
            dma: DmaWindows::new(cfg.index, Arc::new(NoKernelTces)),
            io_events: None,
        }
    }

    /// Routes device doorbells through `events` from now on (and where decoding is enabled
    /// already, at once); each BAR move or decode change re-registers them.
    pub fn use_io_events(&mut self, events: Arc<dyn IoEvents>) {
        self.io_events = Some(events);
        for slot in 0..SLOTS as u8 {
            self.sync_doorbell(slot);
        }
    }

    /// Where the doorbell of the device in `slot` is routed, if it is: (gpa, len, value).
    pub fn doorbell_route(&self, slot: u8) -> Option<(u64, u32, u64)> {
        self.slots.get(usize::from(slot))?.as_ref()?.doorbell
    }

    /// The guest-physical address of `offset` into BAR `bar` of `dev` where the BAR lies
    /// inside the window (decoding on or not).
    fn bar_gpa(&self, dev: &dyn PciDevice, bar: usize, offset: u64, len: u64) -> Option<u64> {
        let c = dev.config();
        let base = c.bar_address(bar).filter(|b| *b != 0)?;
        let size = u64::from(c.bar_spec(bar)?.size);
        if offset.checked_add(len)? > size {
            return None;
        }
        let off = base
            .checked_sub(self.cfg.mem32_pci_base)?
            .checked_add(offset)?;
        (off.checked_add(len)? <= self.cfg.mem32_size).then(|| self.cfg.mem32_cpu_base + off)
    }

    /// Makes the doorbell routing of `slot` follow its BAR: unregistered where the BAR moved
    /// away, registered where it is now. Memory decoding is not looked at: a registration
    /// (and a KVM_IOEVENTFD deassign waits for an SRCU grace period, milliseconds nested)
    /// then survives the command-register writes of every boot and the reset, which puts
    /// the BAR back where it was placed. A store there while decoding is off reaches the
    /// device's eventfd instead of being dropped; it can only notify a queue the driver owns
    /// (none after a reset: the thread drops it). A registration that fails leaves the
    /// doorbell to MMIO exits (logged).
    fn sync_doorbell(&mut self, slot: u8) {
        let Some(events) = self.io_events.clone() else {
            return;
        };
        let Some(Some(s)) = self.slots.get(usize::from(slot)) else {
            return;
        };
        let want = s.dev.doorbell().and_then(|d| {
            let gpa = self.bar_gpa(s.dev.as_ref(), d.bar, d.offset, u64::from(d.len))?;
            Some((gpa, d.len, d.value))
        });
        if want == s.doorbell {
            return;
        }
        let Some(Some(s)) = self.slots.get_mut(usize::from(slot)) else {
            return;
        };
        let Some(d) = s.dev.doorbell() else {
            return;
        };
        if let Some((gpa, len, value)) = s.doorbell.take() {
            match events.unregister(d.fd, gpa, len, value) {
                Ok(()) => debug!("pci slot {slot}: doorbell at {gpa:#x} unregistered"),
                Err(e) => log::warn!("pci slot {slot}: doorbell at {gpa:#x} not unregistered: {e}"),
            }
        }
        if let Some((gpa, len, value)) = want {
            match events.register(d.fd, gpa, len, value) {
                Ok(()) => {
                    debug!("pci slot {slot}: doorbell at {gpa:#x} ({len} bytes) is an eventfd");
                    s.doorbell = want;
                }
                Err(e) => log::warn!(
                    "pci slot {slot}: doorbell at {gpa:#x} stays an MMIO exit (ioeventfd: {e})"
                ),
            }
        }
    }

    /// Keeps the TCE tables in KVM from now on where `kernel` can make them.
    pub fn use_kernel_tces(&mut self, kernel: Arc<dyn KernelTces>) {
        self.dma.set_kernel_tces(kernel);
    }

    /// The DMA windows.
    pub fn dma(&self) -> &DmaWindows {
        &self.dma
    }

    pub fn dma_mut(&mut self) -> &mut DmaWindows {
        &mut self.dma
    }

    pub fn config(&self) -> &PhbConfig {
        &self.cfg
    }

    /// Plugs `dev` into `slot` (function 0) and places its BARs in the 32-bit window, naturally
    /// aligned, in BAR order. The placement is part of the device's power-on state: a reset
    /// keeps it (the device-tree `assigned-addresses` the guest trusts describe it).
    pub fn add_device(&mut self, slot: u8, mut dev: Box<dyn PciDevice>) -> Result<(), PhbError> {
        let idx = usize::from(slot);
        if idx >= SLOTS || self.slots[idx].is_some() {
            return Err(PhbError::SlotUnavailable(slot));
        }
        let window_end = self.cfg.mem32_pci_base + self.cfg.mem32_size;
        let mut next = self.next_bar;
        let mut placed = Vec::new();
        for bar in 0..config::BAR_COUNT {
            let Some(spec) = dev.config().bar_spec(bar) else {
                continue;
            };
            let size = u64::from(spec.size);
            let start = next
                .checked_next_multiple_of(size)
                .filter(|s| s.checked_add(size).is_some_and(|e| e <= window_end))
                .ok_or(PhbError::WindowFull { size })?;
            placed.push((bar, start));
            next = start + size;
        }
        for (bar, start) in placed {
            // The window is below 4 GiB on the PCI side, so the address fits a 32-bit BAR.
            dev.config_mut().set_bar_address(bar, start as u32);
        }
        dev.config_mut().commit_power_on();
        self.next_bar = next;
        let pin = dev.config().read(config::INTERRUPT_PIN, 1) as u8;
        let intx = (pin != 0).then(|| {
            let line = Arc::new(IntxLine::new(self.irq.clone(), self.cfg.lsi_for(slot, pin)));
            dev.connect_intx(line.clone());
            line
        });
        self.slots[idx] = Some(Slot {
            dev,
            intx,
            doorbell: None,
        });
        self.sync_doorbell(slot);
        Ok(())
    }

    /// The device in `slot`, if any.
    pub fn device(&self, slot: u8) -> Option<&dyn PciDevice> {
        self.slots
            .get(usize::from(slot))?
            .as_ref()
            .map(|s| s.dev.as_ref())
    }

    pub fn device_mut(&mut self, slot: u8) -> Option<&mut (dyn PciDevice + 'static)> {
        self.slots
            .get_mut(usize::from(slot))?
            .as_mut()
            .map(|s| s.dev.as_mut())
    }

    /// Occupied slots, in order.
    /// The counters of every device on the bus that keeps any ([`PciDevice::counters`]).
    pub fn device_counters(&self) -> Vec<crate::devices::DeviceCounters> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|s| s.dev.counters())
            .collect()
    }

    pub fn occupied_slots(&self) -> impl Iterator<Item = u8> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u8)
    }

    /// Config read on bus `bus`, device/function `devfn`, register `reg`, `size` bytes.
    /// Absent devices (and other buses, and registers past the 256-byte header) read
    /// all-ones, like a master abort. The caller has validated size and alignment.
    pub fn config_read(&self, bus: u8, devfn: u8, reg: u32, size: usize) -> u32 {
        let all_ones = u32::MAX >> (32 - 8 * size as u32);
        let Some(dev) = self.function(bus, devfn) else {
            return all_ones;
        };
        if reg as usize + size > CONFIG_SPACE_SIZE {
            return all_ones;
        }
        dev.config().read(reg as usize, size)
    }

    /// Config write; writes to absent functions or past the header are dropped.
    pub fn config_write(&mut self, bus: u8, devfn: u8, reg: u32, size: usize, value: u32) {
        if self.function(bus, devfn).is_none() || reg as usize + size > CONFIG_SPACE_SIZE {
            debug!("pci: config write to absent {bus:02x}:{devfn:02x}.{reg:#x} dropped");
            return;
        }
        let slot = devfn >> 3;
        if let Some(dev) = self.device_mut(slot) {
            dev.config_mut().write(reg as usize, size, value);
        }
        self.update_irq(slot);
        // A BAR write moves the doorbell.
        self.sync_doorbell(slot);
    }

    fn function(&self, bus: u8, devfn: u8) -> Option<&dyn PciDevice> {
        if bus != 0 || devfn & 7 != 0 {
            return None;
        }
        self.device(devfn >> 3)
    }

    /// Decodes a guest-physical address inside the 32-bit window to the device BAR that
    /// claims it (memory decoding must be enabled in the device's command register).
    pub fn route(&self, gpa: u64, len: u64) -> Option<MmioTarget> {
        let off = gpa.checked_sub(self.cfg.mem32_cpu_base)?;
        let end = off.checked_add(len)?;
        if end > self.cfg.mem32_size {
            return None;
        }
        let pci = self.cfg.mem32_pci_base.checked_add(off)?;
        for (slot, s) in self.slots.iter().enumerate() {
            let Some(s) = s else { continue };
            let c = s.dev.config();
            if !c.memory_enabled() {
                continue;
            }
            for bar in 0..config::BAR_COUNT {
                let (Some(spec), Some(base)) = (c.bar_spec(bar), c.bar_address(bar)) else {
                    continue;
                };
                let size = u64::from(spec.size);
                if base == 0 {
                    continue;
                }
                if pci >= base && pci + len <= base + size {
                    return Some(MmioTarget {
                        slot: slot as u8,
                        bar,
                        offset: pci - base,
                    });
                }
            }
        }
        None
    }

    /// True when `gpa` falls in this PHB's MMIO window (whether or not a BAR claims it).
    pub fn in_window(&self, gpa: u64) -> bool {
        gpa.checked_sub(self.cfg.mem32_cpu_base)
            .is_some_and(|o| o < self.cfg.mem32_size)
    }

    /// An MMIO read exit at `gpa`. Returns false when no BAR claims it (the caller decides;
    /// inside the window the data is set to all-ones, like a master abort).
    pub fn mmio_read(&mut self, gpa: u64, data: &mut [u8]) -> bool {
        match self.route(gpa, data.len() as u64) {
            Some(t) => {
                if let Some(dev) = self.device_mut(t.slot) {
                    dev.mmio_read(t.bar, t.offset, data);
                }
                self.update_irq(t.slot);
                true
            }
            None => {
                if self.in_window(gpa) {
                    crate::guest_warn!("pci: unclaimed MMIO read at {gpa:#x}");
                    data.fill(0xff);
                    return true;
                }
                false
            }
        }
    }

    /// An MMIO write exit at `gpa`. Returns false when the address is outside the window.
    pub fn mmio_write(&mut self, gpa: u64, data: &[u8]) -> bool {
        match self.route(gpa, data.len() as u64) {
            Some(t) => {
                if let Some(dev) = self.device_mut(t.slot) {
                    dev.mmio_write(t.bar, t.offset, data);
                }
                self.update_irq(t.slot);
                true
            }
            None => {
                if self.in_window(gpa) {
                    crate::guest_warn!("pci: unclaimed MMIO write at {gpa:#x} dropped");
                    return true;
                }
                false
            }
        }
    }

    /// Recomputes the INTx level of `slot` and drives its LSI on a change.
    pub fn update_irq(&mut self, slot: u8) {
        let Some(Some(s)) = self.slots.get_mut(usize::from(slot)) else {
            return;
        };
        let Some(line) = &s.intx else {
            return;
        };
        line.set_disabled(s.dev.config().intx_disabled());
        let dev = &s.dev;
        let pending = line.refresh(|| dev.interrupt_pending());
        s.dev.config_mut().set_interrupt_status(pending);
    }

    /// The LSI of the device in `slot`, if it uses INTx.
    pub fn irq_of(&self, slot: u8) -> Option<u32> {
        let pin = self.device(slot)?.config().read(config::INTERRUPT_PIN, 1) as u8;
        (pin != 0).then(|| self.cfg.lsi_for(slot, pin))
    }

    /// Power-on reset (system-reboot, fadump reboot): every device resets, its header returns
    /// to the firmware-placed state, every LSI is lowered, and the DMA windows go back to the
    /// default window with every TCE unmapped.
    pub fn reset(&mut self) {
        self.dma.reset();
        for s in self.slots.iter_mut().flatten() {
            s.dev.reset();
            s.dev.config_mut().reset();
            if let Some(line) = &s.intx {
                line.reset();
            }
        }
        // The BARs are back where they were placed: a doorbell the guest moved follows.
        for slot in 0..SLOTS as u8 {
            self.sync_doorbell(slot);
        }
    }

    /// Stops every device's asynchronous work (their I/O threads finish the request in
    /// progress and start no other) until [`Phb::resume`] or [`Phb::reset`]: from return,
    /// nothing behind this PHB touches guest memory.
    pub fn pause(&mut self) {
        for s in self.slots.iter_mut().flatten() {
            s.dev.pause();
        }
    }

    /// Undoes [`Phb::pause`].
    pub fn resume(&mut self) {
        for s in self.slots.iter_mut().flatten() {
            s.dev.resume();
        }
    }

    /// Waits until every device finished the work of the notifications made so far; true if
    /// all did in time.
    pub fn settle(&self) -> bool {
        self.slots.iter().flatten().all(|s| s.dev.settle())
    }

    /// What the device tree must say about this PHB and its devices: its power-on DMA window
    /// (`ibm,dma-window`) and the DDW calls' tokens among the rest.
    pub fn description(&self) -> devicetree::pci::PhbDescription {
        use devicetree::pci::{
            BarAssignment, DdwTokens, DmaWindowDescription, PciDeviceDescription, PciWindow,
        };
        use firmware::rtas::RtasCall;
        let devices = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| {
                let c = s.as_ref()?.dev.config();
                let bars = (0..config::BAR_COUNT)
                    .filter_map(|bar| {
                        Some(BarAssignment {
                            register: (config::BAR0 + 4 * bar) as u8,
                            pci_addr: c.bar_address(bar)?,
                            size: u64::from(c.bar_spec(bar)?.size),
                        })
                    })
                    .collect();
                Some(PciDeviceDescription {
                    slot: slot as u8,
                    vendor_id: c.read(config::VENDOR_ID, 2),
                    device_id: c.read(config::DEVICE_ID, 2),
                    revision_id: c.read(config::REVISION_ID, 1),
                    class_code: c.read(config::REVISION_ID, 4) >> 8,
                    subsystem_vendor_id: c.read(config::SUBSYSTEM_VENDOR_ID, 2),
                    subsystem_id: c.read(config::SUBSYSTEM_ID, 2),
                    interrupt_pin: c.read(config::INTERRUPT_PIN, 1),
                    bars,
                })
            })
            .collect();
        devicetree::pci::PhbDescription {
            buid: self.cfg.buid,
            mem32: PciWindow {
                pci_addr: self.cfg.mem32_pci_base,
                cpu_addr: self.cfg.mem32_cpu_base,
                size: self.cfg.mem32_size,
            },
            io: PciWindow {
                pci_addr: 0,
                cpu_addr: self.cfg.io_cpu_base,
                size: self.cfg.io_size,
            },
            lsi_base: self.cfg.lsi_base,
            dma_window: {
                let g = self.dma.default_geometry();
                DmaWindowDescription {
                    liobn: g.liobn,
                    bus_addr: g.bus_offset,
                    size: g.size(),
                }
            },
            ddw: Some(DdwTokens {
                query: RtasCall::IbmQueryPeDmaWindow.token(),
                create: RtasCall::IbmCreatePeDmaWindow.token(),
                remove: RtasCall::IbmRemovePeDmaWindow.token(),
                reset: RtasCall::IbmResetPeDmaWindow.token(),
            }),
            devices,
        }
    }
}
