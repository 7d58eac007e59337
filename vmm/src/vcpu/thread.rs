//! The vCPU thread: waits until runnable, runs `KVM_RUN`, handles each exit (hcalls, MMIO,
//! RTAS actions), serves reset and snapshot requests between runs.

use super::handle::{Next, VcpuBody, VcpuControl, VcpuCounters};
use super::state::StartRequest;
use crate::devices::phb::tce::{TceCall, TceError};
use crate::events::MachineEvent;
use crate::hcall::{HcallHandler, HcallOps};
use crate::kvm::bindings::*;
use crate::kvm::{VcpuExit, VcpuFd};
use crate::partition::Partition;
use firmware::rtas::{RtasAction, RtasStatus};
use firmware::CpuState;
use log::{debug, error, info, warn};
use std::sync::Arc;

/// MSR at kernel entry: 64-bit mode, machine checks enabled (SF | ME).
pub const MSR_SF_ME: u64 = 0x8000_0000_0000_1000;
/// MSR bits the system reset sets or keeps.
const MSR_SF: u64 = 1 << 63;
const MSR_ME: u64 = 1 << 12;
const MSR_LE: u64 = 1;
/// The system reset interrupt vector (real address).
pub const SYSTEM_RESET_VECTOR: u64 = 0x100;
/// SRR1 bits a system reset sets from its cause rather than from the MSR (33:36, 42:47).
const SRR1_SYSTEM_RESET_CLEARED: u64 = 0x783f_0000;
/// LPCR bits H_SET_MODE manages partition-wide.
pub const LPCR_MANAGED: u64 = LPCR_ILE | LPCR_AIL;
/// In-kernel XICS presenter state after reset (`KVM_REG_PPC_ICP_STATE` fields): CPPR 0
/// (<< 56), XISR 0 (<< 32), MFRR 0xff = no IPI (<< 24), pending priority 0xff (<< 16). KVM
/// rejects a state with XISR 0 whose pending priority is not 0xff (EINVAL); an earlier value
/// without it left crash-time IPI state behind across fadump and reboot resets.
const ICP_STATE_RESET: u64 = (0xff << 24) | (0xff << 16);

impl VcpuControl {
    /// Spawns the vCPU thread; it parks until started.
    pub fn spawn(self: &Arc<Self>, vcpu: VcpuFd, partition: Arc<Partition>) -> std::io::Result<()> {
        let ctl = self.clone();
        let on_panic = partition.clone();
        self.spawn_with(
            move || VcpuThread::new(ctl, vcpu, partition).run(),
            move |msg| on_panic.send(MachineEvent::Fatal(msg)),
        )
    }
}

struct VcpuThread {
    ctl: Arc<VcpuControl>,
    vcpu: VcpuFd,
    partition: Arc<Partition>,
    hcalls: HcallHandler,
    lpcr_generation: u64,
}

impl VcpuThread {
    fn new(ctl: Arc<VcpuControl>, vcpu: VcpuFd, partition: Arc<Partition>) -> Self {
        VcpuThread {
            ctl,
            vcpu,
            partition,
            hcalls: HcallHandler::new(),
            lpcr_generation: u64::MAX,
        }
    }

    fn id(&self) -> u32 {
        self.ctl.id
    }

    fn run(mut self) {
        loop {
            let ctl = self.ctl.clone();
            let start = match ctl.wait_runnable(&mut self) {
                Next::Quit => return,
                Next::Run(s) => s,
            };
            if let Some(s) = start {
                if let Err(e) = self.apply_start(s) {
                    self.fatal(format!(
                        "vcpu {}: cannot set start registers: {e}",
                        self.id()
                    ));
                    return;
                }
            }
            self.apply_lpcr();
            if !self.run_once() {
                return;
            }
        }
    }

    /// One KVM_RUN and its exit; false when the thread must end.
    fn run_once(&mut self) -> bool {
        let id = self.id();
        let exit = match self.vcpu.run() {
            Ok(exit) => exit,
            Err(e) => {
                self.fatal(format!("vcpu {id}: KVM_RUN failed: {e}"));
                return false;
            }
        };
        let counters = &self.ctl.counters;
        VcpuCounters::count(&counters.exits);
        match exit {
            VcpuExit::PaprHcall { nr, args, ret } => {
                VcpuCounters::count(&counters.hcalls);
                if nr == crate::hcall::H_RTAS {
                    VcpuCounters::count(&counters.rtas);
                }
                let mut ops = VcpuOps {
                    partition: &self.partition,
                };
                let r = self.hcalls.handle(id, nr, args, &mut ops);
                *ret = r.ret as u64;
                if let Some(action) = r.action {
                    self.rtas_action(action);
                }
            }
            VcpuExit::Intr => self.ctl.immediate_exit.set(false),
            VcpuExit::MmioRead(addr, data) => {
                VcpuCounters::count(&counters.mmio);
                if self.partition.mmio_read(addr, data) {
                    return true;
                }
                crate::guest_warn!(
                    "vcpu {id}: MMIO read of {} bytes at {addr:#x}: no device",
                    data.len()
                );
                data.fill(0xff);
            }
            VcpuExit::MmioWrite(addr, data) => {
                VcpuCounters::count(&counters.mmio);
                if self.partition.mmio_write(addr, data) {
                    return true;
                }
                crate::guest_warn!(
                    "vcpu {id}: MMIO write of {} bytes at {addr:#x}: no device",
                    data.len()
                );
            }
            other => {
                let msg = format!("vcpu {id}: unexpected exit {other:?}");
                self.fatal(msg);
                return false;
            }
        }
        true
    }

