//! The I/O thread of one virtio-blk device: it runs the queue's requests, so a vCPU's notify
//! only signals an eventfd (with `KVM_IOEVENTFD` the store does not even leave the kernel)
//! and the vCPU goes back to the guest while the disk works.
//!
//! # Who holds what
//!
//! * The device (under the PHB's lock, on vCPU threads and the main thread) holds the queue's
//!   *configuration*, which cannot change while the queue runs; at DRIVER_OK it hands a copy
//!   ([`IoThread::activate`]) to the thread, which from then on owns the ring indices.
//! * The thread takes that copy out of `Control` for one round of at most [`BUDGET_REQUESTS`]
//!   requests or [`BUDGET_BYTES`] of data (bounded work per wake-up: a guest that keeps the
//!   ring full cannot make a reset or a pause wait for more than the requests already
//!   running, which run at once), puts it back, and wakes itself again when requests remain.
//! * Execution: up to one request per disk lane runs at a time, each on that lane's
//!   persistent worker thread (`lanes.rs`, [`LANES`](super::disk::LANES) of them per disk,
//!   started with the thread); the thread hands out requests as lanes free up.
//! * Completion: each request's used element is written as soon as it finished (in the order
//!   they finish); every `SIGNAL_EVERY` completions and at the end of a round ISR gets its
//!   queue bit and the INTx line is re-evaluated from this thread ([`IntxLine::refresh`],
//!   `KVM_IRQ_LINE` underneath, which any thread may call).
//!
//! # Stopping
//!
//! [`IoThread::deactivate`] (device reset) and [`IoThread::pause`] (the fadump's stop) raise
//! `stop`, which the thread checks between requests, and wait until it is out of its round:
//! from their return neither the thread nor its workers touch guest memory or the disk (a
//! round ends only when none of its requests runs). Many requests may be in flight from the
//! guest's side (the whole ring); the host runs independent ones at once and keeps the rest
//! in ring order (see `serve`), which is what the per-request completions promise the driver.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};
use virtio_bindings::virtio_blk::VIRTIO_BLK_ID_BYTES;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

use super::disk::Disk;
use super::lanes::{Context, Job, Pool};
use super::request;
use super::{ISR_CONFIG, ISR_QUEUE};
use crate::devices::phb::intx::IntxLine;
use vmm_sys_util::eventfd::EventFd;

/// At most this many requests per round.
pub const BUDGET_REQUESTS: usize = 32;
/// A round ends after the request that crosses this many data bytes.
pub const BUDGET_BYTES: u64 = 8 << 20;
/// Completions a round publishes before it raises the interrupt mid-round (the rest at its
/// end).
const SIGNAL_EVERY: usize = BUDGET_REQUESTS / 2;
/// How long [`IoThread::settle`] waits.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the thread and the device share.
#[derive(Debug, Default)]
struct Control {
    /// The running queue, while the driver has it running and the thread is not in a round.
    queue: Option<Queue>,
    /// The thread is in a round (it holds the queue).
    busy: bool,
    /// No round starts (the fadump's stop) until resumed or reset.
    paused: bool,
    quit: bool,
    /// The last kick count whose requests are all done.
    served: u64,
}

/// The state shared by the device and its thread.
#[derive(Debug)]
pub(super) struct Shared {
    /// Signalled on every notify (by KVM through an ioeventfd, or by the MMIO path) and on
    /// every control change.
    pub kick: EventFd,
    /// Kicks made through [`IoThread::kick`] (the MMIO path), for [`IoThread::settle`].
    kicks: AtomicU64,
    ctl: Mutex<Control>,
    cv: Condvar,
    /// Raised between requests by those who wait for the thread to be out of its round.
    stop: AtomicBool,
    /// The ISR register (bit 0 queue, bit 1 configuration).
    pub isr: AtomicU8,
    /// The thread found the ring broken: the device needs a reset (NEEDS_RESET).
    pub broken: AtomicBool,
    /// DRIVER_OK as the device last saw it (a broken ring raises ISR_CONFIG only then).
    pub driver_ok: AtomicBool,
    intx: Mutex<Option<Arc<IntxLine>>>,
    /// Requests per round (normally [`BUDGET_REQUESTS`]).
    budget: AtomicUsize,
    /// Rounds that served a running queue so far.
    rounds: AtomicU64,
    /// Lane workers started (once, with the thread).
    workers: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Control> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-evaluates the INTx line from ISR.
    pub fn refresh_intx(&self) {
        let line = self.intx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(line) = line {
            line.refresh(|| self.isr.load(Ordering::SeqCst) != 0);
        }
    }

