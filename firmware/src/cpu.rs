//! The architected register state of one vCPU at the moment it was stopped.
//!
//! The VMM fills it from KVM (`KVM_GET_REGS`, `KVM_GET_SREGS`, ONE_REG); a test bench fills it
//! by hand. Both dump formats (PAPR Register Save Area and OPAL's architected register data) are
//! written from it, so they cannot disagree about a register's value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Registers other than the 32 GPRs, with their names in the PAPR Register Save Area and their
/// SPR numbers (or OPAL pseudo-numbers) in OPAL's architected register data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reg {
    /// ACOP, Available Coprocessor Register (SPR 31).
    Acop,
    /// AMR, Authority Mask Register (SPR 29, Linux's `SPRN_AMR` and the number QEMU writes; 13
    /// is the problem-state alias).
    Amr,
    /// BESCR, Branch Event Status and Control Register (SPR 806).
    Bescr,
    /// CFAR, Come-From Address Register (SPR 28).
    Cfar,
    /// CIABR, Completed Instruction Address Breakpoint Register (SPR 187).
    Ciabr,
    /// CR, Condition Register: 32 bits, not an SPR (OPAL pseudo-number [`OPAL_PSEUDO_CCR`]; Linux
    /// `ccr`).
    Cr,
    /// CTR, Count Register (SPR 9).
    Ctr,
    /// CTRL, Control Register (SPR 136, the read number; writes use 152).
    Ctrl,
    /// DABR, Data Address Breakpoint Register (SPR 1013).
    Dabr,
    /// DABRX, Data Address Breakpoint Register Extension (SPR 1015).
    Dabrx,
    /// DAR, Data Address Register (SPR 19).
    Dar,
    /// DAWR0, Data Address Watchpoint Register 0 (SPR 180).
    Dawr0,
    /// DAWR1, Data Address Watchpoint Register 1 (SPR 181; not in PAPR v2.9's list, QEMU writes
    /// it).
    Dawr1,
    /// DAWRX0, Data Address Watchpoint Register Extension 0 (SPR 188).
    Dawrx0,
    /// DAWRX1, Data Address Watchpoint Register Extension 1 (SPR 189; not in PAPR v2.9's list, QEMU
    /// writes it).
    Dawrx1,
    /// DPDES, Directed Privileged Doorbell Exception State (SPR 176).
    Dpdes,
    /// DSCR, Data Stream Control Register (SPR 17, the privileged number).
    Dscr,
    /// DSISR, Data Storage Interrupt Status Register (SPR 18).
    Dsisr,
    /// EBBHR, Event-Based Branch Handler Register (SPR 804).
    Ebbhr,
    /// EBBRR, Event-Based Branch Return Register (SPR 805).
    Ebbrr,
    /// FPSCR, Floating-Point Status and Control Register: not an SPR, so it has no OPAL entry.
    Fpscr,
    /// FSCR, Facility Status and Control Register (SPR 153).
    Fscr,
    /// IAMR, Instruction Authority Mask Register (SPR 61).
    Iamr,
    /// IC, Instruction Counter (SPR 0x350, i.e. 848).
    Ic,
    /// LR, Link Register (SPR 8).
    Lr,
    /// MSR, Machine State Register: not an SPR (OPAL pseudo-number [`OPAL_PSEUDO_MSR`]).
    Msr,
    /// NIA, Next Instruction Address: where the thread resumes (Linux `nip`; OPAL pseudo-number
    /// [`OPAL_PSEUDO_NIP`]).
    Nia,
    /// PIR, Processor Identification Register (SPR 1023).
    Pir,
    /// PSPB, Problem State Priority Boost register (SPR 159).
    Pspb,
    /// PVR, Processor Version Register (SPR 287).
    Pvr,
    /// RPR, Relative Priority Register (SPR 186).
    Rpr,
    /// SPURR, Scaled Processor Utilization of Resources Register (SPR 308).
    Spurr,
    /// SRR0, Machine Status Save/Restore Register 0 (SPR 26).
    Srr0,
    /// SRR1, Machine Status Save/Restore Register 1 (SPR 27).
    Srr1,
    /// TAR, Target Address Register (SPR 815).
    Tar,
    /// TEXASR, Transaction Exception and Summary Register (SPR 130).
    Texasr,
    /// TFHAR, Transaction Failure Handler Address Register (SPR 128).
    Tfhar,
    /// TFIAR, Transaction Failure Instruction Address Register (SPR 129).
    Tfiar,
    /// TIR, Thread Identification Register (SPR 446).
    Tir,
    /// UAMOR, User Authority Mask Override Register (SPR 157).
    Uamor,
    /// VRSAVE, VR Save Register (SPR 256).
    Vrsave,
    /// VSCR, Vector Status and Control Register: not an SPR, so it has no OPAL entry.
    Vscr,
    /// VTB, Virtual Time Base (SPR 0x351, i.e. 849).
    Vtb,
    /// WORT, Workload Optimization Register Thread (SPR 895).
    Wort,
    /// XER, Fixed-Point Exception Register (SPR 1).
    Xer,
    // Hypervisor-level registers: only meaningful in OPAL (bare-metal) register data.
    /// HSRR0, Hypervisor Save/Restore Register 0 (SPR 314).
    Hsrr0,
    /// HSRR1, Hypervisor Save/Restore Register 1 (SPR 315).
    Hsrr1,
    /// HMER, Hypervisor Maintenance Exception Register (SPR 336).
    Hmer,
    /// LPCR, Logical Partitioning Control Register (SPR 318). In neither save list: it can be set
    /// but is written to no dump.
    Lpcr,
    /// SPRG0, software-use SPR 0 (SPR 272).
    Sprg0,
    /// SPRG1, software-use SPR 1 (SPR 273).
    Sprg1,
    /// SPRG2, software-use SPR 2 (SPR 274).
    Sprg2,
    /// SPRG3, software-use SPR 3 (SPR 275).
    Sprg3,
}

