//! A recognisable memory pattern and whole-RAM snapshots for the benches.
//!
//! Every 8-byte word holds its own guest address XOR a seed, so a byte that lands at the wrong
//! address, or a stale one, shows up in any comparison.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

const CHUNK: u64 = 4 << 20;

/// Fills every RAM region with the pattern for `seed`.
pub fn fill(mem: &GuestMemoryMmap, seed: u64) {
    let mut buf = vec![0u8; CHUNK as usize];
    for region in mem.iter() {
        let start = region.start_addr().0;
        let len = region.len();
        let mut off = 0;
        while off < len {
            let n = CHUNK.min(len - off) as usize;
            for (i, w) in buf[..n].chunks_exact_mut(8).enumerate() {
                w.copy_from_slice(&((start + off + 8 * i as u64) ^ seed).to_le_bytes());
            }
            mem.write_slice(&buf[..n], GuestAddress(start + off))
                .expect("region-internal write");
            off += n as u64;
        }
    }
}

/// A full copy of guest RAM, region by region: (start, bytes).
pub fn snapshot(mem: &GuestMemoryMmap) -> Vec<(u64, Vec<u8>)> {
    mem.iter()
        .map(|r| {
            let mut b = vec![0u8; r.len() as usize];
            mem.read_slice(&mut b, r.start_addr())
                .expect("whole region");
            (r.start_addr().0, b)
        })
        .collect()
}
