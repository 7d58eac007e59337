//! The MPIPL range table: skiboot's MDST (sources) and MDDT (destinations) kept as one list of
//! pairs, with OPAL's own entry first.
//!
//! skiboot's tables are 0x400 bytes of 16-byte entries, so 64 pairs, one of which OPAL uses for
//! its own memory; the size field is 32 bits (Linux splits larger regions). skiboot only checks
//! the start addresses, a nonzero size and exact duplicate sources or destinations. We keep those
//! rules and codes and also refuse, with the same `OPAL_PARAMETER`, what skiboot would silently
//! get wrong: sizes that do not fit 32 bits (skiboot truncates them), ranges that leave RAM or
//! cross a hole, destinations that overlap another range or firmware memory, and sources that
//! overlap a destination. Linux never sends any of these.

use serde::{Deserialize, Serialize};
use vm_memory::GuestMemoryBackend;

use crate::memory;
use crate::opal::addr;
use crate::opal::error::MpiplError;
use crate::range::GuestRange;

/// Pairs the tables hold (0x400 bytes / 16).
pub const TABLE_ENTRIES: usize = 64;
/// Largest size the 32-bit size field holds.
pub const MAX_RANGE_SIZE: u64 = u32::MAX as u64;

/// Who registered an entry (`data_region` in the tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataRegion {
    /// OPAL's own memory (0x03).
    OpalMemory,
    /// A kernel range (0x80).
    Kernel,
}

impl DataRegion {
    /// The `data_region` byte skiboot writes in MDST/MDDT entries: 0x03 for OPAL memory, 0x80
    /// for the kernel.
    pub fn raw(self) -> u8 {
        match self {
            DataRegion::OpalMemory => 0x03,
            DataRegion::Kernel => 0x80,
        }
    }
}

/// One source/destination pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// Who registered the pair.
    pub region: DataRegion,
    /// The range to preserve (a real address range, top nibble already masked).
    pub src: GuestRange,
    /// Where its copy goes; always the same length as `src`.
    pub dest: GuestRange,
}

/// The table. Serializable so a machine can snapshot the firmware.
///
/// Embedders read it through [`Registration::table`](crate::opal::Registration::table); it
/// changes only through [`MpiplEngine::update`](crate::opal::MpiplEngine::update), which supplies
/// the firmware-owned ranges the checks need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeTable {
    entries: Vec<TableEntry>,
}

/// A validated guest range for an `ADD_RANGE` argument.
fn checked_range<M: GuestMemoryBackend>(
    mem: &M,
    what: &'static str,
    raw: u64,
    size: u64,
) -> Result<GuestRange, MpiplError> {
    let top = memory::top_of_ram(mem);
    let start = addr::real_addr(raw, top).ok_or(MpiplError::BadAddress { what, raw })?;
    let range = GuestRange::new(start, size).ok_or(MpiplError::Overflow {
        what,
        addr: start,
        size,
    })?;
    if !memory::is_backed(mem, &range) {
        return Err(MpiplError::NotBacked { what, range });
    }
    Ok(range)
}

impl RangeTable {
    /// A table holding only OPAL's own entry (when the machine has one).
    pub(crate) fn new(opal_entry: Option<TableEntry>) -> Self {
        Self {
            entries: opal_entry.into_iter().collect(),
        }
    }

    /// Every entry in copy order: OPAL's own first (when present), then the kernel's in
    /// registration order.
    pub fn entries(&self) -> &[TableEntry] {
        &self.entries
    }

    /// The entries the kernel registered, in registration order.
    pub fn kernel_entries(&self) -> impl Iterator<Item = &TableEntry> {
        self.entries
            .iter()
            .filter(|e| e.region == DataRegion::Kernel)
    }

    /// True when the kernel has registered at least one range.
    pub fn has_kernel_entries(&self) -> bool {
        self.kernel_entries().next().is_some()
    }

    /// Kernel entries the table can still take: 64 minus the one OPAL keeps for itself,
    /// whether or not this machine fills it.
    pub fn kernel_capacity() -> usize {
        TABLE_ENTRIES - 1
    }

