//! The operator API: HTTP/1.1 over a Unix socket (`--api-socket path=FILE`), with
//! cloud-hypervisor's paths and verbs (`/api/v1/vmm.ping`, `vm.info`, `vm.reboot`, ...) so its
//! curl recipes and `ch-remote` habits carry over, plus `GET /api/v1/vm.fadump`.
//!
//! * [`http`]: one request read under limits (header and body sizes, a per-connection
//!   deadline) with `httparse`; the response written back.
//! * [`routes`]: which (method, path, body) is which [`Action`], and the 4xx for the rest.
//! * [`server`]: the socket (mode 0600), one accept thread and a fixed pool of connection
//!   workers fed through a bounded queue (a full queue is answered 503 at once).
//! * [`types`]: the JSON bodies, shared with `ppc-remote`.
//!
//! Requests that need the machine travel as [`ApiRequest`]s over a bounded channel to the
//! machine's main thread, woken through an eventfd (`machine/api_ops.rs` answers them); the
//! worker waits a bounded time for the machine to take it and reply on a per-request channel.
//! Whether the machine takes a request or the worker gives up on it is decided once, by a
//! [`Claim`]: a request given up on is never acted on, and one taken is always answered. A
//! request also carries the boot it was accepted in: the machine refuses a mutating one once
//! the guest has booted again (a crash or reboot happened in between), so nothing is applied
//! that the operator did not ask of the running guest.
//! While a dump is being written (the machine's main thread is busy with it), mutating
//! requests are refused at once with 409 from the published [`MachineStatus`].

pub mod http;
pub mod routes;
pub mod server;
pub mod types;

pub use server::{ApiServer, ServerConfig};

use crate::machine::state::MachineState;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use vmm_sys_util::eventfd::EventFd;

/// What a request asks of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET vm.info`.
    Info,
    /// `GET vm.counters`.
    Counters,
    /// `GET vm.fadump`.
    Fadump,
    /// `PUT vm.shutdown` (and `vmm.shutdown`): the run ends with status 0.
    Shutdown,
    /// `PUT vm.reboot`: reset and boot again, as a guest `system-reboot`.
    Reboot,
    /// `PUT vm.power-button`.
    PowerButton,
    /// `PUT vm.nmi`: a system reset on every vCPU.
    Nmi,
    /// `PUT vm.coredump {"destination_url": "file:///path"}`.
    Coredump { path: std::path::PathBuf },
    /// `PUT vm.resize {"desired_ram": bytes}`.
    Resize { desired_ram: u64 },
}

impl Action {
    /// True for the requests that change the guest (refused while a dump is being written,
    /// and not applied after a boot other than the one they were accepted in).
    pub fn is_mutating(&self) -> bool {
        !matches!(self, Action::Info | Action::Counters | Action::Fadump)
    }
}

/// The machine's answer: an HTTP status and an optional JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<serde_json::Value>,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(body: impl serde::Serialize) -> Reply {
        match serde_json::to_value(body) {
            Ok(v) => Reply {
                status: 200,
                body: Some(v),
            },
            Err(e) => Reply::error(500, format!("cannot encode the answer: {e}")),
        }
    }

    /// 204, no body.
    pub fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
        }
    }

    /// An error status with `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: Some(serde_json::json!({ "error": message.into() })),
        }
    }
}

/// One request on its way to the machine.
#[derive(Debug)]
pub struct ApiRequest {
    pub action: Action,
    /// Who decided its fate first: the machine (taken) or the worker (given up on).
    pub claim: Claim,
    /// [`MachineStatus::boots`] when the request was accepted.
    pub boot: u32,
    /// Where the reply goes (capacity 1: sending never blocks).
    pub reply: SyncSender<Reply>,
}

/// Whether a request was taken by the machine or given up on by its worker, decided once.
#[derive(Debug, Clone, Default)]
pub struct Claim(Arc<AtomicU8>);

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const GIVEN_UP: u8 = 2;

