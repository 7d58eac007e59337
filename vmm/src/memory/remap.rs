//! Zero-copy fadump preservation: the firmware's boot-memory [`Move`]s carried out by moving the
//! host pages under the fixed guest mapping (`mremap`) instead of copying them.
//!
//! The guest mapping (one `GuestMemoryMmap`, one KVM memslot) never changes address: only the
//! pages behind it move. KVM learns of every move through its MMU notifier (`KVM_CAP_SYNC_MMU`:
//! the old partition-scoped translations are invalidated, the memslot's `userspace_addr` stays
//! valid and the next guest access faults the new page in), and vm-memory keeps no host
//! pointers beyond the mapping's base. Per move:
//!
//! * the part before the first and after the last whole host page is copied (a page that
//!   extends past the destination would clobber what follows it: Linux's crash info header);
//! * the whole pages in between are cut where a VMA ends on either side (`mremap` refuses a
//!   source that crosses one) and each chunk is moved:
//!   - [`Mode::Swap`]: park the source's pages in a scratch range, move the destination's
//!     pages to the source (already populated by the pre-fault worker, so the capture
//!     kernel's boot memory needs no host zeroing), then the parked pages to the destination.
//!     Every move lands in a hole: KVM's MMU notifier walks every page of an invalidated range
//!     (an empty one too), so each range is walked once, not twice. Between the steps parts
//!     of guest RAM are unmapped, which is why nothing but this thread may touch it;
//!   - [`Mode::Zero`]: only the middle step; the source refaults as zero pages;
//! * `keep` (in-place sections, later sources) is copied back from the destination.
//!
//! A chunk whose move fails is copied instead, after the hole a failed `mremap` can leave is
//! mapped again. If not even a fresh anonymous mapping can be put back, guest RAM would have a
//! hole and the process aborts rather than run on with one.
//!
//! Only with every vCPU stopped and no device thread touching guest memory: a vCPU or device
//! writing while pages move could land its write in a page that is about to move away.

use std::ffi::c_void;

use firmware::fadump::{Move, Outcome, Preserver};
use firmware::memory::{self as guest, CopyError, MemoryError};
use firmware::GuestRange;
use log::{debug, error, warn};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use super::{host_page_size, GuestMemory};

/// Most VMA-bounded chunks one move is cut into before it is copied instead: bounds the
/// syscalls and the VMAs a guest can make the VMM create by registering odd layouts.
const MAX_CHUNKS: usize = 64;

/// How the source is left after its pages moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Swap through a scratch range: the source gets the destination's old pages.
    Swap,
    /// Move only: the source refaults as zero pages (the destination's old pages are freed).
    Zero,
}

/// What the preserver did, for the log and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemapStats {
    /// Chunks moved by `mremap`.
    pub chunks: u64,
    /// `mremap` calls made.
    pub syscalls: u64,
    /// Chunks or moves copied because they could not be moved.
    pub fallbacks: u64,
    /// Time spent in the `mremap` calls (KVM's invalidations run inside them).
    pub moving: std::time::Duration,
}

/// A [`Preserver`] that moves host pages.
#[derive(Debug)]
pub struct RemapPreserver {
    mode: Mode,
    page: u64,
    /// The scratch range is placed congruent to the destination modulo this (the host's huge
    /// page size), so parked huge pages move as whole PMDs.
    huge: u64,
    /// Counts, over every move so far.
    pub stats: RemapStats,
}

impl RemapPreserver {
    /// A preserver in `mode`; `huge` is the host's huge-page size (0 or 1 without THP).
    pub fn new(mode: Mode, huge: u64) -> Self {
        Self {
            mode,
            page: host_page_size(),
            huge: huge.max(1),
            stats: RemapStats::default(),
        }
    }
}

/// One side of a move inside one region: guest and host address.
#[derive(Debug, Clone, Copy)]
struct Span {
    src: u64,
    dst: u64,
    len: u64,
    hs: u64,
    hd: u64,
}

