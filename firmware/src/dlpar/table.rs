//! The LMB table of a partition: boot RAM, then a hotplug window of LMBs, each with its DRC.
//!
//! LMB `id` covers `[id * LMB_SIZE, (id + 1) * LMB_SIZE)` and has DRC index
//! `0x8000_0000 | id` (type 8 << 28, QEMU's `spapr_drc_index`). Boot RAM and any gap up to
//! the window are LMBs too, but RESERVED and without a DRC (the guest cannot acquire them:
//! `get-sensor-state` on their index fails). The table is the machine's memory state: it
//! survives resets ([`LmbTable::reset`]) and drives the drconf properties of every boot's
//! device tree ([`crate::dlpar::tree`]).

use thiserror::Error;

use super::drc::{Drc, DrcState};
use super::{DRC_TYPE_LMB, LMB_SIZE};
use crate::range::GuestRange;

/// Most LMBs a window may have (64 GiB of 256 MiB LMBs): each may need a KVM memory slot.
pub const MAX_WINDOW_LMBS: u64 = 256;

/// Why a table could not be built or a platform request not met.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    /// The window base or its size is not a multiple of the LMB size, or the window starts
    /// below the end of boot RAM, or runs past 2^64.
    #[error("hotplug window {base:#x}+{size:#x} after {boot:#x} bytes of boot RAM is not LMB-aligned or overlaps it")]
    Misaligned {
        /// Bytes of boot RAM.
        boot: u64,
        /// Where the window starts.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// The window has more than [`MAX_WINDOW_LMBS`] LMBs.
    #[error("hotplug window of {0} LMBs is larger than the {MAX_WINDOW_LMBS} supported")]
    TooLarge(u64),
    /// A request for more LMBs than the window has free (adding past the window).
    #[error("{wanted} LMBs asked for, {free} free in the hotplug window")]
    NotEnoughFree {
        /// LMBs asked for.
        wanted: usize,
        /// LMBs the window can still give.
        free: usize,
    },
    /// A request to take back more LMBs than the guest holds outside boot RAM.
    #[error("{wanted} LMBs to remove, the guest holds {owned} hot-added")]
    NotEnoughOwned {
        /// LMBs asked for.
        wanted: usize,
        /// LMBs the guest holds in the window (without an unplug already pending).
        owned: usize,
    },
}

/// Which reset the partition goes through ([`LmbTable::reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// A plain reboot: pending unplugs complete (QEMU's `spapr_drc_reset`), every LMB the
    /// guest owned stays its memory.
    Reboot,
    /// The fadump reset: every LMB the crashed kernel owned stays assigned, even with an
    /// unplug pending, so the capture kernel dumps it; nothing is released.
    Fadump,
}

/// The LMBs of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmbTable {
    boot_ram: u64,
    first_id: u32,
    drcs: Vec<Drc>,
    /// LMBs the platform offered with an add event the guest has not acted on yet.
    offered: Vec<bool>,
}

impl LmbTable {
    /// `boot_ram` bytes of RAM from 0 (the LMBs up to the window are reserved for it), and a
    /// window of `size` bytes at `base`, LMB-aligned, at or above the end of boot RAM. Every window LMB starts UNUSABLE and
    /// not granted.
    pub fn new(boot_ram: u64, base: u64, size: u64) -> Result<Self, TableError> {
        let bad = TableError::Misaligned {
            boot: boot_ram,
            base,
            size,
        };
        if base % LMB_SIZE != 0 || size % LMB_SIZE != 0 {
            return Err(bad);
        }
        if base < boot_ram || base.checked_add(size).is_none() {
            return Err(bad);
        }
        let n = size / LMB_SIZE;
        if n > MAX_WINDOW_LMBS {
            return Err(TableError::TooLarge(n));
        }
        let first_id = u32::try_from(base / LMB_SIZE).map_err(|_| bad)?;
        Ok(LmbTable {
            boot_ram,
            first_id,
            drcs: vec![Drc::default(); n as usize],
            offered: vec![false; n as usize],
        })
    }