    fn rtas_action(&mut self, action: RtasAction) {
        let id = self.id();
        match action {
            RtasAction::None => {}
            RtasAction::Console(b) => self.partition.console.write(&[b]),
            RtasAction::StartCpu { cpu, entry, r3 } => {
                let started = self
                    .partition
                    .vcpu(cpu)
                    .map(|c| c.request_start(StartRequest { entry, r3, r4: 0 }));
                info!("vcpu {id}: start-cpu {cpu} at {entry:#x} r3={r3:#x}: {started:?}");
            }
            RtasAction::StopSelf => {
                info!("vcpu {id}: stop-self");
                let _ = self.vcpu.set_one_reg_u64(KVM_REG_PPC_ONLINE, 0);
                self.ctl.stop_self();
            }
            RtasAction::SystemReboot => {
                info!("vcpu {id}: system-reboot");
                self.ctl.hold_self();
                self.partition.send(MachineEvent::Reboot);
            }
            RtasAction::PowerOff => {
                info!("vcpu {id}: power-off");
                self.ctl.hold_self();
                self.partition.send(MachineEvent::PowerOff);
            }
            RtasAction::OsTerm { message } => {
                // The guest terminated (panic) and no dump is registered: the platform
                // reboots it, as PAPR leaves the action to the platform. An active dump, if
                // any, survives the reboot (Machine::run calls on_partition_reset).
                warn!(
                    "vcpu {id}: ibm,os-term with no dump registered: {}; rebooting without \
                     a guest dump",
                    message.trim_end()
                );
                crate::event_monitor::emit_from(
                    "guest",
                    "panic",
                    serde_json::json!({ "cpu": id, "message": message.trim_end(), "fadump": false }),
                );
                self.ctl.hold_self();
                self.partition.send(MachineEvent::OsTerm { cpu: id });
            }
            RtasAction::FadumpCrash { message, args } => {
                warn!(
                    "vcpu {id}: ibm,os-term with a registered dump: {}",
                    message.trim_end()
                );
                crate::event_monitor::emit_from(
                    "guest",
                    "panic",
                    serde_json::json!({ "cpu": id, "message": message.trim_end(), "fadump": true }),
                );
                // Held, still online: the machine's snapshot finds it as the dump's caller.
                self.ctl.hold_self();
                self.partition
                    .send(MachineEvent::FadumpCrash { cpu: id, args });
            }
            RtasAction::RaiseEvents(classes) => {
                for class in classes {
                    crate::devices::irq::pulse_event(&self.partition.vm, class);
                }
            }
            RtasAction::Machine { call, args } => {
                // The XICS calls are served by KVM (KVM_PPC_RTAS_DEFINE_TOKEN); the PCI
                // config calls go to the PHBs.
                if self.partition.machine_rtas_call(call, &args) {
                    return;
                }
                warn!(
                    "vcpu {id}: RTAS {} reached the VMM; not implemented",
                    call.name()
                );
                args.write_status(&self.partition.mem, RtasStatus::HardwareError);
            }
        }
    }

    fn apply_start(&mut self, s: StartRequest) -> crate::kvm::Result<()> {
        // A vCPU that stopped inside an hcall (stop-self, system-reboot) still has that hcall's
        // completion pending: KVM writes `ret`/`args` into r3..r12 at the start of the next
        // KVM_RUN, which would overwrite the r3/r4 we set below (seen as a second boot that
        // entered the kernel with r3 = 0 instead of the device tree). A KVM_RUN with
        // `immediate_exit` set performs that write-back and returns EINTR without running
        // the guest. `immediate_exit` stays set, so the next KVM_RUN also returns at once
        // and the loop re-reads the requests before running for real: no kick is lost.
        let id = self.id();
        self.ctl.immediate_exit.set(true);
        match self.vcpu.run() {
            Ok(VcpuExit::Intr) => {}
            Ok(other) => warn!("vcpu {id}: flushing a pending exit gave {other:?}"),
            Err(e) => warn!("vcpu {id}: flushing a pending exit: {e}"),
        }
        let mut regs = kvm_regs {
            pc: s.entry,
            msr: MSR_SF_ME,
            ..Default::default()
        };
        regs.gpr[3] = s.r3;
        regs.gpr[4] = s.r4;
        self.vcpu.set_regs(&regs)?;
        // Force the partition-wide LPCR bits onto this vCPU before it runs.
        self.lpcr_generation = u64::MAX;
        if let Err(e) = self.vcpu.set_one_reg_u64(KVM_REG_PPC_ONLINE, 1) {
            debug!("vcpu {}: ONLINE=1: {e}", self.id());
        }
        debug!(
            "vcpu {}: start at {:#x} r3={:#x} r4={:#x}",
            self.id(),
            s.entry,
            s.r3,
            s.r4
        );
        Ok(())
    }

