//! The cross-thread handle of one vCPU: its [`VcpuState`] and [`Mailbox`] under one lock, the
//! kick that makes the vCPU thread look at them, and bounded waits for its answers.
//!
//! Who signals whom:
//!
//! | call (thread) | sets | kicks | waits for | gives up |
//! |---|---|---|---|---|
//! | [`VcpuControl::request_start`] (a vCPU's `start-cpu`, the machine's boot) | `Free(Starting)` | notify | – | – |
//! | [`VcpuControl::snapshot_and_wait`] (machine) | `Asked(Snapshot)` | yes | `Answered(Snapshot)`, vCPU `Held` | after the timeout (request withdrawn) or when the thread is dead |
//! | [`super::set::system_reset_all`] (machine) | `Asked(SystemReset)` | yes | `Answered(SystemReset)`, vCPU still `Free(Running)` | likewise |
//! | [`VcpuControl::reset_and_wait`] (machine) | `Asked(Reset)` | yes | `Answered(Reset)`, vCPU `Free(Stopped)` | likewise |
//! | [`VcpuControl::quit_and_join`] (machine) | `Asked(Quit)` | yes | `Dead`, then joins | after the timeout (thread left detached) |
//! | [`VcpuControl::resume`] (machine) | `Held` → `Free` | notify | – | – |
//! | [`VcpuControl::wait_runnable`] (the vCPU thread) | serves the mailbox | notify | a runnable state | – |
//! | the vCPU thread ends (`DeadGuard`) | `Dead` | notify | – | – |
//!
//! A waiter that gives up withdraws its request (or, if the vCPU thread is already serving
//! it, marks it abandoned so the late answer is dropped): a late answer never lands in the
//! next request's slot.

use super::state::{Answer, GuestRun, Mailbox, Request, StartRequest, VcpuState};
use crate::kvm::ImmediateExit;
use firmware::rtas::CpuRunState;
use firmware::CpuState;
use log::{debug, error};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

/// How long the machine waits for a vCPU to answer a request (snapshot, reset, quit). A vCPU
/// in `KVM_RUN` answers a kick within microseconds; one that has not answered after this long
/// is stuck outside the guest (e.g. in a host system call), and its registers and its effect on
/// guest memory cannot be known.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a vCPU gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The vCPU thread has ended: nobody answers.
    #[error("vcpu {0}: its thread has ended")]
    Dead(u32),
    /// The vCPU did not answer in time; the request was withdrawn.
    #[error("vcpu {id}: no answer within {after:?}")]
    Timeout {
        /// The vCPU.
        id: u32,
        /// How long the waiter waited.
        after: Duration,
    },
}

/// What the vCPU thread does for the machine's requests: over KVM in the vCPU thread, over
/// nothing in tests.
pub trait VcpuBody {
    /// Resets the per-vCPU KVM state (the vCPU is not in `KVM_RUN`).
    fn reset(&mut self);
    /// Reads the registers of the stopped vCPU.
    fn capture(&mut self) -> CpuState;
    /// Makes the vCPU (which runs guest code, not in `KVM_RUN` now) take a system reset at
    /// its next entry; false when its registers could not be changed.
    fn system_reset(&mut self) -> bool;
}

/// What the vCPU thread does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Enter the guest, after applying this start if there is one.
    Run(Option<StartRequest>),
    /// End the thread.
    Quit,
}

#[derive(Debug, Default)]
pub(super) struct Control {
    pub(super) state: VcpuState,
    pub(super) mailbox: Mailbox,
}

/// What one vCPU has done, counted by its thread (`GET vm.counters`).
#[derive(Debug, Default)]
pub struct VcpuCounters {
    /// Returns from `KVM_RUN` (every exit, kicks included).
    pub exits: AtomicU64,
    /// Hypercalls that reached the VMM (RTAS calls included).
    pub hcalls: AtomicU64,
    /// RTAS calls (`KVMPPC_H_RTAS`).
    pub rtas: AtomicU64,
    /// MMIO loads and stores.
    pub mmio: AtomicU64,
}

