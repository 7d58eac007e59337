//! `/interrupt-controller`: the XICS presentation layer (ICP).

use crate::description::{InterruptController, MachineDescription};
use crate::error::Error;
use crate::writer::TreeWriter;

/// phandle of the interrupt controller: QEMU's value, for future PCI `interrupt-map`s.
pub const XICS_PHANDLE: u32 = 0x1111;

/// Linux (pseries `xics_init()` → `icp_hv_init()`) finds the ICP by `compatible =
/// "IBM,ppc-xicp"` (matched case-insensitively) or by `device_type =
/// "PowerPC-External-Interrupt-Presentation"`; the interrupt sources need no node on PAPR,
/// they are reached through the `ibm,set-xive`/`ibm,get-xive`/`ibm,int-on`/`ibm,int-off` RTAS
/// tokens. `ibm,interrupt-server-ranges = <0 n>`: servers 0..n, one per vCPU id.
/// `#interrupt-cells = 2` (number, sense) for the `interrupts` of devices. `#address-cells = 0`
/// is the usual value for an interrupt controller (no address part in interrupt-map entries);
/// `dtc` warns without it and Linux's `of_irq_parse_raw()` assumes 0 anyway.
pub(crate) fn write(w: &mut TreeWriter, d: &MachineDescription) -> Result<(), Error> {
    match d.interrupt_controller {
        InterruptController::KvmXics => {
            let n = w.begin("interrupt-controller")?;
            w.string("device_type", "PowerPC-External-Interrupt-Presentation")?;
            w.string("compatible", "IBM,ppc-xicp")?;
            w.null("interrupt-controller")?;
            w.cells("ibm,interrupt-server-ranges", &[0, d.topology.vcpus])?;
            w.u32("#interrupt-cells", 2)?;
            w.u32("#address-cells", 0)?;
            w.phandle(XICS_PHANDLE)?;
            w.end(n)
        }
    }
}
