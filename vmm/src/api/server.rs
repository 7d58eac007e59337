//! The API socket: bound with mode 0600, one accept thread, a fixed pool of connection workers
//! fed through a bounded queue. Every resource is bounded: the workers (each serves one
//! connection at a time under [`Limits`]), the queue (a connection that finds it full is
//! answered 503 at once and closed), the requests waiting for the machine, and the time a
//! worker waits for the machine to take a request ([`ServerConfig::take_timeout`]).

use super::http::{self, Limits, Response};
use super::routes::{self, Route};
use super::types::{FadumpInfo, PingResponse};
use super::{Action, ApiRequest, Claim, MachineLink, Reply, SendError};
use crate::machine::state::MachineState;
use log::{info, warn};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the server is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    pub limits: Limits,
    /// Connection workers (connections served at once).
    pub workers: usize,
    /// Accepted connections waiting for a worker; one more is answered 503.
    pub backlog: usize,
    /// How long a worker waits for the machine to take a request (it is busy, e.g. writing a
    /// dump); after that the request is given up on, answered 503 and never acted on.
    pub take_timeout: Duration,
    /// How long a worker waits for the answer of a request the machine took (a coredump of a
    /// large guest takes a while).
    pub op_timeout: Duration,
    /// Writing a response.
    pub write_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            workers: 4,
            backlog: 8,
            take_timeout: Duration::from_secs(10),
            op_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{0}: another process is serving this socket")]
    InUse(PathBuf),
    #[error("{0}: exists and is not a socket")]
    NotASocket(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A running API server; [`ApiServer::stop`] ends it and removes the socket.
#[derive(Debug)]
pub struct ApiServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    link: MachineLink,
    config: ServerConfig,
    /// Requests handed to the machine whose response is not written yet.
    pending: AtomicUsize,
}

