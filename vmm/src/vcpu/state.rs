//! A vCPU's state as every thread sees it, and the machine's requests to it: two enums whose
//! transitions are the only way either changes (pure, tested here).
//!
//! * [`VcpuState`]: `Free(run)` follows the guest's own run state, `Held(run)` is parked by the
//!   machine or by its own call the machine must act on, `Dead` has no thread any more.
//! * [`GuestRun`]: the RTAS view (`query-cpu-stopped-state`): `Stopped`, `Starting`, `Running`.
//! * [`Mailbox`]: one request from the machine's thread at a time (`Reset`, `Snapshot`,
//!   `SystemReset`, `Quit`),
//!   taken and answered by the vCPU thread between two `KVM_RUN`s, or withdrawn by a waiter
//!   that gave up.
//!
//! | from | event | to |
//! |---|---|---|
//! | `Free(Stopped)` | `start-cpu` / boot | `Free(Starting)` |
//! | `Free(Starting)` | the vCPU thread takes the start | `Free(Running)` |
//! | `Free(Running)` | `stop-self` | `Free(Stopped)` |
//! | `Free(r)` | snapshot served; own `ibm,os-term` with a dump, reboot, power-off | `Held(r)` |
//! | `Held(r)` | resume (the dump could not be taken) | `Free(r)` |
//! | any but `Dead` | reset served | `Free(Stopped)` |
//! | any | the thread ends | `Dead` |

use firmware::rtas::CpuRunState;
use firmware::CpuState;

/// Where a started vCPU begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRequest {
    /// Guest real address of the first instruction.
    pub entry: u64,
    /// r3 at entry (the device tree for the boot vCPU, start-cpu's argument otherwise).
    pub r3: u64,
    /// r4 at entry (the kernel's base for the boot vCPU).
    pub r4: u64,
}

/// The guest's view of a vCPU: what RTAS `query-cpu-stopped-state` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestRun {
    /// Never started, or stopped itself (`stop-self`): parks and never enters `KVM_RUN`.
    Stopped,
    /// A start was accepted (`start-cpu`, or the machine's boot); the vCPU thread applies it.
    Starting(StartRequest),
    /// Runs guest code.
    Running,
}

/// Where a vCPU is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuState {
    /// Follows its guest run state.
    Free(GuestRun),
    /// Parked: by the machine (a register snapshot for a dump), or by its own call that the
    /// machine acts on (`ibm,os-term` with a dump registered, system-reboot, power-off). It
    /// keeps its guest run state: it counts as online for a dump if that is `Running`, and
    /// a resume returns it there. It does not enter `KVM_RUN` until resumed or reset.
    Held(GuestRun),
    /// The vCPU thread has ended (returned, failed or panicked): nobody answers any more.
    Dead,
}

impl Default for VcpuState {
    fn default() -> Self {
        VcpuState::Free(GuestRun::Stopped)
    }
}

impl VcpuState {
    /// The guest run state (a dead vCPU is stopped for good).
    pub fn guest_run(self) -> GuestRun {
        match self {
            VcpuState::Free(r) | VcpuState::Held(r) => r,
            VcpuState::Dead => GuestRun::Stopped,
        }
    }

    /// The RTAS run state: a pending start counts as running, so a second `start-cpu` on the
    /// same vCPU is refused and its caller's poll sees it come up.
    pub fn rtas_run_state(self) -> CpuRunState {
        match self.guest_run() {
            GuestRun::Stopped => CpuRunState::Stopped,
            GuestRun::Starting(_) | GuestRun::Running => CpuRunState::Running,
        }
    }

    /// Whether the vCPU was running guest code, i.e. belongs in a dump's register save area.
    pub fn online(self) -> bool {
        self.guest_run() == GuestRun::Running
    }

    /// `start-cpu` (or the boot): accepted only for a stopped vCPU.
    pub fn start(self, req: StartRequest) -> Option<VcpuState> {
        match self {
            VcpuState::Free(GuestRun::Stopped) => Some(VcpuState::Free(GuestRun::Starting(req))),
            VcpuState::Held(GuestRun::Stopped) => Some(VcpuState::Held(GuestRun::Starting(req))),
            _ => None,
        }
    }

    /// The vCPU thread takes a pending start: it runs from now on.
    pub fn take_start(self) -> Option<(VcpuState, StartRequest)> {
        match self {
            VcpuState::Free(GuestRun::Starting(req)) => {
                Some((VcpuState::Free(GuestRun::Running), req))
            }
            _ => None,
        }
    }

    /// The vCPU stopped itself (`stop-self`).
    pub fn stop_self(self) -> VcpuState {
        match self {
            VcpuState::Dead => VcpuState::Dead,
            _ => VcpuState::Free(GuestRun::Stopped),
        }
    }

    /// Parks the vCPU, keeping its guest run state.
    pub fn hold(self) -> VcpuState {
        match self {
            VcpuState::Free(r) | VcpuState::Held(r) => VcpuState::Held(r),
            VcpuState::Dead => VcpuState::Dead,
        }
    }

    /// Lets a held vCPU go on where it was.
    pub fn resume(self) -> VcpuState {
        match self {
            VcpuState::Held(r) => VcpuState::Free(r),
            other => other,
        }
    }