    /// Waits until the thread is out of its round; `stop` makes that at most one request.
    fn wait_idle<'a>(&'a self, mut ctl: MutexGuard<'a, Control>) -> MutexGuard<'a, Control> {
        let t = Instant::now();
        let mut warned = false;
        while ctl.busy {
            let (c, _) = self
                .cv
                .wait_timeout(ctl, Duration::from_secs(1))
                .unwrap_or_else(|e| e.into_inner());
            ctl = c;
            if ctl.busy && !warned && t.elapsed() >= Duration::from_secs(1) {
                warn!("virtio-blk: waiting for the I/O thread's request in progress (host disk slow?)");
                warned = true;
            }
        }
        ctl
    }
}

/// The thread of one device (ended and joined on drop).
#[derive(Debug)]
pub struct IoThread {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl IoThread {
    /// Starts the thread over `mem` and `disk`.
    pub fn spawn(
        mem: GuestMemoryMmap,
        disk: Disk,
        serial: [u8; VIRTIO_BLK_ID_BYTES as usize],
        name: String,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            kick: EventFd::new(0)?,
            kicks: AtomicU64::new(0),
            ctl: Mutex::new(Control::default()),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
            isr: AtomicU8::new(0),
            broken: AtomicBool::new(false),
            driver_ok: AtomicBool::new(false),
            intx: Mutex::new(None),
            budget: AtomicUsize::new(BUDGET_REQUESTS),
            rounds: AtomicU64::new(0),
            workers: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(&s, &mem, &disk, &serial))?;
        Ok(Self {
            shared,
            handle: Some(handle),
        })
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn connect_intx(&self, line: Arc<IntxLine>) {
        *self.shared.intx.lock().unwrap_or_else(|e| e.into_inner()) = Some(line);
    }

    /// The eventfd a notify signals.
    pub fn kick_fd(&self) -> &EventFd {
        &self.shared.kick
    }

    /// A notify that came as an MMIO exit.
    pub fn kick(&self) {
        self.shared.kicks.fetch_add(1, Ordering::SeqCst);
        self.signal();
    }

    fn signal(&self) {
        if let Err(e) = self.shared.kick.write(1) {
            warn!("virtio-blk: cannot wake the I/O thread: {e}");
        }
    }

    /// The driver set DRIVER_OK with the queue ready: the thread serves `queue` from now on.
    pub fn activate(&self, queue: Queue) {
        let mut ctl = self.shared.wait_idle(self.shared.lock());
        ctl.queue = Some(queue);
        self.shared.stop.store(false, Ordering::SeqCst);
    }

    /// Device reset: the thread finishes the request in progress and serves nothing more
    /// until the next [`IoThread::activate`]; a pause ends too.
    pub fn deactivate(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut ctl = self.shared.wait_idle(self.shared.lock());
        ctl.queue = None;
        ctl.paused = false;
        self.shared.stop.store(false, Ordering::SeqCst);
        self.shared.broken.store(false, Ordering::SeqCst);
        self.shared.driver_ok.store(false, Ordering::SeqCst);
        self.shared.isr.store(0, Ordering::SeqCst);
    }

    /// Returns once the thread is out of its round and starts no other until
    /// [`IoThread::resume`] or [`IoThread::deactivate`].
    pub fn pause(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut ctl = self.shared.wait_idle(self.shared.lock());
        ctl.paused = true;
        self.shared.stop.store(false, Ordering::SeqCst);
    }

    /// Ends a pause and looks at the ring again (notifies that came meanwhile were
    /// dropped).
    pub fn resume(&self) {
        self.shared.lock().paused = false;
        self.kick();
    }

    /// Rounds that served a running queue so far.
    pub fn rounds(&self) -> u64 {
        self.shared.rounds.load(Ordering::SeqCst)
    }

