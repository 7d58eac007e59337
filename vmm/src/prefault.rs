//! Pre-faulting guest RAM on the host: `MADV_POPULATE_WRITE` over the destinations of a
//! fadump registration, so the copy at crash time writes to pages the host already backs
//! (the firmware bench measured first-touch copies at 4–8× a warm memcpy). Guest RAM is not
//! written: the pages are only allocated and mapped.

use firmware::range::GuestRange;
use log::{debug, info, warn};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

use crate::memory::{host_page_size, GuestMemory};

/// `MADV_POPULATE_WRITE` (Linux 5.14); spelled out because libc only has it on some targets.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// The most one `madvise` populates before the worker looks for a newer request or a stop.
const CHUNK: u64 = 32 << 20;

/// Populates every page of `ranges` that lies in guest RAM; returns the bytes advised. Parts
/// outside RAM are skipped (the firmware validated the ranges, this stays safe regardless).
pub fn populate_write(mem: &GuestMemory, ranges: &[GuestRange]) -> u64 {
    populate_write_until(mem, ranges, &|| false)
}

/// [`populate_write`] in chunks of at most `CHUNK` bytes, giving up as soon as `stop()`
/// says so (checked before every chunk).
pub fn populate_write_until(
    mem: &GuestMemory,
    ranges: &[GuestRange],
    stop: &dyn Fn() -> bool,
) -> u64 {
    let page = host_page_size();
    let mut done = 0;
    for r in ranges {
        let mut at = r.start();
        let end = r.end();
        while at < end {
            if stop() {
                return done;
            }
            let Some(region) = mem.find_region(GuestAddress(at)) else {
                break;
            };
            let region_start = region.start_addr().0;
            let region_end = region_start.saturating_add(region.len());
            let chunk_end = end.min(region_end).min(at.saturating_add(CHUNK));
            let off = at - region_start;
            let Ok(host) = region.get_host_address(MemoryRegionAddress(off)) else {
                break;
            };
            let host = host as usize as u64;
            let start = host & !(page - 1);
            let stop = (host + (chunk_end - at)).div_ceil(page) * page;
            // Stay inside the region's mapping after rounding.
            let map_start = host - off;
            let map_end = map_start + region.len().div_ceil(page) * page;
            let (start, stop) = (start.max(map_start), stop.min(map_end));
            // SAFETY: [start, stop) lies inside the mmap'd region backing guest RAM (clamped
            // above); MADV_POPULATE_WRITE only faults pages in and never changes their content.
            let rc = unsafe {
                libc::madvise(
                    start as usize as *mut libc::c_void,
                    (stop - start) as usize,
                    MADV_POPULATE_WRITE,
                )
            };
            if rc != 0 {
                warn!(
                    "fadump: pre-faulting {:#x}..{:#x}: {}",
                    at,
                    chunk_end,
                    std::io::Error::last_os_error()
                );
                break;
            }
            debug!("fadump: pre-faulted {at:#x}..{chunk_end:#x}");
            done += chunk_end - at;
            at = chunk_end;
        }
    }
    done
}

/// The one pre-fault worker of a machine. A fadump registration hands it the destinations;
/// a newer request replaces a pending one and stops the one in progress at its next chunk, so
/// a guest looping REGISTER/UNREGISTER costs one host thread and at most one populate at a
/// time, never a thread per call. Dropping it stops and joins the thread.
///
/// With resident ranges (`--memory prefault=on`: all of boot RAM) it populates those from the
/// start, and every request covers them after its own ranges: the capture kernel, which runs
/// in memory the crashed kernel may never have touched, then finds it backed.
pub struct Prefaulter {
    shared: Arc<(Mutex<Slot>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    resident: Vec<GuestRange>,
}

#[derive(Debug, Default)]
struct Slot {
    /// Bumped by every request and by drop: a run whose generation is stale stops.
    generation: u64,
    pending: Option<Vec<GuestRange>>,
    quit: bool,
    /// Counters for tests and logs.
    runs_started: u64,
    runs_finished: u64,
    last_finished_generation: u64,
}

impl Prefaulter {
    /// Starts the worker over `mem`; it begins with `resident` (empty: it waits for a
    /// request).
    pub fn new(mem: GuestMemory, resident: Vec<GuestRange>) -> std::io::Result<Self> {
        let shared = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fadump-prefault".into())
            .spawn(move || Self::work(&worker, &mem))?;
        let p = Prefaulter {
            shared,
            thread: Some(thread),
            resident,
        };
        if !p.resident.is_empty() {
            p.request(Vec::new());
        }
        Ok(p)
    }

