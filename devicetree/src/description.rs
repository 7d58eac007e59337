//! What the machine looks like: the input of [`crate::build`].
//!
//! The description holds facts the VMM knows (vCPU count, RAM, where it put the RTAS blob and the
//! initrd, what its hcall layer implements) and the `/rtas` properties the firmware contributes.
//! Nothing here is read from the host: the VMM fills in the PVR, the timebase and the page sizes
//! it learnt from KVM.
//!
//! PCI host bridges are passed beside the description, to [`crate::build_with_pci`], as
//! [`crate::pci::PhbDescription`]s rendered by `nodes::pci`; their `interrupt-map` points at
//! [`crate::XICS_PHANDLE`]. (They can become a field here once every caller sets it.)

use firmware::{GuestRange, Property};

/// The whole machine, as the guest must see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineDescription {
    /// vCPU count, SMT and the boot vCPU.
    pub topology: CpuTopology,
    /// The processor the guest is told it runs on.
    pub cpu: CpuModel,
    /// Radix or hash translation; decides `ibm,architecture-vec-5`, `ibm,pa-features` and
    /// `ibm,pft-size`.
    pub mmu: Mmu,
    /// Guest RAM, in any order; one range must start at 0. Each becomes a `/memory@<base>` node.
    pub memory: Vec<GuestRange>,
    /// `/chosen/bootargs`.
    pub cmdline: String,
    /// Where the VMM loaded the initramfs (`/chosen/linux,initrd-start`/`-end`).
    pub initrd: Option<GuestRange>,
    /// Where the VMM placed the RTAS blob (the `sc 1` stub). Entered at its first byte.
    /// Added to the reservation map automatically.
    pub rtas: GuestRange,
    /// Extra memory reservations (the `/memreserve/` map). Must not overlap each other or the
    /// RTAS region. The kernel reserves its own image, the device tree and the initrd itself.
    pub reservations: Vec<GuestRange>,
    /// What the VMM's hcall layer (plus KVM) implements: `/rtas/ibm,hypertas-functions`.
    pub hypertas_functions: Vec<HypertasFunction>,
    /// The interrupt controller the guest sees.
    pub interrupt_controller: InterruptController,
    /// The XICS interrupt number of the console, if the VMM raises one; without it Linux's
    /// hvc driver polls.
    pub vty_irq: Option<u32>,
    /// The XICS interrupt numbers of the RTAS event sources (`/event-sources`); `None` writes
    /// no such node (Linux then never calls `check-exception`).
    pub event_sources: Option<EventSourceIrqs>,
    /// The `/rtas` properties the firmware contributes (tokens, `ibm,extended-os-term`, the
    /// fadump properties, `ibm,kernel-dump` after a dump), placed verbatim after ours.
    pub rtas_properties: Vec<Property>,
}

/// vCPUs and how they are grouped into cores.
///
/// vCPU ids (= hardware thread ids = XICS interrupt server numbers = KVM vCPU ids) are
/// `core * threads_per_core + thread`, which is what QEMU does and what KVM expects when the
/// VM's SMT mode (virtual SMT) equals `threads_per_core`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTopology {
    /// Total vCPUs (threads); a multiple of `threads_per_core`.
    pub vcpus: u32,
    /// Threads per core: 1, 2, 4 or 8.
    pub threads_per_core: u32,
    /// The vCPU id that enters the kernel; goes into the FDT header's `boot_cpuid_phys`.
    pub boot_vcpu: u32,
}

impl CpuTopology {
    /// `vcpus` single-threaded cores, booting on vCPU 0.
    pub fn single_threaded(vcpus: u32) -> Self {
        Self {
            vcpus,
            threads_per_core: 1,
            boot_vcpu: 0,
        }
    }

    /// Number of cores (one `/cpus` node each). Only meaningful after validation.
    pub fn cores(&self) -> u32 {
        self.vcpus.checked_div(self.threads_per_core).unwrap_or(0)
    }

    /// The vCPU ids of core `core`.
    pub fn threads_of(&self, core: u32) -> impl Iterator<Item = u32> {
        let first = core.saturating_mul(self.threads_per_core);
        (0..self.threads_per_core).map(move |t| first.saturating_add(t))
    }
}

/// Level-1 cache geometry of one kind (data or instruction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cache {
    /// Total size in bytes (`d-cache-size`/`i-cache-size`).
    pub size: u32,
    /// Coherence-block size (`*-cache-block-size`): what `dcbz`/`dcbst` act on. Linux's
    /// `initialize_cache_info()` reads it from the boot CPU and uses it for every cache loop.
    pub block_size: u32,
    /// Line size (`*-cache-line-size`).
    pub line_size: u32,
}

