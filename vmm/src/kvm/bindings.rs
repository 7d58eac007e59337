//! `repr(C)` mirrors of the ppc64 (book3s) KVM userspace ABI.
//!
//! Layouts follow `include/uapi/linux/kvm.h` and `arch/powerpc/include/uapi/asm/kvm.h`
//! (Linux 6.12; the structs used here are unchanged since 6.1). Only what a pseries VMM needs is
//! mirrored. The types are plain data and identical on every LP64 host, so they compile (and
//! their layout tests run) on x86_64 too; `layout_tests` checks every size and field offset
//! against the kernel headers with the powerpc cross compiler.

#![allow(non_camel_case_types)]

/// Version `KVM_GET_API_VERSION` must return.
pub const KVM_API_VERSION: i32 = 12;
/// The `KVMIO` ioctl type byte.
pub const KVMIO: u32 = 0xae;

/// `KVM_CREATE_VM` machine types on powerpc.
pub const KVM_VM_PPC_HV: u64 = 1;
pub const KVM_VM_PPC_PR: u64 = 2;

// ---- exit reasons (kvm_run.exit_reason) ----
pub const KVM_EXIT_UNKNOWN: u32 = 0;
pub const KVM_EXIT_EXCEPTION: u32 = 1;
pub const KVM_EXIT_DEBUG: u32 = 4;
pub const KVM_EXIT_MMIO: u32 = 6;
pub const KVM_EXIT_SHUTDOWN: u32 = 8;
pub const KVM_EXIT_FAIL_ENTRY: u32 = 9;
pub const KVM_EXIT_INTR: u32 = 10;
pub const KVM_EXIT_NMI: u32 = 16;
pub const KVM_EXIT_INTERNAL_ERROR: u32 = 17;
pub const KVM_EXIT_OSI: u32 = 18;
pub const KVM_EXIT_PAPR_HCALL: u32 = 19;
pub const KVM_EXIT_WATCHDOG: u32 = 21;
pub const KVM_EXIT_EPR: u32 = 23;
pub const KVM_EXIT_SYSTEM_EVENT: u32 = 24;

// ---- capabilities (KVM_CHECK_EXTENSION / KVM_ENABLE_CAP) ----
pub const KVM_CAP_NR_VCPUS: u32 = 9;
pub const KVM_CAP_PPC_UNSET_IRQ: u32 = 53;
pub const KVM_CAP_PPC_IRQ_LEVEL: u32 = 58;
pub const KVM_CAP_SPAPR_TCE: u32 = 63;
pub const KVM_CAP_PPC_SMT: u32 = 64;
pub const KVM_CAP_MAX_VCPUS: u32 = 66;
pub const KVM_CAP_PPC_PAPR: u32 = 68;
pub const KVM_CAP_ONE_REG: u32 = 70;
pub const KVM_CAP_PPC_GET_SMMU_INFO: u32 = 78;
pub const KVM_CAP_PPC_ALLOC_HTAB: u32 = 80;
pub const KVM_CAP_PPC_HTAB_FD: u32 = 84;
pub const KVM_CAP_PPC_RTAS: u32 = 91;
pub const KVM_CAP_IRQ_XICS: u32 = 92;
pub const KVM_CAP_SPAPR_MULTITCE: u32 = 94;
pub const KVM_CAP_IRQFD: u32 = 32;
pub const KVM_CAP_IOEVENTFD: u32 = 36;
pub const KVM_CAP_IRQFD_RESAMPLE: u32 = 82;
pub const KVM_CAP_PPC_FIXUP_HCALL: u32 = 103;
pub const KVM_CAP_PPC_ENABLE_HCALL: u32 = 104;
pub const KVM_CAP_PPC_HWRNG: u32 = 115;
pub const KVM_CAP_SPAPR_TCE_64: u32 = 125;
pub const KVM_CAP_MAX_VCPU_ID: u32 = 128;
pub const KVM_CAP_PPC_MMU_RADIX: u32 = 134;
pub const KVM_CAP_PPC_MMU_HASH_V3: u32 = 135;
pub const KVM_CAP_IMMEDIATE_EXIT: u32 = 136;
pub const KVM_CAP_PPC_FWNMI: u32 = 146;
pub const KVM_CAP_PPC_SMT_POSSIBLE: u32 = 147;
pub const KVM_CAP_PPC_GET_CPU_CHAR: u32 = 151;
pub const KVM_CAP_PPC_NESTED_HV: u32 = 160;
pub const KVM_CAP_PPC_IRQ_XIVE: u32 = 169;
pub const KVM_CAP_PPC_RPT_INVALIDATE: u32 = 202;
pub const KVM_CAP_PPC_AIL_MODE_3: u32 = 210;

