//! The pseries guest device tree, for a direct flattened-device-tree boot.
//!
//! [`build`] is a pure function from a [`MachineDescription`] (which includes the `/rtas`
//! properties the `firmware` crate contributes) to the bytes of a flattened device tree
//! (DTB), written with `vm-fdt`.
//!
//! # The boot this tree is for
//!
//! The VMM loads `vmlinux` at physical 0 and enters it with r3 = the tree's guest-physical
//! address, r4 = the kernel's base (0) and **r5 = 0**. In `__start` (head_64.S) r5 = 0 means
//! "no Open Firmware client interface": Linux skips `prom_init`, so nothing negotiates the
//! architecture (`ibm,client-architecture-support`), instantiates RTAS or flattens a tree for
//! it. Everything `prom_init` would have produced must already be in this tree:
//!
//! * `/chosen/ibm,architecture-vec-5` with the MMU and interrupt mode ([`vec5`]). Without it
//!   Linux silently turns radix off, and a nested (pseries L1) KVM only runs radix guests.
//! * `/rtas` with `linux,rtas-base`, `linux,rtas-entry` and `rtas-size` pointing at the RTAS
//!   stub the VMM placed, plus every token.
//! * The reservation map entry for the RTAS stub (the kernel reserves its own image, this
//!   tree and the initrd).
//! * `boot_cpuid_phys` in the header = the boot vCPU's id: `early_init_dt_scan_cpus()` finds
//!   the boot CPU's node by matching it against `ibm,ppc-interrupt-server#s`.
//!
//! # The tree
//!
//! | node | written by | read by (Linux) |
//! |---|---|---|
//! | `/` | `nodes::root` | `pseries_probe()` (`device_type = "chrp"`) |
//! | `/chosen` | `nodes::chosen` | `early_init_dt_scan_chosen()`, `early_check_vec5()`, hvc early console |
//! | `/aliases` | `nodes::aliases` | `of_alias_scan()` |
//! | `/cpus/PowerPC,<model>@<id>` | `nodes::cpus` | `smp_setup_cpu_maps()`, prom.c feature scans |
//! | `/memory@<base>` | `nodes::memory` | `early_init_dt_scan_memory()` |
//! | `/ibm,dynamic-reconfiguration-memory` (optional, [`build_with`]) | `nodes::drconf` | drmem.c, `probe_memory_block_size()` |
//! | `/rtas` | `nodes::rtas` | `early_init_dt_scan_rtas()`, `rtas_function_token()`, firmware features |
//! | `/interrupt-controller` | `nodes::xics` | `icp_hv_init()` |
//! | `/vdevice/vty@30000000` | `nodes::vdevice` | VIO bus, `hvc_vio` |
//! | `/event-sources/{epow,hot-plug}-events` | `nodes::event_sources` | `init_ras_IRQ()` |
//! | `/hypervisor` | `nodes::hypervisor` | `check_kvm_guest()` |
//!
//! | `/pci@<buid>` (optional, [`build_with_pci`]) | `nodes::pci` | `pSeries_discover_phbs()`, `of_scan_bus()` |
//!
//! No `/event-sources`: its interrupts only matter when the VMM raises EPOW or hot-plug
//! events, which ours does not (`event-scan`/`check-exception` answer "no event"). PCI host
//! bridges are optional (see [`pci`]).
//!
//! # Example
//!
//! ```
//! use devicetree::{build, CpuModel, CpuTopology, HypertasFunction, InterruptController,
//!                  MachineDescription, Mmu};
//! use firmware::fadump::FadumpConfig;
//! use firmware::rtas::Rtas;
//! use firmware::GuestRange;
//!
//! let ram = 512 << 20;
//! let rtas_blob = GuestRange::new(ram - 0x10000, 0x1000).unwrap();
//! let firmware = Rtas::new(FadumpConfig {
//!     max_cpus: 2,
//!     hpte_capacity: 0,
//!     rma_size: ram,
//!     firmware_reserved: vec![rtas_blob],
//! });
//! let mmu = Mmu::Radix { gtse: true };
//! let desc = MachineDescription {
//!     topology: CpuTopology::single_threaded(2),
//!     cpu: CpuModel::new("POWER9", 0x004e_1202), // PVR as read from the vCPU
//!     mmu,
//!     memory: vec![GuestRange::new(0, ram).unwrap()],
//!     cmdline: "console=hvc0".into(),
//!     initrd: Some(GuestRange::new(64 << 20, 4 << 20).unwrap()),
//!     rtas: rtas_blob,
//!     reservations: vec![],
//!     hypertas_functions: HypertasFunction::implemented(mmu),
//!     interrupt_controller: InterruptController::KvmXics,
//!     vty_irq: None,
//!     event_sources: None,
//!     rtas_properties: firmware.properties(),
//! };
//! let dtb = build(&desc).unwrap();
//! // Write `dtb` to guest memory and enter the kernel with r3 = its address, r5 = 0.
//! assert_eq!(&dtb[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
//! ```
//!
//! Property names longer than 31 characters (which `vm-fdt` refuses) are written through a
//! rename pass, see [`blob`].