    /// Lane worker threads started so far: [`LANES`](super::disk::LANES) once the thread is up,
    /// never more (requests do not start threads).
    pub fn workers_started(&self) -> usize {
        self.shared.workers.load(Ordering::SeqCst)
    }

    /// Sets the requests per round (at least 1).
    pub fn set_budget(&self, requests: usize) {
        self.shared.budget.store(requests.max(1), Ordering::SeqCst);
    }

    /// Waits (at most `SETTLE_TIMEOUT`) until every kick made so far through
    /// [`IoThread::kick`] is served; true if it was.
    pub fn settle(&self) -> bool {
        let target = self.shared.kicks.load(Ordering::SeqCst);
        let t = Instant::now();
        let mut ctl = self.shared.lock();
        while ctl.served < target || ctl.busy {
            let left = SETTLE_TIMEOUT.saturating_sub(t.elapsed());
            if left.is_zero() {
                return false;
            }
            let (c, _) = self
                .shared
                .cv
                .wait_timeout(ctl, left)
                .unwrap_or_else(|e| e.into_inner());
            ctl = c;
        }
        true
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.lock().quit = true;
        self.signal();
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                warn!("virtio-blk: the I/O thread panicked");
            }
        }
    }
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Round {
    completed: usize,
    /// The budget ran out (or a stop came) with requests possibly left.
    more: bool,
    /// The ring is unusable: the device needs a reset.
    broken: bool,
}

fn run(
    shared: &Shared,
    mem: &GuestMemoryMmap,
    disk: &Disk,
    serial: &[u8; VIRTIO_BLK_ID_BYTES as usize],
) {
    let name = std::thread::current()
        .name()
        .unwrap_or("blk")
        .trim_start_matches("blk-")
        .to_string();
    let ctx = Context { mem, disk, serial };
    std::thread::scope(|sc| {
        // The workers end when the pool is dropped, as this closure returns.
        let mut pool = Pool::start(sc, ctx, &name, &shared.workers);
        serve_forever(shared, mem, &mut pool);
    });
}

fn serve_forever(shared: &Shared, mem: &GuestMemoryMmap, pool: &mut Pool<'_>) {
    loop {
        // Blocks until a kick or a control change; an error (none is expected for an
        // eventfd) only means the control state is looked at now.
        if let Err(e) = shared.kick.read() {
            debug!("virtio-blk I/O thread: eventfd read: {e}");
        }
        let target = shared.kicks.load(Ordering::SeqCst);
        let mut ctl = shared.lock();
        if ctl.quit {
            return;
        }
        let queue = if ctl.paused { None } else { ctl.queue.take() };
        let Some(mut queue) = queue else {
            // Nothing runs: the kicks so far are answered (a notify before DRIVER_OK, or
            // while paused, is dropped, as the synchronous device dropped it).
            ctl.served = ctl.served.max(target);
            drop(ctl);
            shared.cv.notify_all();
            continue;
        };
        ctl.busy = true;
        drop(ctl);

        let round = serve(shared, mem, pool, &mut queue);
        let rounds = shared.rounds.fetch_add(1, Ordering::SeqCst) + 1;
        if round.completed > 0 && !round.broken {
            signal_used(shared, mem, &mut queue);
        }
        if round.broken {
            shared.broken.store(true, Ordering::SeqCst);
            if shared.driver_ok.load(Ordering::SeqCst) {
                shared.isr.fetch_or(ISR_CONFIG, Ordering::SeqCst);
            }
        }
        // Still in the round: whoever waits for it also waits for the line.
        shared.refresh_intx();
        if rounds <= 4 || rounds % 100_000 == 0 {
            debug!(
                "virtio-blk I/O thread: round {rounds}: {} requests{}",
                round.completed,
                if round.more { ", more left" } else { "" }
            );
        }

        let mut ctl = shared.lock();
        if !round.broken {
            ctl.queue = Some(queue);
        }
        ctl.busy = false;
        // A broken ring ends the queue (no re-arm follows), so its kicks are answered even if
        // the round also ran out of budget; otherwise `settle` would wait for a round that
        // never comes.
        if !round.more || round.broken {
            ctl.served = ctl.served.max(target);
        }
        drop(ctl);
        shared.cv.notify_all();
        if round.more && !round.broken {
            if let Err(e) = shared.kick.write(1) {
                warn!("virtio-blk: I/O thread cannot re-arm itself: {e}");
            }
        }
    }
}