// ---- KVM_INTERRUPT magic values (userspace interrupt controller) ----
pub const KVM_INTERRUPT_SET: u32 = -1i32 as u32;
pub const KVM_INTERRUPT_UNSET: u32 = -2i32 as u32;
pub const KVM_INTERRUPT_SET_LEVEL: u32 = -3i32 as u32;

// ---- devices ----
pub const KVM_DEV_TYPE_XICS: u32 = 3;
pub const KVM_DEV_TYPE_XIVE: u32 = 9;
pub const KVM_DEV_XICS_GRP_SOURCES: u32 = 1;
pub const KVM_DEV_XICS_GRP_CTRL: u32 = 2;
pub const KVM_DEV_XICS_NR_SERVERS: u64 = 1;
pub const KVM_XICS_DESTINATION_MASK: u64 = 0xffff_ffff;
pub const KVM_XICS_PRIORITY_SHIFT: u32 = 32;
pub const KVM_XICS_PRIORITY_MASK: u64 = 0xff;
pub const KVM_XICS_LEVEL_SENSITIVE: u64 = 1 << 40;
pub const KVM_XICS_MASKED: u64 = 1 << 41;
pub const KVM_XICS_PENDING: u64 = 1 << 42;
pub const KVM_XICS_PRESENTED: u64 = 1 << 43;
pub const KVM_XICS_QUEUED: u64 = 1 << 44;

// ---- MMU ----
pub const KVM_PPC_MMUV3_RADIX: u64 = 1;
pub const KVM_PPC_MMUV3_GTSE: u64 = 2;
pub const KVM_GET_HTAB_BOLTED_ONLY: u64 = 1;
pub const KVM_GET_HTAB_WRITE: u64 = 2;
pub const KVM_PPC_PAGE_SIZES_MAX_SZ: usize = 8;

// ---- memory slots ----
pub const KVM_MEM_LOG_DIRTY_PAGES: u32 = 1;
pub const KVM_MEM_READONLY: u32 = 2;

// ---- system events ----
pub const KVM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
pub const KVM_SYSTEM_EVENT_RESET: u32 = 2;
pub const KVM_SYSTEM_EVENT_CRASH: u32 = 3;

/// General purpose and a few special registers (`KVM_GET_REGS`/`KVM_SET_REGS`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_regs {
    pub pc: u64,
    pub cr: u64,
    pub ctr: u64,
    pub lr: u64,
    pub xer: u64,
    pub msr: u64,
    pub srr0: u64,
    pub srr1: u64,
    pub pid: u64,
    pub sprg0: u64,
    pub sprg1: u64,
    pub sprg2: u64,
    pub sprg3: u64,
    pub sprg4: u64,
    pub sprg5: u64,
    pub sprg6: u64,
    pub sprg7: u64,
    pub gpr: [u64; 32],
}

/// One SLB entry pair in the book3s view of `kvm_sregs`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_sregs_slb {
    pub slbe: u64,
    pub slbv: u64,
}

/// The 32-bit (segment registers and BATs) part of the book3s view.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_sregs_ppc32 {
    pub sr: [u32; 16],
    pub ibat: [u64; 8],
    pub dbat: [u64; 8],
}

