//! The KVM memory slots of the hotplug window: one per LMB, created when the guest acquires
//! the LMB (`set-indicator` 9003 = 1) and deleted when it releases it, whose host pages are
//! then discarded (`MADV_DONTNEED`: the next acquisition reads zeros, and the host gets the
//! memory back).
//!
//! The window's host mapping itself (anonymous, `MAP_NORESERVE`, part of the guest memory
//! map) lives as long as the partition: the firmware and the devices see it as RAM, while
//! the guest's CPUs reach only the LMBs that have a slot. A guest access to an LMB without
//! one is an MMIO exit, answered with zeros (a pre-6.10 capture kernel reads a removed LMB
//! its stale ELF header still lists).

use std::sync::Mutex;

use firmware::dlpar::drc::DrcState;
use firmware::dlpar::table::LmbTable;
use firmware::dlpar::LMB_SIZE;
use firmware::GuestRange;
use log::{debug, warn};
use vm_memory::{GuestAddress, GuestMemoryBackend};

use crate::kvm::bindings::kvm_userspace_memory_region;
use crate::kvm::VmFd;
use crate::memory::GuestMemory;

/// The first KVM slot of the window (slot 0 is boot RAM).
pub const FIRST_SLOT: u32 = 1;

/// What the slots need from KVM (a fake in the tests).
pub trait Memslots {
    /// `KVM_SET_USER_MEMORY_REGION` (size 0 deletes the slot).
    ///
    /// # Safety
    ///
    /// `[host, host + size)` must stay mapped for as long as the slot exists.
    unsafe fn set_slot(&self, slot: u32, gpa: u64, size: u64, host: u64) -> std::io::Result<()>;
}

impl Memslots for VmFd {
    unsafe fn set_slot(&self, slot: u32, gpa: u64, size: u64, host: u64) -> std::io::Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: host,
        };
        // SAFETY: the caller guarantees the host range for the slot's lifetime.
        unsafe { self.set_user_memory_region(region) }.map_err(std::io::Error::from)
    }
}

/// Why a slot change failed.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// The range is not one LMB of the window.
    #[error("{0} is not an LMB of the hotplug window")]
    NotAnLmb(GuestRange),
    /// KVM refused.
    #[error("KVM memory slot {slot} for {range}: {err}")]
    Kvm {
        /// The slot.
        slot: u32,
        /// The LMB.
        range: GuestRange,
        /// KVM's error.
        #[source]
        err: std::io::Error,
    },
}

/// The window's slots.
#[derive(Debug)]
pub struct HotplugSlots {
    window: GuestRange,
    /// Host address of the window's first byte.
    host: u64,
    mapped: Mutex<Vec<bool>>,
}

impl HotplugSlots {
    /// Slots for `window`, which must be one region of `mem`; none mapped yet.
    pub fn new(mem: &GuestMemory, window: GuestRange) -> Option<Self> {
        let region = mem.find_region(window.start_addr())?;
        if vm_memory::GuestMemoryRegion::start_addr(region) != window.start_addr()
            || vm_memory::GuestMemoryRegion::len(region) != window.len()
        {
            return None;
        }
        let host = mem.get_host_address(GuestAddress(window.start())).ok()? as u64;
        Some(HotplugSlots {
            window,
            host,
            mapped: Mutex::new(vec![false; (window.len() / LMB_SIZE) as usize]),
        })
    }

    /// The window.
    pub fn window(&self) -> GuestRange {
        self.window
    }

    fn lmb(&self, r: GuestRange) -> Result<usize, SlotError> {
        let off = r.start().wrapping_sub(self.window.start());
        if !self.window.contains(&r) || r.len() != LMB_SIZE || off % LMB_SIZE != 0 {
            return Err(SlotError::NotAnLmb(r));
        }
        Ok((off / LMB_SIZE) as usize)
    }

    /// True when the LMB at `r` has a slot.
    pub fn is_mapped(&self, r: GuestRange) -> bool {
        self.lmb(r)
            .is_ok_and(|k| self.mapped.lock().unwrap_or_else(|e| e.into_inner())[k])
    }

    /// Gives the guest's CPUs the LMB at `r` (idempotent).
    pub fn map(&self, kvm: &impl Memslots, r: GuestRange) -> Result<(), SlotError> {
        let k = self.lmb(r)?;
        let mut mapped = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
        if mapped[k] {
            return Ok(());
        }
        let slot = FIRST_SLOT + k as u32;
        let host = self.host + (r.start() - self.window.start());
        // SAFETY: [host, host + LMB_SIZE) lies inside the window's mapping, a region of the
        // partition's guest memory, which outlives the VM (`Partition` drops the VM first).
        unsafe { kvm.set_slot(slot, r.start(), LMB_SIZE, host) }.map_err(|err| SlotError::Kvm {
            slot,
            range: r,
            err,
        })?;
        mapped[k] = true;
        debug!("hotplug: KVM slot {slot} maps {r}");
        Ok(())
    }

