//! The HPTE save area (PAPR, section type 0x0002): the hash page table entries of a hash-MMU
//! guest, written into the HPTE section's destination.
//!
//! ```text
//! 0x00  u64  magic "HPTESAVE"
//! 0x08  u32  version 0
//! 0x0c  u32  NumEntriesOffset = 0x18 (self-consistent with the field's position; PAPR's text
//!            says 0x1c but places the 8-byte field at 0x18; nobody reads the area)
//! 0x10  u64  padding, zero
//! 0x18  u64  NumEntries
//! 0x20  24·n entries: HptEntryIndex, dword0 ("high"), dword1 ("low")
//! ```

use serde::{Deserialize, Serialize};

/// Bytes 0x00..0x08: the ASCII magic "HPTESAVE" (0x4850544553415645 as a big-endian u64).
pub const MAGIC: &[u8; 8] = b"HPTESAVE";
/// Bytes of the header before the first entry: 32.
pub const HEADER_SIZE: u64 = 0x20;
/// The value written at 0x0C: where the 8-byte `NumEntries` field is.
pub const NUM_ENTRIES_OFFSET: u32 = 0x18;
/// Bytes of one entry: index, dword0 and dword1, a big-endian u64 each.
pub const ENTRY_SIZE: u64 = 24;

/// Bytes the area needs for an HPT of `capacity` entries (0 for radix guests: no section data).
///
/// Saturates at `u64::MAX` for a capacity no HPT can have (above 2^64 / 24 entries): no section
/// is that long, so REGISTER then refuses every HPTE section instead of the size wrapping.
pub fn area_size(capacity: u64) -> u64 {
    if capacity == 0 {
        0
    } else {
        HEADER_SIZE.saturating_add(capacity.saturating_mul(ENTRY_SIZE))
    }
}

/// One hash page table entry: its index in the HPT and its two doublewords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HptEntry {
    /// `HptEntryIndex`: the entry's slot number in the hash page table (PTEG index × 8 + slot).
    pub index: u64,
    /// The first doubleword of the HPTE ("high": AVPN, flags, valid bit), as the HPT holds it.
    pub dword0: u64,
    /// The second doubleword ("low": real page number, protection), as the HPT holds it.
    pub dword1: u64,
}

/// Where the firmware gets the guest's hash page table at dump time. The VMM reads KVM's HPT
/// (`KVM_PPC_GET_HTAB_FD`); a bench supplies its own.
pub trait HptSource {
    /// Every valid entry.
    fn valid_entries(&mut self) -> Result<Vec<HptEntry>, String>;
}

impl HptSource for Vec<HptEntry> {
    fn valid_entries(&mut self) -> Result<Vec<HptEntry>, String> {
        Ok(self.clone())
    }
}

/// Builds the area for `entries` (the caller zero-fills the rest of the section); `None` when
/// they do not fit in `size` bytes. A section of size 0 (radix guest) gets no area at all.
pub fn build(entries: &[HptEntry], size: u64) -> Option<Vec<u8>> {
    if size == 0 && entries.is_empty() {
        return Some(Vec::new());
    }
    let needed = HEADER_SIZE + entries.len() as u64 * ENTRY_SIZE;
    if needed > size {
        return None;
    }
    let mut out = vec![0u8; usize::try_from(needed).ok()?];
    out[0..8].copy_from_slice(MAGIC);
    out[0x0c..0x10].copy_from_slice(&NUM_ENTRIES_OFFSET.to_be_bytes());
    out[0x18..0x20].copy_from_slice(&(entries.len() as u64).to_be_bytes());
    for (i, e) in entries.iter().enumerate() {
        let off = HEADER_SIZE as usize + i * ENTRY_SIZE as usize;
        out[off..off + 8].copy_from_slice(&e.index.to_be_bytes());
        out[off + 8..off + 16].copy_from_slice(&e.dword0.to_be_bytes());
        out[off + 16..off + 24].copy_from_slice(&e.dword1.to_be_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(area_size(0), 0);
        assert_eq!(area_size(2), 0x20 + 48);
        let e = [HptEntry {
            index: 5,
            dword0: 0x8000_0000_0000_0001,
            dword1: 0x1234,
        }];
        let a = build(&e, area_size(4)).unwrap();
        assert_eq!(&a[0..8], b"HPTESAVE");
        assert_eq!(&a[0x18..0x20], &1u64.to_be_bytes());
        assert_eq!(&a[0x20..0x28], &5u64.to_be_bytes());
        assert_eq!(&a[0x28..0x30], &0x8000_0000_0000_0001u64.to_be_bytes());
        assert_eq!(a.len(), 0x38);
        assert!(build(&e, 0x20).is_none());
        assert_eq!(build(&[], 0), Some(vec![]));
    }

    #[test]
    fn absurd_capacity_saturates() {
        assert_eq!(area_size(u64::MAX), u64::MAX);
        assert_eq!(area_size(u64::MAX / ENTRY_SIZE), u64::MAX);
    }
}