/// Binds `path` with mode 0600: the socket is created in a fresh private directory beside it,
/// restricted, then renamed into place, so it never exists at `path` with wider permissions.
/// A stale socket at `path` (nothing answers it) is replaced.
pub fn bind_private(path: &Path) -> Result<UnixListener, BindError> {
    let io = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let name = path
        .file_name()
        .ok_or_else(|| io(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
    let dir = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::DirBuilder::new()
        .mode_private()
        .create(&dir)
        .map_err(io)?;
    let tmp = dir.join("sock");
    let result = (|| {
        let l = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(l)
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&dir);
    result.map_err(io)
}

trait PrivateDir {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateDir for std::fs::DirBuilder {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o700)
    }
}

impl ApiServer {
    /// Binds `path` and starts serving requests for the machine behind `link`.
    pub fn start(
        path: &Path,
        link: MachineLink,
        config: ServerConfig,
    ) -> Result<ApiServer, BindError> {
        let listener = bind_private(path)?;
        let io = |source| BindError::Io {
            path: path.to_path_buf(),
            source,
        };
        let shared = Arc::new(Shared {
            link,
            config,
            pending: AtomicUsize::new(0),
        });
        let (tx, rx) = sync_channel::<UnixStream>(config.backlog.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..config.workers.max(1) {
            let rx = rx.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("api-{i}"))
                .spawn(move || worker(&rx, &shared))
                .map_err(io)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let stop = stop.clone();
            let write_timeout = config.write_timeout;
            std::thread::Builder::new()
                .name("api-accept".into())
                .spawn(move || accept_loop(listener, tx, &stop, write_timeout))
                .map_err(io)?
        };
        info!("api: serving {}", path.display());
        Ok(ApiServer {
            path: path.to_path_buf(),
            stop,
            accept: Some(accept),
            shared,
        })
    }

    /// Requests handed to the machine whose response is not written yet.
    pub fn requests_waiting(&self) -> usize {
        self.shared.pending.load(Ordering::SeqCst)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, after waiting up to `grace` for responses the machine already gave
    /// (the 204 of a `vm.shutdown`) to be written; removes the socket. Workers busy with a
    /// connection finish it under its limits and then end.
    pub fn stop(&mut self, grace: Duration) {
        let until = Instant::now() + grace;
        while self.shared.pending.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            // Wake the blocked accept.
            let _ = UnixStream::connect(&self.path);
            let _ = t.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

fn accept_loop(
    listener: UnixListener,
    tx: SyncSender<UnixStream>,
    stop: &AtomicBool,
    write_timeout: Duration,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                crate::guest_warn!("api: accept: {e}");
                // EMFILE and the like: do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        match tx.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(mut s)) => {
                crate::guest_warn!("api: every worker is busy: a connection is answered 503");
                let _ = s.set_write_timeout(Some(write_timeout.min(Duration::from_millis(200))));
                let _ = Response::error(503, "too many connections: try again").write_to(&mut s);
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn worker(rx: &Mutex<Receiver<UnixStream>>, shared: &Shared) {
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(mut stream) = next else { return };
        let _ = stream.set_write_timeout(Some(shared.config.write_timeout));
        serve(&mut stream, shared);
    }
}

/// Reads one request from `stream`, answers it, and returns.
fn serve(stream: &mut UnixStream, shared: &Shared) {
    let req = match http::read_request(stream, &shared.config.limits) {
        Ok(r) => r,
        Err(e) => {
            crate::guest_warn!("api: {e}");
            if let Some(status) = e.status() {
                let _ = Response::error(status, &e).write_to(stream);
            }
            return;
        }
    };
    let response = match routes::route(&req) {
        Err(r) => {
            crate::guest_warn!("api: {} {} refused with {}", req.method, req.path, r.status);
            r
        }
        Ok(Route::Ping) => Response::new(
            200,
            serde_json::to_value(PingResponse::current()).ok().as_ref(),
        ),
        Ok(Route::Machine(action)) => {
            log::debug!("api: {} {}", req.method, req.path);
            let (reply, sent) = ask_machine(action, shared);
            let r = Response::new(reply.status, reply.body.as_ref());
            let _ = r.write_to(stream);
            if sent {
                shared.pending.fetch_sub(1, Ordering::SeqCst);
            }
            return;
        }
    };
    let _ = response.write_to(stream);
}

/// Hands `action` to the machine and waits, bounded, for its reply; true when it was handed
/// over, leaving `shared.pending` one higher (the caller writes the response, then lowers it).
fn ask_machine(action: Action, shared: &Shared) -> (Reply, bool) {
    match ask_machine_inner(action, shared) {
        Ok(r) => (r, true),
        Err(r) => (r, false),
    }
}

fn ask_machine_inner(action: Action, shared: &Shared) -> Result<Reply, Reply> {
    let status = &shared.link.status;
    let state = status.state();
    if state.is_final() {
        return Err(Reply::error(503, format!("the VM has stopped ({state})")));
    }
    if state == MachineState::Dumping {
        if action == Action::Fadump {
            return Err(Reply::json(FadumpInfo::dumping()));
        }
        if action.is_mutating() {
            return Err(Reply::error(
                409,
                format!(
                    "a dump is being written: {action:?} refused (the guest is not touched); \
                     try again when vm.fadump no longer shows \"dumping\""
                ),
            ));
        }
    }
    let (reply, rx) = sync_channel(1);
    let claim = Claim::default();
    let req = ApiRequest {
        action,
        claim: claim.clone(),
        boot: status.boots(),
        reply,
    };
    match shared.link.send(req) {
        Ok(()) => shared.pending.fetch_add(1, Ordering::SeqCst),
        Err(e @ SendError::Full) => return Err(Reply::error(503, format!("{e}: try again"))),
        Err(e @ SendError::Gone) => return Err(Reply::error(503, e.to_string())),
    };
    let take = shared.config.take_timeout;
    match rx.recv_timeout(take) {
        Ok(r) => return Ok(r),
        Err(RecvTimeoutError::Disconnected) => {
            return Ok(Reply::error(503, "the machine stopped before answering"))
        }
        Err(RecvTimeoutError::Timeout) => {}
    }
    if claim.give_up() {
        warn!("api: the machine did not take a request within {take:?}: given up");
        return Ok(Reply::error(
            503,
            format!("the machine did not take the request within {take:?} (busy?): not applied"),
        ));
    }
    // Taken: the machine is acting on it and will answer.
    Ok(rx
        .recv_timeout(shared.config.op_timeout)
        .unwrap_or_else(|_| Reply::error(500, "the machine took the request but did not answer")))
}
