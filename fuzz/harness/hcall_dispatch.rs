//! Fuzz harness: sequences of hcall numbers and arguments through the VMM's dispatcher
//! (`HcallHandler::handle`), as a vCPU thread makes them on a `KVM_EXIT_PAPR_HCALL`.
//!
//! The machine side is a model with real back ends where they are pure: H_RTAS goes to the
//! firmware's RTAS over a small guest memory, its PCI/DDW calls and the TCE hcalls to a real
//! PHB, as `Partition` routes them; console, LPCR, MMU and HPT calls are recorded. Checked after
//! every call:
//!
//! * r3 is one of the PAPR codes the dispatcher returns, and an action comes only with a
//!   successful H_RTAS;
//! * an hcall the VMM does not serve gets H_FUNCTION and leaves r4..r12 alone, and the calls it
//!   serves change only their output registers;
//! * the console gets at most 16 bytes per call, and only from H_PUT_TERM_CHAR;
//! * H_SET_MODE changes only LPCR[ILE] or LPCR[AIL], and AIL=3 only when the host has it;
//! * KVM_PPC_CONFIGURE_V3_MMU only gets well-formed configurations (known flags, an aligned
//!   table base, PRTS <= 24, the guest-radix bit exactly for radix), and a hash partition that
//!   deregisters stays hash;
//! * H_SIGNAL_SYS_RESET asks the machine for one reset, from the caller, of an existing vCPU
//!   (or all / all but the caller), and only when it succeeds;
//! * the handler remembers at most `REPORTED_MAX` unhandled numbers, however many the guest
//!   tries (each input can flood thousands).

use std::sync::Arc;

use firmware::fadump::FadumpConfig;
use firmware::rtas::{CpuRunState, Platform, Rtas, RtasAction, TimeOfDay};
use vm_memory::GuestMemoryMmap;
use vmm::devices::phb::ddw::{handle_ddw_call, DDW_CALLS};
use vmm::devices::phb::rtas::{handle_config_call, PCI_CONFIG_CALLS};
use vmm::devices::phb::tce::{TceCall, TceError};
use vmm::devices::phb::{IrqLine, Phb, PhbConfig};
use vmm::events::SysResetTarget;
use vmm::hcall::*;
use vmm::kvm::bindings::{
    kvm_ppc_cpu_char, kvm_ppc_mmuv3_cfg, KVM_PPC_MMUV3_GTSE, KVM_PPC_MMUV3_RADIX, LPCR_AIL,
    LPCR_ILE,
};

use crate::input::Input;
use crate::ram;

const RAM: [(u64, usize); 1] = [(0, 0x4_0000)];
/// vCPUs the model machine has.
const VCPUS: u32 = 4;

#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    pub served: u32,
    pub unhandled: u32,
    pub rtas_actions: u32,
    pub mmu_configs: u32,
    pub tce_ok: u32,
    pub console_bytes: u32,
}

struct NoIrq;
impl IrqLine for NoIrq {
    fn set_level(&self, _: u32, _: bool) {}
}

struct P;
impl Platform for P {
    fn time_of_day(&self) -> TimeOfDay {
        TimeOfDay::default()
    }
    fn cpu_run_state(&self, cpu: u32) -> Option<CpuRunState> {
        (cpu < 2).then_some(CpuRunState::Stopped)
    }
}

struct Ops {
    mem: GuestMemoryMmap,
    rtas: Rtas,
    phbs: Vec<Phb>,
    console_in: Vec<u8>,
    console_out: Vec<usize>,
    lpcr: u64,
    ail3: bool,
    hash: bool,
    clear_ok: bool,
    mmu_err: Option<i32>,
    mmu: Vec<kvm_ppc_mmuv3_cfg>,
    cpu_char: Option<kvm_ppc_cpu_char>,
    lpcr_masks: Vec<(u64, u64)>,
    tce_ok: u32,
    resets: Vec<(u32, SysResetTarget)>,
}

