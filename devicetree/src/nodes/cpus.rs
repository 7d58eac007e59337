//! `/cpus`: one node per core, QEMU-style.
//!
//! Choice: one node per **core**, named `PowerPC,<model>@<first thread id>`, whose
//! `ibm,ppc-interrupt-server#s` lists the hardware ids of all its threads. This is how PAPR
//! firmware and QEMU describe SMT and what Linux's `smp_setup_cpu_maps()` expects: each entry
//! of `ibm,ppc-interrupt-server#s` becomes one logical CPU whose hardware id
//! (`get_hard_smp_processor_id()`) is that entry, and the entry count of the nodes gives
//! `threads_per_core` (must be a power of two). A node per thread would make Linux see
//! single-threaded cores and build a wrong topology. With one thread per core, it is one node
//! per vCPU.
//!
//! What `start-cpu` needs from here: Linux's pseries `smp_startup_cpu()` passes the
//! hardware id from `ibm,ppc-interrupt-server#s` as the first `start-cpu` argument, and only
//! CPUs whose node has `status = "okay"` are present. With the `query-cpu-stopped-state` RTAS
//! token published, Linux assumes every secondary thread is stopped in firmware and starts each
//! with `start-cpu` (no spinning at 0x60).

use crate::cpu_features::{pa_features, RADIX_AP_ENCODINGS, SEGMENT_SIZES};
use crate::description::{MachineDescription, Mmu};
use crate::error::Error;
use crate::writer::TreeWriter;

pub(crate) fn write(w: &mut TreeWriter, d: &MachineDescription) -> Result<(), Error> {
    let cpus = w.begin("cpus")?;
    // `reg` of a cpu node is one cell (the first thread id), no size.
    w.u32("#address-cells", 1)?;
    w.u32("#size-cells", 0)?;
    for core in 0..d.topology.cores() {
        write_core(w, d, core)?;
    }
    w.end(cpus)
}

fn write_core(w: &mut TreeWriter, d: &MachineDescription, core: u32) -> Result<(), Error> {
    let threads: Vec<u32> = d.topology.threads_of(core).collect();
    let id = threads[0];
    let c = &d.cpu;
    let n = w.begin(&format!("PowerPC,{}@{:x}", c.name, id))?;
    w.string("device_type", "cpu")?;
    w.u32("reg", id)?;
    // Logical PVR or host PVR; `early_init_dt_scan_cpus()` identifies logical PVRs with it.
    w.u32("cpu-version", c.pvr)?;
    // `initialize_cache_info()` (setup_64.c) reads these from the boot CPU; the block size
    // drives dcbz/dcbst loops and must be right.
    w.u32("d-cache-block-size", c.dcache.block_size)?;
    w.u32("d-cache-line-size", c.dcache.line_size)?;
    w.u32("i-cache-block-size", c.icache.block_size)?;
    w.u32("i-cache-line-size", c.icache.line_size)?;
    w.u32("d-cache-size", c.dcache.size)?;
    w.u32("i-cache-size", c.icache.size)?;
    // `generic_calibrate_decr()`: decrementer and timebase frequency.
    w.u32("timebase-frequency", c.timebase_frequency)?;
    // Reported as the CPU clock (`ppc_proc_freq`, /proc/cpuinfo).
    w.u32("clock-frequency", c.clock_frequency)?;
    // `init_mmu_slb_size()` prefers `ibm,slb-size`; `slb-size` is the older name.
    w.u32("slb-size", c.slb_size)?;
    w.u32("ibm,slb-size", c.slb_size)?;
    w.string("status", "okay")?;
    w.null("64-bit")?;
    // `check_cpu_feature_properties()` (prom.c): PURR/SPURR present, VMX level 2 = VMX+VSX,
    // DFP present. KVM-HV provides all of them on POWER9/10.
    w.u32("ibm,purr", 1)?;
    w.u32("ibm,spurr", 1)?;
    w.u32("ibm,vmx", 2)?;
    w.u32("ibm,dfp", 1)?;
    w.cells("ibm,processor-segment-sizes", &SEGMENT_SIZES)?;
    w.cells("ibm,segment-page-sizes", &segment_page_sizes(d))?;
    // `check_cpu_pa_features()`: MMU features, little-endian, and the radix bit.
    w.bytes("ibm,pa-features", &pa_features(d.mmu))?;
    // Topology: every core on chip 0.
    w.u32("ibm,chip-id", 0)?;
    match d.mmu {
        // `htab_dt_scan_pftsize()`: log2 of the hash table the VMM allocated.
        Mmu::Hash { htab_shift } => w.cells("ibm,pft-size", &[0, htab_shift])?,
        Mmu::Radix { .. } => w.cells("ibm,processor-radix-AP-encodings", &RADIX_AP_ENCODINGS)?,
    }
    if let Some(bits) = c.large_decrementer_bits {
        w.u32("ibm,dec-bits", bits)?;
    }
    // The thread ids, which are also the XICS interrupt server numbers.
    w.cells("ibm,ppc-interrupt-server#s", &threads)?;
    // (server, global server) pairs; `xics_update_irq_servers()` reads the boot CPU's pair to
    // pick the default interrupt server. Global server 0 as in QEMU.
    let gservers: Vec<u32> = threads.iter().flat_map(|&t| [t, 0]).collect();
    w.cells("ibm,ppc-interrupt-gserver#s", &gservers)?;
    w.end(n)
}

/// `ibm,segment-page-sizes`: for each base page size, (base shift, SLB encoding, count, then
/// count × (page shift, PTE encoding)).
fn segment_page_sizes(d: &MachineDescription) -> Vec<u32> {
    let mut v = Vec::new();
    for s in &d.cpu.segment_page_sizes {
        v.extend([s.base_shift, s.slb_enc, s.pages.len() as u32]);
        for &(shift, penc) in &s.pages {
            v.extend([shift, penc]);
        }
    }
    v
}
