//! `/hypervisor`: tells the guest it runs under KVM.

use crate::error::Error;
use crate::writer::TreeWriter;

/// `compatible = "linux,kvm"`: Linux's `check_kvm_guest()` (arch/powerpc/kernel/firmware.c)
/// sets `is_kvm_guest()` from it, which tunes paravirt spinlocks and vCPU-preemption checks
/// for a KVM host. QEMU writes the same node under KVM. We do not add `hcall-instructions`
/// (the ePAPR paravirt hcall sequence), which only KVM-PR provides.
pub(crate) fn write(w: &mut TreeWriter) -> Result<(), Error> {
    let n = w.begin("hypervisor")?;
    w.string("compatible", "linux,kvm")?;
    w.end(n)
}
