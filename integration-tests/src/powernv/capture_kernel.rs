//! What the next kernel does after an MPIPL: find `mpipl-boot`, get its predecessor's metadata
//! through `QUERY_TAG(KERNEL)`, the CPU data through `QUERY_TAG(CPU)`, accept or reject the dump,
//! build the CPU notes the way Linux parses the HDAT register data, and present the vmcore
//! (boot memory read from the copies, everything else in place).

use firmware::opal::{MpiplOp, MpiplTag, OpalStatus, OpalToken};
use firmware::GuestRange;
use vm_memory::{Bytes, GuestAddress};

use super::first_kernel::{dt_scan, Disabled};
use super::kernel_structs::{
    CrashInfo, KernelMetadata, Region, CPU_UNKNOWN, CRASH_INFO_SIZE, METADATA_SIZE,
    METADATA_VERSION,
};
use super::machine::{Machine, KERNEL_VA};
use crate::bytes::{be32, be64};
use crate::linux::pt_regs::{PtRegs, PT_REGS_SIZE};
use crate::linux::{page_align, CPU_MASK_SIZE, MAGIC_FADMPSIG};

/// The capture kernel's stack variable `QUERY_TAG` writes into (in boot memory).
pub const TAG_VAR_ADDR: u64 = 0xb000;
/// What the capture kernel scribbles over its own memory, to prove the vmcore does not read it.
pub const CAPTURE_FILL: u8 = 0xcd;

const HDAT_CPU_DATA_VERSION: u32 = 1;
const HDAT_CORE_INACTIVE: u8 = 0x0f;
const REG_TYPE_GPR: u32 = 1;
const SPRN_XER: u32 = 1;
const SPRN_LR: u32 = 8;
const SPRN_CTR: u32 = 9;
const SPRN_DSISR: u32 = 18;
const SPRN_DAR: u32 = 19;
const REG_ID_NIP: u32 = 0x7d0;
const REG_ID_MSR: u32 = 0x7d1;
const REG_ID_CCR: u32 = 0x7d2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    Unsupported(Disabled),
    /// No `mpipl-boot`: not a dump boot.
    NotMpiplBoot,
    /// "Failed to get Kernel metadata"
    KernelTag {
        rc: i64,
        addr: u64,
    },
    /// Kernel regions were not registered: nothing to process.
    NothingRegistered,
    /// "Crash info header is not valid." (and the ≥6.10 generic checks)
    CrashInfo(String),
    /// CPU data missing and the crash was not kernel-initiated (-ENODEV).
    NoCpuData,
    /// The model could not read memory Linux would have dereferenced.
    Unreadable(u64),
}

/// One PT_LOAD: `len` bytes of physical memory at `paddr`, whose contents are read at `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub paddr: u64,
    pub len: u64,
    pub from: u64,
}

#[derive(Debug, Clone)]
pub struct Capture {
    pub metadata: KernelMetadata,
    pub boot_mem_top: u64,
    pub reserve: GuestRange,
    pub crash_info: CrashInfo,
    /// (PIR, registers) per PRSTATUS note, in note order.
    pub notes: Vec<(u32, PtRegs)>,
    pub loads: Vec<Load>,
    /// Boot regions that were not registered (not preserved).
    pub unsaved: Vec<Region>,
    pub warnings: Vec<String>,
}

impl Capture {
    /// Reads `len` bytes of the crashed kernel's physical memory through the vmcore.
    /// `None` when part of the range is in no PT_LOAD.
    pub fn read(&self, m: &Machine, paddr: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        let end = paddr.checked_add(len as u64)?;
        let mut at = paddr;
        while at < end {
            let load = self
                .loads
                .iter()
                .find(|l| at >= l.paddr && at < l.paddr + l.len)?;
            let n = (end.min(load.paddr + load.len) - at) as usize;
            let mut b = vec![0u8; n];
            m.mem
                .read_slice(&mut b, GuestAddress(load.from + (at - load.paddr)))
                .ok()?;
            out.extend_from_slice(&b);
            at += n as u64;
        }
        Some(out)
    }
}

fn read(m: &Machine, addr: u64, len: usize) -> Result<Vec<u8>, Reject> {
    let mut b = vec![0u8; len];
    m.mem
        .read_slice(&mut b, GuestAddress(addr))
        .map_err(|_| Reject::Unreadable(addr))?;
    Ok(b)
}

/// `opal_mpipl_query_tag(tag, &addr)`: the variable keeps whatever it held when the call does
/// not write it, as in Linux.
fn query_tag(m: &mut Machine, pir: u32, tag: MpiplTag) -> (i64, [u8; 8]) {
    let rc = m
        .call(
            pir,
            OpalToken::MpiplQueryTag,
            &[tag.raw() as u64, KERNEL_VA | TAG_VAR_ADDR],
        )
        .r3;
    let var: [u8; 8] = m.read(TAG_VAR_ADDR, 8).try_into().unwrap();
    (rc, var)
}