/// The book3s (`u.s`) view of the `kvm_sregs` union; on book3s it is the largest member, so it
/// also fixes the union's size. The BookE view is not mirrored.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct kvm_sregs_book3s {
    pub sdr1: u64,
    pub slb: [kvm_sregs_slb; 64],
    pub ppc32: kvm_sregs_ppc32,
}

impl Default for kvm_sregs_book3s {
    fn default() -> Self {
        Self {
            sdr1: 0,
            slb: [kvm_sregs_slb::default(); 64],
            ppc32: kvm_sregs_ppc32::default(),
        }
    }
}

/// `KVM_GET_SREGS`/`KVM_SET_SREGS` (book3s view). On KVM-HV `pvr` must equal the host's.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_sregs {
    pub pvr: u32,
    pub s: kvm_sregs_book3s,
}

/// `KVM_GET_ONE_REG`/`KVM_SET_ONE_REG`: `addr` points at a value of the size encoded in `id`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_one_reg {
    pub id: u64,
    pub addr: u64,
}

/// `KVM_SET_USER_MEMORY_REGION`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_userspace_memory_region {
    pub slot: u32,
    pub flags: u32,
    pub guest_phys_addr: u64,
    pub memory_size: u64,
    pub userspace_addr: u64,
}

/// `KVM_ENABLE_CAP` (VM or vCPU fd).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct kvm_enable_cap {
    pub cap: u32,
    pub flags: u32,
    pub args: [u64; 4],
    pub pad: [u8; 64],
}

impl Default for kvm_enable_cap {
    fn default() -> Self {
        Self {
            cap: 0,
            flags: 0,
            args: [0; 4],
            pad: [0; 64],
        }
    }
}

/// `KVM_CREATE_DEVICE`: `fd` is filled in by the kernel.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_create_device {
    pub type_: u32,
    pub fd: u32,
    pub flags: u32,
}

/// `KVM_{SET,GET,HAS}_DEVICE_ATTR`: `addr` is a userspace pointer to the attribute value.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_device_attr {
    pub flags: u32,
    pub group: u32,
    pub attr: u64,
    pub addr: u64,
}

/// `KVM_IOEVENTFD`: guest stores at `addr` of `len` bytes (matching `datamatch` with
/// [`KVM_IOEVENTFD_FLAG_DATAMATCH`]) signal eventfd `fd` inside the kernel instead of exiting.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct kvm_ioeventfd {
    pub datamatch: u64,
    pub addr: u64,
    pub len: u32,
    pub fd: i32,
    pub flags: u32,
    pub pad: [u8; 36],
}

pub const KVM_IOEVENTFD_FLAG_DATAMATCH: u32 = 1 << 0;
pub const KVM_IOEVENTFD_FLAG_DEASSIGN: u32 = 1 << 2;

/// `KVM_IRQ_LINE`: on book3s with in-kernel XICS `irq` is the XICS source number.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_irq_level {
    pub irq: u32,
    pub level: u32,
}

/// `KVM_INTERRUPT` (userspace interrupt controller; see the `KVM_INTERRUPT_*` values).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_interrupt {
    pub irq: u32,
}

/// `KVM_PPC_CONFIGURE_V3_MMU`: `process_table` is the second doubleword of a partition-table
/// entry (GR bit 63, base, PRTS in the low 5 bits).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_ppc_mmuv3_cfg {
    pub flags: u64,
    pub process_table: u64,
}

/// `KVM_PPC_GET_HTAB_FD`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_get_htab_fd {
    pub flags: u64,
    pub start_index: u64,
    pub reserved: [u64; 2],
}

/// Record header in the `KVM_PPC_GET_HTAB_FD` stream (host byte order).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_get_htab_header {
    pub index: u32,
    pub n_valid: u16,
    pub n_invalid: u16,
}

/// `KVM_PPC_GET_CPU_CHAR`; bit values are those of `H_GET_CPU_CHARACTERISTICS`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_ppc_cpu_char {
    pub character: u64,
    pub behaviour: u64,
    pub character_mask: u64,
    pub behaviour_mask: u64,
}

