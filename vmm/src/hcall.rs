//! The hypercalls that reach userspace (`KVM_EXIT_PAPR_HCALL`) and their handlers.
//!
//! Decoding and validation live here, behind the [`HcallOps`] trait, so every handler is
//! unit-tested on any host with a mock; the machine implements `HcallOps` on top of KVM.
//! Register convention: `nr` = r3, `args[0..9]` = r4..r12; the return code goes to r3 and the
//! outputs into `args` (KVM writes all nine back to r4..r12 on the next KVM_RUN).

use crate::devices::phb::tce::{TceCall, TceError};
use crate::events::SysResetTarget;
use crate::kvm::bindings::{
    kvm_ppc_cpu_char, kvm_ppc_mmuv3_cfg, KVM_PPC_MMUV3_GTSE, KVM_PPC_MMUV3_RADIX, LPCR_AIL,
    LPCR_AIL_SHIFT, LPCR_ILE,
};
use firmware::rtas::RtasAction;
use log::{debug, info, warn};
use std::collections::BTreeSet;

// ---- hcall numbers (PAPR; Linux arch/powerpc/include/asm/hvcall.h) ----

/// Who answers an hcall on our partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedBy {
    /// KVM-HV handles it in the kernel; it never reaches us.
    Kernel,
    /// KVM serves it in the kernel once enabled with `KVM_CAP_PPC_ENABLE_HCALL` (the machine
    /// enables these at start-up); otherwise it reaches us and gets H_FUNCTION.
    KernelWhenEnabled,
    /// KVM serves it for a LIOBN whose TCE table is in the kernel (`KVM_CREATE_SPAPR_TCE_64`;
    /// the multi-TCE calls once enabled); the VMM serves every other LIOBN, and answers what
    /// KVM bounces (`H_TOO_HARD`) with the PAPR code.
    KernelOrVmm,
    /// The VMM (this module's [`HcallHandler`]).
    Vmm,
    /// Not the VMM: when it reaches us the guest gets H_FUNCTION (KVM serves some of these in
    /// the kernel on some hosts, e.g. H_RANDOM with a hardware RNG). Named so the log says
    /// what the guest asked for.
    Unsupported,
}

