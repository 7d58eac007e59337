//! Refusing descriptions that would give the guest a tree it cannot boot from (or that `dtc`
//! would reject), with an [`Error`] that says what is wrong.

use firmware::GuestRange;

use crate::description::{HypertasFunction, MachineDescription, Mmu};
use crate::error::Error;
use crate::MAX_VCPUS;

/// Linux's `COMMAND_LINE_SIZE` on powerpc is 2048, including the terminating NUL.
const MAX_CMDLINE: usize = 2047;
/// 4 GiB: `/rtas` cells are 32 bits wide.
const FOUR_GIB: u64 = 1 << 32;

fn show(r: &GuestRange) -> String {
    format!("[{:#x}, {:#x})", r.start(), r.end())
}

pub(crate) fn check(d: &MachineDescription) -> Result<(), Error> {
    check_cpus(d)?;
    check_memory(&d.memory)?;
    check_regions(d)?;
    if d.cmdline.contains('\0') {
        return Err(Error::NulInString {
            what: "the command line",
        });
    }
    if d.cmdline.len() > MAX_CMDLINE {
        return Err(Error::CmdlineTooLong(d.cmdline.len()));
    }
    if d.mmu == (Mmu::Radix { gtse: false })
        && !d
            .hypertas_functions
            .contains(&HypertasFunction::RptInvalidate)
    {
        return Err(Error::RadixNeedsTlbInvalidation);
    }
    Ok(())
}

fn check_cpus(d: &MachineDescription) -> Result<(), Error> {
    let t = &d.topology;
    if t.vcpus == 0 {
        return Err(Error::NoCpus);
    }
    if t.vcpus > MAX_VCPUS {
        return Err(Error::TooManyCpus(t.vcpus));
    }
    if !matches!(t.threads_per_core, 1 | 2 | 4 | 8) {
        return Err(Error::BadThreadsPerCore(t.threads_per_core));
    }
    if t.vcpus % t.threads_per_core != 0 {
        return Err(Error::PartialCore {
            vcpus: t.vcpus,
            threads: t.threads_per_core,
        });
    }
    if t.boot_vcpu >= t.vcpus {
        return Err(Error::BootCpuMissing {
            boot: t.boot_vcpu,
            vcpus: t.vcpus,
        });
    }
    let c = &d.cpu;
    let name_ok = !c.name.is_empty()
        && c.name.len() <= 20
        && c.name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._+-".contains(ch));
    if !name_ok {
        return Err(Error::BadCpuModelName(c.name.clone()));
    }
    if c.timebase_frequency == 0 {
        return Err(Error::ZeroFrequency("timebase"));
    }
    if c.clock_frequency == 0 {
        return Err(Error::ZeroFrequency("clock"));
    }
    for (what, value) in [
        ("d-cache-block-size", c.dcache.block_size),
        ("d-cache-line-size", c.dcache.line_size),
        ("i-cache-block-size", c.icache.block_size),
        ("i-cache-line-size", c.icache.line_size),
    ] {
        if !value.is_power_of_two() {
            return Err(Error::BadCacheGeometry { what, value });
        }
    }
    if let Mmu::Hash { htab_shift } = d.mmu {
        if !(18..=46).contains(&htab_shift) {
            return Err(Error::BadHtabShift(htab_shift));
        }
    }
    Ok(())
}

fn check_memory(mem: &[GuestRange]) -> Result<(), Error> {
    if mem.is_empty() {
        return Err(Error::NoMemory);
    }
    for r in mem {
        if r.is_empty() {
            return Err(Error::EmptyMemoryRange(show(r)));
        }
    }
    for (i, a) in mem.iter().enumerate() {
        for b in &mem[i + 1..] {
            if a.overlaps(b) {
                return Err(Error::OverlappingMemory(show(a), show(b)));
            }
        }
    }
    if !mem.iter().any(|r| r.start() == 0) {
        return Err(Error::NoMemoryAtZero);
    }
    Ok(())
}

fn in_memory(mem: &[GuestRange], r: &GuestRange) -> bool {
    mem.iter()
        .any(|m| r.start() >= m.start() && r.end() <= m.end())
}

fn check_regions(d: &MachineDescription) -> Result<(), Error> {
    let mut named: Vec<(&'static str, GuestRange)> = vec![("the RTAS region", d.rtas)];
    if let Some(i) = d.initrd {
        named.push(("the initrd", i));
    }
    for (what, r) in &named {
        if r.is_empty() {
            return Err(Error::EmptyRange {
                what,
                range: show(r),
            });
        }
        if !in_memory(&d.memory, r) {
            return Err(Error::OutsideMemory {
                what,
                range: show(r),
            });
        }
    }
    if d.rtas.end() > FOUR_GIB {
        return Err(Error::RtasAbove4GiB(show(&d.rtas)));
    }
    if let Some(i) = d.initrd {
        if i.overlaps(&d.rtas) {
            return Err(Error::Overlap {
                a: format!("the initrd {}", show(&i)),
                b: format!("the RTAS region {}", show(&d.rtas)),
            });
        }
    }
    // Reservations: non-empty, and disjoint from each other and from the RTAS region (which
    // is reserved automatically). They may cover the initrd.
    let mut reserved = vec![("the RTAS region", d.rtas)];
    for r in &d.reservations {
        if r.is_empty() {
            return Err(Error::EmptyRange {
                what: "a reservation",
                range: show(r),
            });
        }
        if let Some((what, other)) = reserved.iter().find(|(_, o)| o.overlaps(r)) {
            return Err(Error::Overlap {
                a: format!("the reservation {}", show(r)),
                b: format!("{what} {}", show(other)),
            });
        }
        reserved.push(("the reservation", *r));
    }
    Ok(())
}
