//! The crashing (first) kernel: what Linux does from boot to `ibm,os-term`.

use firmware::fadump::{CMD_REGISTER, CMD_UNREGISTER};
use firmware::memory::ram_ranges;
use firmware::rtas::RtasCall;

use super::guest::{CallResult, Guest, RTAS_ARGS_ADDR};
use super::KernelGen;
use crate::linux::pt_regs::{PtRegs, PT_REGS_SIZE};
pub use crate::linux::{page_align, CPU_MASK_SIZE, MAGIC_FADMPINF, MAGIC_FADMPSIG, PAGE_SIZE};

/// `COMMAND_LINE_SIZE`: the parameter area's length.
pub const PARAM_AREA_SIZE: u64 = 2048;
/// Where the model keeps its static `fdm` (the registration structure) and the os-term message.
pub const FDM_ADDR: u64 = 0x9000;
pub const OS_TERM_MSG_ADDR: u64 = 0xa000;
/// Where the kernel's vmcoreinfo note lives (inside boot memory, so the copy relocates it).
pub const VMCOREINFO_ADDR: u64 = 0x4_0000;
pub const VMCOREINFO_SIZE: u64 = 0x200;

pub const TYPE_CPU: u16 = 0x0001;
pub const TYPE_HPTE: u16 = 0x0002;
pub const TYPE_RMR: u16 = 0x0011;
pub const TYPE_PARAM: u16 = 0x0100;

/// One section the kernel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionSpec {
    pub data_type: u16,
    pub source: u64,
    pub len: u64,
    pub dest: u64,
}

/// Everything the first kernel decided, for the test to compare against.
#[derive(Debug, Clone)]
pub struct Registration {
    pub gen: KernelGen,
    pub sections: Vec<SectionSpec>,
    pub boot_regions: Vec<(u64, u64)>,
    pub boot_mem_size: u64,
    pub reserve_start: u64,
    pub fadumphdr_addr: u64,
    pub param_area: Option<u64>,
    pub cpu_size: u64,
    pub hpte_size: u64,
    pub status: i32,
}

impl Registration {
    /// The end of the memory the fadump reservation covers (crash-info header page included).
    pub fn reserve_end(&self) -> u64 {
        let hdr = 0x28 + PT_REGS_SIZE as u64 + CPU_MASK_SIZE as u64;
        page_align(self.fadumphdr_addr + hdr)
    }

    /// The structure bytes as Linux sends them.
    pub fn structure_bytes(&self) -> Vec<u8> {
        structure_bytes(&self.sections)
    }

    /// The REGISTER length each generation passes.
    pub fn register_len(&self) -> u32 {
        match self.gen {
            KernelGen::V6_1 => 160,
            KernelGen::V6_12 => 40 + 40 * self.sections.len() as u32,
        }
    }
}

/// Header + sections, big-endian, first section at 0x28, everything else 0.
pub fn structure_bytes(sections: &[SectionSpec]) -> Vec<u8> {
    let mut b = vec![0u8; 0x28 + 0x28 * sections.len()];
    b[0..4].copy_from_slice(&1u32.to_be_bytes());
    b[4..6].copy_from_slice(&(sections.len() as u16).to_be_bytes());
    b[8..12].copy_from_slice(&0x28u32.to_be_bytes());
    for (i, s) in sections.iter().enumerate() {
        let o = 0x28 + 0x28 * i;
        b[o..o + 4].copy_from_slice(&1u32.to_be_bytes());
        b[o + 4..o + 6].copy_from_slice(&s.data_type.to_be_bytes());
        b[o + 8..o + 16].copy_from_slice(&s.source.to_be_bytes());
        b[o + 16..o + 24].copy_from_slice(&s.len.to_be_bytes());
        b[o + 32..o + 40].copy_from_slice(&s.dest.to_be_bytes());
    }
    b
}