/// `KVM_CREATE_SPAPR_TCE_64` (`KVM_CAP_SPAPR_TCE_64`): an in-kernel TCE table for one DMA
/// window, so `H_PUT_TCE`/`H_GET_TCE` (and, once enabled, `H_PUT_TCE_INDIRECT`/`H_STUFF_TCE`)
/// on `liobn` are served inside KVM. `offset` and `size` are in IOMMU pages of
/// `2^page_shift` bytes; the window is bus addresses `offset << page_shift ..
/// (offset + size) << page_shift`. The ioctl returns an fd; closing it removes the table.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_create_spapr_tce_64 {
    pub liobn: u64,
    pub page_shift: u32,
    pub flags: u32,
    pub offset: u64,
    pub size: u64,
}

/// `KVM_PPC_RTAS_DEFINE_TOKEN`: lets the kernel serve an RTAS call (the XICS ones).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct kvm_rtas_token_args {
    pub name: [u8; 120],
    pub token: u64,
}

/// One (page shift, PTE encoding) pair of `kvm_ppc_smmu_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_ppc_one_page_size {
    pub page_shift: u32,
    pub pte_enc: u32,
}

/// One segment base page size of `kvm_ppc_smmu_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_ppc_one_seg_page_size {
    pub page_shift: u32,
    pub slb_enc: u32,
    pub enc: [kvm_ppc_one_page_size; KVM_PPC_PAGE_SIZES_MAX_SZ],
}

/// `KVM_PPC_GET_SMMU_INFO` (hash MMU geometry).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_ppc_smmu_info {
    pub flags: u64,
    pub slb_size: u32,
    pub data_keys: u16,
    pub instr_keys: u16,
    pub sps: [kvm_ppc_one_seg_page_size; KVM_PPC_PAGE_SIZES_MAX_SZ],
}

/// One radix tree geometry of `kvm_ppc_rmmu_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_ppc_radix_geom {
    pub page_shift: u8,
    pub level_bits: [u8; 4],
    pub pad: [u8; 3],
}

/// `KVM_PPC_GET_RMMU_INFO`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_ppc_rmmu_info {
    pub geometries: [kvm_ppc_radix_geom; 8],
    pub ap_encodings: [u32; 8],
}

/// `kvm_run.papr_hcall`: r3 → `nr`, r4..r12 → `args`; on re-entry `ret` → r3 and all nine
/// `args` → r4..r12.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_run_papr_hcall {
    pub nr: u64,
    pub ret: u64,
    pub args: [u64; 9],
}

/// `kvm_run.mmio`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_run_mmio {
    pub phys_addr: u64,
    pub data: [u8; 8],
    pub len: u32,
    pub is_write: u8,
}

/// `kvm_run.fail_entry`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_run_fail_entry {
    pub hardware_entry_failure_reason: u64,
    pub cpu: u32,
}

/// `kvm_run.internal`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_run_internal {
    pub suberror: u32,
    pub ndata: u32,
    pub data: [u64; 16],
}

/// `kvm_run.system_event`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_run_system_event {
    pub type_: u32,
    pub ndata: u32,
    pub data: [u64; 16],
}

/// The exit-information union of `kvm_run` (256 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub union kvm_run_exit {
    pub hardware_exit_reason: u64,
    pub fail_entry: kvm_run_fail_entry,
    pub mmio: kvm_run_mmio,
    pub internal: kvm_run_internal,
    pub papr_hcall: kvm_run_papr_hcall,
    pub system_event: kvm_run_system_event,
    pub padding: [u8; 256],
}

/// The shared `kvm_run` page of a vCPU (start of the vCPU fd mapping). The sync-register area
/// is empty on powerpc and kept as padding.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct kvm_run {
    pub request_interrupt_window: u8,
    pub immediate_exit: u8,
    pub padding1: [u8; 6],
    pub exit_reason: u32,
    pub ready_for_interrupt_injection: u8,
    pub if_flag: u8,
    pub flags: u16,
    pub cr8: u64,
    pub apic_base: u64,
    pub exit: kvm_run_exit,
    pub kvm_valid_regs: u64,
    pub kvm_dirty_regs: u64,
    pub s: [u8; 2048],
}