impl Span {
    fn sub(&self, off: u64, len: u64) -> Span {
        Span {
            src: self.src + off,
            dst: self.dst + off,
            len,
            hs: self.hs + off,
            hd: self.hd + off,
        }
    }
}

impl Preserver<GuestMemory> for RemapPreserver {
    fn preserve(
        &mut self,
        mem: &GuestMemory,
        mv: &Move,
        keep: &[GuestRange],
    ) -> Result<Outcome, CopyError> {
        let mut out = Outcome::default();
        for span in spans(mem, mv)? {
            out.add(self.preserve_span(mem, span)?);
        }
        // What must stay as it was is copied back from its copy.
        for k in keep {
            let Some(both) = intersection(&mv.src, k) else {
                continue;
            };
            let from = GuestRange::new(mv.dst + (both.start() - mv.src.start()), both.len())
                .expect("inside the destination");
            out.copied += guest::copy_within(mem, from, both.start())?;
        }
        Ok(out)
    }

    /// Whole host pages are dropped (`MADV_DONTNEED`: private anonymous memory reads as zero
    /// afterwards); partial pages at either end are written.
    fn zero(&mut self, mem: &GuestMemory, r: GuestRange) -> Result<(), MemoryError> {
        let page = self.page;
        let Some(region) = mem
            .find_region(GuestAddress(r.start()))
            .filter(|g| g.start_addr().0 + g.len() >= r.end())
        else {
            return guest::zero_fill(mem, r.start(), r.len());
        };
        let host = region.as_ptr() as u64 + (r.start() - region.start_addr().0);
        let head = ((page - host % page) % page).min(r.len());
        let body = (r.len() - head) / page * page;
        if body == 0 {
            return guest::zero_fill(mem, r.start(), r.len());
        }
        // SAFETY: [host + head, + body) is whole host pages inside guest RAM's private
        // anonymous mapping (the range lies in this one region); MADV_DONTNEED only replaces
        // their content with zeros, which is what this function promises. Every vCPU is
        // stopped and no other thread touches guest memory.
        let rc = unsafe {
            libc::madvise(
                (host + head) as *mut c_void,
                body as usize,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            return guest::zero_fill(mem, r.start(), r.len());
        }
        guest::zero_fill(mem, r.start(), head)?;
        guest::zero_fill(mem, r.start() + head + body, r.len() - head - body)
    }
}

impl RemapPreserver {
    fn preserve_span(&mut self, mem: &GuestMemory, s: Span) -> Result<Outcome, CopyError> {
        let page = self.page;
        if s.hd.abs_diff(s.hs) % page != 0 {
            debug!(
                "fadump: remap: {:#x} -> {:#x} not page-congruent: copied",
                s.src, s.dst
            );
            self.stats.fallbacks += 1;
            return copy(mem, s);
        }
        let head = ((page - s.hs % page) % page).min(s.len);
        let body = (s.len - head) / page * page;
        let tail = s.len - head - body;
        let mut out = Outcome::default();
        for part in [s.sub(0, head), s.sub(head + body, tail)] {
            if part.len > 0 {
                out.add(copy(mem, part)?);
            }
        }
        if body > 0 {
            out.add(self.move_body(mem, s.sub(head, body))?);
        }
        Ok(out)
    }

