//! Operations on all of a machine's vCPUs at once: stop them all and take their registers
//! (asked in parallel, one deadline for the set), resume, reset, quit. Every wait is bounded:
//! a dead vCPU is skipped, one that does not answer is named in the result.

use super::handle::{VcpuControl, WaitError};
use super::state::{Answer, Request};
use firmware::CpuState;
use log::{error, warn};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What stopping every vCPU found.
#[derive(Debug, Default)]
pub struct Stopped {
    /// The registers of the vCPUs that were online (running guest code, or the caller of the
    /// `ibm,os-term`), in vCPU order: what goes into the dump.
    pub online: Vec<CpuState>,
    /// The registers of every vCPU that answered (online or not), in vCPU order: a core file
    /// has one note per CPU.
    pub states: Vec<CpuState>,
    /// Every vCPU that answered and is now held (online or not): what a resume releases.
    pub held: Vec<Arc<VcpuControl>>,
    /// vCPUs whose thread had ended: they run no guest code, their registers are unknown.
    pub dead: Vec<u32>,
    /// vCPUs that did not answer in time: they may still be running guest code.
    pub unresponsive: Vec<u32>,
}

/// Asks every vCPU to stop and report its registers, all at once, and waits up to `timeout`
/// for the set.
pub fn stop_all(vcpus: &[Arc<VcpuControl>], timeout: Duration) -> Stopped {
    let mut out = Stopped::default();
    let posted = post_all(vcpus.iter(), Request::Snapshot, &mut out.dead);
    let deadline = Instant::now() + timeout;
    for v in posted {
        match v.wait_answer(deadline, timeout) {
            Ok(Answer::Snapshot { state, online }) => {
                if online {
                    out.online.push((*state).clone());
                }
                out.states.push(*state);
                out.held.push(v.clone());
            }
            Ok(other) => unreachable!("vcpu {}: snapshot answered {other:?}", v.id()),
            Err(WaitError::Dead(id)) => out.dead.push(id),
            Err(WaitError::Timeout { id, .. }) => out.unresponsive.push(id),
        }
    }
    out.dead.sort_unstable();
    out
}

/// Where a system reset (NMI) went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResetDelivery {
    /// Targets that take it at their next entry into the guest.
    pub delivered: Vec<u32>,
    /// Targets that run no guest code (stopped, starting, held for a dump).
    pub not_running: Vec<u32>,
    /// Targets whose thread had ended.
    pub dead: Vec<u32>,
    /// Targets that did not answer in time (their request was withdrawn).
    pub unresponsive: Vec<u32>,
}

/// Delivers a system reset to every vCPU `targets` selects, each on its own thread (kicked out
/// of `KVM_RUN`), all asked at once, one deadline for the set. The vCPUs keep running.
pub fn system_reset_all(
    vcpus: &[Arc<VcpuControl>],
    targets: impl Fn(u32) -> bool,
    timeout: Duration,
) -> ResetDelivery {
    let mut out = ResetDelivery::default();
    let posted = post_all(
        vcpus.iter().filter(|v| targets(v.id())),
        Request::SystemReset,
        &mut out.dead,
    );
    let deadline = Instant::now() + timeout;
    for v in posted {
        match v.wait_answer(deadline, timeout) {
            Ok(Answer::SystemReset { delivered: true }) => out.delivered.push(v.id()),
            Ok(Answer::SystemReset { delivered: false }) => out.not_running.push(v.id()),
            Ok(other) => unreachable!("vcpu {}: system reset answered {other:?}", v.id()),
            Err(WaitError::Dead(id)) => out.dead.push(id),
            Err(WaitError::Timeout { id, .. }) => out.unresponsive.push(id),
        }
    }
    out.dead.sort_unstable();
    out
}

/// Lets every held vCPU go on where it was.
pub fn resume(held: &[Arc<VcpuControl>]) {
    for v in held {
        v.resume();
    }
}

