//! Fuzz harness: virtio-blk *as a device* (`VirtioBlk` and its I/O thread), driven through
//! its BAR the way a hostile guest can: feature negotiation and status writes, queue
//! configuration (any size, rings overlapping each other, straddling the RAM hole or outside
//! RAM), arbitrary descriptor tables and avail rings (indirect tables, nested indirect, loops,
//! zero and huge lengths), notifications by MMIO and by the ioeventfd, device resets and the
//! fadump's pause/resume at any point. Guest RAM is 36 KiB in two regions with a hole between;
//! the disk is 8 KiB in a tmpfs file, opened with one lane or with [`LANES`] (then requests run
//! in batches on helper threads).
//!
//! **A ring that changes while the device reads it.** A notify does not wait: every step after
//! it until the next `settle` runs on this thread while the device's I/O thread serves the
//! ring, so descriptor, avail and header writes race with the device exactly as a second
//! vCPU's stores would (a concurrent writer: the real threat, a guest that rewrites a chain
//! the device is reading). With a budget of one request per round, `pause` lets the script
//! rewrite the ring between two rounds, reproducibly at a round boundary. Both are
//! nondeterministic in where the device is; the invariants below are written to hold whatever
//! it did.
//!
//! **Invariants** (a broken one is a panic, the fuzzer's finding):
//! * the device writes guest memory only inside the used ring of a queue it was given and
//!   inside device-writable descriptor buffers: the harness keeps a model of RAM (its own
//!   writes applied), and every byte that differs from it must be in the union, over every
//!   point where the harness looked (after each of its own writes and each wait), of the used
//!   rings and of the write-only buffers of the descriptor table and of the indirect tables it
//!   points at (a nested indirect table is not followed: a device that wrote through one is a
//!   finding). Not judged once a table entry lies where the device itself may write (a used
//!   ring laid over the descriptor table, a read buffer over a table): the device's own
//!   used-ring stores can then forge a write-only descriptor, serve it and overwrite it
//!   within one round, between two looks (found so: the used ring's NO_NOTIFY flag became a
//!   length of 1, a head index the WRITE flag, and the device wrote a status byte at 0);
//! * after `pause` or a reset returns and until `resume` or the next configuration write,
//!   neither guest memory nor the disk changes;
//! * the disk keeps its size (writes stay inside the capacity), a read-only disk never
//!   changes, and a writable one changes only if a readable descriptor that can start an OUT
//!   header was seen;
//! * every used element the device wrote (also not judged on forgeable tables) names a head inside the queue and reports at most the
//!   device-writable bytes its chain had;
//! * `settle` answers (every wait of the device is bounded) and no input takes long (the
//!   campaign's per-input timeout catches a reset or pause that does not return);
//! * host threads are bounded while the device runs (its thread + one helper per lane) and
//!   back to the count before once it is dropped; memory is bounded by the campaign's RSS and
//!   allocation limits.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm::devices::virtio_blk::common::*;
use vmm::devices::virtio_blk::disk::{Disk, LANES};
use vmm::devices::virtio_blk::{VirtioBlk, BAR, DEVICE_OFFSET, ISR_OFFSET, NOTIFY_OFFSET};
use vmm::devices::PciDevice;

use crate::input::Input;
use crate::ram;
use crate::scratch;

/// Guest RAM: 32 KiB, a 4 KiB hole, 4 KiB.
const RAM: [(u64, usize); 2] = [(0, 0x8000), (0x9000, 0x1000)];
const RAM_BYTES: usize = 0x9000;
const DISK_LEN: u64 = 0x2000;
/// Where the script's standard layout puts things.
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
const INDIRECT: u64 = 0x3000;
const BUFS: u64 = 0x4000;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;
/// Most steps one input runs.
const MAX_STEPS: usize = 64;
/// Largest table entry count the harness walks (bounded by RAM anyway).
const MAX_TABLE: u64 = (RAM_BYTES / 16) as u64;

/// How deep one input got (the replay test asserts the corpus reaches these).
#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    /// Queues the device accepted and started (ready at DRIVER_OK).
    pub started: u32,
    /// Used elements the device wrote.
    pub used: u32,
    /// Quiescent points by which the device had written guest memory (used ring or data).
    pub guest_writes: u32,
    /// Inputs where the disk changed.
    pub disk_writes: u32,
    /// Used elements of chains that went through an indirect table.
    pub indirect: u32,
    pub pauses: u32,
    pub resets: u32,
    /// Inputs whose tables lie where the device writes (containment not judged).
    pub forgeable: u32,
    /// Steps that ran while the I/O thread may have been serving (after a notify, before a
    /// settle).
    pub racing_steps: u32,
}