impl Claim {
    /// The machine takes the request: false if its worker gave up on it first.
    pub fn take(&self) -> bool {
        self.0
            .compare_exchange(WAITING, TAKEN, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
    /// The worker gives up: false if the machine took it first (its reply will come).
    pub fn give_up(&self) -> bool {
        self.0
            .compare_exchange(WAITING, GIVEN_UP, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// What the machine publishes for the API threads (written by the machine, read anywhere).
#[derive(Debug)]
pub struct MachineStatus {
    state: AtomicU8,
    boots: AtomicU32,
}

impl Default for MachineStatus {
    fn default() -> Self {
        MachineStatus {
            state: AtomicU8::new(state_code(MachineState::Created)),
            boots: AtomicU32::new(0),
        }
    }
}

const STATES: [MachineState; 6] = [
    MachineState::Created,
    MachineState::Running,
    MachineState::Dumping,
    MachineState::Resetting,
    MachineState::Off,
    MachineState::Failed,
];

fn state_code(s: MachineState) -> u8 {
    STATES.iter().position(|x| *x == s).unwrap_or(0) as u8
}

impl MachineStatus {
    pub fn set_state(&self, s: MachineState) {
        self.state.store(state_code(s), Ordering::SeqCst);
    }
    pub fn state(&self) -> MachineState {
        STATES
            .get(self.state.load(Ordering::SeqCst) as usize)
            .copied()
            .unwrap_or(MachineState::Created)
    }
    pub fn set_boots(&self, n: u32) {
        self.boots.store(n, Ordering::SeqCst);
    }
    /// Boots so far (the first boot is 1).
    pub fn boots(&self) -> u32 {
        self.boots.load(Ordering::SeqCst)
    }
}

/// The server's side of the link to the machine.
#[derive(Debug)]
pub struct MachineLink {
    tx: SyncSender<ApiRequest>,
    wake: EventFd,
    pub status: Arc<MachineStatus>,
}

/// The machine's side: the queue of requests and the eventfd its event loop watches.
#[derive(Debug)]
pub struct ApiQueue {
    pub rx: Receiver<ApiRequest>,
    pub wake: EventFd,
    pub status: Arc<MachineStatus>,
}

/// Why a request could not be handed to the machine.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("too many requests are waiting for the machine")]
    Full,
    #[error("the machine has stopped")]
    Gone,
}

impl MachineLink {
    /// Queues `req` for the machine and wakes its event loop.
    pub fn send(&self, req: ApiRequest) -> Result<(), SendError> {
        self.tx.try_send(req).map_err(|e| match e {
            TrySendError::Full(_) => SendError::Full,
            TrySendError::Disconnected(_) => SendError::Gone,
        })?;
        let _ = self.wake.write(1);
        Ok(())
    }
}

/// A connected link and queue holding at most `depth` waiting requests.
pub fn machine_channel(depth: usize) -> std::io::Result<(MachineLink, ApiQueue)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(depth);
    let wake = EventFd::new(libc::EFD_NONBLOCK)?;
    let status = Arc::new(MachineStatus::default());
    Ok((
        MachineLink {
            tx,
            wake: wake.try_clone()?,
            status: status.clone(),
        },
        ApiQueue { rx, wake, status },
    ))
}

impl ApiQueue {
    /// The next request the machine should act on: requests whose client stopped waiting
    /// are dropped, and a mutating one from an earlier boot is answered 409 here.
    pub fn next(&self) -> Option<ApiRequest> {
        loop {
            let req = self.rx.try_recv().ok()?;
            if !req.claim.take() {
                log::warn!(
                    "api: dropping {:?}: its client stopped waiting before the machine could \
                     answer",
                    req.action
                );
                continue;
            }
            if req.action.is_mutating() && req.boot != self.status.boots() {
                let _ = req.reply.try_send(Reply::error(
                    409,
                    format!(
                        "the guest booted again (boot #{} -> #{}) since the request was made: \
                         not applied",
                        req.boot,
                        self.status.boots()
                    ),
                ));
                continue;
            }
            return Some(req);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(action: Action, boot: u32) -> (ApiRequest, Receiver<Reply>) {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        (
            ApiRequest {
                action,
                claim: Claim::default(),
                boot,
                reply,
            },
            rx,
        )
    }

    #[test]
    fn the_status_round_trips_every_state() {
        let s = MachineStatus::default();
        assert_eq!(s.state(), MachineState::Created);
        for st in STATES {
            s.set_state(st);
            assert_eq!(s.state(), st);
        }
    }

    #[test]
    fn a_request_given_up_on_or_from_an_earlier_boot_is_not_acted_on() {
        let (link, q) = machine_channel(4).unwrap();
        link.status.set_boots(2);
        let (expired, _r1) = req(Action::Nmi, 2);
        assert!(expired.claim.clone().give_up());
        let (stale, r2) = req(Action::Reboot, 1);
        let (stale_read, _r3) = req(Action::Info, 1);
        link.send(expired).unwrap();
        link.send(stale).unwrap();
        link.send(stale_read).unwrap();
        // A read from an earlier boot is still answered; the stale reboot is refused.
        assert_eq!(q.next().unwrap().action, Action::Info);
        assert_eq!(r2.try_recv().unwrap().status, 409);
        assert!(q.next().is_none());
    }

    #[test]
    fn a_claim_is_decided_once() {
        let c = Claim::default();
        assert!(c.take());
        assert!(!c.give_up());
        let c = Claim::default();
        assert!(c.give_up());
        assert!(!c.take());
    }

    #[test]
    fn a_full_queue_and_a_gone_machine_are_reported() {
        let (link, q) = machine_channel(1).unwrap();
        link.send(req(Action::Info, 0).0).unwrap();
        assert_eq!(link.send(req(Action::Info, 0).0), Err(SendError::Full));
        drop(q);
        assert_eq!(link.send(req(Action::Info, 0).0), Err(SendError::Gone));
    }
}