    /// Moves whole host pages, cut at VMA boundaries; copies what cannot move.
    fn move_body(&mut self, mem: &GuestMemory, b: Span) -> Result<Outcome, CopyError> {
        let chunks = match vma_cuts(b) {
            Ok(c) if c.len() <= MAX_CHUNKS => c,
            Ok(c) => {
                warn!(
                    "fadump: remap: {:#x}+{:#x} spans {} mappings: copied",
                    b.src,
                    b.len,
                    c.len()
                );
                self.stats.fallbacks += 1;
                return copy(mem, b);
            }
            Err(e) => {
                warn!("fadump: remap: {e}: copied");
                self.stats.fallbacks += 1;
                return copy(mem, b);
            }
        };
        let mut out = Outcome::default();
        for (off, len) in chunks {
            let c = b.sub(off, len);
            let t = std::time::Instant::now();
            let moved = match self.mode {
                Mode::Swap => self.swap(c),
                Mode::Zero => self.move_only(c),
            };
            self.stats.moving += t.elapsed();
            match moved {
                Ok(()) => {
                    self.stats.chunks += 1;
                    out.remapped += len;
                }
                Err(e) => {
                    warn!(
                        "fadump: remap of {:#x}+{len:#x} to {:#x} failed ({e}): copied",
                        c.src, c.dst
                    );
                    self.stats.fallbacks += 1;
                    out.add(copy(mem, c)?);
                }
            }
        }
        Ok(out)
    }

    /// The three-step swap through a scratch range (module documentation). Each range is
    /// moved out once and every move lands in a hole, so KVM walks each range's pages once
    /// (its MMU notifier loops over every page of an invalidated range, also an empty one).
    fn swap(&mut self, c: Span) -> std::io::Result<()> {
        let scratch = Scratch::reserve(c.len, c.hd % self.huge, self.huge)?;
        let s = scratch.at;
        // 1. Park the crash data; the source stays mapped, empty (never a hole in guest RAM:
        //    another thread's mmap could take a hole and a later MREMAP_FIXED would replace
        //    that mapping). On failure the data is where it was.
        self.stats.syscalls += 1;
        if let Err(e) = mremap_fixed(c.hs, c.len, s, true) {
            scratch.release_around();
            return Err(e);
        }
        // 2. Boot memory gets the destination's old (pre-faulted) pages; the destination stays
        //    mapped, empty.
        self.stats.syscalls += 1;
        if let Err(e) = mremap_fixed(c.hd, c.len, c.hs, true) {
            // The destination is intact: put the data back, or failing that straight into
            // the destination (then the source gets fresh pages).
            self.stats.syscalls += 1;
            if mremap_fixed(s, c.len, c.hs, false).is_ok() {
                scratch.release_around();
                return Err(e);
            }
            self.stats.syscalls += 1;
            let r = mremap_fixed(s, c.len, c.hd, false);
            map_fresh_or_abort(c.hs, c.len);
            scratch.release_around();
            return r;
        }
        // 3. The crash data into the destination, still without a copy.
        self.stats.syscalls += 1;
        if let Err(e) = mremap_fixed(s, c.len, c.hd, false) {
            // Give the data back to the source (over the pages step 2 put there) and fresh
            // pages to the destination; the caller copies.
            self.stats.syscalls += 1;
            if mremap_fixed(s, c.len, c.hs, false).is_err() {
                error!(
                    "fadump: remap: the crash data of {:#x}+{:#x} is lost",
                    c.src, c.len
                );
                map_fresh_or_abort(c.hs, c.len);
            }
            map_fresh_or_abort(c.hd, c.len);
            scratch.release_around();
            return Err(e);
        }
        scratch.release_around();
        Ok(())
    }