impl HcallOps for Ops {
    fn console_write(&mut self, bytes: &[u8]) {
        self.console_out.push(bytes.len());
    }
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.console_in.len());
        buf[..n].copy_from_slice(&self.console_in[..n]);
        self.console_in.drain(..n);
        n
    }
    fn set_lpcr_bits(&mut self, mask: u64, value: u64) {
        self.lpcr_masks.push((mask, value));
        self.lpcr = (self.lpcr & !mask) | (value & mask);
    }
    fn ail_mode_3_supported(&self) -> bool {
        self.ail3
    }
    fn hash_mmu(&self) -> bool {
        self.hash
    }
    fn clear_hpt(&mut self) -> Result<(), i32> {
        if self.clear_ok {
            Ok(())
        } else {
            Err(16)
        }
    }
    fn configure_v3_mmu(&mut self, cfg: kvm_ppc_mmuv3_cfg) -> Result<(), i32> {
        self.mmu.push(cfg);
        self.mmu_err.map_or(Ok(()), Err)
    }
    fn cpu_characteristics(&mut self) -> Option<kvm_ppc_cpu_char> {
        self.cpu_char
    }
    fn rtas(&mut self, _vcpu: u32, args_addr: u64) -> Option<RtasAction> {
        assert!(
            args_addr < 1 << 60,
            "H_RTAS address {args_addr:#x} kept its top nibble"
        );
        match self.rtas.dispatch(&self.mem, args_addr, &P).ok()? {
            RtasAction::Machine { call, args } => {
                let served = handle_config_call(&mut self.phbs, &self.mem, call, &args)
                    || handle_ddw_call(&mut self.phbs, &self.mem, call, &args);
                assert!(served);
                Some(RtasAction::None)
            }
            a => Some(a),
        }
    }
    fn tce(&mut self, call: TceCall) -> Result<u64, TceError> {
        let r = match self.phbs.iter_mut().find(|p| p.dma().owns(call.liobn())) {
            Some(phb) => phb.dma_mut().tce_call(&self.mem, call),
            None => Err(TceError::UnknownLiobn(call.liobn())),
        };
        if r.is_ok() {
            self.tce_ok += 1;
        }
        r
    }
    fn vcpu_exists(&self, id: u32) -> bool {
        id < VCPUS
    }
    fn signal_sys_reset(&mut self, caller: u32, target: SysResetTarget) -> bool {
        if let SysResetTarget::Cpu(id) = target {
            assert!(id < VCPUS, "a reset for vcpu {id}, which does not exist");
        }
        self.resets.push((caller, target));
        true
    }
}

/// The numbers the dispatcher serves (anything else must be H_FUNCTION).
fn served(nr: u64, hash: bool) -> bool {
    match Hcall::from_nr(nr) {
        Some(Hcall::ClearHpt) => hash,
        Some(
            Hcall::PutTermChar
            | Hcall::GetTermChar
            | Hcall::SetMode
            | Hcall::RegisterProcTbl
            | Hcall::GetCpuCharacteristics
            | Hcall::PutTce
            | Hcall::GetTce
            | Hcall::StuffTce
            | Hcall::PutTceIndirect
            | Hcall::SignalSysReset
            | Hcall::Rtas,
        ) => true,
        _ => false,
    }
}

/// Registers each served hcall may write (r4.. = args[0..]).
fn outputs(nr: u64) -> usize {
    match Hcall::from_nr(nr) {
        Some(Hcall::GetTermChar) => 3,
        Some(Hcall::GetCpuCharacteristics) => 2,
        Some(Hcall::GetTce) => 1,
        _ => 0,
    }
}

fn arg(input: &mut Input) -> u64 {
    match input.u8() % 8 {
        0 => input.u64(),
        1 => VTY_TERMNO,
        2 => 0x8000_0000 | u64::from(input.u8() % 4),
        3 => u64::from(input.u16()) << 12,
        4 => input.pick(&[u64::MAX, -2i64 as u64, -3i64 as u64]),
        _ => u64::from(input.u8()),
    }
}

