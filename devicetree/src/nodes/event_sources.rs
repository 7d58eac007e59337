//! `/event-sources`: the interrupts behind which the platform signals RTAS events.
//!
//! Linux's `init_ras_IRQ()` (`arch/powerpc/platforms/pseries/ras.c`) looks up
//! `/event-sources/epow-events` and `/event-sources/hot-plug-events` by path and requests every
//! interrupt of each (`request_event_sources_irqs()` → `of_irq_get()`); their handlers fetch the
//! log with `check-exception`. As in QEMU, `/event-sources` is itself marked as an interrupt
//! controller with two cells, so the children's `interrupts` resolve to it (Linux's XICS irq
//! domain matches any such node), and `interrupt-ranges` lists each source as `(irq, 1)`.
//! Each child has `interrupts = <irq 0>`: 0 = edge (message-signalled), which is how the VMM
//! configures the XICS source, pulsing it once per queued log.

use crate::description::{EventSourceIrqs, MachineDescription};
use crate::error::Error;
use crate::writer::TreeWriter;

/// Node path of the EPOW (environmental and power warning) event source.
pub const EPOW_EVENTS_PATH: &str = "/event-sources/epow-events";
/// Node path of the hot-plug event source.
pub const HOTPLUG_EVENTS_PATH: &str = "/event-sources/hot-plug-events";

pub(crate) fn write(w: &mut TreeWriter, d: &MachineDescription) -> Result<(), Error> {
    let Some(EventSourceIrqs { epow, hotplug }) = d.event_sources else {
        return Ok(());
    };
    let n = w.begin("event-sources")?;
    w.null("interrupt-controller")?;
    w.u32("#interrupt-cells", 2)?;
    w.cells("interrupt-ranges", &[epow, 1, hotplug, 1])?;
    for (name, irq) in [("epow-events", epow), ("hot-plug-events", hotplug)] {
        let c = w.begin(name)?;
        w.cells("interrupts", &[irq, 0])?;
        w.end(c)?;
    }
    w.end(n)
}
