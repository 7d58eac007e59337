//! Guest physical address ranges `[start, end)` with overflow-checked construction.

use std::fmt;

use serde::{Deserialize, Serialize};
use vm_memory::GuestAddress;

/// A non-empty or empty half-open range of guest physical addresses, `[start, start + len)`.
///
/// Construction checks that the end does not overflow 64 bits, and so does deserialization (a
/// saved state is as hostile as the guest), so every method can use plain arithmetic afterwards.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "SavedRange", into = "SavedRange")]
pub struct GuestRange {
    start: u64,
    len: u64,
}

/// The serialized form of [`GuestRange`] (the same fields), checked on the way in.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct SavedRange {
    start: u64,
    len: u64,
}

impl TryFrom<SavedRange> for GuestRange {
    type Error = String;

    fn try_from(r: SavedRange) -> Result<Self, String> {
        GuestRange::new(r.start, r.len)
            .ok_or_else(|| format!("range {:#x} + {:#x} overflows 64 bits", r.start, r.len))
    }
}

impl From<GuestRange> for SavedRange {
    fn from(r: GuestRange) -> Self {
        Self {
            start: r.start,
            len: r.len,
        }
    }
}

impl GuestRange {
    /// `[start, start + len)`, or `None` when the end would not fit in 64 bits.
    pub fn new(start: u64, len: u64) -> Option<Self> {
        start.checked_add(len)?;
        Some(Self { start, len })
    }

    /// `[start, end)`, or `None` when `end < start`.
    pub fn from_bounds(start: u64, end: u64) -> Option<Self> {
        Some(Self {
            start,
            len: end.checked_sub(start)?,
        })
    }

    /// The first byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The first byte, as a `vm-memory` address.
    pub fn start_addr(&self) -> GuestAddress {
        GuestAddress(self.start)
    }

    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for a range of no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// True when the two ranges share at least one byte (empty ranges overlap nothing).
    pub fn overlaps(&self, other: &GuestRange) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && self.start < other.end()
            && other.start < self.end()
    }

    /// True when `other` lies entirely inside `self`.
    pub fn contains(&self, other: &GuestRange) -> bool {
        other.start >= self.start && other.end() <= self.end()
    }

    /// True when `addr` lies inside the range.
    pub fn contains_addr(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end()
    }

    /// What is left of `self` after removing every range in `cut`: non-empty pieces in
    /// ascending order.
    pub fn subtract(&self, cut: &[GuestRange]) -> Vec<GuestRange> {
        let mut pieces = vec![*self];
        for c in cut {
            pieces = pieces
                .into_iter()
                .flat_map(|p| {
                    if !p.overlaps(c) {
                        return vec![p];
                    }
                    [
                        GuestRange::from_bounds(p.start, c.start),
                        GuestRange::from_bounds(c.end(), p.end()),
                    ]
                    .into_iter()
                    .flatten()
                    .filter(|x| !x.is_empty())
                    .collect()
                })
                .collect();
        }
        pieces.retain(|p| !p.is_empty());
        pieces
    }
}

impl fmt::Debug for GuestRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start, self.end())
    }
}

impl fmt::Display for GuestRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserialization_rejects_overflow() {
        let r: GuestRange = serde_json::from_str(r#"{"start":4096,"len":8192}"#).unwrap();
        assert_eq!((r.start(), r.end()), (4096, 12288));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"start":4096,"len":8192}"#
        );
        let bad = format!(r#"{{"start":{},"len":2}}"#, u64::MAX);
        let r = serde_json::from_str::<GuestRange>(&bad);
        assert!(r.is_err(), "{:?}", r.map(|r| r.end()));
    }

    #[test]
    fn construction_rejects_overflow() {
        assert!(GuestRange::new(u64::MAX, 1).is_none());
        assert!(GuestRange::new(u64::MAX, 0).is_some());
        assert!(GuestRange::new(u64::MAX - 9, 9).is_some());
        assert!(GuestRange::from_bounds(10, 9).is_none());
        assert_eq!(GuestRange::from_bounds(4, 10).unwrap().len(), 6);
    }

    #[test]
    fn overlap_and_containment() {
        let a = GuestRange::new(0x1000, 0x1000).unwrap();
        let b = GuestRange::new(0x1fff, 1).unwrap();
        let c = GuestRange::new(0x2000, 0x10).unwrap();
        let empty = GuestRange::new(0x1800, 0).unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c), "adjacent ranges do not overlap");
        assert!(!a.overlaps(&empty) && !empty.overlaps(&a));
        assert!(a.contains(&b));
        assert!(!a.contains(&c));
        assert!(a.contains_addr(0x1fff) && !a.contains_addr(0x2000));
        assert_eq!(format!("{a}"), "[0x1000, 0x2000)");
    }

    #[test]
    fn subtract_splits_and_trims() {
        let r = |s, l| GuestRange::new(s, l).unwrap();
        let whole = r(0, 100);
        assert_eq!(whole.subtract(&[]), vec![whole]);
        assert_eq!(
            whole.subtract(&[r(10, 10), r(50, 60)]),
            vec![r(0, 10), r(20, 30)]
        );
        assert_eq!(whole.subtract(&[r(0, 100)]), vec![]);
        assert_eq!(whole.subtract(&[r(200, 5), r(50, 0)]), vec![whole]);
    }
}