/// Resets every live vCPU (all stopped afterwards); a dead one is skipped with a warning.
/// Fails on the first vCPU that does not answer: the next boot cannot start from a known
/// state.
///
/// Every vCPU is held before any is reset: one still running the old kernel could otherwise
/// send an IPI (`H_IPI` sets the target's MFRR in KVM's presenter) to a vCPU whose presenter
/// was already reset, and the next kernel would boot with it pending. Seen in a nested soak:
/// a `reboot -f` (boot 221 of one VMM process) left vCPU 0 with an IPI, and the new kernel,
/// which has no mapping for it before SMP start-up, looped on "Interrupt 0x2 (real) is
/// invalid, disabling it" (each EOI presents the IPI again).
pub fn reset_all(vcpus: &[Arc<VcpuControl>], timeout: Duration) -> Result<(), WaitError> {
    let stopped = stop_all(vcpus, timeout);
    if let Some(&id) = stopped.unresponsive.first() {
        return Err(WaitError::Timeout { id, after: timeout });
    }
    for v in vcpus {
        match v.reset_and_wait(timeout) {
            Ok(()) => {}
            Err(WaitError::Dead(id)) => warn!("vcpu {id}: thread has ended; not reset"),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Ends every vCPU thread; one that does not end in time is left detached and named.
pub fn quit_all(vcpus: &[Arc<VcpuControl>], timeout: Duration) {
    for v in vcpus {
        if let Err(e) = v.quit_and_join(timeout) {
            error!("{e}; leaving its thread behind");
        }
    }
}

/// Posts `req` to every vCPU of `vcpus`: those that took it, in order; the dead ones' ids go
/// to `dead`.
fn post_all<'a>(
    vcpus: impl Iterator<Item = &'a Arc<VcpuControl>>,
    req: Request,
    dead: &mut Vec<u32>,
) -> Vec<&'a Arc<VcpuControl>> {
    vcpus
        .filter(|v| match v.post(req) {
            Ok(()) => true,
            Err(_) => {
                dead.push(v.id());
                false
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::handle::fake::{spawn, Behaviour};
    use super::super::state::{GuestRun, StartRequest, VcpuState};
    use super::*;
    use std::sync::atomic::Ordering;

    const SHORT: Duration = Duration::from_millis(200);
    const LONG: Duration = Duration::from_secs(10);

    fn running(c: &VcpuControl) {
        assert!(c.request_start(StartRequest {
            entry: 0x10,
            r3: 0,
            r4: 0
        }));
        while c.state() != VcpuState::Free(GuestRun::Running) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn reset_all_holds_every_vcpu_before_resetting_any() {
        let (v0, c0, _r0) = spawn(0, Behaviour::Answers);
        let (v1, c1, _r1) = spawn(1, Behaviour::Answers);
        let (v2, c2, _r2) = spawn(2, Behaviour::Answers);
        running(&v0);
        running(&v1);
        let all = vec![v0.clone(), v1.clone(), v2.clone()];
        for c in [&c0, &c1, &c2] {
            *c.watch.lock().unwrap() = all.clone();
        }
        reset_all(&all, LONG).unwrap();
        for (v, c) in [(&v0, &c0), (&v1, &c1), (&v2, &c2)] {
            assert_eq!(c.resets.load(Ordering::SeqCst), 1, "vcpu {}", v.id());
            assert_eq!(
                c.resets_beside_running.load(Ordering::SeqCst),
                0,
                "vcpu {} was reset while another still ran guest code",
                v.id()
            );
            assert_eq!(v.state(), VcpuState::Free(GuestRun::Stopped));
        }
        quit_all(&all, LONG);
    }

    #[test]
    fn stop_all_sorts_vcpus_into_online_held_dead_and_unresponsive() {
        let (v0, _, _r0) = spawn(0, Behaviour::Answers);
        let (v1, _, _r1) = spawn(1, Behaviour::Answers);
        let (v2, _, _r2) = spawn(2, Behaviour::Dead);
        let (v3, _, r3) = spawn(3, Behaviour::NeverAnswers);
        running(&v0);
        let all = vec![v0.clone(), v1.clone(), v2, v3];
        let s = stop_all(&all, SHORT);
        assert_eq!(s.online.len(), 1, "only vcpu 0 was running");
        assert_eq!(s.online[0].id, 0);
        assert_eq!(
            s.held.iter().map(|v| v.id()).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(s.dead, vec![2]);
        assert_eq!(s.unresponsive, vec![3]);
        resume(&s.held);
        assert_eq!(v0.state(), VcpuState::Free(GuestRun::Running));
        assert_eq!(v1.state(), VcpuState::Free(GuestRun::Stopped));
        assert!(matches!(
            reset_all(&all, SHORT),
            Err(WaitError::Timeout { id: 3, .. })
        ));
        drop(r3);
        quit_all(&all, LONG);
    }

    #[test]
    fn system_reset_reaches_only_running_targets_and_they_keep_running() {
        let (v0, c0, _r0) = spawn(0, Behaviour::Answers);
        let (v1, c1, _r1) = spawn(1, Behaviour::Answers);
        let (v2, c2, _r2) = spawn(2, Behaviour::Answers);
        let (v3, _, _r3) = spawn(3, Behaviour::Dead);
        let (v4, _, r4) = spawn(4, Behaviour::NeverAnswers);
        running(&v0);
        running(&v1);
        let all = vec![v0.clone(), v1.clone(), v2.clone(), v3, v4];
        let d = system_reset_all(&all, |id| id != 1, SHORT);
        assert_eq!(
            d,
            ResetDelivery {
                delivered: vec![0],
                not_running: vec![2],
                dead: vec![3],
                unresponsive: vec![4],
            }
        );
        let n = |c: &super::super::handle::fake::Counts| {
            c.system_resets.load(std::sync::atomic::Ordering::SeqCst)
        };
        assert_eq!((n(&c0), n(&c1), n(&c2)), (1, 0, 0), "only vcpu 0 reset");
        assert_eq!(v0.state(), VcpuState::Free(GuestRun::Running), "not held");
        // A held vCPU (being dumped) does not take it.
        let s = stop_all(&all[..2], LONG);
        assert_eq!(
            system_reset_all(&all[..2], |_| true, LONG).not_running,
            vec![0, 1]
        );
        resume(&s.held);
        assert_eq!(
            system_reset_all(&all[..2], |_| true, LONG).delivered,
            vec![0, 1]
        );
        drop(r4);
        quit_all(&all, LONG);
    }

    #[test]
    fn reset_all_skips_dead_vcpus_and_stops_the_rest() {
        let (v0, c0, _r0) = spawn(0, Behaviour::Answers);
        let (v1, _, _r1) = spawn(1, Behaviour::Dead);
        running(&v0);
        let all = vec![v0.clone(), v1];
        reset_all(&all, LONG).unwrap();
        assert_eq!(v0.state(), VcpuState::Free(GuestRun::Stopped));
        assert_eq!(c0.resets.load(std::sync::atomic::Ordering::SeqCst), 1);
        quit_all(&all, LONG);
        assert!(v0.is_dead());
    }
}
