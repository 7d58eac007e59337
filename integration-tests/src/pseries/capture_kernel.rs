//! The capture kernel: what Linux does with `ibm,kernel-dump` on the boot after the crash.

use std::collections::BTreeMap;

use firmware::fadump::CMD_INVALIDATE;
use firmware::GuestRange;

use super::first_kernel::{
    CPU_MASK_SIZE, MAGIC_FADMPINF, MAGIC_FADMPSIG, TYPE_CPU, TYPE_HPTE, TYPE_PARAM, TYPE_RMR,
};
use super::guest::Guest;
use super::KernelGen;
use crate::bytes::{be16, be32, be64, le32, le64};
use crate::linux::pt_regs::{PtRegs, PT_REGS_SIZE};

/// One section of `ibm,kernel-dump` as the capture kernel decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpedSection {
    pub data_type: u16,
    pub error_flags: u16,
    pub source: u64,
    pub len: u64,
    pub bytes_dumped: u64,
    pub dest: u64,
}

/// Why the capture kernel refuses the dump (it then INVALIDATEs and exports no vmcore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    NoDumpActive,
    Malformed(String),
    DumpError(String),
    Header(String),
    CpuNotes(String),
}

/// One PRSTATUS note of the vmcore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prstatus {
    pub cpu: u32,
    pub regs: PtRegs,
}

/// A PT_LOAD: physical range `[paddr, paddr+size)` whose bytes are read at `read_from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub paddr: u64,
    pub size: u64,
    pub read_from: u64,
}

/// What `/proc/vmcore` would contain.
#[derive(Debug, Clone)]
pub struct Vmcore {
    pub status: u16,
    pub sections: Vec<DumpedSection>,
    pub prstatus: Vec<Prstatus>,
    pub loads: Vec<Load>,
    pub vmcoreinfo: Vec<u8>,
    pub boot_mem_top: u64,
    pub reserve: (u64, u64),
    /// Every register entry of every CPU block, by name (beyond what Linux keeps).
    pub raw_registers: Vec<BTreeMap<String, u64>>,
    pub bootargs_append: Option<String>,
}

impl Vmcore {
    /// Reads physical memory of the crashed kernel through the PT_LOAD mapping.
    pub fn read_phys(&self, guest: &Guest, paddr: u64, len: usize) -> Option<Vec<u8>> {
        let l = self
            .loads
            .iter()
            .find(|l| paddr >= l.paddr && paddr + len as u64 <= l.paddr + l.size)?;
        Some(guest.read(l.read_from + (paddr - l.paddr), len))
    }
}

fn decode_section(b: &[u8], o: usize) -> DumpedSection {
    DumpedSection {
        data_type: be16(b, o + 4),
        error_flags: be16(b, o + 6),
        source: be64(b, o + 8),
        len: be64(b, o + 16),
        bytes_dumped: be64(b, o + 24),
        dest: be64(b, o + 32),
    }
}