/// The disk's backing file (one per process, reset before each input).
fn backing() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| scratch::file("blkdev"))
}

fn disk_bytes(f: &File) -> Vec<u8> {
    scratch::bytes(f)
}

fn disk_pattern() -> Vec<u8> {
    (0..DISK_LEN).map(|i| (i * 7 % 251) as u8).collect()
}

/// `FUZZ_TRACE=1` prints every step and guest store (to read a finding).
fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// The thread count once it is at most `bound`, or the count after a second: a joined thread
/// stays in /proc until it has run its own exit, which on a loaded host (the fuzzer runs
/// niced) can take milliseconds after the join returned.
fn threads_at_most(bound: usize) -> usize {
    let mut t = threads();
    for _ in 0..1000 {
        if t <= bound {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        t = threads();
    }
    t
}

/// Index of a guest address in the model (RAM regions laid end to end).
fn index(addr: u64) -> Option<usize> {
    let mut base = 0usize;
    for (s, l) in RAM {
        if addr >= s && addr - s < l as u64 {
            return Some(base + (addr - s) as usize);
        }
        base += l;
    }
    None
}

/// The queue layout the device had when the harness looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Layout {
    desc: u64,
    avail: u64,
    used: u64,
    size: u16,
}

struct Harness {
    mem: GuestMemoryMmap,
    dev: VirtioBlk,
    /// RAM as the harness wrote it.
    model: Vec<u8>,
    /// Bytes the harness stored since the last quiescent point.
    touched: Vec<bool>,
    /// Bytes the device may have written (used rings, write-only buffers seen).
    allowed: Vec<bool>,
    /// The write-only buffers alone (data the device may put anywhere in them, used ring
    /// included).
    data: Vec<bool>,
    marked: HashSet<(u64, u64)>,
    layouts: HashSet<Layout>,
    /// Per (descriptor table, head): the most device-writable bytes its chain ever had.
    writable: HashMap<(u64, u16), u64>,
    /// A readable descriptor that may start an OUT header was seen.
    out_seen: bool,
    /// A descriptor-table entry lies where the device may write (a used ring or a write-only
    /// buffer over a table): the device's own stores can then forge descriptors between two
    /// looks, so containment and used lengths are not judged for the rest of the input.
    forgeable: bool,
    /// Every table entry as last seen (a later store may be seen torn against it).
    last: HashMap<u64, (u64, u32, u16)>,
    /// Table entries and readable buffers the current look found.
    entries: Vec<u64>,
    readable: Vec<(u64, u64)>,
    readable_checked: HashSet<(u64, u64, usize)>,
    /// RAM and disk while the device is paused or reset (no change allowed).
    frozen: Option<(Vec<u8>, Vec<u8>)>,
    paused: bool,
    /// A notify since the last settle: the I/O thread may be running.
    racing: bool,
    avail_idx: u16,
    threads_before: usize,
    reached: Reached,
}

impl Harness {
    fn read_ram(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(RAM_BYTES);
        for b in ram::snapshot(&self.mem, &RAM) {
            v.extend_from_slice(&b);
        }
        v
    }

    fn mmio_write(&mut self, off: u64, len: usize, v: u64) {
        self.dev.mmio_write(BAR, off, &v.to_le_bytes()[..len]);
    }

    fn mmio_read(&mut self, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        self.dev.mmio_read(BAR, off, &mut b[..len]);
        u64::from_le_bytes(b)
    }

    /// A guest store: the part of `bytes` that lands in RAM is written and modelled.
    fn write(&mut self, addr: u64, bytes: &[u8]) {
        if trace() {
            eprintln!("  write {addr:#x} {bytes:02x?}");
        }
        // One copy per RAM region (a descriptor goes in as one 16-byte store, so a device
        // reading it meanwhile sees each field old or new, never a byte mix of one field).
        let mut base = 0usize;
        for (s, l) in RAM {
            let end = s + l as u64;
            let (a, b) = (
                addr.max(s),
                addr.saturating_add(bytes.len() as u64).min(end),
            );
            if a < b {
                let src = &bytes[(a - addr) as usize..(b - addr) as usize];
                self.mem.write_slice(src, GuestAddress(a)).unwrap();
                let ix = base + (a - s) as usize;
                self.model[ix..ix + src.len()].copy_from_slice(src);
                self.touched[ix..ix + src.len()].fill(true);
                if let Some((ram, _)) = &mut self.frozen {
                    ram[ix..ix + src.len()].copy_from_slice(src);
                }
            }
            base += l;
        }
        if self.racing {
            self.reached.racing_steps += 1;
        }
        self.observe();
    }