/// One base page size of a hash segment and the actual page sizes usable in it
/// (`ibm,segment-page-sizes`, as returned by `KVM_PPC_GET_SMMU_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPageSize {
    /// log2 of the base page size.
    pub base_shift: u32,
    /// SLB encoding (L||LP bits) of the base page size.
    pub slb_enc: u32,
    /// `(page shift, PTE encoding)` pairs usable in such a segment.
    pub pages: Vec<(u32, u32)>,
}

impl SegmentPageSize {
    /// 4 KiB and 64 KiB base pages, each with only its own page size: what QEMU advertises
    /// under TCG and on a KVM host without huge pages backing guest RAM.
    pub fn default_set() -> Vec<SegmentPageSize> {
        vec![
            SegmentPageSize {
                base_shift: 12,
                slb_enc: 0x0,
                pages: vec![(12, 0x0)],
            },
            SegmentPageSize {
                base_shift: 16,
                slb_enc: 0x110,
                pages: vec![(16, 0x1)],
            },
        ]
    }
}

/// The processor model presented in every `/cpus` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuModel {
    /// Model name used in node names, `PowerPC,<name>@<id>` (e.g. `POWER9`).
    pub name: String,
    /// `cpu-version`: the host PVR, or a logical PVR (0x0f00000N) when the VMM sets an
    /// architecture compatibility mode. Linux's `early_init_dt_scan_cpus()` uses it to identify
    /// the CPU when it is a logical PVR.
    pub pvr: u32,
    /// `timebase-frequency` in Hz (512 MHz on POWER8/9/10). Read by
    /// `generic_calibrate_decr()`; without it Linux guesses.
    pub timebase_frequency: u32,
    /// `clock-frequency` in Hz; only reported (`/proc/cpuinfo`, `ppc_proc_freq`).
    pub clock_frequency: u32,
    /// L1 data cache.
    pub dcache: Cache,
    /// L1 instruction cache.
    pub icache: Cache,
    /// SLB entries (`ibm,slb-size` and `slb-size`); Linux's `init_mmu_slb_size()` takes
    /// the `ibm,` one.
    pub slb_size: u32,
    /// Hash page sizes (`ibm,segment-page-sizes`), read by `htab_dt_scan_page_sizes()` when the
    /// guest uses hash translation.
    pub segment_page_sizes: Vec<SegmentPageSize>,
    /// `ibm,dec-bits`, only when the VMM enables the large decrementer (`LPCR[LD]`) for the
    /// guest: Linux trusts this width when programming the decrementer.
    pub large_decrementer_bits: Option<u32>,
}

impl CpuModel {
    /// An ISA 3.0/3.1 server processor (POWER9, POWER10) with the values QEMU uses: 512 MHz
    /// timebase, 1 GHz clock, 32 KiB L1 caches with 128-byte lines, 32 SLB entries.
    pub fn new(name: &str, pvr: u32) -> Self {
        let l1 = Cache {
            size: 0x8000,
            block_size: 0x80,
            line_size: 0x80,
        };
        Self {
            name: name.to_string(),
            pvr,
            timebase_frequency: 512_000_000,
            clock_frequency: 1_000_000_000,
            dcache: l1,
            icache: l1,
            slb_size: 32,
            segment_page_sizes: SegmentPageSize::default_set(),
            large_decrementer_bits: None,
        }
    }
}

/// How the guest translates addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mmu {
    /// Radix (ISA 3.0). `gtse`: the guest may issue `tlbie` itself (Guest Translation
    /// Shootdown Enable); the VMM must then set `LPCR[GTSE]` (it does so through
    /// `H_REGISTER_PROC_TBL`). Without GTSE the guest needs `H_RPT_INVALIDATE`.
    Radix { gtse: bool },
    /// Hash page table of `2^htab_shift` bytes allocated by the VMM (`ibm,pft-size`).
    Hash { htab_shift: u32 },
}

/// XICS interrupt numbers of `/event-sources/epow-events` and `/event-sources/hot-plug-events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSourceIrqs {
    /// EPOW events (power button): QEMU's `SPAPR_IRQ_EPOW` is 0x1000.
    pub epow: u32,
    /// Hot-plug events (DLPAR): QEMU's `SPAPR_IRQ_HOTPLUG` is 0x1001.
    pub hotplug: u32,
}

