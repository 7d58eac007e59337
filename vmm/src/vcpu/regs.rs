//! A stopped vCPU's architected state as the firmware's dump engine wants it
//! ([`firmware::CpuState`]): GPRs and the core registers from `KVM_GET_REGS`, the PVR from
//! `KVM_GET_SREGS`, and the SPRs KVM exposes through ONE_REG.

use crate::kvm::bindings::*;
use firmware::{CpuState, Reg};

const fn one_reg(size: u64, index: u64) -> u64 {
    KVM_REG_PPC | size | index
}

/// SPRs read through ONE_REG for the dump (index from `asm/kvm.h`). Registers without a
/// ONE_REG (CFAR, PIR) are derived or left 0.
pub const ONE_REG_SPRS: [(Reg, u64); 27] = [
    (Reg::Dar, KVM_REG_PPC_DAR),
    (Reg::Dsisr, KVM_REG_PPC_DSISR),
    (Reg::Amr, KVM_REG_PPC_AMR),
    (Reg::Uamor, one_reg(KVM_REG_SIZE_U64, 0x0f)),
    (Reg::Iamr, one_reg(KVM_REG_SIZE_U64, 0x9f)),
    (Reg::Dscr, KVM_REG_PPC_DSCR),
    (Reg::Spurr, KVM_REG_PPC_SPURR),
    (Reg::Fpscr, KVM_REG_PPC_FPSCR),
    (Reg::Vscr, KVM_REG_PPC_VSCR),
    (Reg::Tfhar, one_reg(KVM_REG_SIZE_U64, 0xa0)),
    (Reg::Tfiar, one_reg(KVM_REG_SIZE_U64, 0xa1)),
    (Reg::Texasr, one_reg(KVM_REG_SIZE_U64, 0xa2)),
    (Reg::Fscr, one_reg(KVM_REG_SIZE_U64, 0xa3)),
    (Reg::Pspb, one_reg(KVM_REG_SIZE_U32, 0xa4)),
    (Reg::Ebbhr, one_reg(KVM_REG_SIZE_U64, 0xa5)),
    (Reg::Ebbrr, one_reg(KVM_REG_SIZE_U64, 0xa6)),
    (Reg::Bescr, one_reg(KVM_REG_SIZE_U64, 0xa7)),
    (Reg::Tar, one_reg(KVM_REG_SIZE_U64, 0xa8)),
    (Reg::Dpdes, one_reg(KVM_REG_SIZE_U64, 0xa9)),
    (Reg::Dawr0, KVM_REG_PPC_DAWR),
    (Reg::Dawrx0, KVM_REG_PPC_DAWRX),
    (Reg::Ciabr, KVM_REG_PPC_CIABR),
    (Reg::Ic, one_reg(KVM_REG_SIZE_U64, 0xad)),
    (Reg::Vtb, one_reg(KVM_REG_SIZE_U64, 0xae)),
    (Reg::Acop, one_reg(KVM_REG_SIZE_U64, 0xb3)),
    (Reg::Vrsave, one_reg(KVM_REG_SIZE_U32, 0xb4)),
    (Reg::Wort, one_reg(KVM_REG_SIZE_U64, 0xb9)),
];

/// Builds the state of vCPU `id` from its registers, PVR and the ONE_REG values that could be
/// read (`sprs`; missing ones stay 0).
pub fn cpu_state(id: u32, regs: &kvm_regs, pvr: u32, sprs: &[(Reg, u64)]) -> CpuState {
    let mut s = CpuState::new(id);
    s.gpr = regs.gpr;
    s.set(Reg::Nia, regs.pc)
        .set(Reg::Msr, regs.msr)
        .set(Reg::Cr, regs.cr)
        .set(Reg::Ctr, regs.ctr)
        .set(Reg::Lr, regs.lr)
        .set(Reg::Xer, regs.xer)
        .set(Reg::Srr0, regs.srr0)
        .set(Reg::Srr1, regs.srr1)
        .set(Reg::Sprg0, regs.sprg0)
        .set(Reg::Sprg1, regs.sprg1)
        .set(Reg::Sprg2, regs.sprg2)
        .set(Reg::Sprg3, regs.sprg3)
        .set(Reg::Pvr, pvr.into())
        .set(Reg::Pir, id.into());
    for (reg, v) in sprs {
        s.set(*reg, *v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kvm_registers_to_named_state() {
        let mut regs = kvm_regs {
            pc: 0xc000_0000_0000_1234,
            msr: 0x8000_0000_0000_1033,
            cr: 0x1_2244_8800,
            lr: 7,
            ..Default::default()
        };
        regs.gpr[1] = 0xc000_0000_0200_0000;
        regs.gpr[31] = 31;
        let s = cpu_state(3, &regs, 0x004e_1202, &[(Reg::Dar, 0xdead), (Reg::Tar, 9)]);
        assert_eq!(s.id, 3);
        assert_eq!(s.gpr[1], 0xc000_0000_0200_0000);
        assert_eq!(s.gpr[31], 31);
        assert_eq!(s.get(Reg::Nia), regs.pc);
        assert_eq!(s.get(Reg::Msr), regs.msr);
        assert_eq!(
            s.get(Reg::Cr),
            0x2244_8800,
            "CR keeps its 32 architected bits"
        );
        assert_eq!(s.get(Reg::Lr), 7);
        assert_eq!(s.get(Reg::Pvr), 0x004e_1202);
        assert_eq!(s.get(Reg::Pir), 3);
        assert_eq!(
            (s.get(Reg::Dar), s.get(Reg::Tar), s.get(Reg::Dsisr)),
            (0xdead, 9, 0)
        );
    }

    #[test]
    fn one_reg_ids_have_the_size_their_register_needs() {
        for (reg, id) in ONE_REG_SPRS {
            let size = kvm_reg_size(id);
            assert!(size == 4 || size == 8, "{reg:?}");
            assert_eq!(id & !0xff & !KVM_REG_SIZE_MASK, KVM_REG_PPC, "{reg:?}");
        }
        let mut ids: Vec<u64> = ONE_REG_SPRS.iter().map(|(_, i)| i & 0xff).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), ONE_REG_SPRS.len(), "no register read twice");
    }
}