    /// Brings LPCR[ILE, AIL] in line with the partition-wide value H_SET_MODE set.
    fn apply_lpcr(&mut self) {
        let (value, generation) = self.partition.lpcr();
        if generation == self.lpcr_generation {
            return;
        }
        match self.vcpu.get_one_reg_u64(KVM_REG_PPC_LPCR_64) {
            Ok(cur) => {
                let new = (cur & !LPCR_MANAGED) | (value & LPCR_MANAGED);
                if new != cur {
                    if let Err(e) = self.vcpu.set_one_reg_u64(KVM_REG_PPC_LPCR_64, new) {
                        error!("vcpu {}: setting LPCR {new:#x} failed: {e}", self.id());
                    } else {
                        debug!("vcpu {}: LPCR {cur:#x} -> {new:#x}", self.id());
                    }
                }
            }
            Err(e) => error!("vcpu {}: reading LPCR failed: {e}", self.id()),
        }
        self.lpcr_generation = generation;
    }

    /// Per-vCPU part of a machine reset: VPA registrations (DTL and SLB shadow before the
    /// VPA itself), interrupt presenter, ONLINE. LPCR follows the machine's reset value.
    fn reset_state(&mut self) {
        let id = self.id();
        for (reg, name) in [
            (KVM_REG_PPC_VPA_DTL, "DTL"),
            (KVM_REG_PPC_VPA_SLB, "SLB shadow"),
        ] {
            if let Err(e) = self.vcpu.set_one_reg_u128_pair(reg, 0, 0) {
                debug!("vcpu {id}: clearing {name}: {e}");
            }
        }
        if let Err(e) = self.vcpu.set_one_reg_u64(KVM_REG_PPC_VPA_ADDR, 0) {
            debug!("vcpu {id}: clearing VPA: {e}");
        }
        if let Err(e) = self
            .vcpu
            .set_one_reg_u64(KVM_REG_PPC_ICP_STATE, ICP_STATE_RESET)
        {
            warn!("vcpu {id}: interrupt presenter reset failed: {e}");
        }
        let _ = self.vcpu.set_one_reg_u64(KVM_REG_PPC_ONLINE, 0);
        self.lpcr_generation = u64::MAX;
        self.apply_lpcr();
        self.ctl.immediate_exit.set(false);
    }

    /// Reads this (stopped) vCPU's registers for a dump; unreadable ONE_REGs stay 0.
    fn capture_state(&mut self) -> CpuState {
        let id = self.id();
        let regs = self.vcpu.get_regs().unwrap_or_else(|e| {
            error!("vcpu {id}: KVM_GET_REGS for the dump: {e}");
            kvm_regs::default()
        });
        let pvr = self.vcpu.get_sregs().map(|s| s.pvr).unwrap_or(0);
        let sprs: Vec<_> = super::regs::ONE_REG_SPRS
            .iter()
            .filter_map(|(reg, one)| self.vcpu.get_one_reg_u64(*one).ok().map(|v| (*reg, v)))
            .collect();
        debug!(
            "vcpu {id}: captured nia={:#x} msr={:#x} ({} SPRs)",
            regs.pc,
            regs.msr,
            sprs.len()
        );
        super::regs::cpu_state(id, &regs, pvr, &sprs)
    }

