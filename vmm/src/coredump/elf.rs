//! The ELF core file of a paused pseries guest, as drgn and crash read a kernel core: an
//! `ET_CORE` / `EM_PPC64` header in the guest's byte order, one `PT_NOTE` holding a "CORE"
//! `NT_PRSTATUS` per vCPU in vCPU order (drgn indexes them by note order = CPU number) and the
//! guest's own `VMCOREINFO` note, then one `PT_LOAD` per RAM range (`p_paddr` = guest
//! physical, `p_vaddr` = its linear-map address, as the kernel's own `/proc/vmcore` does).
//!
//! Pure: builds bytes from registers and the RAM map; [`super`] streams the memory.

use firmware::{CpuState, GuestRange, Reg};

/// `e_machine` of 64-bit PowerPC.
pub const EM_PPC64: u16 = 21;
const ET_CORE: u16 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// `NT_PRSTATUS`.
pub const NT_PRSTATUS: u32 = 1;
const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
/// `sizeof(struct elf_prstatus)` on ppc64: 112 bytes of common part, 48 registers
/// (`ELF_NGREG`), `pr_fpvalid`, padding.
pub const PRSTATUS_LEN: usize = 504;
const PR_REG_OFFSET: usize = 112;
/// Where RAM data starts in the file, and each `PT_LOAD`'s alignment: 64 KiB, the guest's
/// page size, so holes can be skipped page by page.
pub const DATA_ALIGN: u64 = 64 << 10;
/// The linear map's base: `p_vaddr = PAGE_OFFSET | paddr`.
pub const PAGE_OFFSET: u64 = 0xc000_0000_0000_0000;
/// `e_flags`: ELFv2 ABI, as the kernel's fadump header writes for little-endian.
const EF_PPC64_ABI_V2: u32 = 2;

/// The guest's byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// ppc64le (`ELFDATA2LSB`).
    Little,
    /// ppc64 (`ELFDATA2MSB`).
    Big,
}

impl Endian {
    pub fn u16(self, v: u16) -> [u8; 2] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    pub fn u32(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    pub fn u64(self, v: u64) -> [u8; 8] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    pub fn read_u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }
    pub fn read_u64(self, b: [u8; 8]) -> u64 {
        match self {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        }
    }
}

/// One ELF note: name, type, descriptor, each padded to 4 bytes.
pub fn note(e: Endian, name: &str, kind: u32, desc: &[u8]) -> Vec<u8> {
    let name_len = name.len() + 1;
    let mut out = Vec::with_capacity(12 + pad4(name_len) + pad4(desc.len()));
    out.extend_from_slice(&e.u32(name_len as u32));
    out.extend_from_slice(&e.u32(desc.len() as u32));
    out.extend_from_slice(&e.u32(kind));
    out.extend_from_slice(name.as_bytes());
    out.resize(12 + pad4(name_len), 0);
    out.extend_from_slice(desc);
    out.resize(12 + pad4(name_len) + pad4(desc.len()), 0);
    out
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// `struct elf_prstatus` of one vCPU: `pr_pid` 0 (the kernel's idle-task convention for a
/// CPU), `pr_reg` = `struct pt_regs` (gpr[32], nip, msr, orig_gpr3, ctr, link, xer, ccr,
/// softe, trap, dar, dsisr, result, 4 unused) with orig_gpr3 = r3 and softe/trap/result 0, as
/// QEMU writes. `None` (a vCPU whose registers are unknown) gives all zeros, keeping the
/// note's place in CPU order.
pub fn prstatus(e: Endian, cpu: Option<&CpuState>) -> Vec<u8> {
    let mut out = vec![0u8; PRSTATUS_LEN];
    let Some(s) = cpu else {
        return out;
    };
    let mut regs = [0u64; 48];
    regs[..32].copy_from_slice(&s.gpr);
    regs[32] = s.get(Reg::Nia);
    regs[33] = s.get(Reg::Msr);
    regs[34] = s.gpr[3];
    regs[35] = s.get(Reg::Ctr);
    regs[36] = s.get(Reg::Lr);
    regs[37] = s.get(Reg::Xer);
    regs[38] = s.get(Reg::Cr);
    regs[41] = s.get(Reg::Dar);
    regs[42] = s.get(Reg::Dsisr);
    for (i, r) in regs.iter().enumerate() {
        let at = PR_REG_OFFSET + 8 * i;
        out[at..at + 8].copy_from_slice(&e.u64(*r));
    }
    out
}

/// Where each RAM range's data goes in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Header, program headers and notes: the file's first bytes.
    pub head: Vec<u8>,
    /// `(file offset, guest range)` of each `PT_LOAD`, in RAM order.
    pub loads: Vec<(u64, GuestRange)>,
    /// The whole file's size.
    pub file_len: u64,
}