/// The whole capture-boot flow: DT scan, section checks, crash-info header checks, CPU notes,
/// vmcore layout. On `Err` Linux calls INVALIDATE; the caller decides whether to model that.
pub fn process(guest: &Guest, gen: KernelGen) -> Result<Vmcore, Reject> {
    if guest.token("ibm,configure-kernel-dump").is_none() {
        return Err(Reject::NoDumpActive);
    }
    let kd = guest
        .rtas_prop("ibm,kernel-dump")
        .ok_or(Reject::NoDumpActive)?;
    if kd.len() < 0x28 {
        return Err(Reject::Malformed(format!("{} bytes", kd.len())));
    }
    let status = be16(&kd, 6);
    let n = be16(&kd, 4) as usize;
    let first = be32(&kd, 8) as usize;

    // --- early DT scan: decode the configuration -------------------------------------------
    let sections: Vec<DumpedSection>;
    let (cpu, boot, param);
    match gen {
        KernelGen::V6_1 => {
            // Fixed offsets 0x28 / 0x50 / 0x78, whatever the header says.
            if kd.len() < 0xa0 {
                return Err(Reject::Malformed("shorter than 3 sections".into()));
            }
            sections = (0..3)
                .map(|i| decode_section(&kd, 0x28 + 0x28 * i))
                .collect();
            cpu = sections[0];
            boot = vec![sections[2]];
            param = None;
        }
        KernelGen::V6_12 => {
            if first + 0x28 * n > kd.len() {
                return Err(Reject::Malformed("sections past the property".into()));
            }
            sections = (0..n)
                .map(|i| decode_section(&kd, first + 0x28 * i))
                .collect();
            cpu = *sections
                .iter()
                .find(|s| s.data_type == TYPE_CPU)
                .ok_or(Reject::Malformed("no CPU section".into()))?;
            boot = sections
                .iter()
                .filter(|s| s.data_type == TYPE_RMR)
                .copied()
                .collect();
            param = sections.iter().find(|s| s.data_type == TYPE_PARAM).copied();
        }
    }
    if boot.is_empty() {
        return Err(Reject::Malformed("no boot memory section".into()));
    }
    let boot_mem_size: u64 = boot.iter().map(|s| s.len).sum();
    let boot_mem_top = boot.iter().map(|s| s.source + s.len).max().unwrap();
    let boot_mem_dest = boot
        .iter()
        .find(|s| s.source == 0)
        .ok_or(Reject::Malformed("no boot region at 0".into()))?
        .dest;
    let fadumphdr_addr = boot_mem_dest + boot_mem_size;
    let reserve_start = cpu.dest;

    // --- section checks ---------------------------------------------------------------------
    match gen {
        KernelGen::V6_1 => {
            let rmr = boot[0];
            if status == 0x2000 {
                return Err(Reject::DumpError("dump status 0x2000".into()));
            }
            if cpu.error_flags != 0 || rmr.error_flags != 0 {
                return Err(Reject::DumpError("section error flags".into()));
            }
            if rmr.bytes_dumped != rmr.len {
                return Err(Reject::DumpError("boot memory dump incomplete".into()));
            }
            if cpu.bytes_dumped == 0 {
                return Err(Reject::DumpError("no CPU state".into()));
            }
        }
        KernelGen::V6_12 => {
            for s in &sections {
                let complete = s.error_flags == 0 && s.bytes_dumped == s.len;
                match s.data_type {
                    TYPE_CPU | TYPE_HPTE | TYPE_RMR if !complete => {
                        return Err(Reject::DumpError(format!(
                            "Dump taken by platform is incomplete (type {:#x})",
                            s.data_type
                        )));
                    }
                    _ => {}
                }
            }
        }
    }

    // --- crash-info header (native endian) ----------------------------------------------------
    let hdr = guest.read(fadumphdr_addr, 0x28 + PT_REGS_SIZE + CPU_MASK_SIZE);
    let magic = le64(&hdr, 0);
    let (crashing_cpu, regs_off, vmcoreinfo) = match gen {
        KernelGen::V6_12 => {
            if magic == MAGIC_FADMPINF {
                return Err(Reject::Header("Old magic number".into()));
            }
            if magic == MAGIC_FADMPSIG.swap_bytes() {
                return Err(Reject::Header("Endianness mismatch".into()));
            }
            if magic != MAGIC_FADMPSIG {
                return Err(Reject::Header("Crash info header is not valid".into()));
            }
            if le32(&hdr, 0x20) as usize != PT_REGS_SIZE
                || le32(&hdr, 0x24) as usize != CPU_MASK_SIZE
            {
                return Err(Reject::Header("pt_regs/cpumask size mismatch".into()));
            }
            let raddr = le64(&hdr, 0x10);
            let size = le64(&hdr, 0x18) as usize;
            // vmcoreinfo inside boot memory was copied with it: read it from the copy.
            let at = relocate(&boot, raddr);
            (le32(&hdr, 0x0c), 0x28, guest.read(at, size))
        }
        KernelGen::V6_1 => {
            if magic != MAGIC_FADMPINF {
                return Err(Reject::Header("Crash info header is not valid".into()));
            }
            (le32(&hdr, 0x10), 0x18, Vec::new())
        }
    };
    let kernel_regs = PtRegs::from_le_bytes(&hdr[regs_off..regs_off + PT_REGS_SIZE]);
    let mask = &hdr[regs_off + PT_REGS_SIZE..regs_off + PT_REGS_SIZE + CPU_MASK_SIZE];
    let online =
        |c: u32| (c as usize) < CPU_MASK_SIZE * 8 && mask[c as usize / 8] & (1 << (c % 8)) != 0;

    // --- CPU notes from the Register Save Area ------------------------------------------------
    let rsa = guest.read(cpu.dest, cpu.len as usize);
    let (prstatus, raw_registers) =
        cpu_notes(&rsa, crashing_cpu, &kernel_regs, online).map_err(Reject::CpuNotes)?;

    // --- vmcore layout --------------------------------------------------------------------------
    let mut loads = Vec::new();
    for s in &boot {
        loads.push(Load {
            paddr: s.source,
            size: s.len,
            read_from: s.dest,
        });
    }
    let reserve_end =
        crate::linux::page_align(fadumphdr_addr + 0x28 + (PT_REGS_SIZE + CPU_MASK_SIZE) as u64);
    let reserve = GuestRange::from_bounds(reserve_start, reserve_end).ok_or(Reject::Malformed(
        "reserved area ends before it starts".into(),
    ))?;
    for r in firmware::memory::ram_ranges(&guest.mem) {
        // Memory above boot_mem_top, minus the fadump reserved area, read in place.
        let Some(above) = GuestRange::from_bounds(r.start().max(boot_mem_top), r.end()) else {
            continue;
        };
        for piece in above.subtract(&[reserve]) {
            loads.push(Load {
                paddr: piece.start(),
                size: piece.len(),
                read_from: piece.start(),
            });
        }
    }
    // Holes between boot regions (≥6.10) below boot_mem_top that are RAM are not in the dump
    // (they are not boot memory and lie below boot_mem_top): nothing to add.

    let bootargs_append = param.and_then(|p| {
        (p.bytes_dumped == p.len && p.error_flags == 0).then(|| {
            let b = guest.read(p.dest, p.len as usize);
            let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        })
    });

    Ok(Vmcore {
        status,
        sections,
        prstatus,
        loads,
        vmcoreinfo,
        boot_mem_top,
        reserve: (reserve_start, reserve_end),
        raw_registers,
        bootargs_append,
    })
}

