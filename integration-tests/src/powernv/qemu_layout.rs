//! QEMU 11.1's powernv register data, rebuilt from its documented behaviour (spec 6.2 and the
//! field-by-field reading of `hw/ppc/pnv_mpipl.c`), so the bench can show what Linux makes of
//! it: entry offset 0, core state 0xFF, no CR, CTR/DAR/DSISR/CFAR written twice, HMEER last.

use firmware::{CpuState, Reg};

pub const HEADER: usize = 0x18;
pub const ENTRIES: usize = 32 + 34;
/// QEMU's per-thread stride.
pub const STRIDE: usize = HEADER + ENTRIES * 16;

const GPR: u32 = 1;
const SPR: u32 = 2;

/// QEMU's SPR entries in its order: (SPR number, value). The first CTR is read from the SPR
/// array, where QEMU does not keep CTR, so it is 0; the later one carries the real value.
fn sprs(c: &CpuState) -> Vec<(u32, u64)> {
    let v = |r: Reg| c.get(r);
    vec![
        (31, v(Reg::Acop)),
        (29, v(Reg::Amr)),
        (806, v(Reg::Bescr)),
        (28, v(Reg::Cfar)),
        (187, v(Reg::Ciabr)),
        (9, 0),
        (152, v(Reg::Ctrl)),
        (1013, v(Reg::Dabr)),
        (1015, v(Reg::Dabrx)),
        (19, v(Reg::Dar)),
        (180, v(Reg::Dawr0)),
        (181, v(Reg::Dawr1)),
        (188, v(Reg::Dawrx0)),
        (189, v(Reg::Dawrx1)),
        (176, v(Reg::Dpdes)),
        (17, v(Reg::Dscr)),
        (18, v(Reg::Dsisr)),
        (804, v(Reg::Ebbhr)),
        (805, v(Reg::Ebbrr)),
        (153, v(Reg::Fscr)),
        (9, v(Reg::Ctr)),
        (19, v(Reg::Dar)),
        (18, v(Reg::Dsisr)),
        (8, v(Reg::Lr)),
        (0x7d1, v(Reg::Msr)),
        (0x7d0, v(Reg::Nia)),
        (1, v(Reg::Xer)),
        (26, v(Reg::Srr0)),
        (27, v(Reg::Srr1)),
        (314, v(Reg::Hsrr0)),
        (315, v(Reg::Hsrr1)),
        (28, v(Reg::Cfar)),
        (336, v(Reg::Hmer)),
        (337, 0),
    ]
}

/// One thread record as QEMU writes it.
pub fn record(c: &CpuState) -> Vec<u8> {
    let mut b = vec![0u8; STRIDE];
    b[0..4].copy_from_slice(&c.id.to_be_bytes());
    b[4] = 0xff;
    // offset 0 (bytes 8..12 stay zero)
    b[12..16].copy_from_slice(&(ENTRIES as u32).to_be_bytes());
    b[16..20].copy_from_slice(&16u32.to_be_bytes());
    b[20..24].copy_from_slice(&16u32.to_be_bytes());
    let entries = c
        .gpr
        .iter()
        .enumerate()
        .map(|(n, &v)| (GPR, n as u32, v))
        .chain(sprs(c).into_iter().map(|(n, v)| (SPR, n, v)));
    for (i, (t, n, v)) in entries.enumerate() {
        let o = HEADER + 16 * i;
        b[o..o + 4].copy_from_slice(&t.to_be_bytes());
        b[o + 4..o + 8].copy_from_slice(&n.to_be_bytes());
        b[o + 8..o + 16].copy_from_slice(&v.to_be_bytes());
    }
    b
}