    fn read_desc(&self, table: u64, i: u64) -> Option<(u64, u32, u16, u16)> {
        let at = table.checked_add(16 * i)?;
        let mut b = [0u8; 16];
        self.mem.read_slice(&mut b, GuestAddress(at)).ok()?;
        Some((
            u64::from_le_bytes(b[0..8].try_into().unwrap()),
            u32::from_le_bytes(b[8..12].try_into().unwrap()),
            u16::from_le_bytes(b[12..14].try_into().unwrap()),
            u16::from_le_bytes(b[14..16].try_into().unwrap()),
        ))
    }

    fn allow(&mut self, addr: u64, len: u64, data: bool) {
        if len == 0 || !self.marked.insert((addr, len)) {
            return;
        }
        let mut base = 0usize;
        for (s, l) in RAM {
            let end = s + l as u64;
            let (a, b) = (addr.max(s), addr.saturating_add(len).min(end));
            if a < b {
                let from = base + (a - s) as usize;
                self.allowed[from..from + (b - a) as usize].fill(true);
                if data {
                    self.data[from..from + (b - a) as usize].fill(true);
                }
            }
            base += l;
        }
    }

    /// Notes one descriptor the device may use: a write-only buffer is allowed, a readable one
    /// may hold an OUT header.
    fn note(&mut self, addr: u64, len: u32, flags: u16) {
        if flags & F_WRITE != 0 {
            self.allow(addr, u64::from(len), true);
        } else if flags & F_INDIRECT == 0 && len > 0 {
            if !self.out_seen {
                self.readable.push((addr, u64::from(len)));
            }
            let kind = self.mem.read_obj::<u32>(GuestAddress(addr)).ok();
            // A header split into pieces shorter than its type field may still say OUT.
            if len < 4 || kind == Some(VIRTIO_BLK_T_OUT) {
                self.out_seen = true;
            }
        }
    }

    /// A descriptor rewritten while the device may read it can be seen torn, each field old or
    /// new: every such mix is noted.
    fn torn(&mut self, at: u64, now: (u64, u32, u16)) {
        let Some(old) = self.last.insert(at, now) else {
            return;
        };
        // Only a store made while the I/O thread may run can be read torn.
        if old == now || !self.racing {
            return;
        }
        for (a, l, f) in [
            (old.0, now.1, now.2),
            (now.0, old.1, now.2),
            (old.0, old.1, now.2),
            (now.0, now.1, old.2),
            (old.0, now.1, old.2),
            (now.0, old.1, old.2),
        ] {
            self.note(a, l, f);
        }
    }

    /// An indirect table's entries (not followed further): the sum of its write-only lengths.
    fn scan_indirect(&mut self, addr: u64, len: u32, seen: &mut HashMap<(u64, u32), u64>) -> u64 {
        if let Some(w) = seen.get(&(addr, len)) {
            return *w;
        }
        let mut w = 0u64;
        for i in 0..(u64::from(len) / 16).min(MAX_TABLE) {
            let Some((a, l, f, _)) = self.read_desc(addr, i) else {
                break;
            };
            self.entries.push(addr + 16 * i);
            self.torn(addr + 16 * i, (a, l, f));
            self.note(a, l, f);
            if f & F_WRITE != 0 && f & F_INDIRECT == 0 {
                w += u64::from(l);
            }
        }
        seen.insert((addr, len), w);
        w
    }

