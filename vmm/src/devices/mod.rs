//! Guest devices behind the PAPR PCI host bridge: the PHB itself ([`phb`]) and a modern
//! virtio-pci block device ([`virtio_blk`]). Pure Rust over `vm-memory` and `std::fs::File`,
//! unit-tested on x86; nothing here talks to KVM.
//!
//! # Wiring them into the machine (not done yet)
//!
//! 1. **CLI**: `--disk path=FILE[,readonly=on]`, repeatable: parse each value with
//!    [`disk_spec::DiskSpec::parse`] (help text: [`disk_spec::DISK_HELP`]) into a new
//!    `VmConfig` field, then [`disk_spec::build_pci`] opens the files (read-only ones with
//!    `O_RDONLY`) and plugs disk `i` into slot `i + 1` of one PHB laid out like QEMU's first
//!    PHB (BUID `0x800000020000000`, 32-bit window at `0x2000_8000_0000`). Slot `s` raises
//!    LSI `0x1200 + s % 4` (the swizzle of the `interrupt-map`). With no disks, build no PHB.
//! 2. **Interrupts**: implement [`phb::IrqLine`] over `KVM_IRQ_LINE` (`irq` = XICS source
//!    number, level 1/0). The in-kernel XICS must have those sources configured as
//!    level-sensitive (`KVM_DEV_XICS_GRP_SOURCES` with `KVM_XICS_LEVEL_SENSITIVE`, masked
//!    until the guest's `ibm,set-xive`); the LSIs are `phb.irq_of(slot)`.
//! 3. **MMIO exits**: on `KVM_EXIT_MMIO` call [`phb::Phb::mmio_read`]/[`phb::Phb::mmio_write`]
//!    with the guest-physical address and the data buffer (little-endian bytes as the guest
//!    stored them); they return false for addresses outside the PHB's window. The PHB sits
//!    behind a `Mutex` shared by the vCPU threads (and the reset path); a queue notify only
//!    wakes the device's I/O thread ([`virtio_blk::io_thread`]), which runs the requests.
//!    With [`phb::Phb::use_io_events`] the notify register is a `KVM_IOEVENTFD` and the
//!    guest's notify does not leave the kernel at all.
//! 4. **RTAS**: call `Rtas::enable_machine_call` for each of [`phb::rtas::PCI_CONFIG_CALLS`];
//!    on `RtasAction::Machine { call, args }` call [`phb::rtas::handle_config_call`], which
//!    writes the return cells itself.
//! 5. **Device tree**: pass [`phb::Phb::description`] to `devicetree::build_with_pci`. The
//!    kernel builds its PCI devices from these nodes (LPAR probe mode is "device tree") and
//!    keeps the BARs the VMM placed.
//! 6. **Reset**: on `system-reboot` and on the fadump reboot call [`phb::Phb::reset`] *after*
//!    every vCPU has stopped: each device stops and drains its I/O thread (the request in
//!    progress finishes, no other starts), then queues, features, status, ISR and config
//!    space go back to power-on, LSIs are lowered, and no queue is processed again until
//!    the new kernel sets DRIVER_OK. Before the fadump touches guest memory,
//!    [`phb::Phb::pause`] stops the I/O threads the same way without resetting.

pub mod disk_spec;
pub mod irq;
pub mod kvm_tce;
pub mod phb;
pub mod virtio_blk;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use phb::config::ConfigSpace;
use phb::intx::IntxLine;
use vmm_sys_util::eventfd::EventFd;

/// A register whose writes the device wants delivered to an eventfd without a VM exit
/// (`KVM_IOEVENTFD`): `len`-byte writes of `value` at `offset` into BAR `bar`. Other writes
/// there still reach [`PciDevice::mmio_write`].
#[derive(Debug, Clone, Copy)]
pub struct Doorbell<'a> {
    pub bar: usize,
    pub offset: u64,
    pub len: u32,
    pub value: u64,
    pub fd: &'a EventFd,
}

/// A PCI function on the PHB's bus. `Send` because the PHB sits behind a `Mutex` shared by
/// the vCPU threads.
pub trait PciDevice: Send {
    fn config(&self) -> &ConfigSpace;
    fn config_mut(&mut self) -> &mut ConfigSpace;
    /// A read of `data.len()` bytes at `offset` into BAR `bar`.
    fn mmio_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    /// A write at `offset` into BAR `bar`.
    fn mmio_write(&mut self, bar: usize, offset: u64, data: &[u8]);
    /// True while the device asserts INTx.
    fn interrupt_pending(&self) -> bool;
    /// Device-level reset to the power-on state (the PHB resets the config header). A
    /// device with an I/O thread stops and drains it first.
    fn reset(&mut self);
    /// The device's line, handed over once when the PHB plugs it in, for a device that
    /// raises INTx from a thread of its own.
    fn connect_intx(&mut self, _line: Arc<IntxLine>) {}
    /// The notify register to route through an eventfd, if the device has one.
    fn doorbell(&self) -> Option<Doorbell<'_>> {
        None
    }
    /// Stops asynchronous work: returns once nothing of the device touches guest memory or
    /// its backend until [`PciDevice::resume`] or [`PciDevice::reset`].
    fn pause(&mut self) {}
    /// Undoes [`PciDevice::pause`].
    fn resume(&mut self) {}
    /// Waits (bounded) until the work of every notification made so far is done; true if it
    /// is. For tests and for orderly shutdown; devices without threads are always settled.
    fn settle(&self) -> bool {
        true
    }
    /// The device's own counters for `vm.counters`, under its name, if it keeps any.
    fn counters(&self) -> Option<DeviceCounters> {
        None
    }
}

/// What a device counts, for the operator (`vm.counters`): its name and (counter, value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCounters {
    pub name: String,
    pub values: Vec<(&'static str, u64)>,
}

/// Compile-time check: the PHB (and so every device) can be shared between vCPU threads.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<phb::Phb>();
};