/// OPAL pseudo SPR number 0x7D0 for NIA, which is not an SPR (Linux `HDAT_FADUMP_REG_ID_NIP` in
/// `arch/powerpc/platforms/powernv/opal-fadump.h`).
pub const OPAL_PSEUDO_NIP: u32 = 0x7d0;
/// OPAL pseudo SPR number 0x7D1 for the MSR (Linux `HDAT_FADUMP_REG_ID_MSR`).
pub const OPAL_PSEUDO_MSR: u32 = 0x7d1;
/// OPAL pseudo SPR number 0x7D2 for CR (Linux `HDAT_FADUMP_REG_ID_CCR`).
pub const OPAL_PSEUDO_CCR: u32 = 0x7d2;

impl Reg {
    /// The registers saved in the PAPR Register Save Area, in ascending ASCII order of their
    /// names (PAPR's suggestion, and QEMU's order): 45 registers.
    pub const PAPR_SAVED: [Reg; 45] = [
        Reg::Acop,
        Reg::Amr,
        Reg::Bescr,
        Reg::Cfar,
        Reg::Ciabr,
        Reg::Cr,
        Reg::Ctr,
        Reg::Ctrl,
        Reg::Dabr,
        Reg::Dabrx,
        Reg::Dar,
        Reg::Dawr0,
        Reg::Dawr1,
        Reg::Dawrx0,
        Reg::Dawrx1,
        Reg::Dpdes,
        Reg::Dscr,
        Reg::Dsisr,
        Reg::Ebbhr,
        Reg::Ebbrr,
        Reg::Fpscr,
        Reg::Fscr,
        Reg::Iamr,
        Reg::Ic,
        Reg::Lr,
        Reg::Msr,
        Reg::Nia,
        Reg::Pir,
        Reg::Pspb,
        Reg::Pvr,
        Reg::Rpr,
        Reg::Spurr,
        Reg::Srr0,
        Reg::Srr1,
        Reg::Tar,
        Reg::Texasr,
        Reg::Tfhar,
        Reg::Tfiar,
        Reg::Tir,
        Reg::Uamor,
        Reg::Vrsave,
        Reg::Vscr,
        Reg::Vtb,
        Reg::Wort,
        Reg::Xer,
    ];