    /// Looks at the device's queue and at every table it may read: widens what the device may
    /// write and the per-chain bounds.
    fn observe(&mut self) {
        let q = self.dev.queue();
        if q.ready() {
            self.layouts.insert(Layout {
                desc: q.desc_table(),
                avail: q.avail_ring(),
                used: q.used_ring(),
                size: q.size(),
            });
        }
        let layouts: Vec<Layout> = self.layouts.iter().copied().collect();
        for l in layouts {
            self.allow(l.used, 6 + 8 * u64::from(l.size), false);
            let mut indirect = HashMap::new();
            let mut descs = Vec::with_capacity(usize::from(l.size));
            for i in 0..u64::from(l.size) {
                let d = self.read_desc(l.desc, i);
                self.entries.push(l.desc + 16 * i);
                if let Some((a, len, f, _)) = d {
                    self.torn(l.desc + 16 * i, (a, len, f));
                }
                if let Some((a, len, f, _)) = d {
                    self.note(a, len, f);
                    if f & F_INDIRECT != 0 {
                        self.scan_indirect(a, len, &mut indirect);
                    }
                }
                descs.push(d);
            }
            // Per head: an upper bound of the writable bytes any reading of the chain gives.
            let mut visited = vec![false; usize::from(l.size)];
            for head in 0..l.size {
                let mut w = 0u64;
                let mut at = head;
                visited.fill(false);
                while let Some(Some((a, len, f, next))) = descs.get(usize::from(at)).copied() {
                    if std::mem::replace(&mut visited[usize::from(at)], true) {
                        break;
                    }
                    if f & F_INDIRECT != 0 {
                        w += self.scan_indirect(a, len, &mut indirect);
                        break;
                    }
                    if f & F_WRITE != 0 {
                        w += u64::from(len);
                    }
                    if f & F_NEXT == 0 {
                        break;
                    }
                    at = next;
                }
                let e = self.writable.entry((l.desc, head)).or_default();
                *e = (*e).max(w);
            }
        }
        self.find_forgery();
    }

    fn may_be_written(&self, addr: u64, len: u64) -> bool {
        let mut base = 0usize;
        for (s, l) in RAM {
            let end = s + l as u64;
            let (a, b) = (addr.max(s), addr.saturating_add(len).min(end));
            if a < b {
                let from = base + (a - s) as usize;
                if self.allowed[from..from + (b - a) as usize].contains(&true) {
                    return true;
                }
            }
            base += l;
        }
        false
    }

    /// Whether the device's own stores can change a table entry (forged descriptors) or a
    /// readable buffer (a header it turned into OUT).
    fn find_forgery(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        if !self.forgeable && entries.iter().any(|e| self.may_be_written(*e, 16)) {
            self.forgeable = true;
            self.reached.forgeable += 1;
        }
        let readable = std::mem::take(&mut self.readable);
        let version = self.marked.len();
        for (a, l) in readable {
            if self.out_seen {
                break;
            }
            if self.readable_checked.insert((a, l, version)) && self.may_be_written(a, l) {
                self.out_seen = true;
            }
        }
    }

    /// Every byte the device changed is one it may write.
    fn check_writes(&self, now: &[u8]) {
        // Chunks first (a memcmp each): the byte loop runs only where something changed.
        for (c, (m, n)) in self.model.chunks(256).zip(now.chunks(256)).enumerate() {
            if m == n {
                continue;
            }
            for (i, (m, n)) in m.iter().zip(n).enumerate() {
                let ix = c * 256 + i;
                if m != n && !self.allowed[ix] {
                    let addr = if ix < RAM[0].1 {
                        ix as u64
                    } else {
                        RAM[1].0 + (ix - RAM[0].1) as u64
                    };
                    panic!("the device wrote {addr:#x} ({m:#x} -> {n:#x}), outside every used ring and write-only buffer");
                }
            }
        }
    }

    /// The used elements the device wrote since the last quiescent point (the model was
    /// synced then, so an element that differs from it is the device's store), unless data
    /// of a write-only buffer over the used ring could have put it there.
    fn check_used(&mut self) {
        let q = self.dev.queue();
        if !q.ready() {
            return;
        }
        let (desc, used, size) = (q.desc_table(), q.used_ring(), q.size());
        for slot in 0..u64::from(size) {
            let at = used + 4 + 8 * slot;
            let mut b = [0u8; 8];
            if self.mem.read_slice(&mut b, GuestAddress(at)).is_err() {
                continue;
            }
            let Some(ex) = index(at).filter(|ex| ex + 8 <= RAM[0].1 || *ex >= RAM[0].1) else {
                continue;
            };
            // Skipped: an element the device did not store, one a guest store changed since
            // (the ring overlapping a table the harness rewrote), one data could have made.
            if self.model.get(ex..ex + 8) == Some(&b[..])
                || self
                    .touched
                    .get(ex..ex + 8)
                    .is_none_or(|t| t.contains(&true))
                || self.data.get(ex..ex + 8).is_none_or(|d| d.contains(&true))
            {
                continue;
            }
            let id = u32::from_le_bytes(b[0..4].try_into().unwrap());
            let len = u32::from_le_bytes(b[4..8].try_into().unwrap());
            assert!(
                id < u32::from(size),
                "used element names head {id} of a {size}-entry queue"
            );
            let bound = self.writable.get(&(desc, id as u16)).copied().unwrap_or(0);
            assert!(
                u64::from(len) <= bound,
                "used element for head {id} reports {len} bytes, its chain had at most {bound} writable"
            );
            self.reached.used += 1;
            if self
                .read_desc(desc, u64::from(id))
                .is_some_and(|d| d.2 & F_INDIRECT != 0)
            {
                self.reached.indirect += 1;
            }
        }
    }