/// `CONFIG_PRESERVE_FA_DUMP` (petitboot): only find out what to keep, then kexec on.
/// Returns the boot memory top the next kernel must stay below, or `None` if no dump.
pub fn petitboot(m: &mut Machine, pir: u32) -> Option<u64> {
    m.dump_prop("mpipl-boot")?;
    m.write(TAG_VAR_ADDR, &0u64.to_le_bytes());
    let (rc, var) = query_tag(m, pir, MpiplTag::Kernel);
    let addr = u64::from_be_bytes(var);
    if rc != 0 || addr == 0 {
        return None;
    }
    let md = KernelMetadata::from_bytes(&read(m, addr, METADATA_SIZE).ok()?);
    if md.registered_regions == 0 {
        return None;
    }
    let (rc, var) = query_tag(m, pir, MpiplTag::BootMem);
    let top = u64::from_be_bytes(var);
    (rc == 0 && top != 0).then_some(top)
}

/// Boots the capture kernel on thread `pir` and processes the dump.
pub fn boot(m: &mut Machine, pir: u32) -> Result<Capture, Reject> {
    dt_scan(m).map_err(Reject::Unsupported)?;
    if m.dump_prop("mpipl-boot").is_none() {
        return Err(Reject::NotMpiplBoot);
    }
    let mut warnings = Vec::new();
    // u64 addr = 0; opal_mpipl_query_tag(OPAL_MPIPL_TAG_KERNEL, &addr);
    m.write(TAG_VAR_ADDR, &0u64.to_le_bytes());
    let (rc, var) = query_tag(m, pir, MpiplTag::Kernel);
    let kernel_addr = u64::from_be_bytes(var);
    if rc != OpalStatus::Success.code() || kernel_addr == 0 {
        return Err(Reject::KernelTag {
            rc,
            addr: kernel_addr,
        });
    }
    // addr = be64_to_cpu(addr): the variable now holds the native value.
    m.write(TAG_VAR_ADDR, &kernel_addr.to_le_bytes());
    let metadata = KernelMetadata::from_bytes(&read(m, kernel_addr, METADATA_SIZE)?);
    if metadata.version != METADATA_VERSION {
        warnings.push(format!("kernel metadata version {}", metadata.version));
    }
    if metadata.registered_regions == 0 {
        return Err(Reject::NothingRegistered);
    }
    // The return code is not checked: a nonzero variable is taken as the CPU metadata.
    let (_, var) = query_tag(m, pir, MpiplTag::Cpu);
    let cpu_meta_addr = u64::from_be_bytes(var);

    // opal_fadump_get_config
    let mut boot_memory_size = 0u64;
    let mut holes = 0u64;
    let mut last_end = 0u64;
    for r in &metadata.rgn {
        boot_memory_size += r.size;
        holes += r.src.wrapping_sub(last_end);
        last_end = r.src + r.size;
    }
    let boot_mem_top = boot_memory_size + holes;
    let unsaved: Vec<Region> = metadata
        .rgn
        .iter()
        .skip(metadata.registered_regions as usize)
        .copied()
        .collect();
    if !unsaved.is_empty() {
        warnings.push(format!("{} memory regions were not saved", unsaved.len()));
    }
    let reserve_start = metadata.rgn.first().map_or(0, |r| r.dest);
    let reserve_end = kernel_addr + page_align(METADATA_SIZE as u64);
    let reserve = GuestRange::from_bounds(reserve_start, reserve_end)
        .ok_or(Reject::CrashInfo("metadata below the reserved area".into()))?;

    // The capture kernel now lives in [0, boot_mem_top): it overwrites all of it except the
    // firmware's reservations.
    let fw = m.reserved_ranges();
    for ram in m.ram() {
        let Some(own) = GuestRange::from_bounds(ram.start(), ram.end().min(boot_mem_top)) else {
            continue;
        };
        let mut cuts = vec![own.start(), own.end()];
        for r in &fw {
            if r.overlaps(&own) {
                cuts.push(r.start().max(own.start()));
                cuts.push(r.end().min(own.end()));
            }
        }
        cuts.sort_unstable();
        for w in cuts.windows(2) {
            let piece = GuestRange::from_bounds(w[0], w[1]).unwrap();
            if !piece.is_empty() && !fw.iter().any(|r| r.contains(&piece)) {
                m.fill(piece, CAPTURE_FILL);
            }
        }
    }

    // opal_fadump_process: the crash-info header, then the generic ≥6.10 checks.
    let fdh_addr = metadata.fadumphdr_addr;
    if fdh_addr == 0 {
        return Err(Reject::CrashInfo("no header address".into()));
    }
    let crash_info = CrashInfo::from_bytes(&read(m, fdh_addr, CRASH_INFO_SIZE)?);
    if crash_info.magic != MAGIC_FADMPSIG {
        return Err(Reject::CrashInfo(format!("magic {:#x}", crash_info.magic)));
    }
    if crash_info.pt_regs_sz as usize != PT_REGS_SIZE
        || crash_info.cpu_mask_sz as usize != CPU_MASK_SIZE
    {
        return Err(Reject::CrashInfo("pt_regs/cpumask size mismatch".into()));
    }

    let notes = cpu_notes(m, cpu_meta_addr, &crash_info, &mut warnings)?;

    // The vmcore: boot regions from their copies, the rest of RAM in place, minus the
    // reserved area.
    let mut loads: Vec<Load> = metadata
        .rgn
        .iter()
        .map(|r| Load {
            paddr: r.src,
            len: r.size,
            from: r.dest,
        })
        .collect();
    for ram in m.ram() {
        let Some(above) = GuestRange::from_bounds(ram.start().max(boot_mem_top), ram.end()) else {
            continue;
        };
        for piece in above.subtract(&[reserve]) {
            loads.push(Load {
                paddr: piece.start(),
                len: piece.len(),
                from: piece.start(),
            });
        }
    }

    Ok(Capture {
        metadata,
        boot_mem_top,
        reserve,
        crash_info,
        notes,
        loads,
        unsaved,
        warnings,
    })
}

