//! Memory hotplug: the window beside boot RAM where 256 MiB LMBs come and go (PAPR memory
//! DLPAR; the firmware side, DRC states and the device tree, is `firmware::dlpar`).
//!
//! * [`spec`]: `--memory size=...,hotplug_size=...` and where the window goes;
//! * [`slots`]: the KVM memory slots of the window, one per LMB the guest holds.
//!
//! The guest takes LMBs itself (`echo "memory add count N" > /sys/kernel/dlpar`: every
//! window LMB is granted at start), or the host pushes them with `vm.resize`
//! (`Machine::resize_memory`, hot-plug events through `check-exception`). Which LMBs the
//! guest owns is machine state: it survives reboots and the fadump reset and decides what
//! every boot's `/ibm,dynamic-reconfiguration-memory` marks ASSIGNED.

pub mod slots;
pub mod spec;

pub use slots::{HotplugSlots, Memslots, SlotError};
pub use spec::{MemorySpec, SpecError};

#[cfg(test)]
mod tests;
