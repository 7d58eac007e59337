//! `/pci@<buid>`: a PAPR PCI host bridge and one child node per device on its bus.
//!
//! Read by Linux's `pSeries_discover_phbs()` (any root child with `device_type = "pci"`):
//! `reg` → the BUID used in the config-space RTAS calls, `bus-range`, `ranges` (the windows,
//! parsed by `pci_process_bridge_OF_ranges()`), then `of_scan_bus()` builds the devices from
//! the children: `reg` (devfn), `vendor-id`/`device-id`/`class-code`/…, `assigned-addresses`
//! (the BARs). A child's `interrupts = <pin>` is translated through the PHB's
//! `interrupt-map` (masked by `interrupt-map-mask`: device number and pin) to an XICS source,
//! level-triggered (second XICS cell 1).
//!
//! Compared with QEMU 11.1's node (reference run): same name, `compatible`, `device_type`,
//! `reg`, cell counts, `bus-range`, `ibm,pci-config-space-type`, `used-by-rtas`, the IO and
//! 32-bit `ranges`, the same `interrupt-map` shape, and the same DMA properties:
//! `ibm,#dma-address-cells`/`ibm,#dma-size-cells` = 2 and `ibm,dma-window` = <LIOBN, bus
//! address (2 cells), size (2 cells)> (read by `of_parse_dma_window()`), and for dynamic DMA
//! windows `ibm,ddw-applicable` = <query, create, remove tokens> and `ibm,ddw-extensions` =
//! <2, reset token, 1> (two extensions: `ibm,reset-pe-dma-window`, and 1 = the query answers
//! in six cells with a 64-bit largest block; read by `enable_ddw()`, `query_ddw()` and
//! `ddw_read_ext()`). Left out: the 64-bit MMIO window (no device uses it) and the
//! dynamic-reconfiguration (`ibm,drc-*`) properties (no hot-plug). MSI: `ibm,pe-total-#msi`
//! is 0 (QEMU offers 0xd00), see [`write`].

use crate::error::Error;
use crate::pci::{PciDeviceDescription, PhbDescription};
use crate::writer::TreeWriter;
use crate::XICS_PHANDLE;

/// Space codes of the first cell of a PCI address (IEEE 1275 PCI binding).
const SS_CONFIG: u32 = 0x0000_0000;
const SS_IO: u32 = 0x0100_0000;
const SS_MEM32: u32 = 0x0200_0000;
/// "Non-relocatable" bit, set in `assigned-addresses`.
const NON_RELOCATABLE: u32 = 0x8000_0000;

fn hi_lo(v: u64) -> [u32; 2] {
    [(v >> 32) as u32, v as u32]
}

/// `ibm,pe-total-#msi = <0>`: no MSIs. The PHB then gets its own (empty) MSI domain; without
/// the property the bus resolves its MSI domain to the XICS one, and virtio-pci's first MSI-X
/// attempt oopses in `pci_msi_domain_supports()` (6.12, seen in the nested run). With it the
/// attempt fails cleanly (our devices have no MSI-X capability) and the driver uses INTx, i.e.
/// the LSI of the `interrupt-map`.
pub(crate) fn write(w: &mut TreeWriter, phb: &PhbDescription) -> Result<(), Error> {
    let n = w.begin(&phb.node_name())?;
    w.string("device_type", "pci")?;
    w.string("compatible", "IBM,Logical_PHB")?;
    w.u32("ibm,pe-total-#msi", 0)?;
    w.u64s("reg", &[phb.buid, 0])?;
    w.u32("#address-cells", 3)?;
    w.u32("#size-cells", 2)?;
    w.u32("#interrupt-cells", 1)?;
    w.cells("bus-range", &[0, 0xff])?;
    w.u32("ibm,pci-config-space-type", 1)?;
    w.null("used-by-rtas")?;
    let dw = phb.dma_window;
    w.u32("ibm,#dma-address-cells", 2)?;
    w.u32("ibm,#dma-size-cells", 2)?;
    let mut window = vec![dw.liobn];
    window.extend(hi_lo(dw.bus_addr));
    window.extend(hi_lo(dw.size));
    w.cells("ibm,dma-window", &window)?;
    if let Some(t) = phb.ddw {
        w.cells("ibm,ddw-applicable", &[t.query, t.create, t.remove])?;
        w.cells("ibm,ddw-extensions", &[2, t.reset, 1])?;
    }

    let mut ranges = Vec::with_capacity(14);
    for (code, win) in [(SS_IO, phb.io), (SS_MEM32, phb.mem32)] {
        ranges.push(code);
        ranges.extend(hi_lo(win.pci_addr));
        ranges.extend(hi_lo(win.cpu_addr));
        ranges.extend(hi_lo(win.size));
    }
    w.cells("ranges", &ranges)?;

    // Every slot and pin, like QEMU, so the map does not depend on which slots are used.
    w.cells("interrupt-map-mask", &[0xf800, 0, 0, 0xffff_ffff])?;
    let mut map = Vec::with_capacity(32 * 4 * 7);
    for slot in 0u8..32 {
        for pin in 1..=4 {
            map.extend([
                u32::from(slot) << 11,
                0,
                0,
                pin,
                XICS_PHANDLE,
                phb.lsi(slot, pin),
                1,
            ]);
        }
    }
    w.cells("interrupt-map", &map)?;

    for d in &phb.devices {
        write_device(w, d)?;
    }
    w.end(n)
}

fn write_device(w: &mut TreeWriter, d: &PciDeviceDescription) -> Result<(), Error> {
    let devfn = u32::from(d.slot) << 3;
    let n = w.begin(&format!(
        "pci{:x},{:x}@{:x}",
        d.vendor_id, d.device_id, d.slot
    ))?;
    w.u32("vendor-id", d.vendor_id)?;
    w.u32("device-id", d.device_id)?;
    w.u32("revision-id", d.revision_id)?;
    w.u32("class-code", d.class_code)?;
    w.u32("subsystem-vendor-id", d.subsystem_vendor_id)?;
    w.u32("subsystem-id", d.subsystem_id)?;
    if d.interrupt_pin != 0 {
        w.u32("interrupts", d.interrupt_pin)?;
    }
    let mut reg = vec![SS_CONFIG | devfn << 8, 0, 0, 0, 0];
    let mut assigned = Vec::new();
    for b in &d.bars {
        let phys_hi = SS_MEM32 | devfn << 8 | u32::from(b.register);
        reg.extend([phys_hi, 0, 0]);
        reg.extend(hi_lo(b.size));
        assigned.extend([NON_RELOCATABLE | phys_hi]);
        assigned.extend(hi_lo(b.pci_addr));
        assigned.extend(hi_lo(b.size));
    }
    w.cells("reg", &reg)?;
    if !assigned.is_empty() {
        w.cells("assigned-addresses", &assigned)?;
    }
    w.end(n)
}
