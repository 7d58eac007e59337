//! `/vdevice`: the PAPR virtual I/O bus, holding the hypervisor console.

use crate::description::MachineDescription;
use crate::error::Error;
use crate::writer::TreeWriter;

/// Unit address of the console, and the terminal number (`termno`) the guest passes to
/// H_PUT_TERM_CHAR / H_GET_TERM_CHAR: `hvc_vio` uses the node's `reg` as its vterm number.
/// The VMM's console hcalls should accept exactly this value.
pub const VTY_REG: u32 = 0x3000_0000;

/// `/vdevice/vty@30000000`.
pub fn vty_path() -> String {
    format!("/vdevice/vty@{VTY_REG:x}")
}

/// `/vdevice` (`device_type = "vdevice"`, `compatible = "IBM,vdevice"`, found by
/// `vio_bus_scan_register_devices()` through that path), one address cell (the unit address)
/// and no size. Like QEMU it is marked as an interrupt controller with two cells, so a child's
/// `interrupts` resolve to it; Linux's XICS irq domain matches any such node.
///
/// `vty@30000000`: the node **name** must be `vty` (the early console checks it), `compatible =
/// "hvterm1"` selects the plain hvc protocol in `hvc_vio`, `device_type = "serial"` like QEMU.
pub(crate) fn write(w: &mut TreeWriter, d: &MachineDescription) -> Result<(), Error> {
    let v = w.begin("vdevice")?;
    w.string("device_type", "vdevice")?;
    w.string("compatible", "IBM,vdevice")?;
    w.u32("#address-cells", 1)?;
    w.u32("#size-cells", 0)?;
    w.u32("#interrupt-cells", 2)?;
    w.null("interrupt-controller")?;
    let t = w.begin(&format!("vty@{VTY_REG:x}"))?;
    w.string("device_type", "serial")?;
    w.string("compatible", "hvterm1")?;
    w.u32("reg", VTY_REG)?;
    if let Some(irq) = d.vty_irq {
        // (interrupt number, 0 = edge/message-signalled as QEMU writes for VIO).
        w.cells("interrupts", &[irq, 0])?;
    }
    w.end(t)?;
    w.end(v)
}