impl VcpuCounters {
    /// Adds one to `c`.
    pub fn count(c: &AtomicU64) {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    /// (name, value) of every counter.
    pub fn read(&self) -> [(&'static str, u64); 4] {
        let r = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        [
            ("exits", r(&self.exits)),
            ("hcalls", r(&self.hcalls)),
            ("rtas", r(&self.rtas)),
            ("mmio", r(&self.mmio)),
        ]
    }
}

/// The cross-thread handle of one vCPU.
#[derive(Debug)]
pub struct VcpuControl {
    pub(super) id: u32,
    /// Exit, hcall, RTAS and MMIO counts.
    pub counters: VcpuCounters,
    ctl: Mutex<Control>,
    cv: Condvar,
    pub(super) immediate_exit: ImmediateExit,
    thread: Mutex<Option<JoinHandle<()>>>,
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the (empty) `SIGRTMIN` handler whose only job is to interrupt `KVM_RUN`.
pub fn register_kick_signal() -> vmm_sys_util::errno::Result<()> {
    register_signal_handler(SIGRTMIN(), kick_handler)
}

impl VcpuControl {
    /// A handle for vCPU `id`, stopped, with no thread yet.
    pub fn new(id: u32, immediate_exit: ImmediateExit) -> Self {
        VcpuControl {
            id,
            counters: VcpuCounters::default(),
            ctl: Mutex::new(Control::default()),
            cv: Condvar::new(),
            immediate_exit,
            thread: Mutex::new(None),
        }
    }

    /// The vCPU's number (its XICS server and device-tree `reg`).
    pub fn id(&self) -> u32 {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The vCPU's state now.
    pub fn state(&self) -> VcpuState {
        self.lock().state
    }

    /// RTAS run state.
    pub fn run_state(&self) -> CpuRunState {
        self.state().rtas_run_state()
    }

    /// Whether the vCPU thread has ended.
    pub fn is_dead(&self) -> bool {
        self.state() == VcpuState::Dead
    }

    /// Makes a running vCPU leave `KVM_RUN` and look at its state and mailbox.
    pub fn kick(&self) {
        self.immediate_exit.set(true);
        self.cv.notify_all();
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            if let Err(e) = t.kill(SIGRTMIN()) {
                debug!("vcpu {}: kick signal failed: {e}", self.id);
            }
        }
    }

    /// Starts a stopped vCPU (`start-cpu`, or the boot vCPU). Returns false if it is not
    /// stopped.
    pub fn request_start(&self, req: StartRequest) -> bool {
        let mut c = self.lock();
        let Some(next) = c.state.start(req) else {
            return false;
        };
        c.state = next;
        drop(c);
        self.cv.notify_all();
        true
    }

    /// Asks the vCPU thread `req` and waits up to `timeout` for the answer.
    fn ask(&self, req: Request, timeout: Duration) -> Result<Answer, WaitError> {
        self.post(req)?;
        self.wait_answer(Instant::now() + timeout, timeout)
    }

    /// Puts `req` in the mailbox and kicks the vCPU; [`Self::wait_answer`] takes the answer.
    /// Split so that a set of vCPUs is asked at once and stops in parallel.
    pub(crate) fn post(&self, req: Request) -> Result<(), WaitError> {
        {
            let mut c = self.lock();
            if c.state == VcpuState::Dead {
                return Err(WaitError::Dead(self.id));
            }
            c.mailbox = Mailbox::Asked(req);
        }
        self.kick();
        Ok(())
    }

    /// Waits until `deadline` for the answer to the posted request; on giving up, withdraws
    /// it (`timeout` is what the error reports).
    pub(crate) fn wait_answer(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Answer, WaitError> {
        self.wait_until(
            deadline,
            timeout,
            |c| match std::mem::take(&mut c.mailbox) {
                Mailbox::Answered(a) => Some(Ok(a)),
                _ if c.state == VcpuState::Dead => Some(Err(WaitError::Dead(self.id))),
                other => {
                    c.mailbox = other;
                    None
                }
            },
            |c| {
                c.mailbox = match c.mailbox {
                    Mailbox::Serving(_) => Mailbox::Abandoned,
                    _ => Mailbox::Empty,
                }
            },
        )
    }

    /// Waits, woken by every change, until `done` gives a result or `deadline` passes; then
    /// `give_up` tidies up under the lock and the wait fails with a timeout.
    fn wait_until<T>(
        &self,
        deadline: Instant,
        timeout: Duration,
        mut done: impl FnMut(&mut Control) -> Option<Result<T, WaitError>>,
        give_up: impl FnOnce(&mut Control),
    ) -> Result<T, WaitError> {
        let mut c = self.lock();
        loop {
            if let Some(r) = done(&mut c) {
                return r;
            }
            let now = Instant::now();
            if now >= deadline {
                give_up(&mut c);
                return Err(WaitError::Timeout {
                    id: self.id,
                    after: timeout,
                });
            }
            c = self
                .cv
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Asks the vCPU to stop and reset its per-vCPU state; returns once it has (it is then
    /// `Free(Stopped)`).
    pub fn reset_and_wait(&self, timeout: Duration) -> Result<(), WaitError> {
        match self.ask(Request::Reset, timeout)? {
            Answer::Reset => Ok(()),
            other => unreachable!("vcpu {}: reset answered {other:?}", self.id),
        }
    }

    /// Stops (holds) the vCPU and returns its registers and whether it was online (running
    /// guest code, or itself the caller of the `ibm,os-term` that triggered the dump).
    pub fn snapshot_and_wait(&self, timeout: Duration) -> Result<(CpuState, bool), WaitError> {
        match self.ask(Request::Snapshot, timeout)? {
            Answer::Snapshot { state, online } => Ok((*state, online)),
            other => unreachable!("vcpu {}: snapshot answered {other:?}", self.id),
        }
    }

    /// Lets a held vCPU go on where it was (a dump that could not be taken).
    pub fn resume(&self) {
        let mut c = self.lock();
        c.state = c.state.resume();
        drop(c);
        self.cv.notify_all();
    }

    /// Ends the vCPU thread and joins it. A thread that has not ended within `timeout` is
    /// left detached (it ends with the process).
    pub fn quit_and_join(&self, timeout: Duration) -> Result<(), WaitError> {
        let asked = {
            let mut c = self.lock();
            if c.state != VcpuState::Dead {
                c.mailbox = Mailbox::Asked(Request::Quit);
            }
            c.state != VcpuState::Dead
        };
        if asked {
            self.kick();
            self.wait_until(
                Instant::now() + timeout,
                timeout,
                |c| (c.state == VcpuState::Dead).then_some(Ok(())),
                |_| (),
            )?;
        }
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
        Ok(())
    }

    // The vCPU thread's side.

    /// Serves the machine's requests until the vCPU may enter the guest: returns the start to
    /// apply first, if any, or [`Next::Quit`]. Called by the vCPU thread before every
    /// `KVM_RUN`, so a held or stopped vCPU never runs guest code.
    pub fn wait_runnable(&self, body: &mut impl VcpuBody) -> Next {
        let mut c = self.lock();
        loop {
            if let Mailbox::Asked(req) = c.mailbox {
                let answer = match req {
                    Request::Quit => {
                        c.mailbox = Mailbox::Empty;
                        return Next::Quit;
                    }
                    Request::Reset => {
                        c.mailbox = Mailbox::Serving(req);
                        c.state = c.state.hold();
                        drop(c);
                        body.reset();
                        c = self.lock();
                        c.state = c.state.reset();
                        Answer::Reset
                    }
                    Request::SystemReset => {
                        // Only a vCPU that runs guest code takes it: a stopped one has no
                        // context to interrupt, a held one is being dumped.
                        let running = c.state == VcpuState::Free(GuestRun::Running);
                        c.mailbox = Mailbox::Serving(req);
                        drop(c);
                        let delivered = running && body.system_reset();
                        c = self.lock();
                        Answer::SystemReset { delivered }
                    }
                    Request::Snapshot => {
                        let online = c.state.online();
                        c.mailbox = Mailbox::Serving(req);
                        c.state = c.state.hold();
                        drop(c);
                        let state = Box::new(body.capture());
                        c = self.lock();
                        Answer::Snapshot { state, online }
                    }
                };
                c.mailbox = match c.mailbox {
                    Mailbox::Serving(_) => Mailbox::Answered(answer),
                    // The waiter gave up: drop the answer.
                    _ => Mailbox::Empty,
                };
                self.cv.notify_all();
                continue;
            }
            if let Some((next, req)) = c.state.take_start() {
                c.state = next;
                return Next::Run(Some(req));
            }
            if c.state.runnable() {
                return Next::Run(None);
            }
            c = self.cv.wait(c).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The vCPU parks until the machine acts on its call (`ibm,os-term` with a dump,
    /// system-reboot, power-off); it keeps its guest run state.
    pub fn hold_self(&self) {
        let mut c = self.lock();
        c.state = c.state.hold();
    }

    /// The vCPU stopped itself (`stop-self`).
    pub fn stop_self(&self) {
        let mut c = self.lock();
        c.state = c.state.stop_self();
    }

    /// Called as the vCPU thread ends, however it ends: no request will be answered any more,
    /// so wake every waiter.
    fn mark_dead(&self) {
        self.lock().state = VcpuState::Dead;
        self.cv.notify_all();
    }

    /// Runs `body` as this vCPU's thread under a guard that marks the vCPU dead when the
    /// thread ends, and reports a panic through `on_panic` (a failing vCPU reports its own
    /// `Fatal`; a panic could not).
    pub(crate) fn spawn_with(
        self: &Arc<Self>,
        body: impl FnOnce() + Send + 'static,
        on_panic: impl Fn(String) + Send + 'static,
    ) -> std::io::Result<()> {
        let guard = DeadGuard {
            ctl: self.clone(),
            on_panic: Box::new(on_panic),
        };
        let handle = std::thread::Builder::new()
            .name(format!("vcpu{}", self.id))
            .spawn(move || {
                let _guard = guard;
                body()
            })?;
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(())
    }
}

/// Dropped as a vCPU thread ends, by return or by unwinding.
pub(super) struct DeadGuard {
    ctl: Arc<VcpuControl>,
    on_panic: Box<dyn Fn(String) + Send>,
}

impl Drop for DeadGuard {
    fn drop(&mut self) {
        self.ctl.mark_dead();
        if std::thread::panicking() {
            let msg = format!("vcpu {}: thread panicked", self.ctl.id);
            error!("{msg}");
            (self.on_panic)(msg);
        }
    }
}

/// A vCPU thread without KVM, for tests of everything that drives vCPUs: it serves the
/// mailbox through [`VcpuControl::wait_runnable`] exactly as the real thread does, and
/// "runs" by sleeping briefly between checks.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// What a fake vCPU does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Behaviour {
        /// Answers every request.
        Answers,
        /// Its thread is stuck outside the guest and never looks at its mailbox.
        NeverAnswers,
        /// Its thread has ended.
        Dead,
    }

    /// Counts what a fake vCPU thread did.
    #[derive(Debug, Default)]
    pub struct Counts {
        pub resets: AtomicU32,
        pub snapshots: AtomicU32,
        pub starts: AtomicU32,
        pub system_resets: AtomicU32,
        /// Resets done while a vCPU of `watch` was still running guest code.
        pub resets_beside_running: AtomicU32,
        /// The vCPUs a reset looks at (a test sets them).
        pub watch: Mutex<Vec<Arc<VcpuControl>>>,
    }

    struct Body {
        id: u32,
        counts: Arc<Counts>,
    }

    impl VcpuBody for Body {
        fn reset(&mut self) {
            let watch = self.counts.watch.lock().unwrap_or_else(|e| e.into_inner());
            if watch
                .iter()
                .any(|v| v.state() == VcpuState::Free(GuestRun::Running))
            {
                self.counts
                    .resets_beside_running
                    .fetch_add(1, Ordering::SeqCst);
            }
            drop(watch);
            self.counts.resets.fetch_add(1, Ordering::SeqCst);
        }
        fn capture(&mut self) -> CpuState {
            self.counts.snapshots.fetch_add(1, Ordering::SeqCst);
            let mut s = CpuState::new(self.id);
            s.set(
                firmware::Reg::Nia,
                0xc000_0000_0000_1000 + u64::from(self.id),
            );
            s
        }
        fn system_reset(&mut self) -> bool {
            self.counts.system_resets.fetch_add(1, Ordering::SeqCst);
            true
        }
    }

    /// Spawns a fake vCPU thread for `id`; `stuck` releases a `NeverAnswers` thread when
    /// dropped (so tests end cleanly).
    pub fn spawn(
        id: u32,
        behaviour: Behaviour,
    ) -> (Arc<VcpuControl>, Arc<Counts>, std::sync::mpsc::Sender<()>) {
        register_kick_signal().unwrap();
        let ctl = Arc::new(VcpuControl::new(id, ImmediateExit::for_test()));
        let counts = Arc::new(Counts::default());
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let c = ctl.clone();
        let n = counts.clone();
        ctl.spawn_with(
            move || match behaviour {
                Behaviour::Dead => {}
                Behaviour::NeverAnswers => {
                    let _ = stuck.recv();
                }
                Behaviour::Answers => {
                    let mut body = Body { id, counts: n };
                    loop {
                        match c.wait_runnable(&mut body) {
                            Next::Quit => return,
                            Next::Run(start) => {
                                if start.is_some() {
                                    body.counts.starts.fetch_add(1, Ordering::SeqCst);
                                }
                                c.immediate_exit.set(false);
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                }
            },
            |_| (),
        )
        .unwrap();
        if behaviour == Behaviour::Dead {
            while !ctl.is_dead() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        (ctl, counts, release)
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{spawn, Behaviour};
    use super::*;
    use crate::vcpu::state::GuestRun;
    use std::sync::atomic::Ordering;

    const SHORT: Duration = Duration::from_millis(200);
    const REQ: StartRequest = StartRequest {
        entry: 0xc164,
        r3: 1,
        r4: 0,
    };

    fn ctl() -> VcpuControl {
        VcpuControl::new(1, ImmediateExit::for_test())
    }

    /// Runs `wait` on another thread; true if it returned within 10 s (a hang is a failure,
    /// not a stuck test run).
    fn returns(wait: impl FnOnce() + Send + 'static) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            wait();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10)).is_ok()
    }

    #[test]
    fn reset_and_snapshot_give_up_on_a_vcpu_whose_thread_ended() {
        let (c, _, _) = spawn(1, Behaviour::Dead);
        assert!(c.is_dead());
        let r = c.clone();
        assert!(returns(move || assert_eq!(
            r.reset_and_wait(ANSWER_TIMEOUT),
            Err(WaitError::Dead(1))
        )));
        let s = c.clone();
        assert!(returns(move || assert_eq!(
            s.snapshot_and_wait(ANSWER_TIMEOUT).unwrap_err(),
            WaitError::Dead(1)
        )));
        let q = c.clone();
        assert!(returns(move || q.quit_and_join(ANSWER_TIMEOUT).unwrap()));
    }

    #[test]
    fn a_vcpu_that_never_answers_times_out_and_its_request_is_withdrawn() {
        let (c, _, release) = spawn(2, Behaviour::NeverAnswers);
        c.request_start(REQ);
        assert_eq!(
            c.snapshot_and_wait(SHORT).unwrap_err(),
            WaitError::Timeout {
                id: 2,
                after: SHORT
            }
        );
        assert_eq!(c.lock().mailbox, Mailbox::Empty, "request withdrawn");
        // It never took the snapshot, so it was never held.
        assert_eq!(c.state(), VcpuState::Free(GuestRun::Starting(REQ)));
        assert!(matches!(
            c.reset_and_wait(SHORT),
            Err(WaitError::Timeout { .. })
        ));
        assert!(matches!(
            c.quit_and_join(SHORT),
            Err(WaitError::Timeout { .. })
        ));
        drop(release);
    }

    #[test]
    fn a_late_answer_to_an_abandoned_request_is_dropped() {
        // A body whose register read blocks until released: the waiter gives up while the
        // vCPU thread is serving its request.
        struct Slow(std::sync::mpsc::Receiver<()>);
        impl VcpuBody for Slow {
            fn reset(&mut self) {}
            fn capture(&mut self) -> CpuState {
                let _ = self.0.recv();
                CpuState::new(5)
            }
            fn system_reset(&mut self) -> bool {
                false
            }
        }
        register_kick_signal().unwrap();
        let c = Arc::new(VcpuControl::new(5, ImmediateExit::for_test()));
        let (go, slow) = std::sync::mpsc::channel();
        let t = c.clone();
        c.spawn_with(
            move || {
                let mut body = Slow(slow);
                while t.wait_runnable(&mut body) != Next::Quit {}
            },
            |_| (),
        )
        .unwrap();
        assert!(matches!(
            c.snapshot_and_wait(SHORT),
            Err(WaitError::Timeout { id: 5, .. })
        ));
        assert_eq!(c.lock().mailbox, Mailbox::Abandoned);
        go.send(()).unwrap();
        // The thread finishes serving and drops the answer nobody waits for.
        while c.lock().mailbox != Mailbox::Empty {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(c.state(), VcpuState::Held(GuestRun::Stopped));
        // The next request gets its own answer, not the stale one.
        c.reset_and_wait(ANSWER_TIMEOUT).unwrap();
        assert_eq!(c.state(), VcpuState::Free(GuestRun::Stopped));
        c.quit_and_join(ANSWER_TIMEOUT).unwrap();
    }

    #[test]
    fn snapshot_holds_a_running_vcpu_and_resume_lets_it_go_on() {
        let (c, counts, _r) = spawn(3, Behaviour::Answers);
        assert!(c.request_start(REQ));
        while c.state() != VcpuState::Free(GuestRun::Running) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (state, online) = c.snapshot_and_wait(ANSWER_TIMEOUT).unwrap();
        assert!(online);
        assert_eq!(state.get(firmware::Reg::Nia), 0xc000_0000_0000_1003);
        assert_eq!(c.state(), VcpuState::Held(GuestRun::Running));
        assert_eq!(c.run_state(), CpuRunState::Running, "held, still online");
        c.resume();
        assert_eq!(c.state(), VcpuState::Free(GuestRun::Running));
        c.reset_and_wait(ANSWER_TIMEOUT).unwrap();
        assert_eq!(c.state(), VcpuState::Free(GuestRun::Stopped));
        assert_eq!(counts.starts.load(Ordering::SeqCst), 1);
        assert_eq!(counts.snapshots.load(Ordering::SeqCst), 1);
        assert_eq!(counts.resets.load(Ordering::SeqCst), 1);
        c.quit_and_join(ANSWER_TIMEOUT).unwrap();
        assert!(c.is_dead());
    }

    #[test]
    fn a_stopped_vcpu_is_snapshotted_as_offline_and_a_crash_caller_as_online() {
        let (c, _, _r) = spawn(4, Behaviour::Answers);
        let (_, online) = c.snapshot_and_wait(ANSWER_TIMEOUT).unwrap();
        assert!(!online, "never started");
        c.resume();
        assert!(c.request_start(REQ));
        while c.state() != VcpuState::Free(GuestRun::Running) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Its own ibm,os-term: it holds itself, then the machine snapshots it.
        c.hold_self();
        let (_, online) = c.snapshot_and_wait(ANSWER_TIMEOUT).unwrap();
        assert!(online, "the crash caller is in the dump");
        c.quit_and_join(ANSWER_TIMEOUT).unwrap();
    }

    #[test]
    fn a_panicking_vcpu_thread_is_reported_and_wakes_waiters() {
        // The waiter kicks the vCPU thread with SIGRTMIN, as the machine does.
        register_kick_signal().unwrap();
        let c = Arc::new(ctl());
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        c.spawn_with(
            move || {
                // Panics while another thread already waits on it.
                let _ = go_rx.recv();
                panic!("injected vCPU failure");
            },
            move |msg| tx.lock().unwrap().send(msg).unwrap(),
        )
        .unwrap();
        let w = c.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = w.snapshot_and_wait(ANSWER_TIMEOUT);
            done_tx.send(r.unwrap_err()).unwrap();
        });
        std::thread::sleep(Duration::from_millis(20));
        go_tx.send(()).unwrap();
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(10)),
            Ok(WaitError::Dead(1))
        );
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            "vcpu 1: thread panicked"
        );
        assert!(c.is_dead());
    }

    #[test]
    fn kick_sets_immediate_exit() {
        let c = ctl();
        assert!(!c.immediate_exit.get());
        c.kick();
        assert!(c.immediate_exit.get());
    }
}