    /// `OPAL_MPIPL_UPDATE(ADD_RANGE, src, dest, size)`.
    pub(crate) fn add_kernel<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        src: u64,
        dest: u64,
        size: u64,
        firmware_owned: &[GuestRange],
    ) -> Result<TableEntry, MpiplError> {
        // skiboot's checks, in its order: addresses, size, room, duplicates.
        let top = memory::top_of_ram(mem);
        addr::real_addr(src, top).ok_or(MpiplError::BadAddress {
            what: "source",
            raw: src,
        })?;
        addr::real_addr(dest, top).ok_or(MpiplError::BadAddress {
            what: "destination",
            raw: dest,
        })?;
        if size == 0 {
            return Err(MpiplError::ZeroSize);
        }
        if size > MAX_RANGE_SIZE {
            return Err(MpiplError::SizeTooLarge(size));
        }
        let src = checked_range(mem, "source", src, size)?;
        let dest = checked_range(mem, "destination", dest, size)?;
        if self.kernel_entries().count() >= Self::kernel_capacity()
            || self.entries.len() >= TABLE_ENTRIES
        {
            return Err(MpiplError::TableFull(TABLE_ENTRIES));
        }
        if let Some(e) = self.entries.iter().find(|e| e.src.start() == src.start()) {
            return Err(MpiplError::DuplicateSource(e.src.start()));
        }
        if let Some(e) = self.entries.iter().find(|e| e.dest.start() == dest.start()) {
            return Err(MpiplError::DuplicateDestination(e.dest.start()));
        }
        // What skiboot leaves to chance.
        if dest.overlaps(&src) {
            return Err(MpiplError::DestinationOverlap { dest, other: src });
        }
        for e in &self.entries {
            for other in [e.src, e.dest] {
                if dest.overlaps(&other) {
                    return Err(MpiplError::DestinationOverlap { dest, other });
                }
            }
            // Another kernel range's destination inside this source would make the copy depend
            // on the order. OPAL's own entry is exempt: skiboot keeps its areas inside the boot
            // memory Linux registers from address 0, and its entry is copied first.
            if e.region == DataRegion::Kernel && src.overlaps(&e.dest) {
                return Err(MpiplError::SourceOverlapsDestination { src, dest: e.dest });
            }
        }
        if let Some(fw) = firmware_owned.iter().find(|fw| fw.overlaps(&dest)) {
            return Err(MpiplError::FirmwareOwned { dest, fw: *fw });
        }
        let entry = TableEntry {
            region: DataRegion::Kernel,
            src,
            dest,
        };
        self.entries.push(entry);
        Ok(entry)
    }

    /// `OPAL_MPIPL_UPDATE(REMOVE_RANGE, src, dest)`: the kernel entry with both addresses.
    /// Addresses are compared after the real-address masking `ADD_RANGE` applied.
    pub(crate) fn remove_kernel(&mut self, src: u64, dest: u64) -> Result<TableEntry, MpiplError> {
        let not_found = || MpiplError::NoSuchRange { src, dest };
        let s = addr::real_addr(src, u64::MAX).ok_or_else(not_found)?;
        let d = addr::real_addr(dest, u64::MAX).ok_or_else(not_found)?;
        let idx = self
            .entries
            .iter()
            .position(|e| {
                e.region == DataRegion::Kernel && e.src.start() == s && e.dest.start() == d
            })
            .ok_or_else(not_found)?;
        Ok(self.entries.remove(idx))
    }

    /// `OPAL_MPIPL_UPDATE(REMOVE_ALL)`: drops every kernel entry; returns how many.
    pub(crate) fn remove_all_kernel(&mut self) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.region != DataRegion::Kernel);
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    const MIB: u64 = 1 << 20;

    fn mem() -> GuestMemoryMmap {
        // [0, 64M) and [96M, 128M)
        GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), (64 * MIB) as usize),
            (GuestAddress(96 * MIB), (32 * MIB) as usize),
        ])
        .unwrap()
    }

    fn opal() -> TableEntry {
        TableEntry {
            region: DataRegion::OpalMemory,
            src: GuestRange::new(120 * MIB, MIB).unwrap(),
            dest: GuestRange::new(121 * MIB, MIB).unwrap(),
        }
    }

    #[test]
    fn add_and_remove() {
        let m = mem();
        let mut t = RangeTable::new(Some(opal()));
        t.add_kernel(&m, 0, 32 * MIB, 16 * MIB, &[]).unwrap();
        t.add_kernel(
            &m,
            16 * MIB,
            0xc000_0000_0000_0000 | (100 * MIB),
            8 * MIB,
            &[],
        )
        .unwrap();
        assert_eq!(t.kernel_entries().count(), 2);
        assert_eq!(t.entries()[2].dest.start(), 100 * MIB, "top nibble masked");
        assert!(matches!(
            t.remove_kernel(0, 33 * MIB),
            Err(MpiplError::NoSuchRange { .. })
        ));
        t.remove_kernel(0, 32 * MIB).unwrap();
        assert_eq!(t.kernel_entries().count(), 1);
        assert_eq!(t.remove_all_kernel(), 1);
        assert_eq!(t.entries(), &[opal()], "OPAL's own entry stays");
    }

    #[test]
    fn refusals() {
        let m = mem();
        let fw = [GuestRange::new(120 * MIB, 8 * MIB).unwrap()];
        let mut t = RangeTable::new(Some(opal()));
        t.add_kernel(&m, 0, 32 * MIB, 8 * MIB, &fw).unwrap();
        let before = t.clone();
        type Case = (u64, u64, u64, fn(&MpiplError) -> bool);
        let cases: Vec<Case> = vec![
            (0x8000_0000_0000_0000, 40 * MIB, MIB, |e| {
                matches!(e, MpiplError::BadAddress { .. })
            }),
            (8 * MIB, 129 * MIB, MIB, |e| {
                matches!(e, MpiplError::BadAddress { .. })
            }),
            (8 * MIB, 40 * MIB, 0, |e| *e == MpiplError::ZeroSize),
            (0, 40 * MIB, 1 << 32, |e| {
                matches!(e, MpiplError::SizeTooLarge(_))
            }),
            (60 * MIB, 40 * MIB, 8 * MIB, |e| {
                matches!(e, MpiplError::NotBacked { .. })
            }),
            (0, 50 * MIB, MIB, |e| {
                matches!(e, MpiplError::DuplicateSource(_))
            }),
            (10 * MIB, 32 * MIB, MIB, |e| {
                matches!(e, MpiplError::DuplicateDestination(_))
            }),
            (10 * MIB, 36 * MIB, MIB, |e| {
                matches!(e, MpiplError::DestinationOverlap { .. })
            }),
            (10 * MIB, 7 * MIB, MIB, |e| {
                matches!(e, MpiplError::DestinationOverlap { .. })
            }),
            (33 * MIB, 50 * MIB, MIB, |e| {
                matches!(e, MpiplError::SourceOverlapsDestination { .. })
            }),
            (10 * MIB, 10 * MIB + 4096, MIB, |e| {
                matches!(e, MpiplError::DestinationOverlap { .. })
            }),
            (10 * MIB, 124 * MIB, MIB, |e| {
                matches!(e, MpiplError::FirmwareOwned { .. })
            }),
        ];
        for (src, dest, size, ok) in cases {
            let e = t.add_kernel(&m, src, dest, size, &fw).unwrap_err();
            assert!(ok(&e), "{src:#x} {dest:#x} {size:#x}: {e}");
            assert_eq!(e.status(), crate::opal::status::OpalStatus::Parameter);
            assert_eq!(t, before, "a refusal changes nothing");
        }
    }

    #[test]
    fn largest_32_bit_size_is_accepted() {
        // 16 GiB mapped lazily: nothing is touched by registration.
        let m: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 30)]).unwrap();
        let mut t = RangeTable::new(None);
        let linux_max = (u32::MAX as u64) & !0xffff;
        t.add_kernel(&m, 0, 8 << 30, linux_max, &[]).unwrap();
        t.add_kernel(&m, linux_max, 12 << 30, MAX_RANGE_SIZE, &[])
            .unwrap();
        assert_eq!(
            t.add_kernel(&m, 9 << 30, 1 << 30, MAX_RANGE_SIZE + 1, &[]),
            Err(MpiplError::SizeTooLarge(MAX_RANGE_SIZE + 1))
        );
    }

    #[test]
    fn full_table_is_resource() {
        let m = mem();
        let mut t = RangeTable::new(Some(opal()));
        for i in 0..RangeTable::kernel_capacity() as u64 {
            t.add_kernel(&m, i * 4096, 32 * MIB + i * 4096, 4096, &[])
                .unwrap();
        }
        assert_eq!(t.entries().len(), TABLE_ENTRIES);
        let e = t.add_kernel(&m, 1 << 24, 50 * MIB, 4096, &[]).unwrap_err();
        assert_eq!(e, MpiplError::TableFull(64));
        assert_eq!(e.status(), crate::opal::status::OpalStatus::Resource);
    }
}