    /// Step 2 only: the source is left empty (zero on the next touch).
    fn move_only(&mut self, c: Span) -> std::io::Result<()> {
        self.stats.syscalls += 1;
        mremap_fixed(c.hs, c.len, c.hd, true).inspect_err(|_| {
            // The destination may be a hole now; its old content does not matter.
            map_fresh_or_abort(c.hd, c.len);
        })
    }
}

/// `src ∩ other`, when they share a byte.
fn intersection(a: &GuestRange, b: &GuestRange) -> Option<GuestRange> {
    GuestRange::from_bounds(a.start().max(b.start()), a.end().min(b.end()))
        .filter(|r| !r.is_empty())
}

/// Copies a span (guest addresses; both checked as RAM).
fn copy(mem: &GuestMemory, s: Span) -> Result<Outcome, CopyError> {
    let src = guest::range(s.src, s.len).map_err(CopyError::Source)?;
    let n = guest::copy_within(mem, src, s.dst)?;
    Ok(Outcome {
        remapped: 0,
        copied: n,
    })
}

/// The move cut into pieces that lie in one region on each side, with their host addresses.
fn spans(mem: &GuestMemory, mv: &Move) -> Result<Vec<Span>, CopyError> {
    let region_of = |addr: u64| {
        mem.find_region(GuestAddress(addr)).map(|r| {
            let start = r.start_addr().0;
            (start + r.len() - addr, r.as_ptr() as u64 + (addr - start))
        })
    };
    let mut out = Vec::new();
    let mut off = 0;
    while off < mv.src.len() {
        let (src, dst) = (mv.src.start() + off, mv.dst + off);
        let src_range = || guest::range(src, mv.src.len() - off).unwrap_or(mv.src);
        let (room_s, hs) =
            region_of(src).ok_or_else(|| CopyError::Source(MemoryError::NotBacked(src_range())))?;
        let (room_d, hd) = region_of(dst)
            .ok_or_else(|| CopyError::Destination(MemoryError::NotBacked(mv.dst_range())))?;
        let len = (mv.src.len() - off).min(room_s).min(room_d);
        out.push(Span {
            src,
            dst,
            len,
            hs,
            hd,
        });
        off += len;
    }
    Ok(out)
}

/// `(offset, len)` chunks of the body such that each lies inside one private anonymous
/// read-write VMA on the source side and on the destination side (`/proc/self/maps`).
fn vma_cuts(b: Span) -> std::io::Result<Vec<(u64, u64)>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let vmas: Vec<(u64, u64, bool)> = maps.lines().filter_map(parse_maps_line).collect();
    let mut cuts = vec![0, b.len];
    for base in [b.hs, b.hd] {
        let mut covered = 0;
        for &(start, end, anon_rw) in vmas.iter().filter(|v| v.1 > base && v.0 < base + b.len) {
            if !anon_rw {
                return Err(std::io::Error::other(format!(
                    "{start:#x}-{end:#x} is not private anonymous read-write memory"
                )));
            }
            covered += end.min(base + b.len) - start.max(base);
            for edge in [start, end] {
                if edge > base && edge < base + b.len {
                    cuts.push(edge - base);
                }
            }
        }
        if covered != b.len {
            return Err(std::io::Error::other(format!(
                "{base:#x}+{:#x} is not mapped throughout",
                b.len
            )));
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    Ok(cuts.windows(2).map(|w| (w[0], w[1] - w[0])).collect())
}

/// One `/proc/self/maps` line: (start, end, private anonymous read-write).
fn parse_maps_line(line: &str) -> Option<(u64, u64, bool)> {
    let mut f = line.split_whitespace();
    let (start, end) = f.next()?.split_once('-')?;
    let perms = f.next()?;
    let _offset = f.next()?;
    let _dev = f.next()?;
    let inode = f.next()?;
    let anon = inode == "0" && f.next().is_none();
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
        anon && perms.starts_with("rw") && perms.ends_with('p'),
    ))
}

/// A `PROT_NONE` reservation of `len` bytes at an address congruent to `residue` modulo
/// `huge`, inside a larger reservation whose surplus is released after use.
struct Scratch {
    base: u64,
    total: u64,
    at: u64,
    len: u64,
}

impl Scratch {
    fn reserve(len: u64, residue: u64, huge: u64) -> std::io::Result<Scratch> {
        let total = len
            .checked_add(huge)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: a fresh PROT_NONE anonymous mapping at an address the kernel picks: it
        // overlaps nothing, and nothing accesses it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = p as u64;
        let at = base + (residue + huge - base % huge) % huge;
        Ok(Scratch {
            base,
            total,
            at,
            len,
        })
    }