    /// The vCPU's per-vCPU state was reset: stopped, as at power-on.
    pub fn reset(self) -> VcpuState {
        match self {
            VcpuState::Dead => VcpuState::Dead,
            _ => VcpuState::Free(GuestRun::Stopped),
        }
    }

    /// Whether the vCPU thread may enter `KVM_RUN` (possibly after applying a start).
    pub fn runnable(self) -> bool {
        matches!(
            self,
            VcpuState::Free(GuestRun::Running | GuestRun::Starting(_))
        )
    }
}

/// What the machine's thread asks of a vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Stop and reset the per-vCPU KVM state (VPA, interrupt presenter, ONLINE, LPCR).
    Reset,
    /// Stop (hold) and report the registers, for a dump.
    Snapshot,
    /// Deliver a system reset (interrupt vector 0x100) if the vCPU runs guest code, then go on
    /// running: an NMI.
    SystemReset,
    /// End the thread.
    Quit,
}

/// What the vCPU thread answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The reset is done; the vCPU is stopped.
    Reset,
    /// The registers, and whether the vCPU was online (running guest code, or the caller of
    /// the `ibm,os-term` that triggered the dump).
    Snapshot {
        /// The vCPU's registers as KVM reported them.
        state: Box<CpuState>,
        /// Whether it belongs in the dump.
        online: bool,
    },
    /// The system reset was delivered (false: the vCPU was not running guest code, or its
    /// registers could not be changed).
    SystemReset {
        /// Whether the vCPU will take the reset at its next entry.
        delivered: bool,
    },
}

/// The one request slot between the machine's thread and a vCPU thread.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Mailbox {
    /// Nothing asked.
    #[default]
    Empty,
    /// Asked, not yet taken.
    Asked(Request),
    /// Taken by the vCPU thread, which is serving it (outside `KVM_RUN`).
    Serving(Request),
    /// The waiter gave up while the vCPU thread was serving it: the answer is dropped.
    Abandoned,
    /// Answered, for the waiter to take.
    Answered(Answer),
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: StartRequest = StartRequest {
        entry: 0xc164,
        r3: 1,
        r4: 0,
    };

    #[test]
    fn start_is_accepted_only_when_stopped() {
        let s = VcpuState::default();
        let starting = s.start(REQ).unwrap();
        assert_eq!(starting, VcpuState::Free(GuestRun::Starting(REQ)));
        assert_eq!(starting.rtas_run_state(), CpuRunState::Running);
        assert!(starting.start(REQ).is_none(), "second start-cpu refused");
        let (running, req) = starting.take_start().unwrap();
        assert_eq!((running, req), (VcpuState::Free(GuestRun::Running), REQ));
        assert!(running.start(REQ).is_none());
        assert!(VcpuState::Dead.start(REQ).is_none());
        assert!(VcpuState::Held(GuestRun::Running).start(REQ).is_none());
    }

    #[test]
    fn a_held_vcpu_keeps_its_guest_state_and_does_not_run() {
        for r in [
            GuestRun::Stopped,
            GuestRun::Starting(REQ),
            GuestRun::Running,
        ] {
            let held = VcpuState::Free(r).hold();
            assert_eq!(held, VcpuState::Held(r));
            assert!(!held.runnable());
            assert!(held.take_start().is_none(), "a held vCPU applies no start");
            assert_eq!(held.hold(), held, "holding twice is holding");
            assert_eq!(held.resume(), VcpuState::Free(r));
            assert_eq!(held.online(), r == GuestRun::Running);
        }
        // A stopped vCPU started while everything is held stays held.
        assert_eq!(
            VcpuState::Held(GuestRun::Stopped).start(REQ),
            Some(VcpuState::Held(GuestRun::Starting(REQ)))
        );
    }

    #[test]
    fn reset_stops_every_live_vcpu_and_dead_stays_dead() {
        for s in [
            VcpuState::Free(GuestRun::Running),
            VcpuState::Free(GuestRun::Starting(REQ)),
            VcpuState::Held(GuestRun::Running),
            VcpuState::Held(GuestRun::Stopped),
        ] {
            assert_eq!(s.reset(), VcpuState::Free(GuestRun::Stopped));
        }
        assert_eq!(VcpuState::Dead.reset(), VcpuState::Dead);
        assert_eq!(VcpuState::Dead.hold(), VcpuState::Dead);
        assert_eq!(VcpuState::Dead.resume(), VcpuState::Dead);
        assert_eq!(VcpuState::Dead.stop_self(), VcpuState::Dead);
        assert!(!VcpuState::Dead.online());
        assert_eq!(VcpuState::Dead.rtas_run_state(), CpuRunState::Stopped);
    }

    #[test]
    fn only_free_running_or_starting_vcpus_run() {
        assert!(VcpuState::Free(GuestRun::Running).runnable());
        assert!(VcpuState::Free(GuestRun::Starting(REQ)).runnable());
        assert!(!VcpuState::Free(GuestRun::Stopped).runnable());
        assert!(!VcpuState::Dead.runnable());
        assert_eq!(
            VcpuState::Free(GuestRun::Running).stop_self(),
            VcpuState::Free(GuestRun::Stopped)
        );
    }
}
