//! What the crashing (first) kernel does on powernv with `fadump=on`: check `/ibm,opal/dump`,
//! size and place the boot memory and the reserved area, register its metadata and ranges
//! with OPAL, and crash through `OPAL_CEC_REBOOT2(MPIPL)`.

use firmware::opal::{MpiplOp, MpiplTag, OpalStatus, OpalToken, RebootType};
use firmware::GuestRange;

use super::kernel_structs::{CrashInfo, KernelMetadata, Region, CRASH_INFO_SIZE, METADATA_SIZE};
use super::kernel_structs::{MAX_MEM_REGS, METADATA_VERSION};
use super::machine::{Machine, KERNEL_VA};
use crate::linux::pt_regs::PtRegs;
use crate::linux::{page_align, PAGE_SIZE};

/// `OPAL_FADUMP_MIN_BOOT_MEM`, also the limit for `fw-load-area`.
pub const MIN_BOOT_MEM: u64 = 0x3000_0000;
/// `max_copy_size` on OPAL: `ALIGN_DOWN(U32_MAX, PAGE_SIZE)`.
pub const MAX_COPY_SIZE: u64 = (u32::MAX as u64) & !(PAGE_SIZE - 1);
/// Where the panic message sits (boot memory, so it is part of the dump).
pub const PANIC_MSG_ADDR: u64 = 0xa000;
pub const PANIC_MSG: &str = "sysrq triggered crash";

/// Why this kernel runs without fadump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disabled {
    /// "FADump support is missing!"
    NoDumpNode,
    /// "Support missing for this f/w version!"
    NotCompatible,
    /// "F/W version not supported!"
    LoadAreaTooHigh { base: u64, end: u64 },
    /// "Too many holes in boot memory area to enable fadump"
    TooManyRegions,
    /// No room for the reserved area above boot memory.
    NoRoom,
    /// `setup_metadata` failed (-EPERM).
    Metadata { kernel: i64, boot_mem: i64 },
    /// `ADD_RANGE` failed with something else than RESOURCE (after `REMOVE_ALL`).
    Register(i64),
}

/// The kernel's fadump configuration once registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fadump {
    pub boot_regions: Vec<(u64, u64)>,
    pub boot_memory_size: u64,
    pub boot_mem_top: u64,
    pub reserve_start: u64,
    pub reserve_size: u64,
    pub kernel_metadata: u64,
    pub fadumphdr_addr: u64,
    pub metadata: KernelMetadata,
    /// The return code of every `ADD_RANGE`, in order.
    pub add_range_codes: Vec<i64>,
}

impl Fadump {
    pub fn reserve(&self) -> GuestRange {
        GuestRange::new(self.reserve_start, self.reserve_size).unwrap()
    }
}

/// `opal_fadump_dt_scan`: node, `compatible`, `fw-load-area` limits.
pub fn dt_scan(m: &Machine) -> Result<(), Disabled> {
    let node = m.dump_node();
    if node.is_empty() {
        return Err(Disabled::NoDumpNode);
    }
    let compat = m.dump_prop("compatible").unwrap_or_default();
    if !compat.split(|b| *b == 0).any(|s| s == b"ibm,opal-dump") {
        return Err(Disabled::NotCompatible);
    }
    if let Some(area) = m.dump_prop("fw-load-area") {
        for pair in area.chunks_exact(16) {
            let base = u64::from_be_bytes(pair[0..8].try_into().unwrap());
            let end = base.wrapping_add(u64::from_be_bytes(pair[8..16].try_into().unwrap()));
            if end > MIN_BOOT_MEM {
                return Err(Disabled::LoadAreaTooHigh { base, end });
            }
        }
    }
    Ok(())
}

/// `fadump_calculate_reserve_size` without `crashkernel=`: 5 % of RAM rounded down to 256 MiB,
/// at least the OPAL minimum.
pub fn boot_memory_size(m: &Machine) -> u64 {
    let total: u64 = m.ram().iter().map(|r| r.len()).sum();
    ((total / 20) & !0x0fff_ffff).max(MIN_BOOT_MEM)
}

