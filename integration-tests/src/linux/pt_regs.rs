//! The part of Linux's ppc64 `struct pt_regs` the dump carries (native little-endian, as the
//! guest kernel stores it in its crash-info header and in the ELF PRSTATUS notes).

use firmware::{CpuState, Reg};

/// The model's `sizeof(struct pt_regs)`; both kernels of a pair must agree on it.
pub const PT_REGS_SIZE: usize = 0x1a0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PtRegs {
    pub gpr: [u64; 32],
    pub nip: u64,
    pub msr: u64,
    pub ctr: u64,
    pub link: u64,
    pub xer: u64,
    pub ccr: u64,
    pub dar: u64,
    pub dsisr: u64,
}

// user_pt_regs offsets.
const NIP: usize = 0x100;
const MSR: usize = 0x108;
const CTR: usize = 0x118;
const LINK: usize = 0x120;
const XER: usize = 0x128;
const CCR: usize = 0x130;
const DAR: usize = 0x148;
const DSISR: usize = 0x150;

impl PtRegs {
    /// What Linux's notes show for a CPU whose registers the firmware saved.
    pub fn from_cpu(c: &CpuState) -> Self {
        Self {
            gpr: c.gpr,
            nip: c.get(Reg::Nia),
            msr: c.get(Reg::Msr),
            ctr: c.get(Reg::Ctr),
            link: c.get(Reg::Lr),
            xer: c.get(Reg::Xer),
            ccr: c.get(Reg::Cr),
            dar: c.get(Reg::Dar),
            dsisr: c.get(Reg::Dsisr),
        }
    }

    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; PT_REGS_SIZE];
        let mut put = |off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        for (i, g) in self.gpr.iter().enumerate() {
            put(8 * i, *g);
        }
        put(NIP, self.nip);
        put(MSR, self.msr);
        put(CTR, self.ctr);
        put(LINK, self.link);
        put(XER, self.xer);
        put(CCR, self.ccr);
        put(DAR, self.dar);
        put(DSISR, self.dsisr);
        b
    }

    pub fn from_le_bytes(b: &[u8]) -> Self {
        let get = |off: usize| u64::from_le_bytes(b[off..off + 8].try_into().unwrap());
        let mut r = Self::default();
        for (i, g) in r.gpr.iter_mut().enumerate() {
            *g = get(8 * i);
        }
        r.nip = get(NIP);
        r.msr = get(MSR);
        r.ctr = get(CTR);
        r.link = get(LINK);
        r.xer = get(XER);
        r.ccr = get(CCR);
        r.dar = get(DAR);
        r.dsisr = get(DSISR);
        r
    }
}