    /// The device is quiescent (settled, paused or reset): check everything.
    fn quiescent(&mut self) {
        self.racing = false;
        self.observe();
        let t = threads_at_most(self.threads_before + 1 + LANES);
        assert!(
            t <= self.threads_before + 1 + LANES,
            "{t} threads (before the device: {})",
            self.threads_before
        );
        let now = self.read_ram();
        if !self.forgeable {
            self.check_writes(&now);
            self.check_used();
        }
        // Checked: from here on the model is what memory holds, so the next look sees only
        // the device's new stores (old used elements of a reset queue are not new ones).
        if now != self.model {
            self.reached.guest_writes += 1;
        }
        self.model = now;
        self.touched.fill(false);
    }

    fn freeze(&mut self) {
        self.thaw();
        self.quiescent();
        self.frozen = Some((self.read_ram(), disk_bytes(backing())));
    }

    /// The device was stopped: nothing changed meanwhile but the guest's own stores.
    fn thaw(&mut self) {
        if let Some((ram, disk)) = self.frozen.take() {
            assert!(
                ram == self.read_ram(),
                "guest memory changed while the device was paused or reset"
            );
            assert!(
                disk == disk_bytes(backing()),
                "the disk changed while the device was paused or reset"
            );
        }
    }

    fn reset_tracking(&mut self) {
        self.avail_idx = 0;
    }

    /// A guest-physical address: mostly near the standard layout, sometimes anywhere.
    fn addr(&mut self, input: &mut Input) -> u64 {
        match input.u8() % 8 {
            0 => input.u64(),
            1 => 0x8000 - u64::from(input.u8() % 32), // straddles the hole
            2 => 0xa000 - u64::from(input.u8() % 32), // straddles the end of RAM
            3 => u64::from(input.u16()) % 0xa000,
            4 => INDIRECT + u64::from(input.u16() % 0x1000),
            5 => self.dev.queue().desc_table() + 16 * u64::from(input.u8()),
            6 => self.dev.queue().used_ring() + u64::from(input.u8()),
            _ => BUFS + u64::from(input.u16() % 0x4000),
        }
    }