// ---- ONE_REG ids ----
pub const KVM_REG_PPC: u64 = 0x1000_0000_0000_0000;
pub const KVM_REG_SIZE_SHIFT: u32 = 52;
pub const KVM_REG_SIZE_MASK: u64 = 0x00f0_0000_0000_0000;
pub const KVM_REG_SIZE_U32: u64 = 0x0020_0000_0000_0000;
pub const KVM_REG_SIZE_U64: u64 = 0x0030_0000_0000_0000;
pub const KVM_REG_SIZE_U128: u64 = 0x0040_0000_0000_0000;

pub const KVM_REG_PPC_HIOR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x01;
pub const KVM_REG_PPC_DSCR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x09;
pub const KVM_REG_PPC_PURR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x0a;
pub const KVM_REG_PPC_SPURR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x0b;
pub const KVM_REG_PPC_DAR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x0c;
pub const KVM_REG_PPC_DSISR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0x0d;
pub const KVM_REG_PPC_AMR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x0e;
pub const KVM_REG_PPC_FPR0: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x20;
pub const KVM_REG_PPC_VR0: u64 = KVM_REG_PPC | KVM_REG_SIZE_U128 | 0x40;
pub const KVM_REG_PPC_VSR0: u64 = KVM_REG_PPC | KVM_REG_SIZE_U128 | 0x60;
pub const KVM_REG_PPC_FPSCR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x80;
pub const KVM_REG_PPC_VSCR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0x81;
pub const KVM_REG_PPC_VPA_ADDR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x82;
pub const KVM_REG_PPC_VPA_SLB: u64 = KVM_REG_PPC | KVM_REG_SIZE_U128 | 0x83;
pub const KVM_REG_PPC_VPA_DTL: u64 = KVM_REG_PPC | KVM_REG_SIZE_U128 | 0x84;
pub const KVM_REG_PPC_ICP_STATE: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x8c;
pub const KVM_REG_PPC_TB_OFFSET: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x9c;
pub const KVM_REG_PPC_DAWR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xaa;
pub const KVM_REG_PPC_DAWRX: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xab;
pub const KVM_REG_PPC_CIABR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xac;
pub const KVM_REG_PPC_PID: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xb2;
pub const KVM_REG_PPC_LPCR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0xb5;
pub const KVM_REG_PPC_LPCR_64: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xb5;
pub const KVM_REG_PPC_PPR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xb6;
pub const KVM_REG_PPC_ARCH_COMPAT: u64 = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0xb7;
pub const KVM_REG_PPC_SPRG9: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xba;
pub const KVM_REG_PPC_TIDR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xbc;
pub const KVM_REG_PPC_PSSCR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xbd;
pub const KVM_REG_PPC_DEC_EXPIRY: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xbe;
pub const KVM_REG_PPC_ONLINE: u64 = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0xbf;
pub const KVM_REG_PPC_PTCR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xc0;

/// `KVM_REG_PPC_FPR(n)`.
pub const fn kvm_reg_ppc_fpr(n: u64) -> u64 {
    KVM_REG_PPC_FPR0 + n
}

/// `KVM_REG_PPC_VSR(n)`.
pub const fn kvm_reg_ppc_vsr(n: u64) -> u64 {
    KVM_REG_PPC_VSR0 + n
}

/// Size in bytes of the value a ONE_REG id refers to.
pub const fn kvm_reg_size(id: u64) -> usize {
    1 << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT)
}

// ---- LPCR bits userspace may change (kvmppc_set_lpcr) ----
/// Interrupt little-endian.
pub const LPCR_ILE: u64 = 1 << 25;
/// Alternate interrupt location, 2-bit field.
pub const LPCR_AIL_SHIFT: u32 = 23;
pub const LPCR_AIL: u64 = 3 << LPCR_AIL_SHIFT;
