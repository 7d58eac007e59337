//! One module per top-level node of the pseries tree, each writing its node (and children)
//! and documenting which kernel code reads what.

pub(crate) mod aliases;
pub(crate) mod chosen;
pub(crate) mod cpus;
pub(crate) mod drconf;
pub(crate) mod event_sources;
pub(crate) mod hypervisor;
pub(crate) mod memory;
pub(crate) mod pci;
pub(crate) mod root;
pub(crate) mod rtas;
pub(crate) mod vdevice;
pub(crate) mod xics;
