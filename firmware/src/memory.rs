//! Checked guest-memory access: every firmware read, write and copy goes through here.
//!
//! Guest addresses and lengths come from the guest and are hostile. These helpers check the
//! whole range against the RAM map before touching anything, so a range that runs off the end of
//! RAM or crosses a hole is refused as a unit: nothing is half-written.

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use crate::range::GuestRange;

/// Copies and zero fills move at most this much at a time.
pub(crate) const COPY_CHUNK: u64 = 4 << 20;

/// Why a guest-memory access was refused or failed. A refused access changed nothing.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MemoryError {
    /// The range is not entirely RAM: it runs off the end of RAM or crosses a hole.
    #[error("guest range {0} is not backed by RAM (outside RAM or across a hole)")]
    NotBacked(GuestRange),
    /// `addr + len` does not fit in 64 bits.
    #[error("address {addr:#x} + length {len:#x} overflows 64 bits")]
    Overflow {
        /// The start address.
        addr: u64,
        /// The length in bytes.
        len: u64,
    },
    /// The range was RAM, but `vm-memory` failed the access.
    #[error("guest memory access to {0} failed")]
    Access(GuestRange),
}

/// Which side of a copy failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CopyError {
    /// The source range is unusable (fadump turns it into error flag 0x4000).
    #[error("copy source unusable: {0}")]
    Source(MemoryError),
    /// The destination range is unusable (fadump turns it into error flag 0x1000).
    #[error("copy destination unusable: {0}")]
    Destination(MemoryError),
}

/// `[addr, addr + len)` as a range, refusing 64-bit overflow.
pub fn range(addr: u64, len: u64) -> Result<GuestRange, MemoryError> {
    GuestRange::new(addr, len).ok_or(MemoryError::Overflow { addr, len })
}

/// The RAM map: one range per region, merged where regions touch, in ascending order.
pub fn ram_ranges<M: GuestMemoryBackend>(mem: &M) -> Vec<GuestRange> {
    let mut regions: Vec<GuestRange> = mem
        .iter()
        .filter_map(|r| GuestRange::new(r.start_addr().0, r.len()))
        .collect();
    regions.sort_by_key(GuestRange::start);
    let mut merged: Vec<GuestRange> = Vec::with_capacity(regions.len());
    for r in regions {
        match merged.last_mut() {
            Some(last) if last.end() == r.start() => {
                *last = GuestRange::from_bounds(last.start(), r.end()).expect("ascending");
            }
            _ => merged.push(r),
        }
    }
    merged
}

/// One past the highest RAM address (0 when there is no RAM).
pub fn top_of_ram<M: GuestMemoryBackend>(mem: &M) -> u64 {
    ram_ranges(mem).last().map_or(0, |r| r.end())
}

/// True when every byte of `r` is RAM: inside guest memory and crossing no hole.
/// An empty range is backed when its start lies in RAM or right at the end of a region.
pub fn is_backed<M: GuestMemoryBackend>(mem: &M, r: &GuestRange) -> bool {
    ram_ranges(mem).iter().any(|ram| ram.contains(r))
}

fn check_backed<M: GuestMemoryBackend>(mem: &M, r: GuestRange) -> Result<(), MemoryError> {
    if is_backed(mem, &r) {
        Ok(())
    } else {
        Err(MemoryError::NotBacked(r))
    }
}

/// Reads `len` bytes at `addr`, all or nothing.
pub fn read_bytes<M: GuestMemoryBackend>(
    mem: &M,
    addr: u64,
    len: usize,
) -> Result<Vec<u8>, MemoryError> {
    let r = range(addr, len as u64)?;
    check_backed(mem, r)?;
    let mut buf = vec![0u8; len];
    mem.read_slice(&mut buf, GuestAddress(addr))
        .map_err(|_| MemoryError::Access(r))?;
    Ok(buf)
}

