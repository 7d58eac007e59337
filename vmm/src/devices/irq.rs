//! PCI interrupt lines into KVM's in-kernel XICS.

use crate::devices::phb::{IrqLine, Phb};
use crate::error::{kvm_err, Error};
use crate::kvm::bindings::*;
use crate::kvm::{DeviceFd, VmFd};
use log::{debug, warn};
use std::sync::atomic::Ordering;

/// PCI LSIs over `KVM_IRQ_LINE`: with the in-kernel XICS the line number is the XICS
/// source number, and the source is level-sensitive (see [`configure_lsis`]).
///
/// The disks' I/O threads raise their completions through this too, not through a
/// `KVM_IRQFD`: the ioctl may be called from any thread and ends in the same `kvm_set_irq`
/// an irqfd would (book3s XICS maps GSI = source number one to one), so no vCPU takes part
/// either way. An irqfd is an edge (assert, deassert at once) and a level-sensitive source
/// needs the line to follow ISR until the guest reads it; the resampling irqfd that would give
/// that depends on EOI notifications, which the XICS-on-XIVE backend of POWER9/10 hosts does
/// not send (the reason `KVM_CAP_IRQFD_RESAMPLE` is not reported where XIVE is on).
pub(crate) struct KvmIrqLine {
    vm: VmFd,
    /// Level changes so far (the first few and then every 10000th are logged).
    changes: std::sync::atomic::AtomicU64,
}

impl KvmIrqLine {
    /// Lines of the VM behind `vm` (a handle of its own, e.g. `VmFd::try_clone`).
    pub(crate) fn new(vm: VmFd) -> Self {
        KvmIrqLine {
            vm,
            changes: Default::default(),
        }
    }
}

impl IrqLine for KvmIrqLine {
    fn set_level(&self, irq: u32, level: bool) {
        let n = self.changes.fetch_add(1, Ordering::Relaxed);
        if n < 16 || n % 10_000 == 0 {
            debug!("LSI {irq:#x} -> {} (level change #{n})", u8::from(level));
        }
        if let Err(e) = self.vm.set_irq_line(irq, level) {
            warn!("KVM_IRQ_LINE {irq:#x} level {}: {e}", u8::from(level));
        }
    }
}

/// XICS priority meaning "masked" (also what `ibm,int-off` saves).
const XICS_PRIORITY_MASKED: u64 = 0xff;

/// Configures the XICS sources of every PHB's occupied slots as level-sensitive LSIs, masked
/// (server 0, priority 0xff) until the guest's `ibm,set-xive`, not asserted. Done at start
/// and again on every reset so a new kernel finds the power-on state.
pub(crate) fn configure_lsis(xics: &DeviceFd, phbs: &[Phb]) -> Result<(), Error> {
    let state = KVM_XICS_LEVEL_SENSITIVE
        | KVM_XICS_MASKED
        | (XICS_PRIORITY_MASKED << KVM_XICS_PRIORITY_SHIFT);
    for phb in phbs {
        for slot in phb.occupied_slots() {
            let Some(irq) = phb.irq_of(slot) else {
                continue;
            };
            xics.set_attr_u64(KVM_DEV_XICS_GRP_SOURCES, irq.into(), state)
                .map_err(kvm_err("configure XICS source for a PCI LSI"))?;
            debug!("XICS source {irq:#x} (PCI slot {slot}): level-sensitive, masked");
        }
    }
    Ok(())
}

/// XICS sources of the RTAS event interrupts (`/event-sources`), QEMU's numbers
/// (`SPAPR_IRQ_EPOW`, `SPAPR_IRQ_HOTPLUG`), below the PHBs' LSIs.
pub(crate) const EVENT_SOURCE_IRQS: devicetree::EventSourceIrqs = devicetree::EventSourceIrqs {
    epow: 0x1000,
    hotplug: 0x1001,
};

/// The event-source interrupt of `class`, if the machine describes one.
pub(crate) fn event_irq(class: firmware::rtas::EventClass) -> Option<u32> {
    use firmware::rtas::EventClass;
    match class {
        EventClass::Epow => Some(EVENT_SOURCE_IRQS.epow),
        EventClass::HotPlug => Some(EVENT_SOURCE_IRQS.hotplug),
        EventClass::InternalErrors | EventClass::Io => None,
    }
}

/// Configures the event-source XICS sources as edge-triggered (message-signalled), masked until
/// the guest's `ibm,set-xive`: a pulse per queued log ([`pulse_event`]); a pulse while masked
/// is remembered by KVM and presented when the guest unmasks.
pub(crate) fn configure_event_sources(xics: &DeviceFd) -> Result<(), Error> {
    let state = KVM_XICS_MASKED | (XICS_PRIORITY_MASKED << KVM_XICS_PRIORITY_SHIFT);
    for irq in [EVENT_SOURCE_IRQS.epow, EVENT_SOURCE_IRQS.hotplug] {
        xics.set_attr_u64(KVM_DEV_XICS_GRP_SOURCES, irq.into(), state)
            .map_err(kvm_err("configure XICS source for an RTAS event source"))?;
        debug!("XICS source {irq:#x} (RTAS event source): edge, masked");
    }
    Ok(())
}

/// Raises the event-source interrupt of `class` once (`KVM_IRQ_LINE` level 1 on an edge
/// source delivers it; there is no level to drop).
pub(crate) fn pulse_event(vm: &VmFd, class: firmware::rtas::EventClass) {
    let Some(irq) = event_irq(class) else {
        return;
    };
    debug!("RTAS event source {irq:#x} ({class:?}) pulsed");
    if let Err(e) = vm.set_irq_line(irq, true) {
        warn!("KVM_IRQ_LINE {irq:#x} (RTAS {class:?} event): {e}");
    }
}

/// Device doorbells as `KVM_IOEVENTFD`s: the guest's store to a notify register signals the
/// device's eventfd inside KVM (`kvm_io_bus_write` in the MMIO emulation path of book3s),
/// so the vCPU neither exits to the VMM nor waits for the request.
pub(crate) struct KvmIoEvents {
    vm: VmFd,
}

impl KvmIoEvents {
    /// Doorbells of the VM behind `vm` (a handle of its own).
    pub(crate) fn new(vm: VmFd) -> Self {
        KvmIoEvents { vm }
    }

    /// `KVM_IOEVENTFD` for `fd` on `[gpa, gpa + len)` matching `value`: assign, or deassign.
    fn ioeventfd(
        &self,
        fd: &vmm_sys_util::eventfd::EventFd,
        (gpa, len, value): (u64, u32, u64),
        deassign: bool,
    ) -> std::io::Result<()> {
        self.vm
            .ioeventfd(fd, gpa, len, value, deassign)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}

impl crate::devices::phb::IoEvents for KvmIoEvents {
    fn register(
        &self,
        fd: &vmm_sys_util::eventfd::EventFd,
        gpa: u64,
        len: u32,
        value: u64,
    ) -> std::io::Result<()> {
        self.ioeventfd(fd, (gpa, len, value), false)
    }

    fn unregister(
        &self,
        fd: &vmm_sys_util::eventfd::EventFd,
        gpa: u64,
        len: u32,
        value: u64,
    ) -> std::io::Result<()> {
        self.ioeventfd(fd, (gpa, len, value), true)
    }
}