    /// Makes the slots match `table`: an LMB the guest has acquired (any state but UNUSABLE)
    /// is mapped, any other is unmapped and discarded, unless `map_all` (while a dump is
    /// active: a pre-6.10 capture kernel may read an LMB removed after its registration, and
    /// gets zeros at memory speed instead of one MMIO exit per load). Returns the first
    /// error; the other LMBs are still synced.
    pub fn sync(
        &self,
        kvm: &impl Memslots,
        table: &LmbTable,
        map_all: bool,
    ) -> Result<(), SlotError> {
        let mut first = Ok(());
        for k in 0..table.len() {
            let r = table.range(k);
            let want = map_all || table.drc(k).state() != DrcState::Unusable;
            let result = if want {
                self.map(kvm, r)
            } else {
                self.unmap(kvm, r)
            };
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    /// Takes the LMB at `r` from the guest's CPUs and discards its pages (idempotent).
    pub fn unmap(&self, kvm: &impl Memslots, r: GuestRange) -> Result<(), SlotError> {
        let k = self.lmb(r)?;
        let mut mapped = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
        if mapped[k] {
            let slot = FIRST_SLOT + k as u32;
            // SAFETY: deleting a slot (size 0) maps nothing.
            unsafe { kvm.set_slot(slot, r.start(), 0, 0) }.map_err(|err| SlotError::Kvm {
                slot,
                range: r,
                err,
            })?;
            mapped[k] = false;
            debug!("hotplug: KVM slot {slot} for {r} deleted");
        }
        let host = self.host + (r.start() - self.window.start());
        // SAFETY: [host, host + LMB_SIZE) is inside the window's anonymous private mapping;
        // MADV_DONTNEED only drops its pages (they read back as zeros), and no KVM slot maps
        // them any more.
        let rc = unsafe {
            libc::madvise(
                host as *mut libc::c_void,
                LMB_SIZE as usize,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            warn!(
                "hotplug: MADV_DONTNEED on {r}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use vm_memory::Bytes;

    #[derive(Default)]
    struct FakeKvm {
        calls: RefCell<Vec<(u32, u64, u64)>>,
        fail: bool,
    }

    impl Memslots for FakeKvm {
        unsafe fn set_slot(
            &self,
            slot: u32,
            gpa: u64,
            size: u64,
            _host: u64,
        ) -> std::io::Result<()> {
            self.calls.borrow_mut().push((slot, gpa, size));
            if self.fail {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            Ok(())
        }
    }

    fn setup() -> (GuestMemory, HotplugSlots) {
        let window = GuestRange::new(0x6000_0000, 2 * LMB_SIZE).unwrap();
        let mem = GuestMemory::from_ranges(&[
            (GuestAddress(0), 64 << 20),
            (window.start_addr(), window.len() as usize),
        ])
        .unwrap();
        let slots = HotplugSlots::new(&mem, window).unwrap();
        (mem, slots)
    }

    #[test]
    fn one_slot_per_lmb_mapped_once_and_its_pages_discarded_on_unmap() {
        let (mem, slots) = setup();
        let kvm = FakeKvm::default();
        let lmb7 = GuestRange::new(0x7000_0000, LMB_SIZE).unwrap();
        slots.map(&kvm, lmb7).unwrap();
        slots.map(&kvm, lmb7).unwrap();
        assert!(slots.is_mapped(lmb7));
        mem.write_slice(b"pattern", GuestAddress(0x7000_1000))
            .unwrap();
        slots.unmap(&kvm, lmb7).unwrap();
        slots.unmap(&kvm, lmb7).unwrap();
        assert_eq!(
            *kvm.calls.borrow(),
            [(2, 0x7000_0000, LMB_SIZE), (2, 0x7000_0000, 0)]
        );
        let mut b = [0xffu8; 7];
        mem.read_slice(&mut b, GuestAddress(0x7000_1000)).unwrap();
        assert_eq!(b, [0; 7], "a removed LMB's contents are gone");
    }

    #[test]
    fn sync_maps_what_the_guest_holds_and_everything_while_a_dump_is_active() {
        let (_mem, slots) = setup();
        let kvm = FakeKvm::default();
        let mut t = LmbTable::new(64 << 20, 0x6000_0000, 2 * LMB_SIZE).unwrap();
        t.grant_all();
        t.drc_mut(1).set_allocation(1).unwrap();
        let lmb = |k: u64| GuestRange::new(0x6000_0000 + k * LMB_SIZE, LMB_SIZE).unwrap();
        slots.sync(&kvm, &t, true).unwrap();
        assert!(slots.is_mapped(lmb(0)) && slots.is_mapped(lmb(1)));
        slots.sync(&kvm, &t, false).unwrap();
        assert!(!slots.is_mapped(lmb(0)) && slots.is_mapped(lmb(1)));
    }

    #[test]
    fn ranges_that_are_not_window_lmbs_and_kvm_failures_are_errors() {
        let (mem, slots) = setup();
        let kvm = FakeKvm::default();
        for r in [
            (0, LMB_SIZE),
            (0x6000_1000, LMB_SIZE),
            (0x6000_0000, 2 * LMB_SIZE),
            (0x8000_0000, LMB_SIZE),
        ] {
            let r = GuestRange::new(r.0, r.1).unwrap();
            assert!(
                matches!(slots.map(&kvm, r), Err(SlotError::NotAnLmb(_))),
                "{r}"
            );
        }
        assert!(kvm.calls.borrow().is_empty());
        let failing = FakeKvm {
            fail: true,
            ..FakeKvm::default()
        };
        let lmb6 = GuestRange::new(0x6000_0000, LMB_SIZE).unwrap();
        assert!(matches!(
            slots.map(&failing, lmb6),
            Err(SlotError::Kvm { slot: 1, .. })
        ));
        assert!(!slots.is_mapped(lmb6));
        // A window that is not one region of the map has no slots.
        assert!(HotplugSlots::new(&mem, GuestRange::new(0x6000_0000, LMB_SIZE).unwrap()).is_none());
    }
}