/// Writes `bytes` at `addr`, all or nothing (the range is checked before the first byte moves).
pub fn write_bytes<M: GuestMemoryBackend>(
    mem: &M,
    addr: u64,
    bytes: &[u8],
) -> Result<(), MemoryError> {
    let r = range(addr, bytes.len() as u64)?;
    check_backed(mem, r)?;
    mem.write_slice(bytes, GuestAddress(addr))
        .map_err(|_| MemoryError::Access(r))
}

/// Reads a NUL-terminated string of at most `max` bytes (lossy UTF-8). Stops at the end of RAM.
pub fn read_c_string<M: GuestMemoryBackend>(
    mem: &M,
    addr: u64,
    max: usize,
) -> Result<String, MemoryError> {
    let mut out = Vec::new();
    let mut cur = addr;
    while out.len() < max {
        let mut b = [0u8; 1];
        if mem.read_slice(&mut b, GuestAddress(cur)).is_err() {
            if out.is_empty() {
                return Err(MemoryError::NotBacked(range(addr, 1)?));
            }
            break;
        }
        if b[0] == 0 {
            break;
        }
        out.push(b[0]);
        cur = match cur.checked_add(1) {
            Some(c) => c,
            None => break,
        };
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Copies `src` to `[dst, dst + src.len())` inside guest memory, directly from region to region
/// (no host bounce buffer), in pieces of at most 4 MiB that never straddle a region boundary on
/// either side. Returns the number of bytes copied, `src.len()`.
///
/// Both ranges are checked before anything moves. `src == dst` is a no-op. Overlapping ranges
/// are copied in the direction that keeps the source intact (memmove semantics).
pub fn copy_within<M: GuestMemoryBackend>(
    mem: &M,
    src: GuestRange,
    dst: u64,
) -> Result<u64, CopyError> {
    check_backed(mem, src).map_err(CopyError::Source)?;
    let dst_range = range(dst, src.len()).map_err(CopyError::Destination)?;
    check_backed(mem, dst_range).map_err(CopyError::Destination)?;
    if src.start() == dst || src.is_empty() {
        return Ok(src.len());
    }
    let ram = ram_regions(mem);
    let room = |addr: u64| {
        ram.iter()
            .find(|r| r.contains_addr(addr))
            .map_or(0, |r| r.end() - addr)
    };
    // Plan the pieces first, so an overlapping forward copy can run them back to front.
    let mut pieces = Vec::new();
    let mut off = 0;
    while off < src.len() {
        let n = COPY_CHUNK
            .min(src.len() - off)
            .min(room(src.start() + off))
            .min(room(dst + off));
        debug_assert!(n > 0, "ranges were checked as backed");
        if n == 0 {
            return Err(CopyError::Source(MemoryError::Access(src)));
        }
        pieces.push((off, n));
        off += n;
    }
    if dst > src.start() && dst_range.overlaps(&src) {
        pieces.reverse();
    }
    for (off, n) in pieces {
        let from = mem
            .get_slice(GuestAddress(src.start() + off), n as usize)
            .map_err(|_| CopyError::Source(MemoryError::Access(src)))?;
        let to = mem
            .get_slice(GuestAddress(dst + off), n as usize)
            .map_err(|_| CopyError::Destination(MemoryError::Access(dst_range)))?;
        from.copy_to_volatile_slice(to);
    }
    Ok(src.len())
}

/// The regions as they are mapped (not merged): a slice never crosses one of these.
fn ram_regions<M: GuestMemoryBackend>(mem: &M) -> Vec<GuestRange> {
    mem.iter()
        .filter_map(|r| GuestRange::new(r.start_addr().0, r.len()))
        .collect()
}

/// Fills `[addr, addr + len)` with zeroes, all or nothing.
pub fn zero_fill<M: GuestMemoryBackend>(mem: &M, addr: u64, len: u64) -> Result<(), MemoryError> {
    let r = range(addr, len)?;
    check_backed(mem, r)?;
    let zeroes = vec![0u8; COPY_CHUNK.min(len) as usize];
    let mut off = 0;
    while off < len {
        let n = COPY_CHUNK.min(len - off) as usize;
        mem.write_slice(&zeroes[..n], GuestAddress(addr + off))
            .map_err(|_| MemoryError::Access(r))?;
        off += n as u64;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    /// Two regions with a hole: [0, 64K) and [128K, 256K).
    pub(crate) fn holey() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 0x10000),
            (GuestAddress(0x20000), 0x20000),
        ])
        .unwrap()
    }

    #[test]
    fn backing_rejects_holes_and_overflow() {
        let m = holey();
        assert!(is_backed(&m, &range(0, 0x10000).unwrap()));
        assert!(
            !is_backed(&m, &range(0xf000, 0x2000).unwrap()),
            "runs into the hole"
        );
        assert!(
            !is_backed(&m, &range(0x8000, 0x20000).unwrap()),
            "spans the hole"
        );
        assert!(is_backed(&m, &range(0x20000, 0x20000).unwrap()));
        assert!(
            !is_backed(&m, &range(0x30000, 0x10001).unwrap()),
            "past the end"
        );
        assert!(range(u64::MAX, 2).is_err());
    }

    #[test]
    fn adjacent_regions_merge() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x1000),
            (GuestAddress(0x1000), 0x1000),
        ])
        .unwrap();
        assert_eq!(ram_ranges(&m), vec![range(0, 0x2000).unwrap()]);
        assert!(is_backed(&m, &range(0x800, 0x1000).unwrap()));
    }

    #[test]
    fn failed_write_changes_nothing() {
        let m = holey();
        let err = write_bytes(&m, 0xfff0, &[0xaa; 0x20]).unwrap_err();
        assert!(matches!(err, MemoryError::NotBacked(_)));
        assert_eq!(read_bytes(&m, 0xfff0, 0x10).unwrap(), vec![0; 0x10]);
    }

    #[test]
    fn copy_is_memmove_and_checks_both_sides() {
        let m = holey();
        let data: Vec<u8> = (0..=255u8).cycle().take(0x3000).collect();
        write_bytes(&m, 0x1000, &data).unwrap();
        // overlapping forward copy keeps the source intact
        copy_within(&m, range(0x1000, 0x3000).unwrap(), 0x1800).unwrap();
        assert_eq!(read_bytes(&m, 0x1800, 0x3000).unwrap(), data);
        assert!(matches!(
            copy_within(&m, range(0xf000, 0x2000).unwrap(), 0x20000),
            Err(CopyError::Source(_))
        ));
        assert!(matches!(
            copy_within(&m, range(0, 0x2000).unwrap(), 0x3f000),
            Err(CopyError::Destination(_))
        ));
    }

    #[test]
    fn copy_crosses_adjacent_regions_on_both_sides() {
        // Three touching regions of different sizes: pieces must split at every boundary.
        let m = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x3000),
            (GuestAddress(0x3000), 0x5000),
            (GuestAddress(0x8000), 0x8000),
        ])
        .unwrap();
        let data: Vec<u8> = (0..0x6000u32).map(|i| (i * 7 % 251) as u8).collect();
        write_bytes(&m, 0x1000, &data).unwrap();
        copy_within(&m, range(0x1000, 0x6000).unwrap(), 0x9800).unwrap();
        assert_eq!(read_bytes(&m, 0x9800, 0x6000).unwrap(), data);
        // Overlapping backwards copy (dst < src) across a boundary.
        copy_within(&m, range(0x9800, 0x6000).unwrap(), 0x2800).unwrap();
        assert_eq!(read_bytes(&m, 0x2800, 0x6000).unwrap(), data);
    }

    #[test]
    fn c_string_is_bounded() {
        let m = holey();
        write_bytes(&m, 0x100, b"OS panic: boom\0tail").unwrap();
        assert_eq!(read_c_string(&m, 0x100, 2048).unwrap(), "OS panic: boom");
        assert_eq!(read_c_string(&m, 0x100, 2).unwrap(), "OS");
        write_bytes(&m, 0xfffc, b"abcd").unwrap();
        assert_eq!(
            read_c_string(&m, 0xfffc, 2048).unwrap(),
            "abcd",
            "stops at end of RAM"
        );
        assert!(read_c_string(&m, 0x10000, 16).is_err());
    }
}