    /// The registers written into OPAL's architected register data (those with an SPR number
    /// or an OPAL pseudo-number).
    pub const OPAL_SAVED: [Reg; 28] = [
        Reg::Xer,
        Reg::Lr,
        Reg::Ctr,
        Reg::Dscr,
        Reg::Dsisr,
        Reg::Dar,
        Reg::Srr0,
        Reg::Srr1,
        Reg::Cfar,
        Reg::Amr,
        Reg::Iamr,
        Reg::Uamor,
        Reg::Tar,
        Reg::Fscr,
        Reg::Ctrl,
        Reg::Pspb,
        Reg::Dpdes,
        Reg::Vrsave,
        Reg::Sprg0,
        Reg::Sprg1,
        Reg::Sprg2,
        Reg::Sprg3,
        Reg::Hsrr0,
        Reg::Hsrr1,
        Reg::Hmer,
        Reg::Nia,
        Reg::Msr,
        Reg::Cr,
    ];

    /// The register's identifier in the PAPR Register Save Area (ASCII, at most 8 bytes).
    pub fn papr_name(self) -> &'static str {
        match self {
            Reg::Acop => "ACOP",
            Reg::Amr => "AMR",
            Reg::Bescr => "BESCR",
            Reg::Cfar => "CFAR",
            Reg::Ciabr => "CIABR",
            Reg::Cr => "CR",
            Reg::Ctr => "CTR",
            Reg::Ctrl => "CTRL",
            Reg::Dabr => "DABR",
            Reg::Dabrx => "DABRX",
            Reg::Dar => "DAR",
            Reg::Dawr0 => "DAWR0",
            Reg::Dawr1 => "DAWR1",
            Reg::Dawrx0 => "DAWRX0",
            Reg::Dawrx1 => "DAWRX1",
            Reg::Dpdes => "DPDES",
            Reg::Dscr => "DSCR",
            Reg::Dsisr => "DSISR",
            Reg::Ebbhr => "EBBHR",
            Reg::Ebbrr => "EBBRR",
            Reg::Fpscr => "FPSCR",
            Reg::Fscr => "FSCR",
            Reg::Iamr => "IAMR",
            Reg::Ic => "IC",
            Reg::Lr => "LR",
            Reg::Msr => "MSR",
            Reg::Nia => "NIA",
            Reg::Pir => "PIR",
            Reg::Pspb => "PSPB",
            Reg::Pvr => "PVR",
            Reg::Rpr => "RPR",
            Reg::Spurr => "SPURR",
            Reg::Srr0 => "SRR0",
            Reg::Srr1 => "SRR1",
            Reg::Tar => "TAR",
            Reg::Texasr => "TEXASR",
            Reg::Tfhar => "TFHAR",
            Reg::Tfiar => "TFIAR",
            Reg::Tir => "TIR",
            Reg::Uamor => "UAMOR",
            Reg::Vrsave => "VRSAVE",
            Reg::Vscr => "VSCR",
            Reg::Vtb => "VTB",
            Reg::Wort => "WORT",
            Reg::Xer => "XER",
            Reg::Hsrr0 => "HSRR0",
            Reg::Hsrr1 => "HSRR1",
            Reg::Hmer => "HMER",
            Reg::Lpcr => "LPCR",
            Reg::Sprg0 => "SPRG0",
            Reg::Sprg1 => "SPRG1",
            Reg::Sprg2 => "SPRG2",
            Reg::Sprg3 => "SPRG3",
        }
    }

    /// The SPR number (Power ISA) or OPAL pseudo-number, when the register has one.
    pub fn spr_number(self) -> Option<u32> {
        Some(match self {
            Reg::Xer => 1,
            Reg::Dscr => 17,
            Reg::Lr => 8,
            Reg::Ctr => 9,
            Reg::Amr => 29,
            Reg::Dsisr => 18,
            Reg::Dar => 19,
            Reg::Srr0 => 26,
            Reg::Srr1 => 27,
            Reg::Cfar => 28,
            Reg::Acop => 31,
            Reg::Iamr => 61,
            Reg::Tfhar => 128,
            Reg::Tfiar => 129,
            Reg::Texasr => 130,
            Reg::Ctrl => 136,
            Reg::Fscr => 153,
            Reg::Uamor => 157,
            Reg::Pspb => 159,
            Reg::Dpdes => 176,
            Reg::Dawr0 => 180,
            Reg::Dawr1 => 181,
            Reg::Rpr => 186,
            Reg::Ciabr => 187,
            Reg::Dawrx0 => 188,
            Reg::Dawrx1 => 189,
            Reg::Vrsave => 256,
            Reg::Sprg0 => 272,
            Reg::Sprg1 => 273,
            Reg::Sprg2 => 274,
            Reg::Sprg3 => 275,
            Reg::Pvr => 287,
            Reg::Spurr => 308,
            Reg::Hsrr0 => 314,
            Reg::Hsrr1 => 315,
            Reg::Lpcr => 318,
            Reg::Hmer => 336,
            Reg::Ic => 0x350,
            Reg::Vtb => 0x351,
            Reg::Tir => 446,
            Reg::Ebbhr => 804,
            Reg::Ebbrr => 805,
            Reg::Bescr => 806,
            Reg::Tar => 815,
            Reg::Wort => 895,
            Reg::Dabr => 1013,
            Reg::Dabrx => 1015,
            Reg::Pir => 1023,
            Reg::Nia => OPAL_PSEUDO_NIP,
            Reg::Msr => OPAL_PSEUDO_MSR,
            Reg::Cr => OPAL_PSEUDO_CCR,
            Reg::Fpscr | Reg::Vscr => return None,
        })
    }
}