    /// Linux's bring-up with fuzzed features and layout.
    fn bring_up(&mut self, input: &mut Input) {
        self.thaw();
        let offered = {
            self.mmio_write(DEVICE_FEATURE_SELECT, 4, 0);
            let lo = self.mmio_read(DEVICE_FEATURE, 4);
            self.mmio_write(DEVICE_FEATURE_SELECT, 4, 1);
            lo | self.mmio_read(DEVICE_FEATURE, 4) << 32
        };
        let features = match input.u8() % 4 {
            0 => offered,
            1 => offered & !(1 << 32), // no VERSION_1
            2 => offered | 1 << (input.u8() % 64),
            _ => input.u64(),
        };
        self.mmio_write(DEVICE_STATUS, 1, 0);
        // A reset: from its return the device is quiescent and stays so until the queue runs.
        self.reset_tracking();
        self.paused = false;
        self.freeze();
        let s = u64::from(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
        self.mmio_write(DEVICE_STATUS, 1, s);
        self.mmio_write(DRIVER_FEATURE_SELECT, 4, 0);
        self.mmio_write(DRIVER_FEATURE, 4, features & 0xffff_ffff);
        self.mmio_write(DRIVER_FEATURE_SELECT, 4, 1);
        self.mmio_write(DRIVER_FEATURE, 4, features >> 32);
        let fok = u64::from(VIRTIO_CONFIG_S_FEATURES_OK);
        self.mmio_write(DEVICE_STATUS, 1, s | fok);
        self.mmio_write(QUEUE_SELECT, 2, 0);
        let size = input.pick(&[16u16, 8, 4, 2, 1, 256, 3, 0, 512, 32]);
        self.mmio_write(QUEUE_SIZE, 2, u64::from(size));
        let (desc, avail, used) = match input.u8() % 6 {
            0 | 1 => (DESC, AVAIL, USED),
            2 => (DESC, DESC, DESC),       // all three on one page
            3 => (DESC, AVAIL, DESC + 8),  // used ring over the table
            4 => (0x7ff0, 0x8ff0, 0x9ff8), // straddling the hole and the end
            _ => (self.addr(input), self.addr(input), self.addr(input)),
        };
        for (reg, a) in [
            (QUEUE_DESC, desc),
            (QUEUE_DRIVER, avail),
            (QUEUE_DEVICE, used),
        ] {
            self.mmio_write(reg, 4, a & 0xffff_ffff);
            self.mmio_write(reg + 4, 4, a >> 32);
        }
        self.thaw();
        self.mmio_write(QUEUE_ENABLE, 2, 1);
        let ok = u64::from(VIRTIO_CONFIG_S_DRIVER_OK);
        self.mmio_write(DEVICE_STATUS, 1, s | fok | ok);
        if self.dev.queue().ready() && self.dev.status() & VIRTIO_CONFIG_S_DRIVER_OK as u8 != 0 {
            self.reached.started += 1;
        }
        self.observe();
    }

    /// A well-formed request (header, data, status) on fresh descriptors, directly or through
    /// an indirect table, published and optionally notified.
    fn request(&mut self, input: &mut Input) {
        let kind = input.pick(&[
            VIRTIO_BLK_T_IN,
            VIRTIO_BLK_T_OUT,
            VIRTIO_BLK_T_FLUSH,
            VIRTIO_BLK_T_GET_ID,
            VIRTIO_BLK_T_IN,
            VIRTIO_BLK_T_OUT,
            7,
        ]);
        let sector = input.pick(&[0u64, 1, 15, 16, 3, u64::MAX / 512]);
        let data_len: u32 = input.pick(&[512, 1024, 0, 20, 513, 4096]);
        let pieces = u64::from(input.u8() % 3) + 1;
        let slot = u64::from(input.u8() % 8);
        let hdr_at = BUFS + 0x100 * slot;
        let data_at = BUFS + 0x1000 + 0x400 * slot;
        let status_at = BUFS + 0x900 + slot;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        self.write(hdr_at, &h);
        let data_flags = if kind == VIRTIO_BLK_T_OUT { 0 } else { F_WRITE };
        let mut chain = vec![(hdr_at, 16u32, 0u16)];
        let piece = u64::from(data_len) / pieces;
        for p in 0..pieces {
            let len = if p + 1 == pieces {
                u64::from(data_len) - piece * p
            } else {
                piece
            };
            if len > 0 {
                chain.push((data_at + piece * p, len as u32, data_flags));
            }
        }
        chain.push((status_at, 1, F_WRITE));
        let size = self.dev.queue().size().max(1);
        let table = self.dev.queue().desc_table();
        let first = input.u8();
        let head = u16::from(first) % size;
        if input.bool() {
            // Through an indirect table.
            let at = INDIRECT + 0x200 * u64::from(input.u8() % 8);
            self.put_chain(at, 0, 0xffff, &chain);
            let len = 16 * chain.len() as u32;
            self.put_desc(table, u64::from(head), at, len, F_INDIRECT, 0);
        } else {
            self.put_chain(table, u64::from(head), size, &chain);
        }
        self.publish(head);
        if input.bool() {
            self.mmio_write(NOTIFY_OFFSET, 2, 0);
            self.racing = true;
        }
    }

    fn put_desc(&mut self, table: u64, i: u64, addr: u64, len: u32, flags: u16, next: u16) {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&addr.to_le_bytes());
        b[8..12].copy_from_slice(&len.to_le_bytes());
        b[12..14].copy_from_slice(&flags.to_le_bytes());
        b[14..16].copy_from_slice(&next.to_le_bytes());
        self.write(table.wrapping_add(16 * i), &b);
    }