/// The interrupt controller presented to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptController {
    /// XICS, implemented by KVM's in-kernel XICS device (`KVM_DEV_TYPE_XICS`): the presentation
    /// hcalls (H_XIRR, H_EOI, H_CPPR, H_IPI, H_IPOLL) run in the kernel and the source calls
    /// (`ibm,set-xive`, `ibm,get-xive`, `ibm,int-on`, `ibm,int-off`) are RTAS tokens the VMM
    /// defines with `KVM_PPC_RTAS_DEFINE_TOKEN`. One interrupt server per vCPU, numbered like
    /// the vCPU ids.
    KvmXics,
}

/// Entries of `/rtas/ibm,hypertas-functions`: hcall groups the hypervisor (our VMM plus KVM)
/// implements. Linux's `fw_hypertas_feature_init()` turns each into a firmware feature bit;
/// the mere presence of the property sets `FW_FEATURE_LPAR`, without which Linux does not run
/// as a pseries guest at all (no hvc console, no VPA, no hcalls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HypertasFunction {
    /// Hash page-table hcalls (H_ENTER, H_REMOVE, H_PROTECT, H_READ): KVM-HV handles them.
    Pft,
    /// Console: H_PUT_TERM_CHAR / H_GET_TERM_CHAR (VMM).
    Term,
    /// H_SET_DABR / H_SET_XDABR (KVM-HV).
    Dabr,
    /// XICS presentation hcalls (KVM in-kernel XICS).
    Interrupt,
    /// TCE (IOMMU) hcalls, for VIO/PCI DMA windows.
    Tce,
    /// VIO hcalls (H_VIO_SIGNAL).
    Vio,
    /// Shared-processor LPAR: H_REGISTER_VPA, H_CEDE, H_CONFER, H_PROD (KVM-HV). Linux
    /// registers a VPA per CPU and idles with H_CEDE.
    Splpar,
    /// H_BULK_REMOVE (KVM-HV, hash only).
    Bulk,
    /// H_SET_MODE. Linux calls it to switch interrupts to little-endian **only when this entry
    /// is present**: a little-endian kernel without it dies on its first interrupt.
    SetMode,
    /// H_PUT_TCE_INDIRECT / H_STUFF_TCE.
    MultiTce,
    /// H_HOME_NODE_ASSOCIATIVITY.
    Vphn,
    /// H_RPT_INVALIDATE: radix TLB invalidation on behalf of a guest without GTSE.
    RptInvalidate,
    /// H_WATCHDOG.
    Watchdog,
}

impl HypertasFunction {
    /// The string Linux matches.
    pub fn name(self) -> &'static str {
        match self {
            HypertasFunction::Pft => "hcall-pft",
            HypertasFunction::Term => "hcall-term",
            HypertasFunction::Dabr => "hcall-dabr",
            HypertasFunction::Interrupt => "hcall-interrupt",
            HypertasFunction::Tce => "hcall-tce",
            HypertasFunction::Vio => "hcall-vio",
            HypertasFunction::Splpar => "hcall-splpar",
            HypertasFunction::Bulk => "hcall-bulk",
            HypertasFunction::SetMode => "hcall-set-mode",
            HypertasFunction::MultiTce => "hcall-multi-tce",
            HypertasFunction::Vphn => "hcall-vphn",
            HypertasFunction::RptInvalidate => "hcall-rpt-invalidate",
            HypertasFunction::Watchdog => "hcall-watchdog",
        }
    }

    /// What our VMM on KVM-HV implements with the in-kernel XICS: the console and H_SET_MODE
    /// (resources LE and ADDR_TRANS_MODE always exit to userspace) in the VMM; H_SET_DABR/
    /// H_SET_XDABR, the SPLPAR calls and the XICS presentation calls inside KVM-HV
    /// (`kvmppc_pseries_do_hcall`, see the spec's hcall table); plus, for a hash guest, the
    /// page-table calls and H_BULK_REMOVE, also inside KVM.
    pub fn implemented(mmu: Mmu) -> Vec<HypertasFunction> {
        let mut v = Vec::new();
        if matches!(mmu, Mmu::Hash { .. }) {
            v.push(HypertasFunction::Pft);
        }
        v.extend([
            HypertasFunction::Term,
            HypertasFunction::Dabr,
            HypertasFunction::Interrupt,
            HypertasFunction::Splpar,
        ]);
        if matches!(mmu, Mmu::Hash { .. }) {
            v.push(HypertasFunction::Bulk);
        }
        v.push(HypertasFunction::SetMode);
        v
    }
}
