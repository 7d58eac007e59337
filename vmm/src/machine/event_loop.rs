//! The main thread's event loop pieces: SIGINT/SIGTERM, the wake-up eventfds, console input.

use crate::console::Console;
use event_manager::{EventOps, Events, MutEventSubscriber};
use log::{error, warn};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

pub(super) static SIGNAL_WAKE: OnceLock<EventFd> = OnceLock::new();
pub(super) static SIGNALLED: AtomicBool = AtomicBool::new(false);

pub(super) extern "C" fn on_terminate(
    _: libc::c_int,
    _: *mut libc::siginfo_t,
    _: *mut libc::c_void,
) {
    SIGNALLED.store(true, Ordering::SeqCst);
    if let Some(e) = SIGNAL_WAKE.get() {
        let _ = e.write(1);
    }
}

/// SIGUSR1 arrived: deliver an NMI.
pub(super) static NMI_SIGNALLED: AtomicBool = AtomicBool::new(false);
/// SIGUSR2 arrived: press the power button.
pub(super) static POWER_BUTTON_SIGNALLED: AtomicBool = AtomicBool::new(false);

/// SIGUSR1/SIGUSR2: note the request and wake the main thread (async-signal-safe: an atomic
/// store and an eventfd write).
pub(super) extern "C" fn on_operator_signal(
    sig: libc::c_int,
    _: *mut libc::siginfo_t,
    _: *mut libc::c_void,
) {
    let flag = if sig == libc::SIGUSR1 {
        &NMI_SIGNALLED
    } else {
        &POWER_BUTTON_SIGNALLED
    };
    flag.store(true, Ordering::SeqCst);
    if let Some(e) = SIGNAL_WAKE.get() {
        let _ = e.write(1);
    }
}

/// Drains wake-up event fds (vCPU events, signals) so `EventManager::run` returns.
pub(super) struct Wakeup {
    pub(super) fds: Vec<EventFd>,
}

impl MutEventSubscriber for Wakeup {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        for f in &self.fds {
            use std::os::fd::AsRawFd;
            if f.as_raw_fd() == events.fd() {
                let _ = f.read();
            }
        }
    }
    fn init(&mut self, ops: &mut EventOps) {
        for f in &self.fds {
            if let Err(e) = ops.add(Events::new(f, EventSet::IN)) {
                error!("event loop: {e:?}");
            }
        }
    }
}

/// Feeds stdin to the guest console.
///
/// Reads an unbuffered duplicate of fd 0: `std::io::Stdin` keeps its own 8 KiB buffer, so a
/// read of part of a long line would leave the rest in that buffer where epoll cannot see it,
/// and the guest would wait for input that has already arrived.
pub(super) struct StdinInput {
    console: Arc<Console>,
    stdin: Option<std::fs::File>,
}

impl StdinInput {
    pub(super) fn new(console: Arc<Console>) -> Self {
        use std::os::fd::AsFd;
        let stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => Some(std::fs::File::from(fd)),
            Err(e) => {
                warn!("console input unavailable: dup stdin: {e}");
                None
            }
        };
        StdinInput { console, stdin }
    }

    /// Input from any readable file (tests use a pipe).
    #[cfg(test)]
    fn from_file(console: Arc<Console>, file: std::fs::File) -> Self {
        StdinInput {
            console,
            stdin: Some(file),
        }
    }
}

impl MutEventSubscriber for StdinInput {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let mut buf = [0u8; 4096];
        let Some(stdin) = self.stdin.as_mut() else {
            let _ = ops.remove(events);
            return;
        };
        match stdin.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => {
                // EOF or error: stop watching stdin, the guest keeps running.
                let _ = ops.remove(events);
            }
            Ok(n) => self.console.queue_input(&buf[..n]),
        }
    }
    fn init(&mut self, ops: &mut EventOps) {
        if let Some(stdin) = &self.stdin {
            if let Err(e) = ops.add(Events::new(stdin, EventSet::IN)) {
                warn!("console input unavailable: {e:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_manager::{EventManager, SubscriberOps};
    use std::sync::Mutex;

    /// A line longer than one read must reach the guest whole, without more input arriving:
    /// every byte the pipe delivered is queued after the loop has run.
    #[test]
    fn console_input_longer_than_one_read_is_delivered_whole() {
        use std::io::Write;
        use std::os::fd::OwnedFd;
        let (rd, mut wr) = std::os::unix::net::UnixStream::pair().unwrap();
        let rd = std::fs::File::from(OwnedFd::from(rd));
        let console = Arc::new(Console::new(Box::new(std::io::sink())));
        let line: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        wr.write_all(&line).unwrap();
        let mut em: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
            EventManager::new().unwrap();
        em.add_subscriber(Arc::new(Mutex::new(StdinInput::from_file(
            console.clone(),
            rd,
        ))));
        let mut got = Vec::new();
        for _ in 0..16 {
            if got.len() == line.len() {
                break;
            }
            em.run_with_timeout(100).unwrap();
            let mut buf = [0u8; 16];
            loop {
                let n = console.read(&mut buf);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(got, line);
    }
}