    /// `chain` at consecutive entries from `first` (wrapping at `size`), linked by NEXT.
    fn put_chain(&mut self, table: u64, first: u64, size: u16, chain: &[(u64, u32, u16)]) {
        let size = u64::from(size.max(1));
        for (k, (a, l, f)) in chain.iter().enumerate() {
            let i = (first + k as u64) % size;
            let last = k + 1 == chain.len();
            let next = ((i + 1) % size) as u16;
            let flags = if last { *f } else { *f | F_NEXT };
            self.put_desc(table, i, *a, *l, flags, next);
        }
    }

    /// Puts `head` in the next avail slot and bumps the avail index.
    fn publish(&mut self, head: u16) {
        let q = self.dev.queue();
        let (avail, size) = (q.avail_ring(), q.size().max(1));
        let slot = u64::from(self.avail_idx % size);
        self.write(avail + 4 + 2 * slot, &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.write(avail + 2, &self.avail_idx.to_le_bytes());
    }

    fn settle(&mut self) {
        assert!(self.dev.settle(), "the device did not settle");
        self.quiescent();
    }

    fn step(&mut self, op: u8, input: &mut Input) {
        if trace() {
            let q = self.dev.queue();
            eprintln!(
                "step {} (queue ready {} size {} desc {:#x} avail {:#x} used {:#x}, status {:#x})",
                op % 16,
                q.ready(),
                q.size(),
                q.desc_table(),
                q.avail_ring(),
                q.used_ring(),
                self.dev.status()
            );
        }
        match op % 16 {
            0 => self.bring_up(input),
            1 => {
                self.thaw();
                let v = input.pick(&[0u8, 1, 3, 0xb, 0xf, 0x40, 0x80, 0x07, 0x0d]);
                let v = if input.u8() % 4 == 0 { input.u8() } else { v };
                self.mmio_write(DEVICE_STATUS, 1, u64::from(v));
                if v == 0 {
                    self.reset_tracking();
                    self.paused = false;
                    self.reached.resets += 1;
                    self.freeze();
                }
            }
            // Any common-configuration access.
            2 => {
                self.thaw();
                let off = u64::from(input.u8() % 0x40);
                let len = input.pick(&[1usize, 2, 4, 8]);
                if input.bool() {
                    let v = input.u64();
                    self.mmio_write(off, len, v);
                    if off == DEVICE_STATUS && len == 1 && v as u8 == 0 {
                        self.reset_tracking();
                        self.paused = false;
                        self.freeze();
                    }
                } else {
                    self.mmio_read(off, len);
                }
            }
            // One descriptor anywhere in the table or an indirect table.
            3 => {
                let table = match input.u8() % 4 {
                    0 | 1 => self.dev.queue().desc_table(),
                    2 => INDIRECT + 0x200 * u64::from(input.u8() % 8),
                    _ => self.addr(input),
                };
                let i = u64::from(input.u8());
                let addr = self.addr(input);
                let len = match input.u8() % 8 {
                    0 => 0,
                    1 => 1,
                    2 => 16 * u32::from(input.u8() % 8 + 1),
                    3 => 512,
                    4 => u32::MAX,
                    5 => input.u32(),
                    6 => 0x1000,
                    _ => u32::from(input.u16()),
                };
                let flags = if input.u8() % 8 == 0 {
                    input.u16()
                } else {
                    u16::from(input.u8() % 8)
                };
                let next = if input.bool() {
                    input.u16()
                } else {
                    u16::from(input.u8() % 16)
                };
                self.put_desc(table, i, addr, len, flags, next);
            }
            // Publish a head, or set the avail index or flags to anything.
            4 => match input.u8() % 4 {
                0 | 1 => {
                    let h = u16::from(input.u8());
                    self.publish(h);
                }
                2 => {
                    self.avail_idx = input.u16();
                    let a = self.dev.queue().avail_ring();
                    self.write(a + 2, &self.avail_idx.to_le_bytes());
                }
                _ => {
                    let f = input.u16();
                    let a = self.dev.queue().avail_ring();
                    self.write(a, &f.to_le_bytes());
                }
            },
            // A request header anywhere.
            5 => {
                let at = self.addr(input);
                let kind = input.pick(&[
                    VIRTIO_BLK_T_IN,
                    VIRTIO_BLK_T_OUT,
                    VIRTIO_BLK_T_FLUSH,
                    VIRTIO_BLK_T_GET_ID,
                    0xdead,
                ]);
                let sector = match input.u8() % 4 {
                    0 => input.u64(),
                    _ => u64::from(input.u8() % 20),
                };
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&kind.to_le_bytes());
                h[8..16].copy_from_slice(&sector.to_le_bytes());
                self.write(at, &h);
            }
            // Raw bytes.
            6 => {
                let at = self.addr(input);
                let n = usize::from(input.u8() % 64);
                let b = input.bytes(n).to_vec();
                self.write(at, &b);
            }
            // Notify by MMIO (the right queue or another value/offset).
            7 => {
                let (off, v) = match input.u8() % 4 {
                    0 => (
                        NOTIFY_OFFSET + u64::from(input.u8() % 8),
                        u64::from(input.u16()),
                    ),
                    _ => (NOTIFY_OFFSET, 0),
                };
                self.mmio_write(off, 2, v);
                self.racing = true;
            }
            // Notify through the ioeventfd (what KVM signals).
            8 => {
                let _ = self.dev.io().kick_fd().write(1);
                self.racing = true;
            }
            9 => self.settle(),
            10 => {
                self.dev.pause();
                self.paused = true;
                self.reached.pauses += 1;
                self.freeze();
            }
            11 => {
                if self.paused {
                    self.thaw();
                }
                self.paused = false;
                self.dev.resume();
                self.racing = true;
            }
            12 => {
                self.dev.reset();
                self.reset_tracking();
                self.paused = false;
                self.reached.resets += 1;
                self.freeze();
            }
            13 => self.dev.io().set_budget(usize::from(input.u8() % 4) + 1),
            14 => self.request(input),
            _ => {
                // Reads: ISR (read-to-clear) or device configuration.
                if input.bool() {
                    self.mmio_read(ISR_OFFSET, 1);
                } else {
                    let off = DEVICE_OFFSET + u64::from(input.u8() % 0x40);
                    let len = input.pick(&[1usize, 2, 4, 8]);
                    self.mmio_read(off, len);
                }
            }
        }
    }
}