/// Reads `ibm,configure-kernel-dump-sizes` the way Linux does: `len / 12` triples of
/// (type, size_hi, size_lo); only types 1 (CPU) and 2 (HPTE) are recognised.
pub fn read_sizes(guest: &Guest) -> (u64, u64) {
    let Some(b) = guest.rtas_prop("ibm,configure-kernel-dump-sizes") else {
        return (0, 0);
    };
    let cell = |i: usize| u64::from(u32::from_be_bytes(b[4 * i..4 * i + 4].try_into().unwrap()));
    let (mut cpu, mut hpte) = (0, 0);
    for t in 0..b.len() / 12 {
        let size = (cell(3 * t + 1) << 32) | cell(3 * t + 2);
        match cell(3 * t) {
            1 => cpu = size,
            2 => hpte = size,
            _ => {}
        }
    }
    (cpu, hpte)
}

/// Boot-time setup and REGISTER. `param_area`: ≥6.10's parameter area address, when used.
pub fn register(
    guest: &mut Guest,
    gen: KernelGen,
    boot_mem_size: u64,
    param_area: Option<u64>,
) -> Result<Registration, String> {
    if guest.token("ibm,configure-kernel-dump").is_none() {
        return Err("Firmware-Assisted Dump is not supported on this hardware".into());
    }
    let (cpu_size, hpte_size) = read_sizes(guest);
    let ram = ram_ranges(&guest.mem);

    // Boot memory: ≥6.10 takes memory from 0 across holes in up to 7 regions; older kernels
    // assume one region from 0 (the firmware refuses it when it crosses a hole).
    let boot_regions = match gen {
        KernelGen::V6_1 => vec![(0, boot_mem_size)],
        KernelGen::V6_12 => {
            let mut left = boot_mem_size;
            let mut v = Vec::new();
            for r in &ram {
                if left == 0 {
                    break;
                }
                let n = left.min(r.len());
                v.push((r.start(), n));
                left -= n;
            }
            if left != 0 || v.len() > 7 {
                return Err("boot memory does not fit".into());
            }
            v
        }
    };
    let boot_mem_top = boot_regions.last().map(|(s, l)| s + l).unwrap();
    let reserve_start = ram
        .iter()
        .find(|r| r.end() > boot_mem_top)
        .map(|r| page_align(r.start().max(boot_mem_top)))
        .ok_or("no memory above boot memory")?;

    let cpu_dest = reserve_start;
    let hpte_dest = cpu_dest + cpu_size;
    let mut next = page_align(hpte_dest + hpte_size);
    let mut sections = vec![
        SectionSpec {
            data_type: TYPE_CPU,
            source: 0,
            len: cpu_size,
            dest: cpu_dest,
        },
        SectionSpec {
            data_type: TYPE_HPTE,
            source: 0,
            len: hpte_size,
            dest: hpte_dest,
        },
    ];
    for (src, len) in &boot_regions {
        sections.push(SectionSpec {
            data_type: TYPE_RMR,
            source: *src,
            len: *len,
            dest: next,
        });
        next += len;
    }
    let fadumphdr_addr = next;
    if let (KernelGen::V6_12, Some(p)) = (gen, param_area) {
        sections.push(SectionSpec {
            data_type: TYPE_PARAM,
            source: p,
            len: PARAM_AREA_SIZE,
            dest: p,
        });
        guest.write(p, b"nr_cpus=1 fadump_extra=bench\0");
    }

    let ncpus = guest.cpus.len();
    write_crash_info_header(
        guest,
        gen,
        fadumphdr_addr,
        u32::MAX,
        &PtRegs::default(),
        0..ncpus,
    );
    guest.write(VMCOREINFO_ADDR, &vmcoreinfo_blob());

    let mut reg = Registration {
        gen,
        sections,
        boot_regions,
        boot_mem_size,
        reserve_start,
        fadumphdr_addr,
        param_area: param_area.filter(|_| gen == KernelGen::V6_12),
        cpu_size,
        hpte_size,
        status: 0,
    };
    guest.write(FDM_ADDR, &reg.structure_bytes());
    reg.status = guest.configure_kernel_dump(CMD_REGISTER, FDM_ADDR as u32, reg.register_len());
    Ok(reg)
}