    /// Pre-fault `ranges` (the newest registration's destinations), then the resident ranges,
    /// replacing any earlier request.
    pub fn request(&self, mut ranges: Vec<GuestRange>) {
        ranges.extend_from_slice(&self.resident);
        let (lock, cv) = &*self.shared;
        let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
        slot.generation = slot.generation.wrapping_add(1);
        slot.pending = Some(ranges);
        cv.notify_all();
    }

    /// Drops a pending request and stops the one in progress at its next chunk, without
    /// waiting for it (the crash path calls this before moving pages: a populate still running
    /// only faults pages in, which changes no content).
    pub fn cancel(&self) {
        let (lock, cv) = &*self.shared;
        let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
        slot.generation = slot.generation.wrapping_add(1);
        slot.pending = None;
        cv.notify_all();
    }

    fn work(shared: &(Mutex<Slot>, Condvar), mem: &GuestMemory) {
        let (lock, cv) = shared;
        loop {
            let (generation, ranges) = {
                let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if slot.quit {
                        return;
                    }
                    if let Some(r) = slot.pending.take() {
                        slot.runs_started += 1;
                        break (slot.generation, r);
                    }
                    slot = cv.wait(slot).unwrap_or_else(|e| e.into_inner());
                }
            };
            let t0 = Instant::now();
            let stale = || {
                let slot = lock.lock().unwrap_or_else(|e| e.into_inner());
                slot.quit || slot.generation != generation
            };
            let bytes = populate_write_until(mem, &ranges, &stale);
            let cancelled = stale();
            let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
            slot.runs_finished += 1;
            if cancelled {
                debug!("fadump: pre-fault superseded after {} MiB", bytes >> 20);
            } else {
                slot.last_finished_generation = generation;
                info!(
                    "pre-faulted {} MiB of guest RAM ({} ranges) in {:.1} ms",
                    bytes >> 20,
                    ranges.len(),
                    t0.elapsed().as_secs_f64() * 1e3
                );
            }
            cv.notify_all();
        }
    }

    /// Waits until the newest request has been carried out in full (tests).
    #[cfg(test)]
    fn wait_idle(&self) -> (u64, u64) {
        let (lock, cv) = &*self.shared;
        let mut slot = lock.lock().unwrap();
        while slot.pending.is_some() || slot.last_finished_generation != slot.generation {
            slot = cv.wait(slot).unwrap();
        }
        (slot.runs_started, slot.runs_finished)
    }
}

impl Drop for Prefaulter {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.shared;
            let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
            slot.quit = true;
            slot.generation = slot.generation.wrapping_add(1);
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Prefaulter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefaulter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemory {
        GuestMemory::from_ranges(&[(GuestAddress(0), 4 << 20), (GuestAddress(8 << 20), 4 << 20)])
            .unwrap()
    }

    /// Resident bytes of the mapping behind guest range [at, at+len), via mincore.
    fn resident(mem: &GuestMemory, at: u64, len: u64) -> u64 {
        let host = mem.get_host_address(GuestAddress(at)).unwrap() as usize;
        let page = host_page_size();
        let pages = len.div_ceil(page) as usize;
        let mut vec = vec![0u8; pages];
        // SAFETY: the range is inside one mapped region of `mem`; `vec` has one byte per page.
        let rc =
            unsafe { libc::mincore(host as *mut libc::c_void, len as usize, vec.as_mut_ptr()) };
        assert_eq!(rc, 0);
        vec.iter().filter(|&&b| b & 1 == 1).count() as u64 * page
    }