/// Builds the header, the program headers and the notes (`notes`: the concatenated notes, as
/// [`note`] makes them) for `ram`, and places each range's data.
pub fn layout(e: Endian, notes: &[u8], ram: &[GuestRange]) -> Layout {
    let phnum = 1 + ram.len();
    let notes_off = (EHDR_LEN + PHDR_LEN * phnum) as u64;
    let mut data_off = (notes_off + notes.len() as u64).next_multiple_of(DATA_ALIGN);
    let mut loads = Vec::with_capacity(ram.len());
    for r in ram {
        loads.push((data_off, *r));
        data_off = (data_off + r.len()).next_multiple_of(DATA_ALIGN);
    }
    let file_len = loads
        .last()
        .map_or(notes_off + notes.len() as u64, |(o, r)| o + r.len());

    let mut h = Vec::with_capacity(notes_off as usize + notes.len());
    h.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2]);
    h.push(match e {
        Endian::Little => 1,
        Endian::Big => 2,
    });
    h.push(1); // EV_CURRENT
    h.resize(16, 0);
    h.extend_from_slice(&e.u16(ET_CORE));
    h.extend_from_slice(&e.u16(EM_PPC64));
    h.extend_from_slice(&e.u32(1));
    h.extend_from_slice(&e.u64(0)); // e_entry
    h.extend_from_slice(&e.u64(EHDR_LEN as u64)); // e_phoff
    h.extend_from_slice(&e.u64(0)); // e_shoff
    h.extend_from_slice(&e.u32(match e {
        Endian::Little => EF_PPC64_ABI_V2,
        Endian::Big => 0,
    }));
    h.extend_from_slice(&e.u16(EHDR_LEN as u16));
    h.extend_from_slice(&e.u16(PHDR_LEN as u16));
    h.extend_from_slice(&e.u16(phnum as u16));
    h.extend_from_slice(&e.u16(0)); // e_shentsize
    h.extend_from_slice(&e.u16(0)); // e_shnum
    h.extend_from_slice(&e.u16(0)); // e_shstrndx
    let mut phdr = |kind: u32, flags: u32, off: u64, vaddr: u64, paddr: u64, len: u64, al: u64| {
        h.extend_from_slice(&e.u32(kind));
        h.extend_from_slice(&e.u32(flags));
        for v in [off, vaddr, paddr, len, len, al] {
            h.extend_from_slice(&e.u64(v));
        }
    };
    phdr(PT_NOTE, 0, notes_off, 0, 0, notes.len() as u64, 4);
    for (off, r) in &loads {
        phdr(
            PT_LOAD,
            7, // RWX
            *off,
            PAGE_OFFSET | r.start(),
            r.start(),
            r.len(),
            DATA_ALIGN,
        );
    }
    h.extend_from_slice(notes);
    Layout {
        head: h,
        loads,
        file_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16le(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32le(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64le(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn prstatus_puts_pt_regs_where_the_kernel_does() {
        let mut s = CpuState::new(1);
        for i in 0..32 {
            s.gpr[i] = 0x100 + i as u64;
        }
        s.set(Reg::Nia, 0xc000_0000_0012_3456)
            .set(Reg::Msr, 0x8000_0000_0000_9033)
            .set(Reg::Ctr, 0xc7)
            .set(Reg::Lr, 0xc000_0000_0000_0abc)
            .set(Reg::Xer, 0x20)
            .set(Reg::Cr, 0x4400_0022)
            .set(Reg::Dar, 0xdada)
            .set(Reg::Dsisr, 0x4200_0000);
        let p = prstatus(Endian::Little, Some(&s));
        assert_eq!(p.len(), PRSTATUS_LEN);
        assert_eq!(u32le(&p, 32), 0, "pr_pid");
        let reg = |i: usize| u64le(&p, 112 + 8 * i);
        assert_eq!(reg(1), 0x101, "r1, the stack pointer drgn unwinds from");
        assert_eq!(reg(31), 0x11f);
        assert_eq!(reg(32), 0xc000_0000_0012_3456, "nip");
        assert_eq!(reg(33), 0x8000_0000_0000_9033, "msr");
        assert_eq!(reg(34), 0x103, "orig_gpr3");
        assert_eq!(
            (reg(35), reg(36), reg(37), reg(38)),
            (0xc7, 0xc000_0000_0000_0abc, 0x20, 0x4400_0022)
        );
        assert_eq!((reg(39), reg(40)), (0, 0), "softe, trap");
        assert_eq!((reg(41), reg(42)), (0xdada, 0x4200_0000), "dar, dsisr");
        assert!(p[112 + 8 * 43..].iter().all(|&b| b == 0));
        assert!(prstatus(Endian::Little, None).iter().all(|&b| b == 0));
        let be = prstatus(Endian::Big, Some(&s));
        assert_eq!(&be[112 + 8..112 + 16], &0x101u64.to_be_bytes());
    }

    #[test]
    fn notes_are_padded_and_counted() {
        let n = note(Endian::Little, "CORE", NT_PRSTATUS, &[1, 2, 3, 4, 5]);
        assert_eq!((u32le(&n, 0), u32le(&n, 4), u32le(&n, 8)), (5, 5, 1));
        assert_eq!(&n[12..17], b"CORE\0");
        assert_eq!(n.len(), 12 + 8 + 8);
        assert_eq!(&n[20..25], &[1, 2, 3, 4, 5]);
    }

    #[test]
    fn layout_places_each_range_aligned_with_its_linear_map_address() {
        let ram = [
            GuestRange::new(0, 0x4000_0000).unwrap(),
            GuestRange::new(0x1_0000_0000, 0x10_0000).unwrap(),
        ];
        let notes = note(Endian::Little, "CORE", NT_PRSTATUS, &[0; PRSTATUS_LEN]);
        let l = layout(Endian::Little, &notes, &ram);
        let h = &l.head;
        assert_eq!(&h[..7], &[0x7f, b'E', b'L', b'F', 2, 1, 1]);
        assert_eq!((u16le(h, 16), u16le(h, 18)), (ET_CORE, EM_PPC64));
        assert_eq!(u64le(h, 32), 64, "e_phoff");
        assert_eq!(u16le(h, 56), 3, "e_phnum");
        let ph = |i: usize| 64 + 56 * i;
        assert_eq!(u32le(h, ph(0)), PT_NOTE);
        let notes_off = u64le(h, ph(0) + 8) as usize;
        assert_eq!(&h[notes_off..], &notes[..], "notes right after the headers");
        assert_eq!(u64le(h, ph(0) + 32), notes.len() as u64);
        for (i, r) in ram.iter().enumerate() {
            let p = ph(i + 1);
            assert_eq!(u32le(h, p), PT_LOAD);
            let off = u64le(h, p + 8);
            assert_eq!(off % DATA_ALIGN, 0);
            assert_eq!(off, l.loads[i].0);
            assert_eq!(u64le(h, p + 16), PAGE_OFFSET | r.start(), "p_vaddr");
            assert_eq!(u64le(h, p + 24), r.start(), "p_paddr");
            assert_eq!((u64le(h, p + 32), u64le(h, p + 40)), (r.len(), r.len()));
        }
        assert!(l.loads[1].0 >= l.loads[0].0 + ram[0].len(), "no overlap");
        assert_eq!(l.file_len, l.loads[1].0 + ram[1].len());
    }
}