    /// Unmaps the reservation around `[at, at + len)`. That middle part is left alone: after
    /// the swap it is a hole another thread's `mmap` may already have taken.
    fn release_around(self) {
        for (start, end) in [
            (self.base, self.at),
            (self.at + self.len, self.base + self.total),
        ] {
            if end > start {
                // SAFETY: [start, end) is part of our own PROT_NONE reservation, which nothing
                // else maps or uses.
                unsafe { libc::munmap(start as *mut c_void, (end - start) as usize) };
            }
        }
    }
}

/// `mremap(from, len) -> to` with `MREMAP_MAYMOVE | MREMAP_FIXED` (and `MREMAP_DONTUNMAP`:
/// `from` stays mapped, empty).
pub(super) fn mremap_fixed(from: u64, len: u64, to: u64, dont_unmap: bool) -> std::io::Result<()> {
    let mut flags = libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED;
    if dont_unmap {
        flags |= libc::MREMAP_DONTUNMAP;
    }
    // SAFETY: the callers pass page-aligned, non-overlapping ranges of `len` bytes, each
    // inside guest RAM's own private anonymous mapping (checked against /proc/self/maps to lie
    // in one VMA where it is the source), our scratch reservation, or a staging area: no
    // other mapping is ever replaced or moved: moves out of guest RAM keep the source mapped
    // (MREMAP_DONTUNMAP), so the only holes they leave are in our scratch reservation, never
    // an address another thread's mmap could take. Every vCPU is stopped and no other thread
    // touches guest memory; the VMM never holds Rust
    // references into guest memory, only volatile accesses that go through the mapping each
    // time, so moving the pages under it invalidates nothing the compiler relies on. The
    // mapping at `to` is replaced atomically under the mm lock.
    let r = unsafe {
        libc::mremap(
            from as *mut c_void,
            len as usize,
            len as usize,
            flags,
            to as *mut c_void,
        )
    };
    if r == libc::MAP_FAILED {
        Err(std::io::Error::last_os_error())
    } else if r as u64 != to {
        Err(std::io::Error::other(format!("mremap landed at {r:?}")))
    } else {
        Ok(())
    }
}