/// The kernel's vmcoreinfo note contents (recognisable text).
pub fn vmcoreinfo_blob() -> Vec<u8> {
    let mut b =
        b"OSRELEASE=6.12.0-bench\nPAGESIZE=65536\nSYMBOL(_stext)=c000000000000000\n".to_vec();
    b.resize(VMCOREINFO_SIZE as usize, 0);
    b
}

/// Writes the crash-info header in the guest's native (little-endian) byte order.
pub fn write_crash_info_header(
    guest: &Guest,
    gen: KernelGen,
    at: u64,
    crashing_cpu: u32,
    regs: &PtRegs,
    online: impl IntoIterator<Item = usize>,
) {
    let mut mask = vec![0u8; CPU_MASK_SIZE];
    for c in online {
        mask[c / 8] |= 1 << (c % 8);
    }
    let mut h = Vec::new();
    match gen {
        KernelGen::V6_12 => {
            h.extend_from_slice(&MAGIC_FADMPSIG.to_le_bytes());
            h.extend_from_slice(&1u32.to_le_bytes());
            h.extend_from_slice(&crashing_cpu.to_le_bytes());
            h.extend_from_slice(&VMCOREINFO_ADDR.to_le_bytes());
            h.extend_from_slice(&VMCOREINFO_SIZE.to_le_bytes());
            h.extend_from_slice(&(PT_REGS_SIZE as u32).to_le_bytes());
            h.extend_from_slice(&(CPU_MASK_SIZE as u32).to_le_bytes());
        }
        KernelGen::V6_1 => {
            h.extend_from_slice(&MAGIC_FADMPINF.to_le_bytes());
            let elfcorehdr = at + PAGE_SIZE;
            h.extend_from_slice(&elfcorehdr.to_le_bytes());
            h.extend_from_slice(&crashing_cpu.to_le_bytes());
            h.extend_from_slice(&[0; 4]);
        }
    }
    h.extend_from_slice(&regs.to_le_bytes());
    h.extend_from_slice(&mask);
    guest.write(at, &h);
}

/// The crash, first half: `crash_fadump()` fills the header (crashing CPU, its saved registers,
/// the online mask) and formats the panic message; the other CPUs keep running.
pub fn prepare_crash(
    guest: &mut Guest,
    reg: &Registration,
    crashing_cpu: u32,
    kernel_regs: &PtRegs,
    online: &[u32],
) {
    write_crash_info_header(
        guest,
        reg.gen,
        reg.fadumphdr_addr,
        crashing_cpu,
        kernel_regs,
        online.iter().map(|c| *c as usize),
    );
    guest.write(OS_TERM_MSG_ADDR, b"OS panic: sysrq triggered crash\0");
}

/// `rtas_os_term()` builds its argument block ...
pub fn os_term_args(guest: &Guest) {
    let token = guest
        .token(RtasCall::IbmOsTerm.name())
        .expect("ibm,os-term published");
    guest.write_args_block(RTAS_ARGS_ADDR, token, &[OS_TERM_MSG_ADDR as u32], 1);
}

/// ... and enters RTAS.
pub fn os_term_enter(guest: &mut Guest) -> CallResult {
    guest.enter_rtas(RTAS_ARGS_ADDR, 1, 1)
}

/// The crash, second half: `rtas_os_term()` calls `ibm,os-term` with the message.
pub fn os_term(guest: &mut Guest) -> CallResult {
    os_term_args(guest);
    os_term_enter(guest)
}

/// `fadump_cleanup()` on a normal shutdown: UNREGISTER with the full-size buffer.
pub fn unregister(guest: &mut Guest) -> i32 {
    guest.configure_kernel_dump(CMD_UNREGISTER, FDM_ADDR as u32, 440)
}