pub fn run(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mut input = Input::new(data);
    let flags = input.u8();
    let mut rtas = Rtas::new(FadumpConfig {
        max_cpus: 2,
        hpte_capacity: 4,
        rma_size: 0x4_0000,
        firmware_reserved: vec![],
    });
    for c in PCI_CONFIG_CALLS.iter().chain(DDW_CALLS.iter()) {
        rtas.enable_machine_call(*c);
    }
    let mut ops = Ops {
        mem: ram::new(&RAM),
        rtas,
        phbs: vec![Phb::new(PhbConfig::qemu_like(0), Arc::new(NoIrq))],
        console_in: b"ls -l /proc/vmcore\n".repeat(4),
        console_out: Vec::new(),
        lpcr: 0,
        ail3: flags & 1 != 0,
        hash: flags & 2 != 0,
        clear_ok: flags & 4 != 0,
        mmu_err: match (flags >> 3) % 4 {
            0 => None,
            1 => Some(19), // ENODEV
            _ => Some(22),
        },
        mmu: Vec::new(),
        cpu_char: (flags & 0x40 != 0).then_some(kvm_ppc_cpu_char {
            character: u64::MAX,
            behaviour: u64::MAX,
            character_mask: 0xff00,
            behaviour_mask: 0x00f0,
        }),
        lpcr_masks: Vec::new(),
        tce_ok: 0,
        resets: Vec::new(),
    };
    let mut handler = HcallHandler::new();
    let codes = [
        H_SUCCESS,
        H_HARDWARE,
        H_FUNCTION,
        H_PARAMETER,
        H_P2,
        H_P3,
        H_P4,
        H_NOT_AVAILABLE,
        H_UNSUPPORTED_FLAG,
    ];

    for _ in 0..64 {
        let Some(op) = input.op() else { break };
        if op == 0xff {
            // A flood of distinct unknown numbers from one vCPU.
            let base = (input.u64() & 0x0fff_ffff_ffff_0000) | 0x1_0000_0000;
            let mut args = [0u64; 9];
            for i in 0..2000u64 {
                let r = handler.handle(0, base.wrapping_add(i * 4), &mut args, &mut ops);
                assert_eq!(r.ret, H_FUNCTION);
            }
            assert!(handler.reported_numbers() <= REPORTED_MAX);
            continue;
        }
        let nr = match op % 4 {
            0 => input.u64(),
            1 => u64::from(input.u16()),
            _ => input.pick(Hcall::ALL).nr(),
        };
        let mut args = [0u64; 9];
        for a in args.iter_mut() {
            *a = arg(&mut input);
        }
        let vcpu = u32::from(input.u8()) % VCPUS;
        let before = args;
        let (mmu_before, console_before, lpcr_before) =
            (ops.mmu.len(), ops.console_out.len(), ops.lpcr_masks.len());
        let tce_before = ops.tce_ok;
        let resets_before = ops.resets.len();
        let r = handler.handle(vcpu, nr, &mut args, &mut ops);

        assert!(codes.contains(&r.ret), "r3 {} from {nr:#x}", r.ret);
        if r.action.is_some() {
            assert!(nr == H_RTAS && r.ret == H_SUCCESS);
            reached.rtas_actions += 1;
        }
        if served(nr, ops.hash) {
            reached.served += 1;
            let n = outputs(nr);
            assert_eq!(
                args[n..],
                before[n..],
                "{} changed registers past its outputs",
                hcall_name(nr)
            );
            if r.ret != H_SUCCESS {
                assert_eq!(
                    args,
                    before,
                    "a failed {} changed registers",
                    hcall_name(nr)
                );
            }
        } else {
            reached.unhandled += 1;
            assert_eq!(r.ret, H_FUNCTION, "{nr:#x} is not served");
            assert_eq!(args, before);
        }
        // Console.
        let writes = &ops.console_out[console_before..];
        assert!(writes.is_empty() || nr == H_PUT_TERM_CHAR);
        assert!(writes.len() <= 1 && writes.iter().all(|n| *n <= TERM_CHARS_MAX));
        reached.console_bytes += writes.iter().sum::<usize>() as u32;
        if nr == H_GET_TERM_CHAR && r.ret == H_SUCCESS {
            assert!(args[0] <= TERM_CHARS_MAX as u64);
        }
        // LPCR.
        for &(mask, value) in &ops.lpcr_masks[lpcr_before..] {
            assert!(nr == H_SET_MODE && r.ret == H_SUCCESS);
            assert!(mask == LPCR_ILE || mask == LPCR_AIL, "LPCR mask {mask:#x}");
            assert_eq!(value & !mask, 0);
            if mask == LPCR_AIL && value != 0 {
                assert!(ops.ail3, "AIL=3 set without host support");
            }
        }
        // MMU.
        for cfg in &ops.mmu[mmu_before..] {
            assert_eq!(nr, H_REGISTER_PROC_TBL);
            reached.mmu_configs += 1;
            check_mmu(cfg, ops.hash, before[0]);
        }
        // System resets: only from a successful H_SIGNAL_SYS_RESET, one per call, from the caller.
        let resets = &ops.resets[resets_before..];
        assert!(resets.is_empty() || (nr == H_SIGNAL_SYS_RESET && r.ret == H_SUCCESS));
        assert!(resets.len() <= 1 && resets.iter().all(|(c, _)| *c == vcpu));
        if ops.tce_ok > tce_before {
            reached.tce_ok += 1;
        }
        assert!(handler.reported_numbers() <= REPORTED_MAX);
    }
    reached
}

fn check_mmu(cfg: &kvm_ppc_mmuv3_cfg, hash: bool, flags: u64) {
    assert_eq!(
        cfg.flags & !(KVM_PPC_MMUV3_RADIX | KVM_PPC_MMUV3_GTSE),
        0,
        "{cfg:x?}"
    );
    let radix = cfg.flags & KVM_PPC_MMUV3_RADIX != 0;
    assert_eq!(
        radix,
        cfg.process_table & PATE1_GR != 0,
        "{cfg:x?}: guest-radix bit disagrees"
    );
    if cfg.flags & KVM_PPC_MMUV3_GTSE != 0 {
        assert!(radix);
    }
    let table = cfg.process_table & !PATE1_GR;
    if radix {
        assert!(table & 0x1f <= 24, "PRTS {}", table & 0x1f);
        assert_eq!((table & !0x1f) & 0xfff, 0, "{cfg:x?}: unaligned table base");
    } else {
        assert!(table & 0x1f <= 24);
    }
    if flags & PROC_TABLE_REGISTER == 0 && hash {
        assert!(!radix, "a hash partition deregistering became radix");
    }
}