/// Puts fresh zero pages at `[at, at + len)` of guest RAM after a failed move left a hole, or
/// aborts: guest RAM with a hole would fault every later access (KVM's and ours).
pub(super) fn map_fresh_or_abort(at: u64, len: u64) {
    // SAFETY: [at, at + len) is part of guest RAM's address range (page-aligned), which only
    // the guest mapping ever occupies; MAP_FIXED replaces whatever a failed mremap left there
    // with the same kind of mapping vm-memory made (private anonymous, read-write, no reserve).
    let p = unsafe {
        libc::mmap(
            at as *mut c_void,
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as u64 != at {
        error!(
            "fadump: cannot map guest RAM at host {at:#x}+{len:#x} again ({}): aborting",
            std::io::Error::last_os_error()
        );
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::fadump::CopyPreserver;

    const MIB: u64 = 1 << 20;

    fn filled(size: u64) -> GuestMemory {
        let m = GuestMemory::from_ranges(&[(GuestAddress(0), size as usize)]).unwrap();
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        guest::write_bytes(&m, 0, &data).unwrap();
        m
    }

    /// The host page behind guest address `gpa`.
    fn host(m: &GuestMemory, gpa: u64) -> u64 {
        m.get_host_address(GuestAddress(gpa)).unwrap() as u64
    }

    /// Like the firmware would: move `src` to `dst` keeping `keep`, with each preserver, and
    /// compare the destination with what a copy gives.
    fn check(mode: Mode, src: GuestRange, dst: u64, keep: &[GuestRange]) -> Outcome {
        let size = 64 * MIB;
        let expect = filled(size);
        let mv = Move {
            section: 0,
            src,
            dst,
        };
        CopyPreserver.preserve(&expect, &mv, keep).unwrap();
        let m = filled(size);
        let mut p = RemapPreserver::new(mode, 2 * MIB);
        let out = p.preserve(&m, &mv, keep).unwrap();
        assert_eq!(out.remapped + out.copied - keep_len(src, keep), src.len());
        let got = guest::read_bytes(&m, dst, src.len() as usize).unwrap();
        let want = guest::read_bytes(&expect, dst, src.len() as usize).unwrap();
        assert!(got == want, "destination differs ({mode:?})");
        // Nothing outside the source and the destination changed, and kept bytes are intact.
        let dst_r = mv.dst_range();
        let (all_got, all_want) = (
            guest::read_bytes(&m, 0, size as usize).unwrap(),
            guest::read_bytes(&expect, 0, size as usize).unwrap(),
        );
        for (i, (a, b)) in all_got.iter().zip(&all_want).enumerate() {
            let i = i as u64;
            let in_src = src.contains_addr(i) && !keep.iter().any(|k| k.contains_addr(i));
            if !in_src && !dst_r.contains_addr(i) {
                assert_eq!(a, b, "byte {i:#x} changed");
            }
        }
        // The guest mapping did not move.
        assert_eq!(host(&m, 0), m.iter().next().unwrap().as_ptr() as u64);
        out
    }

    fn keep_len(src: GuestRange, keep: &[GuestRange]) -> u64 {
        keep.iter()
            .filter_map(|k| intersection(&src, k))
            .map(|r| r.len())
            .sum()
    }

    // qemu-user (how CI runs the powerpc64 unit tests) emulates mremap without DONTUNMAP, so
    // every move falls back to a copy there; these run on x86_64 and real ppc64 hosts.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn aligned_moves_remap_every_byte() {
        let src = GuestRange::new(0, 16 * MIB).unwrap();
        for mode in [Mode::Swap, Mode::Zero] {
            let out = check(mode, src, 32 * MIB, &[]);
            assert_eq!((out.remapped, out.copied), (16 * MIB, 0), "{mode:?}");
        }
    }

    // qemu-user (how CI runs the powerpc64 unit tests) emulates mremap without DONTUNMAP, so
    // every move falls back to a copy there; these run on x86_64 and real ppc64 hosts.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn unaligned_heads_and_tails_are_copied_and_never_a_page_past_the_destination() {
        let page = host_page_size();
        // Starts and ends inside a page: one partial page each side is copied.
        let src = GuestRange::new(0x123, 8 * MIB).unwrap();
        let out = check(Mode::Swap, src, 40 * MIB + 0x123, &[]);
        assert_eq!(out.copied, (page - 0x123) + 0x123);
        assert_eq!(out.remapped, 8 * MIB - page);
    }

    // qemu-user (how CI runs the powerpc64 unit tests) emulates mremap without DONTUNMAP, so
    // every move falls back to a copy there; these run on x86_64 and real ppc64 hosts.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn a_destination_off_by_part_of_a_page_is_copied_whole() {
        let src = GuestRange::new(0, 4 * MIB).unwrap();
        let out = check(Mode::Swap, src, 40 * MIB + 0x800, &[]);
        assert_eq!((out.remapped, out.copied), (0, 4 * MIB));
    }

    // qemu-user (how CI runs the powerpc64 unit tests) emulates mremap without DONTUNMAP, so
    // every move falls back to a copy there; these run on x86_64 and real ppc64 hosts.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn kept_ranges_inside_the_source_are_restored() {
        let src = GuestRange::new(0, 16 * MIB).unwrap();
        let keep = [
            GuestRange::new(5 * MIB + 0x10, 0x800).unwrap(),
            GuestRange::new(15 * MIB, 2 * MIB).unwrap(), // runs past the source
        ];
        for mode in [Mode::Swap, Mode::Zero] {
            let out = check(mode, src, 32 * MIB, &keep);
            assert_eq!(out.remapped, 16 * MIB);
            assert_eq!(out.copied, 0x800 + MIB);
        }
    }

    // qemu-user (how CI runs the powerpc64 unit tests) emulates mremap without DONTUNMAP, so
    // every move falls back to a copy there; these run on x86_64 and real ppc64 hosts.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn swap_gives_the_source_the_destinations_old_pages_and_zero_leaves_it_empty() {
        let m = filled(16 * MIB);
        let old_dst = guest::read_bytes(&m, 8 * MIB, 4 * MIB as usize).unwrap();
        let mv = Move {
            section: 0,
            src: GuestRange::new(0, 4 * MIB).unwrap(),
            dst: 8 * MIB,
        };
        RemapPreserver::new(Mode::Swap, 2 * MIB)
            .preserve(&m, &mv, &[])
            .unwrap();
        assert_eq!(guest::read_bytes(&m, 0, 4 * MIB as usize).unwrap(), old_dst);
        RemapPreserver::new(Mode::Zero, 2 * MIB)
            .preserve(&m, &mv, &[])
            .unwrap();
        assert!(guest::read_bytes(&m, 0, 4 * MIB as usize)
            .unwrap()
            .iter()
            .all(|&b| b == 0));
    }

    // qemu-user (how CI runs the powerpc64 unit tests) emulates mremap without DONTUNMAP, so
    // every move falls back to a copy there; these run on x86_64 and real ppc64 hosts.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn repeated_swaps_keep_the_mapping_count_flat() {
        let m = filled(32 * MIB);
        let count = || {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .lines()
                .count()
        };
        let mv = Move {
            section: 0,
            src: GuestRange::new(0, 8 * MIB).unwrap(),
            dst: 16 * MIB,
        };
        let mut p = RemapPreserver::new(Mode::Swap, 2 * MIB);
        p.preserve(&m, &mv, &[]).unwrap();
        let after_one = count();
        for _ in 0..20 {
            p.preserve(&m, &mv, &[]).unwrap();
        }
        // Other tests map and unmap beside this one: allow their noise, not 20 cycles' growth.
        assert!(count() < after_one + 10, "{after_one} -> {}", count());
        assert_eq!(p.stats.fallbacks, 0);
        assert_eq!(p.stats.chunks, 21);
    }

    #[test]
    fn zeroing_drops_whole_pages_and_writes_the_partial_ends() {
        let m = filled(8 * MIB);
        let r = GuestRange::new(MIB + 0x123, 3 * MIB).unwrap();
        RemapPreserver::new(Mode::Swap, 2 * MIB)
            .zero(&m, r)
            .unwrap();
        let all = guest::read_bytes(&m, 0, 8 * MIB as usize).unwrap();
        let want = filled(8 * MIB);
        let orig = guest::read_bytes(&want, 0, 8 * MIB as usize).unwrap();
        for (i, (a, b)) in all.iter().zip(&orig).enumerate() {
            if r.contains_addr(i as u64) {
                assert_eq!(*a, 0, "byte {i:#x} not zeroed");
            } else {
                assert_eq!(a, b, "byte {i:#x} outside the range changed");
            }
        }
    }

    #[test]
    fn maps_lines() {
        assert_eq!(
            parse_maps_line("7f00-7f10 rw-p 00000000 00:00 0 "),
            Some((0x7f00, 0x7f10, true))
        );
        assert_eq!(
            parse_maps_line("7f00-7f10 rw-s 00000000 00:05 12 /memfd:x (deleted)"),
            Some((0x7f00, 0x7f10, false))
        );
        assert_eq!(
            parse_maps_line("7f00-7f10 r--p 00000000 00:00 0 [stack]"),
            Some((0x7f00, 0x7f10, false))
        );
        assert_eq!(parse_maps_line("garbage"), None);
    }
}