/// `fadump_setup_boot_mem_regs`: walk RAM from 0 until `size` bytes are covered, one region per
/// RAM range, each split at `max_copy_size`.
pub fn boot_regions(ram: &[GuestRange], size: u64) -> Result<Vec<(u64, u64)>, Disabled> {
    let mut out = Vec::new();
    let mut left = size;
    for r in ram {
        let mut base = r.start();
        let mut avail = r.len().min(left);
        left -= avail;
        while avail > 0 {
            let n = avail.min(MAX_COPY_SIZE);
            if out.len() == MAX_MEM_REGS {
                return Err(Disabled::TooManyRegions);
            }
            out.push((base, n));
            base += n;
            avail -= n;
        }
        if left == 0 {
            break;
        }
    }
    Ok(out)
}

/// The reserved area: first page-aligned RAM range at or above `boot_mem_top` that holds
/// `size` bytes, crossing no hole and no firmware reservation.
fn place_reserve(m: &Machine, boot_mem_top: u64, size: u64) -> Option<u64> {
    let mut start = page_align(boot_mem_top);
    let reserved = m.reserved_ranges();
    'search: loop {
        let want = GuestRange::new(start, size)?;
        let ram = m.ram().into_iter().find(|r| r.end() > start)?;
        if ram.start() > start {
            start = page_align(ram.start());
            continue;
        }
        if !ram.contains(&want) {
            start = page_align(ram.end());
            continue;
        }
        for r in &reserved {
            if r.overlaps(&want) {
                start = page_align(r.end());
                continue 'search;
            }
        }
        return Some(start);
    }
}

fn register_tag(m: &mut Machine, pir: u32, tag: MpiplTag, value: u64) -> i64 {
    m.call(pir, OpalToken::MpiplRegisterTag, &[tag.raw() as u64, value])
        .r3
}

fn mpipl_update(m: &mut Machine, pir: u32, op: MpiplOp, src: u64, dest: u64, size: u64) -> i64 {
    m.call(
        pir,
        OpalToken::MpiplUpdate,
        &[op.raw() as u64, src, dest, size],
    )
    .r3
}

/// Boot with `fadump=on`: everything up to and including registration (`setup_fadump`).
/// `reserve_start`: the reserved area to reuse (re-registration after a dump), or `None`.
pub fn setup(m: &mut Machine, pir: u32, reserve_start: Option<u64>) -> Result<Fadump, Disabled> {
    dt_scan(m)?;
    let size = boot_memory_size(m);
    let boot_regions = boot_regions(&m.ram(), size)?;
    let boot_memory_size: u64 = boot_regions.iter().map(|r| r.1).sum();
    let boot_mem_top = boot_regions.last().map_or(0, |&(b, s)| b + s);
    let reserve_size =
        page_align(boot_memory_size + CRASH_INFO_SIZE as u64) + page_align(METADATA_SIZE as u64);
    let reserve_start = match reserve_start {
        Some(s) => s,
        None => place_reserve(m, boot_mem_top, reserve_size).ok_or(Disabled::NoRoom)?,
    };

    // setup_metadata: the last page(s) of the reserved area.
    let kernel_metadata = reserve_start + reserve_size - page_align(METADATA_SIZE as u64);
    let mut metadata = KernelMetadata {
        version: METADATA_VERSION,
        region_cnt: 0,
        registered_regions: 0,
        fadumphdr_addr: 0,
        rgn: Vec::new(),
    };
    m.write(kernel_metadata, &metadata.to_bytes());
    let kernel = register_tag(m, pir, MpiplTag::Kernel, kernel_metadata);
    let boot_mem = register_tag(m, pir, MpiplTag::BootMem, boot_mem_top);
    if kernel != 0 || boot_mem != 0 {
        return Err(Disabled::Metadata { kernel, boot_mem });
    }

    // init_mem_struct: copies back to back from the start of the reserved area.
    let mut dest = reserve_start;
    for &(src, size) in &boot_regions {
        metadata.rgn.push(Region { src, dest, size });
        metadata.region_cnt += 1;
        dest += size;
    }
    let fadumphdr_addr = reserve_start + boot_memory_size;
    metadata.fadumphdr_addr = fadumphdr_addr;
    m.write(fadumphdr_addr, &CrashInfo::at_registration().to_bytes());

    // register: one ADD_RANGE per region, counting successes.
    let mut codes = Vec::new();
    let mut rc = OpalStatus::Parameter.code();
    for r in metadata.rgn.clone() {
        rc = mpipl_update(m, pir, MpiplOp::AddRange, r.src, r.dest, r.size);
        codes.push(rc);
        if rc != 0 {
            break;
        }
        metadata.registered_regions += 1;
    }
    m.write(kernel_metadata, &metadata.to_bytes());
    let fadump = Fadump {
        boot_regions,
        boot_memory_size,
        boot_mem_top,
        reserve_start,
        reserve_size,
        kernel_metadata,
        fadumphdr_addr,
        metadata,
        add_range_codes: codes,
    };
    if rc == OpalStatus::Success.code() || rc == OpalStatus::Resource.code() {
        return Ok(fadump);
    }
    if fadump.metadata.registered_regions > 0 {
        unregister(m, pir);
    }
    Err(Disabled::Register(rc))
}