    /// Bytes of boot RAM (from 0).
    pub fn boot_ram(&self) -> u64 {
        self.boot_ram
    }

    /// The hotplug window.
    pub fn window(&self) -> GuestRange {
        GuestRange::new(self.base(), self.drcs.len() as u64 * LMB_SIZE).expect("checked in new")
    }

    fn base(&self) -> u64 {
        u64::from(self.first_id) * LMB_SIZE
    }

    /// LMBs in the window.
    pub fn len(&self) -> usize {
        self.drcs.len()
    }

    /// True for an empty window.
    pub fn is_empty(&self) -> bool {
        self.drcs.is_empty()
    }

    /// The LMB id of the first window LMB (its base / LMB size).
    pub fn first_id(&self) -> u32 {
        self.first_id
    }

    /// The DRC index of window LMB `k`.
    pub fn drc_index(&self, k: usize) -> u32 {
        (DRC_TYPE_LMB << 28) | (self.first_id + k as u32)
    }

    /// The window LMB whose DRC index is `index`; `None` for any other index (the boot RAM's
    /// LMBs, other DRC types, indexes past the window).
    pub fn lookup(&self, index: u32) -> Option<usize> {
        if index >> 28 != DRC_TYPE_LMB {
            return None;
        }
        let k = (index & 0x0fff_ffff).checked_sub(self.first_id)? as usize;
        (k < self.drcs.len()).then_some(k)
    }

    /// The memory of window LMB `k`.
    pub fn range(&self, k: usize) -> GuestRange {
        GuestRange::new(self.base() + k as u64 * LMB_SIZE, LMB_SIZE).expect("inside the window")
    }

    /// Window LMB `k`'s connector.
    pub fn drc(&self, k: usize) -> &Drc {
        &self.drcs[k]
    }

    /// Window LMB `k`'s connector, for a guest transition.
    pub fn drc_mut(&mut self, k: usize) -> &mut Drc {
        &mut self.drcs[k]
    }

    /// The window LMBs the guest owns (UNISOLATE or CONFIGURED), ascending.
    pub fn owned(&self) -> Vec<usize> {
        (0..self.drcs.len())
            .filter(|&k| self.drcs[k].state().guest_owned())
            .collect()
    }

    /// The guest's memory: boot RAM and every window LMB it owns, as ascending ranges (adjacent
    /// LMBs merged).
    pub fn guest_ram(&self) -> Vec<GuestRange> {
        let mut out: Vec<GuestRange> = GuestRange::new(0, self.boot_ram).into_iter().collect();
        for k in self.owned() {
            let r = self.range(k);
            match out.last_mut() {
                Some(last) if last.end() == r.start() => {
                    *last = GuestRange::from_bounds(last.start(), r.end()).expect("ascending");
                }
                _ => out.push(r),
            }
        }
        out
    }

    /// Bytes of guest memory: boot RAM plus the owned LMBs.
    pub fn guest_ram_size(&self) -> u64 {
        self.boot_ram + self.owned().len() as u64 * LMB_SIZE
    }

    /// Grants every window LMB (the guest may add them itself, `echo "memory add count N" >
    /// /sys/kernel/dlpar`). Returns how many were newly granted.
    pub fn grant_all(&mut self) -> usize {
        let mut n = 0;
        for d in self.drcs.iter_mut().filter(|d| !d.attached()) {
            d.attach();
            n += 1;
        }
        n
    }

    /// LMBs the platform can still offer the guest: UNUSABLE and not offered by an add event
    /// still in flight; ascending.
    pub fn free(&self) -> Vec<usize> {
        (0..self.drcs.len())
            .filter(|&k| self.drcs[k].state() == DrcState::Unusable && !self.offered[k])
            .collect()
    }

    /// LMBs the platform means the guest to have: those it has acquired (in any state) and
    /// not been asked to give back, plus those offered by an add event still in flight.
    pub fn target(&self) -> usize {
        (0..self.drcs.len())
            .filter(|&k| {
                let d = &self.drcs[k];
                match d.state() {
                    DrcState::Unusable => self.offered[k],
                    _ => !d.unplug_requested(),
                }
            })
            .count()
    }