/// A request handed to a lane and not yet completed.
#[derive(Debug)]
struct InFlight {
    lane: usize,
    head: u16,
    /// Its disk bytes, `None` for a request that runs alone (flush, get-id, unknown).
    span: Option<Span>,
}

/// One round: pops requests and keeps up to one per disk lane running, until the ring is
/// empty, the budget is spent or a stop is asked for; then waits for those still running, so
/// the round ends with none. Each completion goes into the used ring as soon as it is
/// collected, in the order they finish (virtio lets a device complete out of order); the
/// interrupt follows every `SIGNAL_EVERY` of them and at the end of the round.
/// A request that overlaps a running write (or writes over a running read) waits until that
/// one completed, so requests take effect as if one after the other in ring order; and
/// anything else (flush, get-id, unknown types) runs alone, after everything before it
/// completed, so a flush covers every write the driver saw complete.
fn serve(shared: &Shared, mem: &GuestMemoryMmap, pool: &mut Pool<'_>, queue: &mut Queue) -> Round {
    let mut r = Round::default();
    let mut bytes = 0u64;
    let budget = shared.budget.load(Ordering::SeqCst);
    // While the thread works the driver need not notify (VRING_USED_F_NO_NOTIFY): a notify
    // only costs the guest an exit then. Notifications go back on once the ring is empty.
    if let Err(e) = queue.disable_notification(mem) {
        crate::guest_warn!("virtio-blk: used ring flags unwritable: {e}");
    }
    let mut running: Vec<InFlight> = Vec::new();
    // Completions published with an interrupt so far this round.
    let mut signalled = 0usize;
    // No more requests start in this round (budget spent, stop asked, ring broken).
    let mut closing = false;
    // Set when notifications were just re-enabled: a ring that then still claims entries
    // but yields none (a garbage avail index) ends the round instead of spinning.
    let mut rearmed = false;
    loop {
        // Start what may start.
        let mut started = false;
        while !closing && pool.has_free() {
            if r.completed + running.len() >= budget
                || bytes >= BUDGET_BYTES
                || shared.stop.load(Ordering::SeqCst)
            {
                closing = true;
                r.more = true;
                break;
            }
            // Something running alone: nothing joins it.
            if running.iter().any(|f| f.span.is_none()) {
                break;
            }
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let complete = descs.last().is_some_and(|d| !d.has_next());
            let span = Span::of(mem, &descs);
            let waits = match &span {
                None => !running.is_empty(),
                Some(s) => running
                    .iter()
                    .any(|f| f.span.as_ref().is_some_and(|o| o.conflicts(s))),
            };
            if waits {
                // It must see the running requests' effects: back into the ring until then.
                queue.go_to_previous_position();
                break;
            }
            bytes = bytes.saturating_add(descs.iter().map(|d| u64::from(d.len())).sum::<u64>());
            match pool.dispatch(Job { descs, complete }) {
                Ok(lane) => running.push(InFlight { lane, head, span }),
                Err(_) => {
                    // has_free said yes: cannot happen; the request goes back to the ring.
                    queue.go_to_previous_position();
                    break;
                }
            }
            started = true;
        }
        if running.is_empty() {
            if closing {
                return r;
            }
            if started {
                continue;
            }
            if rearmed {
                return r;
            }
            // Re-enabling tells whether the driver published more meanwhile (having seen the
            // flag, it did not notify): then go on.
            rearmed = true;
            match queue.enable_notification(mem) {
                Ok(true) => continue,
                Ok(false) => return r,
                Err(e) => {
                    crate::guest_warn!("virtio-blk: avail ring unreadable: {e}");
                    return r;
                }
            }
        }
        rearmed = false;
        // Collect one completion (waiting for it), and every other already there.
        let Some(first) = pool.wait() else {
            // Every worker is gone with requests running: nothing more can complete.
            warn!("virtio-blk: the lane workers are gone; the ring is abandoned");
            r.broken = true;
            return r;
        };
        let mut done = vec![first];
        while let Some(d) = pool.try_collect() {
            done.push(d);
        }
        for d in done {
            let Some(i) = running.iter().position(|f| f.lane == d.lane) else {
                warn!("virtio-blk: a completion for idle lane {}", d.lane);
                continue;
            };
            let f = running.swap_remove(i);
            if r.broken {
                continue;
            }
            if let Err(e) = queue.add_used(mem, f.head, d.completion.used_len) {
                crate::guest_warn!(
                    "virtio-blk: cannot add used element for head {}: {e}",
                    f.head
                );
                // Nothing more is published; what runs is still waited for.
                r.broken = true;
                closing = true;
                continue;
            }
            r.completed += 1;
        }
        // Interrupts are coalesced: one per half budget of completions here, the rest when
        // the round ends. Under nested KVM every interrupt costs the guest an ISR read, a
        // full exit to this process; one per completion made the save slower.
        if !r.broken && r.completed - signalled >= SIGNAL_EVERY {
            signalled = r.completed;
            signal_used(shared, mem, queue);
        }
    }
}