/// `opal_fadump_unregister`: `REMOVE_ALL`.
pub fn unregister(m: &mut Machine, pir: u32) -> i64 {
    mpipl_update(m, pir, MpiplOp::RemoveAll, 0, 0, 0)
}

/// `opal_fadump_cleanup` (shutdown): clear the kernel tag.
pub fn cleanup(m: &mut Machine, pir: u32) -> i64 {
    register_tag(m, pir, MpiplTag::Kernel, 0)
}

/// The crash on thread `crashing_pir`, first half: `crash_fadump` fills the crash-info header
/// with the registers the kernel saved and the online mask; the panic message is formatted.
pub fn prepare_crash(
    m: &mut Machine,
    fadump: &Fadump,
    crashing_pir: u32,
    kernel_regs: &PtRegs,
    online_cpus: usize,
) {
    let mut h = CrashInfo::at_registration();
    h.crashing_cpu = crashing_pir;
    h.regs = *kernel_regs;
    for c in 0..online_cpus {
        h.cpu_mask[c / 8] |= 1 << (c % 8);
    }
    m.write(fadump.fadumphdr_addr, &h.to_bytes());
    m.write(PANIC_MSG_ADDR, format!("{PANIC_MSG}\0").as_bytes());
}

/// The crash, second half: `opal_fadump_trigger` calls `OPAL_CEC_REBOOT2(MPIPL, msg)` (the
/// message as a kernel virtual address). On success the call does not return to the kernel.
pub fn trigger(m: &mut Machine, crashing_pir: u32) -> firmware::opal::OpalReturn {
    m.call(
        crashing_pir,
        OpalToken::CecReboot2,
        &[RebootType::Mpipl.raw() as u64, KERNEL_VA | PANIC_MSG_ADDR],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn regions_split_at_max_copy_size_and_holes() {
        assert_eq!(MAX_COPY_SIZE, 0xffff_0000);
        let ram = [
            GuestRange::new(0, 5 * GIB).unwrap(),
            GuestRange::new(6 * GIB, GIB).unwrap(),
        ];
        let r = boot_regions(&ram, 5 * GIB + 0x1000_0000).unwrap();
        assert_eq!(
            r,
            vec![
                (0, MAX_COPY_SIZE),
                (MAX_COPY_SIZE, 5 * GIB - MAX_COPY_SIZE),
                (6 * GIB, 0x1000_0000),
            ]
        );
        assert!(r.iter().all(|&(_, s)| s <= u32::MAX as u64));
    }

    #[test]
    fn too_many_holes_disable_fadump() {
        let ram: Vec<GuestRange> = (0..200u64)
            .map(|i| GuestRange::new(i * 0x20_0000, 0x10_0000).unwrap())
            .collect();
        assert_eq!(
            boot_regions(&ram, 150 * 0x10_0000),
            Err(Disabled::TooManyRegions)
        );
        assert_eq!(boot_regions(&ram, 128 * 0x10_0000).unwrap().len(), 128);
    }
}
