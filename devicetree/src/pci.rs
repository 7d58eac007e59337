//! What the device tree says about a PAPR PCI host bridge (PHB) and the devices on its bus:
//! the input of [`crate::build_with_pci`], rendered by `nodes::pci`.
//!
//! pseries Linux in an LPAR does not scan PCI config space to find devices: its probe mode is
//! "device tree" (`pSeries_pci_probe_mode()`), so every device needs a child node with its
//! IDs, its `reg` (config address + BAR sizes) and `assigned-addresses` (where the VMM, acting
//! as firmware, placed the BARs; the kernel keeps them). Config space is still read and
//! written through RTAS (`ibm,read-pci-config`/`ibm,write-pci-config`) for capabilities,
//! command register, etc.

use crate::error::Error;

/// An address window of the PHB: `size` bytes of PCI bus space at `pci_addr`, seen by the CPU
/// at `cpu_addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciWindow {
    pub pci_addr: u64,
    pub cpu_addr: u64,
    pub size: u64,
}

/// The PHB's default DMA window (`ibm,dma-window`): `size` bytes of I/O bus addresses from
/// `bus_addr`, translated by the TCE table named `liobn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaWindowDescription {
    pub liobn: u32,
    pub bus_addr: u64,
    pub size: u64,
}

/// RTAS tokens of the dynamic DMA window calls (`ibm,ddw-applicable`: query, create,
/// remove; `ibm,ddw-extensions`: reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DdwTokens {
    pub query: u32,
    pub create: u32,
    pub remove: u32,
    pub reset: u32,
}

/// A BAR as placed: config register (0x10, 0x14, …), PCI bus address, size.
/// Only 32-bit memory BARs are described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarAssignment {
    pub register: u8,
    pub pci_addr: u64,
    pub size: u64,
}

/// Function 0 of the device in `slot` on bus 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDeviceDescription {
    pub slot: u8,
    pub vendor_id: u32,
    pub device_id: u32,
    pub revision_id: u32,
    /// `0xCCSSPP`: class, sub-class, programming interface.
    pub class_code: u32,
    pub subsystem_vendor_id: u32,
    pub subsystem_id: u32,
    /// 0 = no INTx, 1..=4 = INTA#..INTD#.
    pub interrupt_pin: u32,
    pub bars: Vec<BarAssignment>,
}

/// One PHB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhbDescription {
    /// Bus unit id: the node's `reg` and unit address, and what the guest passes to the
    /// `ibm,*-pci-config` RTAS calls.
    pub buid: u64,
    /// 32-bit memory window (`ranges`, space code 0b10).
    pub mem32: PciWindow,
    /// I/O window (`ranges`, space code 0b01); QEMU describes one, nothing of ours uses it.
    pub io: PciWindow,
    /// XICS interrupt number of INTA# of slot 0; slot `s` pin `p` raises
    /// `lsi_base + (s + p - 1) % 4`.
    pub lsi_base: u32,
    /// The default DMA window. Every PHB needs one: a pseries kernel builds each device's
    /// IOMMU table from it (without one, and without `linux,iommu-off`, 6.12 dereferences a
    /// null table in `pci_dma_find()`).
    pub dma_window: DmaWindowDescription,
    /// The DDW calls, when the VMM implements them (`ibm,ddw-applicable`,
    /// `ibm,ddw-extensions`).
    pub ddw: Option<DdwTokens>,
    pub devices: Vec<PciDeviceDescription>,
}

impl PhbDescription {
    /// The node name, `pci@<buid>` like QEMU.
    pub fn node_name(&self) -> String {
        format!("pci@{:x}", self.buid)
    }

    /// XICS interrupt of `slot`'s `pin` (1..=4).
    pub fn lsi(&self, slot: u8, pin: u32) -> u32 {
        self.lsi_base
            .wrapping_add((u32::from(slot) + pin.clamp(1, 4) - 1) % 4)
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Pci(format!("{}: {m}", self.node_name())));
        if self.buid == 0 {
            return bad("BUID 0 means \"no BUID\" to Linux".into());
        }
        for (what, w) in [("mem32", self.mem32), ("io", self.io)] {
            if w.size == 0
                || w.pci_addr.checked_add(w.size).is_none()
                || w.cpu_addr.checked_add(w.size).is_none()
            {
                return bad(format!("{what} window {w:x?} is empty or wraps"));
            }
        }
        if self.mem32.pci_addr + self.mem32.size > 1 << 32 {
            return bad("the 32-bit window ends above 4 GiB on the PCI side".into());
        }
        let dw = self.dma_window;
        if dw.liobn == 0
            || dw.size == 0
            || dw.size % 4096 != 0
            || dw.bus_addr % 4096 != 0
            || dw.bus_addr.checked_add(dw.size).is_none()
        {
            return bad(format!("DMA window {dw:x?} is empty, unaligned or wraps"));
        }
        if self.lsi_base.checked_add(3).is_none() {
            return bad(format!("LSI base {:#x} wraps", self.lsi_base));
        }
        let mut seen = [false; 32];
        for d in &self.devices {
            let Some(s) = seen.get_mut(usize::from(d.slot)) else {
                return bad(format!("slot {} is not 0..31", d.slot));
            };
            if std::mem::replace(s, true) {
                return bad(format!("slot {} appears twice", d.slot));
            }
            if d.interrupt_pin > 4 {
                return bad(format!(
                    "slot {}: interrupt pin {}",
                    d.slot, d.interrupt_pin
                ));
            }
            for b in &d.bars {
                let in_window = b.pci_addr >= self.mem32.pci_addr
                    && b.pci_addr
                        .checked_add(b.size)
                        .is_some_and(|e| e <= self.mem32.pci_addr + self.mem32.size);
                if !(0x10..=0x24).contains(&b.register)
                    || b.register % 4 != 0
                    || !b.size.is_power_of_two()
                    || b.pci_addr % b.size != 0
                    || !in_window
                {
                    return bad(format!(
                        "slot {}: BAR {b:x?} is not a placed 32-bit BAR",
                        d.slot
                    ));
                }
            }
        }
        Ok(())
    }
}