    // qemu-user (how CI runs the powerpc64 unit tests) accepts madvise hints and ignores them.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user ignores MADV_POPULATE_WRITE; runs on x86_64 and real ppc64 hosts"
    )]
    #[test]
    fn populates_only_the_given_ranges_and_keeps_content() {
        let m = mem();
        let r = GuestRange::new(0x10_0000, 0x4_0000).unwrap();
        assert_eq!(resident(&m, 0x10_0000, 0x4_0000), 0);
        assert_eq!(populate_write(&m, &[r]), 0x4_0000);
        assert_eq!(resident(&m, 0x10_0000, 0x4_0000), 0x4_0000);
        assert_eq!(resident(&m, 0x20_0000, 0x4_0000), 0);
        let mut b = [0xffu8; 16];
        vm_memory::Bytes::read_slice(&m, &mut b, GuestAddress(0x10_0000)).unwrap();
        assert_eq!(b, [0u8; 16]);
    }

    #[test]
    fn a_stop_request_ends_the_populate_between_chunks() {
        let m = GuestMemory::from_ranges(&[(GuestAddress(0), 3 * CHUNK as usize)]).unwrap();
        let r = GuestRange::new(0, 3 * CHUNK).unwrap();
        let calls = std::cell::Cell::new(0);
        let done = populate_write_until(&m, &[r], &|| {
            calls.set(calls.get() + 1);
            calls.get() > 1
        });
        assert_eq!(done, CHUNK);
    }

    /// Threads of this process named like the pre-fault worker.
    fn prefault_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.trim() == "fadump-prefault")
            .count()
    }

    #[test]
    fn a_register_storm_uses_one_worker_and_ends_on_the_newest_request() {
        let m = GuestMemory::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let p = Prefaulter::new(m.clone(), Vec::new()).unwrap();
        for i in 0..1000u64 {
            p.request(vec![GuestRange::new((i % 16) << 20, 1 << 20).unwrap()]);
            // One worker, whatever the guest does (the tests running beside this one make
            // at most two more); a thread per request would show hundreds here.
            assert!(prefault_threads() <= 3);
        }
        let (started, finished) = p.wait_idle();
        assert!(started <= 1000);
        assert_eq!(started, finished);
        if cfg!(not(target_arch = "powerpc64")) {
            // The newest request (i = 999: MiB 7) was carried out in full.
            assert_eq!(resident(&m, 7 << 20, 1 << 20), 1 << 20);
        }
        drop(p); // joins the worker
    }

    #[test]
    fn resident_ranges_are_populated_from_the_start_and_after_every_request() {
        let m = GuestMemory::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let ram = GuestRange::new(0, 32 << 20).unwrap();
        let p = Prefaulter::new(m.clone(), vec![ram]).unwrap();
        p.wait_idle();
        if cfg!(not(target_arch = "powerpc64")) {
            assert_eq!(resident(&m, 0, 32 << 20), 32 << 20);
            // Only what was asked (8 MiB away from its end: a huge page may pass it).
            assert_eq!(resident(&m, 40 << 20, 4 << 20), 0);
        }
        // A registration's destination outside the resident range: both are covered.
        p.request(vec![GuestRange::new(48 << 20, 1 << 20).unwrap()]);
        p.wait_idle();
        if cfg!(not(target_arch = "powerpc64")) {
            assert_eq!(resident(&m, 48 << 20, 1 << 20), 1 << 20);
            assert_eq!(resident(&m, 0, 32 << 20), 32 << 20);
        }
    }

    #[test]
    fn dropping_the_worker_mid_run_returns() {
        let m = GuestMemory::from_ranges(&[(GuestAddress(0), 256 << 20)]).unwrap();
        let p = Prefaulter::new(m, Vec::new()).unwrap();
        p.request(vec![GuestRange::new(0, 256 << 20).unwrap()]);
        drop(p);
    }

    #[test]
    fn a_range_across_a_hole_populates_the_ram_part_and_stops() {
        let m = mem();
        let r = GuestRange::new(0x3f_0000, 0x2_0000).unwrap();
        assert_eq!(populate_write(&m, &[r]), 0x1_0000);
    }
}
