//! A recognisable, address-dependent memory pattern, so a byte in the wrong place is caught.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills every RAM region with words derived from their address and `seed`.
pub fn fill(mem: &GuestMemoryMmap, seed: u64) {
    const CHUNK: u64 = 1 << 20;
    let mut buf = vec![0u8; CHUNK as usize];
    for region in mem.iter() {
        let start = region.start_addr().0;
        let len = region.len();
        let mut off = 0;
        while off < len {
            let n = CHUNK.min(len - off);
            for (i, w) in buf[..n as usize].chunks_exact_mut(8).enumerate() {
                let addr = start + off + 8 * i as u64;
                w.copy_from_slice(&mix(addr ^ seed).to_le_bytes());
            }
            mem.write_slice(&buf[..n as usize], GuestAddress(start + off))
                .expect("region-internal write");
            off += n;
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
