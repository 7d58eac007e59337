//! What both platforms' Linux models share: the kernel's page size, its crash-info header
//! constants, its `pt_regs`, and recognisable register values for the vCPUs/threads.

pub mod pt_regs;

use firmware::{CpuState, Reg};

/// Linux's page size on these guests (64 KiB pages).
pub const PAGE_SIZE: u64 = 0x10000;

pub fn page_align(v: u64) -> u64 {
    v.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// Crash-info header magic of ≥6.10 kernels (stored in the kernel's byte order).
pub const MAGIC_FADMPSIG: u64 = u64::from_be_bytes(*b"FADMPSIG");
/// Crash-info header magic of pre-6.10 kernels.
pub const MAGIC_FADMPINF: u64 = u64::from_be_bytes(*b"FADMPINF");
/// The model's `sizeof(struct cpumask)` (NR_CPUS = 2048).
pub const CPU_MASK_SIZE: usize = 256;

/// Distinct, recognisable values for CPU `id`: every GPR and every register in `regs` differs
/// between CPUs and between registers; NIA, MSR and CR get plausible kernel values.
pub fn distinct_registers(id: u32, regs: &[Reg]) -> CpuState {
    let mut c = CpuState::new(id);
    let tag = u64::from(id + 1) << 44;
    for (i, g) in c.gpr.iter_mut().enumerate() {
        *g = tag | 0x0067_7072_0000 | i as u64;
    }
    for (i, r) in regs.iter().enumerate() {
        c.set(*r, tag | 0x0073_7072_0000 | ((i as u64) << 8));
    }
    c.set(Reg::Nia, 0xc000_0000_0010_0000 | (u64::from(id) << 12));
    c.set(Reg::Msr, 0x8000_0000_0280_9033);
    c.set(Reg::Cr, 0x2400_0480 | u64::from(id));
    c
}