pub fn run(data: &[u8]) -> Reached {
    let mut input = Input::new(data);
    let mode = input.u8();
    let readonly = mode & 1 != 0;
    let f = backing();
    f.set_len(0).unwrap();
    (&*f).seek(SeekFrom::Start(0)).unwrap();
    (&*f).write_all(&disk_pattern()).unwrap();
    let disk_before = disk_bytes(f);
    let disk = if mode & 2 != 0 {
        // One lane per request of a batch, as the VMM opens a disk.
        let path = format!("/proc/self/fd/{}", f.as_raw_fd());
        Disk::open(std::path::Path::new(&path), readonly).unwrap()
    } else {
        Disk::from_file(f.try_clone().unwrap(), readonly).unwrap()
    };
    let threads_before = threads();
    let mem = ram::new(&RAM);
    let dev = VirtioBlk::new(mem.clone(), disk, "fuzz-serial").unwrap();
    let mut h = Harness {
        mem,
        dev,
        model: vec![0; RAM_BYTES],
        touched: vec![false; RAM_BYTES],
        allowed: vec![false; RAM_BYTES],
        data: vec![false; RAM_BYTES],
        marked: HashSet::new(),
        layouts: HashSet::new(),
        writable: HashMap::new(),
        out_seen: false,
        forgeable: false,
        last: HashMap::new(),
        entries: Vec::new(),
        readable: Vec::new(),
        readable_checked: HashSet::new(),
        frozen: None,
        paused: false,
        racing: false,
        avail_idx: 0,
        threads_before,
        reached: Reached::default(),
    };
    if mode & 4 != 0 {
        // Start from a running standard queue (saves the fuzzer the bring-up).
        let mut std_up = Input::new(&[0, 0, 0]);
        h.bring_up(&mut std_up);
    }
    for _ in 0..MAX_STEPS {
        let Some(op) = input.op() else { break };
        h.step(op, &mut input);
    }
    // The end: a reset must return and leave everything quiescent, then the thread goes.
    h.dev.reset();
    h.quiescent();
    let (out_seen, mut reached) = (h.out_seen, h.reached);
    drop(h);
    let t = threads_at_most(threads_before);
    assert!(
        t <= threads_before,
        "{t} threads left after the device was dropped (before: {threads_before})"
    );
    let disk_after = disk_bytes(f);
    assert_eq!(disk_after.len() as u64, DISK_LEN, "the disk changed size");
    if disk_after != disk_before {
        assert!(!readonly, "a read-only disk was written");
        assert!(out_seen, "the disk changed with no OUT header in sight");
        reached.disk_writes += 1;
    }
    reached
}
