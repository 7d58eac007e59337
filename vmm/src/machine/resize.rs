//! Memory hotplug on the machine: `resize_memory` (cloud-hypervisor's `vm.resize` with
//! `desired_ram`, called by the API on the main thread) and the LMB state across resets.
//!
//! `desired_ram` is boot RAM plus whole 256 MiB LMBs of the window (else
//! [`OpError::Invalid`]; no window: [`OpError::NotSupported`]; a dump active or LMBs still in
//! flight: [`OpError::Busy`]). Growing grants the lowest
//! free LMBs and queues count-indexed add events; shrinking asks for the highest hot-added
//! LMBs back with remove events. Each event raises the hot-plug interrupt once; the guest
//! fetches it with `check-exception` and runs its DLPAR code, which may refuse a removal
//! (memory in use): the LMB then stays the guest's (logged by the firmware). Nothing changes
//! while a firmware-assisted dump is active.

use super::{Machine, OpError};
use crate::error::Error;
use firmware::dlpar::table::ResetKind;
use firmware::dlpar::{DlparError, LMB_SIZE};
use firmware::rtas::{EventClass, HotplugAction, Rtas, TimeOfDay};
use log::{info, warn};

/// What a resize did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResizeReport {
    /// Guest memory the machine meant the guest to have before (boot RAM, LMBs it owns and
    /// LMBs offered, minus LMBs asked back).
    pub previous: u64,
    /// `desired_ram`.
    pub desired: u64,
    /// DRC indexes of the LMBs offered (add) or asked back (remove).
    pub lmbs: Vec<u32>,
    /// True for an add, false for a remove (meaningless when `lmbs` is empty).
    pub added: bool,
    /// Hot-plug events queued.
    pub events: usize,
}

/// The firmware's side of a resize: validates `desired_ram`, grants or asks back LMBs and
/// queues one hot-plug log per event, created at `now` (nothing changes on an error). The
/// caller raises the hot-plug interrupt once per event.
pub(crate) fn plan_resize(
    rtas: &mut Rtas,
    desired_ram: u64,
    now: TimeOfDay,
) -> Result<ResizeReport, OpError> {
    let no_window =
        OpError::NotSupported("no memory hotplug window (--memory size=...,hotplug_size=...)");
    let Some(dlpar) = rtas.dlpar() else {
        return Err(no_window);
    };
    let t = dlpar.table();
    let boot = t.boot_ram();
    let max = boot + t.len() as u64 * LMB_SIZE;
    if desired_ram < boot || desired_ram > max || (desired_ram - boot) % LMB_SIZE != 0 {
        warn!(
            "vm.resize: desired_ram {desired_ram:#x} refused: boot RAM {boot:#x} plus whole \
             256 MiB LMBs up to {max:#x}"
        );
        return Err(OpError::Invalid(format!(
            "desired_ram {desired_ram} must be {boot} (boot RAM) plus a multiple of {LMB_SIZE}, \
             at most {max}"
        )));
    }
    let target = t.target();
    let previous = boot + target as u64 * LMB_SIZE;
    let want = ((desired_ram - boot) / LMB_SIZE) as usize;
    let request = match want.cmp(&target) {
        std::cmp::Ordering::Equal => {
            return Ok(ResizeReport {
                previous,
                desired: desired_ram,
                lmbs: vec![],
                added: false,
                events: 0,
            })
        }
        std::cmp::Ordering::Greater => (want - target, HotplugAction::Add),
        std::cmp::Ordering::Less => (target - want, HotplugAction::Remove),
    };
    let (n, action) = request;
    let added = action == HotplugAction::Add;
    let request = rtas.memory_hotplug(action, n, now).map_err(|e| {
        let Some(e) = e else { return no_window };
        warn!("vm.resize to {desired_ram:#x}: {e}");
        match e {
            DlparError::DumpActive => {
                OpError::Busy("a firmware-assisted dump is active: resize after it is released")
            }
            DlparError::QueueFull => {
                OpError::Busy("too many RTAS event logs are waiting for the guest")
            }
            DlparError::Table(_) => OpError::Busy(
                "LMBs are still changing hands: resize again once the guest has finished",
            ),
        }
    })?;
    let table = rtas.dlpar().expect("checked").table();
    let lmbs: Vec<u32> = request.lmbs.iter().map(|&k| table.drc_index(k)).collect();
    info!(
        "vm.resize: {previous:#x} -> {desired_ram:#x}: {} LMBs {:x?} {}, {} hot-plug events",
        lmbs.len(),
        lmbs,
        if added { "offered" } else { "asked back" },
        request.events.len()
    );
    Ok(ResizeReport {
        previous,
        desired: desired_ram,
        lmbs,
        added,
        events: request.events.len(),
    })
}

impl Machine {
    /// Asks the guest to hold `desired_ram` bytes: hot-plug events for the difference, each
    /// raising the hot-plug interrupt once. (The API's `vm.resize` route calls it on the
    /// main thread.)
    pub(crate) fn resize_memory(&mut self, desired_ram: u64) -> Result<ResizeReport, OpError> {
        let report = {
            let mut rtas = self
                .partition
                .rtas
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            plan_resize(&mut rtas, desired_ram, crate::clock::now())?
        };
        for _ in 0..report.events {
            crate::devices::irq::pulse_event(&self.partition.vm, EventClass::HotPlug);
        }
        Ok(report)
    }