/// One vCPU's registers. Registers the VMM could not read stay 0.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuState {
    /// The id the guest knows this thread by: the interrupt-server number / `reg` of its
    /// `/cpus` node on pseries (PAPR "logical CPU ID"), the PIR on powernv.
    pub id: u32,
    /// GPR0 to GPR31, by index.
    pub gpr: [u64; 32],
    regs: BTreeMap<Reg, u64>,
}

impl CpuState {
    /// A thread with this id and every register 0.
    pub fn new(id: u32) -> Self {
        Self {
            id,
            ..Self::default()
        }
    }

    /// The value of `reg` (0 when it was never set). CR is 32 bits wide.
    pub fn get(&self, reg: Reg) -> u64 {
        self.regs.get(&reg).copied().unwrap_or(0)
    }

    /// Sets `reg`; CR is truncated to its 32 architected bits.
    pub fn set(&mut self, reg: Reg, value: u64) -> &mut Self {
        let value = if reg == Reg::Cr {
            value & 0xffff_ffff
        } else {
            value
        };
        self.regs.insert(reg, value);
        self
    }
}

/// Where the firmware gets the register state of every vCPU that is online at the start of a
/// dump (PAPR: CPUs in the RTAS stopped state are not saved). The VMM stops its vCPUs and reads
/// them from KVM; a test bench hands over its own values.
pub trait CpuStateSource {
    /// The registers of every online vCPU, in the order the dump lists them. Called once per
    /// dump, after the machine has stopped the vCPUs.
    fn online_cpu_states(&mut self) -> Vec<CpuState>;
}