/// After new used elements: ISR and the line, if the driver wants to hear of them.
fn signal_used(shared: &Shared, mem: &GuestMemoryMmap, queue: &mut Queue) {
    match queue.needs_notification(mem) {
        Ok(true) => {
            shared.isr.fetch_or(ISR_QUEUE, Ordering::SeqCst);
        }
        Ok(false) => return,
        Err(e) => {
            crate::guest_warn!("virtio-blk: used ring unreadable: {e}");
            shared.isr.fetch_or(ISR_QUEUE, Ordering::SeqCst);
        }
    }
    shared.refresh_intx();
}

/// The disk bytes a read or write may touch, from its header (type, sector) and, as an upper
/// bound of its length, the sum of its descriptors. `None` for anything else, and for a
/// header that cannot be read.
#[derive(Debug, Clone, Copy)]
struct Span {
    write: bool,
    start: u64,
    end: u64,
}

impl Span {
    fn of(mem: &GuestMemoryMmap, descs: &[Descriptor]) -> Option<Span> {
        use virtio_bindings::virtio_blk::{VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
        use vm_memory::Bytes;
        let d = descs
            .first()
            .filter(|d| !d.is_write_only() && u64::from(d.len()) >= request::HEADER_LEN)?;
        let mut hdr = [0u8; request::HEADER_LEN as usize];
        mem.read_slice(&mut hdr, d.addr()).ok()?;
        let kind = u32::from_le_bytes(hdr[0..4].try_into().ok()?);
        let sector = u64::from_le_bytes(hdr[8..16].try_into().ok()?);
        let write = match kind {
            VIRTIO_BLK_T_IN => false,
            VIRTIO_BLK_T_OUT => true,
            _ => return None,
        };
        let len = descs
            .iter()
            .fold(0u64, |a, d| a.saturating_add(u64::from(d.len())));
        let start = sector.saturating_mul(super::disk::SECTOR_SIZE);
        Some(Span {
            write,
            start,
            end: start.saturating_add(len),
        })
    }

    /// Two requests that must not run at once: overlapping, and one of them a write.
    fn conflicts(&self, o: &Span) -> bool {
        (self.write || o.write) && self.start < o.end && o.start < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn only_overlaps_with_a_write_keep_requests_apart() {
        let w = |start, end| Span {
            write: true,
            start,
            end,
        };
        let r = |start, end| Span {
            write: false,
            start,
            end,
        };
        assert!(w(0, 512).conflicts(&r(0, 1024)));
        assert!(r(0, 1024).conflicts(&w(512, 1024)));
        assert!(w(0, 4096).conflicts(&w(4095, 8192)));
        assert!(!r(0, 4096).conflicts(&r(0, 4096)), "reads share");
        assert!(
            !w(0, 512).conflicts(&w(512, 1024)),
            "adjacent writes do not overlap"
        );
        assert!(!w(0, 512).conflicts(&r(4096, 8192)));
    }
}
