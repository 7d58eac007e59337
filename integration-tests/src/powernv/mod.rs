//! A model of Linux's powernv fadump (OPAL MPIPL), written from the kernel's behaviour (not its
//! code), that drives the `firmware` crate's OPAL layer exactly as the guest does.
//!
//! * [`machine`]: a powernv machine: RAM (with holes), OPAL, threads with distinct registers, and
//!   the machine's part of an MPIPL.
//! * [`first_kernel`]: `/ibm,opal/dump` checks, boot memory and reserved area, metadata tags,
//!   `ADD_RANGE` per region, the crash through `OPAL_CEC_REBOOT2(MPIPL)`.
//! * [`capture_kernel`]: `mpipl-boot`, `QUERY_TAG(KERNEL/CPU)`, the HDAT register data parsed
//!   as Linux parses it, the vmcore view, `FREE_PRESERVED_MEMORY`; and the petitboot
//!   (`CONFIG_PRESERVE_FA_DUMP`) hop.
//! * [`kernel_structs`]: the kernel-owned metadata and crash-info header.
//! * [`qemu_layout`]: QEMU 11.1's register-data layout, to show what Linux makes of it.
//! * [`scenarios`]: the whole crash cycles and the bad-input cases the bench binary runs.

pub mod capture_kernel;
pub mod first_kernel;
pub mod kernel_structs;
pub mod machine;
pub mod qemu_layout;
pub mod scenarios;
