//! The I/O thread's workers: one persistent thread per disk lane, each running the requests
//! handed to it on its own handles of the disk ([`Disk`]'s lanes), and reporting each
//! completion as soon as it is done. They live as long as the I/O thread (a scoped borrow of
//! its guest memory and disk), so a request costs a channel send, never a thread start.
//!
//! The I/O thread decides what may run at once (see `io_thread::serve`); the pool only runs
//! and reports. A worker that cannot be started leaves the pool smaller; with none at all,
//! requests run on the I/O thread itself, one at a time.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::Scope;

use log::warn;
use virtio_bindings::virtio_blk::{VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR};
use virtio_queue::desc::split::Descriptor;
use vm_memory::GuestMemoryMmap;

use super::disk::Disk;
use super::request::{self, Completion};

/// Stack of a worker: a request's execution needs little (no recursion, no big locals).
const WORKER_STACK: usize = 256 << 10;

/// One request for a worker.
#[derive(Debug)]
pub(super) struct Job {
    /// The descriptor chain, read out of the ring.
    pub descs: Vec<Descriptor>,
    /// False when the chain was cut short (its last descriptor still had NEXT).
    pub complete: bool,
}

/// A finished request: the lane it ran on (free again) and its completion.
#[derive(Debug)]
pub(super) struct Done {
    pub lane: usize,
    pub completion: Completion,
}

/// Everything a request needs, shared by the I/O thread and its workers.
#[derive(Clone, Copy)]
pub(super) struct Context<'a> {
    pub mem: &'a GuestMemoryMmap,
    pub disk: &'a Disk,
    pub serial: &'a [u8; VIRTIO_BLK_ID_BYTES as usize],
}

impl Context<'_> {
    /// Runs one request on `lane`; a panic (a bug, never guest input) is an I/O error for the
    /// guest, not a dead device.
    fn run(&self, lane: usize, job: &Job) -> Completion {
        catch_unwind(AssertUnwindSafe(|| {
            request::execute(
                self.mem,
                self.disk,
                lane,
                self.serial,
                &job.descs,
                job.complete,
            )
        }))
        .unwrap_or_else(|_| {
            warn!("virtio-blk: a request panicked on lane {lane}");
            Completion {
                used_len: 0,
                status: VIRTIO_BLK_S_IOERR as u8,
            }
        })
    }
}

/// The workers of one I/O thread.
pub(super) struct Pool<'a> {
    ctx: Context<'a>,
    /// The job slot of worker `i`, which runs on lane `i`.
    workers: Vec<SyncSender<Job>>,
    done: Receiver<Done>,
    /// Lanes with no request.
    free: Vec<usize>,
    /// Completions of requests run inline (a pool without workers).
    inline: VecDeque<Done>,
}

impl<'a> Pool<'a> {
    /// Starts up to one worker per disk lane in `scope` (counting each in `started`); they
    /// end when the pool is dropped.
    pub fn start<'scope>(
        scope: &'scope Scope<'scope, 'a>,
        ctx: Context<'a>,
        name: &str,
        started: &AtomicUsize,
    ) -> Self
    where
        'a: 'scope,
    {
        let (done_tx, done) = mpsc::channel();
        let mut workers = Vec::new();
        for lane in 0..ctx.disk.lanes() {
            let (tx, rx) = mpsc::sync_channel::<Job>(1);
            let done_tx = done_tx.clone();
            let spawned = std::thread::Builder::new()
                // The lane first: Linux keeps 15 bytes of a thread's name.
                .name(format!("blk{lane}-{name}"))
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, move || {
                    for job in rx {
                        let completion = ctx.run(lane, &job);
                        if done_tx.send(Done { lane, completion }).is_err() {
                            return;
                        }
                    }
                });
            match spawned {
                Ok(_) => {
                    started.fetch_add(1, Ordering::SeqCst);
                    workers.push(tx);
                }
                Err(e) => {
                    warn!(
                        "virtio-blk: {name}: {lane} of {} lane workers started ({e})",
                        ctx.disk.lanes()
                    );
                    break;
                }
            }
        }
        let free = (0..workers.len().max(1)).rev().collect();
        Self {
            ctx,
            workers,
            done,
            free,
            inline: VecDeque::new(),
        }
    }

    /// A lane is free for one more request.
    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// Starts `job` on a free lane and returns the lane; gives the job back when every lane
    /// is busy.
    pub fn dispatch(&mut self, job: Job) -> Result<usize, Job> {
        let Some(lane) = self.free.pop() else {
            return Err(job);
        };
        match self.workers.get(lane) {
            // The slot is empty: the lane was free, so its worker took its last job.
            Some(w) => match w.try_send(job) {
                Ok(()) => return Ok(lane),
                Err(e) => {
                    warn!("virtio-blk: lane {lane}'s worker is gone: request run here");
                    let job = match e {
                        mpsc::TrySendError::Full(j) | mpsc::TrySendError::Disconnected(j) => j,
                    };
                    let completion = self.ctx.run(lane, &job);
                    self.inline.push_back(Done { lane, completion });
                }
            },
            None => {
                let completion = self.ctx.run(lane, &job);
                self.inline.push_back(Done { lane, completion });
            }
        }
        Ok(lane)
    }

    /// Waits for the next completion (the caller has a request running) and frees its lane.
    pub fn wait(&mut self) -> Option<Done> {
        self.take(true)
    }

    /// A completion that is already there, if any.
    pub fn try_collect(&mut self) -> Option<Done> {
        self.take(false)
    }

    fn take(&mut self, block: bool) -> Option<Done> {
        let d = match self.inline.pop_front() {
            Some(d) => d,
            None if block => self.done.recv().ok()?,
            None => self.done.try_recv().ok()?,
        };
        self.free.push(d.lane);
        Some(d)
    }
}