pub mod blob;
mod cpu_features;
pub mod description;
mod error;
mod nodes;
pub mod pci;
mod validate;
pub mod vec5;
mod writer;

pub use cpu_features::{pa_features, PA_RADIX_BIT, PA_RADIX_BYTE, RADIX_AP_ENCODINGS};
pub use description::{
    Cache, CpuModel, CpuTopology, EventSourceIrqs, HypertasFunction, InterruptController,
    MachineDescription, Mmu, SegmentPageSize,
};
pub use error::Error;
pub use nodes::drconf::{Drconf, DRCONF_NODE};
pub use nodes::event_sources::{EPOW_EVENTS_PATH, HOTPLUG_EVENTS_PATH};
pub use nodes::root::{ROOT_COMPATIBLE, ROOT_MODEL};
pub use nodes::rtas::RTAS_ERROR_LOG_MAX;
pub use nodes::vdevice::{vty_path, VTY_REG};
pub use nodes::xics::XICS_PHANDLE;

use writer::TreeWriter;

/// Upper bound on vCPUs: 2048, the `NR_CPUS` of Linux's `pseries_defconfig`, far above what
/// this VMM runs. It keeps a wrong count from allocating without bound.
pub const MAX_VCPUS: u32 = 2048;

/// Builds the device tree blob for `desc`.
///
/// Fails, without panicking, on a description the guest could not boot from (see [`Error`]):
/// no vCPUs, no memory or none at address 0, overlapping RAM, RTAS or initrd outside RAM,
/// overlapping reservations, a firmware property that repeats one of ours, and so on.
pub fn build(desc: &MachineDescription) -> Result<Vec<u8>, Error> {
    build_with_pci(desc, &[])
}

/// [`build`] plus one `/pci@<buid>` node per PAPR PCI host bridge in `phbs` (see [`pci`]),
/// placed after `/vdevice`. With no PHBs the blob is byte-identical to [`build`]'s.
///
/// (A separate entry point rather than a `MachineDescription` field so that existing
/// descriptions keep compiling; it can become a field once every caller sets it.)
pub fn build_with_pci(
    desc: &MachineDescription,
    phbs: &[pci::PhbDescription],
) -> Result<Vec<u8>, Error> {
    build_with(desc, phbs, None)
}

/// [`build_with_pci`] plus, for a guest with a memory hotplug window, the
/// `/ibm,dynamic-reconfiguration-memory` node after the `/memory` nodes, the root's DRC
/// lists, and the memory-DLPAR bits of `ibm,architecture-vec-5` (see [`Drconf`]). With
/// `None` the blob is byte-identical to [`build_with_pci`]'s.
pub fn build_with(
    desc: &MachineDescription,
    phbs: &[pci::PhbDescription],
    drconf: Option<&Drconf>,
) -> Result<Vec<u8>, Error> {
    validate::check(desc)?;
    for (i, p) in phbs.iter().enumerate() {
        p.validate()?;
        if phbs[..i].iter().any(|q| q.buid == p.buid) {
            return Err(Error::Pci(format!("{}: BUID used twice", p.node_name())));
        }
    }

    let mut reservations: Vec<(u64, u64)> = std::iter::once(desc.rtas)
        .chain(desc.reservations.iter().copied())
        .map(|r| (r.start(), r.len()))
        .collect();
    reservations.sort_unstable();

    let mut w = TreeWriter::new(&reservations)?;
    w.set_boot_cpuid_phys(desc.topology.boot_vcpu);

    let root = w.begin("")?;
    nodes::root::write(&mut w)?;
    if let Some(d) = drconf {
        nodes::drconf::write_root(&mut w, d)?;
    }
    nodes::chosen::write(&mut w, desc, drconf.is_some())?;
    nodes::aliases::write(&mut w)?;
    nodes::cpus::write(&mut w, desc)?;
    nodes::memory::write(&mut w, desc)?;
    if let Some(d) = drconf {
        nodes::drconf::write(&mut w, d)?;
    }
    nodes::rtas::write(&mut w, desc)?;
    nodes::xics::write(&mut w, desc)?;
    nodes::vdevice::write(&mut w, desc)?;
    nodes::event_sources::write(&mut w, desc)?;
    for p in phbs {
        nodes::pci::write(&mut w, p)?;
    }
    nodes::hypervisor::write(&mut w)?;
    w.end(root)?;
    w.finish()
}

#[cfg(test)]
mod tests;