macro_rules! hcalls {
    ($($variant:ident = $nr:literal, $name:literal, $by:ident;)*) => {
        /// Every hcall this VMM knows by number: its name and who serves it, in one table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u64)]
        pub enum Hcall {
            $($variant = $nr,)*
        }

        impl Hcall {
            /// Every known hcall, in table order.
            pub const ALL: &'static [Hcall] = &[$(Hcall::$variant,)*];

            /// The hcall number (r3).
            pub const fn nr(self) -> u64 {
                self as u64
            }

            /// The name Linux's `hvcall.h` gives it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Hcall::$variant => $name,)*
                }
            }

            /// Who answers it.
            pub const fn served_by(self) -> ServedBy {
                match self {
                    $(Hcall::$variant => ServedBy::$by,)*
                }
            }

            /// The hcall with number `nr`, if we know it.
            pub const fn from_nr(nr: u64) -> Option<Hcall> {
                match nr {
                    $($nr => Some(Hcall::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

hcalls! {
    Remove = 0x04, "H_REMOVE", Kernel;
    Enter = 0x08, "H_ENTER", Kernel;
    Read = 0x0c, "H_READ", Kernel;
    ClearMod = 0x10, "H_CLEAR_MOD", KernelWhenEnabled;
    ClearRef = 0x14, "H_CLEAR_REF", KernelWhenEnabled;
    Protect = 0x18, "H_PROTECT", Kernel;
    GetTce = 0x1c, "H_GET_TCE", KernelOrVmm;
    PutTce = 0x20, "H_PUT_TCE", KernelOrVmm;
    SetSprg0 = 0x24, "H_SET_SPRG0", Unsupported;
    SetDabr = 0x28, "H_SET_DABR", Kernel;
    PageInit = 0x2c, "H_PAGE_INIT", KernelWhenEnabled;
    LogicalCiLoad = 0x3c, "H_LOGICAL_CI_LOAD", KernelWhenEnabled;
    LogicalCiStore = 0x40, "H_LOGICAL_CI_STORE", KernelWhenEnabled;
    GetTermChar = 0x54, "H_GET_TERM_CHAR", Vmm;
    PutTermChar = 0x58, "H_PUT_TERM_CHAR", Vmm;
    Eoi = 0x64, "H_EOI", Kernel;
    Cppr = 0x68, "H_CPPR", Kernel;
    Ipi = 0x6c, "H_IPI", Kernel;
    Ipoll = 0x70, "H_IPOLL", Kernel;
    Xirr = 0x74, "H_XIRR", Kernel;
    Perfmon = 0xd8, "H_PERFMON", Unsupported;
    RegisterVpa = 0xdc, "H_REGISTER_VPA", Kernel;
    Cede = 0xe0, "H_CEDE", Kernel;
    Confer = 0xe4, "H_CONFER", Kernel;
    Prod = 0xe8, "H_PROD", Kernel;
    GetPpp = 0xf8, "H_GET_PPP", Unsupported;
    VioSignal = 0x104, "H_VIO_SIGNAL", Unsupported;
    SendCrq = 0x11c, "H_SEND_CRQ", Unsupported;
    BulkRemove = 0x124, "H_BULK_REMOVE", Kernel;
    SetXdabr = 0x134, "H_SET_XDABR", Kernel;
    StuffTce = 0x138, "H_STUFF_TCE", KernelOrVmm;
    PutTceIndirect = 0x13c, "H_PUT_TCE_INDIRECT", KernelOrVmm;
    GetCpuCharacteristics = 0x1c8, "H_GET_CPU_CHARACTERISTICS", Vmm;
    Join = 0x298, "H_JOIN", Unsupported;
    HomeNodeAssociativity = 0x2ec, "H_HOME_NODE_ASSOCIATIVITY", Unsupported;
    XirrX = 0x2fc, "H_XIRR_X", Kernel;
    Random = 0x300, "H_RANDOM", Unsupported;
    // LE and AIL always come to us; CIABR/DAWR stay in the kernel once enabled.
    SetMode = 0x31c, "H_SET_MODE", KernelWhenEnabled;
    ClearHpt = 0x358, "H_CLEAR_HPT", Vmm;
    RegisterProcTbl = 0x37c, "H_REGISTER_PROC_TBL", Vmm;
    SignalSysReset = 0x380, "H_SIGNAL_SYS_RESET", Vmm;
    RptInvalidate = 0x448, "H_RPT_INVALIDATE", Unsupported;
    GetEnergyScaleInfo = 0x450, "H_GET_ENERGY_SCALE_INFO", Unsupported;
    Watchdog = 0x45c, "H_WATCHDOG", Unsupported;
    // KVM's private hcalls: H_RTAS is what our RTAS stub issues.
    Rtas = 0xf000, "KVMPPC_H_RTAS", Vmm;
    LogicalMemop = 0xf001, "KVMPPC_H_LOGICAL_MEMOP", Unsupported;
    Cas = 0xf002, "KVMPPC_H_CAS", Unsupported;
    UpdateDt = 0xf003, "KVMPPC_H_UPDATE_DT", Unsupported;
}

// The numbers by their hvcall.h names, for tests and other modules.
pub const H_GET_TERM_CHAR: u64 = Hcall::GetTermChar.nr();
pub const H_PUT_TERM_CHAR: u64 = Hcall::PutTermChar.nr();
pub const H_GET_CPU_CHARACTERISTICS: u64 = Hcall::GetCpuCharacteristics.nr();
pub const H_SET_MODE: u64 = Hcall::SetMode.nr();
pub const H_REGISTER_PROC_TBL: u64 = Hcall::RegisterProcTbl.nr();
pub const H_CLEAR_HPT: u64 = Hcall::ClearHpt.nr();
pub const H_SIGNAL_SYS_RESET: u64 = Hcall::SignalSysReset.nr();
/// KVM's private hcall the RTAS stub issues (`KVMPPC_H_RTAS`).
pub const H_RTAS: u64 = Hcall::Rtas.nr();

/// The hcalls KVM serves in the kernel once enabled with `KVM_CAP_PPC_ENABLE_HCALL` (the
/// TCE calls among them: KVM serves them for its own tables only).
pub fn kernel_when_enabled() -> impl Iterator<Item = Hcall> {
    Hcall::ALL.iter().copied().filter(|h| {
        matches!(
            h.served_by(),
            ServedBy::KernelWhenEnabled | ServedBy::KernelOrVmm
        )
    })
}

/// The multi-TCE hcalls, which KVM has only with `KVM_CAP_SPAPR_MULTITCE`.
pub const MULTI_TCE: [Hcall; 2] = [Hcall::StuffTce, Hcall::PutTceIndirect];

// ---- return codes ----
pub const H_SUCCESS: i64 = 0;
pub const H_HARDWARE: i64 = -1;
pub const H_FUNCTION: i64 = -2;
pub const H_PARAMETER: i64 = -4;
pub const H_P2: i64 = -55;
pub const H_P3: i64 = -56;
pub const H_P4: i64 = -57;
pub const H_NOT_AVAILABLE: i64 = 3;
pub const H_UNSUPPORTED_FLAG: i64 = -256;

// ---- H_SET_MODE ----
pub const H_SET_MODE_RESOURCE_SET_CIABR: u64 = 1;
pub const H_SET_MODE_RESOURCE_SET_DAWR0: u64 = 2;
pub const H_SET_MODE_RESOURCE_ADDR_TRANS_MODE: u64 = 3;
pub const H_SET_MODE_RESOURCE_LE: u64 = 4;
pub const H_SET_MODE_RESOURCE_SET_DAWR1: u64 = 5;

// ---- H_REGISTER_PROC_TBL flags ----
pub const PROC_TABLE_MODIFY: u64 = 0x10;
pub const PROC_TABLE_REGISTER: u64 = 0x08;
pub const PROC_TABLE_RADIX: u64 = 0x04;
pub const PROC_TABLE_HASH: u64 = 0x02;
pub const PROC_TABLE_GTSE: u64 = 0x01;
/// Partition-table entry doubleword 1, "guest radix" bit.
pub const PATE1_GR: u64 = 1 << 63;

/// The unit address of the one hypervisor virtual terminal (`/vdevice/vty@30000000`).
pub const VTY_TERMNO: u64 = 0x3000_0000;
/// Characters per H_PUT/GET_TERM_CHAR (two registers).
pub const TERM_CHARS_MAX: usize = 16;

/// The largest process-table size field (PRTS) the architecture allows.
const PRTS_MAX: u64 = 24;

/// What the hcall layer needs from the machine.
pub trait HcallOps {
    /// Bytes the guest wrote to the console.
    fn console_write(&mut self, bytes: &[u8]);
    /// Pending console input, at most `buf.len()` bytes; returns how many were copied.
    fn console_read(&mut self, buf: &mut [u8]) -> usize;
    /// Set the LPCR bits in `mask` to `value` on **every** vCPU, including stopped ones and
    /// those started later (H_SET_MODE is partition-wide).
    fn set_lpcr_bits(&mut self, mask: u64, value: u64);
    /// Whether KVM accepts `LPCR[AIL] = 3` (`KVM_CAP_PPC_AIL_MODE_3`).
    fn ail_mode_3_supported(&self) -> bool;
    /// Whether the partition uses a hash page table (`--mmu hash`).
    fn hash_mmu(&self) -> bool;
    /// Invalidate every entry of the partition's HPT (`KVM_PPC_ALLOCATE_HTAB` with the current
    /// order; KVM refuses with EBUSY while another vCPU is in the guest). `Err(errno)`.
    fn clear_hpt(&mut self) -> Result<(), i32>;
    /// `KVM_PPC_CONFIGURE_V3_MMU`; `Err(errno)` on failure.
    fn configure_v3_mmu(&mut self, cfg: kvm_ppc_mmuv3_cfg) -> Result<(), i32>;
    /// `KVM_PPC_GET_CPU_CHAR`, `None` if unavailable.
    fn cpu_characteristics(&mut self) -> Option<kvm_ppc_cpu_char>;
    /// Hand an RTAS argument block to the firmware; `None` if the block was unreadable.
    fn rtas(&mut self, vcpu: u32, args_addr: u64) -> Option<RtasAction>;
    /// A TCE hcall KVM did not serve, for the PHBs' DMA windows; `Ok` carries H_GET_TCE's
    /// value.
    fn tce(&mut self, call: TceCall) -> Result<u64, TceError>;
    /// Whether a vCPU with this id exists.
    fn vcpu_exists(&self, id: u32) -> bool;
    /// Have the machine deliver a system reset to `target` (validated); false when the
    /// machine is gone.
    fn signal_sys_reset(&mut self, caller: u32, target: SysResetTarget) -> bool;
}

/// The outcome of one hcall: the value for r3 and, for H_RTAS, what the machine must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcallResult {
    pub ret: i64,
    pub action: Option<RtasAction>,
}

impl HcallResult {
    fn ret(ret: i64) -> Self {
        HcallResult { ret, action: None }
    }
}

/// How many distinct unhandled hcall numbers a vCPU reports at warn level. A guest can put
/// any of 2^64 numbers in r3: past this many, further new numbers are logged at debug level
/// only, so a hostile loop grows neither host memory nor the log.
pub const REPORTED_MAX: usize = 64;

/// Dispatches hcalls by number. Holds only the (bounded) set of unhandled hcalls already
/// reported.
#[derive(Debug, Default)]
pub struct HcallHandler {
    reported: BTreeSet<u64>,
    /// Unhandled calls not reported at warn level since the set filled up.
    unreported: u64,
}

/// A human name for hcall numbers we may see, for log lines.
pub fn hcall_name(nr: u64) -> &'static str {
    Hcall::from_nr(nr).map_or("unknown hcall", Hcall::name)
}

/// Packs up to 16 bytes big-endian into two registers (first byte = most significant).
pub fn pack_term_chars(bytes: &[u8]) -> [u64; 2] {
    let mut b = [0u8; TERM_CHARS_MAX];
    let n = bytes.len().min(TERM_CHARS_MAX);
    b[..n].copy_from_slice(&bytes[..n]);
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&b[..8]);
    lo.copy_from_slice(&b[8..]);
    [u64::from_be_bytes(hi), u64::from_be_bytes(lo)]
}

/// Unpacks `len` (≤ 16) bytes from two registers.
pub fn unpack_term_chars(len: usize, r1: u64, r2: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(TERM_CHARS_MAX);
    b.extend_from_slice(&r1.to_be_bytes());
    b.extend_from_slice(&r2.to_be_bytes());
    b.truncate(len.min(TERM_CHARS_MAX));
    b
}

impl HcallHandler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct unhandled hcall numbers remembered (at most [`REPORTED_MAX`], whatever the
    /// guest calls): what the fuzz target checks the handler's memory by.
    pub fn reported_numbers(&self) -> usize {
        self.reported.len()
    }

    /// One warn line per distinct number, for the first [`REPORTED_MAX`] numbers; the rest at
    /// debug level (with a single warn when the set fills).
    fn report_unhandled(&mut self, vcpu: u32, nr: u64) {
        let name = hcall_name(nr);
        if self.reported.contains(&nr) {
            debug!("vcpu {vcpu}: unhandled hcall {name} ({nr:#x})");
        } else if self.reported.len() < REPORTED_MAX {
            self.reported.insert(nr);
            warn!(
                "vcpu {vcpu}: unhandled hcall {name} ({nr:#x}), returning H_FUNCTION \
                 (further calls logged at debug level)"
            );
        } else {
            if self.unreported == 0 {
                warn!(
                    "vcpu {vcpu}: {REPORTED_MAX} distinct unhandled hcalls reported; further \
                     new ones are logged at debug level only"
                );
            }
            self.unreported = self.unreported.saturating_add(1);
            debug!("vcpu {vcpu}: unhandled hcall {name} ({nr:#x})");
        }
    }

    /// Handles hcall `nr` from vCPU `vcpu`; outputs are written into `args`.
    pub fn handle(
        &mut self,
        vcpu: u32,
        nr: u64,
        args: &mut [u64; 9],
        ops: &mut dyn HcallOps,
    ) -> HcallResult {
        match Hcall::from_nr(nr) {
            Some(Hcall::PutTermChar) => HcallResult::ret(put_term_char(args, ops)),
            Some(Hcall::GetTermChar) => HcallResult::ret(get_term_char(args, ops)),
            Some(Hcall::SetMode) => HcallResult::ret(set_mode(args, ops)),
            Some(Hcall::RegisterProcTbl) => HcallResult::ret(register_proc_tbl(args, ops)),
            Some(Hcall::ClearHpt) if ops.hash_mmu() => HcallResult::ret(clear_hpt(ops)),
            Some(Hcall::GetCpuCharacteristics) => {
                HcallResult::ret(get_cpu_characteristics(args, ops))
            }
            Some(h @ (Hcall::PutTce | Hcall::GetTce | Hcall::StuffTce | Hcall::PutTceIndirect)) => {
                HcallResult::ret(tce(vcpu, h, args, ops))
            }
            Some(Hcall::SignalSysReset) => HcallResult::ret(signal_sys_reset(vcpu, args, ops)),
            Some(Hcall::Rtas) => {
                // RTAS runs in real mode; like QEMU, ignore the top address nibble.
                let addr = args[0] & 0x0fff_ffff_ffff_ffff;
                match ops.rtas(vcpu, addr) {
                    Some(action) => HcallResult {
                        ret: H_SUCCESS,
                        action: Some(action),
                    },
                    None => HcallResult::ret(H_PARAMETER),
                }
            }
            _ => {
                self.report_unhandled(vcpu, nr);
                HcallResult::ret(H_FUNCTION)
            }
        }
    }
}

/// H_SIGNAL_SYS_RESET (r4 = target: a vCPU id, -1 all, -2 all but the caller): the guest's
/// NMI IPI (`pseries_cause_nmi_ipi`). Any other negative value, or an id no vCPU has, is
/// H_PARAMETER. The resets are delivered by the machine on each target's own thread, after
/// this call returns (the caller's own one included, between two `KVM_RUN`s).
fn signal_sys_reset(vcpu: u32, args: &[u64; 9], ops: &mut dyn HcallOps) -> i64 {
    let Some(target) = SysResetTarget::from_arg(args[0]) else {
        crate::guest_warn!(
            "vcpu {vcpu}: H_SIGNAL_SYS_RESET to {} refused",
            args[0] as i64
        );
        return H_PARAMETER;
    };
    if let SysResetTarget::Cpu(id) = target {
        if !ops.vcpu_exists(id) {
            crate::guest_warn!("vcpu {vcpu}: H_SIGNAL_SYS_RESET to vcpu {id}: no such vcpu");
            return H_PARAMETER;
        }
    }
    debug!("vcpu {vcpu}: H_SIGNAL_SYS_RESET {target:?}");
    if ops.signal_sys_reset(vcpu, target) {
        H_SUCCESS
    } else {
        H_HARDWARE
    }
}

/// The TCE hcalls (see `devices::phb::tce` for the rules): r4.. = liobn, ioba, then the TCE
/// (H_PUT_TCE), the list and count (H_PUT_TCE_INDIRECT) or the value and count
/// (H_STUFF_TCE). H_GET_TCE returns the entry in r4. A refused call is H_PARAMETER, or
/// H_HARDWARE when only KVM holds the table.
fn tce(vcpu: u32, h: Hcall, args: &mut [u64; 9], ops: &mut dyn HcallOps) -> i64 {
    let (liobn, ioba) = (args[0], args[1]);
    let call = match h {
        Hcall::PutTce => TceCall::Put {
            liobn,
            ioba,
            tce: args[2],
        },
        Hcall::GetTce => TceCall::Get { liobn, ioba },
        Hcall::PutTceIndirect => TceCall::PutIndirect {
            liobn,
            ioba,
            list: args[2],
            npages: args[3],
        },
        _ => TceCall::Stuff {
            liobn,
            ioba,
            value: args[2],
            npages: args[3],
        },
    };
    match ops.tce(call) {
        Ok(v) => {
            if h == Hcall::GetTce {
                args[0] = v;
            }
            H_SUCCESS
        }
        Err(e) => {
            crate::guest_warn!("vcpu {vcpu}: {}: {e}", h.name());
            match e {
                TceError::InKernelTable(_) => H_HARDWARE,
                _ => H_PARAMETER,
            }
        }
    }
}

fn put_term_char(args: &mut [u64; 9], ops: &mut dyn HcallOps) -> i64 {
    let (termno, len) = (args[0], args[1]);
    // Terminal 0 is the console too, for output: kexec-tools' pseries purgatory prints
    // "I'm in purgatory" there between the crashed kernel and the kdump kernel (QEMU's vty
    // takes terminal 0 as its default one for the same reason).
    if termno != VTY_TERMNO && termno != 0 {
        crate::guest_warn!("H_PUT_TERM_CHAR: unknown terminal {termno:#x}");
        return H_PARAMETER;
    }
    let Ok(len) = usize::try_from(len) else {
        return H_PARAMETER;
    };
    if len > TERM_CHARS_MAX {
        crate::guest_warn!("H_PUT_TERM_CHAR: length {len} > {TERM_CHARS_MAX}");
        return H_PARAMETER;
    }
    ops.console_write(&unpack_term_chars(len, args[2], args[3]));
    H_SUCCESS
}

fn get_term_char(args: &mut [u64; 9], ops: &mut dyn HcallOps) -> i64 {
    if args[0] != VTY_TERMNO {
        crate::guest_warn!("H_GET_TERM_CHAR: unknown terminal {:#x}", args[0]);
        return H_PARAMETER;
    }
    let mut buf = [0u8; TERM_CHARS_MAX];
    let n = ops.console_read(&mut buf).min(TERM_CHARS_MAX);
    let [hi, lo] = pack_term_chars(&buf[..n]);
    args[0] = n as u64;
    args[1] = hi;
    args[2] = lo;
    H_SUCCESS
}

fn set_mode(args: &mut [u64; 9], ops: &mut dyn HcallOps) -> i64 {
    let (mflags, resource, value1, value2) = (args[0], args[1], args[2], args[3]);
    match resource {
        H_SET_MODE_RESOURCE_LE => {
            if value1 != 0 {
                return H_P3;
            }
            if value2 != 0 {
                return H_P4;
            }
            match mflags {
                0 => ops.set_lpcr_bits(LPCR_ILE, 0),
                1 => ops.set_lpcr_bits(LPCR_ILE, LPCR_ILE),
                _ => return H_UNSUPPORTED_FLAG,
            }
            H_SUCCESS
        }
        H_SET_MODE_RESOURCE_ADDR_TRANS_MODE => {
            if value1 != 0 {
                return H_P3;
            }
            if value2 != 0 {
                return H_P4;
            }
            match mflags {
                0 => {
                    ops.set_lpcr_bits(LPCR_AIL, 0);
                    H_SUCCESS
                }
                3 if ops.ail_mode_3_supported() => {
                    ops.set_lpcr_bits(LPCR_AIL, 3 << LPCR_AIL_SHIFT);
                    H_SUCCESS
                }
                // Linux only warns ("Relocation on exceptions not supported").
                3 => H_P2,
                _ => H_UNSUPPORTED_FLAG,
            }
        }
        H_SET_MODE_RESOURCE_SET_CIABR
        | H_SET_MODE_RESOURCE_SET_DAWR0
        | H_SET_MODE_RESOURCE_SET_DAWR1 => {
            // Served by KVM when H_SET_MODE is enabled in the kernel; reaching us means the
            // host refused it.
            debug!("H_SET_MODE resource {resource} not available");
            H_P2
        }
        _ => H_P2,
    }
}

fn register_proc_tbl(args: &mut [u64; 9], ops: &mut dyn HcallOps) -> i64 {
    let (flags, base, page_size, table_size) = (args[0], args[1], args[2], args[3]);
    if flags
        & !(PROC_TABLE_MODIFY
            | PROC_TABLE_REGISTER
            | PROC_TABLE_RADIX
            | PROC_TABLE_HASH
            | PROC_TABLE_GTSE)
        != 0
    {
        return H_PARAMETER;
    }
    if flags & PROC_TABLE_MODIFY == 0 {
        // "Maintain current setting": nothing to change.
        return H_SUCCESS;
    }
    let cfg = if flags & PROC_TABLE_REGISTER == 0 {
        // Deregister: no process table, in the partition's own MMU mode (a hash partition
        // keeps its HPT; switching it to radix here would strand the guest).
        if ops.hash_mmu() {
            kvm_ppc_mmuv3_cfg {
                flags: 0,
                process_table: 0,
            }
        } else {
            kvm_ppc_mmuv3_cfg {
                flags: KVM_PPC_MMUV3_RADIX,
                process_table: PATE1_GR,
            }
        }
    } else if flags & PROC_TABLE_RADIX != 0 {
        if base & 0xfff != 0 || base >= 1 << 60 || page_size != 0 || table_size > PRTS_MAX {
            crate::guest_warn!(
                "H_REGISTER_PROC_TBL: bad radix table base={base:#x} page_size={page_size} \
                 size={table_size}"
            );
            return H_PARAMETER;
        }
        let mut kflags = KVM_PPC_MMUV3_RADIX;
        if flags & PROC_TABLE_GTSE != 0 {
            kflags |= KVM_PPC_MMUV3_GTSE;
        }
        kvm_ppc_mmuv3_cfg {
            flags: kflags,
            process_table: PATE1_GR | base | table_size,
        }
    } else {
        // Hash MMU (with a segment table when HASH is set, plain SLB otherwise).
        let process_table = if flags & PROC_TABLE_HASH != 0 {
            if base >= 1 << 38 || page_size > 7 || table_size > PRTS_MAX || base & 0xfff != 0 {
                return H_PARAMETER;
            }
            base | (page_size << 5) | table_size
        } else {
            0
        };
        kvm_ppc_mmuv3_cfg {
            flags: 0,
            process_table,
        }
    };
    match ops.configure_v3_mmu(cfg) {
        Ok(()) => H_SUCCESS,
        Err(errno) if errno == libc::ENODEV => H_NOT_AVAILABLE,
        Err(errno) => {
            crate::guest_warn!(
                "H_REGISTER_PROC_TBL: KVM_PPC_CONFIGURE_V3_MMU {cfg:x?} failed: errno {errno}"
            );
            H_PARAMETER
        }
    }
}

/// H_CLEAR_HPT: a capture kernel (fadump active) or a kexec'd kernel drops every entry the
/// previous kernel left. Done in one step by KVM when no other vCPU is in the guest; otherwise
/// H_HARDWARE, and Linux falls back to reading and removing the entries one by one.
fn clear_hpt(ops: &mut dyn HcallOps) -> i64 {
    match ops.clear_hpt() {
        Ok(()) => {
            info!("H_CLEAR_HPT: every HPT entry invalidated by KVM");
            H_SUCCESS
        }
        Err(errno) => {
            crate::guest_warn!("H_CLEAR_HPT: KVM cannot clear the HPT now (errno {errno}); the guest clears it itself");
            H_HARDWARE
        }
    }
}

fn get_cpu_characteristics(args: &mut [u64; 9], ops: &mut dyn HcallOps) -> i64 {
    match ops.cpu_characteristics() {
        Some(c) => {
            args[0] = c.character & c.character_mask;
            args[1] = c.behaviour & c.behaviour_mask;
            H_SUCCESS
        }
        None => H_FUNCTION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Mock {
        out: Vec<u8>,
        input: Vec<u8>,
        lpcr: u64,
        ail3: bool,
        hash: bool,
        clears: u32,
        mmu: Vec<kvm_ppc_mmuv3_cfg>,
        mmu_err: Option<i32>,
        cpu_char: Option<kvm_ppc_cpu_char>,
        rtas_calls: Vec<(u32, u64)>,
        tce_calls: Vec<TceCall>,
        resets: Vec<(u32, SysResetTarget)>,
    }

    impl HcallOps for Mock {
        fn console_write(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
        }
        fn console_read(&mut self, buf: &mut [u8]) -> usize {
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            n
        }
        fn set_lpcr_bits(&mut self, mask: u64, value: u64) {
            self.lpcr = (self.lpcr & !mask) | (value & mask);
        }
        fn ail_mode_3_supported(&self) -> bool {
            self.ail3
        }
        fn hash_mmu(&self) -> bool {
            self.hash
        }
        fn clear_hpt(&mut self) -> Result<(), i32> {
            self.clears += 1;
            self.mmu_err.map_or(Ok(()), Err)
        }
        fn configure_v3_mmu(&mut self, cfg: kvm_ppc_mmuv3_cfg) -> Result<(), i32> {
            self.mmu.push(cfg);
            self.mmu_err.map_or(Ok(()), Err)
        }
        fn cpu_characteristics(&mut self) -> Option<kvm_ppc_cpu_char> {
            self.cpu_char
        }
        fn rtas(&mut self, vcpu: u32, args_addr: u64) -> Option<RtasAction> {
            self.rtas_calls.push((vcpu, args_addr));
            (args_addr != 0xdead).then_some(RtasAction::PowerOff)
        }
        fn tce(&mut self, call: TceCall) -> Result<u64, TceError> {
            self.tce_calls.push(call);
            match call.liobn() {
                0x8000_0000 => Ok(0x1234_0003),
                0x8000_0001 => Err(TceError::InKernelTable(0x8000_0001)),
                other => Err(TceError::UnknownLiobn(other)),
            }
        }
        fn vcpu_exists(&self, id: u32) -> bool {
            id < 4
        }
        fn signal_sys_reset(&mut self, caller: u32, target: SysResetTarget) -> bool {
            self.resets.push((caller, target));
            true
        }
    }

    fn call(m: &mut Mock, nr: u64, a: &[u64]) -> (i64, [u64; 9]) {
        let mut args = [0u64; 9];
        args[..a.len()].copy_from_slice(a);
        let r = HcallHandler::new().handle(0, nr, &mut args, m);
        (r.ret, args)
    }

    #[test]
    fn signal_sys_reset_validates_its_target() {
        let mut m = Mock::default();
        for (arg, target) in [
            (u64::MAX, SysResetTarget::All),
            (-2i64 as u64, SysResetTarget::AllButSelf),
            (3, SysResetTarget::Cpu(3)),
            (0, SysResetTarget::Cpu(0)),
        ] {
            assert_eq!(call(&mut m, H_SIGNAL_SYS_RESET, &[arg]).0, H_SUCCESS);
            assert_eq!(m.resets.pop(), Some((0, target)));
        }
        for bad in [-3i64 as u64, i64::MIN as u64, 4, 1 << 32, u64::MAX >> 1] {
            assert_eq!(
                call(&mut m, H_SIGNAL_SYS_RESET, &[bad]).0,
                H_PARAMETER,
                "{bad:#x}"
            );
        }
        assert!(m.resets.is_empty(), "nothing signalled for a refused call");
        assert!(SysResetTarget::AllButSelf.includes(0, 1));
        assert!(!SysResetTarget::AllButSelf.includes(1, 1));
        assert!(SysResetTarget::All.includes(1, 1));
        assert!(!SysResetTarget::Cpu(2).includes(2, 1));
    }

    #[test]
    fn put_term_char_unpacks_big_endian_registers() {
        let mut m = Mock::default();
        let [hi, lo] = pack_term_chars(b"Linux version 6.");
        assert_eq!(hi, u64::from_be_bytes(*b"Linux ve"));
        let (r, _) = call(&mut m, H_PUT_TERM_CHAR, &[VTY_TERMNO, 16, hi, lo]);
        assert_eq!(r, H_SUCCESS);
        let (r, _) = call(
            &mut m,
            H_PUT_TERM_CHAR,
            &[VTY_TERMNO, 3, u64::from_be_bytes(*b"12\n\0\0\0\0\0"), 0],
        );
        assert_eq!(r, H_SUCCESS);
        assert_eq!(m.out, b"Linux version 6.12\n");
    }

    #[test]
    fn put_term_char_rejects_bad_length_and_terminal() {
        let mut m = Mock::default();
        assert_eq!(
            call(&mut m, H_PUT_TERM_CHAR, &[VTY_TERMNO, 17, 0, 0]).0,
            H_PARAMETER
        );
        assert_eq!(
            call(&mut m, H_PUT_TERM_CHAR, &[VTY_TERMNO, u64::MAX, 0, 0]).0,
            H_PARAMETER
        );
        assert_eq!(
            call(&mut m, H_PUT_TERM_CHAR, &[0x3000_0001, 1, 0, 0]).0,
            H_PARAMETER
        );
        assert!(m.out.is_empty());
    }

    #[test]
    fn put_term_char_takes_terminal_0_as_the_console() {
        let mut m = Mock::default();
        let [hi, lo] = pack_term_chars(b"I'm in purgatory");
        assert_eq!(call(&mut m, H_PUT_TERM_CHAR, &[0, 16, hi, lo]).0, H_SUCCESS);
        assert_eq!(m.out, b"I'm in purgatory");
        // Input stays on the real terminal only.
        assert_eq!(call(&mut m, H_GET_TERM_CHAR, &[0]).0, H_PARAMETER);
    }

    #[test]
    fn get_term_char_returns_length_and_packed_bytes() {
        let mut m = Mock {
            input: b"ls -l\nsecond chunk is long".to_vec(),
            ..Default::default()
        };
        let (r, a) = call(&mut m, H_GET_TERM_CHAR, &[VTY_TERMNO]);
        assert_eq!(r, H_SUCCESS);
        assert_eq!(a[0], 16);
        assert_eq!(unpack_term_chars(16, a[1], a[2]), b"ls -l\nsecond chu");
        let (_, a) = call(&mut m, H_GET_TERM_CHAR, &[VTY_TERMNO]);
        assert_eq!(unpack_term_chars(a[0] as usize, a[1], a[2]), b"nk is long");
        let (_, a) = call(&mut m, H_GET_TERM_CHAR, &[VTY_TERMNO]);
        assert_eq!((a[0], a[1], a[2]), (0, 0, 0));
    }

    #[test]
    fn set_mode_le_sets_and_clears_ile_and_validates() {
        let mut m = Mock::default();
        assert_eq!(
            call(&mut m, H_SET_MODE, &[1, H_SET_MODE_RESOURCE_LE, 0, 0]).0,
            H_SUCCESS
        );
        assert_eq!(m.lpcr, LPCR_ILE);
        assert_eq!(
            call(&mut m, H_SET_MODE, &[0, H_SET_MODE_RESOURCE_LE, 0, 0]).0,
            H_SUCCESS
        );
        assert_eq!(m.lpcr, 0);
        assert_eq!(
            call(&mut m, H_SET_MODE, &[2, H_SET_MODE_RESOURCE_LE, 0, 0]).0,
            H_UNSUPPORTED_FLAG
        );
        assert_eq!(
            call(&mut m, H_SET_MODE, &[1, H_SET_MODE_RESOURCE_LE, 1, 0]).0,
            H_P3
        );
        assert_eq!(
            call(&mut m, H_SET_MODE, &[1, H_SET_MODE_RESOURCE_LE, 0, 1]).0,
            H_P4
        );
        assert_eq!(m.lpcr, 0);
    }

    #[test]
    fn set_mode_ail_depends_on_host_support() {
        let mut m = Mock::default();
        let ail = H_SET_MODE_RESOURCE_ADDR_TRANS_MODE;
        assert_eq!(call(&mut m, H_SET_MODE, &[3, ail, 0, 0]).0, H_P2);
        assert_eq!(m.lpcr, 0);
        m.ail3 = true;
        assert_eq!(call(&mut m, H_SET_MODE, &[3, ail, 0, 0]).0, H_SUCCESS);
        assert_eq!(m.lpcr, LPCR_AIL);
        assert_eq!(
            call(&mut m, H_SET_MODE, &[1, ail, 0, 0]).0,
            H_UNSUPPORTED_FLAG
        );
        assert_eq!(call(&mut m, H_SET_MODE, &[0, ail, 0, 0]).0, H_SUCCESS);
        assert_eq!(m.lpcr, 0);
        assert_eq!(call(&mut m, H_SET_MODE, &[0, 99, 0, 0]).0, H_P2);
    }

    #[test]
    fn register_proc_tbl_radix_configures_kvm() {
        let mut m = Mock::default();
        // What Linux sends for radix + GTSE: MODIFY|REGISTER|RADIX|GTSE, PRTS = 16 - 12.
        let (r, _) = call(&mut m, H_REGISTER_PROC_TBL, &[0x1d, 0x1ff_0000, 0, 4]);
        assert_eq!(r, H_SUCCESS);
        assert_eq!(
            m.mmu,
            vec![kvm_ppc_mmuv3_cfg {
                flags: KVM_PPC_MMUV3_RADIX | KVM_PPC_MMUV3_GTSE,
                process_table: PATE1_GR | 0x1ff_0000 | 4
            }]
        );
    }

    #[test]
    fn clear_hpt_only_for_hash_partitions() {
        let mut radix = Mock::default();
        assert_eq!(call(&mut radix, H_CLEAR_HPT, &[]).0, H_FUNCTION);
        assert_eq!(radix.clears, 0);
        let mut hash = Mock {
            hash: true,
            ..Default::default()
        };
        assert_eq!(call(&mut hash, H_CLEAR_HPT, &[]).0, H_SUCCESS);
        hash.mmu_err = Some(libc::EBUSY);
        assert_eq!(call(&mut hash, H_CLEAR_HPT, &[]).0, H_HARDWARE);
        assert_eq!(hash.clears, 2);
    }

    #[test]
    fn deregistering_keeps_the_partitions_mmu_mode() {
        let dereg = kvm_ppc_mmuv3_cfg {
            flags: 0,
            process_table: 0,
        };
        let mut hash = Mock {
            hash: true,
            ..Default::default()
        };
        // What Linux sends for hash with the SLB: MODIFY|REGISTER, no table.
        assert_eq!(
            call(&mut hash, H_REGISTER_PROC_TBL, &[0x18, 0, 0, 0]).0,
            H_SUCCESS
        );
        assert_eq!(
            call(&mut hash, H_REGISTER_PROC_TBL, &[0x10, 0, 0, 0]).0,
            H_SUCCESS
        );
        assert_eq!(hash.mmu, vec![dereg, dereg]);
        let mut radix = Mock::default();
        assert_eq!(
            call(&mut radix, H_REGISTER_PROC_TBL, &[0x10, 0, 0, 0]).0,
            H_SUCCESS
        );
        assert_eq!(
            radix.mmu,
            vec![kvm_ppc_mmuv3_cfg {
                flags: KVM_PPC_MMUV3_RADIX,
                process_table: PATE1_GR
            }]
        );
    }

    #[test]
    fn register_proc_tbl_rejects_bad_tables_without_calling_kvm() {
        let mut m = Mock::default();
        for a in [
            [0x1d, 0x1ff_0001, 0, 4],     // unaligned base
            [0x1d, 1 << 60, 0, 4],        // base too large
            [0x1d, 0x10000, 1, 4],        // page size must be 0 for radix
            [0x1d, 0x10000, 0, 25],       // PRTS too large
            [0x1d | 0x40, 0x10000, 0, 4], // unknown flag
        ] {
            assert_eq!(
                call(&mut m, H_REGISTER_PROC_TBL, &a).0,
                H_PARAMETER,
                "{a:x?}"
            );
        }
        assert!(m.mmu.is_empty());
    }

    #[test]
    fn register_proc_tbl_maps_kvm_errors() {
        let mut m = Mock {
            mmu_err: Some(libc::EINVAL),
            ..Default::default()
        };
        assert_eq!(
            call(&mut m, H_REGISTER_PROC_TBL, &[0x18, 0, 0, 0]).0,
            H_PARAMETER
        );
        assert_eq!(
            m.mmu[0],
            kvm_ppc_mmuv3_cfg {
                flags: 0,
                process_table: 0
            }
        );
        m.mmu_err = Some(libc::ENODEV);
        assert_eq!(
            call(&mut m, H_REGISTER_PROC_TBL, &[0x1d, 0x10000, 0, 4]).0,
            H_NOT_AVAILABLE
        );
        // No MODIFY: keep the current setting, KVM untouched.
        let before = m.mmu.len();
        assert_eq!(
            call(&mut m, H_REGISTER_PROC_TBL, &[0x0c, 0x10000, 0, 4]).0,
            H_SUCCESS
        );
        assert_eq!(m.mmu.len(), before);
    }

    #[test]
    fn cpu_characteristics_are_masked() {
        let mut m = Mock::default();
        assert_eq!(call(&mut m, H_GET_CPU_CHARACTERISTICS, &[]).0, H_FUNCTION);
        m.cpu_char = Some(kvm_ppc_cpu_char {
            character: 0xff00,
            behaviour: 0x0ff0,
            character_mask: 0x0f00,
            behaviour_mask: 0x00f0,
        });
        let (r, a) = call(&mut m, H_GET_CPU_CHARACTERISTICS, &[7, 7]);
        assert_eq!((r, a[0], a[1]), (H_SUCCESS, 0x0f00, 0x00f0));
    }

    #[test]
    fn rtas_passes_the_masked_real_address_and_returns_the_action() {
        let mut m = Mock::default();
        let mut args = [0u64; 9];
        args[0] = 0xc000_0000_0123_4000;
        let r = HcallHandler::new().handle(3, H_RTAS, &mut args, &mut m);
        assert_eq!(
            r,
            HcallResult {
                ret: H_SUCCESS,
                action: Some(RtasAction::PowerOff)
            }
        );
        assert_eq!(m.rtas_calls, vec![(3, 0x0000_0000_0123_4000)]);
        args[0] = 0xdead;
        assert_eq!(
            HcallHandler::new().handle(0, H_RTAS, &mut args, &mut m).ret,
            H_PARAMETER
        );
    }

    #[test]
    fn unknown_hcalls_get_h_function_and_leave_args_alone() {
        let mut m = Mock::default();
        let mut h = HcallHandler::new();
        let mut args = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        for _ in 0..2 {
            let r = h.handle(0, 0x2ec, &mut args, &mut m);
            assert_eq!(
                r,
                HcallResult {
                    ret: H_FUNCTION,
                    action: None
                }
            );
        }
        assert_eq!(args, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(hcall_name(0x2ec), "H_HOME_NODE_ASSOCIATIVITY");
        assert!(h.reported.contains(&0x2ec));
    }

    #[test]
    fn a_flood_of_distinct_unknown_hcalls_keeps_the_handler_bounded() {
        let mut m = Mock::default();
        let mut h = HcallHandler::new();
        let mut args = [0u64; 9];
        for i in 0..10_000u64 {
            let nr = 0x1_0000_0000 + i * 4;
            assert_eq!(h.handle(0, nr, &mut args, &mut m).ret, H_FUNCTION);
        }
        assert_eq!(h.reported.len(), REPORTED_MAX);
        assert_eq!(h.unreported, 10_000 - REPORTED_MAX as u64);
        // A number already reported stays quiet and does not count again.
        h.handle(0, 0x1_0000_0000, &mut args, &mut m);
        assert_eq!(h.unreported, 10_000 - REPORTED_MAX as u64);
    }

    #[test]
    fn tce_hcalls_are_decoded_and_their_errors_mapped() {
        let mut m = Mock::default();
        let (r, a) = call(&mut m, Hcall::GetTce.nr(), &[0x8000_0000, 0x2000]);
        assert_eq!(
            (r, a[0]),
            (H_SUCCESS, 0x1234_0003),
            "the entry comes back in r4"
        );
        let (r, a) = call(&mut m, Hcall::PutTce.nr(), &[0x8000_0000, 0x3000, 7]);
        assert_eq!(
            (r, a[0]),
            (H_SUCCESS, 0x8000_0000),
            "H_PUT_TCE leaves r4 alone"
        );
        assert_eq!(
            call(
                &mut m,
                Hcall::PutTceIndirect.nr(),
                &[0x8000_0001, 0, 0x10000, 4]
            )
            .0,
            H_HARDWARE
        );
        assert_eq!(
            call(&mut m, Hcall::StuffTce.nr(), &[0x42, 0, 0, 8]).0,
            H_PARAMETER
        );
        assert_eq!(
            m.tce_calls,
            vec![
                TceCall::Get {
                    liobn: 0x8000_0000,
                    ioba: 0x2000
                },
                TceCall::Put {
                    liobn: 0x8000_0000,
                    ioba: 0x3000,
                    tce: 7
                },
                TceCall::PutIndirect {
                    liobn: 0x8000_0001,
                    ioba: 0,
                    list: 0x10000,
                    npages: 4
                },
                TceCall::Stuff {
                    liobn: 0x42,
                    ioba: 0,
                    value: 0,
                    npages: 8
                },
            ]
        );
    }

    #[test]
    fn one_table_names_numbers_and_servers() {
        for &h in Hcall::ALL {
            assert_eq!(Hcall::from_nr(h.nr()), Some(h), "{}", h.name());
            assert!(h.name().starts_with("H_") || h.name().starts_with("KVMPPC_H_"));
        }
        let mut nrs: Vec<u64> = Hcall::ALL.iter().map(|h| h.nr()).collect();
        nrs.sort_unstable();
        nrs.dedup();
        assert_eq!(nrs.len(), Hcall::ALL.len(), "an hcall number appears twice");
        assert_eq!(Hcall::from_nr(0x31c), Some(Hcall::SetMode));
        assert_eq!(H_RTAS, 0xf000);
        assert_eq!(hcall_name(0x12345), "unknown hcall");
        let enabled: Vec<&str> = kernel_when_enabled().map(Hcall::name).collect();
        assert_eq!(
            enabled,
            [
                "H_CLEAR_MOD",
                "H_CLEAR_REF",
                "H_GET_TCE",
                "H_PUT_TCE",
                "H_PAGE_INIT",
                "H_LOGICAL_CI_LOAD",
                "H_LOGICAL_CI_STORE",
                "H_STUFF_TCE",
                "H_PUT_TCE_INDIRECT",
                "H_SET_MODE"
            ]
        );
        // Every hcall the dispatcher answers is in the table as served by the VMM.
        for nr in [
            H_GET_TERM_CHAR,
            H_PUT_TERM_CHAR,
            H_SET_MODE,
            H_REGISTER_PROC_TBL,
            H_CLEAR_HPT,
            H_GET_CPU_CHARACTERISTICS,
            H_RTAS,
            Hcall::PutTce.nr(),
            Hcall::GetTce.nr(),
            Hcall::StuffTce.nr(),
            Hcall::PutTceIndirect.nr(),
        ] {
            let h = Hcall::from_nr(nr).unwrap();
            assert!(
                matches!(
                    h.served_by(),
                    ServedBy::Vmm | ServedBy::KernelWhenEnabled | ServedBy::KernelOrVmm
                ),
                "{}",
                h.name()
            );
        }
    }
}
