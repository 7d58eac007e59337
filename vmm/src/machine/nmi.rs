//! The NMI of a pseries machine: a system reset (vector 0x100) delivered to vCPUs on their own
//! threads. There is no KVM ioctl for it on ppc64: each target is kicked out of `KVM_RUN`
//! and rewrites its own registers (SRR0/SRR1 from NIP/MSR, NIP = 0x100) through the mailbox
//! (`Request::SystemReset`), as QEMU's `spapr_nmi` / `inject-nmi` does.
//!
//! Linux's `system_reset_exception()` sends a system reset to `crash_fadump()` when a dump is
//! registered ("a system reset is a request to dump"), with no command-line option needed;
//! without one it dies and panics ("System Reset"). The guest's own NMI IPIs
//! (`H_SIGNAL_SYS_RESET`, e.g. `smp_send_stop()` and `crash_fadump()`'s wait for the other
//! CPUs) take the same path.

use super::{Machine, MachineState, OpError};
use crate::events::SysResetTarget;
use crate::vcpu::set::{self, ResetDelivery};
use log::{info, warn};

impl Machine {
    /// Delivers an NMI (system reset) to every vCPU that runs guest code. Refused while a
    /// dump is being written or no kernel runs.
    pub(crate) fn nmi(&mut self) -> Result<(), OpError> {
        let d = self.system_reset(|_| true)?;
        if d.delivered.is_empty() {
            return Err(OpError::Failed(format!(
                "NMI reached no vCPU (not running: {:?}, dead: {:?}, unresponsive: {:?})",
                d.not_running, d.dead, d.unresponsive
            )));
        }
        info!("NMI: system reset delivered to vcpus {:?}", d.delivered);
        crate::event_monitor::emit("nmi", serde_json::json!({ "vcpus": d.delivered }));
        Ok(())
    }

    /// `H_SIGNAL_SYS_RESET` from vCPU `caller`, validated by the hcall layer.
    pub(super) fn signal_sys_reset(&mut self, caller: u32, target: SysResetTarget) {
        match self.system_reset(|id| target.includes(caller, id)) {
            Ok(d) => log::debug!("H_SIGNAL_SYS_RESET from vcpu {caller} ({target:?}): {d:?}"),
            Err(e) => warn!("H_SIGNAL_SYS_RESET from vcpu {caller} ({target:?}) dropped: {e}"),
        }
    }

    fn system_reset(&mut self, targets: impl Fn(u32) -> bool) -> Result<ResetDelivery, OpError> {
        refuse_unless_running(self.state)?;
        let d = set::system_reset_all(self.partition.vcpus(), targets, self.answer_timeout);
        if !d.unresponsive.is_empty() {
            warn!("system reset: vcpus {:?} did not answer", d.unresponsive);
        }
        Ok(d)
    }
}

/// The refusal for an operator request in `state`: none while a kernel runs, [`OpError::Busy`]
/// while a dump is being written (nothing is changed, the dump goes on) or the machine is
/// between boots.
pub(super) fn refuse_unless_running(state: MachineState) -> Result<(), OpError> {
    match state {
        MachineState::Running => Ok(()),
        MachineState::Dumping => Err(OpError::Busy("a dump is being written")),
        _ => Err(OpError::Busy("the guest is not running")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_running_machine_takes_operator_requests() {
        assert!(refuse_unless_running(MachineState::Running).is_ok());
        assert!(matches!(
            refuse_unless_running(MachineState::Dumping),
            Err(OpError::Busy("a dump is being written"))
        ));
        for s in [
            MachineState::Created,
            MachineState::Resetting,
            MachineState::Off,
            MachineState::Failed,
        ] {
            assert!(matches!(refuse_unless_running(s), Err(OpError::Busy(_))));
        }
    }
}
