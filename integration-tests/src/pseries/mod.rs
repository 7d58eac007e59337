//! A model of Linux's pseries fadump, written from the kernel's behaviour (not its code), that
//! drives the firmware through RTAS exactly as the guest does.
//!
//! * [`guest`]: a partition: guest RAM (with holes), the firmware, vCPU register values, and the
//!   machine's part (stopping vCPUs and performing the dump on `ibm,os-term`).
//! * [`first_kernel`]: what the crashing kernel does: reads `/rtas`, lays out the reserved area,
//!   writes its crash-info header, REGISTERs (the 6.1 and the 6.12 layouts), and crashes.
//! * [`capture_kernel`]: what the next kernel does with `ibm,kernel-dump`: the same acceptance
//!   checks as each Linux generation, the CPU notes from the Register Save Area, and the vmcore
//!   view (boot memory read from its copy, the rest in place).

pub mod capture_kernel;
pub mod first_kernel;
pub mod guest;

/// Which generation of Linux's pseries fadump the model follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelGen {
    /// v5.5 – v6.9: exactly three sections at fixed offsets, `FADMPINF` crash-info header.
    V6_1,
    /// v6.10 and later: CPU, HPTE, 1–7 boot-memory regions split at holes, optional parameter
    /// area; exact-length REGISTER; `FADMPSIG` crash-info header.
    V6_12,
}
