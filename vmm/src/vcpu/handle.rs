//! The cross-thread handle of one vCPU: what other threads ask of it (start, reset, register
//! snapshot, quit), the kick that makes it look, and the waits for its answers. Every wait
//! gives up when the vCPU thread has ended ([`VcpuControl::is_dead`]).

use crate::kvm::ImmediateExit;
use firmware::rtas::CpuRunState;
use firmware::CpuState;
use log::{debug, error};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

/// Where a started vCPU begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRequest {
    pub entry: u64,
    pub r3: u64,
    pub r4: u64,
}

#[derive(Debug, Default)]
pub(super) struct Control {
    pub(super) running: bool,
    pub(super) start: Option<StartRequest>,
    pub(super) reset: bool,
    pub(super) reset_done: bool,
    pub(super) quit: bool,
    /// Stopped by its own `ibm,os-term` with a dump registered: still "online" for the dump.
    pub(super) crash_caller: bool,
    /// The machine asks for the vCPU's state (fadump); answered in `snapshot_result`.
    pub(super) snapshot: bool,
    pub(super) snapshot_result: Option<(CpuState, bool)>,
    /// The vCPU thread has ended (it returned, failed or panicked): nobody will answer a
    /// request again, so every wait gives up.
    pub(super) dead: bool,
}

/// The cross-thread handle of one vCPU.
#[derive(Debug)]
pub struct VcpuControl {
    pub(super) id: u32,
    pub(super) ctl: Mutex<Control>,
    pub(super) cv: Condvar,
    pub(super) immediate_exit: ImmediateExit,
    pub(super) thread: Mutex<Option<JoinHandle<()>>>,
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the (empty) `SIGRTMIN` handler whose only job is to interrupt `KVM_RUN`.
pub fn register_kick_signal() -> vmm_sys_util::errno::Result<()> {
    register_signal_handler(SIGRTMIN(), kick_handler)
}

impl VcpuControl {
    pub fn new(id: u32, immediate_exit: ImmediateExit) -> Self {
        VcpuControl {
            id,
            ctl: Mutex::new(Control::default()),
            cv: Condvar::new(),
            immediate_exit,
            thread: Mutex::new(None),
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Control> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RTAS run state.
    pub fn run_state(&self) -> CpuRunState {
        let c = self.lock();
        if c.running || c.start.is_some() {
            CpuRunState::Running
        } else {
            CpuRunState::Stopped
        }
    }

    /// Makes a running vCPU leave `KVM_RUN` and look at its requests.
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
        if c.running || c.start.is_some() {
            return false;
        }
        c.start = Some(req);
        drop(c);
        self.cv.notify_all();
        true
    }

    /// Asks the vCPU to stop and reset its per-vCPU state; returns once it has.
    pub fn reset_and_wait(&self) {
        {
            let mut c = self.lock();
            c.reset = true;
            c.reset_done = false;
        }
        self.kick();
        let mut c = self.lock();
        while !c.reset_done && !c.quit && !c.dead {
            c = self.cv.wait(c).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether the vCPU thread has ended.
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// Called as the vCPU thread ends, however it ends: no request will be answered any more,
    /// so wake every waiter.
    fn mark_dead(&self) {
        let mut c = self.lock();
        c.dead = true;
        c.running = false;
        drop(c);
        self.cv.notify_all();
    }

    /// Ends the vCPU thread and joins it.
    pub fn quit_and_join(&self) {
        self.lock().quit = true;
        self.kick();
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }

    /// Stops the vCPU and returns its state and whether it was online (running, or the vCPU
    /// whose `ibm,os-term` triggered the dump). `None` if the thread is gone.
    pub fn snapshot_and_wait(&self) -> Option<(CpuState, bool)> {
        {
            let mut c = self.lock();
            c.snapshot = true;
            c.snapshot_result = None;
        }
        self.kick();
        let mut c = self.lock();
        while c.snapshot && !c.quit && !c.dead {
            c = self.cv.wait(c).unwrap_or_else(|e| e.into_inner());
        }
        c.snapshot = false;
        c.snapshot_result.take()
    }

    /// Lets a vCPU stopped by [`Self::snapshot_and_wait`] continue where it was.
    pub fn resume(&self) {
        self.lock().running = true;
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

#[cfg(test)]
mod tests {
    use super::*;

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
        rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok()
    }

    #[test]
    fn reset_and_snapshot_give_up_on_a_vcpu_whose_thread_ended() {
        let c = Arc::new(ctl());
        c.spawn_with(|| (), |_| ()).unwrap();
        let t = c.thread.lock().unwrap().take().unwrap();
        t.join().unwrap();
        assert!(c.is_dead());
        let r = c.clone();
        assert!(returns(move || r.reset_and_wait()), "reset waited forever");
        let s = c.clone();
        assert!(returns(move || assert!(s.snapshot_and_wait().is_none())));
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
            let r = w.snapshot_and_wait();
            done_tx.send(r.is_none()).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        go_tx.send(()).unwrap();
        assert_eq!(
            done_rx.recv_timeout(std::time::Duration::from_secs(10)),
            Ok(true)
        );
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(),
            "vcpu 1: thread panicked"
        );
        assert!(c.is_dead());
    }

    #[test]
    fn a_stopped_vcpu_starts_once() {
        let c = ctl();
        assert_eq!(c.run_state(), CpuRunState::Stopped);
        let req = StartRequest {
            entry: 0xc164,
            r3: 1,
            r4: 0,
        };
        assert!(c.request_start(req));
        // Pending start counts as running for query-cpu-stopped-state, and a second start-cpu
        // on the same vCPU is refused.
        assert_eq!(c.run_state(), CpuRunState::Running);
        assert!(!c.request_start(req));
        assert_eq!(c.lock().start, Some(req));
    }

    #[test]
    fn kick_sets_immediate_exit_and_resume_marks_running() {
        let c = ctl();
        assert!(!c.immediate_exit.get());
        c.kick();
        assert!(c.immediate_exit.get());
        c.resume();
        assert_eq!(c.run_state(), CpuRunState::Running);
    }
}