    /// The LMB state through a reset (every vCPU stopped; the reset has already dropped the
    /// queued event logs and reset the event sources): on a reboot pending unplugs complete,
    /// on the fadump reset every LMB the crashed kernel owned stays assigned; the window's KVM
    /// slots follow (all mapped while a dump is active).
    pub(super) fn reset_hotplug(&mut self, kind: ResetKind) -> Result<(), Error> {
        let mut rtas = self
            .partition
            .rtas
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let dump_active = rtas.fadump().is_dump_active();
        let Some(dlpar) = rtas.dlpar_mut() else {
            return Ok(());
        };
        let released = dlpar.reset(kind);
        let table = dlpar.table();
        info!(
            "hotplug: {kind:?} reset: the guest keeps LMBs {:x?} ({} MiB in all){}",
            table
                .owned()
                .iter()
                .map(|&k| table.drc_index(k))
                .collect::<Vec<_>>(),
            table.guest_ram_size() >> 20,
            if released.is_empty() {
                String::new()
            } else {
                format!(
                    "; LMBs {:x?} released",
                    released
                        .iter()
                        .map(|&k| table.drc_index(k))
                        .collect::<Vec<_>>()
                )
            }
        );
        if let Some(slots) = &self.partition.hotplug {
            slots
                .sync(&self.partition.vm, table, dump_active)
                .map_err(|e| Error::Runtime(format!("hotplug slots on reset: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::dlpar::table::LmbTable;
    use firmware::dlpar::Dlpar;
    use firmware::fadump::FadumpConfig;

    const M: u64 = 1 << 20;
    const T: TimeOfDay = TimeOfDay {
        year: 2026,
        month: 12,
        day: 8,
        hour: 0,
        minute: 0,
        second: 0,
        nanosecond: 0,
    };

    fn rtas(window: bool) -> Rtas {
        let mut r = Rtas::new(FadumpConfig {
            max_cpus: 1,
            hpte_capacity: 0,
            rma_size: 64 * M,
            firmware_reserved: vec![],
        });
        if window {
            let t = LmbTable::new(1536 * M, 1536 * M, 512 * M).unwrap();
            r.set_dlpar(Dlpar::new(t));
        }
        r
    }

    #[test]
    fn desired_ram_is_boot_ram_plus_whole_lmbs_of_the_window() {
        assert!(matches!(
            plan_resize(&mut rtas(false), 2048 * M, T),
            Err(OpError::NotSupported(_))
        ));
        let mut r = rtas(true);
        for bad in [1024 * M, 1600 * M, 2304 * M, u64::MAX] {
            assert!(
                matches!(plan_resize(&mut r, bad, T), Err(OpError::Invalid(_))),
                "{bad:#x}"
            );
        }
        assert!(r.events().is_empty(), "nothing queued for bad input");
        let same = plan_resize(&mut r, 1536 * M, T).unwrap();
        assert_eq!((same.previous, same.events), (1536 * M, 0));
    }

    #[test]
    fn growing_offers_lmbs_and_shrinking_asks_the_guests_back() {
        let mut r = rtas(true);
        let grow = plan_resize(&mut r, 2048 * M, T).unwrap();
        assert_eq!(
            (grow.previous, grow.added, grow.events),
            (1536 * M, true, 1)
        );
        assert_eq!(grow.lmbs, [0x8000_0006, 0x8000_0007]);
        // Offered, not yet taken: asking for less now is refused (busy), not half-done.
        assert!(matches!(
            plan_resize(&mut r, 1792 * M, T),
            Err(OpError::Busy(_))
        ));
        assert_eq!(
            plan_resize(&mut r, 2048 * M, T).unwrap().events,
            0,
            "already the target"
        );
        // The guest takes both (Linux's add sequence on each DRC).
        let d = r.dlpar_mut().unwrap();
        for k in 0..2 {
            let drc = d.table_mut().drc_mut(k);
            drc.set_allocation(1).unwrap();
            drc.set_isolation(1).unwrap();
            while drc.configure_step().unwrap().0 != firmware::dlpar::drc::CcPiece::Complete {}
        }
        let shrink = plan_resize(&mut r, 1792 * M, T).unwrap();
        assert_eq!(
            (shrink.previous, shrink.added, shrink.lmbs.as_slice()),
            (2048 * M, false, &[0x8000_0007][..])
        );
    }

    #[test]
    fn nothing_changes_while_a_dump_is_active() {
        use firmware::fadump::{
            DumpSection, Fadump, FadumpState, KernelDumpStructure, SectionType,
        };
        let cfg = FadumpConfig {
            max_cpus: 1,
            hpte_capacity: 0,
            rma_size: 64 * M,
            firmware_reserved: vec![],
        };
        let section = DumpSection::request(SectionType::REAL_MODE_REGION, 0, M, 32 * M);
        let kds = KernelDumpStructure::decode(&KernelDumpStructure::registration_bytes(&[section]))
            .unwrap();
        let fadump = Fadump::restore(cfg, FadumpState::DumpActive(kds)).unwrap();
        let mut r = Rtas::with_fadump(fadump);
        r.set_dlpar(Dlpar::new(
            LmbTable::new(1536 * M, 1536 * M, 512 * M).unwrap(),
        ));
        assert!(r.fadump().is_dump_active());
        for desired in [1792 * M, 2048 * M] {
            assert!(matches!(
                plan_resize(&mut r, desired, T),
                Err(OpError::Busy(_))
            ));
        }
        let t = r.dlpar().unwrap().table();
        assert_eq!((r.events().len(), t.target()), (0, 0));
    }
}