/// `opal_fadump_build_cpu_notes`, with `is_opal_fadump_cpu_data_valid`.
fn cpu_notes(
    m: &Machine,
    cpu_meta_addr: u64,
    fdh: &CrashInfo,
    warnings: &mut Vec<String>,
) -> Result<Vec<(u32, PtRegs)>, Reject> {
    let mut notes = Vec::new();
    let mut valid = None;
    if cpu_meta_addr != 0 {
        let meta = read(m, cpu_meta_addr, 0x30)?;
        let (version, entry_size) = (be32(&meta, 0x0c), be32(&meta, 0x10));
        let (dest, size) = (be64(&meta, 0x20), be64(&meta, 0x28));
        if version != HDAT_CPU_DATA_VERSION {
            warnings.push(format!("CPU state data version {version}"));
        }
        if dest == 0 || entry_size == 0 || u64::from(entry_size) > size {
            warnings.push("CPU state data is invalid. Ignoring!".into());
        } else {
            valid = Some((dest, entry_size as u64, size / entry_size as u64));
        }
    }
    if let Some((base, stride, num_cpus)) = valid {
        // Offset, entry size and count come from the first thread header only.
        let first = read(m, base, 0x18)?;
        let regs_offset = 8 + be32(&first, 0x08) as u64;
        let esize = be32(&first, 0x10) as u64;
        let ecnt = be32(&first, 0x0c) as u64;
        for i in 0..num_cpus {
            let thread = base + i * stride;
            let hdr = read(m, thread, 0x18)?;
            let pir = be32(&hdr, 0);
            if fdh.crashing_cpu == pir {
                notes.push((pir, fdh.regs));
                continue;
            }
            if hdr[4] == HDAT_CORE_INACTIVE {
                continue;
            }
            let mut regs = PtRegs::default();
            for e in 0..ecnt {
                let entry = read(m, thread + regs_offset + e * esize, 16)?;
                set_regval(&mut regs, be32(&entry, 0), be32(&entry, 4), be64(&entry, 8));
            }
            notes.push((pir, regs));
        }
    }
    if notes.is_empty() {
        if fdh.crashing_cpu == CPU_UNKNOWN {
            return Err(Reject::NoCpuData);
        }
        warnings.push("appending only crashing CPU's register data".into());
        notes.push((fdh.crashing_cpu, fdh.regs));
    }
    Ok(notes)
}

/// `opal_fadump_set_regval_regnum`.
pub fn set_regval(r: &mut PtRegs, reg_type: u32, num: u32, v: u64) {
    if reg_type == REG_TYPE_GPR {
        if num < 32 {
            r.gpr[num as usize] = v;
        }
        return;
    }
    match num {
        SPRN_CTR => r.ctr = v,
        SPRN_LR => r.link = v,
        SPRN_XER => r.xer = v,
        SPRN_DAR => r.dar = v,
        SPRN_DSISR => r.dsisr = v,
        REG_ID_NIP => r.nip = v,
        REG_ID_MSR => r.msr = v,
        REG_ID_CCR => r.ccr = v,
        _ => {}
    }
}

/// `opal_fadump_invalidate` (release of the dump memory): `FREE_PRESERVED_MEMORY`.
pub fn release(m: &mut Machine, pir: u32) -> i64 {
    m.call(
        pir,
        OpalToken::MpiplUpdate,
        &[MpiplOp::FreePreservedMemory.raw() as u64, 0, 0, 0],
    )
    .r3
}