    /// Makes the guest take a system reset (vector 0x100) at the next entry, as the
    /// architecture delivers one to a partition without FWNMI (we do not publish
    /// `ibm,nmi-register`): SRR0 = the interrupted NIP, SRR1 = its MSR without the bits the
    /// interrupt defines (QEMU's `0x783f0000` mask: no wake-up reason), and the new MSR 64-bit,
    /// real mode, external interrupts off, ME kept, LE from the partition's LPCR[ILE]. No
    /// AIL: a system reset always enters at the real vector.
    ///
    /// A pending hcall or MMIO completion is flushed first (a `KVM_RUN` with `immediate_exit`
    /// set, as in `apply_start`), so the registers read and written are the guest's own and
    /// the completion does not land on top of the new ones.
    fn deliver_system_reset(&mut self) -> crate::kvm::Result<()> {
        let id = self.id();
        self.ctl.immediate_exit.set(true);
        match self.vcpu.run() {
            Ok(VcpuExit::Intr) => {}
            Ok(other) => warn!("vcpu {id}: flushing a pending exit gave {other:?}"),
            Err(e) => warn!("vcpu {id}: flushing a pending exit: {e}"),
        }
        let mut regs = self.vcpu.get_regs()?;
        let ile = self.partition.lpcr().0 & LPCR_ILE != 0;
        let (nip, msr) = (regs.pc, regs.msr);
        regs.srr0 = nip;
        regs.srr1 = msr & !SRR1_SYSTEM_RESET_CLEARED;
        regs.msr = MSR_SF | (msr & MSR_ME) | if ile { MSR_LE } else { 0 };
        regs.pc = SYSTEM_RESET_VECTOR;
        self.vcpu.set_regs(&regs)?;
        info!("vcpu {id}: system reset delivered (interrupted at {nip:#x}, msr {msr:#x})");
        Ok(())
    }

    fn fatal(&self, msg: String) {
        error!("{msg}");
        self.ctl.hold_self();
        self.partition.send(MachineEvent::Fatal(msg));
    }
}

impl VcpuBody for VcpuThread {
    fn reset(&mut self) {
        self.reset_state();
    }
    fn capture(&mut self) -> CpuState {
        self.capture_state()
    }
    fn system_reset(&mut self) -> bool {
        match self.deliver_system_reset() {
            Ok(()) => true,
            Err(e) => {
                error!("vcpu {}: system reset not delivered: {e}", self.id());
                false
            }
        }
    }
}

/// [`HcallOps`] on top of the machine.
struct VcpuOps<'a> {
    partition: &'a Partition,
}

impl HcallOps for VcpuOps<'_> {
    fn console_write(&mut self, bytes: &[u8]) {
        self.partition.console.write(bytes);
    }
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        self.partition.console.read(buf)
    }
    fn set_lpcr_bits(&mut self, mask: u64, value: u64) {
        self.partition.set_lpcr_bits(mask, value);
    }
    fn ail_mode_3_supported(&self) -> bool {
        self.partition.ail_mode_3
    }
    fn hash_mmu(&self) -> bool {
        self.partition.hpt_order.is_some()
    }
    fn clear_hpt(&mut self) -> Result<(), i32> {
        let order = self.partition.hpt_order.ok_or(libc::ENODEV)?;
        crate::hash::clear(&self.partition.vm, order).map_err(|e| e.errno())
    }
    fn configure_v3_mmu(&mut self, cfg: kvm_ppc_mmuv3_cfg) -> Result<(), i32> {
        self.partition
            .vm
            .configure_v3_mmu(&cfg)
            .map_err(|e| e.errno())
    }
    fn cpu_characteristics(&mut self) -> Option<kvm_ppc_cpu_char> {
        self.partition.cpu_char
    }
    fn rtas(&mut self, vcpu: u32, args_addr: u64) -> Option<RtasAction> {
        self.partition.rtas(vcpu, args_addr)
    }
    fn tce(&mut self, call: TceCall) -> Result<u64, TceError> {
        self.partition.tce_call(call)
    }
    fn vcpu_exists(&self, id: u32) -> bool {
        self.partition.vcpu(id).is_some()
    }
    fn signal_sys_reset(&mut self, caller: u32, target: crate::events::SysResetTarget) -> bool {
        self.partition
            .send(MachineEvent::SignalSysReset { caller, target });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icp_reset_state_is_one_kvm_accepts() {
        let field = |shift: u32, mask: u64| (ICP_STATE_RESET >> shift) & mask;
        let (cppr, xisr, mfrr, ppri) = (
            field(56, 0xff),
            field(32, 0xff_ffff),
            field(24, 0xff),
            field(16, 0xff),
        );
        assert_eq!(
            (cppr, xisr, mfrr),
            (0, 0, 0xff),
            "nothing presented, no IPI"
        );
        // KVM's consistency rule for XISR == 0.
        assert_eq!(ppri, 0xff);
        assert_eq!(
            ICP_STATE_RESET & 0xffff,
            0,
            "no bits outside the four fields"
        );
    }

    #[test]
    fn partition_lpcr_bits_are_only_ile_and_ail() {
        assert_eq!(LPCR_MANAGED, (1 << 25) | (3 << 23));
        assert_eq!(MSR_SF_ME, (1 << 63) | (1 << 12));
        assert_eq!(MSR_SF | MSR_ME, MSR_SF_ME);
        assert_eq!(
            SRR1_SYSTEM_RESET_CLEARED,
            (0xf << (63 - 36)) | (0x3f << (63 - 47)),
            "ISA bits 33:36 and 42:47"
        );
    }
}