    /// The guest acquired LMB `k`: an add event that offered it is done.
    pub(crate) fn acquired(&mut self, k: usize) {
        self.offered[k] = false;
    }

    /// The platform adds `n` LMBs: the lowest free ones are granted, their indexes returned
    /// (the hot-plug event names them). Refused, changing nothing, past the window.
    pub fn plug(&mut self, n: usize) -> Result<Vec<usize>, TableError> {
        let free = self.free();
        if n > free.len() {
            return Err(TableError::NotEnoughFree {
                wanted: n,
                free: free.len(),
            });
        }
        let picked = free[..n].to_vec();
        for &k in &picked {
            self.drcs[k].attach();
            self.offered[k] = true;
        }
        Ok(picked)
    }

    /// The platform takes back `n` LMBs: the highest the guest owns without an unplug
    /// pending get one, ascending. Refused, changing nothing, when the guest holds fewer.
    pub fn unplug(&mut self, n: usize) -> Result<Vec<usize>, TableError> {
        let candidates: Vec<usize> = self
            .owned()
            .into_iter()
            .filter(|&k| !self.drcs[k].unplug_requested())
            .collect();
        if n > candidates.len() {
            return Err(TableError::NotEnoughOwned {
                wanted: n,
                owned: candidates.len(),
            });
        }
        let picked = candidates[candidates.len() - n..].to_vec();
        for &k in &picked {
            self.drcs[k].request_unplug();
        }
        Ok(picked)
    }