impl CpuStateSource for Vec<CpuState> {
    fn online_cpu_states(&mut self) -> Vec<CpuState> {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn papr_list_is_sorted_unique_and_named_within_8_bytes() {
        let names: Vec<&str> = Reg::PAPR_SAVED.iter().map(|r| r.papr_name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert!(names.iter().all(|n| n.len() <= 8 && n.is_ascii()));
    }

    /// Every SPR number against Linux's `arch/powerpc/include/asm/reg.h` (`SPRN_*`, in the hex
    /// Linux writes them in), so a decimal/hex slip cannot hide in the table.
    #[test]
    fn spr_numbers_match_linux_reg_h() {
        let linux = [
            (Reg::Xer, 0x001),    // SPRN_XER
            (Reg::Lr, 0x008),     // SPRN_LR
            (Reg::Ctr, 0x009),    // SPRN_CTR
            (Reg::Dscr, 0x11),    // SPRN_DSCR
            (Reg::Dsisr, 0x012),  // SPRN_DSISR
            (Reg::Dar, 0x013),    // SPRN_DAR
            (Reg::Srr0, 0x01a),   // SPRN_SRR0
            (Reg::Srr1, 0x01b),   // SPRN_SRR1
            (Reg::Cfar, 0x1c),    // SPRN_CFAR
            (Reg::Amr, 0x1d),     // SPRN_AMR
            (Reg::Acop, 0x1f),    // SPRN_ACOP
            (Reg::Iamr, 0x03d),   // SPRN_IAMR
            (Reg::Tfhar, 0x80),   // SPRN_TFHAR
            (Reg::Tfiar, 0x81),   // SPRN_TFIAR
            (Reg::Texasr, 0x82),  // SPRN_TEXASR
            (Reg::Ctrl, 0x088),   // SPRN_CTRLF
            (Reg::Fscr, 0x099),   // SPRN_FSCR
            (Reg::Uamor, 0x9d),   // SPRN_UAMOR
            (Reg::Pspb, 0x09f),   // SPRN_PSPB
            (Reg::Dpdes, 0x0b0),  // SPRN_DPDES
            (Reg::Dawr0, 0xb4),   // SPRN_DAWR0
            (Reg::Dawr1, 0xb5),   // SPRN_DAWR1
            (Reg::Rpr, 0xba),     // SPRN_RPR
            (Reg::Ciabr, 0xbb),   // SPRN_CIABR
            (Reg::Dawrx0, 0xbc),  // SPRN_DAWRX0
            (Reg::Dawrx1, 0xbd),  // SPRN_DAWRX1
            (Reg::Vrsave, 0x100), // SPRN_VRSAVE
            (Reg::Sprg0, 0x110),  // SPRN_SPRG0
            (Reg::Sprg1, 0x111),  // SPRN_SPRG1
            (Reg::Sprg2, 0x112),  // SPRN_SPRG2
            (Reg::Sprg3, 0x113),  // SPRN_SPRG3
            (Reg::Pvr, 0x11f),    // SPRN_PVR
            (Reg::Spurr, 0x134),  // SPRN_SPURR
            (Reg::Hsrr0, 0x13a),  // SPRN_HSRR0
            (Reg::Hsrr1, 0x13b),  // SPRN_HSRR1
            (Reg::Lpcr, 0x13e),   // SPRN_LPCR
            (Reg::Hmer, 0x150),   // SPRN_HMER
            (Reg::Ic, 0x350),     // SPRN_IC
            (Reg::Vtb, 0x351),    // SPRN_VTB
            (Reg::Tir, 0x1be),    // SPRN_TIR
            (Reg::Ebbhr, 804),    // SPRN_EBBHR
            (Reg::Ebbrr, 805),    // SPRN_EBBRR
            (Reg::Bescr, 806),    // SPRN_BESCR
            (Reg::Tar, 0x32f),    // SPRN_TAR
            (Reg::Wort, 895),     // SPRN_WORT
            (Reg::Dabr, 0x3f5),   // SPRN_DABR
            (Reg::Dabrx, 0x3f7),  // SPRN_DABRX
            (Reg::Pir, 0x3ff),    // SPRN_PIR
        ];
        for (reg, n) in linux {
            assert_eq!(reg.spr_number(), Some(n), "{reg:?}: Linux SPRN_ is {n:#x}");
        }
        let all = Reg::PAPR_SAVED.iter().chain(&Reg::OPAL_SAVED);
        for reg in
            all.filter(|r| !matches!(r, Reg::Nia | Reg::Msr | Reg::Cr | Reg::Fpscr | Reg::Vscr))
        {
            assert!(linux.iter().any(|(r, _)| r == reg), "{reg:?} not checked");
        }
    }

    #[test]
    fn opal_list_has_numbers_linux_reads() {
        let nums: Vec<u32> = Reg::OPAL_SAVED
            .iter()
            .map(|r| r.spr_number().unwrap())
            .collect();
        for needed in [
            9,
            8,
            1,
            19,
            18,
            OPAL_PSEUDO_NIP,
            OPAL_PSEUDO_MSR,
            OPAL_PSEUDO_CCR,
        ] {
            assert!(nums.contains(&needed), "missing SPR {needed:#x}");
        }
        let mut dedup = nums.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), nums.len(), "no SPR written twice");
    }

    #[test]
    fn cr_is_32_bits() {
        let mut c = CpuState::new(3);
        c.set(Reg::Cr, 0x1_2345_6789).set(Reg::Lr, 7);
        assert_eq!(c.get(Reg::Cr), 0x2345_6789);
        assert_eq!(c.get(Reg::Lr), 7);
        assert_eq!(c.get(Reg::Ctr), 0);
    }
}