fn relocate(boot: &[DumpedSection], addr: u64) -> u64 {
    boot.iter()
        .find(|s| addr >= s.source && addr < s.source + s.len)
        .map(|s| s.dest + (addr - s.source))
        .unwrap_or(addr)
}

fn str_to_u64(s: &str) -> u64 {
    let mut b = [0u8; 8];
    b[..s.len()].copy_from_slice(s.as_bytes());
    u64::from_be_bytes(b)
}

fn id_name(id: u64) -> String {
    let b = id.to_be_bytes();
    let end = b.iter().position(|c| *c == 0).unwrap_or(8);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Walks the Register Save Area as Linux does: magic, NumCpus at NumCpusOffset, then per CPU a
/// block that must start with CPUSTRT and runs to CPUEND. (Linux scans for CPUEND without a
/// bound; the model stops at the end of the section and rejects instead of running away.)
#[allow(clippy::type_complexity)]
fn cpu_notes(
    rsa: &[u8],
    crashing_cpu: u32,
    kernel_regs: &PtRegs,
    online: impl Fn(u32) -> bool,
) -> Result<(Vec<Prstatus>, Vec<BTreeMap<String, u64>>), String> {
    if rsa.len() < 0x10 || be64(rsa, 0) != str_to_u64("REGSAVE") {
        return Err("Unable to read register save area".into());
    }
    let nc_off = be32(rsa, 0x0c) as usize;
    if nc_off + 4 > rsa.len() {
        return Err("NumCpusOffset out of range".into());
    }
    let num_cpus = be32(rsa, nc_off);
    let mut at = nc_off + 4;
    let entry = |at: usize| -> Result<(u64, u64), String> {
        if at + 16 > rsa.len() {
            return Err("register entries run past the area".into());
        }
        Ok((be64(rsa, at), be64(rsa, at + 8)))
    };
    let (strt, end) = (str_to_u64("CPUSTRT"), str_to_u64("CPUEND"));
    let mut notes = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..num_cpus {
        let (id, v) = entry(at)?;
        if id != strt {
            return Err("Unable to read CPU state data".into());
        }
        let cpu = (v & 0xffff_ffff) as u32;
        at += 16;
        let mut regs = PtRegs::default();
        let mut all = BTreeMap::new();
        loop {
            let (id, v) = entry(at)?;
            at += 16;
            if id == end {
                break;
            }
            set_regval(&mut regs, id, v);
            all.insert(id_name(id), v);
        }
        raw.push(all);
        if !online(cpu) {
            continue;
        }
        let regs = if cpu == crashing_cpu {
            *kernel_regs
        } else {
            regs
        };
        notes.push(Prstatus { cpu, regs });
    }
    Ok((notes, raw))
}

fn set_regval(r: &mut PtRegs, id: u64, v: u64) {
    let b = id.to_be_bytes();
    if &b[..3] == b"GPR" {
        let digit = |c: u8| c.is_ascii_digit().then(|| u64::from(c - b'0'));
        let idx = match (digit(b[3]), digit(b[4]), b[4]) {
            (Some(t), Some(u), _) => t * 10 + u,
            (Some(u), None, 0) => u,
            _ => return,
        };
        if idx < 32 {
            r.gpr[idx as usize] = v;
        }
        return;
    }
    match id_name(id).as_str() {
        "NIA" => r.nip = v,
        "MSR" => r.msr = v,
        "CTR" => r.ctr = v,
        "LR" => r.link = v,
        "XER" => r.xer = v,
        "CR" => r.ccr = v,
        "DAR" => r.dar = v,
        "DSISR" => r.dsisr = v,
        _ => {}
    }
}

/// `echo 1 > /sys/kernel/fadump/release_mem`: INVALIDATE with the property's bytes and the
/// full structure size (the firmware must not validate them).
pub fn release(guest: &mut Guest, gen: KernelGen) -> i32 {
    let len = match gen {
        KernelGen::V6_1 => 160,
        KernelGen::V6_12 => 440,
    };
    // fdm_active points into the flattened device tree: an address with nothing useful.
    guest.configure_kernel_dump(CMD_INVALIDATE, 0x00ff_f000, len)
}