    /// The partition resets. Every LMB the guest owned becomes CONFIGURED (ASSIGNED in the
    /// next device tree), except, on a [`ResetKind::Reboot`], those with an unplug pending,
    /// which are released and detached. LMBs acquired but never unisolated go back to
    /// UNUSABLE. Returns the LMBs whose memory the platform may now unmap.
    pub fn reset(&mut self, kind: ResetKind) -> Vec<usize> {
        let mut released = Vec::new();
        self.offered.iter_mut().for_each(|o| *o = false);
        for (k, d) in self.drcs.iter_mut().enumerate() {
            let keep =
                d.state().guest_owned() && (kind == ResetKind::Fadump || !d.unplug_requested());
            if keep {
                d.reset_to(DrcState::Configured, true);
                continue;
            }
            let was_mapped = d.state() != DrcState::Unusable;
            let attached = d.attached() && !d.unplug_requested();
            d.reset_to(DrcState::Unusable, attached);
            if was_mapped {
                released.push(k);
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlpar::drc::CcPiece;

    const M: u64 = 1 << 20;

    /// The spec's example: 1536 MiB of RAM, a 512 MiB window at 0x60000000 (LMBs 6 and 7).
    fn table() -> LmbTable {
        LmbTable::new(1536 * M, 0x6000_0000, 512 * M).unwrap()
    }

    fn add(t: &mut LmbTable, k: usize) {
        let d = t.drc_mut(k);
        d.set_allocation(1).unwrap();
        d.set_isolation(1).unwrap();
        while d.configure_step().unwrap().0 != CcPiece::Complete {}
    }

    #[test]
    fn indexes_ranges_and_lookups() {
        let t = table();
        assert_eq!((t.len(), t.first_id()), (2, 6));
        assert_eq!(t.drc_index(0), 0x8000_0006);
        assert_eq!(t.drc_index(1), 0x8000_0007);
        assert_eq!(t.lookup(0x8000_0007), Some(1));
        for bad in [
            0,
            0x8000_0005,
            0x8000_0008,
            0x1000_0006,
            0x2000_0006,
            u32::MAX,
        ] {
            assert_eq!(t.lookup(bad), None, "{bad:#x}");
        }
        assert_eq!(t.range(1), GuestRange::new(0x7000_0000, 256 * M).unwrap());
        assert_eq!(t.window(), GuestRange::new(0x6000_0000, 512 * M).unwrap());
    }

    #[test]
    fn misaligned_overlapping_or_huge_windows_are_refused() {
        assert!(LmbTable::new(1536 * M, 0x6000_0000 + M, 256 * M).is_err());
        assert!(LmbTable::new(1536 * M, 0x6000_0000, 100 * M).is_err());
        assert!(
            LmbTable::new(1500 * M, 0x6000_0000, 256 * M).is_ok(),
            "boot RAM need not be aligned"
        );
        assert!(LmbTable::new(1540 * M, 0x6000_0000, 256 * M).is_err());
        assert!(LmbTable::new(1536 * M, 0x4000_0000, 256 * M).is_err());
        assert!(LmbTable::new(0, u64::MAX - (LMB_SIZE - 1), 2 * LMB_SIZE).is_err());
        assert_eq!(
            LmbTable::new(1 << 30, 1 << 30, 257 * LMB_SIZE),
            Err(TableError::TooLarge(257))
        );
        assert!(LmbTable::new(1 << 30, 1 << 30, 0).unwrap().is_empty());
    }

    #[test]
    fn plug_and_unplug_pick_from_the_bottom_and_the_top() {
        let mut t = table();
        assert_eq!(t.plug(1), Ok(vec![0]));
        assert_eq!(t.target(), 1, "an offered LMB counts");
        assert_eq!(
            t.plug(2),
            Err(TableError::NotEnoughFree { wanted: 2, free: 1 }),
            "offered and not yet acquired is not free"
        );
        add(&mut t, 0);
        t.acquired(0);
        assert_eq!(
            t.plug(2),
            Err(TableError::NotEnoughFree { wanted: 2, free: 1 })
        );
        assert_eq!(t.plug(1), Ok(vec![1]));
        add(&mut t, 1);
        assert_eq!(t.guest_ram_size(), 2048 * M);
        assert_eq!(t.guest_ram(), vec![GuestRange::new(0, 2048 * M).unwrap()]);
        assert_eq!(t.unplug(1), Ok(vec![1]));
        assert_eq!(t.target(), 1, "an LMB asked back does not");
        assert_eq!(
            t.unplug(2),
            Err(TableError::NotEnoughOwned {
                wanted: 2,
                owned: 1
            })
        );
    }

    /// LMB state across add, remove, the fadump reset and a plain reboot.
    #[test]
    fn lmb_state_across_add_remove_fadump_reset_and_reboot() {
        let mut t = table();
        t.grant_all();
        add(&mut t, 0);
        add(&mut t, 1);
        // The host asks for LMB 7 back; the guest crashes before it gives it up.
        assert_eq!(t.unplug(1), Ok(vec![1]));
        assert_eq!(t.reset(ResetKind::Fadump), Vec::<usize>::new());
        assert_eq!(
            t.owned(),
            vec![0, 1],
            "the capture kernel sees what the crashed one owned"
        );
        assert!(
            !t.drc(1).unplug_requested(),
            "the request is dropped with the events"
        );
        // The capture kernel removes nothing; the host asks again, then a plain reboot
        // completes the unplug.
        assert_eq!(t.unplug(1), Ok(vec![1]));
        assert_eq!(t.reset(ResetKind::Reboot), vec![1]);
        assert_eq!(t.owned(), vec![0]);
        assert!(!t.drc(1).attached(), "released and detached");
        assert_eq!(t.drc(0).state(), DrcState::Configured);
        // The guest removes LMB 6 itself: it stays granted, so it may take it again.
        let d = t.drc_mut(0);
        d.set_isolation(0).unwrap();
        d.set_allocation(0).unwrap();
        assert_eq!(t.reset(ResetKind::Reboot), Vec::<usize>::new());
        assert!(t.owned().is_empty() && t.drc(0).attached());
        // An LMB acquired but never unisolated is not the guest's at a reset: released.
        t.drc_mut(0).set_allocation(1).unwrap();
        assert_eq!(t.reset(ResetKind::Fadump), vec![0]);
        assert_eq!(t.drc(0).state(), DrcState::Unusable);
        assert_eq!(t.guest_ram_size(), 1536 * M);
    }
}
