//! Small guest RAM for the harnesses, and the write-containment check: snapshot it, run a
//! step, and list every byte that changed.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// A guest memory of `regions` (start, length), zeroed.
pub fn new(regions: &[(u64, usize)]) -> GuestMemoryMmap {
    let r: Vec<(GuestAddress, usize)> = regions
        .iter()
        .map(|(s, l)| (GuestAddress(*s), *l))
        .collect();
    GuestMemoryMmap::from_ranges(&r).expect("harness RAM")
}

/// Every byte of `regions`.
pub fn snapshot(mem: &GuestMemoryMmap, regions: &[(u64, usize)]) -> Vec<Vec<u8>> {
    regions
        .iter()
        .map(|(s, l)| {
            let mut b = vec![0u8; *l];
            mem.read_slice(&mut b, GuestAddress(*s))
                .expect("RAM region");
            b
        })
        .collect()
}

/// Addresses whose byte differs between `before` and now.
pub fn changed(mem: &GuestMemoryMmap, regions: &[(u64, usize)], before: &[Vec<u8>]) -> Vec<u64> {
    let mut out = Vec::new();
    for ((start, _), (old, new)) in regions
        .iter()
        .zip(before.iter().zip(snapshot(mem, regions)))
    {
        if *old == new {
            continue;
        }
        for (blk, (a, b)) in old.chunks(4096).zip(new.chunks(4096)).enumerate() {
            if a == b {
                continue;
            }
            for (i, _) in a.iter().zip(b).enumerate().filter(|(_, (x, y))| x != y) {
                out.push(start + (blk * 4096 + i) as u64);
            }
        }
    }
    out
}

/// Panics (the fuzzer's finding) when a byte outside `allowed` changed.
pub fn assert_writes_within(
    what: &str,
    mem: &GuestMemoryMmap,
    regions: &[(u64, usize)],
    before: &[Vec<u8>],
    allowed: &[(u64, u64)],
) {
    for addr in changed(mem, regions, before) {
        assert!(
            allowed.iter().any(|(s, l)| addr >= *s && addr - *s < *l),
            "{what} wrote {addr:#x}, outside {allowed:x?}"
        );
    }
}
