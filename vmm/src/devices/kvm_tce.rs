//! In-kernel TCE tables: [`KernelTces`] over `KVM_CREATE_SPAPR_TCE_64`.

use crate::devices::phb::tce::{KernelTces, WindowGeometry};
use crate::kvm::bindings::kvm_create_spapr_tce_64;
use crate::kvm::VmFd;
use log::{debug, warn};

/// Makes each DMA window's TCE table in KVM, so `H_PUT_TCE`/`H_GET_TCE` (and the multi-TCE
/// calls once enabled) are served without leaving the kernel. The machine uses it only when
/// the VM has `KVM_CAP_SPAPR_TCE_64`; a table KVM refuses stays in the VMM.
pub(crate) struct KvmTces {
    vm: VmFd,
}

impl KvmTces {
    /// Tables of the VM behind `vm` (a handle of its own, e.g. `VmFd::try_clone`).
    pub(crate) fn new(vm: VmFd) -> Self {
        KvmTces { vm }
    }
}

impl KernelTces for KvmTces {
    fn create(&self, w: &WindowGeometry) -> Option<Box<dyn Send>> {
        let args = kvm_create_spapr_tce_64 {
            liobn: w.liobn.into(),
            page_shift: w.page_shift,
            flags: 0,
            offset: w.bus_offset >> w.page_shift,
            size: w.entries,
        };
        match self.vm.create_spapr_tce_64(&args) {
            Ok(fd) => {
                debug!(
                    "TCE table LIOBN {:#x} ({} entries of 2^{}) in KVM",
                    w.liobn, w.entries, w.page_shift
                );
                Some(Box::new(fd))
            }
            Err(e) => {
                warn!(
                    "KVM_CREATE_SPAPR_TCE_64 for LIOBN {:#x} ({} entries of 2^{}): {e}; the VMM \
                     keeps the table",
                    w.liobn, w.entries, w.page_shift
                );
                None
            }
        }
    }
}
